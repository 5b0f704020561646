// static-server: N tiny HTTP/1.1 health endpoints on loopback, for the probe
// and idle benchmarks. One process, one epoll thread (or more with
// --threads), N listening ports; every request gets "200 ok" (or 503 while
// the file given by --unhealthy-if exists), with keep-alive. Small and fast
// so that the probers, not the targets, are what the benchmarks measure.
//
//   static-server --ports N [--threads T] [--unhealthy-if FILE]
// prints the N ports, one per line, then "ready", and serves until SIGTERM.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Conn {
  std::string in;
};

const char kOk[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
const char kBad[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n"
    "unhealthy\n";

int Listen(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(*port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4096) != 0) {
    std::perror("bind/listen");
    std::exit(1);
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

void Serve(const std::vector<int>& listeners, const std::string& unhealthy_if) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::unordered_map<int, bool> is_listener;
  for (int fd : listeners) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.fd = fd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    is_listener[fd] = true;
  }
  std::unordered_map<int, Conn> conns;
  epoll_event events[512];
  char buf[16384];
  for (;;) {
    int n = ::epoll_wait(ep, events, 512, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (is_listener.count(fd)) {
        for (;;) {
          int c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          int one = 1;
          ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLRDHUP;
          ev.data.fd = c;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
          conns[c];
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      bool close_it = (events[i].events & (EPOLLERR | EPOLLHUP)) != 0;
      for (;;) {
        ssize_t r = ::read(fd, buf, sizeof buf);
        if (r > 0) {
          it->second.in.append(buf, static_cast<size_t>(r));
          continue;
        }
        if (r == 0) close_it = true;
        break;
      }
      // Answer every complete request (headers end with a blank line; no bodies expected).
      std::string& in = it->second.in;
      size_t end;
      while ((end = in.find("\r\n\r\n")) != std::string::npos) {
        const bool closing = in.substr(0, end).find("Connection: close") != std::string::npos;
        in.erase(0, end + 4);
        struct stat st;
        const bool bad = !unhealthy_if.empty() && ::stat(unhealthy_if.c_str(), &st) == 0;
        const char* resp = bad ? kBad : kOk;
        const size_t len = bad ? sizeof kBad - 1 : sizeof kOk - 1;
        ssize_t w = ::send(fd, resp, len, MSG_NOSIGNAL);
        if (w != static_cast<ssize_t>(len) || closing) {
          close_it = true;
          break;
        }
      }
      if (close_it) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        conns.erase(it);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int ports = 1, threads = 1;
  std::string unhealthy_if;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--ports" && i + 1 < argc) {
      ports = std::atoi(argv[++i]);
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--unhealthy-if" && i + 1 < argc) {
      unhealthy_if = argv[++i];
    } else {
      std::fprintf(stderr, "usage: static-server --ports N [--threads T] [--unhealthy-if FILE]\n");
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<int> listeners;
  for (int i = 0; i < ports; ++i) {
    int port = 0;
    listeners.push_back(Listen(&port));
    std::printf("%d\n", port);
  }
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back([&] { Serve(listeners, unhealthy_if); });
  Serve(listeners, unhealthy_if);
}
