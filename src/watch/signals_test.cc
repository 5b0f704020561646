#include "watch/signals.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>

#include "testing/test_env.h"

namespace backstop {
namespace {

TEST(PrometheusTextTest, ParsesSamplesLabelsAndComments) {
  const std::string text =
      "# HELP http_requests_total Requests.\n"
      "# TYPE http_requests_total counter\n"
      "http_requests_total{method=\"get\",code=\"200\"} 1027 1395066363000\n"
      "http_requests_total{method=\"post\",code=\"500\"} 3\n"
      "\n"
      "  up 1\n"
      "weird{path=\"a\\\"b\\\\c\\nd\",} +Inf\r\n"
      "nan_metric NaN\n"
      "neg -1.5e3";
  auto parsed = ParsePrometheusText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->size(), 6u);
  EXPECT_EQ((*parsed)[0].name, "http_requests_total");
  EXPECT_EQ((*parsed)[0].labels.at("method"), "get");
  EXPECT_EQ((*parsed)[0].labels.at("code"), "200");
  EXPECT_EQ((*parsed)[0].value, 1027);
  EXPECT_EQ((*parsed)[2].name, "up");
  EXPECT_EQ((*parsed)[3].labels.at("path"), "a\"b\\c\nd");
  EXPECT_TRUE(std::isinf((*parsed)[3].value));
  EXPECT_TRUE(std::isnan((*parsed)[4].value));
  EXPECT_EQ((*parsed)[5].value, -1500);
}

TEST(PrometheusTextTest, RejectsMalformedLinesWithTheLineNumber) {
  for (const char* bad :
       {"ok 1\n9starts_with_digit 1\n", "ok 1\nmetric{a=\"x} 1\n", "ok 1\nmetric not_a_number\n",
        "ok 1\nmetric{a=x} 1\n", "ok 1\nmetric 1 2 3\n"}) {
    auto parsed = ParsePrometheusText(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("line 2"), std::string::npos)
        << parsed.status().message();
  }
}

TEST(MetricRatioTest, ParsesAndValidates) {
  auto r = ParseMetricRatio("errors_total/requests_total");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->errors, "errors_total");
  EXPECT_EQ(r->total, "requests_total");
  EXPECT_FALSE(ParseMetricRatio("errors_total").ok());
  EXPECT_FALSE(ParseMetricRatio("/requests_total").ok());
  EXPECT_FALSE(ParseMetricRatio("errors total/requests").ok());
}

TEST(SumMetricTest, ExactNameFirstThenSuffix) {
  auto parsed = ParsePrometheusText(
      "demo_errors_total 4\nother_errors_total 1\nerrors_total{a=\"1\"} 2\nerrors_total{a=\"2\"} "
      "3\n"
      "demo_requests_total 100\n");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(SumMetric(*parsed, "errors_total"), 5);      // exact name wins, summed over label sets
  EXPECT_EQ(SumMetric(*parsed, "requests_total"), 100);  // only demo_requests_total ends so
  EXPECT_EQ(SumMetric(*parsed, "demo_errors_total"), 4);
  EXPECT_FALSE(SumMetric(*parsed, "latency_seconds").has_value());
}

TEST(MetricsUrlTest, OriginOfTheHealthUrl) {
  ComponentSpec c;
  c.health.type = ProbeSpec::Type::kHttp;
  c.health.target = "http://127.0.0.1:3000/health?x=1";
  EXPECT_EQ(MetricsUrlFor(c), "http://127.0.0.1:3000/metrics");
  c.health.target = "http://[::1]:8080";
  EXPECT_EQ(MetricsUrlFor(c), "http://[::1]:8080/metrics");
  c.health.target = "https://svc.example:8443/a/b/healthz";
  EXPECT_EQ(MetricsUrlFor(c), "https://svc.example:8443/metrics");
  c.health.type = ProbeSpec::Type::kTcp;
  c.health.target = "127.0.0.1:5432";
  EXPECT_EQ(MetricsUrlFor(c), "");
}

HealthResult Health(HealthResult::State state, int64_t latency_ms) {
  HealthResult h;
  h.state = state;
  h.latency_ms = latency_ms;
  return h;
}

const Sample* Find(const std::vector<Sample>& samples, Signal signal) {
  for (const auto& s : samples) {
    if (s.signal == signal) return &s;
  }
  return nullptr;
}

TEST(SignalDeriverTest, HealthLatencyReachabilityAndErrorRateFromProbes) {
  SignalDeriver d;
  auto pass = d.FromHealth("svc", Health(HealthResult::State::kPass, 12), true, true, 100, true);
  ASSERT_NE(Find(pass, Signal::kHealth), nullptr);
  EXPECT_EQ(Find(pass, Signal::kHealth)->value, 1);
  EXPECT_FALSE(Find(pass, Signal::kHealth)->missing);
  EXPECT_EQ(Find(pass, Signal::kLatency)->value, 12);
  EXPECT_EQ(Find(pass, Signal::kUnreachable)->value, 1);
  EXPECT_EQ(Find(pass, Signal::kErrorRate)->counter_total, 1);
  EXPECT_EQ(Find(pass, Signal::kErrorRate)->counter_errors, 0);

  auto fail = d.FromHealth("svc", Health(HealthResult::State::kFail, 1000), false, true, 200, true);
  EXPECT_EQ(Find(fail, Signal::kHealth)->value, 0);
  EXPECT_EQ(Find(fail, Signal::kUnreachable)->value, 0);
  EXPECT_EQ(Find(fail, Signal::kErrorRate)->counter_total, 2);
  EXPECT_EQ(Find(fail, Signal::kErrorRate)->counter_errors, 1);
  EXPECT_EQ(Find(fail, Signal::kErrorRate)->value, 100);
  EXPECT_EQ(Find(fail, Signal::kHealth)->t_us, 200);

  // A probe that could not run at all is missing data, not a failure.
  auto unknown =
      d.FromHealth("svc", Health(HealthResult::State::kUnknown, 0), false, true, 300, true);
  ASSERT_NE(Find(unknown, Signal::kHealth), nullptr);
  EXPECT_TRUE(Find(unknown, Signal::kHealth)->missing);
  EXPECT_EQ(Find(unknown, Signal::kLatency), nullptr);
  EXPECT_EQ(Find(unknown, Signal::kErrorRate), nullptr);

  // No unreachable signal where reachability means nothing (exec probes), no
  // error_rate from probes when it comes from /metrics.
  auto exec = d.FromHealth("job", Health(HealthResult::State::kPass, 3), true, false, 400, false);
  EXPECT_EQ(Find(exec, Signal::kUnreachable), nullptr);
  EXPECT_EQ(Find(exec, Signal::kErrorRate), nullptr);
}

TEST(SignalDeriverTest, DriverSignalsBecomeRuleSignals) {
  SignalDeriver d;
  HealthResult h = Health(HealthResult::State::kFail, 31'000);
  h.signals["connect_time_ms"] = 31'000;
  h.signals["disconnected_ms"] = 65'000;
  h.signals["cpu_percent"] = 93.5;
  h.signals["memory_percent"] = 12;
  auto s = d.FromHealth("x", h, false, true, 1, false);
  EXPECT_EQ(Find(s, Signal::kConnectTime)->value, 31'000);
  EXPECT_EQ(Find(s, Signal::kDisconnected)->value, 65'000);
  EXPECT_EQ(Find(s, Signal::kCpu)->value, 93.5);
  EXPECT_EQ(Find(s, Signal::kMemory)->value, 12);
}

TEST(SignalDeriverTest, ErrorRateFromMetricsCounters) {
  SignalDeriver d;
  MetricRatio r{"errors_total", "requests_total"};
  std::string problem;
  Sample a =
      d.FromMetrics("svc", r, true, "demo_requests_total 100\ndemo_errors_total 2\n", 10, &problem);
  EXPECT_FALSE(a.missing) << problem;
  EXPECT_EQ(a.counter_total, 100);
  EXPECT_EQ(a.counter_errors, 2);
  EXPECT_DOUBLE_EQ(a.value, 2.0);
  Sample b = d.FromMetrics("svc", r, true, "demo_requests_total 200\ndemo_errors_total 22\n", 20,
                           &problem);
  EXPECT_DOUBLE_EQ(b.value, 20.0);  // 20 errors in the last 100 requests
  // A restart resets the counters: the rate counts from zero.
  Sample c =
      d.FromMetrics("svc", r, true, "demo_requests_total 10\ndemo_errors_total 1\n", 30, &problem);
  EXPECT_DOUBLE_EQ(c.value, 10.0);
  // No new requests: no errors either.
  Sample idle =
      d.FromMetrics("svc", r, true, "demo_requests_total 10\ndemo_errors_total 1\n", 40, &problem);
  EXPECT_DOUBLE_EQ(idle.value, 0.0);

  Sample absent = d.FromMetrics("svc", r, true, "demo_requests_total 10\n", 50, &problem);
  EXPECT_TRUE(absent.missing);
  EXPECT_NE(problem.find("errors_total"), std::string::npos);
  Sample garbage = d.FromMetrics("svc", r, true, "not a metrics page {\n", 60, &problem);
  EXPECT_TRUE(garbage.missing);
  Sample unfetched = d.FromMetrics("svc", r, false, "", 70, &problem);
  EXPECT_TRUE(unfetched.missing);
}

uint64_t OwnStartTicks() {
  std::ifstream f("/proc/self/stat");
  std::string line;
  std::getline(f, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) rest >> field;
  return std::stoull(field);
}

TEST(ProcessSamplerTest, ReadsTheRecordedProcess) {
  testing::TempDir dir;
  const std::string record = dir.Join("components/svc/process.json");
  ProcessSampler sampler;
  FileSystem* fs = Env::Default()->fs();
  EXPECT_FALSE(sampler.Read(fs, dir.path(), "svc", 1'000'000).recorded);

  testing::WriteFileOrDie(record, "{\"pid\": " + std::to_string(::getpid()) +
                                      ", \"start_ticks\": " + std::to_string(OwnStartTicks()) +
                                      "}");
  auto first = sampler.Read(fs, dir.path(), "svc", 1'000'000);
  EXPECT_TRUE(first.recorded);
  EXPECT_TRUE(first.alive);
  EXPECT_GT(first.memory_bytes, 0);
  EXPECT_GT(first.memory_percent, 0);
  EXPECT_FALSE(first.cpu_percent.has_value()) << "CPU needs two readings";
  auto second = sampler.Read(fs, dir.path(), "svc", 2'000'000);
  ASSERT_TRUE(second.cpu_percent.has_value());
  EXPECT_GE(*second.cpu_percent, 0);

  // A recycled pid (another start time) is not the service.
  testing::WriteFileOrDie(
      record, "{\"pid\": " + std::to_string(::getpid()) +
                  ", \"start_ticks\": " + std::to_string(OwnStartTicks() + 12345) + "}");
  auto recycled = sampler.Read(fs, dir.path(), "svc", 3'000'000);
  EXPECT_TRUE(recycled.recorded);
  EXPECT_FALSE(recycled.alive);
}

// /proc as the Env's file system shows it: a process and a machine that exist
// only in the test, so the figures are exact.
TEST(ProcessSamplerTest, ReadsProcThroughTheEnvFileSystem) {
  testing::TempDir dir;
  testing::FakeProcFileSystem fs(Env::Default()->fs());
  testing::WriteFileOrDie(dir.Join("components/svc/process.json"),
                          R"({"pid": 4242, "start_ticks": 987654})");
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  // utime 250 + stime 75 ticks, started at tick 987654, 1000 resident pages.
  auto stat = [](int utime) {
    return "4242 (svc) S 1 4242 4242 0 -1 4194560 1234 0 0 0 " + std::to_string(utime) +
           " 75 0 0 20 0 3 0 987654 123456789 1000 18446744073709551615 1 1 0 0 0 0 0\n";
  };
  fs.Set("/proc/4242/stat", stat(250));
  // As much available as the process holds: it uses half of what it can.
  fs.Set("/proc/meminfo", "MemTotal:       16000000 kB\nMemAvailable:   " +
                              std::to_string(static_cast<uint64_t>(1000 * page / 1024)) + " kB\n");
  ProcessSampler sampler;
  auto first = sampler.Read(&fs, dir.path(), "svc", 1'000'000);
  EXPECT_TRUE(first.alive);
  EXPECT_EQ(first.pid, 4242);
  EXPECT_EQ(first.memory_bytes, 1000 * page);
  EXPECT_DOUBLE_EQ(first.memory_percent, 50.0);

  // A cgroup limit below rss + available binds: memory.max of its cgroup.
  fs.Set("/proc/4242/cgroup", "0::/svc.slice\n");
  fs.Set("/sys/fs/cgroup/svc.slice/memory.max",
         std::to_string(static_cast<uint64_t>(1250 * page)) + "\n");
  fs.Set("/proc/4242/stat", stat(250 + static_cast<int>(::sysconf(_SC_CLK_TCK))));
  auto second = sampler.Read(&fs, dir.path(), "svc", 3'000'000);
  EXPECT_DOUBLE_EQ(second.memory_percent, 80.0);
  ASSERT_TRUE(second.cpu_percent.has_value());
  EXPECT_DOUBLE_EQ(*second.cpu_percent, 50.0);  // one second of CPU in two

  fs.Set("/proc/4242/stat", "");  // gone
  EXPECT_FALSE(sampler.Read(&fs, dir.path(), "svc", 4'000'000).alive);
}

// --- Every default trigger can fire --------------------------------------------
//
// Each case feeds what a real probe reports with the default settings (probe
// every 30 s with a 10 s timeout, PostgreSQL's 10 s connect timeout, NATS's
// disconnected time) through SignalDeriver into the seed's default triggers,
// and checks that the trigger fires.

constexpr int64_t kInterval = 30'000'000;  // the seed's 30 s, in microseconds

struct Probed {
  HealthResult health;
  bool reachable = true;
};

// True when `trigger` fires on `component` (of `kind`) within `probes`
// probes at the default interval, each producing what `probe(i)` says.
bool DefaultTriggerFires(const std::string& trigger, const std::string& component,
                         ComponentKind kind, int probes, const std::function<Probed(int)>& probe) {
  RuleEngine engine(DefaultTriggers(), {{component, kind}});
  SignalDeriver deriver;
  for (int i = 0; i < probes; ++i) {
    const int64_t t = kInterval * (i + 1);
    Probed p = probe(i);
    for (auto& sample : deriver.FromHealth(component, p.health, p.reachable, true, t,
                                           kind == ComponentKind::kService)) {
      engine.Observe(sample);
    }
    for (const auto& e : engine.Evaluate(t)) {
      if (e.trigger == trigger && e.component == component && e.to == TriggerState::kFiring) {
        return true;
      }
    }
  }
  return false;
}

TEST(DefaultTriggersFireTest, HealthCheckFailures) {
  EXPECT_TRUE(
      DefaultTriggerFires("health_check_failures", "web", ComponentKind::kService, 3, [](int) {
        HealthResult h = Health(HealthResult::State::kFail, 4);
        h.detail = "HTTP 503";
        return Probed{h, true};
      }));
}

TEST(DefaultTriggersFireTest, ResponseTimeWithinTheDefaultProbeTimeout) {
  // 6 s answers: above 5 s, below the 10 s timeout, for more than 5 minutes.
  EXPECT_TRUE(DefaultTriggerFires("response_time", "web", ComponentKind::kService, 12, [](int) {
    return Probed{Health(HealthResult::State::kPass, 6'000), true};
  }));
}

TEST(DefaultTriggersFireTest, ErrorRateFromProbeResults) {
  EXPECT_TRUE(DefaultTriggerFires("error_rate", "web", ComponentKind::kService, 8, [](int i) {
    return Probed{Health(i % 2 ? HealthResult::State::kFail : HealthResult::State::kPass, 5), true};
  }));
}

TEST(DefaultTriggersFireTest, CpuOfOneBusyCore) {
  // ProcessSampler reports CPU per core: one thread spinning is 100%.
  EXPECT_TRUE(DefaultTriggerFires("cpu_usage", "web", ComponentKind::kService, 23, [](int) {
    HealthResult h = Health(HealthResult::State::kPass, 5);
    h.signals["cpu_percent"] = 100;
    return Probed{h, true};
  }));
}

TEST(DefaultTriggersFireTest, MemoryOfAProcessThatTakesWhatIsLeft) {
  // A 16 GB machine: the service holds 14.8 GB, 0.3 GB remain available. As
  // a share of all RAM that is 92.5%, which would never pass 95% before the
  // OOM killer acts; as a share of what it can use it is 98%.
  const double gb = 1e9;
  EXPECT_LT(100.0 * 14.8 / 16, 95);
  const double percent = MemoryPercentOfUsable(14.8 * gb, 0.3 * gb, std::nullopt);
  EXPECT_GT(percent, 95);
  // Under a cgroup limit, the limit is what it can use.
  EXPECT_NEAR(MemoryPercentOfUsable(1.9 * gb, 10 * gb, 2 * gb), 95, 1e-9);
  EXPECT_TRUE(DefaultTriggerFires("memory_usage", "web", ComponentKind::kService, 12, [&](int) {
    HealthResult h = Health(HealthResult::State::kPass, 5);
    h.signals["memory_percent"] = percent;
    return Probed{h, true};
  }));
}

TEST(DefaultTriggersFireTest, DatabaseTimeoutWhenConnectsTimeOut) {
  // What PostgresDriver::Health reports when every connect gives up after
  // its 10 s connect timeout: connect_time_ms 10000, never above 30 s alone.
  EXPECT_TRUE(DefaultTriggerFires("database_timeout", "db", ComponentKind::kDatabase, 3, [](int) {
    HealthResult h = Health(HealthResult::State::kFail, 10'000);
    h.signals["connect_time_ms"] = 10'000;
    h.signals["accepting"] = 0;
    h.signals["responding"] = 0;
    h.detail = "no response: timeout expired";
    return Probed{h, false};
  }));
}

TEST(DefaultTriggersFireTest, DatabaseTimeoutWhenConnectsAreRefused) {
  // Refused at once (the server is down): 1 ms per attempt, an outage all the same.
  EXPECT_TRUE(DefaultTriggerFires("database_timeout", "db", ComponentKind::kDatabase, 3, [](int) {
    HealthResult h = Health(HealthResult::State::kFail, 1);
    h.signals["connect_time_ms"] = 1;
    h.signals["accepting"] = 0;
    h.signals["responding"] = 0;
    return Probed{h, false};
  }));
}

TEST(DefaultTriggersFireTest, DatabaseTimeoutIsNotAnOutageAfterARecovery) {
  SignalDeriver d;
  auto failing = [&](int64_t t) {
    HealthResult h = Health(HealthResult::State::kFail, 10'000);
    h.signals["connect_time_ms"] = 10'000;
    h.signals["accepting"] = 0;
    return Find(d.FromHealth("db", h, false, true, t, false), Signal::kConnectTime)->value;
  };
  EXPECT_EQ(failing(10'000'000), 10'000);
  EXPECT_EQ(failing(40'000'000), 40'000);
  HealthResult ok = Health(HealthResult::State::kPass, 3);
  ok.signals["connect_time_ms"] = 3;
  ok.signals["accepting"] = 1;
  EXPECT_EQ(
      Find(d.FromHealth("db", ok, true, true, 70'000'000, false), Signal::kConnectTime)->value, 3);
  EXPECT_EQ(failing(110'000'000), 10'000) << "a new outage counts from its own first attempt";
}

TEST(DefaultTriggersFireTest, NatsDisconnection) {
  // NatsDriver::Health: the time since the last successful connect.
  EXPECT_TRUE(
      DefaultTriggerFires("nats_disconnection", "bus", ComponentKind::kStream, 4, [](int i) {
        HealthResult h = Health(HealthResult::State::kFail, 5'000);
        h.signals["connect_time_ms"] = 5'000;
        h.signals["disconnected_ms"] = 30'000.0 * (i + 1);
        h.detail = "cannot connect to NATS at nats://127.0.0.1:4222: No Server";
        return Probed{h, false};
      }));
}

TEST(DefaultTriggersFireTest, ServiceUnreachable) {
  EXPECT_TRUE(
      DefaultTriggerFires("service_unreachable", "web", ComponentKind::kService, 4, [](int) {
        HealthResult h = Health(HealthResult::State::kFail, 0);
        h.detail = "connection refused";
        return Probed{h, false};
      }));
}

TEST(DefaultTriggersFireTest, DataIntegrity) {
  // The integrity signal comes from the watcher's scheduled checks, one
  // sample per check.
  RuleEngine engine(DefaultTriggers(), {{"db", ComponentKind::kDatabase}});
  Sample s;
  s.component = "db";
  s.signal = Signal::kIntegrity;
  s.t_us = kInterval;
  s.value = 0;
  engine.Observe(s);
  bool fired = false;
  for (const auto& e : engine.Evaluate(kInterval)) {
    fired |= e.trigger == "data_integrity" && e.to == TriggerState::kFiring;
  }
  EXPECT_TRUE(fired);
}

}  // namespace
}  // namespace backstop
