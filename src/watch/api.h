// The watch daemon's HTTP API and its Prometheus /metrics exposition.
//
//   GET  /api/v1/status           components, health, triggers, current run, paused
//   GET  /api/v1/components       each component as its driver describes it (release...)
//                                 and the newest restore point that holds it
//   GET  /api/v1/restore-points   every restore point, newest first
//   POST /api/v1/restore-points/{id}/verify   re-hashes its manifest and blobs (token)
//   GET  /api/v1/runs[?limit=N&offset=M]   recent runs, newest first (M newest skipped)
//   GET  /api/v1/runs/{id}        one run with its steps
//   POST /api/v1/rollback         {"component": NAME} or {"all": true}, optional "to"
//   POST /api/v1/plan             the same body: the plan such a rollback would run, not run
//   POST /api/v1/pause            {"reason": "..."} optional
//   POST /api/v1/resume
//   GET  /api/v1/events           Server-Sent Events of changes of state (event_stream.h)
//   GET  /metrics                 Prometheus text format (0.0.4)
//   GET  /, /assets/...           the web dashboard (dashboard.h)
//
// Everything that acts (every POST), and the event stream, require
// `Authorization: Bearer <token>`;
// a missing or wrong token gets 401 with a JSON error. The token is compared
// in constant time (over SHA-256 digests, so its length does not leak either)
// and never logged. The server listens on 127.0.0.1 unless told otherwise.
//
// Slow or greedy clients cannot starve it: a single gate thread reads every
// request (head and body) without blocking, within a time limit, and hands
// only complete requests to the worker threads. Each client address may hold
// a few connections at once; a client over its share loses its oldest
// unfinished one. Each connection carries one request (Connection: close).
//
// Ownership: ApiServer borrows its backend, which must outlive it.
// Thread-safety: the backend is called from the server's worker threads,
// several at once; it must be thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"
#include "watch/event_stream.h"

namespace backstop {

// --- Token ---------------------------------------------------------------------

// The API token: from `token_file` when given (first line, trimmed), else the
// environment variable BACKSTOP_API_TOKEN, else <state_dir>/api-token, which is
// generated (32 random bytes, hex) with mode 0600 when absent. `source`
// receives where it came from ("--token-file PATH", "BACKSTOP_API_TOKEN", the
// path), never the token.
Result<std::string> LoadOrCreateApiToken(Env* env, const std::string& state_dir,
                                         const std::string& token_file, std::string* source);
// Constant-time comparison of a presented token with the expected one.
bool TokenMatches(const std::string& presented, const std::string& expected);

// --- Metrics --------------------------------------------------------------------

// A cumulative histogram with fixed upper bounds (Prometheus semantics).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound (le), the last one being +Inf (== count()).
  std::vector<uint64_t> Cumulative() const;
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; one extra for +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};
// Bounds for probe latencies and run durations, in seconds.
std::vector<double> ProbeLatencyBounds();
std::vector<double> RunDurationBounds();

// What /metrics shows, gathered by the daemon.
struct WatchMetrics {
  struct Probe {
    std::string component;
    bool has_result = false;  // no sample yet: backstop_probe_success is omitted
    bool success = false;
    uint64_t total = 0;
    uint64_t failures = 0;
    Histogram latency{ProbeLatencyBounds()};
  };
  struct Trigger {
    std::string trigger;
    std::string component;
    int state = 0;  // 0 ok, 1 pending, 2 firing
  };
  std::vector<Probe> probes;
  std::vector<Trigger> triggers;
  std::map<std::pair<std::string, std::string>, uint64_t> runs_total;  // (kind, status)
  Histogram run_duration{RunDurationBounds()};
  std::map<std::string, uint64_t> decisions_total;  // by outcome: acted, held, dry_run, alert
  bool paused = false;
};
// The Prometheus text exposition of `m`.
std::string RenderMetrics(const WatchMetrics& m);
// Escapes a label value for the text format.
std::string PromEscape(const std::string& value);

// --- Server -----------------------------------------------------------------------

struct ApiReply {
  int status = 200;
  nlohmann::json body;
};

class ApiBackend {
 public:
  virtual ~ApiBackend() = default;
  virtual nlohmann::json GetStatus() = 0;
  virtual ApiReply GetComponents() = 0;
  virtual ApiReply GetRestorePoints() = 0;
  virtual ApiReply VerifyRestorePoint(const std::string& id) = 0;
  virtual ApiReply GetRuns(int limit, int offset) = 0;
  virtual ApiReply GetRun(const std::string& id) = 0;
  // `actor` says who asked ("api 127.0.0.1"), for the logs and run records.
  virtual ApiReply RequestRollback(const nlohmann::json& body, const std::string& actor) = 0;
  // The plan RequestRollback(body) would run, without running it.
  virtual ApiReply PlanRollback(const nlohmann::json& body) = 0;
  virtual ApiReply SetPaused(bool paused, const std::string& reason, const std::string& actor) = 0;
  virtual std::string MetricsText() = 0;
};

// level: "info" | "warn" | "error"; fields: structured context (never secrets).
using ApiLogFn =
    std::function<void(const std::string& level, const std::string& msg, nlohmann::json fields)>;

class ApiServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;  // 0: any free port (see port())
    std::string token;
    int threads = 2;  // handle complete requests
    ApiLogFn log;     // may be empty
    // A request whose head has not arrived this long after the connection
    // was accepted gets 408; so does one whose body has not arrived within
    // request_timeout_ms.
    int64_t header_timeout_ms = 5'000;
    int64_t request_timeout_ms = 10'000;
    size_t max_header_bytes = 16 << 10;
    size_t max_body_bytes = 1 << 20;
    // Connections still sending their request, per client address and in all.
    int max_connections_per_client = 8;
    int max_pending_connections = 512;
    EventStream::Options events;
  };
  ApiServer(ApiBackend* backend, Options options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and starts serving on a background thread. IOError when the
  // address cannot be bound (in use, not local...).
  Status Start();
  // The bound port (after Start).
  int port() const { return bound_port_; }
  void Stop();
  // Pushes an event to the clients of /api/v1/events; never blocks on them.
  // Safe from any thread, before Start and after Stop too (then a no-op).
  void Publish(const std::string& type, const nlohmann::json& data);
  EventStream::Stats event_stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  int bound_port_ = 0;
};

// Splits "ADDR:PORT" / "[v6]:PORT" / ":PORT" (loopback) for --listen.
Status ParseListenAddress(const std::string& text, std::string* host, int* port);
// True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost.
// 0.0.0.0 and :: (every interface) are not.
bool IsLoopbackHost(const std::string& host);

}  // namespace backstop
