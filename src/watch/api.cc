// HTTP API and metrics exposition. See api.h.
#include "watch/api.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>

#include "base/hash.h"
#include "base/mutex.h"
#include "base/strings.h"
#include "watch/dashboard.h"

namespace backstop {

// --- Token ----------------------------------------------------------------------

namespace {

// The first line of `s`, trimmed: a token file or variable may end in a newline.
std::string FirstLine(const std::string& s) { return Trim(s.substr(0, s.find_first_of("\r\n"))); }

std::string Hex(const unsigned char* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}

}  // namespace

Result<std::string> LoadOrCreateApiToken(Env* env, const std::string& state_dir,
                                         const std::string& token_file, std::string* source) {
  FileSystem* fs = env->fs();
  if (!token_file.empty()) {
    auto text = fs->ReadFile(token_file);
    if (!text.ok()) {
      return Status::InvalidArgument("cannot read the API token file " + token_file + ": " +
                                     text.status().message());
    }
    std::string token = FirstLine(*text);
    if (token.empty()) {
      return Status::InvalidArgument("the API token file " + token_file +
                                     " is empty; put the token on its first line");
    }
    if (source) *source = "--token-file " + token_file;
    return token;
  }
  if (const char* from_env = std::getenv("BACKSTOP_API_TOKEN"); from_env && *from_env) {
    if (source) *source = "BACKSTOP_API_TOKEN";
    return FirstLine(from_env);
  }
  const std::string path = JoinPath(state_dir, "api-token");
  if (fs->Exists(path)) {
    BACKSTOP_ASSIGN_OR_RETURN(std::string text, fs->ReadFile(path));
    std::string token = FirstLine(text);
    if (!token.empty()) {
      // Tighten the mode of a token file someone loosened.
      auto info = fs->Stat(path);
      if (info.ok() && (info->mode & 077) != 0) (void)fs->Chmod(path, 0600);
      if (source) *source = path;
      return token;
    }
  }
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    return Status::Internal("cannot generate an API token: OpenSSL RAND_bytes failed");
  }
  std::string token = Hex(raw, sizeof raw);
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(state_dir));
  BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(path, token + "\n", 0600));
  if (source) *source = path + " (generated)";
  return token;
}

bool TokenMatches(const std::string& presented, const std::string& expected) {
  if (expected.empty()) return false;
  // Digests of equal length: the comparison time depends on neither token.
  const std::string a = Sha256Hex(presented);
  const std::string b = Sha256Hex(expected);
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// --- Server -------------------------------------------------------------------------

Status ParseListenAddress(const std::string& text, std::string* host, int* port) {
  std::string h, p;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Status::InvalidArgument("--listen " + text + ": expected [v6]:PORT");
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("--listen " + text +
                                     ": expected ADDR:PORT, e.g. 127.0.0.1:8742");
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  if (h.empty()) h = "127.0.0.1";
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit) ||
      std::stoi(p) > 65535) {
    return Status::InvalidArgument("--listen " + text + ": bad port '" + p + "'");
  }
  *host = h;
  *port = std::stoi(p);
  return Status::OK();
}

bool IsLoopbackHost(const std::string& host) {
  return host.rfind("127.", 0) == 0 || host == "::1" || host == "localhost" || host == "[::1]";
}

namespace {

int64_t MonotonicUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string PeerAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, host, sizeof host);
  } else if (addr.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, host, sizeof host);
  }
  return host;
}

void CloseSocket(int fd) {
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

// A best-effort short answer from the gate (the socket is non-blocking; a
// client that does not read it just loses it).
void SendAndClose(int fd, int status, const char* reason, const std::string& error) {
  const std::string body =
      nlohmann::json({{"error", error}, {"code", "bad_request"}}).dump() + "\n";
  const std::string text =
      "HTTP/1.1 " + std::to_string(status) + " " + reason +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n" + body;
  (void)::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  CloseSocket(fd);
}

// Case-insensitive search for a header line "name: value" in a request head;
// the value trimmed, or nullopt.
std::optional<std::string> HeaderValue(std::string_view head, std::string_view name) {
  size_t line = head.find("\r\n");
  while (line != std::string_view::npos && line + 2 < head.size()) {
    size_t start = line + 2;
    size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view l = head.substr(start, end - start);
    if (l.size() > name.size() && l[name.size()] == ':' &&
        std::equal(name.begin(), name.end(), l.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return Trim(l.substr(name.size() + 1));
    }
    line = end;
  }
  return std::nullopt;
}

// A complete request already read by the gate, served by httplib from memory;
// the answer goes straight to the socket (bounded by the write timeout).
class BufferedStream : public httplib::Stream {
 public:
  BufferedStream(int fd, std::string request, int64_t write_timeout_ms)
      : fd_(fd), data_(std::move(request)), write_timeout_ms_(write_timeout_ms) {}
  bool is_readable() const override { return pos_ < data_.size(); }
  bool is_writable() const override {
    pollfd p{fd_, POLLOUT, 0};
    return ::poll(&p, 1, static_cast<int>(write_timeout_ms_)) > 0 && (p.revents & POLLOUT);
  }
  ssize_t read(char* ptr, size_t size) override {
    size_t n = std::min(size, data_.size() - pos_);
    std::memcpy(ptr, data_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    return n;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Endpoint(true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Endpoint(false, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  void Endpoint(bool remote, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int rc = remote ? ::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len)
                    : ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    if (rc != 0) return;
    char host[INET6_ADDRSTRLEN] = {0};
    if (addr.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
      port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
      port = ntohs(a->sin6_port);
    }
    ip = host;
  }
  int fd_;
  std::string data_;
  size_t pos_ = 0;
  int64_t write_timeout_ms_;
};

// Runs each accepted socket's task at once on the accept thread: the task
// only hands the socket to the gate.
class InlineQueue : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

}  // namespace

// httplib's accept loop, with the reading of requests moved out of the
// worker threads into one poll loop (the gate): a worker only ever sees a
// complete request, so clients that send slowly occupy nothing but a socket.
class GatedServer : public httplib::Server {
 public:
  explicit GatedServer(const ApiServer::Options& options) : options_(options) {
    new_task_queue = [] { return new InlineQueue(); };
  }
  ~GatedServer() override { StopGate(); }

  // Called on the gate thread with each complete request before it goes to
  // a worker; returning true means it took the socket (the event stream).
  using TakeOver = std::function<bool(int fd, const std::string& peer, const std::string& request)>;
  void SetTakeOver(TakeOver take_over) { take_over_ = std::move(take_over); }

  Status StartGate() {
    // httplib listens with a backlog of 5: a burst of connections (slow
    // clients or not) would see their SYNs dropped and retried for seconds.
    // Linux lets listen() be called again to widen it.
    if (svr_sock_ != INVALID_SOCKET) (void)::listen(svr_sock_, SOMAXCONN);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      return Status::IOError(std::string("api: pipe: ") + std::strerror(errno));
    }
    workers_ = std::make_unique<httplib::ThreadPool>(std::max(1, options_.threads));
    gate_ = std::thread([this] { GateLoop(); });
    return Status::OK();
  }
  void StopGate() {
    if (!gate_.joinable()) return;
    stopping_ = true;
    Wake();
    gate_.join();
    workers_->shutdown();
    workers_.reset();
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

 private:
  struct Pending {
    int fd = -1;
    std::string peer;
    std::string data;
    int64_t accepted_us = 0;
    size_t head_end = 0;  // bytes of the head, "\r\n\r\n" included; 0: not yet
    size_t body_bytes = 0;
  };

  // On the accept thread: hand the socket to the gate and return at once.
  bool process_and_close_socket(socket_t sock) override {
    {
      MutexLock lock(&mu_);
      incoming_.push_back(sock);
    }
    Wake();
    return true;
  }

  void Wake() {
    char c = 1;
    (void)!::write(wake_[1], &c, 1);
  }

  // Drops the oldest still-reading connection of `peer` (or of anyone when
  // `peer` is empty). False when there is none.
  bool EvictOldest(const std::string& peer) {
    auto oldest = pending_.end();
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (!peer.empty() && it->peer != peer) continue;
      if (oldest == pending_.end() || it->accepted_us < oldest->accepted_us) oldest = it;
    }
    if (oldest == pending_.end()) return false;
    SendAndClose(oldest->fd, 503, "Service Unavailable",
                 "too many unfinished requests from " + oldest->peer);
    pending_.erase(oldest);
    return true;
  }

  int ConnectionsOf(const std::string& peer) {
    int n = 0;
    for (const auto& p : pending_) n += p.peer == peer;
    MutexLock lock(&mu_);
    auto it = serving_.find(peer);
    return n + (it == serving_.end() ? 0 : it->second);
  }

  void Admit(int fd, int64_t now) {
    Pending p;
    p.fd = fd;
    p.peer = PeerAddress(fd);
    p.accepted_us = now;
    int flags = ::fcntl(fd, F_GETFL, 0);
    (void)::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    // Over its share, a client loses its oldest unfinished request (a
    // client that sends at once is never the oldest for long); when all of
    // its connections are being answered, the new one waits its turn.
    if (ConnectionsOf(p.peer) >= std::max(1, options_.max_connections_per_client) &&
        !EvictOldest(p.peer)) {
      SendAndClose(fd, 503, "Service Unavailable",
                   "too many connections from " + p.peer + "; retry shortly");
      return;
    }
    if (static_cast<int>(pending_.size()) >= std::max(1, options_.max_pending_connections)) {
      EvictOldest("");
    }
    pending_.push_back(std::move(p));
  }

  // Reads what `p` has sent. True when it is finished with (served, refused
  // or closed) and must leave the pending list.
  bool ReadSome(Pending& p) {
    char buf[8192];
    for (;;) {
      ssize_t n = ::recv(p.fd, buf, sizeof buf, 0);
      if (n == 0) {
        CloseSocket(p.fd);
        return true;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
        CloseSocket(p.fd);
        return true;
      }
      p.data.append(buf, static_cast<size_t>(n));
      if (p.head_end == 0) {
        size_t end = p.data.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (p.data.size() > options_.max_header_bytes) {
            SendAndClose(p.fd, 431, "Request Header Fields Too Large",
                         "the request head is larger than " +
                             std::to_string(options_.max_header_bytes) + " bytes");
            return true;
          }
          continue;
        }
        p.head_end = end + 4;
        std::string_view head(p.data.data(), end);
        if (HeaderValue(head, "Transfer-Encoding")) {
          SendAndClose(p.fd, 411, "Length Required",
                       "send the body with a Content-Length, not chunked");
          return true;
        }
        if (auto len = HeaderValue(head, "Content-Length")) {
          if (len->empty() || len->size() > 12 ||
              !std::all_of(len->begin(), len->end(), ::isdigit)) {
            SendAndClose(p.fd, 400, "Bad Request", "bad Content-Length");
            return true;
          }
          p.body_bytes = std::stoull(*len);
          if (p.body_bytes > options_.max_body_bytes) {
            SendAndClose(
                p.fd, 413, "Payload Too Large",
                "the body is larger than " + std::to_string(options_.max_body_bytes) + " bytes");
            return true;
          }
        }
        if (auto expect = HeaderValue(head, "Expect"); expect && p.body_bytes > 0) {
          // The body is read here, so the interim answer is given here; the
          // header is blanked so that httplib does not give it again.
          static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
          (void)::send(p.fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
          size_t at = p.data.find("\r\n", 0);
          while (at != std::string::npos && at < end) {
            if (p.data.compare(at + 2, 7, "Expect:") == 0 ||
                p.data.compare(at + 2, 7, "expect:") == 0) {
              p.data[at + 2] = 'X';  // "Xxpect:": an unknown header
              break;
            }
            at = p.data.find("\r\n", at + 2);
          }
        }
      }
      if (p.head_end != 0 && p.data.size() >= p.head_end + p.body_bytes) {
        p.data.resize(p.head_end + p.body_bytes);  // one request per connection
        if (take_over_ && take_over_(p.fd, p.peer, p.data)) return true;
        Dispatch(p);
        return true;
      }
    }
  }

  void Dispatch(Pending& p) {
    {
      MutexLock lock(&mu_);
      ++serving_[p.peer];
    }
    int fd = p.fd;
    std::string peer = p.peer;
    auto data = std::make_shared<std::string>(std::move(p.data));
    workers_->enqueue([this, fd, peer, data] {
      // Back to blocking-free writes bounded by the write timeout.
      BufferedStream strm(fd, std::move(*data), 5'000);
      bool closed = false;
      process_request(strm, /*close_connection=*/true, closed, nullptr);
      CloseSocket(fd);
      MutexLock lock(&mu_);
      if (--serving_[peer] <= 0) serving_.erase(peer);
    });
  }

  void GateLoop() {
    std::vector<pollfd> fds;
    while (!stopping_) {
      const int64_t now = MonotonicUs();
      {
        std::vector<int> incoming;
        {
          MutexLock lock(&mu_);
          incoming.swap(incoming_);
        }
        for (int fd : incoming) Admit(fd, now);
      }
      // Deadlines: the head within header_timeout, the whole request
      // within request_timeout, counted from the accept.
      int64_t next_deadline = now + 1'000'000;
      for (auto it = pending_.begin(); it != pending_.end();) {
        const int64_t limit_ms =
            it->head_end == 0 ? options_.header_timeout_ms : options_.request_timeout_ms;
        const int64_t deadline = it->accepted_us + limit_ms * 1000;
        if (deadline <= now) {
          SendAndClose(it->fd, 408, "Request Timeout",
                       it->head_end == 0 ? "the request head did not arrive in time"
                                         : "the request body did not arrive in time");
          it = pending_.erase(it);
          continue;
        }
        next_deadline = std::min(next_deadline, deadline);
        ++it;
      }
      fds.clear();
      fds.push_back({wake_[0], POLLIN, 0});
      for (const auto& p : pending_) fds.push_back({p.fd, POLLIN, 0});
      const int wait_ms = static_cast<int>(std::max<int64_t>(0, next_deadline - now) / 1000 + 1);
      int rc = ::poll(fds.data(), fds.size(), wait_ms);
      if (rc < 0 && errno != EINTR) break;
      if (rc <= 0) continue;
      if (fds[0].revents & POLLIN) {
        char drain[256];
        while (::read(wake_[0], drain, sizeof drain) > 0) {
        }
      }
      // pending_ is unchanged since fds was built: index i+1 is pending_[i].
      std::vector<bool> done(pending_.size(), false);
      for (size_t i = 0; i < pending_.size(); ++i) {
        if (fds[i + 1].revents == 0) continue;
        done[i] = ReadSome(pending_[i]);
      }
      size_t keep = 0;
      for (size_t i = 0; i < pending_.size(); ++i) {
        if (done[i]) continue;
        if (keep != i) pending_[keep] = std::move(pending_[i]);
        ++keep;
      }
      pending_.resize(keep);
    }
    for (auto& p : pending_) CloseSocket(p.fd);
    pending_.clear();
    MutexLock lock(&mu_);
    for (int fd : incoming_) CloseSocket(fd);
    incoming_.clear();
  }

  ApiServer::Options options_;
  TakeOver take_over_;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::thread gate_;
  std::unique_ptr<httplib::ThreadPool> workers_;
  std::vector<Pending> pending_;  // gate thread only
  Mutex mu_;
  std::vector<int> incoming_ GUARDED_BY(mu_);
  std::map<std::string, int> serving_ GUARDED_BY(mu_);  // per client: requests with a worker
};

class ApiServer::Impl {
 public:
  Impl(ApiBackend* backend, Options options)
      : backend_(backend),
        options_(std::move(options)),
        server_(options_),
        events_(options_.events) {}

  Status Start(int* bound_port);
  void Stop();
  EventStream& events() { return events_; }

 private:
  void Log(const std::string& level, const std::string& msg, nlohmann::json fields) {
    if (options_.log) options_.log(level, msg, std::move(fields));
  }
  static void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
    res.status = status;
    res.set_content(body.dump(2) + "\n", "application/json");
  }
  // True when the request carries the right bearer token; otherwise answers 401.
  bool Authorized(const httplib::Request& req, httplib::Response& res);
  // On the gate thread: a GET /api/v1/events goes to the event stream (with
  // the right token) instead of a worker. False for every other request.
  bool TakeEventStream(int fd, const std::string& peer, const std::string& request);
  void Install();

  ApiBackend* backend_;
  Options options_;
  GatedServer server_;
  EventStream events_;
  std::thread thread_;
  bool running_ = false;
};

namespace {

// Whether an Authorization header's value is "Bearer <token>"; `has` says
// whether it named a bearer token at all.
bool BearerMatches(const std::string& header, const std::string& token, bool* has) {
  const std::string prefix = "Bearer ";
  *has = header.size() > prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), header.begin(),
                    [](char a, char b) { return std::tolower(a) == std::tolower(b); });
  return *has && TokenMatches(FirstLine(header.substr(prefix.size())), token);
}

}  // namespace

bool ApiServer::Impl::Authorized(const httplib::Request& req, httplib::Response& res) {
  bool has = false;
  if (BearerMatches(req.get_header_value("Authorization"), options_.token, &has)) return true;
  // Never log the header or the presented token: only that it was wrong.
  Log("warn", "api: refused an unauthenticated request",
      {{"method", req.method},
       {"path", req.path},
       {"remote", req.remote_addr},
       {"reason", has ? "wrong token" : "no bearer token"}});
  res.set_header("WWW-Authenticate", "Bearer realm=\"backstop\"");
  SendJson(res, 401,
           {{"error", has ? "the bearer token is not valid"
                          : "this endpoint acts: send Authorization: Bearer <token> (the token "
                            "is in <state_dir>/api-token, --token-file or BACKSTOP_API_TOKEN)"},
            {"code", "unauthorized"}});
  return false;
}

bool ApiServer::Impl::TakeEventStream(int fd, const std::string& peer, const std::string& request) {
  static constexpr std::string_view kLine = "GET /api/v1/events";
  if (request.compare(0, kLine.size(), kLine) != 0 || request.size() <= kLine.size() ||
      (request[kLine.size()] != ' ' && request[kLine.size()] != '?')) {
    return false;
  }
  const std::string_view head(request.data(), request.find("\r\n\r\n"));
  bool has = false;
  if (BearerMatches(HeaderValue(head, "Authorization").value_or(""), options_.token, &has)) {
    events_.Adopt(fd, peer);
    return true;
  }
  Log("warn", "api: refused an unauthenticated request",
      {{"method", "GET"},
       {"path", "/api/v1/events"},
       {"remote", peer},
       {"reason", has ? "wrong token" : "no bearer token"}});
  const std::string body =
      nlohmann::json({{"error", has ? "the bearer token is not valid"
                                    : "the event stream needs Authorization: Bearer <token>"},
                      {"code", "unauthorized"}})
          .dump() +
      "\n";
  const std::string text =
      "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
      "WWW-Authenticate: Bearer realm=\"backstop\"\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  (void)::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  CloseSocket(fd);
  return true;
}

void ApiServer::Impl::Install() {
  InstallDashboardRoutes(server_);
  server_.SetTakeOver([this](int fd, const std::string& peer, const std::string& request) {
    return TakeEventStream(fd, peer, request);
  });
  server_.Get("/api/v1/status", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, backend_->GetStatus());
  });
  server_.Get("/api/v1/components", [this](const httplib::Request&, httplib::Response& res) {
    ApiReply r = backend_->GetComponents();
    SendJson(res, r.status, r.body);
  });
  server_.Get("/api/v1/restore-points", [this](const httplib::Request&, httplib::Response& res) {
    ApiReply r = backend_->GetRestorePoints();
    SendJson(res, r.status, r.body);
  });
  // Re-hashing every blob reads the whole restore point: it takes the token.
  server_.Post(R"(/api/v1/restore-points/([A-Za-z0-9._-]+)/verify)",
               [this](const httplib::Request& req, httplib::Response& res) {
                 if (!Authorized(req, res)) return;
                 ApiReply r = backend_->VerifyRestorePoint(req.matches[1]);
                 SendJson(res, r.status, r.body);
               });
  server_.Get("/api/v1/runs", [this](const httplib::Request& req, httplib::Response& res) {
    int numbers[2] = {50, 0};  // limit, offset
    const char* names[2] = {"limit", "offset"};
    for (int i = 0; i < 2; ++i) {
      if (!req.has_param(names[i])) continue;
      const std::string v = req.get_param_value(names[i]);
      if (v.empty() || v.size() > 6 || !std::all_of(v.begin(), v.end(), ::isdigit)) {
        SendJson(res, 400,
                 {{"error", std::string(names[i]) + " must be a number"}, {"code", "bad_request"}});
        return;
      }
      numbers[i] = std::stoi(v);
    }
    ApiReply r = backend_->GetRuns(numbers[0], numbers[1]);
    SendJson(res, r.status, r.body);
  });
  server_.Get(R"(/api/v1/runs/([A-Za-z0-9._-]+))",
              [this](const httplib::Request& req, httplib::Response& res) {
                ApiReply r = backend_->GetRun(req.matches[1]);
                SendJson(res, r.status, r.body);
              });
  // The body of a rollback or a plan: a JSON object (null after a 400 reply).
  auto rollback_body = [](const httplib::Request& req, httplib::Response& res) {
    nlohmann::json body = nlohmann::json::object();
    if (!req.body.empty()) {
      try {
        body = nlohmann::json::parse(req.body);
      } catch (const std::exception& e) {
        SendJson(
            res, 400,
            {{"error", std::string("body is not JSON: ") + e.what()}, {"code", "bad_request"}});
        return nlohmann::json();
      }
    }
    if (!body.is_object()) {
      SendJson(res, 400, {{"error", "body must be a JSON object"}, {"code", "bad_request"}});
      return nlohmann::json();
    }
    return body;
  };
  server_.Post("/api/v1/rollback",
               [this, rollback_body](const httplib::Request& req, httplib::Response& res) {
                 if (!Authorized(req, res)) return;
                 nlohmann::json body = rollback_body(req, res);
                 if (body.is_null()) return;
                 ApiReply r = backend_->RequestRollback(body, "api " + req.remote_addr);
                 SendJson(res, r.status, r.body);
               });
  // Planning may connect to the databases: it takes the token too.
  server_.Post("/api/v1/plan",
               [this, rollback_body](const httplib::Request& req, httplib::Response& res) {
                 if (!Authorized(req, res)) return;
                 nlohmann::json body = rollback_body(req, res);
                 if (body.is_null()) return;
                 ApiReply r = backend_->PlanRollback(body);
                 SendJson(res, r.status, r.body);
               });
  auto pause_handler = [this](bool paused) {
    return [this, paused](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      std::string reason;
      if (!req.body.empty()) {
        try {
          auto j = nlohmann::json::parse(req.body);
          if (j.is_object()) reason = j.value("reason", "");
        } catch (const std::exception&) {
          SendJson(res, 400, {{"error", "body is not JSON"}, {"code", "bad_request"}});
          return;
        }
      }
      ApiReply r = backend_->SetPaused(paused, reason, "api " + req.remote_addr);
      SendJson(res, r.status, r.body);
    };
  };
  server_.Post("/api/v1/pause", pause_handler(true));
  server_.Post("/api/v1/resume", pause_handler(false));
  server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(backend_->MetricsText(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler already answered (e.g. 401)
    std::string msg = res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                                        : "HTTP " + std::to_string(res.status);
    res.set_content(
        nlohmann::json({{"error", msg}, {"code", res.status == 404 ? "not_found" : "error"}})
                .dump(2) +
            "\n",
        "application/json");
  });
  server_.set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        Log("error", "api: handler failed", {{"path", req.path}, {"error", what}});
        SendJson(res, 500, {{"error", what}, {"code", "internal"}});
      });
}

Status ApiServer::Impl::Start(int* bound_port) {
  Install();
  server_.set_payload_max_length(options_.max_body_bytes);
  server_.set_read_timeout(5, 0);
  server_.set_write_timeout(5, 0);
  int port = options_.port;
  if (port == 0) {
    port = server_.bind_to_any_port(options_.host);
    if (port <= 0) {
      return Status::IOError("cannot listen on " + options_.host + " (any port)");
    }
  } else if (!server_.bind_to_port(options_.host, port)) {
    return Status::IOError("cannot listen on " + options_.host + ":" + std::to_string(port) +
                           ": address in use or not local; pick another with --listen ADDR:PORT");
  }
  *bound_port = port;
  BACKSTOP_RETURN_IF_ERROR(events_.Start());
  BACKSTOP_RETURN_IF_ERROR(server_.StartGate());
  running_ = true;
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  return Status::OK();
}

void ApiServer::Impl::Stop() {
  if (!running_) return;
  running_ = false;
  server_.stop();
  if (thread_.joinable()) thread_.join();
  server_.StopGate();
  events_.Stop();
}

ApiServer::ApiServer(ApiBackend* backend, Options options)
    : impl_(std::make_unique<Impl>(backend, std::move(options))) {}
ApiServer::~ApiServer() { Stop(); }
Status ApiServer::Start() { return impl_->Start(&bound_port_); }
void ApiServer::Stop() { impl_->Stop(); }
void ApiServer::Publish(const std::string& type, const nlohmann::json& data) {
  impl_->events().Publish(type, data);
}
EventStream::Stats ApiServer::event_stats() const { return impl_->events().stats(); }

}  // namespace backstop
