// The process table as the process driver reads it. See proc_table.h.
#include "drivers/process/proc_table.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "base/proc_stat.h"
#include "probe/probe.h"

namespace backstop::process {
namespace {

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1" || host == "0.0.0.0" ||
         host == "::";
}

// /proc/net/tcp{,6} addresses are hex words in host byte order (little
// endian here): 127.0.0.1 is 0100007F, ::1 is 00000000000000000000000001000000.
bool ReachableFromLoopback(const std::string& hex_address) {
  if (hex_address.find_first_not_of('0') == std::string::npos) return true;  // wildcard
  if (hex_address.size() == 8) return hex_address.substr(6) == "7F";
  if (hex_address.size() == 32) {
    if (hex_address == "00000000000000000000000001000000") return true;
    return hex_address.rfind("0000000000000000FFFF0000", 0) == 0 &&
           hex_address.substr(30) == "7F";  // ::ffff:127.x.y.z
  }
  return false;
}

// Inodes of the sockets in state LISTEN on `port` that a connection to a
// loopback address can reach.
std::set<uint64_t> LoopbackListeners(int port) {
  std::set<uint64_t> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
            timeout >> inode)) {
        continue;
      }
      auto colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
      if (std::strtol(local.c_str() + colon + 1, nullptr, 16) != port) continue;
      if (!ReachableFromLoopback(local.substr(0, colon))) continue;
      uint64_t ino = std::strtoull(inode.c_str(), nullptr, 10);
      if (ino != 0) out.insert(ino);
    }
  }
  return out;
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (struct dirent* d = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(d->d_name, &end, 10);
    if (pid > 0 && *end == '\0') out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return out;
}

// Removes from `pending` the socket inodes `pid` holds; true if it held any.
bool TakeHeldSockets(pid_t pid, std::set<uint64_t>* pending) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* fds = ::opendir(dir.c_str());
  if (fds == nullptr) return false;  // gone, or another user's
  bool held = false;
  char target[64];
  while (struct dirent* d = ::readdir(fds)) {
    if (d->d_name[0] == '.') continue;
    ssize_t n = ::readlinkat(::dirfd(fds), d->d_name, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::strncmp(target, "socket:[", 8) != 0) continue;
    if (pending->erase(std::strtoull(target + 8, nullptr, 10)) > 0) held = true;
  }
  ::closedir(fds);
  return held;
}

std::string CommandName(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(f, name);
  return name;
}

}  // namespace

pid_t SessionOf(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return 0;
  auto st = ParseProcStat(line);
  return st.ok() ? st->session : 0;
}

std::string ForeignListener(const ProbeSpec& probe, pid_t session, const std::string& service) {
  auto endpoint = ProbeEndpointOf(probe);
  if (!endpoint || !IsLoopbackHost(endpoint->host)) return "";
  std::set<uint64_t> pending = LoopbackListeners(endpoint->port);
  if (pending.empty()) return "";
  // The leader usually holds the socket itself: look there before scanning.
  TakeHeldSockets(session, &pending);
  if (pending.empty()) return "";
  const std::vector<pid_t> pids = AllPids();
  for (pid_t pid : pids) {
    if (pid != session && SessionOf(pid) == session) TakeHeldSockets(pid, &pending);
    if (pending.empty()) return "";
  }
  // Someone else listens on the port: name it.
  const std::string port = std::to_string(endpoint->port);
  const std::string ours =
      service + "'s process " + std::to_string(session) + " or a process it started";
  for (pid_t pid : pids) {
    if (SessionOf(pid) == session || !TakeHeldSockets(pid, &pending)) continue;
    return "port " + port + " is served by pid " + std::to_string(pid) + " (" + CommandName(pid) +
           "), not by " + ours + ": another process answers the health check in its place; " +
           "stop pid " + std::to_string(pid) + " and start " + service + " again";
  }
  return "port " + port + " is served by a process that is not " + ours +
         " (its owner is not visible to this user; `ss -ltnp sport = :" + port +
         "` as root names it): another process answers the health check in its place";
}

pid_t LoopbackListenerPid(int port) {
  std::set<uint64_t> pending = LoopbackListeners(port);
  if (pending.empty()) return 0;
  for (pid_t pid : AllPids()) {
    if (TakeHeldSockets(pid, &pending)) return pid;
  }
  return 0;
}

}  // namespace backstop::process
