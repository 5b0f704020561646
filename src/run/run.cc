#include "run/run.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "base/crash_point.h"
#include "base/parallel_for.h"
#include "base/units.h"
#include "perf/verify.h"
#include "run/lock.h"

namespace backstop {
namespace {

std::string RandomHex(int digits) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < digits; ++i) out.push_back(kHex[rng() & 15]);
  return out;
}

// The test hook that turns a run into a crash at a chosen point:
// BACKSTOP_CRASH_AT_STEP_FOR_TEST=N kills this process with SIGKILL right after
// step N (1-based) is journaled done; "N:before-done" kills it after step N
// acted but before the journal says so (the step must then be idempotent).
void MaybeCrashForTest(int step_number, bool journaled) {
  const char* spec = std::getenv("BACKSTOP_CRASH_AT_STEP_FOR_TEST");
  if (spec == nullptr || *spec == '\0') return;
  std::string s(spec);
  bool before_done = s.find(":before-done") != std::string::npos;
  int n = std::atoi(s.c_str());
  if (n == step_number && before_done != journaled) ::raise(SIGKILL);
}

// The pid in the name of a temporary file of an atomic write: "X.tmp-PID-N"
// (FileSystem::WriteFileAtomic) or "X.PID-N.tmp" (the store's tmp/). 0 when
// the name is neither.
pid_t WriterOfTempFile(const std::string& name) {
  auto digits_at = [&](size_t pos) -> pid_t {
    size_t end = name.find('-', pos);
    if (end == std::string::npos || end == pos) return 0;
    for (size_t i = pos; i < end; ++i) {
      if (name[i] < '0' || name[i] > '9') return 0;
    }
    return static_cast<pid_t>(std::atol(name.substr(pos, end - pos).c_str()));
  };
  size_t marker = name.rfind(".tmp-");
  if (marker != std::string::npos) return digits_at(marker + 5);
  const std::string kSuffix = ".tmp";
  if (name.size() > kSuffix.size() &&
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
    size_t dot = name.rfind('.', name.size() - kSuffix.size() - 1);
    if (dot != std::string::npos) return digits_at(dot + 1);
  }
  return 0;
}

// Removes, under `dir` (not following symlinks, skipping `skip`), the
// temporary files whose writer process is gone: a killed run's partial
// writes. Called with the environment lock held, so no live writer of this
// environment is left out by a reused pid other than ourselves.
void RemoveTempFilesOfDeadWriters(Env* env, const std::string& dir, const std::string& skip,
                                  int depth) {
  if (depth > 4 || dir == skip) return;
  FileSystem* fs = env->fs();
  auto names = fs->ListDir(dir);
  if (!names.ok()) return;
  for (const auto& name : *names) {
    std::string path = JoinPath(dir, name);
    auto info = fs->Stat(path);
    if (!info.ok() || info->is_symlink) continue;
    if (info->is_dir) {
      RemoveTempFilesOfDeadWriters(env, path, skip, depth + 1);
      continue;
    }
    pid_t writer = WriterOfTempFile(name);
    if (writer <= 0 || writer == ::getpid() || env->processes()->IsAlive(writer)) continue;
    (void)fs->Remove(path);
  }
}

// Partial writes of runs killed before this one (ledgers, manifests, blobs),
// anywhere under the state dir and in the store's tmp/; the blobs themselves
// are not walked.
void RemoveLeftoversOfKilledRuns(Env* env, const Spec& spec, Store& store) {
  RemoveTempFilesOfDeadWriters(env, spec.state_dir, JoinPath(store.root(), "blobs"), 0);
  if (store.root().rfind(spec.state_dir + "/", 0) != 0) {
    RemoveTempFilesOfDeadWriters(env, store.TmpDir(), "", 0);
  }
}

// Who started a run, for run.started's detail (the incident report shows it):
// the API's actor, the watch daemon and its rule for an automatic run, else
// the person at the terminal ($SUDO_USER first: the one behind sudo).
std::string RunUser(const RunOptions& options) {
  const nlohmann::json& d = options.trigger_detail;
  if (d.is_object() && d.value("via", "") == "api" && d.contains("actor") &&
      d["actor"].is_string()) {
    return d["actor"].get<std::string>();
  }
  if (options.triggered_by.rfind("trigger:", 0) == 0) {
    return "watch (rule " + options.triggered_by.substr(8) + ")";
  }
  for (const char* name : {"SUDO_USER", "USER"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return v;
  }
  return "unknown";
}

// Appends a run's event to the journal. A journal that cannot be written
// never changes the run (notifications and reports are told less).
void JournalRunEvent(StateDb& state, Clock* clock, EventKind kind, const RunRecord& run,
                     const std::string& component, std::string message, nlohmann::json detail) {
  Event event;
  event.at_us = clock->WallMicros();
  event.kind = kind;
  event.run_id = run.id;
  event.component = component;
  event.trigger = run.triggered_by.rfind("trigger:", 0) == 0 ? run.triggered_by.substr(8) : "";
  event.message = std::move(message);
  event.detail = std::move(detail);
  (void)state.AppendEvent(event);
}

std::string DescribeScope(const Plan& plan) {
  return plan.scope == PlanScope::kAll ? std::string("the whole environment") : plan.component;
}

// The component a run's events are about: none for the whole environment.
std::string EventComponent(const Plan& plan) {
  return plan.scope == PlanScope::kAll ? "" : plan.component;
}

// The run.started event of a new run, or of a resumed one (`command` is the
// command that resumed it; a new run names its target restore point).
void JournalRunStarted(StateDb& state, Clock* clock, const RunRecord& run, const Plan& plan,
                       const std::string& command, const std::string& user, bool resumed) {
  nlohmann::json detail = {{"kind", plan.kind},
                           {"scope", plan.scope},
                           {"target", plan.target},
                           {"affected", plan.affected},
                           {"triggered_by", run.triggered_by},
                           {"command", command},
                           {"user", user}};
  if (resumed) {
    detail["resumed"] = true;
  } else {
    detail["restore_point"] = plan.restore_point_id;
  }
  JournalRunEvent(state, clock, EventKind::kRunStarted, run, EventComponent(plan),
                  std::string(Name(plan.kind)) + " of " + DescribeScope(plan) + " to " +
                      plan.target + (resumed ? " resumed" : " started"),
                  std::move(detail));
}

std::vector<RunEndedHook>& RunEndedHooks() {
  static std::vector<RunEndedHook> hooks;
  return hooks;
}

}  // namespace

std::string HealthLine(const HealthResult& h) {
  std::string state = h.state == HealthResult::State::kPass   ? "healthy"
                      : h.state == HealthResult::State::kFail ? "unhealthy"
                                                              : "unknown";
  std::string out = state;
  if (!h.detail.empty()) out += " (" + h.detail + ")";
  return out;
}

void SetRunEndedHook(RunEndedHook hook) {
  RunEndedHooks().clear();
  if (hook) RunEndedHooks().push_back(std::move(hook));
}

void AddRunEndedHook(RunEndedHook hook) {
  if (hook) RunEndedHooks().push_back(std::move(hook));
}

// What the steps of one run have learned so far; rebuilt from the journal on resume.
struct RunEngine::Progress {
  std::map<std::string, DataLossReport> assessed;  // per component, before stopping
  std::map<std::string, DataLossReport> final;     // per component, at the restore
  std::map<std::string, std::string> health;       // per component, from verify
  std::string safety_restore_point;
  int64_t started_mono_us = 0;

  DataLossReport Loss() const {
    DataLossReport total;
    std::set<std::string> seen;
    for (const auto& [c, r] : final) {
      total.Append(r);
      seen.insert(c);
    }
    for (const auto& [c, r] : assessed) {
      if (!seen.count(c)) total.Append(r);
    }
    return total;
  }
  // Folds a journaled step result back in (resume).
  void Absorb(StepAction action, const std::string& component, const nlohmann::json& result) {
    if (!result.is_object()) return;
    if (action == StepAction::kAssessLoss)
      assessed[component] = DataLossReport::FromJson(result.value("loss", nlohmann::json()));
    if (action == StepAction::kRestore && result.contains("loss"))
      final[component] = DataLossReport::FromJson(result["loss"]);
    if (action == StepAction::kVerify) health[component] = result.value("health", "");
    if (action == StepAction::kSafetySnapshot)
      safety_restore_point = result.value("restore_point", "");
  }
};

RunEngine::RunEngine(Env* env, const Spec& spec, Store& store, StateDb& state,
                     const DriverRegistry& registry, Output& out)
    : env_(env), spec_(spec), store_(store), state_(state), registry_(registry), out_(out) {}

RunEngine::~RunEngine() = default;

std::string RunEngine::NewRunId() {
  return "run-" + FormatCompactUtc(env_->clock()->WallMicros()) + "-" + RandomHex(6);
}

DriverContext RunEngine::Context(const std::string& run_id) {
  DriverContext ctx(*env_);
  ctx.store = &store_;
  ctx.spec = &spec_;
  ctx.state_dir = spec_.state_dir;
  ctx.run_id = run_id;
  if (!run_id.empty()) ctx.run_dir = JoinPath(JoinPath(spec_.state_dir, "runs"), run_id);
  ctx.progress = [this](const std::string& line) { out_.Line("           " + line); };
  return ctx;
}

Result<Driver*> RunEngine::DriverFor(const ComponentSpec& c) {
  auto it = drivers_.find(c.name);
  if (it != drivers_.end()) return it->second.get();
  BACKSTOP_ASSIGN_OR_RETURN(auto driver, registry_.Create(c.driver));
  Driver* raw = driver.get();
  drivers_[c.name] = std::move(driver);
  return raw;
}

HealthResult RunEngine::WaitUntilHealthy(const ComponentSpec& c, DriverContext& ctx,
                                         int* attempts) {
  auto driver = DriverFor(c);
  if (!driver.ok()) {
    HealthResult r;
    r.state = HealthResult::State::kFail;
    r.detail = driver.status().message();
    return r;
  }
  return PollHealth(
      c, ctx, [&] { return (*driver)->Health(c, ctx); }, attempts);
}

HealthResult RunEngine::PollHealth(const ComponentSpec& c, DriverContext& ctx,
                                   const std::function<HealthResult()>& probe_once, int* attempts) {
  Clock* clock = env_->clock();
  const ProbeSpec& probe = c.health;
  const int64_t deadline = clock->NowMicros() + probe.start_period_ms * 1000;
  // Poll briskly while waiting for a start: a tenth of the probe interval,
  // between 100 ms and 1 s.
  const int64_t poll_ms = std::clamp<int64_t>(probe.interval_ms / 10, 100, 1000);
  HealthResult last;
  int n = 0;
  for (;;) {
    last = probe_once();
    ++n;
    if (HealthAcceptable(c, last)) break;
    if (clock->NowMicros() >= deadline) break;
    if (n == 1 || n % 10 == 0) ctx.Progress("waiting for " + c.name + ": " + last.detail);
    clock->SleepForMicros(poll_ms * 1000);
  }
  if (attempts != nullptr) *attempts = n;
  return last;
}

Status RunEngine::CheckDataLossLimit(const Progress& progress, const RunOptions& options) const {
  DataLossReport loss = progress.Loss();
  uint64_t rows = loss.TotalRows();
  uint64_t messages = loss.TotalMessages();
  if (options.accept_data_loss) return Status::OK();
  if (rows <= spec_.max_data_loss_rows && messages <= spec_.max_data_loss_messages) {
    return Status::OK();
  }
  return Status::DataLoss(
      "refusing: this rollback would discard " + FormatThousands(rows) + " rows and " +
      FormatThousands(messages) + " messages (" + loss.Summary() + "); the spec allows " +
      FormatThousands(spec_.max_data_loss_rows) + " rows and " +
      FormatThousands(spec_.max_data_loss_messages) +
      " messages (data_loss). Nothing was stopped or changed. Read the ledger, then rerun with "
      "--accept-data-loss to proceed");
}

Status RunEngine::ExecuteStep(const RunRecord& run, const Plan& plan, int index,
                              const RunOptions& options, Progress& progress, std::string* detail,
                              nlohmann::json* result) {
  const PlanStep& step = plan.steps[static_cast<size_t>(index)];
  DriverContext ctx = Context(run.id);
  BACKSTOP_RETURN_IF_ERROR(env_->fs()->CreateDirs(ctx.run_dir));
  const ComponentSpec* c = step.component.empty() ? nullptr : spec_.Find(step.component);
  if (!step.component.empty() && c == nullptr) {
    return Status::FailedPrecondition("component " + step.component +
                                      " is no longer in the spec; the plan cannot continue");
  }
  Driver* driver = nullptr;
  if (c != nullptr) {
    BACKSTOP_ASSIGN_OR_RETURN(driver, DriverFor(*c));
  }
  const nlohmann::json entry =
      c != nullptr && plan.entries.contains(c->name) ? plan.entries[c->name] : nlohmann::json();

  if (step.action == StepAction::kVerifyRestorePoint) {
    BACKSTOP_ASSIGN_OR_RETURN(RestorePoint rp, ReadRestorePoint(store_, plan.restore_point_id));
    // Only the blobs this plan's restores will read matter.
    std::set<std::string> needed;
    size_t named = 0;
    for (const auto& [name, e] : plan.entries.items()) {
      if (!rp.components.contains(name)) continue;
      const ComponentSpec* comp = spec_.Find(name);
      if (comp == nullptr) continue;
      BACKSTOP_ASSIGN_OR_RETURN(Driver * d, DriverFor(*comp));
      const nlohmann::json& stored = rp.components[name];
      named += stored.value("blobs", nlohmann::json::array()).size();
      for (const auto& digest : d->BlobsNeeded(*comp, stored, ctx)) needed.insert(digest);
    }
    std::vector<std::string> blobs(needed.begin(), needed.end());
    // Re-hash on every core: a dump is many large blobs.
    std::vector<BlobCheck> checks(blobs.size());
    const int threads =
        std::clamp<int>(static_cast<int>(std::thread::hardware_concurrency()), 1, 4);
    BACKSTOP_RETURN_IF_ERROR(ParallelFor(blobs.size(), threads, [&](size_t i) {
      checks[i] = store_.Check(blobs[i]);  // a damaged blob is a finding, not an error
      return Status::OK();
    }));
    std::vector<std::string> bad;
    for (const auto& check : checks) {
      if (check.state != BlobCheck::State::kOk) {
        bad.push_back(std::string(BlobCheck::StateName(check.state)) + " blob " + check.digest +
                      ": " + check.detail);
      }
    }
    if (!bad.empty()) {
      std::string list;
      for (const auto& b : bad) list += "\n  " + b;
      return Status::Corruption("restore point " + rp.id + " is damaged; refusing to roll back " +
                                "(nothing was touched):" + list);
    }
    *detail = FormatThousands(blobs.size()) + " blobs verified";
    if (named > blobs.size()) {
      *detail += " (" + FormatThousands(named - blobs.size()) +
                 " not needed: restored from a staged copy)";
    }
    (*result)["blobs"] = blobs.size();
    return Status::OK();
  }

  if (step.action == StepAction::kSafetySnapshot) {
    // Deterministic id: a resumed step finds the restore point it already wrote.
    std::string id = "rp-" + run.id.substr(4) + "-safety";
    auto existing = ReadRestorePoint(store_, id);
    if (existing.ok()) {
      *detail = id + " (already taken)";
    } else {
      std::vector<std::string> components =
          step.args.value("components", std::vector<std::string>{});
      if (components.empty()) components = plan.affected;
      BACKSTOP_ASSIGN_OR_RETURN(
          RestorePoint rp, TakeRestorePoint(*this, spec_, store_, components, "before " + run.id,
                                            RestorePointKind::kSafety, run.id, id));
      *detail = rp.id;
    }
    CrashPointForTest("run.safety-snapshot.before-record");
    BACKSTOP_RETURN_IF_ERROR(state_.SetSafetyRestorePoint(run.id, id));
    progress.safety_restore_point = id;
    (*result)["restore_point"] = id;
    return Status::OK();
  }

  if (step.action == StepAction::kPrepare) {
    // Nothing is stopped yet: whatever the restore will need is checked and
    // staged now, so that a missing release tree or retained database refuses
    // the run while every service still runs.
    BACKSTOP_RETURN_IF_ERROR(
        driver->CheckRestorable(*c, entry, ctx).WithContext("check " + c->name));
    CrashPointForTest("run.prepare.after-check");
    BACKSTOP_RETURN_IF_ERROR(driver->Prepare(*c, entry, ctx).WithContext("prepare " + c->name));
    *detail = HoldsData(c->kind) ? "staged" : "ready";
    return Status::OK();
  }

  if (step.action == StepAction::kAssessLoss) {
    if (options.accept_data_loss) {
      // This early count only exists to refuse before anything is stopped;
      // the operator accepted the loss, and the restore step still writes the
      // authoritative ledger just before the data is replaced.
      *detail = "skipped (--accept-data-loss): the ledger is taken at the restore";
      return Status::OK();
    }
    BACKSTOP_ASSIGN_OR_RETURN(DataLossReport loss, driver->AssessLoss(*c, entry, ctx));
    for (auto& item : loss.items) {
      if (item.component.empty()) item.component = c->name;
    }
    progress.assessed[c->name] = loss;
    (*result)["loss"] = loss.ToJson();
    *detail = loss.Summary();
    // Decide only once every data component is counted and its ledger
    // written, so that a refusal names everything the rollback would discard.
    bool last_assessment = true;
    for (size_t i = static_cast<size_t>(index) + 1; i < plan.steps.size(); ++i) {
      if (plan.steps[i].action == StepAction::kAssessLoss) last_assessment = false;
    }
    if (!last_assessment) return Status::OK();
    return CheckDataLossLimit(progress, options);
  }

  if (step.action == StepAction::kStop) {
    BACKSTOP_RETURN_IF_ERROR(driver->Stop(*c, ctx).WithContext("stop " + c->name));
    *detail = "stopped";
    return Status::OK();
  }

  if (step.action == StepAction::kRestore) {
    if (HoldsData(c->kind)) {
      // The authoritative ledger: taken with the dependent services stopped,
      // immediately before the live data is replaced.
      auto loss = driver->AssessLoss(*c, entry, ctx);
      if (loss.ok()) {
        for (auto& item : loss->items) {
          if (item.component.empty()) item.component = c->name;
        }
        progress.final[c->name] = *loss;
        (*result)["loss"] = loss->ToJson();
      } else {
        ctx.Progress("could not recount the data loss before restoring: " +
                     loss.status().message());
      }
    }
    BACKSTOP_RETURN_IF_ERROR(driver->Restore(*c, entry, ctx).WithContext("restore " + c->name));
    CrashPointForTest("run.restore.after-restore");
    if (auto revised = driver->LossRevisedByRestore(*c)) {
      for (auto& item : revised->items) {
        if (item.component.empty()) item.component = c->name;
      }
      progress.final[c->name] = *revised;
      (*result)["loss"] = revised->ToJson();
    }
    if (entry.contains("release") && entry["release"].is_string()) {
      // Recorded as soon as it is switched, so that the history holds every
      // release that ran, also when its start fails and the run with it.
      BACKSTOP_RETURN_IF_ERROR(RecordRelease(run, plan, c->name));
      *detail = "release " + entry["release"].get<std::string>();
    } else {
      *detail = "restored";
    }
    return Status::OK();
  }

  if (step.action == StepAction::kStart) {
    BACKSTOP_RETURN_IF_ERROR(driver->Start(*c, ctx).WithContext("start " + c->name));
    CrashPointForTest("run.start.after-start");
    int attempts = 0;
    HealthResult h = WaitUntilHealthy(*c, ctx, &attempts);
    (*result)["health_attempts"] = attempts;
    if (!HealthAcceptable(*c, h)) {
      (void)state_.SetHistoryStatus(c->name, run.id, "failed");
      std::string diagnosis = driver->Diagnose(*c, ctx);
      return Status::Unavailable(c->name + " started but its health check did not pass within " +
                                 FormatDurationMs(c->health.start_period_ms) + " (" +
                                 std::to_string(attempts) + " probes; last: " + h.detail + ")" +
                                 (diagnosis.empty() ? "" : "\n" + diagnosis));
    }
    // A resumed run whose earlier attempt failed here: the release runs now.
    BACKSTOP_RETURN_IF_ERROR(state_.SetHistoryStatus(c->name, run.id, "deployed"));
    *detail = HealthLine(h) + " after " + std::to_string(attempts) + " probe" +
              (attempts == 1 ? "" : "s");
    return Status::OK();
  }

  if (step.action == StepAction::kStartSlot || step.action == StepAction::kSwitch ||
      step.action == StepAction::kStopSlot) {
    return ExecuteSlotStep(run, plan, step, *c, *driver, ctx, detail, result);
  }

  if (step.action == StepAction::kVerify && c->traffic) {
    return VerifyBlueGreen(*c, entry, *driver, ctx, progress.health, detail, result);
  }

  if (step.action == StepAction::kVerify) {
    if (!entry.is_null()) {
      BACKSTOP_RETURN_IF_ERROR(
          driver->VerifyRestored(*c, entry, ctx).WithContext("verify " + c->name));
    }
    int attempts = 0;
    HealthResult h = WaitUntilHealthy(*c, ctx, &attempts);
    progress.health[c->name] = HealthLine(h);
    (*result)["health"] = HealthLine(h);
    (*result)["latency_ms"] = h.latency_ms;
    if (!HealthAcceptable(*c, h)) {
      return Status::Unavailable(c->name + " is not healthy after the rollback: " + h.detail);
    }
    *detail = HealthLine(h);
    return Status::OK();
  }

  if (step.action == StepAction::kRecordHistory) {
    // Plans journaled before releases were recorded at their switch.
    for (const auto& name : step.args.value("components", std::vector<std::string>{})) {
      BACKSTOP_RETURN_IF_ERROR(RecordRelease(run, plan, name));
    }
    *detail = "recorded";
    return Status::OK();
  }

  return Status::Internal("unknown plan step '" + std::string(Name(step.action)) + "'");
}

Status RunEngine::RecordRelease(const RunRecord& run, const Plan& plan, const std::string& name) {
  if (!plan.entries.contains(name)) return Status::OK();
  const nlohmann::json& e = plan.entries[name];
  if (!e.contains("release") || !e["release"].is_string()) return Status::OK();
  // Idempotent: a resumed step does not record the revision twice.
  BACKSTOP_ASSIGN_OR_RETURN(auto history, state_.History(name));
  for (const auto& h : history) {
    if (h.run_id == run.id) return Status::OK();
  }
  HistoryRecord h;
  h.component = name;
  h.release = e["release"].get<std::string>();
  h.status = "deployed";
  h.at_us = env_->clock()->WallMicros();
  h.run_id = run.id;
  h.description = plan.kind == RunKind::kDeploy
                      ? "Deploy " + h.release
                      : "Rollback to " + plan.target + " (" + run.id + ")";
  return state_.AddHistory(h);
}

void RunEngine::Recover(const RunRecord& run, const Plan& plan) {
  auto steps = state_.GetSteps(run.id);
  if (!steps.ok()) return;
  auto status_of = [&](StepAction action,
                       const std::string& component) -> std::optional<StepStatus> {
    for (const auto& s : *steps) {
      if (s.action == action && s.component == component) return s.status;
    }
    return std::nullopt;
  };
  for (const auto& s : *steps) {
    if (s.action != StepAction::kStop || s.status != StepStatus::kDone) continue;
    const std::string& name = s.component;
    if (status_of(StepAction::kStart, name) == StepStatus::kDone) continue;
    // Only a service still on the release it ran before goes back up: one
    // already switched would start the target that just failed.
    std::optional<StepStatus> restore = status_of(StepAction::kRestore, name);
    if (restore && *restore != StepStatus::kPending) continue;
    const ComponentSpec* c = spec_.Find(name);
    if (c == nullptr) continue;
    auto driver = DriverFor(*c);
    if (!driver.ok()) continue;
    DriverContext ctx = Context(run.id);
    out_.Line("          starting " + name + " again on the release it ran before");
    Status st = (*driver)->Start(*c, ctx);
    CrashPointForTest("run.recover.after-start");
    if (st.ok()) {
      int attempts = 0;
      HealthResult h = WaitUntilHealthy(*c, ctx, &attempts);
      out_.Line(std::string("          ") +
                (HealthAcceptable(*c, h) ? Output::Ok() : Output::Fail()) + " " + name + ": " +
                HealthLine(h));
    } else {
      out_.Line(std::string("          ") + Output::Fail() + " " + name + ": " + st.message());
    }
    // A resume must stop it again before it switches it.
    (void)state_.MarkStepStarted(run.id, s.index, env_->clock()->WallMicros());
  }
}

nlohmann::json RunEngine::Account(const RunRecord& run, const Plan& plan) {
  nlohmann::json account = nlohmann::json::object();
  for (const auto& name : plan.affected) {
    const ComponentSpec* c = spec_.Find(name);
    if (c == nullptr) continue;
    auto driver = DriverFor(*c);
    if (!driver.ok()) continue;
    DriverContext ctx = Context(run.id);
    nlohmann::json where = nlohmann::json::object();
    auto described = (*driver)->Describe(*c, ctx);
    if (described.ok() && described->is_object()) {
      if (described->contains("release")) where["release"] = (*described)["release"];
      if (described->contains("running")) where["running"] = (*described)["running"];
    }
    HealthResult h = (*driver)->Health(*c, ctx);
    where["healthy"] = HealthAcceptable(*c, h);
    where["health"] = HealthLine(h);
    account[name] = where;
  }
  return account;
}

Result<RunOutcome> RunEngine::Drive(const RunRecord& run, const Plan& plan,
                                    const RunOptions& options) {
  Progress progress;
  progress.started_mono_us = env_->clock()->NowMicros();
  BACKSTOP_ASSIGN_OR_RETURN(auto steps, state_.GetSteps(run.id));
  for (const auto& s : steps) {
    if (s.status == StepStatus::kDone) progress.Absorb(s.action, s.component, s.result);
  }

  const int total = static_cast<int>(plan.steps.size());
  Status failure;
  int failed_index = -1;
  for (int i = 0; i < total; ++i) {
    const StepRecord& record = steps[static_cast<size_t>(i)];
    const PlanStep& step = plan.steps[static_cast<size_t>(i)];
    std::string counter = std::to_string(i + 1) + "/" + std::to_string(total);
    if (record.status == StepStatus::kDone) {
      out_.Line("  [" + counter + "] " + Output::Ok() + " " + step.description +
                " (done before the resume)");
      continue;
    }
    int64_t t0 = env_->clock()->NowMicros();
    double since = (t0 - progress.started_mono_us) / 1e6;
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%7.2fs", since);
    out_.Line(std::string(stamp) + " [" + counter + "] " + step.description +
              (record.status == StepStatus::kStarted ? " (again: it was interrupted)" : ""));
    BACKSTOP_RETURN_IF_ERROR(state_.MarkStepStarted(run.id, i, env_->clock()->WallMicros()));

    std::string detail;
    nlohmann::json result = nlohmann::json::object();
    Status st = ExecuteStep(run, plan, i, options, progress, &detail, &result);
    int64_t took_ms = (env_->clock()->NowMicros() - t0) / 1000;
    MaybeCrashForTest(i + 1, /*journaled=*/false);
    if (!st.ok()) {
      (void)state_.MarkStepFailed(run.id, i, env_->clock()->WallMicros(), st.message());
      out_.Line(std::string("          ") + Output::Fail() + " " + step.description + " failed (" +
                FormatDurationMs(took_ms) + ")");
      failure = st;
      failed_index = i;
      break;
    }
    BACKSTOP_RETURN_IF_ERROR(
        state_.MarkStepDone(run.id, i, env_->clock()->WallMicros(), detail, result));
    out_.Line(std::string("          ") + Output::Ok() + " " + detail + " (" +
              FormatDurationMs(took_ms) + ")");
    MaybeCrashForTest(i + 1, /*journaled=*/true);
  }

  // Summary, from the journal so a resumed run reports its whole history.
  BACKSTOP_ASSIGN_OR_RETURN(RunRecord fresh, state_.GetRun(run.id));
  int64_t ended_us = env_->clock()->WallMicros();
  DataLossReport loss = progress.Loss();
  nlohmann::json summary;
  summary["kind"] = plan.kind;
  summary["target"] = plan.target;
  summary["affected"] = plan.affected;
  summary["data_loss"] = loss.ToJson();
  summary["data_loss_summary"] = loss.Summary();
  summary["health"] = progress.health;
  summary["safety_restore_point"] = fresh.safety_restore_point;
  summary["duration_ms"] = (ended_us - fresh.started_us) / 1000;

  RunOutcome outcome;
  outcome.run_id = run.id;
  outcome.duration_ms = (ended_us - fresh.started_us) / 1000;
  if (failure.ok()) {
    outcome.status = RunStatus::kSucceeded;
    if (plan.kind == RunKind::kRollback) {
      VerifyPerformanceAfterRollback(run, &summary);
      TakePostRollbackRestorePoint(run, plan, &summary);
    }
  } else {
    outcome.status = RunStatus::kFailed;
    const PlanStep& step = plan.steps[static_cast<size_t>(failed_index)];
    bool touched = false;  // did the failed step or any before it change the live state?
    for (int i = 0; i <= failed_index; ++i) {
      if (ChangesLiveState(plan.steps[static_cast<size_t>(i)].action)) touched = true;
    }
    outcome.failure = failure.code();
    outcome.changed_anything = touched;
    outcome.error = "step " + std::to_string(failed_index + 1) + " (" + step.description +
                    ") failed: " + failure.message();
    if (!touched) {
      outcome.error += "\nNo component was changed by this run.";
    } else {
      outcome.error +=
          "\nThe run stopped part-way. Fix the cause, then `backstop rollback --resume " + run.id +
          "` retries from step " + std::to_string(failed_index + 1) +
          " (or `backstop rollback --abandon " + run.id + "` to take over by hand).";
    }
    summary["failed_step"] = failed_index + 1;
    if (plan.kind == RunKind::kDeploy) {
      for (const auto& name : plan.affected) {
        (void)state_.SetHistoryStatus(name, run.id, "failed");
      }
    }
    if (touched) {
      // Not an outage left behind: services stopped but not yet switched go
      // back up on the release they ran, then every component is accounted for.
      Recover(run, plan);
      summary["components"] = Account(run, plan);
    }
  }
  summary["status"] = outcome.status;
  summary["error"] = outcome.error;
  outcome.summary = summary;
  // A failure that changed nothing ends the run; one that changed something
  // stays resumable only when the operator chooses: it is recorded as failed
  // either way, and --resume accepts failed runs too.
  BACKSTOP_RETURN_IF_ERROR(
      state_.FinishRun(run.id, outcome.status, ended_us, outcome.error, summary));
  {
    nlohmann::json detail = {{"kind", plan.kind},
                             {"scope", plan.scope},
                             {"target", plan.target},
                             {"affected", plan.affected},
                             {"triggered_by", run.triggered_by},
                             {"status", outcome.status},
                             {"duration_ms", outcome.duration_ms},
                             {"data_loss",
                              {{"any", loss.TotalRows() + loss.TotalMessages() > 0},
                               {"rows", loss.TotalRows()},
                               {"messages", loss.TotalMessages()},
                               {"summary", loss.Summary()}}}};
    if (!outcome.error.empty()) detail["error"] = outcome.error;
    if (summary.contains("failed_step")) detail["failed_step"] = summary["failed_step"];
    if (summary.contains("post_restore_point")) {
      detail["post_restore_point"] = summary["post_restore_point"];
    }
    std::string performance;  // said in the event's line only when degraded
    if (summary.contains("performance")) {
      detail["performance"] = {{"ok", summary["performance"].value("ok", true)},
                               {"summary", summary["performance"].value("summary", "")}};
      if (!summary["performance"].value("ok", true)) {
        performance = "; " + summary["performance"].value("summary", "");
      }
    }
    JournalRunEvent(state_, env_->clock(),
                    outcome.succeeded() ? EventKind::kRunFinished : EventKind::kRunFailed, run,
                    EventComponent(plan),
                    std::string(Name(plan.kind)) + " of " + DescribeScope(plan) + " " +
                        (outcome.succeeded() ? "succeeded" : "failed") + " (" +
                        FormatDurationMs(outcome.duration_ms) + "; data loss: " + loss.Summary() +
                        ")" + performance,
                    std::move(detail));
  }
  if (outcome.succeeded() || outcome.changed_anything) {
    for (const auto& hook : RunEndedHooks()) hook(RunEnded{env_, spec_, store_, state_, run.id});
  }
  return outcome;
}

Result<RunOutcome> RunEngine::Start(const Plan& plan, const RunOptions& options) {
  RunRecord run;
  run.id = NewRunId();
  run.kind = plan.kind;
  run.status = RunStatus::kRunning;
  run.command = options.command;
  run.triggered_by = options.triggered_by;
  run.trigger_detail = options.trigger_detail;
  run.plan = plan.ToJson();
  run.restore_point = plan.restore_point_id;
  run.started_us = env_->clock()->WallMicros();
  run.pid = static_cast<int>(::getpid());

  BACKSTOP_ASSIGN_OR_RETURN(
      auto lock, EnvironmentLock::Acquire(env_, spec_.state_dir,
                                          {{"run_id", run.id}, {"command", options.command}}));
  BACKSTOP_ASSIGN_OR_RETURN(auto unfinished, state_.UnfinishedRuns());
  if (!unfinished.empty()) {
    const RunRecord& u = unfinished.front();
    return Status::Aborted("run " + u.id + " (" + u.command +
                           ") did not finish: it was interrupted. Complete it with `backstop "
                           "rollback --resume " +
                           u.id +
                           "`, or give it up with `backstop rollback "
                           "--abandon " +
                           u.id + "` before starting another run");
  }
  std::vector<StepRecord> steps;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    StepRecord s;
    s.run_id = run.id;
    s.index = static_cast<int>(i);
    s.action = plan.steps[i].action;
    s.component = plan.steps[i].component;
    s.description = plan.steps[i].description;
    steps.push_back(s);
  }
  RemoveLeftoversOfKilledRuns(env_, spec_, store_);
  BACKSTOP_RETURN_IF_ERROR(state_.CreateRun(run, steps));
  if (options.on_run_id) options.on_run_id(run.id);
  JournalRunStarted(state_, env_->clock(), run, plan, run.command, RunUser(options),
                    /*resumed=*/false);
  out_.Line("Run " + run.id + ": " + (plan.kind == RunKind::kDeploy ? "deploy " : "rollback of ") +
            DescribeScope(plan) + " to " + plan.target);
  for (const auto& n : plan.notes) out_.Line("  note: " + n);
  return Drive(run, plan, options);
}

Result<RunOutcome> RunEngine::Resume(const std::string& selector, const RunOptions& options) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string run_id, state_.ResolveRunId(selector));
  BACKSTOP_ASSIGN_OR_RETURN(
      auto lock, EnvironmentLock::Acquire(env_, spec_.state_dir,
                                          {{"run_id", run_id}, {"command", options.command}}));
  BACKSTOP_ASSIGN_OR_RETURN(RunRecord run, state_.GetRun(run_id));
  // Refusals (exit 3): nothing is done for a run that cannot go on.
  if (run.status == RunStatus::kSucceeded) {
    return Status::Aborted("run " + run_id + " already succeeded; nothing to resume");
  }
  if (run.status == RunStatus::kAbandoned) {
    return Status::Aborted("run " + run_id + " was abandoned; start a new run instead");
  }
  if (run.status == RunStatus::kFailed) {
    // Another run may have acted since: resuming an old failure would be unsafe.
    BACKSTOP_ASSIGN_OR_RETURN(auto latest, state_.ListRuns(1));
    if (!latest.empty() && latest.front().id != run_id) {
      return Status::Aborted("run " + run_id + " failed and run " + latest.front().id +
                             " has run since; start a new run instead");
    }
  }
  auto stored = Plan::FromJson(run.plan);
  if (!stored.ok()) {
    return stored.status().WithContext("run " + run_id + " in the state database (table runs)");
  }
  const Plan plan = std::move(stored).value();
  RemoveLeftoversOfKilledRuns(env_, spec_, store_);
  BACKSTOP_RETURN_IF_ERROR(state_.SetRunStatus(run_id, RunStatus::kRunning));
  JournalRunStarted(state_, env_->clock(), run, plan, options.command, RunUser(options),
                    /*resumed=*/true);
  out_.Line("Resuming run " + run_id + " (" + run.command + ")");
  return Drive(run, plan, options);
}

Status RunEngine::Abandon(const std::string& selector) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string run_id, state_.ResolveRunId(selector));
  BACKSTOP_ASSIGN_OR_RETURN(auto lock,
                            EnvironmentLock::Acquire(env_, spec_.state_dir,
                                                     {{"run_id", run_id}, {"command", "abandon"}}));
  BACKSTOP_ASSIGN_OR_RETURN(RunRecord run, state_.GetRun(run_id));
  if (run.status == RunStatus::kSucceeded) {
    return Status::Aborted("run " + run_id + " succeeded; nothing to abandon");
  }
  BACKSTOP_RETURN_IF_ERROR(
      state_.FinishRun(run_id, RunStatus::kAbandoned, env_->clock()->WallMicros(),
                       run.error.empty() ? "abandoned by the operator" : run.error, run.summary));
  JournalRunEvent(
      state_, env_->clock(), EventKind::kRunFailed, run, "",
      std::string(Name(run.kind)) + " run " + run_id +
          " abandoned: the operator takes over by hand",
      {{"kind", run.kind}, {"triggered_by", run.triggered_by}, {"status", RunStatus::kAbandoned}});
  return Status::OK();
}

void RunEngine::TakePostRollbackRestorePoint(const RunRecord& run, const Plan& plan,
                                             nlohmann::json* summary) {
  // Deterministic id: a resumed run finds the restore point it already took.
  const std::string id = "rp-" + run.id.substr(4) + "-post";
  Event event;
  event.run_id = run.id;
  event.detail = {{"restore_point", id}, {"label", "post-rollback"}};
  if (ReadRestorePoint(store_, id).ok()) {
    (*summary)["post_restore_point"] = id;
    return;
  }
  out_.Line("          taking restore point " + id + " (post-rollback)");
  auto rp = TakeRestorePoint(*this, spec_, store_, plan.affected, "post-rollback",
                             RestorePointKind::kPostRollback, run.id, id);
  event.at_us = env_->clock()->WallMicros();
  if (rp.ok()) {
    (*summary)["post_restore_point"] = id;
    event.kind = EventKind::kRestorePointTaken;
    event.message = "restore point " + id + " taken after the verified rollback";
    out_.Line(std::string("          ") + Output::Ok() + " " + id);
  } else {
    // The rollback itself succeeded: the checklist shows the missing point.
    (*summary)["post_restore_point_error"] = rp.status().message();
    event.kind = EventKind::kRestorePointFailed;
    event.message = "post-rollback restore point failed: " + rp.status().message();
    out_.Line(std::string("          ") + Output::Fail() + " " + event.message);
  }
  (void)state_.AppendEvent(event);
}

bool HealthAcceptable(const ComponentSpec& c, const HealthResult& h) {
  switch (h.state) {
    case HealthResult::State::kPass:
      return true;
    case HealthResult::State::kFail:
      return false;
    case HealthResult::State::kUnknown:
      return !c.health.enabled();
  }
  return false;
}

Result<RestorePoint> TakeRestorePoint(RunEngine& engine, const Spec& spec, Store& store,
                                      const std::vector<std::string>& components,
                                      const std::string& label, RestorePointKind kind,
                                      const std::string& run_id, const std::string& id) {
  Env* env = engine.Context().env;
  RestorePoint rp;
  rp.created_wall_us = env->clock()->WallMicros();
  rp.id = id.empty() ? NewRestorePointId(rp.created_wall_us) : id;
  rp.label = label;
  rp.kind = kind;
  rp.run_id = run_id;
  rp.environment = spec.environment;
  std::vector<std::string> names = components.empty() ? DependencyOrder(spec) : components;
  for (const auto& name : names) {
    const ComponentSpec* c = spec.Find(name);
    if (c == nullptr) return Status::InvalidArgument("no component named '" + name + "'");
    BACKSTOP_ASSIGN_OR_RETURN(Driver * driver, engine.DriverFor(*c));
    DriverContext ctx = engine.Context(run_id);
    ctx.restore_point_id = rp.id;
    ctx.snapshot_kind = kind;
    BACKSTOP_ASSIGN_OR_RETURN(nlohmann::json entry, driver->Snapshot(*c, ctx));
    entry["kind"] = c->kind;
    entry["driver"] = c->driver;
    // The baseline this restore point was taken against: whether the component
    // was healthy and how fast it answered. evaluate_and_rollback only rolls
    // back to a restore point whose baseline was good on the firing signal,
    // and `verify --performance` compares against it.
    HealthResult h = driver->Health(*c, ctx);
    nlohmann::json baseline = {{"health", h.state == HealthResult::State::kPass   ? "pass"
                                          : h.state == HealthResult::State::kFail ? "fail"
                                                                                  : "unknown"},
                               {"latency_ms", h.latency_ms},
                               {"detail", h.detail}};
    for (const auto& [signal, value] : h.signals) baseline["signals"][signal] = value;
    entry["baseline"] = baseline;
    // Seed 4.3's performance baseline (perf/baseline.h). Not for a safety
    // restore point: a rollback takes it just before it acts, and
    // measuring would only delay it. Not for a post-rollback one either: it
    // holds the state of the rollback's target, whose baseline stands, and a
    // rollback that ended degraded must not make "degraded" the new normal.
    if (kind != RestorePointKind::kSafety && kind != RestorePointKind::kPostRollback) {
      nlohmann::json performance = MeasureBaseline(*driver, *c, ctx);
      if (!performance.is_null()) entry["performance"] = std::move(performance);
    }
    rp.components[name] = entry;
    CrashPointForTest("restore-point.after-component");
  }
  CrashPointForTest("restore-point.before-manifest");
  BACKSTOP_RETURN_IF_ERROR(WriteRestorePoint(store, rp));
  return rp;
}

}  // namespace backstop
