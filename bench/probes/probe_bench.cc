// probe-bench: HTTP health probes per CPU-second and probe latency, Backstop's
// prober against prometheus-blackbox-exporter, side by side in one run, on
// the same N loopback targets (static-server, started here).
//
// Phases (each after a warm-up):
//   saturated   every target re-probed as soon as its last probe finished:
//               probes per CPU-second of the prober's own process
//               (Backstop: this process, getrusage; blackbox: /proc/<pid>/stat)
//   paced       the same fixed rate for both (--rate probes/s): p50/p99 latency
// Backstop runs twice: with connection reuse (its default) and with a fresh
// connection per probe (what blackbox does), so the ratio is not only reuse.
// Blackbox is driven through its /probe endpoint by concurrent keep-alive
// requests from this process (libcurl multi); its latency is the
// probe_duration_seconds it reports itself (the probe alone, not the hop).
//
//   probe-bench [--targets N] [--seconds S] [--rate R] [--concurrency C]
//               [--server PATH] [--blackbox PATH]
// Prints a Markdown section (bench/probes/run.sh appends it to docs/benchmarks.md).
#include <curl/curl.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "base/env.h"
#include "bench_util.h"
#include "watch/prober.h"

namespace {

struct Result {
  std::string name;
  uint64_t probes = 0;
  uint64_t failures = 0;
  double cpu_s = 0;
  double wall_s = 0;
  std::vector<double> latencies_ms;
  double per_cpu_s() const { return cpu_s > 0 ? static_cast<double>(probes) / cpu_s : 0; }
};

struct Options {
  int targets = 100;
  double seconds = 10;
  double rate = 1000;
  int concurrency = 64;
  std::string server;
  std::string blackbox = "prometheus-blackbox-exporter";
};

std::vector<std::string> TargetUrls(const std::vector<int>& ports) {
  std::vector<std::string> out;
  for (int p : ports) out.push_back("http://127.0.0.1:" + std::to_string(p) + "/health");
  return out;
}

// Backstop's prober in this process. interval_ms 1 = saturated.
Result RunBackstop(const std::vector<std::string>& urls, double seconds, double rate, bool reuse) {
  Result r;
  r.name = std::string("backstop prober") +
           (reuse ? " (connection reuse)" : " (fresh connection per probe)");
  backstop::Prober::Options o;
  o.reuse_connections = reuse;
  backstop::Prober prober(backstop::Env::Default(), o);
  std::mutex mu;
  std::atomic<bool> measuring{false};
  backstop::Status started = prober.Start([&](backstop::ProbeOutcome&& out) {
    if (!measuring.load(std::memory_order_relaxed)) return;
    std::lock_guard<std::mutex> lock(mu);
    ++r.probes;
    if (!out.health.pass()) ++r.failures;
    r.latencies_ms.push_back(static_cast<double>(out.latency_us) / 1000.0);
  });
  if (!started.ok()) {
    std::fprintf(stderr, "probe-bench: cannot start the prober: %s\n", started.ToString().c_str());
    std::exit(1);
  }
  const int64_t interval_ms =
      rate > 0 ? std::max<int64_t>(1, static_cast<int64_t>(1000.0 * urls.size() / rate)) : 1;
  for (size_t i = 0; i < urls.size(); ++i) {
    backstop::ProbeTarget t;
    t.name = "t" + std::to_string(i);
    t.probe.type = backstop::ProbeSpec::Type::kHttp;
    t.probe.target = urls[i];
    t.probe.interval_ms = interval_ms;
    t.probe.timeout_ms = 5000;
    t.first_delay_ms = interval_ms * static_cast<int64_t>(i) / static_cast<int64_t>(urls.size());
    if (backstop::Status added = prober.Add(t); !added.ok()) {
      std::fprintf(stderr, "probe-bench: cannot add %s: %s\n", urls[i].c_str(),
                   added.ToString().c_str());
      std::exit(1);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // warm-up: connections, caches
  const double cpu0 = bench::SelfCpuSeconds(), t0 = bench::NowSeconds();
  measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  r.cpu_s = bench::SelfCpuSeconds() - cpu0;
  r.wall_s = bench::NowSeconds() - t0;
  prober.Stop();
  return r;
}

// --- blackbox_exporter ------------------------------------------------------------

size_t Append(char* data, size_t size, size_t nmemb, void* user) {
  static_cast<std::string*>(user)->append(data, size * nmemb);
  return size * nmemb;
}

// Drives blackbox's /probe with up to `concurrency` requests in flight, either
// as fast as it answers (rate 0) or started at `rate` per second.
Result RunBlackbox(pid_t bb_pid, int bb_port, const std::vector<int>& ports, double seconds,
                   double rate, int concurrency) {
  Result r;
  r.name = "prometheus-blackbox-exporter";
  CURLM* multi = curl_multi_init();
  struct Slot {
    CURL* easy = nullptr;
    std::string body;
    bool busy = false;
    double started = 0;
  };
  std::vector<Slot> slots(static_cast<size_t>(concurrency));
  size_t next_target = 0;
  auto start = [&](Slot& s) {
    if (s.easy == nullptr) {
      s.easy = curl_easy_init();
      curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, &Append);
      curl_easy_setopt(s.easy, CURLOPT_NOPROXY, "*");
      curl_easy_setopt(s.easy, CURLOPT_TIMEOUT_MS, 10000L);
    }
    const int port = ports[next_target++ % ports.size()];
    std::string url = "http://127.0.0.1:" + std::to_string(bb_port) +
                      "/probe?module=http_2xx&target=127.0.0.1:" + std::to_string(port) + "/health";
    s.body.clear();
    curl_easy_setopt(s.easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(s.easy, CURLOPT_WRITEDATA, &s.body);
    curl_easy_setopt(s.easy, CURLOPT_PRIVATE, &s);
    s.busy = true;
    s.started = bench::NowSeconds();
    curl_multi_add_handle(multi, s.easy);
  };
  auto run_for = [&](double secs, bool measure) {
    const double end = bench::NowSeconds() + secs;
    double next_start = bench::NowSeconds();
    while (bench::NowSeconds() < end) {
      const double now = bench::NowSeconds();
      for (auto& s : slots) {
        if (s.busy) continue;
        if (rate > 0 && now < next_start) break;
        start(s);
        if (rate > 0) next_start += 1.0 / rate;
      }
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        Slot* s = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&s));
        curl_multi_remove_handle(multi, m->easy_handle);
        s->busy = false;
        if (!measure) continue;
        ++r.probes;
        const bool ok =
            m->data.result == CURLE_OK && s->body.find("\nprobe_success 1") != std::string::npos;
        if (!ok) ++r.failures;
        auto at = s->body.find("\nprobe_duration_seconds ");
        if (at != std::string::npos) {
          r.latencies_ms.push_back(std::atof(s->body.c_str() + at + 24) * 1000.0);
        }
      }
      int timeout_ms = 1;
      if (rate > 0) {
        timeout_ms = std::max(0, static_cast<int>((next_start - bench::NowSeconds()) * 1000));
        timeout_ms = std::min(timeout_ms, 5);
      }
      curl_multi_poll(multi, nullptr, 0, timeout_ms, nullptr);
    }
    // Let what is in flight finish (not counted).
    for (int i = 0; i < 2000; ++i) {
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        Slot* s = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&s));
        curl_multi_remove_handle(multi, m->easy_handle);
        s->busy = false;
      }
      if (running == 0) break;
      curl_multi_poll(multi, nullptr, 0, 5, nullptr);
    }
  };
  run_for(1.0, false);  // warm-up
  const double cpu0 = bench::ProcCpuSeconds(bb_pid), t0 = bench::NowSeconds();
  run_for(seconds, true);
  r.cpu_s = bench::ProcCpuSeconds(bb_pid) - cpu0;
  r.wall_s = bench::NowSeconds() - t0;
  for (auto& s : slots) {
    if (s.easy != nullptr) curl_easy_cleanup(s.easy);
  }
  curl_multi_cleanup(multi);
  return r;
}

bool WaitHttp(const std::string& url, double seconds) {
  const double end = bench::NowSeconds() + seconds;
  CURL* h = curl_easy_init();
  std::string body;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
  bool ok = false;
  while (!ok && bench::NowSeconds() < end) {
    ok = curl_easy_perform(h) == CURLE_OK;
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  curl_easy_cleanup(h);
  return ok;
}

void PrintRow(const Result& r) {
  std::printf("| %s | %llu | %llu | %.2f | %.0f | %.0f | %.2f | %.2f |\n", r.name.c_str(),
              static_cast<unsigned long long>(r.probes),
              static_cast<unsigned long long>(r.failures), r.cpu_s, r.per_cpu_s(),
              r.wall_s > 0 ? r.probes / r.wall_s : 0.0, bench::Percentile(r.latencies_ms, 50),
              bench::Percentile(r.latencies_ms, 99));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.server = bench::SelfDir() + "/static-server";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--targets") {
      o.targets = std::stoi(next());
    } else if (a == "--seconds") {
      o.seconds = std::stod(next());
    } else if (a == "--rate") {
      o.rate = std::stod(next());
    } else if (a == "--concurrency") {
      o.concurrency = std::stoi(next());
    } else if (a == "--server") {
      o.server = next();
    } else if (a == "--blackbox") {
      o.blackbox = next();
    } else {
      std::fprintf(stderr,
                   "usage: probe-bench [--targets N] [--seconds S] [--rate R] [--concurrency C] "
                   "[--server PATH] [--blackbox PATH]\n");
      return 2;
    }
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);

  bench::Child server;
  if (!bench::Spawn({o.server, "--ports", std::to_string(o.targets), "--threads", "2"}, &server)) {
    std::fprintf(stderr, "cannot start %s\n", o.server.c_str());
    return 1;
  }
  std::vector<int> ports;
  for (std::string line; (line = server.ReadLine()) != "ready";) {
    if (line.empty()) {
      std::fprintf(stderr, "static-server did not start\n");
      return 1;
    }
    ports.push_back(std::stoi(line));
  }
  const auto urls = TargetUrls(ports);

  char dir_template[] = "/tmp/probe-bench-XXXXXX";
  std::string dir = ::mkdtemp(dir_template);
  const std::string config = dir + "/blackbox.yml";
  {
    std::ofstream f(config);
    f << "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
         "      preferred_ip_protocol: ip4\n";
  }
  const int bb_port = bench::FreePort();
  bench::Child bb;
  if (!bench::Spawn({o.blackbox, "--config.file=" + config,
                     "--web.listen-address=127.0.0.1:" + std::to_string(bb_port)},
                    &bb, dir + "/blackbox.log")) {
    std::fprintf(stderr, "cannot start %s\n", o.blackbox.c_str());
    return 1;
  }
  if (!WaitHttp("http://127.0.0.1:" + std::to_string(bb_port) + "/-/healthy", 10)) {
    std::fprintf(stderr, "blackbox_exporter did not start; see %s/blackbox.log\n", dir.c_str());
    return 1;
  }

  std::fprintf(stderr, "saturated: backstop (reuse)...\n");
  Result sat_reuse = RunBackstop(urls, o.seconds, 0, true);
  std::fprintf(stderr, "saturated: backstop (fresh connections)...\n");
  Result sat_fresh = RunBackstop(urls, o.seconds, 0, false);
  std::fprintf(stderr, "saturated: blackbox_exporter...\n");
  Result sat_bb = RunBlackbox(bb.pid, bb_port, ports, o.seconds, 0, o.concurrency);
  std::fprintf(stderr, "paced at %.0f/s: backstop (reuse)...\n", o.rate);
  Result pace_reuse = RunBackstop(urls, o.seconds, o.rate, true);
  std::fprintf(stderr, "paced: backstop (fresh connections)...\n");
  Result pace_fresh = RunBackstop(urls, o.seconds, o.rate, false);
  std::fprintf(stderr, "paced: blackbox_exporter...\n");
  Result pace_bb = RunBlackbox(bb.pid, bb_port, ports, o.seconds, o.rate, o.concurrency);

  std::printf(
      "Targets: %d loopback HTTP endpoints (static-server, 2 threads); %.0f s per phase "
      "after 1 s of warm-up; blackbox_exporter driven with %d concurrent keep-alive "
      "requests to /probe (module http_2xx).\n\n",
      o.targets, o.seconds, o.concurrency);
  std::printf("Saturated (every target re-probed as soon as it answered):\n\n");
  std::printf(
      "| prober | probes | failed | CPU s | probes / CPU-s | probes / s | p50 ms | p99 ms |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  PrintRow(sat_reuse);
  PrintRow(sat_fresh);
  PrintRow(sat_bb);
  std::printf("\nPaced at %.0f probes/s (latency comparison at equal load):\n\n", o.rate);
  std::printf(
      "| prober | probes | failed | CPU s | probes / CPU-s | probes / s | p50 ms | p99 ms |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  PrintRow(pace_reuse);
  PrintRow(pace_fresh);
  PrintRow(pace_bb);
  const double ratio = sat_bb.per_cpu_s() > 0 ? sat_reuse.per_cpu_s() / sat_bb.per_cpu_s() : 0;
  const double ratio_fresh =
      sat_bb.per_cpu_s() > 0 ? sat_fresh.per_cpu_s() / sat_bb.per_cpu_s() : 0;
  std::printf(
      "\nProbes per CPU-second, Backstop / blackbox_exporter: **%.1f×** with connection "
      "reuse (the default), %.1f× with a fresh connection per probe. Target: ≥ 10×: %s.\n",
      ratio, ratio_fresh, ratio >= 10 ? "met" : "NOT met");
  bb.Stop();
  server.Stop();
  std::string cleanup = "rm -rf '" + dir + "'";
  (void)std::system(cleanup.c_str());
  return 0;
}
