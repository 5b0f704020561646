// idle-bench: the footprint of an idle `backstop watch` with 50 components
// probed every second. Target: under 30 MB resident and under 1% CPU.
//
// The 50 components are process-driver services (not started by Backstop:
// their health probes answer from static-server, one port each), with the
// seed's default triggers. The daemon runs with its HTTP API on. After a
// warm-up, RSS is sampled every second (peak reported) and CPU is the
// daemon's utime + stime over the measurement, from /proc/<pid>/stat.
//
//   idle-bench [--backstop PATH] [--server PATH] [--components N] [--seconds S]
#include <nlohmann/json.hpp>

#include "../probes/bench_util.h"

int main(int argc, char** argv) {
  std::string backstop = bench::SelfDir() + "/../backstop";
  std::string server_bin = bench::SelfDir() + "/static-server";
  int components = 50;
  double seconds = 60, warmup = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--backstop") {
      backstop = next();
    } else if (a == "--server") {
      server_bin = next();
    } else if (a == "--components") {
      components = std::stoi(next());
    } else if (a == "--seconds") {
      seconds = std::stod(next());
    } else {
      std::fprintf(stderr,
                   "usage: idle-bench [--backstop PATH] [--server PATH] "
                   "[--components N] [--seconds S]\n");
      return 2;
    }
  }
  bench::Child server;
  if (!bench::Spawn({server_bin, "--ports", std::to_string(components)}, &server)) return 1;
  std::vector<int> ports;
  for (std::string line; (line = server.ReadLine()) != "ready";) {
    if (line.empty()) return 1;
    ports.push_back(std::stoi(line));
  }
  char dir_template[] = "/tmp/idle-bench-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  {
    std::ofstream spec(dir + "/backstop.yaml");
    spec << "environment: bench\ncomponents:\n";
    for (int i = 0; i < components; ++i) {
      const std::string name = "svc" + std::to_string(i);
      (void)std::system(("mkdir -p '" + dir + "/releases/" + name + "'").c_str());
      spec << "  " << name << ":\n"
           << "    kind: service\n    driver: process\n"
           << "    releases: releases/" << name << "\n    command: [bin/" << name << "]\n"
           << "    health: { http: \"http://127.0.0.1:" << ports[static_cast<size_t>(i)]
           << "/health\", interval: 1s, timeout: 1s }\n";
    }
  }
  bench::Child watch;
  const std::string log = dir + "/watch.log";
  if (!bench::Spawn(
          {backstop, "--spec", dir + "/backstop.yaml", "watch", "--listen", "127.0.0.1:0"}, &watch,
          log)) {
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  long long rss_peak = 0, rss_first = bench::ProcRssBytes(watch.pid);
  const double cpu0 = bench::ProcCpuSeconds(watch.pid), t0 = bench::NowSeconds();
  while (bench::NowSeconds() - t0 < seconds) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    rss_peak = std::max(rss_peak, bench::ProcRssBytes(watch.pid));
  }
  const double cpu = bench::ProcCpuSeconds(watch.pid) - cpu0;
  const double wall = bench::NowSeconds() - t0;
  // How many probes ran: the daemon's own counter, through its API.
  std::string api;
  {
    std::ifstream info(dir + "/.backstop/watch.json");
    auto j = nlohmann::json::parse(info, nullptr, false);
    if (j.is_object() && j["api"].is_string()) api = j["api"];
  }
  double probes = -1;
  if (!api.empty()) {
    FILE* p = ::popen(("curl -s --noproxy '*' " + api + "/metrics").c_str(), "r");
    char line[1024];
    probes = 0;
    while (p != nullptr && std::fgets(line, sizeof line, p) != nullptr) {
      std::string l(line);
      if (l.rfind("backstop_probes_total{", 0) == 0)
        probes += std::atof(l.substr(l.rfind(' ')).c_str());
    }
    if (p != nullptr) ::pclose(p);
  }
  watch.Stop();
  server.Stop();
  const double cpu_pct = 100.0 * cpu / wall;
  const double rss_mb = static_cast<double>(rss_peak) / (1024.0 * 1024.0);
  std::printf(
      "`backstop watch` with %d process-driver services probed over HTTP every 1 s, the "
      "seed's default triggers, the HTTP API on; %.0f s measured after %.0f s of "
      "warm-up.\n\n",
      components, wall, warmup);
  std::printf(
      "| RSS at start of measurement | peak RSS | CPU s | CPU %% | probes run (whole life) |\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
  std::printf("| %.1f MB | %.1f MB | %.2f | %.2f%% | %.0f |\n",
              static_cast<double>(rss_first) / (1024.0 * 1024.0), rss_mb, cpu, cpu_pct, probes);
  std::printf("\nTarget (< 30 MB resident, < 1%% CPU): %s.\n",
              rss_mb < 30 && cpu_pct < 1 ? "met" : "NOT met");
  (void)std::system(("rm -rf '" + dir + "'").c_str());
  return 0;
}
