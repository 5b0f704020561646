// A thin layer over nats.c for the nats driver: one connection, JetStream API
// requests with JSON bodies and decoded errors, and the parts of JetStream
// that nats.c does not wrap: the stream snapshot protocol (written to a file,
// bounded memory), the stream restore protocol (read from a file) and an
// ordered walk over a stream's messages (headers only) for the ledger.
//
// Errors name the stream, the API subject and the server's error description:
//   "$JS.API.STREAM.RESTORE.ORDERS: stream name already in use (code 400, err_code 10130)".
//
// Ownership: a Connection owns its natsConnection and closes it on destruction.
// Thread-safety: a Connection is used by one thread at a time.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace backstop::nats {

// JetStream API error codes (the "err_code" of the server's error object).
inline constexpr int kErrStreamNotFound = 10059;
inline constexpr int kErrConsumerNotFound = 10014;
inline constexpr int kErrNoMessageFound = 10037;

struct ConnectOptions {
  std::string url;  // nats://host:port, possibly several separated by commas
  int64_t connect_timeout_ms = 5000;
  int64_t request_timeout_ms = 10000;
  std::string credentials_file;  // a .creds file (JWT + NKey seed); empty: none
  std::string user;              // never logged
  std::string password;          // never logged
};

// `url` with any password replaced by "***" ("nats://app:***@10.0.0.5:4222").
std::string RedactUrl(const std::string& url);

class Connection {
 public:
  // Connects without reconnection: an operation that loses the server fails
  // instead of silently continuing on a new connection.
  static Result<std::unique_ptr<Connection>> Open(const ConnectOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends `body` (null: an empty payload) to the JetStream API `subject` and
  // parses the JSON reply. A reply with an "error" object becomes a Status
  // naming the subject and the server's description; err_codes 10059, 10014
  // and 10037 (stream, consumer, message not found) become NotFound.
  // `timeout_ms` 0 means the connection's request timeout.
  Result<nlohmann::json> ApiRequest(const std::string& subject, const nlohmann::json& body,
                                    int64_t timeout_ms = 0);

  natsConnection* raw() { return nc_; }
  const ConnectOptions& options() const { return options_; }
  // The URL for messages, password redacted.
  std::string display_url() const { return RedactUrl(options_.url); }

 private:
  Connection() = default;
  natsConnection* nc_ = nullptr;
  ConnectOptions options_;
};

// A Status for a failed nats.c call: "<what>: <status text> (<last error>)".
Status NatsCallError(const std::string& what, natsStatus s);

// $JS.API.STREAM.INFO.<stream>: {"config", "state", "created", ...}. NotFound if absent.
Result<nlohmann::json> GetStreamInfo(Connection& conn, const std::string& stream);
// $JS.API.STREAM.DELETE.<stream>. NotFound if absent.
Status DeleteStream(Connection& conn, const std::string& stream);
// Every consumer of `stream` ($JS.API.CONSUMER.LIST, all pages): consumer infos
// with "name", "config", "delivered", "ack_floor", "num_pending"...
Result<std::vector<nlohmann::json>> ListConsumers(Connection& conn, const std::string& stream);

struct SnapshotResult {
  nlohmann::json config;  // the stream config the server replied with
  nlohmann::json state;   // the stream state at the snapshot
  uint64_t bytes = 0;     // size of the snapshot (S2-compressed tar)
  uint64_t chunks = 0;
};

// Streams a snapshot of `stream` (with its consumers) into `path` (created or
// truncated, fsynced before returning): $JS.API.STREAM.SNAPSHOT.<stream> with
// a fresh inbox as deliver subject, every chunk acked on its reply subject,
// ended by the empty message without headers. Memory stays bounded by the
// server's flow-control window. On error `path` may hold a partial file.
Result<SnapshotResult> SnapshotStreamToFile(Connection& conn, const std::string& stream,
                                            int64_t chunk_size, const std::string& path);

// Test hooks for RestoreStreamFromFile.
struct RestoreHooks {
  // When >= 0: send only this many chunks, then the end marker, as if the
  // transfer had been cut short (the server then rejects the snapshot).
  int64_t truncate_after_chunks = -1;
};

// Creates `stream` from the snapshot in `path`: $JS.API.STREAM.RESTORE.<stream>
// with {config, state}; each chunk is sent as a request to the returned deliver
// subject and its empty ack awaited; an empty request ends the transfer and its
// reply (the stream info, or the server's error) is returned.
// REQUIRES: the stream does not exist. On error the server may have left a
// half-made stream behind: the caller must check and delete it.
Result<nlohmann::json> RestoreStreamFromFile(Connection& conn, const std::string& stream,
                                             const nlohmann::json& config,
                                             const nlohmann::json& state, const std::string& path,
                                             int64_t chunk_size, const RestoreHooks& hooks = {});

// One stored message as seen by the ledger; `headers` and `data` are filled
// only when the walk asked for payloads.
struct MessageMeta {
  uint64_t sequence = 0;
  std::string subject;
  int64_t time_ns = 0;  // stored time, ns since the epoch
  uint64_t size = 0;    // payload bytes
  std::vector<std::pair<std::string, std::string>> headers;
  std::string data;
};

// Calls `fn` for each message of `stream` with from_seq <= sequence <= to_seq,
// in order, through an ephemeral ordered push consumer delivering headers only
// unless `with_payload` (memory bounded by one message either way). A
// message-less range costs one request. Stops at the first non-OK Status
// returned by `fn`.
Status ForEachMessage(Connection& conn, const std::string& stream, uint64_t from_seq,
                      uint64_t to_seq, const std::function<Status(const MessageMeta&)>& fn,
                      bool with_payload = false);

// Publishes one message through JetStream (waits for the stream's ack) and
// returns the sequence the stream gave it.
Result<uint64_t> PublishToStream(Connection& conn, const std::string& subject,
                                 const std::vector<std::pair<std::string, std::string>>& headers,
                                 const std::string& data);

std::string Base64Encode(std::string_view bytes);
// InvalidArgument when `text` is not base64.
Result<std::string> Base64Decode(std::string_view text);

}  // namespace backstop::nats
