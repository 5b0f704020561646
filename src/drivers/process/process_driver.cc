// The `process` driver: starting, stopping and health of the service, and
// the calls of a rollback, orchestrating the release links
// (release_links.h), the release tree (release_tree.h) and the process
// record (process_record.h). See process_driver.h for the layout and the
// contract.
#include "drivers/process/process_driver.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "base/crash_point.h"
#include "base/proc_stat.h"
#include "base/strings.h"
#include "base/units.h"
#include "drivers/process/proc_table.h"
#include "drivers/process/process_record.h"
#include "drivers/process/process_settings.h"
#include "drivers/process/release_links.h"
#include "drivers/process/release_tree.h"
#include "probe/probe.h"
#include "store/store.h"

namespace backstop::process {
namespace {

using nlohmann::json;

constexpr int64_t kStartCheckMs = 50;  // how long a fresh process must survive
constexpr int64_t kStopPollMs = 20;
constexpr int64_t kKillWaitMs = 5000;  // after SIGKILL, how long to wait for the exit

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

// --- Process statistics for triggers (cpu, memory) --------------------------

struct CpuSample {
  pid_t pid = 0;
  uint64_t ticks = 0;
  int64_t at_us = 0;
};

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
    if (c.traffic) {
      // A blue/green service runs in its slots: the live one is what runs.
      if (auto live = LiveSlot(c, out.value("release", json()), ctx)) {
        out["running"] = true;
        out["running_release"] = live->release;
        out["live_slot"] = std::string(Name(live->slot));
        out["live_port"] = live->port;
        if (auto base = SlotSettingsOf(c, ctx); base.ok()) {
          if (auto rec = ReadRecord(SlotSettings(*base, c, live->slot), fs)) {
            out["pid"] = rec->pid;
            out["started_at"] = rec->started_at;
          }
        }
      }
    } else if (!s.record_path.empty()) {
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

  // A blue/green service: both slots (and their records) too.
  Status Stop(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    if (c.traffic && !s.record_path.empty()) {
      for (Slot slot : {Slot::kBlue, Slot::kGreen}) {
        BACKSTOP_RETURN_IF_ERROR(StopProcesses(SlotSettings(s, c, slot), ctx, /*recorded=*/true));
      }
    }
    return StopProcesses(s, ctx, /*recorded=*/true);
  }

  Status Start(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_RETURN_IF_ERROR(RequireCommand(s));
    if (c.traffic) {
      return Status::FailedPrecondition(
          s.name +
          " is a blue/green service: its releases run in slots, started by "
          "`backstop deploy` and `backstop rollback`");
    }
    FileSystem* fs = ctx.env->fs();
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
    return StartRelease(s, cur->release, cur->dir, ctx);
  }

  // --- Blue/green slots ---------------------------------------------------
  // Each slot is an instance of its own (SlotSettings: record, marker, port),
  // started and stopped by the same machinery as the service; it runs its
  // release's directory directly, so that two releases run side by side
  // whatever `current` says (the run engine points `current` at the live
  // release when it switches, through Restore).

  bool SupportsSlots() const override { return true; }

  Status StartSlot(const ComponentSpec& c, Slot slot, const std::string& release,
                   DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, SlotSettingsOf(c, ctx));
    BACKSTOP_RETURN_IF_ERROR(RequireCommand(s));
    BACKSTOP_RETURN_IF_ERROR(CheckReleaseName(release));
    const std::string dir = ReleaseDir(s, release);
    if (!ctx.env->fs()->Exists(dir + "/.")) {
      return Status::FailedPrecondition("cannot start " + s.label + " on release " + release +
                                        ": " + dir + " does not exist");
    }
    Settings slot_settings = SlotSettings(s, c, slot);
    return StartRelease(slot_settings, release, dir, ctx);
  }

  Status StopSlot(const ComponentSpec& c, Slot slot, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, SlotSettingsOf(c, ctx));
    return StopProcesses(SlotSettings(s, c, slot), ctx, /*recorded=*/true);
  }

  Result<std::vector<SlotState>> Slots(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, SlotSettingsOf(c, ctx));
    std::vector<SlotState> out;
    for (Slot slot : {Slot::kBlue, Slot::kGreen}) {
      SlotState state;
      state.slot = slot;
      state.port = SlotPort(c, slot);
      if (auto rec = ReadRecord(SlotSettings(s, c, slot), ctx.env->fs())) {
        state.release = rec->release;
        state.running = rec->released && IsOurs(ctx.env->processes(), *rec);
        state.started_us = rec->started_us;
        state.detail = "pid " + std::to_string(rec->pid) + (state.running ? "" : " (exited)");
      }
      out.push_back(std::move(state));
    }
    return out;
  }

  // The probe aimed at the slot, passing only while the slot's recorded
  // process lives and (check_listener) is the one listening on the port.
  HealthResult SlotHealth(const ComponentSpec& c, Slot slot, DriverContext& ctx) override {
    HealthResult r;
    auto base = SlotSettingsOf(c, ctx);
    if (!base.ok()) {
      r.state = HealthResult::State::kFail;
      r.detail = base.status().message();
      return r;
    }
    const Settings s = SlotSettings(*base, c, slot);
    std::optional<Record> rec = ReadRecord(s, ctx.env->fs());
    const bool alive = rec && IsOurs(ctx.env->processes(), *rec);
    if (!c.health.enabled()) {
      r.state = alive ? HealthResult::State::kPass : HealthResult::State::kFail;
      r.detail = alive ? s.label + ": process " + std::to_string(rec->pid) + " running"
                       : s.label + " is not running";
      return r;
    }
    const ProbeSpec probe = c.health.ForPort(SlotPort(c, slot));
    r = RunProbe(probe, ctx.env);
    if (!alive) {
      r.state = HealthResult::State::kFail;
      r.detail = s.label + " is not running (" + r.detail + ")";
    } else if (r.pass() && s.check_listener) {
      std::string impostor = ForeignListener(ctx.env->fs(), probe, rec->pid, c.name);
      if (!impostor.empty()) {
        r.state = HealthResult::State::kFail;
        r.detail = impostor;
      }
    }
    if (alive) AddProcessSignals(rec->pid, ctx.env, &r);
    return r;
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
    if (c.traffic) {
      // Blue/green: the service's processes are its slots', not the record above.
      auto slots = Slots(c, ctx);
      if (!slots.ok()) return slots.status().message();
      std::vector<std::string> lines;
      for (const SlotState& slot : *slots) {
        lines.push_back(s.name + " " + std::string(Name(slot.slot)) + " slot (port " +
                        std::to_string(slot.port) + "): " +
                        (slot.release.empty()
                             ? std::string("no release")
                             : std::string(slot.running ? "running " : "not running: ") +
                                   slot.detail + ", release " + slot.release));
      }
      out = Join(lines, "; ");
    } else if (!rec) {
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

  // The seed's "orchestrator response time": the service's own probe, timed.
  Result<std::vector<PerformanceMetric>> MeasurePerformance(const ComponentSpec& c,
                                                            DriverContext& ctx) override {
    if (!c.traffic) return MeasureProbeLatency(c, ctx);
    // A blue/green service is measured where it serves: its live slot.
    json current;
    if (auto release = CurrentRelease(c, ctx.env); release.ok()) current = *release;
    std::optional<SlotState> live = LiveSlot(c, current, ctx);
    if (!live) {
      return Status::Unavailable("no slot of " + c.name + " serves: nothing to measure");
    }
    ComponentSpec at_slot = c;
    at_slot.health = c.health.ForPort(live->port);
    return MeasureProbeLatency(at_slot, ctx);
  }

  HealthResult Health(const ComponentSpec& c, DriverContext& ctx) override {
    if (c.traffic) return LiveSlotHealth(c, ctx);
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
        std::string impostor = ForeignListener(ctx.env->fs(), c.health, rec->pid, c.name);
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
    if (alive) AddProcessSignals(rec->pid, ctx.env, &r);
    return r;
  }

 private:
  // The slot that serves a blue/green service: a running slot on the release
  // `current` names (the run engine points it at the live release when it
  // switches), the newer one if both are; else the only running slot.
  std::optional<SlotState> LiveSlot(const ComponentSpec& c, const json& current_release,
                                    DriverContext& ctx) {
    auto slots = Slots(c, ctx);
    if (!slots.ok()) return std::nullopt;
    std::optional<SlotState> live;
    int running = 0;
    for (const SlotState& slot : *slots) {
      if (!slot.running) continue;
      ++running;
      const bool on_current = current_release.is_string() && slot.release == current_release;
      const bool live_on_current =
          live && current_release.is_string() && live->release == current_release;
      if (!live || (on_current && !live_on_current) ||
          (on_current == live_on_current && slot.started_us > live->started_us)) {
        live = slot;
      }
    }
    if (running > 1 && live && !(current_release.is_string() && live->release == current_release)) {
      return std::nullopt;  // two run and neither is on `current`: no answer is true
    }
    return live;
  }

  // Health of a blue/green service: its live slot's (SlotHealth).
  HealthResult LiveSlotHealth(const ComponentSpec& c, DriverContext& ctx) {
    json current;
    if (auto release = CurrentRelease(c, ctx.env); release.ok()) current = *release;
    std::optional<SlotState> live = LiveSlot(c, current, ctx);
    if (!live) {
      HealthResult r;
      auto slots = Slots(c, ctx);
      bool recorded = false;
      if (slots.ok()) {
        for (const auto& slot : *slots) recorded = recorded || !slot.release.empty();
      }
      r.state = recorded ? HealthResult::State::kFail : HealthResult::State::kUnknown;
      r.detail = recorded
                     ? "no slot of " + c.name + " serves (none runs the release `current` names)"
                     : "not deployed yet (no slot recorded)";
      return r;
    }
    HealthResult r = SlotHealth(c, live->slot, ctx);
    r.detail = std::string(Name(live->slot)) + " slot, port " + std::to_string(live->port) + ": " +
               r.detail;
    return r;
  }

  // The service's settings for a slot call. REQUIRES nothing of the caller:
  // a service without a traffic block or a context without a state
  // directory is refused here.
  Result<Settings> SlotSettingsOf(const ComponentSpec& c, DriverContext& ctx) {
    if (!c.traffic) {
      return Status::FailedPrecondition(c.name + " has no traffic block: it runs no slots");
    }
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    if (s.record_path.empty()) return Status::Internal("slot call without a state directory");
    return s;
  }

  // Starts `release` from its directory `dir` as the instance `s` describes
  // (its record, log and marker): the service, or one of its slots. The
  // process is recorded before it may run; a live recorded process already
  // running `release` is kept, anything else of the instance stopped first.
  Status StartRelease(const Settings& s, const std::string& release, const std::string& dir,
                      DriverContext& ctx) {
    FileSystem* fs = ctx.env->fs();
    ProcessRunner* procs = ctx.env->processes();
    Clock* clock = ctx.env->clock();
    std::vector<std::string> argv = ResolveCommand(s, dir);
    if (ctx.dry_run) {
      ctx.Progress("would start " + s.label + " release " + release + ": " + ShellJoin(argv));
      return Status::OK();
    }
    if (auto rec = ReadRecord(s, fs); rec && IsOurs(procs, *rec)) {
      if (rec->released && rec->release == release) {
        // Still, no second copy may run beside it (an orphan of an older start).
        BACKSTOP_RETURN_IF_ERROR(StopProcesses(s, ctx, /*recorded=*/false));
        ctx.Progress(s.label + " already running (pid " + std::to_string(rec->pid) + ", release " +
                     rec->release + ")");
        return Status::OK();
      }
      ctx.Progress(rec->released ? s.label + " is running release " + rec->release + ", not " +
                                       release + ": stopping it first"
                                 : s.label + ": pid " + std::to_string(rec->pid) +
                                       " was started by a backstop that stopped before "
                                       "confirming it ran; stopping it to start afresh");
    }
    // The recorded process, any unrecorded one of this service, a stale record.
    BACKSTOP_RETURN_IF_ERROR(StopProcesses(s, ctx, /*recorded=*/true));

    BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(s.log)));
    const uint64_t log_offset = FileSize(fs, s.log);
    const int64_t started_us = clock->WallMicros();
    const std::string started_at = FormatRfc3339(started_us);
    BACKSTOP_RETURN_IF_ERROR(fs->AppendFile(s.log, "--- backstop: starting " + s.label +
                                                       " release " + release + " at " + started_at +
                                                       ": " + ShellJoin(argv) + "\n"));
    ProcessOptions opts;
    opts.argv = argv;
    opts.cwd = dir;
    opts.env = s.env;
    for (const auto& entry : s.marker) {
      const size_t eq = entry.find('=');
      opts.env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    opts.env["BACKSTOP_RELEASE"] = release;
    opts.env["BACKSTOP_RELEASE_DIR"] = dir;
    opts.output_file = s.log;
    Record rec;
    rec.release = release;
    rec.started_at = started_at;
    rec.started_us = started_us;
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
      return pid.status().WithContext("starting " + s.label);
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
      return Status::Unavailable(s.label + " (release " + release + ", pid " +
                                 std::to_string(*pid) + ") exited right after it started" +
                                 (tail.empty()
                                      ? "; it wrote nothing to " + s.log
                                      : "; last lines of " + s.log + ":\n" + Indent(tail)));
    }
    ctx.Progress("started " + s.label + " release " + release + " (pid " + std::to_string(*pid) +
                 ")");
    return Status::OK();
  }

  void AddProcessSignals(pid_t pid, Env* env, HealthResult* r) {
    auto stat = ReadProcStat(env->fs(), pid);
    if (!stat.ok()) return;
    const uint64_t ticks = stat->utime_ticks + stat->stime_ticks;
    const double rss =
        static_cast<double>(stat->rss_pages) * static_cast<double>(::sysconf(_SC_PAGESIZE));
    r->signals["memory_bytes"] = rss;
    auto mem_total = ReadMemInfoBytes(env->fs(), "MemTotal");
    if (mem_total.ok() && *mem_total > 0) {
      r->signals["memory_percent"] = 100.0 * rss / static_cast<double>(*mem_total);
    }
    const int64_t now = env->clock()->NowMicros();
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
      ctx.Progress(s.label +
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
          leader_alive && (p.start_ticks >= rec->start_ticks || SessionOf(fs, p.pid) == rec->pid);
      if (maybe_its_own && !recorded) continue;
      targets.push_back(p);  // stopping the service: its detached helpers too
      if (!maybe_its_own) {
        unrecorded += (unrecorded.empty() ? "" : ", ") + std::to_string(p.pid);
      }
    }
    if (!unrecorded.empty()) {
      ctx.Progress(std::string(ctx.dry_run ? "would stop" : "stopping") + " process(es) " +
                   unrecorded + " of " + s.label +
                   " that no record names (left by an interrupted start, or started by hand "
                   "with its environment)");
    }
    if (ctx.dry_run) {
      if (recorded && leader_alive) {
        ctx.Progress("would stop " + s.label + " (pid " + std::to_string(rec->pid) + ")");
      }
      return Status::OK();
    }
    for (const ProcessIdentity& p : targets) {
      Status st = procs->SignalIfSame(p, SIGTERM, /*whole_group=*/true);
      if (!st.ok() && !st.IsNotFound()) return st.WithContext("stopping " + s.label);
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
      ctx.Progress(s.label + " did not stop within " + FormatDurationMs(s.stop_timeout_ms) +
                   " of SIGTERM; sending SIGKILL");
      for (const ProcessIdentity& p : targets) {
        Status st = procs->SignalIfSame(p, SIGKILL, /*whole_group=*/true);
        if (!st.ok() && !st.IsNotFound()) return st.WithContext("killing " + s.label);
      }
      const int64_t kill_deadline = clock->NowMicros() + kKillWaitMs * 1000;
      while (any_running() && clock->NowMicros() < kill_deadline) {
        clock->SleepForMicros(kStopPollMs * 1000);
      }
      if (any_running()) {
        return Status::Timeout(s.label +
                               " is still alive after SIGKILL; check `ps -o pid,stat -s " +
                               std::to_string(targets.front().pid) + "` (uninterruptible sleep?)");
      }
    }
    if (recorded && leader_alive) {
      ctx.Progress("stopped " + s.label + " (pid " + std::to_string(rec->pid) + ", release " +
                   rec->release + ")");
    }
    if (!recorded || !rec) return Status::OK();
    return fs->Remove(s.record_path);
  }

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
