// Prober: probes many targets periodically without a thread per target.
//
// One event-loop thread drives every HTTP probe through libcurl's multi
// interface (socket actions on an epoll set) and every TCP probe as a
// non-blocking connect on the same epoll set. Probes that can only block (exec
// commands, gRPC, a driver's own Health such as PostgreSQL's or NATS's) run in
// a small bounded pool of worker threads. Due probes are kept in a priority
// queue ordered by their next due time; each target is probed at its own
// interval, never concurrently with itself, and every probe is bounded by its
// timeout (a timeout is a failed probe, never "no data").
//
// HTTP targets keep one curl easy handle each, for the life of the target, and
// connections are reused between probes (the multi handle's connection
// cache): a probe of a live server costs one request on an open connection. A
// server that died is still detected: curl checks a cached connection before
// reusing it and reconnects (and then fails: refused or timed out) when the
// peer has closed it; a hung server fails on the timeout.
//
// Results are delivered to the callback given to Start, on the loop thread;
// the callback must be quick (queue the result and return).
//
// Ownership: the Prober owns its handles, sockets and threads; Stop (or the
// destructor) joins them. Thread-safety: Add, ProbeNow, Stop and GetStats may
// be called from any thread; the callback runs on the loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/status.h"
#include "drivers/driver.h"
#include "spec/spec.h"

namespace backstop {

struct ProbeTarget {
  std::string name;  // unique among the prober's targets (a component, "orchestrator#metrics")
  ProbeSpec probe;   // http, tcp, exec or grpc; interval_ms and timeout_ms are used
  // When set, this blocking call is the probe (run in the worker pool) and
  // `probe` only supplies interval and timeout. It must honour the timeout
  // itself; the prober reports a timed-out failure when it overruns anyway.
  std::function<HealthResult()> blocking;
  // HTTP only: keep the response body (up to max_body_bytes) in the result,
  // e.g. to read a Prometheus /metrics page.
  bool capture_body = false;
  size_t max_body_bytes = 4 << 20;
  // Delay before the first probe (e.g. to spread many targets over their
  // interval); 0 probes at once.
  int64_t first_delay_ms = 0;
};

struct ProbeOutcome {
  std::string name;
  HealthResult health;  // state, latency_ms, detail, signals (http_status, connect_time_ms...)
  // False when the target could not be reached at all (connection refused,
  // connect timeout, name not resolved); true once anything answered (even
  // an HTTP 503). Not meaningful for exec probes (always true).
  bool reachable = true;
  bool timed_out = false;
  std::string body;         // capture_body targets only
  int64_t started_us = 0;   // monotonic, when the probe was sent
  int64_t finished_us = 0;  // monotonic, when its outcome was known
  int64_t latency_us = 0;   // finished - started, as the loop saw it
};

class Prober {
 public:
  struct Options {
    int workers = 4;  // threads for blocking probes
    // Extra time a blocking probe gets beyond its timeout before the loop
    // reports it as timed out itself (the call should honour its timeout).
    int64_t blocking_grace_ms = 2000;
    // Keep HTTP connections open between probes (false: a fresh connection
    // per probe, as blackbox_exporter does; for comparisons).
    bool reuse_connections = true;
  };
  struct Stats {
    uint64_t started = 0;
    uint64_t completed = 0;
    uint64_t http = 0;
    uint64_t tcp = 0;
    uint64_t blocking = 0;
    uint64_t skipped_busy = 0;  // due while the previous probe still ran
  };
  using Callback = std::function<void(ProbeOutcome&& outcome)>;

  explicit Prober(Env* env);
  Prober(Env* env, Options options);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Starts the loop and the workers. `callback` receives every outcome.
  Status Start(Callback callback);
  // Stops and joins every thread; probes in flight are abandoned. Idempotent.
  void Stop();

  // Adds a target (before or after Start). InvalidArgument for a duplicate
  // name or a target with neither a probe nor a blocking call.
  Status Add(ProbeTarget target);
  // Makes `name` due now (its schedule continues from this probe).
  void ProbeNow(const std::string& name);
  Stats GetStats() const;

 private:
  class Loop;
  Env* env_;
  Options options_;
  std::unique_ptr<Loop> loop_;
};

// Probes every target once, concurrently, and returns the outcomes in the
// order of `targets`. Waits at most the largest timeout plus a margin.
std::vector<ProbeOutcome> ProbeOnce(Env* env, std::vector<ProbeTarget> targets, int workers = 4);

}  // namespace backstop
