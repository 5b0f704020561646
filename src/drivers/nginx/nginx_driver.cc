// The `nginx` driver. See nginx_driver.h for the contract.
#include "drivers/nginx/nginx_driver.h"

#include <signal.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "base/crash_point.h"
#include "base/hash.h"
#include "base/strings.h"
#include "drivers/config_hash.h"
#include "drivers/driver_settings.h"
#include "drivers/nginx/nginx_upstream.h"
#include "store/store.h"

namespace backstop::nginx {
namespace {

using nlohmann::json;

// Beside the live site: "<site><suffix>-<run>".
constexpr char kStagedSuffix[] = ".backstop-restore";
constexpr char kPreviousSuffix[] = ".backstop-previous";
constexpr int64_t kPollMicros = 10'000;
constexpr int64_t kValidateTimeoutMs = 60'000;

struct Settings {
  std::string name;
  std::string site;
  std::string main_config;
  std::string pid_file;
  std::string nginx = "nginx";
  std::string prefix;
  std::string error_log;
  std::string upstreams;  // empty: the component does not route
  int64_t reload_timeout_ms = 10'000;
  std::string component_dir;  // <state_dir>/components/<name>
  std::string journal_path;   // <component_dir>/restore.json
};

Result<Settings> LoadSettings(const ComponentSpec& c, const std::string& state_dir) {
  Settings s;
  s.name = c.name;
  const json& j = c.settings;
  auto text = [&](const char* key, std::string* out, bool required) -> Status {
    if (j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty()) {
      *out = j[key].get<std::string>();
    } else if (required) {
      return Status::InvalidArgument("component " + c.name + ": setting '" + key + "' is required");
    }
    return Status::OK();
  };
  BACKSTOP_RETURN_IF_ERROR(text("site", &s.site, true));
  BACKSTOP_RETURN_IF_ERROR(text("main_config", &s.main_config, true));
  BACKSTOP_RETURN_IF_ERROR(text("pid_file", &s.pid_file, true));
  BACKSTOP_RETURN_IF_ERROR(text("nginx", &s.nginx, false));
  BACKSTOP_RETURN_IF_ERROR(text("prefix", &s.prefix, false));
  BACKSTOP_RETURN_IF_ERROR(text("error_log", &s.error_log, false));
  BACKSTOP_RETURN_IF_ERROR(text("upstreams", &s.upstreams, false));
  BACKSTOP_ASSIGN_OR_RETURN(s.reload_timeout_ms, DurationSettingMs(j, "reload_timeout", 10'000));
  s.site = AbsolutePath(s.site, CurrentDir());
  s.main_config = AbsolutePath(s.main_config, CurrentDir());
  s.pid_file = AbsolutePath(s.pid_file, CurrentDir());
  if (!s.upstreams.empty()) s.upstreams = AbsolutePath(s.upstreams, CurrentDir());
  if (state_dir.empty()) {
    return Status::InvalidArgument("component " + c.name +
                                   ": the nginx driver needs a state directory for its journal");
  }
  s.component_dir = JoinPath(JoinPath(state_dir, "components"), c.name);
  s.journal_path = JoinPath(s.component_dir, "restore.json");
  return s;
}

struct SiteFile {
  std::string sha256;  // empty when absent
  uint32_t mode = 0644;
  uint64_t size = 0;
};

// The live site file; a symbolic link is refused (never read or written through).
Result<SiteFile> InspectSite(FileSystem* fs, const std::string& path) {
  SiteFile f;
  auto info = fs->Stat(path);
  if (!info.ok()) {
    if (info.status().IsNotFound()) return f;
    return info.status();
  }
  if (!info->is_regular) {
    return Status::FailedPrecondition(path +
                                      " is not a regular file; the nginx driver owns one site "
                                      "config file and never reads or writes through a link");
  }
  f.mode = info->mode;
  f.size = info->size;
  BACKSTOP_ASSIGN_OR_RETURN(f.sha256, Sha256File(path));
  return f;
}

json SiteJson(const std::string& path, const SiteFile& f) {
  return {{"path", path}, {"sha256", f.sha256}, {"mode", f.mode}, {"size", f.size}};
}

struct WantedSite {
  std::string path;
  std::string sha256;
  uint32_t mode = 0644;
};

Result<WantedSite> ParseEntry(const json& entry, const std::string& name) {
  WantedSite w;
  try {
    const json& site = entry.at("site");
    w.path = site.at("path").get<std::string>();
    w.sha256 = site.at("sha256").get<std::string>();
    w.mode = site.at("mode").get<uint32_t>() & 07777;
  } catch (const std::exception& e) {
    return Status::InvalidArgument("nginx entry for " + name + " is malformed: " + e.what());
  }
  if (!IsSha256Hex(w.sha256)) {
    return Status::Corruption("nginx entry for " + name + ": bad digest for " + w.path);
  }
  return w;
}

// The pids in /proc/<pid>/task/<pid>/children (nginx's master is single-threaded).
std::set<pid_t> Children(FileSystem* fs, pid_t pid) {
  std::set<pid_t> out;
  const std::string p = std::to_string(pid);
  auto text = fs->ReadFile("/proc/" + p + "/task/" + p + "/children");
  if (!text.ok()) return out;
  std::istringstream words(*text);
  long child = 0;
  while (words >> child) out.insert(static_cast<pid_t>(child));
  return out;
}

// An old worker told to quit retitles itself, then closes its listening
// sockets: from then on, new connections go to the new generation only.
bool IsShuttingDown(FileSystem* fs, pid_t worker) {
  auto cmdline = fs->ReadFile("/proc/" + std::to_string(worker) + "/cmdline");
  return !cmdline.ok() || cmdline->find("shutting down") != std::string::npos;
}

class NginxDriver : public Driver {
 public:
  Result<json> Snapshot(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    if (ctx.store == nullptr) return Status::Internal("nginx snapshot without a store");
    BACKSTOP_ASSIGN_OR_RETURN(SiteFile f, InspectSite(ctx.env->fs(), s.site));
    if (f.sha256.empty()) {
      return Status::FailedPrecondition("site config " + s.site + " of " + s.name +
                                        " does not exist; nothing to capture");
    }
    auto digest = ctx.store->PutFile(s.site);
    if (!digest.ok()) return digest.status().WithContext("storing " + s.site);
    f.sha256 = *digest;
    return json{{"site", SiteJson(s.site, f)},
                {"blobs", json::array({f.sha256})},
                {"config_hash", ConfigHash({{s.site, f.sha256}})}};
  }

  Result<json> Describe(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_ASSIGN_OR_RETURN(SiteFile f, InspectSite(ctx.env->fs(), s.site));
    json out = {{"site", SiteJson(s.site, f)}, {"config_hash", ConfigHash({{s.site, f.sha256}})}};
    auto master = MasterPid(s, ctx);
    if (master.ok()) out["master_pid"] = *master;
    if (!s.upstreams.empty()) {
      json routes = json::object();
      auto names = ctx.env->fs()->ListDir(s.upstreams);
      for (const std::string& name : names.ok() ? *names : std::vector<std::string>{}) {
        if (name.size() <= 5 || name.compare(name.size() - 5, 5, ".conf") != 0) continue;
        const std::string upstream = name.substr(0, name.size() - 5);
        auto servers = Routed(c, upstream, ctx);
        if (servers.ok()) routes[upstream] = *servers;
      }
      out["routes"] = routes;
    }
    return out;
  }

  Status CheckRestorable(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(WantedSite w, ParseEntry(entry, c.name));
    if (ctx.store == nullptr) return Status::Internal("nginx check without a store");
    if (ctx.store->Has(w.sha256)) return Status::OK();
    return Status::FailedPrecondition(
        "site config of " + c.name + " cannot be restored: the store " + ctx.store->root() +
        " lacks the content of " + w.path + " (blob " + w.sha256.substr(0, 12) + "…)");
  }

  Status Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_ASSIGN_OR_RETURN(WantedSite w, ParseEntry(entry, s.name));
    if (w.path != s.site) {
      return Status::FailedPrecondition("the restore point holds " + w.path + " for " + s.name +
                                        ", but its site setting is now " + s.site);
    }
    if (ctx.dry_run) {
      ctx.Progress("would validate and restore " + s.site + ", then reload nginx");
      return Status::OK();
    }
    FileSystem* fs = ctx.env->fs();
    BACKSTOP_ASSIGN_OR_RETURN(bool reload_pending, FinishInterrupted(s, ctx));
    BACKSTOP_ASSIGN_OR_RETURN(SiteFile live, InspectSite(fs, s.site));
    if (live.sha256 == w.sha256 && !reload_pending) return Status::OK();
    if (live.sha256 != w.sha256) {
      if (ctx.store == nullptr) return Status::Internal("nginx restore without a store");
      const std::string staged = Beside(s.site, kStagedSuffix, ctx);
      Status st = ctx.store->GetToFile(w.sha256, staged, w.mode);
      if (!st.ok()) {
        (void)fs->Remove(staged);
        return st.WithContext("restoring " + s.site + "; the live site config was not changed");
      }
      BACKSTOP_RETURN_IF_ERROR(
          SwapValidated(s, s.site, staged, live,
                        "the site config of " + s.name + " from the restore point", ctx));
      ctx.Progress(s.name + ": restored " + s.site + " (nginx -t passed)");
    }
    return ReloadAndClose(s, ctx);
  }

  Status Route(const ComponentSpec& c, const std::string& upstream,
               const std::vector<std::string>& servers, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_RETURN_IF_ERROR(CheckUpstreamName(upstream));
    BACKSTOP_RETURN_IF_ERROR(CheckUpstreamServers(servers));
    BACKSTOP_ASSIGN_OR_RETURN(std::string path, UpstreamPath(s, upstream));
    const std::string what =
        "routing upstream " + upstream + " of " + s.name + " to " + Join(servers, ", ");
    if (ctx.dry_run) {
      ctx.Progress("would validate " + what + ", then reload nginx");
      return Status::OK();
    }
    FileSystem* fs = ctx.env->fs();
    BACKSTOP_RETURN_IF_ERROR(EnsureUpstreamsDir(s, fs));
    BACKSTOP_ASSIGN_OR_RETURN(bool reload_pending, FinishInterrupted(s, ctx));
    const std::string text = UpstreamConfigText(s.name, upstream, servers);
    BACKSTOP_ASSIGN_OR_RETURN(SiteFile live, InspectSite(fs, path));
    const bool equal = live.sha256 == Sha256Hex(text);
    if (equal && !reload_pending) return Status::OK();
    if (!equal) {
      const std::string staged = Beside(path, kStagedSuffix, ctx);
      BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(staged, text, 0600));
      BACKSTOP_RETURN_IF_ERROR(SwapValidated(s, path, staged, live, what, ctx));
      ctx.Progress(s.name + ": " + what + " (nginx -t passed)");
    }
    return ReloadAndClose(s, ctx);
  }

  Result<std::vector<std::string>> Routed(const ComponentSpec& c, const std::string& upstream,
                                          DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_RETURN_IF_ERROR(CheckUpstreamName(upstream));
    BACKSTOP_ASSIGN_OR_RETURN(std::string path, UpstreamPath(s, upstream));
    auto text = ctx.env->fs()->ReadFileNoFollow(path);
    if (!text.ok()) {
      if (text.status().IsNotFound()) return std::vector<std::string>{};
      return text.status();
    }
    return ParseUpstreamConfig(upstream, *text);
  }

  Status VerifyRestored(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_ASSIGN_OR_RETURN(WantedSite w, ParseEntry(entry, s.name));
    BACKSTOP_ASSIGN_OR_RETURN(SiteFile live, InspectSite(ctx.env->fs(), s.site));
    if (live.sha256 != w.sha256) {
      return Status::FailedPrecondition("site config " + s.site + " of " + s.name +
                                        " does not match the restore point");
    }
    if (ctx.env->fs()->Exists(s.journal_path)) {
      return Status::FailedPrecondition("site config of " + s.name +
                                        " was restored but nginx has not reloaded it yet");
    }
    return Status::OK();
  }

  HealthResult Health(const ComponentSpec& c, DriverContext& ctx) override {
    const int64_t started = ctx.env->clock()->NowMicros();
    auto elapsed_ms = [&] { return (ctx.env->clock()->NowMicros() - started) / 1000; };
    auto s = LoadSettings(c, ctx.state_dir);
    if (!s.ok()) {
      return HealthResult::Make(HealthResult::State::kFail, 0, s.status().message());
    }
    auto master = MasterPid(*s, ctx);
    if (!master.ok()) {
      return HealthResult::Make(HealthResult::State::kFail, elapsed_ms(),
                                master.status().message());
    }
    HealthResult probe = Driver::Health(c, ctx);
    if (probe.state != HealthResult::State::kUnknown || c.health.enabled()) return probe;
    return HealthResult::Make(HealthResult::State::kPass, elapsed_ms(),
                              "nginx master " + std::to_string(*master) + " running");
  }

 private:
  Result<json> ReadJournal(const Settings& s, DriverContext& ctx) {
    auto text = ctx.env->fs()->ReadFileNoFollow(s.journal_path);
    if (!text.ok()) {
      if (text.status().IsNotFound()) return json();
      return text.status();
    }
    json j = json::parse(*text, nullptr, false);
    if (!j.is_object()) return Status::Corruption(s.journal_path + " is not a JSON object");
    return j;
  }

  Status WriteJournal(const Settings& s, const json& j, DriverContext& ctx) {
    BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->CreateDirs(s.component_dir));
    return ctx.env->fs()->WriteFileAtomic(s.journal_path, j.dump() + "\n");
  }

  // "<file><suffix>-<run>": beside the file, in the same directory (one rename).
  static std::string Beside(const std::string& file, const char* suffix, DriverContext& ctx) {
    return file + suffix + "-" + (ctx.run_id.empty() ? std::string("manual") : ctx.run_id);
  }

  Result<std::string> UpstreamPath(const Settings& s, const std::string& upstream) {
    if (s.upstreams.empty()) {
      return Status::FailedPrecondition(
          "component " + s.name +
          " cannot route: its setting 'upstreams' is not set (a directory Backstop owns, which "
          "nginx's config includes as `include <upstreams>/*.conf;`)");
    }
    return JoinPath(s.upstreams, upstream + ".conf");
  }

  // The upstreams directory is Backstop's: created 0700; one that is a link,
  // or that others may read or write, is refused (anyone who can write there
  // routes the traffic).
  Status EnsureUpstreamsDir(const Settings& s, FileSystem* fs) {
    auto info = fs->Stat(s.upstreams);
    if (!info.ok()) {
      if (!info.status().IsNotFound()) return info.status();
      return fs->CreateDirs(s.upstreams, 0700);
    }
    if (info->is_symlink || !info->is_dir) {
      return Status::FailedPrecondition(
          "upstreams " + s.upstreams + " of " + s.name +
          " is not a directory; Backstop never routes through a link");
    }
    if ((info->mode & 077) != 0) {
      return Status::FailedPrecondition("upstreams directory " + s.upstreams + " of " + s.name +
                                        " is open to other users; Backstop owns it (chmod 700 " +
                                        s.upstreams + ")");
    }
    return Status::OK();
  }

  // What an interrupted swap (a site restore or a route, same journal) left:
  // a candidate live before it passed nginx -t is taken out again (the
  // previous file put back, or a file that did not exist removed); true when
  // a validated file is in place but nginx may not have reloaded it yet.
  Result<bool> FinishInterrupted(const Settings& s, DriverContext& ctx) {
    BACKSTOP_ASSIGN_OR_RETURN(json journal, ReadJournal(s, ctx));
    if (!journal.is_object()) return false;
    const std::string phase = journal.value("phase", "");
    if (phase == "reloading") return true;
    if (phase != "validating") return false;
    FileSystem* fs = ctx.env->fs();
    const std::string file = journal.value("file", s.site);
    if (journal.value("created", false)) {
      BACKSTOP_RETURN_IF_ERROR(fs->Remove(file));
      BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(file)));
    } else {
      BACKSTOP_RETURN_IF_ERROR(PutPreviousBack(file, journal.value("previous", ""), ctx));
    }
    const std::string staged = journal.value("staged", "");
    if (!staged.empty()) BACKSTOP_RETURN_IF_ERROR(fs->Remove(staged));
    BACKSTOP_RETURN_IF_ERROR(fs->Remove(s.journal_path));
    return false;
  }

  Status PutPreviousBack(const std::string& file, const std::string& previous, DriverContext& ctx) {
    FileSystem* fs = ctx.env->fs();
    if (previous.empty() || !fs->Exists(previous)) return Status::OK();
    BACKSTOP_RETURN_IF_ERROR(fs->Rename(previous, file));
    return fs->SyncDir(Dirname(file));
  }

  // Puts `staged` in place of `target` (whose content is `live`) only if the
  // full config passes nginx -t with it; otherwise `target` is as it was and
  // nginx's message is returned. `what` names the change in that message.
  // On success the journal says "reloading": ReloadAndClose must follow.
  Status SwapValidated(const Settings& s, const std::string& target, const std::string& staged,
                       const SiteFile& live, const std::string& what, DriverContext& ctx) {
    FileSystem* fs = ctx.env->fs();
    const bool created = live.sha256.empty();
    const std::string previous = created ? std::string() : Beside(target, kPreviousSuffix, ctx);
    if (!created) {
      BACKSTOP_ASSIGN_OR_RETURN(std::string current, fs->ReadFileNoFollow(target));
      BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(previous, current, live.mode));
    }
    BACKSTOP_RETURN_IF_ERROR(WriteJournal(s,
                                          {{"run_id", ctx.run_id},
                                           {"phase", "validating"},
                                           {"file", target},
                                           {"staged", staged},
                                           {"previous", previous},
                                           {"created", created}},
                                          ctx));
    CrashPointForTest("nginx.after-stage");
    BACKSTOP_RETURN_IF_ERROR(fs->Rename(staged, target));
    BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(target)));
    CrashPointForTest("nginx.after-swap");
    Status valid = Validate(s, what, ctx);
    if (!valid.ok()) {
      if (created) {
        BACKSTOP_RETURN_IF_ERROR(fs->Remove(target));
        BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(target)));
      } else {
        BACKSTOP_RETURN_IF_ERROR(PutPreviousBack(target, previous, ctx));
      }
      BACKSTOP_RETURN_IF_ERROR(fs->Remove(s.journal_path));
      return valid;
    }
    BACKSTOP_RETURN_IF_ERROR(
        WriteJournal(s, {{"run_id", ctx.run_id}, {"phase", "reloading"}, {"file", target}}, ctx));
    if (!created) (void)fs->Remove(previous);
    return Status::OK();
  }

  Status ReloadAndClose(const Settings& s, DriverContext& ctx) {
    CrashPointForTest("nginx.before-reload");
    BACKSTOP_RETURN_IF_ERROR(Reload(s, ctx));
    return ctx.env->fs()->Remove(s.journal_path);
  }

  std::vector<std::string> NginxArgs(const Settings& s) const {
    std::vector<std::string> argv = {s.nginx};
    if (!s.prefix.empty()) argv.insert(argv.end(), {"-p", s.prefix});
    if (!s.error_log.empty()) argv.insert(argv.end(), {"-e", s.error_log});
    argv.insert(argv.end(), {"-c", s.main_config});
    return argv;
  }

  Status Validate(const Settings& s, const std::string& what, DriverContext& ctx) {
    ProcessOptions opts;
    opts.argv = NginxArgs(s);
    opts.argv.insert(opts.argv.begin() + 1, "-t");
    opts.timeout_ms = kValidateTimeoutMs;
    auto run = ctx.env->processes()->Run(opts);
    if (!run.ok()) return run.status().WithContext("validating " + s.name + " with nginx -t");
    if (run->success()) return Status::OK();
    // nginx -t writes its verdict to stderr: keep its [emerg] lines, nginx's own words.
    std::vector<std::string> lines;
    std::istringstream err(run->err);
    for (std::string line; std::getline(err, line);) {
      if (line.find("[emerg]") != std::string::npos || line.find("[crit]") != std::string::npos) {
        lines.push_back(Trim(line));
      }
    }
    const std::string why = lines.empty() ? run->Describe() : Join(lines, "; ");
    return Status::FailedPrecondition(what + " fails nginx -t against " + s.main_config + ": " +
                                      why +
                                      "; it was not put in place and nginx keeps serving the "
                                      "running config");
  }

  Result<pid_t> MasterPid(const Settings& s, DriverContext& ctx) {
    auto text = ctx.env->fs()->ReadFile(s.pid_file);
    if (!text.ok()) {
      return Status::Unavailable("nginx of " + s.name + " is not running: no pid file " +
                                 s.pid_file + " (" + text.status().message() + ")");
    }
    pid_t pid = 0;
    try {
      pid = static_cast<pid_t>(std::stol(Trim(*text)));
    } catch (const std::exception&) {
      return Status::Unavailable("nginx pid file " + s.pid_file + " holds no pid");
    }
    if (pid <= 0 || !ctx.env->processes()->IsAlive(pid)) {
      return Status::Unavailable("nginx of " + s.name + " is not running: master " +
                                 std::to_string(pid) + " from " + s.pid_file + " is gone");
    }
    return pid;
  }

  // SIGHUP to the master, then wait until it has a worker it did not have
  // before and every old worker is gone or shutting down.
  Status Reload(const Settings& s, DriverContext& ctx) {
    BACKSTOP_ASSIGN_OR_RETURN(pid_t master, MasterPid(s, ctx));
    FileSystem* fs = ctx.env->fs();
    const std::set<pid_t> before = Children(fs, master);
    ctx.Progress(s.name + ": reloading nginx (SIGHUP to master " + std::to_string(master) + ")");
    BACKSTOP_RETURN_IF_ERROR(ctx.env->processes()->Signal(master, SIGHUP, false));
    Clock* clock = ctx.env->clock();
    const int64_t deadline = clock->NowMicros() + s.reload_timeout_ms * 1000;
    while (true) {
      const std::set<pid_t> now = Children(fs, master);
      const bool new_generation = std::any_of(
          now.begin(), now.end(), [&](pid_t child) { return before.count(child) == 0; });
      const bool old_retired = std::all_of(before.begin(), before.end(), [&](pid_t old) {
        return now.count(old) == 0 || IsShuttingDown(fs, old);
      });
      if (new_generation && old_retired) return Status::OK();
      if (clock->NowMicros() >= deadline) break;
      clock->SleepForMicros(kPollMicros);
    }
    return Status::Unavailable(
        "nginx master " + std::to_string(master) + " of " + s.name +
        " started no new workers within " + std::to_string(s.reload_timeout_ms) +
        " ms of SIGHUP: the reload did not take (see nginx's error log" +
        (s.error_log.empty() ? std::string() : " " + s.error_log) +
        "); the validated site config is in place, the reload is retried by the next restore "
        "(backstop rollback --resume)");
  }
};

std::vector<SettingSchema> Schema() {
  using T = SettingSchema::Type;
  std::vector<SettingSchema> v;
  auto add = [&v](std::string key, T type, bool required, std::string help,
                  json default_value = nullptr) {
    v.push_back(
        MakeSetting(std::move(key), type, required, std::move(help), std::move(default_value)));
  };
  add("site", T::kPath, true, "the site config file the component owns, included by main_config");
  add("main_config", T::kPath, true,
      "the nginx.conf that nginx -t validates, e.g. /etc/nginx/nginx.conf");
  add("pid_file", T::kPath, true, "the running nginx master's pid file, e.g. /run/nginx.pid");
  add("nginx", T::kString, false, "the nginx binary; default nginx (from PATH)", "nginx");
  add("prefix", T::kPath, false, "nginx's -p (prefix path), when not the compiled-in one");
  add("error_log", T::kPath, false, "nginx's -e (error log), when not the compiled-in one");
  add("upstreams", T::kPath, false,
      "a directory Backstop owns (0700) where routing writes <upstream>.conf; nginx's config "
      "includes it with `include <dir>/*.conf;`. Needed to route (blue/green, fallback)");
  add("reload_timeout", T::kDuration, false,
      "how long a reload may take to start new workers; default 10s", "10s");
  return v;
}

}  // namespace

DriverInfo NginxDriverInfo() {
  DriverInfo info;
  info.name = "nginx";
  info.kinds = {"traffic"};
  info.summary =
      "an nginx site config, restored only after nginx -t passes, then reloaded with SIGHUP";
  info.settings = Schema();
  info.factory = [] { return std::make_unique<NginxDriver>(); };
  info.own_health = true;
  return info;
}

}  // namespace backstop::nginx
