// Server-Sent Events: the clients' buffers and the thread that writes them
// (event_stream.h).
#include "watch/event_stream.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "base/mutex.h"

namespace backstop {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr char kHead[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream; charset=utf-8\r\n"
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Connection: close\r\n\r\n"
    // How long a browser's EventSource waits before it reconnects.
    "retry: 3000\n\n";

}  // namespace

class EventStream::Impl {
 public:
  explicit Impl(Options options) : options_(options) {}

  Status Start() {
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      return Status::IOError(std::string("events: pipe: ") + std::strerror(errno));
    }
    {
      MutexLock lock(&mu_);
      running_ = true;
    }
    thread_ = std::thread([this] { Loop(); });
    return Status::OK();
  }

  void Stop() {
    if (!thread_.joinable()) return;
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    thread_.join();
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  void Adopt(int fd, const std::string& peer) {
    int flags = ::fcntl(fd, F_GETFL, 0);
    (void)::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    {
      MutexLock lock(&mu_);
      if (!stopping_ && running_ && static_cast<int>(clients_.size()) < options_.max_clients) {
        Client c;
        c.fd = fd;
        c.peer = peer;
        c.out = kHead;
        // The first event says which id the stream starts after, so that a
        // page knows it is connected before anything happens.
        c.out += Frame(0, "hello", {{"after", next_id_ - 1}});
        clients_.push_back(std::move(c));
        fd = -1;
      }
    }
    if (fd >= 0) {
      static const char kBusy[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: 73\r\n\r\n"
          "{\"error\":\"too many event streams open; retry shortly\",\"code\":\"busy\"}\n";
      (void)::send(fd, kBusy, sizeof kBusy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      return;
    }
    Wake();
  }

  void Publish(const std::string& type, const nlohmann::json& data) {
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      const std::string frame = Frame(next_id_++, type, data);
      ++published_;
      for (auto& c : clients_) {
        if (c.closing) continue;
        if (c.out.size() + frame.size() > options_.max_buffered_bytes) {
          // Too slow: it goes, and reloads the state when it reconnects.
          c.closing = true;
          ++dropped_;
          continue;
        }
        c.out += frame;
      }
    }
    Wake();
  }

  Stats stats() const {
    MutexLock lock(&mu_);
    Stats s;
    s.published = published_;
    s.dropped = dropped_;
    s.clients = static_cast<int>(clients_.size());
    return s;
  }

 private:
  struct Client {
    int fd = -1;
    std::string peer;
    std::string out;  // bytes not yet written
    bool closing = false;
  };

  // One event; `id` 0 for none. dump() escapes newlines inside strings:
  // the data is one line.
  static std::string Frame(uint64_t id, const std::string& type, const nlohmann::json& data) {
    std::string frame = id > 0 ? "id: " + std::to_string(id) + "\n" : std::string();
    return frame + "event: " + type + "\ndata: " + data.dump() + "\n\n";
  }

  void Wake() {
    char c = 1;
    (void)!::write(wake_[1], &c, 1);
  }

  // Writes what it can of `c` without blocking. False when it is finished
  // with (closed by the peer, a write error).
  static bool Flush(Client& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
  }

  // The peer has spoken or hung up: anything it sends after its request is
  // ignored; end of stream or an error means it is gone.
  static bool StillThere(int fd) {
    char buf[512];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) continue;
      if (n == 0) return false;
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
  }

  void Loop() {
    std::vector<pollfd> fds;
    std::vector<int> order;  // fds[i + 1] is the client with fd order[i]
    int64_t next_keepalive = NowMs() + options_.keepalive_ms;
    for (;;) {
      fds.clear();
      order.clear();
      fds.push_back({wake_[0], POLLIN, 0});
      {
        MutexLock lock(&mu_);
        if (stopping_) break;
        const bool keepalive = NowMs() >= next_keepalive;
        if (keepalive) next_keepalive = NowMs() + options_.keepalive_ms;
        for (auto it = clients_.begin(); it != clients_.end();) {
          if (keepalive && !it->closing) it->out += ": keep-alive\n\n";
          if (it->closing || !Flush(*it)) {
            ::close(it->fd);
            it = clients_.erase(it);
            continue;
          }
          short events = POLLIN;
          if (!it->out.empty()) events |= POLLOUT;
          fds.push_back({it->fd, events, 0});
          order.push_back(it->fd);
          ++it;
        }
      }
      const int wait_ms = static_cast<int>(std::max<int64_t>(1, next_keepalive - NowMs()));
      int rc = ::poll(fds.data(), fds.size(), wait_ms);
      if (rc < 0 && errno != EINTR) break;
      if (rc <= 0) continue;
      if (fds[0].revents & POLLIN) {
        char drain[256];
        while (::read(wake_[0], drain, sizeof drain) > 0) {
        }
      }
      MutexLock lock(&mu_);
      for (size_t i = 0; i < order.size(); ++i) {
        const short rev = fds[i + 1].revents;
        if (rev == 0) continue;
        for (auto& c : clients_) {
          if (c.fd != order[i]) continue;
          if ((rev & (POLLERR | POLLNVAL)) || ((rev & (POLLIN | POLLHUP)) && !StillThere(c.fd))) {
            c.closing = true;
          }
          break;
        }
      }
      // Writable ones are flushed at the top of the loop.
    }
    MutexLock lock(&mu_);
    for (auto& c : clients_) ::close(c.fd);
    clients_.clear();
  }

  const Options options_;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  mutable Mutex mu_;
  bool running_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<Client> clients_ GUARDED_BY(mu_);
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  uint64_t published_ GUARDED_BY(mu_) = 0;
  uint64_t dropped_ GUARDED_BY(mu_) = 0;
};

EventStream::EventStream(Options options) : impl_(std::make_unique<Impl>(options)) {}
EventStream::~EventStream() { Stop(); }
Status EventStream::Start() { return impl_->Start(); }
void EventStream::Stop() { impl_->Stop(); }
void EventStream::Adopt(int fd, const std::string& peer) { impl_->Adopt(fd, peer); }
void EventStream::Publish(const std::string& type, const nlohmann::json& data) {
  impl_->Publish(type, data);
}
EventStream::Stats EventStream::stats() const { return impl_->stats(); }

}  // namespace backstop
