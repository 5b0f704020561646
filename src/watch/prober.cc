// The asynchronous prober. See prober.h.
//
// Loop structure (one thread):
//   1. take what other threads queued (new targets, "probe now", worker results)
//   2. start every probe that is due (a min-heap of next due times)
//   3. fail every TCP or blocking probe whose deadline passed
//   4. wait on epoll until the earliest of: next due probe, curl's timer, a deadline
//   5. hand socket readiness to curl (curl_multi_socket_action) or finish TCP connects
//   6. collect finished curl transfers
// curl's own timeouts (CURLOPT_TIMEOUT_MS) bound HTTP probes; the loop bounds TCP
// connects; workers run blocking probes whose overruns the loop reports as failures.
#include "watch/prober.h"

#include <curl/curl.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <queue>
#include <thread>

#include "base/mutex.h"
#include "base/strings.h"
#include "probe/probe.h"

namespace backstop {
namespace {

using State = HealthResult::State;

constexpr uint64_t kTagWake = 1;
constexpr uint64_t kTagCurl = 2;
constexpr uint64_t kTagTcp = 3;
constexpr int kTagShift = 56;

uint64_t Tag(uint64_t kind, uint64_t value) { return (kind << kTagShift) | value; }

std::string FormatTimeout(int64_t ms) {
  if (ms >= 1000 && ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

int64_t EffectiveTimeoutMs(const ProbeSpec& p) { return p.timeout_ms > 0 ? p.timeout_ms : 10'000; }
int64_t EffectiveIntervalMs(const ProbeSpec& p) {
  return p.interval_ms > 0 ? p.interval_ms : 30'000;
}

}  // namespace

class Prober::Loop {
 public:
  Loop(Env* env, Options options) : env_(env), options_(options) {}
  ~Loop() { Stop(); }

  Status Start(Callback callback);
  void Stop();
  Status Add(ProbeTarget target);
  void ProbeNow(const std::string& name);
  Stats GetStats() const {
    Stats s;
    s.started = started_.load();
    s.completed = completed_.load();
    s.http = http_.load();
    s.tcp = tcp_.load();
    s.blocking = blocking_.load();
    s.skipped_busy = skipped_.load();
    return s;
  }

 private:
  enum class Mode { kHttp, kTcp, kBlocking };

  struct Target {
    ProbeTarget spec;
    Mode mode = Mode::kBlocking;
    size_t index = 0;
    int64_t interval_us = 0;
    int64_t timeout_ms = 0;
    uint64_t schedule_gen = 0;  // heap entries of older generations are stale
    int64_t due_us = 0;
    bool busy = false;
    int64_t started_us = 0;
    // HTTP
    CURL* easy = nullptr;
    std::string body;
    char errbuf[CURL_ERROR_SIZE] = {0};
    // TCP (numeric addresses only; names go to the worker pool)
    sockaddr_storage addr{};
    socklen_t addrlen = 0;
    int fd = -1;
    int64_t deadline_us = 0;
    // Blocking
    uint64_t job = 0;        // id of the job in flight
    bool abandoned = false;  // the loop already reported it as timed out
  };

  struct Due {
    int64_t due_us;
    size_t index;
    uint64_t gen;
    bool operator>(const Due& o) const { return due_us > o.due_us; }
  };

  struct Job {
    size_t index;
    uint64_t id;
    std::function<HealthResult()> fn;
  };
  struct JobDone {
    size_t index;
    uint64_t id;
    HealthResult result;
    int64_t started_us;
    int64_t finished_us;
  };

  int64_t Now() { return env_->clock()->NowMicros(); }
  void Wake() {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof one);
    (void)n;
  }

  void Run();
  void Worker();
  void DrainControl();
  void Install(ProbeTarget spec);
  void Schedule(Target& t, int64_t due_us);
  void StartDue(int64_t now);
  void StartProbe(Target& t, int64_t now);
  void StartTcp(Target& t, int64_t now);
  void FinishTcp(Target& t, int err);
  void CheckDeadlines(int64_t now);
  void ReadCurlMessages();
  void FinishHttp(Target& t, CURLcode rc);
  void Deliver(Target& t, HealthResult result, bool reachable, bool timed_out, int64_t started,
               int64_t finished);
  int WaitMs(int64_t now);

  static int SocketCallback(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp);
  static int TimerCallback(CURLM* multi, long timeout_ms, void* userp);
  static size_t WriteCallback(char* data, size_t size, size_t nmemb, void* userp);

  Env* env_;
  Options options_;
  Callback callback_;
  std::thread thread_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};

  int epoll_fd_ = -1;
  // Opened by Start and closed by Stop (after every thread is joined), under
  // mu_ with started_flag_, so that Add and ProbeNow from other threads never
  // write to a closed (or reused) descriptor.
  int wake_fd_ = -1;
  CURLM* multi_ = nullptr;
  int64_t curl_deadline_us_ = -1;  // -1: no curl timer pending

  // Loop-thread state.
  std::vector<std::unique_ptr<Target>> targets_;
  std::map<std::string, size_t> by_name_;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> heap_;
  std::vector<size_t> watched_;  // targets with a loop-enforced deadline (TCP, blocking)
  uint64_t next_job_ = 1;
  size_t http_targets_ = 0;

  // Shared with other threads.
  mutable Mutex mu_;
  bool started_flag_ GUARDED_BY(mu_) = false;
  std::vector<ProbeTarget> pending_adds_ GUARDED_BY(mu_);
  std::vector<std::string> pending_now_ GUARDED_BY(mu_);
  std::vector<JobDone> done_ GUARDED_BY(mu_);
  std::map<std::string, bool> names_ GUARDED_BY(mu_);  // every name ever added (duplicate check)

  Mutex job_mu_;
  CondVar job_cv_;
  std::deque<Job> jobs_ GUARDED_BY(job_mu_);
  int idle_workers_ GUARDED_BY(job_mu_) = 0;

  std::atomic<uint64_t> started_{0}, completed_{0}, http_{0}, tcp_{0}, blocking_{0}, skipped_{0};
};

Status Prober::Loop::Start(Callback callback) {
  {
    MutexLock lock(&mu_);
    if (started_flag_) return Status::FailedPrecondition("prober already started");
  }
  InitCurlOnce();
  callback_ = std::move(callback);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Status::FromErrno("epoll_create1", errno);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return Status::FromErrno("eventfd", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = Tag(kTagWake, 0);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0)
    return Status::FromErrno("epoll_ctl(eventfd)", errno);
  multi_ = curl_multi_init();
  if (multi_ == nullptr) return Status::Internal("curl_multi_init failed");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Loop::SocketCallback);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Loop::TimerCallback);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  {
    MutexLock lock(&mu_);
    started_flag_ = true;
  }
  // Workers are started on demand (see StartProbe): a watcher with no
  // blocking probe runs none, and every thread costs its share of memory.
  thread_ = std::thread([this] { Run(); });
  return Status::OK();
}

void Prober::Loop::Stop() {
  {
    MutexLock lock(&mu_);
    if (!started_flag_) return;
  }
  if (!stop_.exchange(true)) {
    Wake();
    {
      MutexLock lock(&job_mu_);
      job_cv_.SignalAll();
    }
  }
  if (thread_.joinable()) thread_.join();
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
  workers_.clear();
  for (auto& t : targets_) {
    if (t->easy != nullptr) {
      if (t->busy && t->mode == Mode::kHttp) curl_multi_remove_handle(multi_, t->easy);
      curl_easy_cleanup(t->easy);
      t->easy = nullptr;
    }
    if (t->fd >= 0) {
      ::close(t->fd);
      t->fd = -1;
    }
  }
  if (multi_ != nullptr) {
    curl_multi_cleanup(multi_);
    multi_ = nullptr;
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  epoll_fd_ = -1;
  MutexLock lock(&mu_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
  started_flag_ = false;
}

Status Prober::Loop::Add(ProbeTarget target) {
  if (target.name.empty()) return Status::InvalidArgument("a probe target needs a name");
  if (!target.blocking && !target.probe.enabled()) {
    return Status::InvalidArgument("probe target " + target.name + " has no probe");
  }
  {
    MutexLock lock(&mu_);
    if (names_.count(target.name)) {
      return Status::InvalidArgument("probe target " + target.name + " added twice");
    }
    names_[target.name] = true;
    pending_adds_.push_back(std::move(target));
    if (started_flag_) Wake();
  }
  return Status::OK();
}

void Prober::Loop::ProbeNow(const std::string& name) {
  {
    MutexLock lock(&mu_);
    pending_now_.push_back(name);
    if (started_flag_) Wake();
  }
}

void Prober::Loop::Install(ProbeTarget spec) {
  auto t = std::make_unique<Target>();
  t->index = targets_.size();
  t->interval_us = EffectiveIntervalMs(spec.probe) * 1000;
  t->timeout_ms = EffectiveTimeoutMs(spec.probe);
  t->spec = std::move(spec);
  const ProbeSpec& p = t->spec.probe;
  if (t->spec.blocking) {
    t->mode = Mode::kBlocking;
  } else if (p.type == ProbeSpec::Type::kHttp) {
    t->mode = Mode::kHttp;
    t->easy = curl_easy_init();
    CURL* h = t->easy;
    if (h != nullptr) {
      curl_easy_setopt(h, CURLOPT_URL, p.target.c_str());
      curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(t->timeout_ms));
      curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(t->timeout_ms));
      curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
      curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Loop::WriteCallback);
      curl_easy_setopt(h, CURLOPT_WRITEDATA, t.get());
      curl_easy_setopt(h, CURLOPT_PRIVATE, t.get());
      curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
      curl_easy_setopt(h, CURLOPT_USERAGENT, "backstop-probe");
      curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
      if (!options_.reuse_connections) {
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
      }
    }
  } else if (p.type == ProbeSpec::Type::kTcp) {
    std::string host, port;
    bool numeric = false;
    if (SplitHostPort(p.target, &host, &port)) {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
      addrinfo* res = nullptr;
      if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) == 0 && res != nullptr) {
        std::memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
        t->addrlen = res->ai_addrlen;
        numeric = true;
      }
      if (res != nullptr) ::freeaddrinfo(res);
    }
    // A host name (or a malformed target, which RunProbe reports) goes to the
    // worker pool: name resolution blocks.
    t->mode = numeric ? Mode::kTcp : Mode::kBlocking;
  } else {
    t->mode = Mode::kBlocking;  // exec, gRPC
  }
  if (t->mode == Mode::kBlocking && !t->spec.blocking) {
    ProbeSpec copy = p;
    Env* env = env_;
    t->spec.blocking = [copy, env] { return RunProbe(copy, env); };
  }
  if (t->mode == Mode::kHttp) {
    // libcurl sizes its connection cache from the handles currently added
    // (4 each); probes are added one at a time, so without this the cache
    // would hold a handful of connections and most probes would reconnect.
    ++http_targets_;
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(http_targets_ + 8));
  }
  by_name_[t->spec.name] = t->index;
  Target& ref = *t;
  targets_.push_back(std::move(t));
  Schedule(ref, Now() + std::max<int64_t>(0, ref.spec.first_delay_ms) * 1000);
}

void Prober::Loop::Schedule(Target& t, int64_t due_us) {
  t.due_us = due_us;
  heap_.push(Due{due_us, t.index, ++t.schedule_gen});
}

void Prober::Loop::DrainControl() {
  std::vector<ProbeTarget> adds;
  std::vector<std::string> now_names;
  std::vector<JobDone> done;
  {
    MutexLock lock(&mu_);
    adds.swap(pending_adds_);
    now_names.swap(pending_now_);
    done.swap(done_);
  }
  for (auto& a : adds) Install(std::move(a));
  for (const auto& n : now_names) {
    auto it = by_name_.find(n);
    if (it != by_name_.end()) Schedule(*targets_[it->second], Now());
  }
  for (auto& d : done) {
    Target& t = *targets_[d.index];
    if (!t.busy || t.job != d.id) continue;
    t.busy = false;
    if (t.abandoned) {
      t.abandoned = false;  // already reported as timed out; this result is too late
      continue;
    }
    HealthResult& h = d.result;
    // What a blocking probe reports about reachability, when it says.
    bool reachable = true;
    if (auto it = h.signals.find("reachable"); it != h.signals.end()) {
      reachable = it->second != 0;
    } else if (auto r = h.signals.find("responding"); r != h.signals.end()) {
      reachable = r->second != 0;
    } else if (h.state == State::kFail) {
      const std::string& det = h.detail;
      reachable = det.find("connection refused") == std::string::npos &&
                  det.find("timed out") == std::string::npos &&
                  det.find("cannot resolve") == std::string::npos &&
                  det.find("cannot connect") == std::string::npos &&
                  det.find("no response") == std::string::npos;
    }
    bool timed_out = h.detail.rfind("timed out", 0) == 0;
    Deliver(t, std::move(h), reachable, timed_out, d.started_us, d.finished_us);
  }
}

void Prober::Loop::StartDue(int64_t now) {
  while (!heap_.empty() && heap_.top().due_us <= now) {
    Due d = heap_.top();
    heap_.pop();
    Target& t = *targets_[d.index];
    if (d.gen != t.schedule_gen) continue;  // rescheduled since
    // Keep the cadence; after a stall, do not fire a burst of catch-up probes.
    int64_t next = d.due_us + t.interval_us;
    if (next <= now) next = now + t.interval_us;
    Schedule(t, next);
    if (t.busy) {
      if (t.mode == Mode::kBlocking && t.abandoned) {
        // The last probe overran and was reported failed; it still runs.
        HealthResult h;
        h.state = State::kFail;
        h.detail = "timed out: the previous probe is still running after " +
                   FormatTimeout((now - t.started_us) / 1000);
        Deliver(t, std::move(h), false, true, now, now);
      } else {
        ++skipped_;
      }
      continue;
    }
    StartProbe(t, now);
  }
}

void Prober::Loop::StartProbe(Target& t, int64_t now) {
  ++started_;
  t.busy = true;
  t.started_us = now;
  switch (t.mode) {
    case Mode::kHttp: {
      ++http_;
      if (t.easy == nullptr) {
        t.busy = false;
        HealthResult h;
        h.state = State::kUnknown;
        h.detail = "cannot create a libcurl handle";
        Deliver(t, std::move(h), false, false, now, now);
        return;
      }
      t.body.clear();
      t.errbuf[0] = '\0';
      CURLMcode mc = curl_multi_add_handle(multi_, t.easy);
      if (mc != CURLM_OK) {
        t.busy = false;
        HealthResult h;
        h.state = State::kUnknown;
        h.detail = std::string("cannot start the probe: ") + curl_multi_strerror(mc);
        Deliver(t, std::move(h), false, false, now, now);
      }
      return;
    }
    case Mode::kTcp:
      ++tcp_;
      StartTcp(t, now);
      return;
    case Mode::kBlocking: {
      ++blocking_;
      t.job = next_job_++;
      t.abandoned = false;
      t.deadline_us =
          now + (t.timeout_ms + std::max<int64_t>(0, options_.blocking_grace_ms)) * 1000;
      watched_.push_back(t.index);
      MutexLock lock(&job_mu_);
      jobs_.push_back(Job{t.index, t.job, t.spec.blocking});
      if (idle_workers_ == 0 && static_cast<int>(workers_.size()) < std::max(1, options_.workers)) {
        workers_.emplace_back([this] { Worker(); });  // only the loop thread touches workers_
      }
      job_cv_.Signal();
      return;
    }
  }
}

void Prober::Loop::StartTcp(Target& t, int64_t now) {
  int fd = ::socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    HealthResult h;
    h.state = State::kUnknown;
    h.detail = std::string("socket: ") + std::strerror(errno);
    t.busy = false;
    Deliver(t, std::move(h), false, false, now, now);
    return;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.addrlen) == 0) {
    t.fd = fd;
    FinishTcp(t, 0);
    return;
  }
  int err = errno;
  if (err != EINPROGRESS) {
    t.fd = fd;
    FinishTcp(t, err);
    return;
  }
  t.fd = fd;
  t.deadline_us = now + t.timeout_ms * 1000;
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.u64 = Tag(kTagTcp, t.index);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    FinishTcp(t, errno);
    return;
  }
  watched_.push_back(t.index);
}

void Prober::Loop::FinishTcp(Target& t, int err) {
  const int64_t now = Now();
  if (t.fd >= 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, t.fd, nullptr);
    ::close(t.fd);
    t.fd = -1;
  }
  t.busy = false;
  HealthResult h;
  const int64_t latency_ms = (now - t.started_us + 500) / 1000;
  bool timed_out = false;
  if (err == 0) {
    h.state = State::kPass;
    h.detail = "connected in " + std::to_string(latency_ms) + " ms";
    h.signals["connect_time_ms"] = static_cast<double>(now - t.started_us) / 1000.0;
  } else {
    h.state = State::kFail;
    if (err == ETIMEDOUT) {
      timed_out = true;
      h.detail = "timed out after " + FormatTimeout(t.timeout_ms);
    } else if (err == ECONNREFUSED) {
      h.detail = "connection refused";
    } else {
      h.detail = std::string("cannot connect: ") + std::strerror(err);
    }
  }
  Deliver(t, std::move(h), err == 0, timed_out, t.started_us, now);
}

void Prober::Loop::CheckDeadlines(int64_t now) {
  for (size_t i = 0; i < watched_.size();) {
    Target& t = *targets_[watched_[i]];
    bool active = t.busy && ((t.mode == Mode::kTcp && t.fd >= 0) ||
                             (t.mode == Mode::kBlocking && !t.abandoned));
    if (!active) {
      watched_[i] = watched_.back();
      watched_.pop_back();
      continue;
    }
    if (t.deadline_us <= now) {
      if (t.mode == Mode::kTcp) {
        FinishTcp(t, ETIMEDOUT);
      } else {
        t.abandoned = true;  // stays busy until the worker returns
        HealthResult h;
        h.state = State::kFail;
        h.detail = "timed out after " + FormatTimeout(t.timeout_ms) + " (the probe did not return)";
        Deliver(t, std::move(h), false, true, t.started_us, now);
      }
      watched_[i] = watched_.back();
      watched_.pop_back();
      continue;
    }
    ++i;
  }
}

size_t Prober::Loop::WriteCallback(char* data, size_t size, size_t nmemb, void* userp) {
  auto* t = static_cast<Target*>(userp);
  const size_t n = size * nmemb;
  if (t->spec.capture_body && t->body.size() < t->spec.max_body_bytes) {
    t->body.append(data, std::min(n, t->spec.max_body_bytes - t->body.size()));
  }
  return n;
}

int Prober::Loop::SocketCallback(CURL* /*easy*/, curl_socket_t s, int what, void* userp,
                                 void* socketp) {
  auto* self = static_cast<Loop*>(userp);
  if (what == CURL_POLL_REMOVE) {
    ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, s, nullptr);
    return 0;
  }
  epoll_event ev{};
  if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
  if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
  ev.data.u64 = Tag(kTagCurl, static_cast<uint64_t>(s));
  if (::epoll_ctl(self->epoll_fd_, EPOLL_CTL_MOD, s, &ev) != 0) {
    if (errno == ENOENT) ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, s, &ev);
  }
  (void)socketp;
  return 0;
}

int Prober::Loop::TimerCallback(CURLM* /*multi*/, long timeout_ms, void* userp) {
  auto* self = static_cast<Loop*>(userp);
  self->curl_deadline_us_ = timeout_ms < 0 ? -1 : self->Now() + timeout_ms * 1000;
  return 0;
}

void Prober::Loop::ReadCurlMessages() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Target* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    CURLcode rc = msg->data.result;
    curl_multi_remove_handle(multi_, msg->easy_handle);
    if (t != nullptr) FinishHttp(*t, rc);
  }
}

void Prober::Loop::FinishHttp(Target& t, CURLcode rc) {
  const int64_t now = Now();
  t.busy = false;
  CURL* h = t.easy;
  HealthResult r;
  const int64_t latency_ms = (now - t.started_us + 500) / 1000;
  bool reachable = true, timed_out = false;
  if (rc != CURLE_OK) {
    long os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    curl_off_t connect_us = 0;
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
    std::string detail;
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      timed_out = true;
      detail = "timed out after " + FormatTimeout(t.timeout_ms);
      if (connect_us == 0) {
        reachable = false;
        detail += " (while connecting)";
      }
    } else if (rc == CURLE_COULDNT_CONNECT) {
      reachable = false;
      detail = os_errno == ECONNREFUSED ? "connection refused"
                                        : (t.errbuf[0] ? t.errbuf : curl_easy_strerror(rc));
    } else if (rc == CURLE_COULDNT_RESOLVE_HOST) {
      reachable = false;
      detail =
          "cannot resolve host: " + std::string(t.errbuf[0] ? t.errbuf : curl_easy_strerror(rc));
    } else {
      detail = t.errbuf[0] ? t.errbuf : curl_easy_strerror(rc);
    }
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
      r.state = State::kUnknown;
      r.detail = "bad probe URL '" + t.spec.probe.target + "': " + detail;
    } else {
      r.state = State::kFail;
      r.detail = std::move(detail);
      r.signals["http_status"] = 0;
    }
    r.latency_ms = latency_ms;
    Deliver(t, std::move(r), reachable, timed_out, t.started_us, now);
    return;
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  long new_connects = 0;
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &new_connects);
  r.latency_ms = latency_ms;
  r.signals["http_status"] = static_cast<double>(status);
  if (new_connects > 0) {
    curl_off_t connect_us = 0;
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
    r.signals["connect_time_ms"] = static_cast<double>(connect_us) / 1000.0;
  }
  const int expect = t.spec.probe.expect_status;
  const bool pass = expect != 0 ? status == expect : (status >= 200 && status <= 299);
  if (pass) {
    r.state = State::kPass;
    r.detail = "HTTP " + std::to_string(status) + " in " + std::to_string(latency_ms) + " ms";
  } else {
    r.state = State::kFail;
    r.detail = "HTTP " + std::to_string(status);
    if (expect != 0) r.detail += " (expected " + std::to_string(expect) + ")";
  }
  Deliver(t, std::move(r), true, false, t.started_us, now);
}

void Prober::Loop::Deliver(Target& t, HealthResult result, bool reachable, bool timed_out,
                           int64_t started, int64_t finished) {
  ++completed_;
  ProbeOutcome o;
  o.name = t.spec.name;
  o.reachable = reachable;
  o.timed_out = timed_out;
  o.started_us = started;
  o.finished_us = finished;
  o.latency_us = std::max<int64_t>(0, finished - started);
  if (t.mode != Mode::kBlocking) result.latency_ms = (o.latency_us + 500) / 1000;
  o.health = std::move(result);
  if (t.spec.capture_body) o.body.swap(t.body);
  if (callback_) callback_(std::move(o));
}

int Prober::Loop::WaitMs(int64_t now) {
  int64_t next = INT64_MAX;
  // Skip stale heap entries so they do not cause spurious wake-ups.
  while (!heap_.empty() && heap_.top().gen != targets_[heap_.top().index]->schedule_gen) {
    heap_.pop();
  }
  if (!heap_.empty()) next = std::min(next, heap_.top().due_us);
  if (curl_deadline_us_ >= 0) next = std::min(next, curl_deadline_us_);
  for (size_t i : watched_) next = std::min(next, targets_[i]->deadline_us);
  if (next == INT64_MAX) return 1000;  // nothing scheduled: check for control messages anyway
  if (next <= now) return 0;
  // Round up: waking a little late is fine, waking early spins.
  int64_t ms = (next - now + 999) / 1000;
  return static_cast<int>(std::min<int64_t>(ms, 1000));
}

void Prober::Loop::Run() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  int running = 0;
  while (!stop_.load()) {
    DrainControl();
    int64_t now = Now();
    StartDue(now);
    CheckDeadlines(now);
    if (curl_deadline_us_ >= 0 && curl_deadline_us_ <= now) {
      curl_deadline_us_ = -1;
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      ReadCurlMessages();
    }
    int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, WaitMs(Now()));
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // cannot happen with a valid epoll descriptor
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64 >> kTagShift;
      const uint64_t value = events[i].data.u64 & ((uint64_t{1} << kTagShift) - 1);
      const uint32_t ev = events[i].events;
      if (tag == kTagWake) {
        uint64_t count = 0;
        ssize_t r = ::read(wake_fd_, &count, sizeof count);
        (void)r;
      } else if (tag == kTagCurl) {
        int flags = 0;
        if (ev & EPOLLIN) flags |= CURL_CSELECT_IN;
        if (ev & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (ev & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(multi_, static_cast<curl_socket_t>(value), flags, &running);
      } else if (tag == kTagTcp) {
        if (value >= targets_.size()) continue;
        Target& t = *targets_[value];
        if (t.fd < 0) continue;
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(t.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        FinishTcp(t, err);
      }
    }
    ReadCurlMessages();
  }
}

void Prober::Loop::Worker() {
  for (;;) {
    Job job;
    {
      MutexLock lock(&job_mu_);
      ++idle_workers_;
      while (!stop_.load() && jobs_.empty()) job_cv_.Wait(&job_mu_);
      --idle_workers_;
      if (stop_.load()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    JobDone done;
    done.index = job.index;
    done.id = job.id;
    done.started_us = Now();
    done.result = job.fn();
    done.finished_us = Now();
    {
      MutexLock lock(&mu_);
      done_.push_back(std::move(done));
    }
    Wake();
  }
}

// --- Prober -------------------------------------------------------------------

Prober::Prober(Env* env) : Prober(env, Options{}) {}
Prober::Prober(Env* env, Options options)
    : env_(env), options_(options), loop_(std::make_unique<Loop>(env, options)) {}
Prober::~Prober() { Stop(); }
Status Prober::Start(Callback callback) { return loop_->Start(std::move(callback)); }
void Prober::Stop() { loop_->Stop(); }
Status Prober::Add(ProbeTarget target) { return loop_->Add(std::move(target)); }
void Prober::ProbeNow(const std::string& name) { loop_->ProbeNow(name); }
Prober::Stats Prober::GetStats() const { return loop_->GetStats(); }

std::vector<ProbeOutcome> ProbeOnce(Env* env, std::vector<ProbeTarget> targets, int workers) {
  std::vector<ProbeOutcome> out(targets.size());
  if (targets.empty()) return out;
  std::map<std::string, size_t> index;
  int64_t max_timeout_ms = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    index[targets[i].name] = i;
    out[i].name = targets[i].name;
    out[i].health.state = State::kUnknown;
    out[i].health.detail = "not probed";
    max_timeout_ms = std::max(max_timeout_ms, EffectiveTimeoutMs(targets[i].probe));
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<bool> seen(targets.size(), false);
  size_t remaining = targets.size();
  Prober::Options options;
  options.workers = workers;
  Prober prober(env, options);
  Status st = prober.Start([&](ProbeOutcome&& o) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = index.find(o.name);
    if (it == index.end() || seen[it->second]) return;
    seen[it->second] = true;
    out[it->second] = std::move(o);
    --remaining;
    cv.notify_all();
  });
  if (!st.ok()) {
    for (auto& o : out) o.health.detail = "cannot start the prober: " + st.message();
    return out;
  }
  for (auto& t : targets) {
    t.first_delay_ms = 0;
    t.probe.interval_ms = std::max<int64_t>(t.probe.interval_ms, 3'600'000);  // once
    (void)prober.Add(std::move(t));
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(max_timeout_ms + options.blocking_grace_ms + 1000),
                [&] { return remaining == 0; });
  }
  prober.Stop();
  return out;
}

}  // namespace backstop
