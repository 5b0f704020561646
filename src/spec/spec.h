// The spec: backstop.yaml parsed into a validated model.
//
// One spec describes one environment: its components (kind, driver, driver
// settings, health probe, depends_on) and the triggers, decision matrix,
// drills and notifications. LoadSpec either returns a Spec that is complete
// and consistent (every depends_on target exists, no cycles, every driver
// setting of the right type), or a Status listing every error found, each as
// "file:line:column: <key>: <what was wrong>; <what was expected>".
//
// Thread-safety: a Spec is an immutable value after loading.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "spec/spec_enums.h"

namespace backstop {

struct SourcePos {
  std::string file;
  int line = 0;                  // 1-based; 0 when unknown
  int column = 0;                // 1-based
  std::string ToString() const;  // "file:line:column"
};

struct SpecError {
  SourcePos pos;
  std::string key;      // dotted path: "components.webui.health.interval"
  std::string message;  // what was wrong and what was expected
  std::string ToString() const;
};

// A health probe. Exactly one of http, tcp, exec, grpc is set in the YAML.
struct ProbeSpec {
  enum class Type { kNone, kHttp, kTcp, kExec, kGrpc };
  Type type = Type::kNone;
  std::string target;                // http: URL; tcp and grpc: host:port
  std::vector<std::string> command;  // exec: argv
  std::string grpc_service;          // grpc: service name; "" asks about the server
  int expect_status = 0;             // http: 0 means any 2xx
  int64_t interval_ms = 30'000;      // the seed: 30s
  int64_t timeout_ms = 10'000;       // the seed: 10s
  int retries = 3;                   // consecutive failures before "unhealthy"; start gate attempts
  int64_t start_period_ms = 30'000;  // how long a start may take before the gate gives up
  SourcePos pos;
  bool enabled() const { return type != Type::kNone; }
  std::string Describe() const;  // "http http://127.0.0.1:3000/health"
  // This probe aimed at one blue/green slot: every "{port}" in the target
  // and the command replaced by `port`.
  ProbeSpec ForPort(int port) const;
};

// components.<service>.traffic: the service is reached through a traffic
// component (kind traffic), and changes release without an outage.
// Blue/green: the service runs as up to two instances ("slots"), each on its
// own port from `ports`; a deploy starts the new release in the idle slot,
// gates on its health, then routes `upstream` to it; the replaced one keeps
// running for `keep_previous_ms`, so that a rollback inside that window is a
// switch back. The command, the environment and the health probe see the
// slot's port as {port} (and the process as BACKSTOP_PORT).
struct ServiceTrafficSpec {
  std::string component;  // the traffic component that routes to this service
  std::string upstream;   // the upstream it routes; default: the service's name
  TrafficStrategy strategy = TrafficStrategy::kBlueGreen;
  std::array<int, 2> ports{};          // blue, green: two distinct ports
  int64_t keep_previous_ms = 600'000;  // 10m
  SourcePos pos;
};

struct ComponentSpec {
  std::string name;
  ComponentKind kind = ComponentKind::kService;
  std::string driver;  // a name in the DriverCatalog the spec was parsed with
  std::vector<std::string> depends_on;
  ProbeSpec health;
  // Driver-specific keys, validated against the driver's schema. Durations
  // are converted to milliseconds (integers), percentages to numbers,
  // relative paths (schema type kPath) made absolute against the spec's directory.
  nlohmann::json settings = nlohmann::json::object();
  std::optional<ServiceTrafficSpec> traffic;  // services only
  SourcePos pos;
};

struct TriggerSpec {
  std::string name;
  std::string component;  // empty: every component the signal applies to
  Signal signal = Signal::kHealth;
  std::string metric;   // error_rate from a Prometheus counter: "errors_total/requests_total"
  int consecutive = 0;  // 0: not a consecutive-count rule
  std::optional<double> above;  // in the signal's unit: ms for times, percent for rates
  std::optional<double> below;
  int64_t for_ms = 0;
  int64_t window_ms = 0;              // ratios over a window (error_rate)
  int64_t keep_firing_for_ms = 0;     // hysteresis
  std::string missing_data = "fail";  // fail | ignore | keep
  TriggerAction action = TriggerAction::kAlert;
  SourcePos pos;
};

struct DecisionRule {
  std::string scenario;
  std::vector<std::string> triggers;  // trigger names that select this row
  MatrixScope scope = MatrixScope::kComponent;
  std::string procedure;  // free text shown in plans and reports
  int64_t recovery_min_ms = 0;
  int64_t recovery_max_ms = 0;  // the recovery-time target
  SourcePos pos;
};

struct DrillSpec {
  std::string name;
  std::string scenario;   // a DecisionRule scenario or a built-in fault
  std::string component;  // empty: the drill picks (rotating)
  std::string schedule;   // weekly | monthly | quarterly | annually | a cron expression
  std::string environment;
  SourcePos pos;
};

struct NotifySpec {
  std::string name;
  std::string type;  // webhook | slack | command | log
  std::string url;   // webhook, slack (may hold a token: never logged)
  std::vector<std::string> command;
  // Webhook signatures (HMAC-SHA256 over the body): where the key is, never
  // the key itself. A relative file is resolved against the spec's folder.
  std::string secret_file;
  std::string secret_env;
  std::vector<std::string> on;  // event names (NotifyEventNames()); all when `on` is absent
  SourcePos pos;
};

// The event names a notifier's `on:` accepts, in the order docs/notify.md
// lists them ("rollback_started", "trigger_firing", ...).
const std::vector<std::string>& NotifyEventNames();

// How many restore points of each age `backstop prune` keeps, in the manner
// of restic's `forget --keep-*`: the newest `last`, then the newest of each
// of the last `hourly` hours (days, ISO weeks, months, UTC) that have one.
// A count of 0 keeps none by that rule. Empty (every count 0): no policy.
struct KeepPolicy {
  int last = 0;
  int hourly = 0;
  int daily = 0;
  int weekly = 0;
  int monthly = 0;
  bool empty() const { return last + hourly + daily + weekly + monthly == 0; }
};

// `restore_points:` — restore points taken without anyone thinking of them.
struct RestorePointsSpec {
  // `backstop watch` takes one of the whole environment this often (0: never).
  int64_t every_ms = 0;
  KeepPolicy keep;  // applied by `backstop prune` and after each scheduled one
  SourcePos pos;
};

// `performance:` — how restore points record a performance baseline and how
// `backstop verify --performance` (and a rollback's last verification)
// compares the present with it (seed 4.3). Every key has a default, so the
// block may be left out.
struct PerformanceSpec {
  int samples = 20;  // probes or query runs per measurement (p50/p95 over them)
  // How much worse than the baseline a metric may be before it is degraded:
  // latency (probe p50/p95) and query times may grow by these percentages,
  // throughput (NATS publish/consume msg/s) may fall by its percentage.
  double latency_tolerance_pct = 50;
  double query_tolerance_pct = 50;
  double throughput_tolerance_pct = 30;
  // Latency or query times that grew by less than this many milliseconds are
  // not degraded whatever the ratio: 0.3 ms becoming 0.6 ms is noise.
  int64_t min_change_ms = 5;
  // An absolute ceiling for latency and query times, as the seed's "< 1000 ms"
  // (0: none): a metric above it is degraded even without a baseline.
  int64_t max_latency_ms = 0;
  int64_t nats_messages = 1000;     // the seed's `nats bench --msgs=1000`
  int64_t nats_message_size = 256;  // and `--size=256`
  SourcePos pos;
};

// `fallback:` (seed 5.3): the standby that `backstop fallback`, and the
// decision matrix's `fallback` scope in `backstop watch`, send traffic to when
// everything else failed: an older environment, a maintenance page, another
// host. Never switched to unless `health` passes.
struct FallbackSpec {
  std::string traffic;               // the traffic component that switches
  std::string upstream;              // the upstream switched; default: see the parser
  std::vector<std::string> servers;  // `upstreams:` in the file: "host:port" of the standby
  ProbeSpec health;                  // the standby's health check (required)
  SourcePos pos;
};

// `store:` with a remote part (docs/store.md): restore points kept off this
// host too. `url:` at the top of the store section makes the remote the store
// and the local directory its cache; `replicate_to:` keeps a full local store
// and a copy. Either way a restore point is taken into the local store first
// and replicated in the background (`backstop watch`, `backstop store sync`).
// Credentials are never in the spec (the environment or the AWS shared
// credentials file); the encryption key is named by its file.
struct RemoteStoreSpec {
  enum class Role { kPrimary, kReplica };
  Role role = Role::kReplica;
  std::string url;       // "s3://bucket/prefix" or "file:///absolute/path"
  std::string endpoint;  // S3-compatible service ("http://127.0.0.1:9000"); empty: AWS
  std::string region;    // empty: us-east-1
  std::string key_file;  // absolute; empty: BACKSTOP_STORE_KEY
  bool encrypt = true;
  SourcePos pos;
};

struct Spec {
  std::string path;      // absolute path of the spec file
  std::string base_dir;  // its directory: relative paths in the spec resolve against it
  std::string environment;
  bool requires_confirm = false;                // `protected:`; defaults to true for "production"
  std::string state_dir;                        // default <base_dir>/.backstop
  std::string store_path;                       // default <state_dir>/store
  std::optional<RemoteStoreSpec> remote_store;  // `store: {url: ...}` or `replicate_to:`
  // Largest data loss a rollback may cause without --accept-data-loss.
  uint64_t max_data_loss_rows = 0;
  uint64_t max_data_loss_messages = 0;
  std::vector<std::string> component_order;  // as written in the file
  std::map<std::string, ComponentSpec> components;
  std::vector<TriggerSpec> triggers;  // the seed's defaults when the file names none
  bool triggers_defaulted = false;
  std::vector<DecisionRule> decision_matrix;  // the seed's table when the file has none
  bool decision_matrix_defaulted = false;
  std::vector<DrillSpec> drills;
  std::vector<NotifySpec> notify;
  RestorePointsSpec restore_points;
  PerformanceSpec performance;
  std::optional<FallbackSpec> fallback;

  const ComponentSpec* Find(const std::string& name) const;
};

class DriverCatalog;  // spec/driver_catalog.h

// The largest spec file Backstop reads (4 MiB): far more than any real
// environment needs, small enough that parsing it stays quick.
constexpr uint64_t kMaxSpecBytes = uint64_t{4} << 20;

// The text of the spec file at `path`. NotFound when it does not exist;
// InvalidArgument (exit 2) when it is not a regular file (a directory, a
// device such as /dev/zero, a pipe), is larger than kMaxSpecBytes, or cannot
// be read. Never reads more than kMaxSpecBytes + 1 bytes.
Result<std::string> ReadSpecFile(const std::string& path);

// Reads and validates `path` against `drivers` (the command line and the
// daemon pass DriverRegistry::Global()). On failure the Status message lists
// every error, one per line, with positions.
Result<Spec> LoadSpec(const std::string& path, const DriverCatalog& drivers);
// Same, from text; `filename` is used in positions and to resolve relative
// paths. `drivers` supplies the driver names, kinds and setting schemas.
Result<Spec> ParseSpec(const std::string& text, const std::string& filename,
                       const DriverCatalog& drivers);
// The errors alone (empty when the spec is valid), for `backstop check --output json`.
std::vector<SpecError> CheckSpecText(const std::string& text, const std::string& filename,
                                     const DriverCatalog& drivers);

// The seed's eight triggers and its decision matrix.
std::vector<TriggerSpec> DefaultTriggers();
std::vector<DecisionRule> DefaultDecisionMatrix();

// Starter specs for `backstop init --example NAME`. NotFound for unknown names.
Result<std::string> ExampleSpec(const std::string& name);

}  // namespace backstop
