// Signals: what the watch daemon feeds the trigger rules (rules.h), derived
// from probe outcomes, a service's Prometheus /metrics page and /proc.
//
//   health        1 pass / 0 fail; missing when the probe could not be run at all
//                 (no probe, bad configuration: state unknown). A timeout is a fail.
//   latency       probe latency in ms (a timeout reports the time waited)
//   unreachable   1 reached / 0 not reached (refused, connect timeout, unresolved)
//   error_rate    percent; from a service's /metrics counters when a trigger
//                 names `metric: errors/total`, else from the probe results
//                 themselves (cumulative probe and failure counts)
//   cpu, memory   percent, for process-driver services (from /proc, like the
//                 process driver's Health signals cpu_percent / memory_percent)
//   connect_time  ms, when the health result carries connect_time_ms (PostgreSQL):
//                 the time the connection took, and while connections fail, the
//                 time since the first failed attempt of the outage began. An
//                 attempt gives up after its connect timeout (10 s by default), so
//                 without this a `connect_time above 30s` trigger (the seed's
//                 database_timeout) could never fire.
//   disconnected  ms, when the health result carries disconnected_ms (NATS)
//   memory        percent of the memory the process can use: RSS over its
//                 cgroup's memory.max when that is lower, else over RSS plus the
//                 machine's MemAvailable (RSS over all of RAM never reaches the
//                 seed's 95%: the kernel and the OOM killer get there first)
//
// Thread-safety: the free functions are pure; SignalDeriver and
// ProcessSampler are not thread-safe (the daemon's control thread owns them).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "drivers/driver.h"
#include "spec/spec.h"
#include "watch/rules.h"

namespace backstop {

// --- Prometheus text exposition format ---------------------------------------

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses the text format (version 0.0.4): comments and # HELP / # TYPE lines
// are skipped, every sample line must be `name{labels} value [timestamp]`.
// InvalidArgument naming the line on malformed input.
Result<std::vector<PromSample>> ParsePrometheusText(std::string_view text);

// A trigger's `metric: errors/total` setting.
struct MetricRatio {
  std::string errors;
  std::string total;
};
Result<MetricRatio> ParseMetricRatio(const std::string& metric);

// The sum over every label set of metric `name`; when no sample has exactly
// that name, of the metrics whose name ends with "_" + name (so
// "errors_total" finds "demo_errors_total"). nullopt when none matches.
std::optional<double> SumMetric(const std::vector<PromSample>& samples, const std::string& name);

// Where a component's /metrics page is: the origin of its HTTP health URL plus
// "/metrics". Empty when the component has no HTTP probe.
std::string MetricsUrlFor(const ComponentSpec& c);

// --- Process statistics --------------------------------------------------------

// Percent of the memory a process can use (see `memory` above): `rss` over
// the smaller of `cgroup_limit` (when set) and rss + `available`.
double MemoryPercentOfUsable(double rss, double available, std::optional<double> cgroup_limit);
// The machine's MemAvailable from /proc/meminfo (read through `fs`), in
// bytes; nullopt when unknown.
std::optional<double> ReadMemAvailable(FileSystem* fs);
// The lowest memory.max (cgroup v2) on the path of `pid`'s cgroup, in bytes;
// nullopt when there is none ("max" everywhere, or no cgroup v2).
std::optional<double> ReadCgroupMemoryLimit(FileSystem* fs, int pid);

// CPU and memory of a process-driver service, read from the record the
// process driver keeps (<state_dir>/components/<name>/process.json: pid and
// start_ticks) and /proc/<pid>/stat, through `fs` (the daemon's Env). A pid
// whose start time differs from the record is not the service (recycled) and
// counts as exited.
class ProcessSampler {
 public:
  struct Reading {
    bool recorded = false;  // a process.json exists
    bool alive = false;     // and its process runs
    int pid = 0;
    std::optional<double> cpu_percent;  // needs two readings of the same pid
    double memory_percent = 0;
    double memory_bytes = 0;
  };
  Reading Read(FileSystem* fs, const std::string& state_dir, const std::string& component,
               int64_t now_us);

 private:
  struct Last {
    int pid = 0;
    uint64_t ticks = 0;
    int64_t at_us = 0;
  };
  std::map<std::string, Last> last_;
};

// --- Samples for the rules ------------------------------------------------------

// Turns one probe outcome of one component into rule samples. Keeps, per
// component, the cumulative probe and failure counts for error_rate.
// The integrity signal's view of a data component's invariants
// (Driver::CheckInvariants): pass when every check passed, fail naming those
// that did not, unknown when they could not run (which gives no sample).
HealthResult IntegrityHealth(const Result<std::vector<IntegrityCheck>>& checks);

class SignalDeriver {
 public:
  // `error_rate_from_probes`: feed error_rate from probe results (false when
  // the component's error rate comes from its /metrics page instead).
  std::vector<Sample> FromHealth(const std::string& component, const HealthResult& health,
                                 bool reachable, bool reachability_known, int64_t t_us,
                                 bool error_rate_from_probes);
  // An error_rate sample from a scraped /metrics page; a page that could not
  // be fetched or lacks the counters gives a missing sample.
  Sample FromMetrics(const std::string& component, const MetricRatio& ratio, bool fetched,
                     const std::string& body, int64_t t_us, std::string* problem);

 private:
  struct Counts {
    double total = 0;
    double errors = 0;
  };
  // The connect_time sample: what the attempt took, or how long attempts have
  // been failing.
  double ConnectTime(const std::string& component, const HealthResult& health, bool reachable,
                     double connect_ms, int64_t t_us);

  std::map<std::string, Counts> probe_counts_;
  std::map<std::string, Counts> last_metrics_;
  std::map<std::string, int64_t> connect_failing_since_us_;  // per component, while failing
};

}  // namespace backstop
