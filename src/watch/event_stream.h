// Server-Sent Events for the API's GET /api/v1/events (docs/dashboard.md):
// the daemon's changes of state (a component's health, a trigger's state, a
// run started, its steps, its end, pause and resume) pushed to the connected
// dashboards as they happen.
//
// The API's gate reads and authorizes the request, then hands the socket to
// Adopt; from then on this stream's own thread writes to it without ever
// blocking. Publish only appends to each client's buffer: a client that reads
// too slowly (its buffer would pass max_buffered_bytes) is disconnected, and
// the page then reconnects and reloads the state from /api/v1/status. So no
// client, however slow, can stall the control loop that publishes.
//
// Ownership: owns the adopted sockets and its thread.
// Thread-safety: Adopt, Publish and stats may be called from any thread, at
// any time between construction and destruction (after Stop they close the
// socket / do nothing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace backstop {

class EventStream {
 public:
  struct Options {
    // Bytes waiting for one client before it is disconnected.
    size_t max_buffered_bytes = 256 << 10;
    int max_clients = 64;  // one more is refused with 503
    // A comment line this often keeps idle connections (and proxies) open.
    int64_t keepalive_ms = 15'000;
  };
  struct Stats {
    uint64_t published = 0;  // events published
    uint64_t dropped = 0;    // clients disconnected for reading too slowly
    int clients = 0;         // connected now
  };

  explicit EventStream(Options options);
  ~EventStream();  // Stop
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  Status Start();
  void Stop();

  // Takes `fd` (a connected socket whose request has been read and
  // authorized): answers 200 text/event-stream and keeps it for the events.
  void Adopt(int fd, const std::string& peer);
  // Queues `type` with `data` for every client ("event: TYPE", "data: JSON").
  void Publish(const std::string& type, const nlohmann::json& data);
  Stats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace backstop
