// Health probes. See probe.h.
//
// HTTP probes reuse one libcurl easy handle per thread (reset before every
// attempt) so a watcher probing many components does not pay for handle
// set-up and DNS cache warm-up each time; every attempt still opens a fresh
// connection, so "connection refused" and the connect time mean what they say.
#include "probe/probe.h"
#include "base/strings.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

namespace backstop {
namespace {

using State = HealthResult::State;

std::mutex g_grpc_mu;
// Guarded by g_grpc_mu. Shared: a probe running on another thread keeps the
// function it took alive while SetGrpcProbe replaces it.
std::shared_ptr<const GrpcProbeFn> g_grpc_probe;

// "10 s" for whole seconds, "250 ms" otherwise: how timeouts are written in details.
std::string FormatTimeout(int64_t ms) {
  if (ms >= 1000 && ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

int64_t ElapsedMs(Env* env, int64_t start_us) {
  int64_t us = env->clock()->NowMicros() - start_us;
  return us <= 0 ? 0 : (us + 500) / 1000;
}

// --- HTTP -------------------------------------------------------------------

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One easy handle per thread, cleaned up when the thread ends.
class ThreadCurl {
 public:
  ThreadCurl() : handle_(curl_easy_init()) {}
  ~ThreadCurl() {
    if (handle_ != nullptr) curl_easy_cleanup(handle_);
  }
  CURL* get() { return handle_; }

 private:
  CURL* handle_;
};

size_t DiscardBody(char* /*data*/, size_t size, size_t nmemb, void* /*user*/) {
  return size * nmemb;
}

HealthResult HttpProbe(const ProbeSpec& probe, Env* env) {
  InitCurlOnce();
  thread_local ThreadCurl curl;
  CURL* h = curl.get();
  if (h == nullptr) return HealthResult::Make(State::kUnknown, 0, "cannot create a libcurl handle");
  curl_easy_reset(h);
  char errbuf[CURL_ERROR_SIZE];
  errbuf[0] = '\0';
  const long timeout_ms = static_cast<long>(probe.timeout_ms > 0 ? probe.timeout_ms : 10'000);
  curl_easy_setopt(h, CURLOPT_URL, probe.target.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &DiscardBody);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "backstop-probe");

  const int64_t start = env->clock()->NowMicros();
  CURLcode rc = curl_easy_perform(h);
  const int64_t latency = ElapsedMs(env, start);

  if (rc != CURLE_OK) {
    std::string detail;
    long os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      detail = "timed out after " + FormatTimeout(timeout_ms);
    } else if (rc == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED) {
      detail = "connection refused";
    } else if (rc == CURLE_COULDNT_RESOLVE_HOST) {
      detail = "cannot resolve host: " + std::string(errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else {
      detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    }
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
      return HealthResult::Make(State::kUnknown, latency,
                                "bad probe URL '" + probe.target + "': " + detail);
    }
    HealthResult r = HealthResult::Make(State::kFail, latency, std::move(detail));
    r.signals["http_status"] = 0;
    return r;
  }

  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t connect_us = 0;
  curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
  const bool pass =
      probe.expect_status != 0 ? status == probe.expect_status : (status >= 200 && status <= 299);
  HealthResult r;
  r.latency_ms = latency;
  r.signals["http_status"] = static_cast<double>(status);
  r.signals["connect_time_ms"] = static_cast<double>(connect_us) / 1000.0;
  if (pass) {
    r.state = State::kPass;
    r.detail = "HTTP " + std::to_string(status) + " in " + std::to_string(latency) + " ms";
  } else {
    r.state = State::kFail;
    r.detail = "HTTP " + std::to_string(status);
    if (probe.expect_status != 0)
      r.detail += " (expected " + std::to_string(probe.expect_status) + ")";
  }
  return r;
}

// --- TCP --------------------------------------------------------------------

HealthResult TcpProbe(const ProbeSpec& probe, Env* env) {
  std::string host, port;
  if (!SplitHostPort(probe.target, &host, &port)) {
    return HealthResult::Make(
        State::kUnknown, 0,
        "bad tcp probe target '" + probe.target + "'; expected host:port or [v6]:port");
  }
  const int64_t timeout_ms = probe.timeout_ms > 0 ? probe.timeout_ms : 10'000;
  const int64_t start = env->clock()->NowMicros();
  const int64_t deadline = start + timeout_ms * 1000;

  struct addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  struct addrinfo* addrs = nullptr;
  int gai = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &addrs);
  if (gai != 0) {
    return HealthResult::Make(State::kFail, ElapsedMs(env, start),
                              "cannot resolve host " + host + ": " + gai_strerror(gai));
  }

  std::string last_error = "no address for " + host;
  bool timed_out = false;
  for (struct addrinfo* a = addrs; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        err = ETIMEDOUT;
        for (;;) {
          int64_t left_ms = (deadline - env->clock()->NowMicros() + 999) / 1000;
          if (left_ms <= 0) break;
          struct pollfd pfd = {fd, POLLOUT, 0};
          int r = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left_ms, 60'000)));
          if (r < 0 && errno == EINTR) continue;
          if (r > 0) {
            socklen_t len = sizeof err;
            if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
          }
          break;
        }
      }
    }
    ::close(fd);
    if (err == 0) {
      ::freeaddrinfo(addrs);
      int64_t latency = ElapsedMs(env, start);
      HealthResult r = HealthResult::Make(State::kPass, latency,
                                          "connected in " + std::to_string(latency) + " ms");
      r.signals["connect_time_ms"] = static_cast<double>(latency);
      return r;
    }
    if (err == ETIMEDOUT) {
      timed_out = true;
      last_error = "timed out after " + FormatTimeout(timeout_ms);
    } else if (err == ECONNREFUSED) {
      last_error = "connection refused";
    } else {
      last_error = std::string("cannot connect: ") + std::strerror(err);
    }
    if (env->clock()->NowMicros() >= deadline) break;
  }
  ::freeaddrinfo(addrs);
  if (timed_out && last_error.rfind("timed out", 0) != 0) {
    last_error += " (and timed out on another address)";
  }
  return HealthResult::Make(State::kFail, ElapsedMs(env, start), last_error);
}

// --- exec -------------------------------------------------------------------

HealthResult ExecProbe(const ProbeSpec& probe, Env* env) {
  if (probe.command.empty())
    return HealthResult::Make(State::kUnknown, 0, "exec probe without a command");
  ProcessOptions opts;
  opts.argv = probe.command;
  opts.timeout_ms = probe.timeout_ms > 0 ? probe.timeout_ms : 10'000;
  const int64_t start = env->clock()->NowMicros();
  Result<ProcessResult> run = env->processes()->Run(opts);
  const int64_t latency = ElapsedMs(env, start);
  if (!run.ok()) {
    return HealthResult::Make(State::kUnknown, latency,
                              "cannot run the probe command: " + run.status().message());
  }
  const ProcessResult& r = *run;
  if (r.timed_out)
    return HealthResult::Make(State::kFail, latency,
                              "timed out after " + FormatTimeout(opts.timeout_ms));
  HealthResult out =
      HealthResult::Make(r.success() ? State::kPass : State::kFail, latency, r.Describe());
  out.signals["exit_code"] = r.exit_code;
  return out;
}

}  // namespace

std::optional<ProbeEndpoint> ProbeEndpointOf(const ProbeSpec& probe) {
  ProbeEndpoint out;
  std::string port;
  if (probe.type == ProbeSpec::Type::kTcp || probe.type == ProbeSpec::Type::kGrpc) {
    if (!SplitHostPort(probe.target, &out.host, &port)) return std::nullopt;
  } else if (probe.type == ProbeSpec::Type::kHttp) {
    CURLU* url = curl_url();
    if (url == nullptr) return std::nullopt;
    char* host = nullptr;
    char* port_text = nullptr;
    const bool parsed =
        curl_url_set(url, CURLUPART_URL, probe.target.c_str(), 0) == CURLUE_OK &&
        curl_url_get(url, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(url, CURLUPART_PORT, &port_text, CURLU_DEFAULT_PORT) == CURLUE_OK;
    if (parsed) {
      out.host = host;
      port = port_text;
    }
    curl_free(host);
    curl_free(port_text);
    curl_url_cleanup(url);
    if (!parsed) return std::nullopt;
    if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
      out.host = out.host.substr(1, out.host.size() - 2);
    }
  } else {
    return std::nullopt;
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  out.port = std::stoi(port);
  if (out.port <= 0 || out.port > 65535) return std::nullopt;
  return out;
}

HealthResult RunProbe(const ProbeSpec& probe, Env* env) {
  switch (probe.type) {
    case ProbeSpec::Type::kHttp:
      return HttpProbe(probe, env);
    case ProbeSpec::Type::kTcp:
      return TcpProbe(probe, env);
    case ProbeSpec::Type::kExec:
      return ExecProbe(probe, env);
    case ProbeSpec::Type::kGrpc: {
      std::shared_ptr<const GrpcProbeFn> fn;
      {
        std::lock_guard<std::mutex> lock(g_grpc_mu);
        fn = g_grpc_probe;
      }
      if (fn == nullptr) return HealthResult::Make(State::kUnknown, 0, "gRPC probe not built in");
      return (*fn)(probe);
    }
    case ProbeSpec::Type::kNone:
      break;
  }
  return HealthResult::Make(State::kUnknown, 0, "no health probe configured");
}

HealthResult WaitHealthy(const ProbeSpec& probe, Env* env, int64_t poll_ms, int* attempts,
                         const ProgressFn& progress) {
  Clock* clock = env->clock();
  poll_ms = std::max<int64_t>(poll_ms, 10);
  const int64_t period_ms = std::max<int64_t>(probe.start_period_ms, 0);
  const int64_t deadline = clock->NowMicros() + period_ms * 1000;
  // The most attempts the period allows, for "health 3/30" progress lines.
  const int64_t planned = 1 + period_ms / poll_ms;
  int n = 0;
  HealthResult result;
  for (;;) {
    result = RunProbe(probe, env);
    ++n;
    if (progress) {
      progress("health " + std::to_string(n) + "/" + std::to_string(std::max<int64_t>(planned, n)) +
               ": " + result.detail);
    }
    if (result.pass()) break;
    const int64_t now = clock->NowMicros();
    if (now >= deadline) break;
    // Sleep until the next poll, but make the last attempt at the deadline itself.
    clock->SleepForMicros(std::min<int64_t>(poll_ms * 1000, deadline - now));
  }
  if (attempts != nullptr) *attempts = n;
  return result;
}

void SetGrpcProbe(GrpcProbeFn fn) {
  std::lock_guard<std::mutex> lock(g_grpc_mu);
  g_grpc_probe = fn ? std::make_shared<const GrpcProbeFn>(std::move(fn)) : nullptr;
}

}  // namespace backstop
