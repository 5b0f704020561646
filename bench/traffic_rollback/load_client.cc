// traffic-load: a steady stream of HTTP GETs through a front (nginx), counting
// every answer that is not a 2xx and every connection error, for
// bench/traffic_rollback. Runs until SIGTERM or SIGINT, then prints one JSON
// object on stdout:
//   {"requests", "ok", "non_2xx", "errors", "failed", "longest_gap_ms",
//    "p50_ms", "p99_ms", "max_ms", "first_error"}
// "failed" = non_2xx + errors. "longest_gap_ms" is the longest time between
// two consecutive successful answers (what a user of the front saw as an
// outage; at a steady rate it is about 1000 * threads / rate when nothing fails).
//
//   traffic-load --url http://127.0.0.1:8080/ --rate 200 [--threads 4] [--timeout-ms 2000]
//
// Each thread keeps its own connection (keep-alive, as browsers and proxies
// do) and sends at rate/threads per second on a fixed schedule, so a slow
// answer delays that thread's next request but not the schedule after it.
#include <curl/curl.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};

struct Answer {
  Clock::time_point end;
  double ms = 0;
  bool ok = false;
  bool error = false;  // no HTTP answer at all
  std::string what;    // for the first failure
};

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

void Worker(const std::string& url, double interval_s, double offset_s, long timeout_ms,
            std::vector<Answer>* out) {
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  const auto start = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(offset_s));
  for (long k = 0; !g_stop.load(); ++k) {
    auto when = start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(interval_s * static_cast<double>(k)));
    if (when > Clock::now()) std::this_thread::sleep_until(when);
    if (g_stop.load()) break;
    const auto t0 = Clock::now();
    CURLcode rc = curl_easy_perform(curl);
    Answer a;
    a.end = Clock::now();
    a.ms = std::chrono::duration<double, std::milli>(a.end - t0).count();
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) {
      a.error = true;
      a.what = curl_easy_strerror(rc);
    } else if (code < 200 || code > 299) {
      a.what = "HTTP " + std::to_string(code);
    } else {
      a.ok = true;
    }
    out->push_back(std::move(a));
    // A request that overran its slot: skip the slots it missed rather than
    // bursting to catch up (the rate stays steady).
    const double behind = std::chrono::duration<double>(Clock::now() - start).count() / interval_s;
    if (behind > static_cast<double>(k + 1)) k = static_cast<long>(behind) - 1;
  }
  curl_easy_cleanup(curl);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(rank, v.size() - 1)];
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

int Usage() {
  std::fprintf(stderr,
               "usage: traffic-load --url URL --rate PER_SECOND [--threads N] "
               "[--timeout-ms MS]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  double rate = 0;
  int threads = 4;
  long timeout_ms = 2000;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (arg == "--url" && (v = value())) {
      url = v;
    } else if (arg == "--rate" && (v = value())) {
      rate = std::atof(v);
    } else if (arg == "--threads" && (v = value())) {
      threads = std::atoi(v);
    } else if (arg == "--timeout-ms" && (v = value())) {
      timeout_ms = std::atol(v);
    } else {
      return Usage();
    }
  }
  if (url.empty() || rate <= 0 || threads < 1 || timeout_ms < 1) return Usage();

  // SIGTERM/SIGINT are taken by a waiting thread, never by a worker mid-request.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  const double interval_s = static_cast<double>(threads) / rate;
  std::vector<std::vector<Answer>> answers(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back(Worker, url, interval_s, interval_s * t / threads, timeout_ms,
                         &answers[static_cast<size_t>(t)]);
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  g_stop = true;
  for (auto& w : workers) w.join();

  std::vector<Answer> all;
  for (auto& a : answers) all.insert(all.end(), a.begin(), a.end());
  std::sort(all.begin(), all.end(), [](const Answer& x, const Answer& y) { return x.end < y.end; });
  size_t ok = 0, non_2xx = 0, errors = 0;
  std::string first_error;
  std::vector<double> ms;
  double longest_gap_ms = 0;
  std::optional<Clock::time_point> last_ok;
  for (const auto& a : all) {
    ms.push_back(a.ms);
    if (a.ok) {
      ++ok;
      if (last_ok) {
        longest_gap_ms = std::max(
            longest_gap_ms, std::chrono::duration<double, std::milli>(a.end - *last_ok).count());
      }
      last_ok = a.end;
    } else {
      (a.error ? errors : non_2xx)++;
      if (first_error.empty()) first_error = a.what;
    }
  }
  std::printf(
      "{\"requests\": %zu, \"ok\": %zu, \"non_2xx\": %zu, \"errors\": %zu, \"failed\": %zu, "
      "\"longest_gap_ms\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f, "
      "\"first_error\": %s}\n",
      all.size(), ok, non_2xx, errors, non_2xx + errors, longest_gap_ms, Percentile(ms, 0.5),
      Percentile(ms, 0.99), ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end()),
      JsonString(first_error).c_str());
  curl_global_cleanup();
  return 0;
}
