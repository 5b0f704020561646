// Signal derivation. See signals.h.
#include "watch/signals.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/proc_stat.h"

namespace backstop {
namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

void SkipBlanks(std::string_view s, size_t* i) {
  while (*i < s.size() && (s[*i] == ' ' || s[*i] == '\t')) ++*i;
}

std::optional<double> ParseValue(std::string_view text) {
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "+Inf" || text == "Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  std::string copy(text);
  char* end = nullptr;
  double v = std::strtod(copy.c_str(), &end);
  if (end == copy.c_str() || *end != '\0') return std::nullopt;
  return v;
}

// Parses one sample line into `out`; returns an error message or "".
std::string ParseLine(std::string_view line, PromSample* out) {
  size_t i = 0;
  SkipBlanks(line, &i);
  size_t start = i;
  if (i >= line.size() || !IsNameStart(line[i])) return "expected a metric name";
  while (i < line.size() && IsNameChar(line[i])) ++i;
  out->name = std::string(line.substr(start, i - start));
  SkipBlanks(line, &i);
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      SkipBlanks(line, &i);
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      size_t ls = i;
      if (i >= line.size() || !IsNameStart(line[i])) return "expected a label name";
      while (i < line.size() && IsNameChar(line[i])) ++i;
      std::string label(line.substr(ls, i - ls));
      SkipBlanks(line, &i);
      if (i >= line.size() || line[i] != '=') return "expected '=' after label " + label;
      ++i;
      SkipBlanks(line, &i);
      if (i >= line.size() || line[i] != '"') return "expected a quoted value for label " + label;
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\' && i < line.size()) {
          char e = line[i++];
          value += e == 'n' ? '\n' : e;
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (!closed) return "unterminated value of label " + label;
      out->labels[label] = value;
      SkipBlanks(line, &i);
      if (i < line.size() && line[i] == ',') ++i;
    }
  }
  SkipBlanks(line, &i);
  size_t vs = i;
  while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
  auto value = ParseValue(line.substr(vs, i - vs));
  if (!value) return "bad sample value '" + std::string(line.substr(vs, i - vs)) + "'";
  out->value = *value;
  SkipBlanks(line, &i);
  if (i < line.size()) {  // optional timestamp (integer milliseconds)
    size_t ts = i;
    if (line[i] == '-') ++i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
    if (i == ts) return "unexpected text after the value";
    SkipBlanks(line, &i);
    if (i < line.size()) return "unexpected text after the timestamp";
  }
  return "";
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Result<std::vector<PromSample>> ParsePrometheusText(std::string_view text) {
  std::vector<PromSample> out;
  size_t pos = 0;
  int line_no = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t i = 0;
    SkipBlanks(line, &i);
    if (i == line.size() || line[i] == '#') continue;
    PromSample s;
    std::string err = ParseLine(line, &s);
    if (!err.empty()) {
      return Status::InvalidArgument("metrics line " + std::to_string(line_no) + ": " + err +
                                     ": '" + std::string(line.substr(0, 200)) + "'");
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<MetricRatio> ParseMetricRatio(const std::string& metric) {
  auto slash = metric.find('/');
  MetricRatio r;
  if (slash != std::string::npos) {
    r.errors = metric.substr(0, slash);
    r.total = metric.substr(slash + 1);
  }
  auto valid = [](const std::string& n) {
    if (n.empty() || !IsNameStart(n[0])) return false;
    for (char c : n) {
      if (!IsNameChar(c)) return false;
    }
    return true;
  };
  if (!valid(r.errors) || !valid(r.total)) {
    return Status::InvalidArgument("metric '" + metric +
                                   "' is not a ratio of two counters; expected "
                                   "errors_metric/total_metric, e.g. errors_total/requests_total");
  }
  return r;
}

std::optional<double> SumMetric(const std::vector<PromSample>& samples, const std::string& name) {
  double exact = 0, suffixed = 0;
  bool has_exact = false, has_suffixed = false;
  const std::string suffix = "_" + name;
  for (const auto& s : samples) {
    if (s.name == name) {
      exact += s.value;
      has_exact = true;
    } else if (EndsWith(s.name, suffix)) {
      suffixed += s.value;
      has_suffixed = true;
    }
  }
  if (has_exact) return exact;
  if (has_suffixed) return suffixed;
  return std::nullopt;
}

std::string MetricsUrlFor(const ComponentSpec& c) {
  if (c.health.type != ProbeSpec::Type::kHttp) return "";
  const std::string& url = c.health.target;
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  auto path = url.find('/', scheme + 3);
  std::string origin = path == std::string::npos ? url : url.substr(0, path);
  // Drop a query or fragment that followed the authority directly.
  auto q = origin.find_first_of("?#", scheme + 3);
  if (q != std::string::npos) origin = origin.substr(0, q);
  return origin + "/metrics";
}

// --- ProcessSampler ---------------------------------------------------------------

ProcessSampler::Reading ProcessSampler::Read(FileSystem* fs, const std::string& state_dir,
                                             const std::string& component, int64_t now_us) {
  Reading r;
  const std::string path =
      JoinPath(JoinPath(JoinPath(state_dir, "components"), component), "process.json");
  auto text = fs->ReadFile(path);
  if (!text.ok()) {
    last_.erase(component);
    return r;
  }
  nlohmann::json rec;
  try {
    rec = nlohmann::json::parse(*text);
  } catch (const std::exception&) {
    return r;  // being replaced right now; try again next time
  }
  r.recorded = true;
  r.pid = rec.value("pid", 0);
  const uint64_t want_ticks = rec.value("start_ticks", uint64_t{0});
  auto stat = r.pid > 0 ? ReadProcStat(fs, r.pid) : Result<ProcStat>(Status::NotFound("no pid"));
  // Exited (a zombie not yet reaped is gone too), or the pid now names another process.
  if (!stat.ok() || stat->state == 'Z' || stat->state == 'X' ||
      (want_ticks != 0 && stat->start_ticks != want_ticks)) {
    last_.erase(component);
    return r;
  }
  const uint64_t cpu = stat->utime_ticks + stat->stime_ticks;
  r.alive = true;
  r.memory_bytes =
      static_cast<double>(stat->rss_pages) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  auto available = ReadMemAvailable(fs);
  auto total = ReadMemInfoBytes(fs, "MemTotal");
  if (available) {
    r.memory_percent =
        MemoryPercentOfUsable(r.memory_bytes, *available, ReadCgroupMemoryLimit(fs, r.pid));
  } else if (total.ok() && *total > 0) {
    r.memory_percent = 100.0 * r.memory_bytes / static_cast<double>(*total);
  }
  auto it = last_.find(component);
  if (it != last_.end() && it->second.pid == r.pid && now_us > it->second.at_us &&
      cpu >= it->second.ticks) {
    const double cpu_s =
        static_cast<double>(cpu - it->second.ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    r.cpu_percent = 100.0 * cpu_s / (static_cast<double>(now_us - it->second.at_us) / 1e6);
  }
  last_[component] = Last{r.pid, cpu, now_us};
  return r;
}

double MemoryPercentOfUsable(double rss, double available, std::optional<double> cgroup_limit) {
  double usable = rss + std::max(0.0, available);
  if (cgroup_limit && *cgroup_limit > 0) usable = std::min(usable, *cgroup_limit);
  if (usable <= 0) return 0;
  return std::min(100.0, 100.0 * rss / usable);
}

std::optional<double> ReadMemAvailable(FileSystem* fs) {
  auto bytes = ReadMemInfoBytes(fs, "MemAvailable");
  if (!bytes.ok()) return std::nullopt;
  return static_cast<double>(*bytes);
}

std::optional<double> ReadCgroupMemoryLimit(FileSystem* fs, int pid) {
  auto cgroups = fs->ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  if (!cgroups.ok()) return std::nullopt;
  std::istringstream f(*cgroups);
  std::string line, path;
  while (std::getline(f, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);  // cgroup v2
  }
  if (path.empty() || path.find("..") != std::string::npos) return std::nullopt;
  std::optional<double> lowest;
  // memory.max of the process's cgroup and of every ancestor: the lowest binds.
  for (;;) {
    auto max =
        fs->ReadFile("/sys/fs/cgroup" + (path == "/" ? std::string() : path) + "/memory.max");
    std::istringstream m(max.ok() ? *max : std::string());
    std::string value;
    if (m >> value && value != "max") {
      double v = std::strtod(value.c_str(), nullptr);
      if (v > 0 && (!lowest || v < *lowest)) lowest = v;
    }
    if (path == "/" || path.empty()) break;
    size_t slash = path.rfind('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return lowest;
}

// --- SignalDeriver ------------------------------------------------------------------

double SignalDeriver::ConnectTime(const std::string& component, const HealthResult& h,
                                  bool reachable, double connect_ms, int64_t t_us) {
  // Failed to connect: the driver says the server did not accept the
  // session, or (a plain probe, a timed-out attempt) it was not reached.
  bool failed = false;
  if (!h.pass()) {
    auto accepting = h.signals.find("accepting");
    failed = accepting != h.signals.end() ? accepting->second == 0 : !reachable;
  }
  if (!failed) {
    connect_failing_since_us_.erase(component);
    return connect_ms;
  }
  // The outage began when its first failed attempt started.
  auto [it, first] = connect_failing_since_us_.emplace(
      component, t_us - static_cast<int64_t>(connect_ms * 1000.0));
  (void)first;
  return std::max(connect_ms, static_cast<double>(t_us - it->second) / 1000.0);
}

std::vector<Sample> SignalDeriver::FromHealth(const std::string& component, const HealthResult& h,
                                              bool reachable, bool reachability_known, int64_t t_us,
                                              bool error_rate_from_probes) {
  std::vector<Sample> out;
  auto add = [&](Signal signal, double value, bool missing = false) {
    Sample s;
    s.component = component;
    s.signal = signal;
    s.t_us = t_us;
    s.value = value;
    s.missing = missing;
    out.push_back(std::move(s));
  };
  const bool unknown = h.state == HealthResult::State::kUnknown;
  add(Signal::kHealth, h.pass() ? 1 : 0, unknown);
  if (!unknown) {
    add(Signal::kLatency, static_cast<double>(h.latency_ms));
    if (reachability_known) add(Signal::kUnreachable, reachable ? 1 : 0);
    if (error_rate_from_probes) {
      Counts& c = probe_counts_[component];
      c.total += 1;
      if (!h.pass()) c.errors += 1;
      Sample s;
      s.component = component;
      s.signal = Signal::kErrorRate;
      s.t_us = t_us;
      s.value = h.pass() ? 0 : 100;
      s.counter_total = c.total;
      s.counter_errors = c.errors;
      out.push_back(std::move(s));
    }
  }
  if (auto it = h.signals.find("connect_time_ms"); it != h.signals.end() && !unknown) {
    // Only data components report a connect time meaningful for database_timeout;
    // the rules decide which components a trigger applies to.
    add(Signal::kConnectTime, ConnectTime(component, h, reachable, it->second, t_us));
  }
  if (auto it = h.signals.find("disconnected_ms"); it != h.signals.end()) {
    add(Signal::kDisconnected, it->second);
  }
  if (auto it = h.signals.find("cpu_percent"); it != h.signals.end()) add(Signal::kCpu, it->second);
  if (auto it = h.signals.find("memory_percent"); it != h.signals.end()) {
    add(Signal::kMemory, it->second);
  }
  return out;
}

Sample SignalDeriver::FromMetrics(const std::string& component, const MetricRatio& ratio,
                                  bool fetched, const std::string& body, int64_t t_us,
                                  std::string* problem) {
  Sample s;
  s.component = component;
  s.signal = Signal::kErrorRate;
  s.t_us = t_us;
  s.missing = true;
  if (!fetched) {
    if (problem) *problem = "metrics page not fetched";
    return s;
  }
  auto parsed = ParsePrometheusText(body);
  if (!parsed.ok()) {
    if (problem) *problem = parsed.status().message();
    return s;
  }
  auto errors = SumMetric(*parsed, ratio.errors);
  auto total = SumMetric(*parsed, ratio.total);
  if (!errors || !total) {
    if (problem) {
      *problem = "metrics page has no " + std::string(!errors ? ratio.errors : ratio.total);
    }
    return s;
  }
  s.missing = false;
  s.counter_errors = *errors;
  s.counter_total = *total;
  // The rate since the previous scrape; a counter that went down was reset
  // (the service restarted): count from zero.
  Counts& last = last_metrics_[component];
  double d_total = *total - last.total, d_errors = *errors - last.errors;
  if (d_total < 0 || d_errors < 0) {
    d_total = *total;
    d_errors = *errors;
  }
  s.value = d_total > 0 ? 100.0 * d_errors / d_total : 0;
  last.total = *total;
  last.errors = *errors;
  return s;
}

HealthResult IntegrityHealth(const Result<std::vector<IntegrityCheck>>& checks) {
  HealthResult r;
  if (!checks.ok()) {
    r.state = HealthResult::State::kUnknown;
    r.detail = "integrity checks could not run: " + checks.status().message();
    return r;
  }
  std::string failed;
  for (const auto& check : *checks) {
    if (check.passed) continue;
    failed += (failed.empty() ? "" : "; ") + check.name + ": " + check.detail;
  }
  r.state = failed.empty() ? HealthResult::State::kPass : HealthResult::State::kFail;
  r.detail = failed.empty() ? std::to_string(checks->size()) + " integrity checks passed"
                            : "integrity check failed: " + failed;
  return r;
}

}  // namespace backstop
