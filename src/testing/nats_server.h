// A real nats-server with JetStream for integration tests, plus a small
// JetStream client to create streams and consumers, publish and read
// messages by sequence.
//
// NatsServer::Start runs `nats-server -a 127.0.0.1 -js -sd <dir>/js -p P -m M`
// in a temporary directory on free loopback ports (client and monitoring),
// waits until the monitoring port's /healthz answers 200 and stops the server
// (SIGTERM, then SIGKILL) in its destructor. The child gets PR_SET_PDEATHSIG
// so a crashed test does not leave a server behind. Stop() and Restart() keep
// the ports and the JetStream directory, so a test can take the server away
// and bring it back with its streams.
//
// Thread-safety: neither class is thread-safe. Test-only code.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

struct __natsConnection;
struct __jsCtx;

namespace backstop::testing {

class NatsServer {
 public:
  // Starts a server in a fresh temporary directory. Retries with other ports
  // when one was taken between picking it and the server binding it.
  static Result<std::unique_ptr<NatsServer>> Start();
  ~NatsServer();
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  // SIGTERM and wait (SIGKILL after 5 s). A stopped server is OK.
  Status Stop();
  // Starts again on the same ports with the same JetStream directory.
  Status Restart();
  bool running() const { return pid_ > 0; }

  std::string url() const;          // nats://127.0.0.1:<port>
  std::string monitor_url() const;  // http://127.0.0.1:<monitor port>
  int port() const { return port_; }
  int monitor_port() const { return monitor_port_; }
  const std::string& dir() const { return dir_; }
  // The server's log, for failure messages.
  std::string LogTail() const;

 private:
  NatsServer() = default;
  Status Launch();
  std::string dir_;
  int port_ = 0;
  int monitor_port_ = 0;
  pid_t pid_ = -1;
};

// A message as stored in a stream.
struct NatsTestMessage {
  uint64_t sequence = 0;
  std::string subject;
  std::string data;
};

// A JetStream client for setting up and checking test streams.
class NatsTestClient {
 public:
  static Result<std::unique_ptr<NatsTestClient>> Connect(const std::string& url);
  ~NatsTestClient();
  NatsTestClient(const NatsTestClient&) = delete;
  NatsTestClient& operator=(const NatsTestClient&) = delete;

  // File-storage stream with `subjects`.
  Status AddStream(const std::string& name, const std::vector<std::string>& subjects);
  // Publishes and waits for the JetStream ack; returns the stream sequence.
  Result<uint64_t> Publish(const std::string& subject, const std::string& data);
  // Publishes `count` messages "<prefix>-<i>" of at least `size` bytes asynchronously
  // (fast), then waits for every ack.
  Status PublishMany(const std::string& subject, int count, size_t size,
                     const std::string& prefix = "m");
  // A durable pull consumer with explicit acks on `filter` (may be empty).
  Status AddDurablePullConsumer(const std::string& stream, const std::string& durable,
                                const std::string& filter, const std::string& description);
  // Fetches `count` messages with the durable pull consumer and acks them
  // (synchronously), so the consumer's ack floor moves to the last one.
  Status FetchAndAck(const std::string& stream, const std::string& durable, int count);
  Result<NatsTestMessage> GetMessage(const std::string& stream, uint64_t sequence);
  Status DeleteMessage(const std::string& stream, uint64_t sequence);
  Status DeleteStream(const std::string& name);
  // The JSON of $JS.API.STREAM.INFO / CONSUMER.INFO (error replies included as they are).
  Result<std::string> RawRequest(const std::string& subject, const std::string& body);

 private:
  NatsTestClient() = default;
  __natsConnection* nc_ = nullptr;
  __jsCtx* js_ = nullptr;
};

}  // namespace backstop::testing
