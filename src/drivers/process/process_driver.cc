// The `process` driver. See process_driver.h for the layout and the contract.
#include "drivers/process/process_driver.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "base/crash_point.h"
#include "base/hash.h"
#include "base/units.h"
#include "drivers/process/proc_table.h"
#include "probe/probe.h"
#include "store/restore_point.h"
#include "store/store.h"

namespace backstop::process {
namespace {

using nlohmann::json;

constexpr char kTreeFormat[] = "backstop-release-tree-1";
constexpr int64_t kStartCheckMs = 50;  // how long a fresh process must survive
constexpr int64_t kStopPollMs = 20;
constexpr int64_t kKillWaitMs = 5000;  // after SIGKILL, how long to wait for the exit

struct Settings {
  std::string name;
  std::string releases;  // absolute
  std::string current;   // absolute
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  int64_t stop_timeout_ms = 10'000;
  bool check_listener = true;  // Health: the probe's loopback port must be served by us
  std::string log;             // empty until the state dir is known
  std::string record_path;     // empty until the state dir is known
  // The environment entries every process of this service is started with,
  // which tell its processes (and their children) from any other, recorded
  // or not: BACKSTOP_COMPONENT=<name> and BACKSTOP_STATE_DIR=<state dir>.
  std::vector<std::string> marker;
};

// A duration setting: milliseconds (as the spec parser stores it) or text ("10s").
Result<int64_t> DurationMs(const json& settings, const std::string& key, int64_t fallback) {
  if (!settings.contains(key) || settings[key].is_null()) return fallback;
  const json& v = settings[key];
  if (v.is_number()) return v.get<int64_t>();
  if (v.is_string()) {
    if (auto ms = ParseDurationMs(v.get<std::string>())) return *ms;
  }
  return Status::InvalidArgument("setting '" + key + "' must be a duration such as 10s, not " +
                                 v.dump());
}

Result<Settings> LoadSettings(const ComponentSpec& c, const std::string& state_dir) {
  Settings s;
  s.name = c.name;
  const json& j = c.settings;
  try {
    if (!j.contains("releases") || !j["releases"].is_string() ||
        j["releases"].get<std::string>().empty()) {
      return Status::InvalidArgument("component " + c.name +
                                     ": setting 'releases' (the directory with one "
                                     "subdirectory per release) is required");
    }
    s.releases = AbsolutePath(j["releases"].get<std::string>(), CurrentDir());
    if (j.contains("current") && j["current"].is_string() &&
        !j["current"].get<std::string>().empty()) {
      s.current = AbsolutePath(j["current"].get<std::string>(), CurrentDir());
    } else {
      s.current = JoinPath(Dirname(s.releases), "current");
    }
    if (j.contains("command")) {
      if (j["command"].is_string()) {
        s.command.push_back(j["command"].get<std::string>());
      } else {
        s.command = j["command"].get<std::vector<std::string>>();
      }
    }
    if (j.contains("env") && j["env"].is_object()) {
      for (const auto& [k, v] : j["env"].items()) {
        s.env[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
    }
    BACKSTOP_ASSIGN_OR_RETURN(s.stop_timeout_ms, DurationMs(j, "stop_timeout", 10'000));
    if (j.contains("check_listener") && j["check_listener"].is_boolean()) {
      s.check_listener = j["check_listener"].get<bool>();
    }
    if (!state_dir.empty()) {
      if (j.contains("log") && j["log"].is_string() && !j["log"].get<std::string>().empty()) {
        s.log = AbsolutePath(j["log"].get<std::string>(), CurrentDir());
      } else {
        s.log = JoinPath(JoinPath(state_dir, "logs"), c.name + ".log");
      }
      s.record_path = JoinPath(JoinPath(JoinPath(state_dir, "components"), c.name), "process.json");
      s.marker = {"BACKSTOP_COMPONENT=" + c.name,
                  "BACKSTOP_STATE_DIR=" + AbsolutePath(state_dir, CurrentDir())};
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument("component " + c.name + ": bad process settings: " + e.what());
  }
  return s;
}

Status RequireCommand(const Settings& s) {
  if (s.command.empty() || s.command[0].empty()) {
    return Status::InvalidArgument("component " + s.name +
                                   ": setting 'command' (the argv to start the service) is "
                                   "required");
  }
  return Status::OK();
}

std::string ReleaseDir(const Settings& s, const std::string& release) {
  return JoinPath(s.releases, release);
}

// A release name must be a plain directory name inside the releases directory.
Status CheckReleaseName(const std::string& release) {
  if (release.empty() || release == "." || release == ".." ||
      release.find('/') != std::string::npos || release[0] == '.') {
    return Status::InvalidArgument("bad release name '" + release +
                                   "': expected the name of a directory in the releases directory");
  }
  return Status::OK();
}

struct CurrentTarget {
  std::string release;  // basename of the target
  std::string dir;      // absolute target
};

// Where `current` points. NotFound when there is no current symlink.
Result<CurrentTarget> ReadCurrent(const Settings& s, FileSystem* fs) {
  auto info = fs->Stat(s.current);
  if (!info.ok()) {
    if (info.status().IsNotFound()) {
      return Status::NotFound("nothing deployed for " + s.name + ": " + s.current +
                              " does not exist");
    }
    return info.status();
  }
  if (!info->is_symlink) {
    return Status::FailedPrecondition(s.current +
                                      " is not a symlink; the process driver expects "
                                      "`current` to be a symlink to a release directory");
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::string target, fs->ReadLink(s.current));
  CurrentTarget t;
  t.dir = AbsolutePath(target, Dirname(s.current));
  t.release = Basename(t.dir);
  return t;
}

Result<std::vector<std::string>> ListReleaseNames(const Settings& s, FileSystem* fs) {
  auto names = fs->ListDir(s.releases);
  if (!names.ok()) {
    if (names.status().IsNotFound()) {
      return Status::NotFound("releases directory " + s.releases + " of " + s.name +
                              " does not exist");
    }
    return names.status();
  }
  std::vector<std::string> out;
  for (const auto& n : *names) {
    if (n.empty() || n[0] == '.') continue;  // our temporary and set-aside copies
    auto info = fs->Stat(JoinPath(s.releases, n));
    if (!info.ok()) continue;
    bool is_dir = info->is_dir;
    if (info->is_symlink) {
      // A release may itself be a symlink to a directory elsewhere.
      std::string full = JoinPath(s.releases, n) + "/.";
      is_dir = fs->Exists(full);
    }
    if (is_dir) out.push_back(n);
  }
  std::sort(out.begin(), out.end(), NaturalLess);
  return out;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "(none)" : out;
}

// --- Release trees ----------------------------------------------------------

struct TreeEntry {
  std::string path;  // relative to the release directory
  std::string type;  // file | dir | symlink
  uint32_t mode = 0;
  uint64_t size = 0;
  std::string sha256;  // files
  std::string target;  // symlinks
};

json EntryToJson(const TreeEntry& e) {
  json j = {{"path", e.path}, {"type", e.type}};
  if (e.type != "symlink") j["mode"] = e.mode;
  if (e.type == "file") {
    j["size"] = e.size;
    j["sha256"] = e.sha256;
  }
  if (e.type == "symlink") j["target"] = e.target;
  return j;
}

Result<TreeEntry> EntryFromJson(const json& j) {
  try {
    TreeEntry e;
    e.path = j.at("path").get<std::string>();
    e.type = j.at("type").get<std::string>();
    if (e.path.empty() || e.path[0] == '/' || e.path == ".." || e.path.rfind("../", 0) == 0 ||
        e.path.find("/../") != std::string::npos ||
        (e.path.size() >= 3 && e.path.substr(e.path.size() - 3) == "/..")) {
      return Status::Corruption("release tree entry with an unsafe path '" + e.path + "'");
    }
    if (e.type == "file") {
      e.mode = j.at("mode").get<uint32_t>();
      e.size = j.at("size").get<uint64_t>();
      e.sha256 = j.at("sha256").get<std::string>();
      if (!IsSha256Hex(e.sha256)) return Status::Corruption("bad digest for " + e.path);
    } else if (e.type == "dir") {
      e.mode = j.at("mode").get<uint32_t>();
    } else if (e.type == "symlink") {
      e.target = j.at("target").get<std::string>();
    } else {
      return Status::Corruption("release tree entry " + e.path + " has unknown type " + e.type);
    }
    return e;
  } catch (const std::exception& ex) {
    return Status::Corruption(std::string("bad release tree entry: ") + ex.what());
  }
}

struct Tree {
  uint32_t root_mode = 0755;
  std::vector<TreeEntry> entries;  // sorted by path
};

// Walks `dir` recursively; `digest_of` gives the sha256 of a regular file
// (stored in the Store while snapshotting, only hashed while comparing).
Status WalkTree(FileSystem* fs, const std::string& root, const std::string& rel,
                const std::function<Result<std::string>(const std::string&)>& digest_of,
                const ProgressFn& warn, std::vector<TreeEntry>* out) {
  const std::string dir = rel.empty() ? root : JoinPath(root, rel);
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<std::string> names, fs->ListDir(dir));
  for (const auto& name : names) {
    const std::string child_rel = rel.empty() ? name : rel + "/" + name;
    const std::string full = JoinPath(root, child_rel);
    BACKSTOP_ASSIGN_OR_RETURN(FileInfo info, fs->Stat(full));
    TreeEntry e;
    e.path = child_rel;
    e.mode = info.mode;
    if (info.is_symlink) {
      e.type = "symlink";
      BACKSTOP_ASSIGN_OR_RETURN(e.target, fs->ReadLink(full));
      out->push_back(std::move(e));
    } else if (info.is_dir) {
      e.type = "dir";
      out->push_back(std::move(e));
      BACKSTOP_RETURN_IF_ERROR(WalkTree(fs, root, child_rel, digest_of, warn, out));
    } else if (info.is_regular) {
      e.type = "file";
      e.size = info.size;
      BACKSTOP_ASSIGN_OR_RETURN(e.sha256, digest_of(full));
      out->push_back(std::move(e));
    } else if (warn) {
      warn("skipping " + full + ": not a regular file, directory or symlink");
    }
  }
  return Status::OK();
}

Result<Tree> ScanTree(FileSystem* fs, const std::string& dir,
                      const std::function<Result<std::string>(const std::string&)>& digest_of,
                      const ProgressFn& warn) {
  Tree t;
  BACKSTOP_ASSIGN_OR_RETURN(FileInfo root, fs->Stat(dir + "/."));
  t.root_mode = root.mode;
  BACKSTOP_RETURN_IF_ERROR(WalkTree(fs, dir, "", digest_of, warn, &t.entries));
  std::sort(t.entries.begin(), t.entries.end(),
            [](const TreeEntry& a, const TreeEntry& b) { return a.path < b.path; });
  return t;
}

json TreeToJson(const std::string& release, const Tree& t) {
  json entries = json::array();
  for (const auto& e : t.entries) entries.push_back(EntryToJson(e));
  return {
      {"format", kTreeFormat}, {"release", release}, {"mode", t.root_mode}, {"entries", entries}};
}

Result<Tree> TreeFromJson(const std::string& text) {
  Tree t;
  try {
    json j = json::parse(text);
    if (j.value("format", "") != kTreeFormat) {
      return Status::Corruption("release tree has an unknown format: " + j.value("format", "?"));
    }
    t.root_mode = j.value("mode", 0755u);
    for (const auto& e : j.at("entries")) {
      BACKSTOP_ASSIGN_OR_RETURN(TreeEntry entry, EntryFromJson(e));
      t.entries.push_back(std::move(entry));
    }
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("release tree is not valid JSON: ") + e.what());
  }
  std::sort(t.entries.begin(), t.entries.end(),
            [](const TreeEntry& a, const TreeEntry& b) { return a.path < b.path; });
  return t;
}

// The first difference between the live directory and the tree ("" if equal).
Result<std::string> DiffTree(FileSystem* fs, const std::string& dir, const Tree& want) {
  // Compare types, modes and sizes first; hash a file only when they match.
  std::vector<TreeEntry> live;
  auto no_hash = [](const std::string&) -> Result<std::string> { return std::string(); };
  BACKSTOP_RETURN_IF_ERROR(WalkTree(fs, dir, "", no_hash, nullptr, &live));
  std::sort(live.begin(), live.end(),
            [](const TreeEntry& a, const TreeEntry& b) { return a.path < b.path; });
  std::map<std::string, const TreeEntry*> live_by_path;
  for (const auto& e : live) live_by_path[e.path] = &e;
  for (const auto& w : want.entries) {
    auto it = live_by_path.find(w.path);
    if (it == live_by_path.end()) return w.path + " is missing";
    const TreeEntry& l = *it->second;
    if (l.type != w.type) return w.path + " is a " + l.type + ", expected a " + w.type;
    if (w.type == "symlink" && l.target != w.target) {
      return w.path + " points at " + l.target + ", expected " + w.target;
    }
    if (w.type != "symlink" && l.mode != w.mode) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " has mode %04o, expected %04o", l.mode, w.mode);
      return w.path + buf;
    }
    if (w.type == "file") {
      if (l.size != w.size) return w.path + " changed (size)";
      BACKSTOP_ASSIGN_OR_RETURN(std::string digest, Sha256File(JoinPath(dir, w.path)));
      if (digest != w.sha256) return w.path + " changed (content)";
    }
    live_by_path.erase(it);
  }
  if (!live_by_path.empty()) return live_by_path.begin()->first + " was added";
  return std::string();
}

// Builds the tree into `dest` (which must not exist) from the store.
Status BuildTree(FileSystem* fs, Store* store, const Tree& t, const std::string& dest) {
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(dest, 0755));
  for (const auto& e : t.entries) {
    const std::string path = JoinPath(dest, e.path);
    if (e.type == "dir") {
      BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(path, 0755));
    } else if (e.type == "file") {
      BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(path), 0755));
      Status st = store->GetToFile(e.sha256, path, e.mode);
      if (!st.ok()) return st.WithContext("restoring " + e.path);
    } else {
      BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(path), 0755));
      BACKSTOP_RETURN_IF_ERROR(fs->SymlinkAtomic(e.target, path));
    }
  }
  // Directory modes last (deepest first), so a read-only directory is filled first.
  for (auto it = t.entries.rbegin(); it != t.entries.rend(); ++it) {
    if (it->type == "dir") BACKSTOP_RETURN_IF_ERROR(fs->Chmod(JoinPath(dest, it->path), it->mode));
  }
  BACKSTOP_RETURN_IF_ERROR(fs->Chmod(dest, t.root_mode));
  return fs->SyncDir(dest);
}

// --- The process record -----------------------------------------------------

struct Record {
  pid_t pid = 0;  // also its process group and session id (started with setsid)
  uint64_t start_ticks = 0;
  std::string release;
  std::string started_at;
  std::vector<std::string> command;
  std::string log;
  // False while the process is held before exec: written so before it may
  // run, true once it was released. A live process whose record still says
  // false was started by a backstop that died around the release; it is
  // stopped and started afresh rather than trusted. Records written before
  // this field existed describe released processes.
  bool released = true;
  ProcessIdentity identity() const { return {pid, start_ticks}; }
};

// The record, or nullopt when there is none (or it is unreadable: then it is
// treated as absent, which is safe: nothing is signalled without a record).
std::optional<Record> ReadRecord(const Settings& s, FileSystem* fs) {
  auto text = fs->ReadFile(s.record_path);
  if (!text.ok()) return std::nullopt;
  try {
    json j = json::parse(*text);
    Record r;
    r.pid = j.at("pid").get<pid_t>();
    r.start_ticks = j.at("start_ticks").get<uint64_t>();
    r.release = j.value("release", "");
    r.started_at = j.value("started_at", "");
    r.command = j.value("command", std::vector<std::string>{});
    r.log = j.value("log", "");
    r.released = j.value("released", true);
    if (r.pid <= 0) return std::nullopt;
    return r;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Status WriteRecord(const Settings& s, FileSystem* fs, const Record& r) {
  json j = {{"pid", r.pid},
            {"pgid", r.pid},
            {"start_ticks", r.start_ticks},
            {"release", r.release},
            {"started_at", r.started_at},
            {"command", r.command},
            {"log", r.log},
            {"released", r.released}};
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(s.record_path)));
  return fs->WriteFileAtomic(s.record_path, j.dump(2) + "\n");
}

// True if the recorded process is the one we started: alive, same start time.
bool IsOurs(ProcessRunner* procs, const Record& r) {
  if (!procs->IsAlive(r.pid)) return false;
  auto ticks = procs->StartTicks(r.pid);
  return ticks.ok() && *ticks == r.start_ticks;
}

// --- Logs -------------------------------------------------------------------

// The last `n` lines of `path` from byte `from` on (bounded read of the tail).
std::string LogTail(const std::string& path, size_t n, uint64_t from = 0) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = std::max<std::streamoff>(static_cast<std::streamoff>(from), size - 16384);
  if (start < 0) start = 0;
  if (start >= size) return "";
  in.seekg(start);
  std::string data(static_cast<size_t>(size - start), '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  while (!data.empty() && data.back() == '\n') data.pop_back();
  size_t pos = data.size();
  for (size_t i = 0; i < n && pos != std::string::npos && pos > 0; ++i) {
    pos = data.rfind('\n', pos - 1);
  }
  return pos == std::string::npos ? data : data.substr(pos + 1);
}

uint64_t FileSize(FileSystem* fs, const std::string& path) {
  auto info = fs->Stat(path);
  return info.ok() ? info->size : 0;
}

std::string Indent(const std::string& text) {
  std::string out = "  ";
  for (char c : text) {
    out += c;
    if (c == '\n') out += "  ";
  }
  return out;
}

// --- Starting ---------------------------------------------------------------

bool FoundInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    if (::access(JoinPath(dir, name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

std::vector<std::string> ResolveCommand(const Settings& s, const std::string& release_dir) {
  std::vector<std::string> argv = s.command;
  const std::string& cmd = argv[0];
  if (cmd[0] == '/') return argv;
  if (cmd.find('/') == std::string::npos && FoundInPath(cmd)) return argv;
  argv[0] = AbsolutePath(cmd, release_dir);
  return argv;
}

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\"'\\$") == std::string::npos;
    out += plain ? a : "'" + a + "'";
  }
  return out;
}

// --- Process statistics for triggers (cpu, memory) --------------------------

struct CpuSample {
  pid_t pid = 0;
  uint64_t ticks = 0;
  int64_t at_us = 0;
};

bool ReadProcStat(pid_t pid, uint64_t* cpu_ticks, uint64_t* rss_pages) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  auto rp = line.rfind(')');
  if (rp == std::string::npos) return false;
  std::istringstream rest(line.substr(rp + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 24; ++i) {
    if (!(rest >> field)) return false;
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 24) *rss_pages = std::strtoull(field.c_str(), nullptr, 10);
  }
  *cpu_ticks = utime + stime;
  return true;
}

uint64_t MemTotalBytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit) {
    if (key == "MemTotal:") return kb * 1024;
  }
  return 0;
}

// --- The driver -------------------------------------------------------------

class ProcessDriver : public Driver {
 public:
  bool IsService() const override { return true; }

  Result<json> Snapshot(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    FileSystem* fs = ctx.env->fs();
    auto cur = ReadCurrent(s, fs);
    if (!cur.ok()) {
      if (cur.status().IsNotFound()) {
        return json{{"release", nullptr}, {"blobs", json::array()}, {"current", s.current}};
      }
      return cur.status();
    }
    if (ctx.store == nullptr) return Status::Internal("process snapshot without a store");
    if (!fs->Exists(cur->dir + "/.")) {
      return Status::FailedPrecondition(s.current + " points at " + cur->dir +
                                        ", which does not exist; deploy a release first");
    }
    Store* store = ctx.store;
    std::set<std::string> blobs;
    auto put = [&](const std::string& path) -> Result<std::string> {
      BACKSTOP_ASSIGN_OR_RETURN(std::string digest, store->PutFile(path));
      blobs.insert(digest);
      return digest;
    };
    BACKSTOP_ASSIGN_OR_RETURN(
        Tree tree, ScanTree(fs, cur->dir, put, [&](const std::string& l) { ctx.Progress(l); }));
    BACKSTOP_ASSIGN_OR_RETURN(std::string tree_digest,
                              store->Put(TreeToJson(cur->release, tree).dump()));
    blobs.insert(tree_digest);
    uint64_t bytes = 0;
    for (const auto& e : tree.entries) bytes += e.size;
    ctx.Progress("release " + cur->release + ": " + FormatThousands(tree.entries.size()) +
                 " entries, " + FormatThousands(bytes) + " bytes");
    return json{{"release", cur->release},
                {"release_tree", tree_digest},
                {"blobs", json(std::vector<std::string>(blobs.begin(), blobs.end()))},
                {"current", s.current}};
  }

  Result<json> Describe(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    FileSystem* fs = ctx.env->fs();
    json out = {{"current", s.current}, {"releases_dir", s.releases}};
    auto cur = ReadCurrent(s, fs);
    if (cur.ok()) {
      out["release"] = cur->release;
    } else if (cur.status().IsNotFound()) {
      out["release"] = nullptr;
    } else {
      return cur.status();
    }
    auto releases = ListReleaseNames(s, fs);
    out["releases"] = releases.ok() ? json(*releases) : json::array();
    out["running"] = false;
    out["pid"] = nullptr;
    if (!s.record_path.empty()) {
      if (auto rec = ReadRecord(s, fs); rec && IsOurs(ctx.env->processes(), *rec)) {
        out["running"] = true;
        out["pid"] = rec->pid;
        out["running_release"] = rec->release;
        out["started_at"] = rec->started_at;
      }
      out["log"] = s.log;
    }
    return out;
  }

  Status Stop(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    return StopProcesses(s, ctx, /*recorded=*/true);
  }

  Status Start(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_RETURN_IF_ERROR(RequireCommand(s));
    FileSystem* fs = ctx.env->fs();
    ProcessRunner* procs = ctx.env->processes();
    Clock* clock = ctx.env->clock();
    auto cur = ReadCurrent(s, fs);
    if (!cur.ok()) {
      if (cur.status().IsNotFound()) {
        return Status::FailedPrecondition("cannot start " + s.name + ": " + cur.status().message() +
                                          "; deploy a release first (backstop deploy " + s.name +
                                          " VERSION)");
      }
      return cur.status();
    }
    if (!fs->Exists(cur->dir + "/.")) {
      return Status::FailedPrecondition("cannot start " + s.name + ": " + s.current +
                                        " points at " + cur->dir + ", which does not exist");
    }
    std::vector<std::string> argv = ResolveCommand(s, cur->dir);
    if (ctx.dry_run) {
      ctx.Progress("would start " + s.name + " release " + cur->release + ": " + JoinArgv(argv));
      return Status::OK();
    }
    if (auto rec = ReadRecord(s, fs); rec && IsOurs(procs, *rec)) {
      if (rec->released && rec->release == cur->release) {
        // Still, no second copy may run beside it (an orphan of an older start).
        BACKSTOP_RETURN_IF_ERROR(StopProcesses(s, ctx, /*recorded=*/false));
        ctx.Progress(s.name + " already running (pid " + std::to_string(rec->pid) + ", release " +
                     rec->release + ")");
        return Status::OK();
      }
      ctx.Progress(rec->released ? s.name + " is running release " + rec->release + ", not " +
                                       cur->release + ": stopping it first"
                                 : s.name + ": pid " + std::to_string(rec->pid) +
                                       " was started by a backstop that stopped before "
                                       "confirming it ran; stopping it to start afresh");
    }
    // The recorded process, any unrecorded one of this service, a stale record.
    BACKSTOP_RETURN_IF_ERROR(StopProcesses(s, ctx, /*recorded=*/true));

    BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(s.log)));
    const uint64_t log_offset = FileSize(fs, s.log);
    const std::string started_at = FormatRfc3339(clock->WallMicros());
    BACKSTOP_RETURN_IF_ERROR(fs->AppendFile(s.log, "--- backstop: starting " + s.name +
                                                       " release " + cur->release + " at " +
                                                       started_at + ": " + JoinArgv(argv) + "\n"));
    ProcessOptions opts;
    opts.argv = argv;
    opts.cwd = cur->dir;
    opts.env = s.env;
    for (const auto& entry : s.marker) {
      const size_t eq = entry.find('=');
      opts.env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    opts.env["BACKSTOP_RELEASE"] = cur->release;
    opts.env["BACKSTOP_RELEASE_DIR"] = cur->dir;
    opts.output_file = s.log;
    Record rec;
    rec.release = cur->release;
    rec.started_at = started_at;
    rec.command = argv;
    rec.log = s.log;
    rec.released = false;
    // The process is recorded while it is held before exec: a crash at any
    // point leaves either nothing running or a recorded process.
    opts.before_exec = [&](pid_t pid) -> Status {
      CrashPointForTest("process.after-spawn");
      BACKSTOP_ASSIGN_OR_RETURN(rec.start_ticks, procs->StartTicks(pid));
      rec.pid = pid;
      BACKSTOP_RETURN_IF_ERROR(WriteRecord(s, fs, rec));
      CrashPointForTest("process.after-record");
      return Status::OK();
    };
    auto pid = procs->SpawnDetached(opts);
    if (!pid.ok()) {
      if (rec.pid != 0) (void)fs->Remove(s.record_path);  // it never ran
      return pid.status().WithContext("starting " + s.name);
    }
    CrashPointForTest("process.after-release");
    rec.released = true;
    BACKSTOP_RETURN_IF_ERROR(WriteRecord(s, fs, rec));

    // A command that fails at once (bad configuration) is reported here with
    // its log rather than as a health gate timing out.
    clock->SleepForMicros(kStartCheckMs * 1000);
    if (!IsOurs(procs, rec)) {
      (void)fs->Remove(s.record_path);
      std::string tail = LogTail(s.log, 10, log_offset);
      return Status::Unavailable(s.name + " (release " + cur->release + ", pid " +
                                 std::to_string(*pid) + ") exited right after it started" +
                                 (tail.empty()
                                      ? "; it wrote nothing to " + s.log
                                      : "; last lines of " + s.log + ":\n" + Indent(tail)));
    }
    ctx.Progress("started " + s.name + " release " + cur->release + " (pid " +
                 std::to_string(*pid) + ")");
    return Status::OK();
  }

  // Before anything is stopped: the target release's directory is there
  // (rebuilt from the store when it is missing), or everything needed to
  // rebuild it at the restore is in the store. Changes nothing that runs.
  Status Prepare(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(std::optional<Rebuild> rebuild, CheckedRebuild(c, entry, ctx));
    if (!rebuild) return Status::OK();
    if (ctx.env->fs()->Exists(ReleaseDir(rebuild->settings, rebuild->release) + "/.")) {
      return Status::OK();  // differs from the restore point: rebuilt (and set aside) by Restore
    }
    return RestoreReleaseDir(rebuild->settings, rebuild->release, rebuild->tree, ctx);
  }

  Status CheckRestorable(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    return CheckedRebuild(c, entry, ctx).status();
  }

  Status Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    FileSystem* fs = ctx.env->fs();
    BACKSTOP_ASSIGN_OR_RETURN(std::optional<std::string> target, TargetRelease(s, entry));
    if (!target) return RestoreNothingDeployed(s, ctx);
    const std::string& release = *target;
    const std::string dir = ReleaseDir(s, release);
    BACKSTOP_ASSIGN_OR_RETURN(std::optional<std::string> tree,
                              TreeToRebuildFrom(s, entry, release, ctx));
    if (tree) BACKSTOP_RETURN_IF_ERROR(RestoreReleaseDir(s, release, *tree, ctx));

    auto cur = ReadCurrent(s, fs);
    if (cur.ok() && cur->dir == dir) return Status::OK();
    if (ctx.dry_run) {
      ctx.Progress("would point " + s.current + " at " + dir);
      return Status::OK();
    }
    BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(s.current), 0755));
    BACKSTOP_RETURN_IF_ERROR(fs->SymlinkAtomic(dir, s.current));
    ctx.Progress(s.name + ": current -> " + release +
                 (cur.ok() ? " (was " + cur->release + ")" : ""));
    return Status::OK();
  }

  Status VerifyRestored(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    FileSystem* fs = ctx.env->fs();
    auto cur = ReadCurrent(s, fs);
    if (!entry.contains("release") || entry["release"].is_null()) {
      if (cur.ok()) {
        return Status::FailedPrecondition(s.current + " points at " + cur->release +
                                          "; expected nothing deployed");
      }
      return cur.status().IsNotFound() ? Status::OK() : cur.status();
    }
    const std::string release = entry["release"].get<std::string>();
    if (!cur.ok()) return cur.status().WithContext("verifying " + s.name);
    const std::string dir = ReleaseDir(s, release);
    if (cur->dir != dir) {
      return Status::FailedPrecondition(s.current + " points at " + cur->dir + "; expected " + dir);
    }
    if (entry.contains("release_tree") && entry["release_tree"].is_string()) {
      if (ctx.store == nullptr) return Status::Internal("process verify without a store");
      BACKSTOP_ASSIGN_OR_RETURN(std::string text,
                                ctx.store->Get(entry["release_tree"].get<std::string>()));
      BACKSTOP_ASSIGN_OR_RETURN(Tree tree, TreeFromJson(text));
      BACKSTOP_ASSIGN_OR_RETURN(std::string diff, DiffTree(fs, dir, tree));
      if (!diff.empty()) {
        return Status::FailedPrecondition("release " + release + " of " + s.name +
                                          " does not match the restore point: " + diff);
      }
    } else if (!fs->Exists(dir + "/.")) {
      return Status::NotFound("release directory " + dir + " does not exist");
    }
    return Status::OK();
  }

  std::string Diagnose(const ComponentSpec& c, DriverContext& ctx) override {
    auto settings = LoadSettings(c, ctx.state_dir);
    if (!settings.ok()) return settings.status().message();
    const Settings& s = *settings;
    FileSystem* fs = ctx.env->fs();
    std::string out;
    auto rec = ReadRecord(s, fs);
    if (!rec) {
      out = s.name + " is not running (no process recorded by backstop)";
    } else if (IsOurs(ctx.env->processes(), *rec)) {
      out = s.name + " is running: pid " + std::to_string(rec->pid) + ", release " + rec->release +
            ", started " + rec->started_at;
    } else {
      out = s.name + " is not running: pid " + std::to_string(rec->pid) + " (release " +
            rec->release + ", started " + rec->started_at +
            ") has exited; its exit status is not known to backstop (the process was detached), "
            "see the log";
    }
    std::string tail = LogTail(s.log, 10);
    if (tail.empty()) {
      out += "; the log " + s.log + " is empty or missing";
    } else {
      out += "; last lines of " + s.log + ":\n" + Indent(tail);
    }
    return out;
  }

  // Removes the release directories Restore set aside during run `run_id`.
  Status Prune(const ComponentSpec& c, const std::string& run_id, DriverContext& ctx) override {
    if (run_id.empty()) return Status::InvalidArgument("prune needs a run id");
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    FileSystem* fs = ctx.env->fs();
    auto names = fs->ListDir(s.releases);
    if (!names.ok()) return names.status().IsNotFound() ? Status::OK() : names.status();
    const std::string marker = ".replaced-" + run_id;
    for (const auto& n : *names) {
      auto at = n.rfind(marker);
      if (n.empty() || n[0] != '.' || at == std::string::npos) continue;
      std::string rest = n.substr(at + marker.size());  // "" or "-<n>"
      if (!rest.empty() && (rest[0] != '-' || rest.size() == 1 ||
                            rest.find_first_not_of("0123456789", 1) != std::string::npos)) {
        continue;
      }
      if (ctx.dry_run) {
        ctx.Progress("would remove " + JoinPath(s.releases, n));
        continue;
      }
      BACKSTOP_RETURN_IF_ERROR(fs->RemoveAll(JoinPath(s.releases, n)));
      ctx.Progress(s.name + ": removed " + JoinPath(s.releases, n));
    }
    return Status::OK();
  }

  HealthResult Health(const ComponentSpec& c, DriverContext& ctx) override {
    auto settings = LoadSettings(c, ctx.state_dir);
    std::optional<Record> rec;
    bool alive = false;
    if (settings.ok() && !settings->record_path.empty()) {
      rec = ReadRecord(*settings, ctx.env->fs());
      alive = rec && IsOurs(ctx.env->processes(), *rec);
    }
    HealthResult r;
    if (c.health.enabled()) {
      r = RunProbe(c.health, ctx.env);
      // A recorded process that died is down, whatever else answers on its port.
      if (rec && !alive) {
        r.state = HealthResult::State::kFail;
        r.detail = "process " + std::to_string(rec->pid) + " has exited (" + r.detail + ")";
      }
      // And a passing probe counts only when the process it started answers.
      if (alive && r.pass() && settings->check_listener) {
        std::string impostor = ForeignListener(c.health, rec->pid, c.name);
        if (!impostor.empty()) {
          r.state = HealthResult::State::kFail;
          r.detail = impostor;
        }
      }
    } else if (rec) {
      r.state = alive ? HealthResult::State::kPass : HealthResult::State::kFail;
      r.detail = alive ? "process " + std::to_string(rec->pid) + " running"
                       : "process " + std::to_string(rec->pid) + " has exited";
    } else {
      r.state = HealthResult::State::kUnknown;
      r.detail = "no health probe configured and no process recorded";
    }
    if (alive) AddProcessSignals(rec->pid, ctx.env->clock(), &r);
    return r;
  }

 private:
  void AddProcessSignals(pid_t pid, Clock* clock, HealthResult* r) {
    uint64_t ticks = 0, rss_pages = 0;
    if (!ReadProcStat(pid, &ticks, &rss_pages)) return;
    const double rss =
        static_cast<double>(rss_pages) * static_cast<double>(::sysconf(_SC_PAGESIZE));
    r->signals["memory_bytes"] = rss;
    static const uint64_t mem_total = MemTotalBytes();
    if (mem_total > 0) r->signals["memory_percent"] = 100.0 * rss / static_cast<double>(mem_total);
    const int64_t now = clock->NowMicros();
    if (last_cpu_.pid == pid && now > last_cpu_.at_us && ticks >= last_cpu_.ticks) {
      const double cpu_s = static_cast<double>(ticks - last_cpu_.ticks) /
                           static_cast<double>(::sysconf(_SC_CLK_TCK));
      r->signals["cpu_percent"] =
          100.0 * cpu_s / (static_cast<double>(now - last_cpu_.at_us) / 1e6);
    }
    last_cpu_ = {pid, ticks, now};
  }

  // Stops the service's processes, each with its process group: with
  // `recorded`, the recorded one, every process carrying the service's marker
  // and then the record; without, only the processes carrying the marker
  // outside the recorded one's session (orphans of a start that nothing
  // recorded), leaving the running service alone. A pid whose start time is
  // not the one seen is never signalled.
  Status StopProcesses(const Settings& s, DriverContext& ctx, bool recorded) {
    FileSystem* fs = ctx.env->fs();
    ProcessRunner* procs = ctx.env->processes();
    Clock* clock = ctx.env->clock();
    auto rec = s.record_path.empty() ? std::nullopt : ReadRecord(s, fs);
    const bool leader_alive = rec && IsOurs(procs, *rec);
    std::vector<ProcessIdentity> targets;
    if (recorded && rec && !leader_alive) {
      ctx.Progress(s.name +
                   (procs->IsAlive(rec->pid)
                        ? ": recorded pid " + std::to_string(rec->pid) +
                              " now belongs to another process; not signalled"
                        : " was not running (pid " + std::to_string(rec->pid) + " has exited)"));
    }
    if (recorded && leader_alive) targets.push_back(rec->identity());
    std::string unrecorded;
    const std::vector<ProcessIdentity> marked =
        s.marker.empty() ? std::vector<ProcessIdentity>() : procs->FindByEnvironment(s.marker);
    for (const ProcessIdentity& p : marked) {
      if (leader_alive && p.pid == rec->pid) continue;
      // Started after the running service, or in its session: possibly its
      // own child (a helper it detached), not an orphan of an earlier start.
      const bool maybe_its_own =
          leader_alive && (p.start_ticks >= rec->start_ticks || SessionOf(p.pid) == rec->pid);
      if (maybe_its_own && !recorded) continue;
      targets.push_back(p);  // stopping the service: its detached helpers too
      if (!maybe_its_own) {
        unrecorded += (unrecorded.empty() ? "" : ", ") + std::to_string(p.pid);
      }
    }
    if (!unrecorded.empty()) {
      ctx.Progress(std::string(ctx.dry_run ? "would stop" : "stopping") + " process(es) " +
                   unrecorded + " of " + s.name +
                   " that no record names (left by an interrupted start, or started by hand "
                   "with its environment)");
    }
    if (ctx.dry_run) {
      if (recorded && leader_alive) {
        ctx.Progress("would stop " + s.name + " (pid " + std::to_string(rec->pid) + ")");
      }
      return Status::OK();
    }
    for (const ProcessIdentity& p : targets) {
      Status st = procs->SignalIfSame(p, SIGTERM, /*whole_group=*/true);
      if (!st.ok() && !st.IsNotFound()) return st.WithContext("stopping " + s.name);
    }
    if (!targets.empty()) CrashPointForTest("process.after-sigterm");
    auto any_running = [&] {
      for (const ProcessIdentity& p : targets) {
        auto ticks = procs->StartTicks(p.pid);
        if (procs->IsAlive(p.pid) && ticks.ok() && *ticks == p.start_ticks) return true;
      }
      return false;
    };
    const int64_t deadline = clock->NowMicros() + s.stop_timeout_ms * 1000;
    while (any_running() && clock->NowMicros() < deadline) {
      clock->SleepForMicros(kStopPollMs * 1000);
    }
    if (any_running()) {
      ctx.Progress(s.name + " did not stop within " + FormatDurationMs(s.stop_timeout_ms) +
                   " of SIGTERM; sending SIGKILL");
      for (const ProcessIdentity& p : targets) {
        Status st = procs->SignalIfSame(p, SIGKILL, /*whole_group=*/true);
        if (!st.ok() && !st.IsNotFound()) return st.WithContext("killing " + s.name);
      }
      const int64_t kill_deadline = clock->NowMicros() + kKillWaitMs * 1000;
      while (any_running() && clock->NowMicros() < kill_deadline) {
        clock->SleepForMicros(kStopPollMs * 1000);
      }
      if (any_running()) {
        return Status::Timeout(s.name + " is still alive after SIGKILL; check `ps -o pid,stat -s " +
                               std::to_string(targets.front().pid) + "` (uninterruptible sleep?)");
      }
    }
    if (recorded && leader_alive) {
      ctx.Progress("stopped " + s.name + " (pid " + std::to_string(rec->pid) + ", release " +
                   rec->release + ")");
    }
    if (!recorded || !rec) return Status::OK();
    return fs->Remove(s.record_path);
  }

  // The release `entry` asks for; nullopt for "nothing deployed".
  // The release a restore of `entry` switches to, with the stored tree it
  // can be rebuilt from, once every blob of that tree is known to be in the
  // store; nullopt when the entry names no release or nothing is to rebuild.
  struct Rebuild {
    Settings settings;
    std::string release;
    std::string tree;
  };
  Result<std::optional<Rebuild>> CheckedRebuild(const ComponentSpec& c, const json& entry,
                                                DriverContext& ctx) {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_ASSIGN_OR_RETURN(std::optional<std::string> target, TargetRelease(s, entry));
    if (!target) return std::optional<Rebuild>();
    BACKSTOP_ASSIGN_OR_RETURN(std::optional<std::string> tree,
                              TreeToRebuildFrom(s, entry, *target, ctx));
    if (!tree) return std::optional<Rebuild>();
    BACKSTOP_RETURN_IF_ERROR(CheckTreeBlobs(s, *target, *tree, ctx.store));
    return std::optional<Rebuild>(Rebuild{std::move(s), *target, std::move(*tree)});
  }

  static Result<std::optional<std::string>> TargetRelease(const Settings& s, const json& entry) {
    if (!entry.is_object() || !entry.contains("release")) {
      return Status::InvalidArgument("process entry for " + s.name + " has no \"release\"");
    }
    if (entry["release"].is_null()) return std::optional<std::string>();
    if (!entry["release"].is_string()) {
      return Status::InvalidArgument("process entry for " + s.name +
                                     ": \"release\" must be a string");
    }
    std::string release = entry["release"].get<std::string>();
    BACKSTOP_RETURN_IF_ERROR(CheckReleaseName(release));
    return std::optional<std::string>(std::move(release));
  }

  // The stored file tree `release` must be made equal to: the entry's own;
  // for an entry that names only a release (`--to v1`, the history) whose
  // directory is missing, the newest intact restore point holding this
  // service at that release. nullopt: the directory is used as it is.
  // NotFound when the directory is missing and nothing can rebuild it.
  Result<std::optional<std::string>> TreeToRebuildFrom(const Settings& s, const json& entry,
                                                       const std::string& release,
                                                       DriverContext& ctx) {
    if (entry.contains("release_tree") && entry["release_tree"].is_string()) {
      return std::optional<std::string>(entry["release_tree"].get<std::string>());
    }
    FileSystem* fs = ctx.env->fs();
    if (fs->Exists(ReleaseDir(s, release) + "/.")) return std::optional<std::string>();
    if (ctx.store != nullptr) {
      std::vector<std::string> unreadable;
      std::vector<RestorePoint> points = ListRestorePoints(*ctx.store, &unreadable);
      for (auto it = points.rbegin(); it != points.rend(); ++it) {
        const json& held = it->components.contains(s.name) ? it->components[s.name] : json();
        if (!held.is_object() || held.value("release", json()) != release ||
            !held.contains("release_tree") || !held["release_tree"].is_string()) {
          continue;
        }
        if (!ReadRestorePoint(*ctx.store, it->id).ok()) continue;  // modified: not trusted
        ctx.Progress(s.name + ": release " + release + " is missing from " + s.releases +
                     "; its files are in restore point " + it->id);
        return std::optional<std::string>(held["release_tree"].get<std::string>());
      }
    }
    auto names = ListReleaseNames(s, fs);
    return Status::NotFound("release " + release + " of " + s.name + " not found in " + s.releases +
                            " and no restore point holds its files; available: " +
                            (names.ok() ? JoinNames(*names) : names.status().message()));
  }

  // FailedPrecondition naming the blobs of the tree that the store lacks.
  static Status CheckTreeBlobs(const Settings& s, const std::string& release,
                               const std::string& tree_digest, Store* store) {
    if (store == nullptr) return Status::Internal("process driver without a store");
    const std::string what = "release " + release + " of " + s.name;
    if (!store->Has(tree_digest)) {
      return Status::FailedPrecondition("the file list of " + what + " (blob " + tree_digest +
                                        ") is missing from the store; it cannot be rebuilt");
    }
    BACKSTOP_ASSIGN_OR_RETURN(std::string text, store->Get(tree_digest));
    BACKSTOP_ASSIGN_OR_RETURN(Tree tree, TreeFromJson(text));
    std::vector<std::string> missing;
    for (const auto& e : tree.entries) {
      if (e.type == "file" && !store->Has(e.sha256))
        missing.push_back(e.path + " (blob " + e.sha256 + ")");
    }
    if (missing.empty()) return Status::OK();
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) list += "\n  " + missing[i];
    if (missing.size() > 5) list += "\n  ... and " + std::to_string(missing.size() - 5) + " more";
    return Status::FailedPrecondition(std::to_string(missing.size()) + " file(s) of " + what +
                                      " are missing from the store; it cannot be rebuilt:" + list);
  }

  Status RestoreNothingDeployed(const Settings& s, DriverContext& ctx) {
    FileSystem* fs = ctx.env->fs();
    auto info = fs->Stat(s.current);
    if (!info.ok()) return info.status().IsNotFound() ? Status::OK() : info.status();
    if (!info->is_symlink) {
      return Status::FailedPrecondition(s.current + " is not a symlink; not removing it");
    }
    if (ctx.dry_run) {
      ctx.Progress("would remove " + s.current + " (nothing was deployed)");
      return Status::OK();
    }
    BACKSTOP_RETURN_IF_ERROR(fs->Remove(s.current));
    BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(s.current)));
    ctx.Progress(s.name + ": removed " + s.current +
                 " (nothing was deployed at the restore point)");
    return Status::OK();
  }

  // Makes <releases>/<release> equal the stored tree, rebuilding it when it is
  // missing or differs. The replaced directory is kept aside, never deleted.
  Status RestoreReleaseDir(const Settings& s, const std::string& release,
                           const std::string& tree_digest, DriverContext& ctx) {
    FileSystem* fs = ctx.env->fs();
    if (ctx.store == nullptr) return Status::Internal("process restore without a store");
    BACKSTOP_ASSIGN_OR_RETURN(std::string text, ctx.store->Get(tree_digest));
    BACKSTOP_ASSIGN_OR_RETURN(Tree tree, TreeFromJson(text));
    const std::string dir = ReleaseDir(s, release);
    const bool present = fs->Exists(dir);
    std::string diff;
    if (present) {
      BACKSTOP_ASSIGN_OR_RETURN(diff, DiffTree(fs, dir, tree));
      if (diff.empty()) return Status::OK();
    }
    const std::string token =
        ctx.run_id.empty() ? FormatCompactUtc(ctx.env->clock()->WallMicros()) : ctx.run_id;
    if (ctx.dry_run) {
      ctx.Progress(present ? "would rebuild release " + release + " (" + diff + ")"
                           : "would rebuild release " + release + " from the store");
      return Status::OK();
    }
    // Built next to its final place (same file system), renamed in when complete.
    const std::string staging = JoinPath(s.releases, "." + release + ".restoring");
    BACKSTOP_RETURN_IF_ERROR(fs->RemoveAll(staging));  // a leftover of an interrupted attempt
    BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(s.releases, 0755));
    ctx.Progress(s.name + ": rebuilding release " + release + " from the store (" +
                 FormatThousands(tree.entries.size()) + " entries)");
    Status built = BuildTree(fs, ctx.store, tree, staging);
    if (!built.ok()) {
      (void)fs->RemoveAll(staging);
      return built.WithContext("rebuilding release " + release + " of " + s.name +
                               " (the live release directory was not touched)");
    }
    if (present) {
      std::string aside = JoinPath(s.releases, "." + release + ".replaced-" + token);
      for (int n = 2; fs->Exists(aside); ++n) {
        aside =
            JoinPath(s.releases, "." + release + ".replaced-" + token + "-" + std::to_string(n));
      }
      BACKSTOP_RETURN_IF_ERROR(fs->Rename(dir, aside));
      ctx.Progress(s.name + ": release " + release + " differed from the restore point (" + diff +
                   "); moved it aside to " + aside);
    }
    BACKSTOP_RETURN_IF_ERROR(fs->Rename(staging, dir));
    return fs->SyncDir(s.releases);
  }

  CpuSample last_cpu_;
};

std::vector<SettingSchema> Schema() {
  using T = SettingSchema::Type;
  std::vector<SettingSchema> v;
  auto add = [&v](std::string key, T type, bool required, std::string help,
                  json default_value = nullptr) {
    v.push_back(
        MakeSetting(std::move(key), type, required, std::move(help), std::move(default_value)));
  };
  add("releases", T::kPath, true,
      "directory with one subdirectory per release (e.g. /srv/app/releases/v1)");
  add("current", T::kPath, false,
      "the symlink to the deployed release; default: `current` next to the releases directory");
  add("command", T::kStringList, true,
      "argv that starts the service; argv[0] relative to the release directory unless absolute "
      "or a bare name found in PATH, e.g. [bin/orchestrator, --config, config.json]");
  add("env", T::kStringMap, false, "extra environment variables for the service");
  add("stop_timeout", T::kDuration, false,
      "how long the service may take to exit after SIGTERM before SIGKILL; default 10s", "10s");
  add("log", T::kPath, false,
      "file that receives the service's stdout and stderr; default <state_dir>/logs/<name>.log");
  add("check_listener", T::kBool, false,
      "the health probe passes only when the service's own processes listen on its loopback "
      "port; set false when the probe goes through another process (a local proxy); default "
      "true",
      true);
  return v;
}

}  // namespace

bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      size_t iz = i, jz = j;  // skip leading zeros
      while (iz + 1 < ie && a[iz] == '0') ++iz;
      while (jz + 1 < je && b[jz] == '0') ++jz;
      if (ie - iz != je - jz) return ie - iz < je - jz;
      int cmp = a.compare(iz, ie - iz, b, jz, je - jz);
      if (cmp != 0) return cmp < 0;
      if (ie - i != je - j) return ie - i < je - j;  // "v01" after "v1"
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

Result<std::vector<std::string>> ListReleases(const ComponentSpec& c, Env* env) {
  BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ""));
  return ListReleaseNames(s, env->fs());
}

Result<std::string> CurrentRelease(const ComponentSpec& c, Env* env) {
  BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ""));
  BACKSTOP_ASSIGN_OR_RETURN(CurrentTarget t, ReadCurrent(s, env->fs()));
  return t.release;
}

DriverInfo ProcessDriverInfo() {
  DriverInfo info;
  info.name = "process";
  info.kinds = {"service"};
  info.summary =
      "a local process started from a release directory; releases switched by an atomic "
      "`current` symlink";
  info.settings = Schema();
  info.factory = [] { return std::make_unique<ProcessDriver>(); };
  return info;
}

}  // namespace backstop::process
