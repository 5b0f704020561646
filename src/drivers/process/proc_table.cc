// The process table as the process driver reads it. See proc_table.h.
#include "drivers/process/proc_table.h"

#include <algorithm>
#include <cstdlib>
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
std::set<uint64_t> LoopbackListeners(FileSystem* fs, int port) {
  std::set<uint64_t> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    auto text = fs->ReadFile(table);
    if (!text.ok()) continue;  // no IPv6 here
    std::istringstream in(*text);
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

// Every pid in /proc, in increasing order.
std::vector<pid_t> AllPids(FileSystem* fs) {
  std::vector<pid_t> out;
  auto names = fs->ListDir("/proc");
  if (!names.ok()) return out;
  for (const auto& name : *names) {
    char* end = nullptr;
    long pid = std::strtol(name.c_str(), &end, 10);
    if (pid > 0 && *end == '\0') out.push_back(static_cast<pid_t>(pid));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Removes from `pending` the socket inodes `pid` holds; true if it held any.
bool TakeHeldSockets(FileSystem* fs, pid_t pid, std::set<uint64_t>* pending) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  auto fds = fs->ListDir(dir);
  if (!fds.ok()) return false;  // gone, or another user's
  bool held = false;
  for (const auto& fd : *fds) {
    auto target = fs->ReadLink(dir + "/" + fd);
    if (!target.ok() || target->rfind("socket:[", 0) != 0) continue;
    if (pending->erase(std::strtoull(target->c_str() + 8, nullptr, 10)) > 0) held = true;
  }
  return held;
}

std::string CommandName(FileSystem* fs, pid_t pid) {
  auto text = fs->ReadFile("/proc/" + std::to_string(pid) + "/comm");
  if (!text.ok()) return "";
  return text->substr(0, text->find('\n'));
}

}  // namespace

pid_t SessionOf(FileSystem* fs, pid_t pid) {
  auto st = ReadProcStat(fs, pid);
  return st.ok() ? st->session : 0;
}

std::string ForeignListener(FileSystem* fs, const ProbeSpec& probe, pid_t session,
                            const std::string& service) {
  auto endpoint = ProbeEndpointOf(probe);
  if (!endpoint || !IsLoopbackHost(endpoint->host)) return "";
  std::set<uint64_t> pending = LoopbackListeners(fs, endpoint->port);
  if (pending.empty()) return "";
  // The leader usually holds the socket itself: look there before scanning.
  TakeHeldSockets(fs, session, &pending);
  if (pending.empty()) return "";
  const std::vector<pid_t> pids = AllPids(fs);
  for (pid_t pid : pids) {
    if (pid != session && SessionOf(fs, pid) == session) TakeHeldSockets(fs, pid, &pending);
    if (pending.empty()) return "";
  }
  // Someone else listens on the port: name it.
  const std::string port = std::to_string(endpoint->port);
  const std::string ours =
      service + "'s process " + std::to_string(session) + " or a process it started";
  for (pid_t pid : pids) {
    if (SessionOf(fs, pid) == session || !TakeHeldSockets(fs, pid, &pending)) continue;
    return "port " + port + " is served by pid " + std::to_string(pid) + " (" +
           CommandName(fs, pid) + "), not by " + ours +
           ": another process answers the health check in its place; " + "stop pid " +
           std::to_string(pid) + " and start " + service + " again";
  }
  return "port " + port + " is served by a process that is not " + ours +
         " (its owner is not visible to this user; `ss -ltnp sport = :" + port +
         "` as root names it): another process answers the health check in its place";
}

pid_t LoopbackListenerPid(FileSystem* fs, int port) {
  std::set<uint64_t> pending = LoopbackListeners(fs, port);
  if (pending.empty()) return 0;
  for (pid_t pid : AllPids(fs)) {
    if (TakeHeldSockets(fs, pid, &pending)) return pid;
  }
  return 0;
}

}  // namespace backstop::process
