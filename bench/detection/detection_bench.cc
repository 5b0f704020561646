// detection-bench: how long after a trigger's rule is met does `backstop
// watch` report it firing? Target: within one probe interval + 100 ms.
//
// A service in this process (cpp-httplib) flips on command; the real
// `backstop watch` binary probes it (JSON logs, dry run, alert-only triggers)
// and the bench reads the daemon's log for "trigger firing":
//   immediate   health, consecutive: 1   met the moment the service answers 503
//   sustained   latency above I/2 for 2s met 2 s after the service turns slow
//               (each answer then takes 3I/4)
// Each round waits a random fraction of the interval before flipping, so the
// flip lands anywhere in the probe cycle; detection = firing time (the log's
// timestamp) - the moment the rule was met (wall clock of the flip, + 2 s).
//
//   detection-bench [--backstop PATH] [--rounds N] [--intervals 1000,200]
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <iomanip>
#include <map>
#include <mutex>
#include <random>

#include <nlohmann/json.hpp>

#include "../probes/bench_util.h"

namespace {

enum class Mode { kOk, kBad, kSlow };

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "2026-11-26T04:14:16.073Z" -> Unix milliseconds.
int64_t ParseTsMs(const std::string& ts) {
  std::tm tm{};
  std::istringstream in(ts.substr(0, 19));
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (ts.size() >= 23 && ts[19] == '.') ms += std::stoi(ts.substr(20, 3));
  return ms;
}

// Reads the daemon's JSON log lines on a thread; keeps the trigger events.
class LogReader {
 public:
  explicit LogReader(FILE* in) : in_(in), thread_([this] { Run(); }) {}
  ~LogReader() { thread_.join(); }
  // Waits for a "trigger <what>" line of `trigger` logged at or after `after_ms`.
  std::optional<int64_t> WaitFor(const std::string& msg, const std::string& trigger,
                                 int64_t after_ms, double seconds) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<int64_t> found;
    cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] {
      for (auto it = events_.begin(); it != events_.end(); ++it) {
        if (it->msg == msg && it->trigger == trigger && it->ts_ms >= after_ms) {
          found = it->ts_ms;
          events_.erase(events_.begin(), it + 1);
          return true;
        }
      }
      return false;
    });
    return found;
  }
  bool Started(double seconds) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return started_; });
  }

 private:
  struct Event {
    std::string msg, trigger;
    int64_t ts_ms;
  };
  void Run() {
    char buf[65536];
    while (std::fgets(buf, sizeof buf, in_) != nullptr) {
      auto j = nlohmann::json::parse(buf, nullptr, false);
      if (!j.is_object()) continue;
      std::lock_guard<std::mutex> lock(mu_);
      const std::string msg = j.value("msg", "");
      if (msg == "watching") started_ = true;
      if (msg == "trigger firing" || msg == "trigger resolved") {
        events_.push_back({msg, j["fields"].value("trigger", ""), ParseTsMs(j.value("ts", ""))});
      }
      cv_.notify_all();
    }
  }
  FILE* in_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  bool started_ = false;
  std::thread thread_;
};

struct Scenario {
  std::vector<double> immediate_ms, sustained_ms;
  int missed = 0;
};

Scenario RunInterval(const std::string& backstop, int interval_ms, int rounds) {
  Scenario out;
  std::atomic<Mode> mode{Mode::kOk};
  const int slow_ms = interval_ms * 3 / 4;
  httplib::Server server;
  server.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    Mode m = mode.load();
    if (m == Mode::kBad) {
      res.status = 503;
      res.set_content("unhealthy\n", "text/plain");
      return;
    }
    if (m == Mode::kSlow) std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms));
    res.set_content("ok\n", "text/plain");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread server_thread([&] { server.listen_after_bind(); });

  char dir_template[] = "/tmp/detection-bench-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  {
    std::ofstream(dir + "/app.json") << "{}\n";
    std::ofstream spec(dir + "/backstop.yaml");
    spec << "environment: bench\n"
            "components:\n"
            "  svc:\n"
            "    kind: config\n"
            "    driver: files\n"
            "    files: [app.json]\n"
            "    health: { http: \"http://127.0.0.1:"
         << port << "/health\", interval: " << interval_ms << "ms, timeout: " << interval_ms
         << "ms }\n"
            "triggers:\n"
            "  - { name: immediate, signal: health, consecutive: 1, action: alert }\n"
            "  - { name: sustained, signal: latency, above: "
         << interval_ms / 2 << "ms, for: 2s, action: alert }\n";
  }
  bench::Child watch;
  bench::Spawn({"sh", "-c",
                "exec '" + backstop + "' --spec '" + dir +
                    "/backstop.yaml' watch --dry-run --listen off --log-format json 2>&1"},
               &watch);
  LogReader log(watch.out);
  if (!log.Started(20)) {
    std::fprintf(stderr, "backstop watch did not start\n");
    std::exit(1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * interval_ms + 200));
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> phase(0, interval_ms);
  for (int r = 0; r < rounds; ++r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(phase(rng)));
    // immediate: 503 from now on.
    int64_t flip = WallMs();
    mode = Mode::kBad;
    auto fired = log.WaitFor("trigger firing", "immediate", flip, 10.0 + interval_ms / 1000.0);
    if (fired) {
      out.immediate_ms.push_back(static_cast<double>(*fired - flip));
    } else {
      ++out.missed;
    }
    mode = Mode::kOk;
    (void)log.WaitFor("trigger resolved", "immediate", flip, 10.0 + interval_ms / 1000.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(phase(rng)));
    // sustained: slow from now on; the rule is met 2 s later.
    flip = WallMs();
    mode = Mode::kSlow;
    fired = log.WaitFor("trigger firing", "sustained", flip, 15.0);
    if (fired) {
      out.sustained_ms.push_back(static_cast<double>(*fired - (flip + 2000)));
    } else {
      ++out.missed;
    }
    mode = Mode::kOk;
    (void)log.WaitFor("trigger resolved", "sustained", flip, 15.0);
    std::fprintf(stderr, "  interval %d ms: round %d/%d\n", interval_ms, r + 1, rounds);
  }
  watch.Stop();
  server.stop();
  server_thread.join();
  (void)std::system(("rm -rf '" + dir + "'").c_str());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string backstop = bench::SelfDir() + "/../backstop";
  int rounds = 10;
  std::vector<int> intervals = {1000, 200};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--backstop") {
      backstop = next();
    } else if (a == "--rounds") {
      rounds = std::stoi(next());
    } else if (a == "--intervals") {
      intervals.clear();
      std::stringstream in(next());
      for (std::string part; std::getline(in, part, ',');) intervals.push_back(std::stoi(part));
    } else {
      std::fprintf(stderr,
                   "usage: detection-bench [--backstop PATH] [--rounds N] "
                   "[--intervals 1000,200]\n");
      return 2;
    }
  }
  std::printf(
      "`backstop watch` (real binary, JSON log) against a service in the bench "
      "process; %d rounds per interval, each flip at a random point of the probe "
      "cycle. Detection = log timestamp of \"trigger firing\" - the moment the rule "
      "was met.\n\n",
      rounds);
  std::printf("| interval | rule | p50 ms | p99 ms | max ms | target ms | met |\n");
  std::printf("|---:|---|---:|---:|---:|---:|---|\n");
  bool all_met = true;
  for (int interval : intervals) {
    Scenario s = RunInterval(backstop, interval, rounds);
    const double target = interval + 100;
    auto row = [&](const char* rule, const std::vector<double>& v) {
      const double mx = v.empty() ? 0 : *std::max_element(v.begin(), v.end());
      const bool met = !v.empty() && mx <= target && s.missed == 0;
      all_met = all_met && met;
      std::printf("| %d ms | %s | %.0f | %.0f | %.0f | %.0f | %s |\n", interval, rule,
                  bench::Percentile(v, 50), bench::Percentile(v, 99), mx, target,
                  met ? "yes" : "NO");
    };
    row("health, consecutive: 1 (met at the flip)", s.immediate_ms);
    row("latency above I/2 for 2s (met 2 s after the flip)", s.sustained_ms);
    if (s.missed > 0) std::printf("\n%d rounds at %d ms never fired.\n", s.missed, interval);
  }
  std::printf("\nTarget (every round within one probe interval + 100 ms): %s.\n",
              all_met ? "met" : "NOT met");
  return 0;
}
