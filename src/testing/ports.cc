#include "testing/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <random>
#include <string>

namespace backstop::testing {
namespace {

constexpr int kFirstPort = 20000;
constexpr int kLastPort = 32767;
constexpr int kReclaimAfterSeconds = 3600;

std::string ReservationDir() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/backstop-test-ports";
}

bool SomethingListens(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool listens = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return listens;
}

// True if the reservation of `path` is older than kReclaimAfterSeconds.
bool Stale(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  return std::time(nullptr) - st.st_mtime > kReclaimAfterSeconds;
}

}  // namespace

Result<int> ReserveLoopbackPort() {
  const std::string dir = ReservationDir();
  if (::mkdir(dir.c_str(), 01777) != 0 && errno != EEXIST) {
    return Status::FromErrno("mkdir " + dir, errno);
  }
  ::chmod(dir.c_str(), 01777);  // shell tests run servers as other users
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pick(kFirstPort, kLastPort);
  for (int attempt = 0; attempt < 500; ++attempt) {
    int port = pick(rng);
    std::string path = dir + "/" + std::to_string(port);
    if (::mkdir(path.c_str(), 0755) != 0) {
      if (errno != EEXIST || !Stale(path)) continue;
      // An old reservation: take it over (rmdir+mkdir stays atomic for racers).
      if (::rmdir(path.c_str()) != 0 || ::mkdir(path.c_str(), 0755) != 0) continue;
    }
    if (SomethingListens(port)) continue;  // keep the reservation: it is in use
    return port;
  }
  return Status::Unavailable("no free loopback port in " + std::to_string(kFirstPort) + ".." +
                             std::to_string(kLastPort) + " (reservations in " + dir + ")");
}

}  // namespace backstop::testing
