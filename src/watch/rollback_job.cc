// The rollback job's thread. See rollback_job.h.
#include "watch/rollback_job.h"

#include <cstdio>

#include "base/output.h"
#include "base/strings.h"
#include "run/fallback.h"
#include "run/state_db.h"
#include "store/store.h"

namespace backstop {
namespace {

// A FILE* whose output is cut into lines and handed to `sink` (fopencookie):
// lets the run engine's Output write into the daemon's log.
class LineStream {
 public:
  explicit LineStream(std::function<void(const std::string&)> sink) : sink_(std::move(sink)) {
    cookie_io_functions_t io{};
    io.write = &LineStream::Write;
    io.close = &LineStream::Close;
    file_ = fopencookie(this, "w", io);
    if (file_ != nullptr) setvbuf(file_, nullptr, _IOLBF, 4096);
  }
  ~LineStream() {
    if (file_ != nullptr) std::fclose(file_);
  }
  LineStream(const LineStream&) = delete;
  LineStream& operator=(const LineStream&) = delete;
  FILE* file() { return file_ != nullptr ? file_ : stderr; }

 private:
  static ssize_t Write(void* cookie, const char* buf, size_t size) {
    auto* self = static_cast<LineStream*>(cookie);
    self->partial_.append(buf, size);
    size_t nl;
    while ((nl = self->partial_.find('\n')) != std::string::npos) {
      std::string line = self->partial_.substr(0, nl);
      self->partial_.erase(0, nl + 1);
      if (!line.empty()) self->sink_(line);
    }
    return static_cast<ssize_t>(size);
  }
  static int Close(void* cookie) {
    auto* self = static_cast<LineStream*>(cookie);
    if (!self->partial_.empty()) self->sink_(self->partial_);
    self->partial_.clear();
    return 0;
  }
  std::function<void(const std::string&)> sink_;
  std::string partial_;
  FILE* file_ = nullptr;
};

}  // namespace

RollbackJob::RollbackJob(Env* env, const Spec& spec, const DriverRegistry& registry,
                         WatchLogger* log, RunJob job, Hooks hooks)
    : env_(env),
      spec_(spec),
      registry_(registry),
      log_(log),
      job_(std::move(job)),
      hooks_(std::move(hooks)) {}

RollbackJob::~RollbackJob() { Join(); }

void RollbackJob::Start() {
  thread_ = std::thread([this] { Run(); });
}

void RollbackJob::Join() {
  if (thread_.joinable()) thread_.join();
}

void RollbackJob::Run() {
  std::string run_id;  // this thread's, for log lines
  bool acted = false;
  auto finish = [&](const std::string& error) {
    if (!error.empty()) log_->Error("rollback not completed: " + error, {{"run", run_id}});
    hooks_.done(acted, error);
  };
  auto db = StateDb::Open(JoinPath(spec_.state_dir, "state.db"));
  if (!db.ok()) return finish(db.status().message());
  auto store = Store::Open(env_, spec_.store_path);
  if (!store.ok()) return finish(store.status().message());
  LineStream out_stream([&](const std::string& line) {
    log_->Info("run: " + Trim(line), {{"run", run_id}});
    if (hooks_.output) hooks_.output(Trim(line));
  });
  LineStream err_stream([&](const std::string& line) {
    log_->Error("run: " + Trim(line), {{"run", run_id}});
    if (hooks_.output) hooks_.output(Trim(line));
  });
  Output output(false, out_stream.file(), err_stream.file());
  RunEngine engine(env_, spec_, **store, **db, registry_, output);
  std::string error;
  if (job_.fallback) {
    if (!hooks_.planned("")) return hooks_.done(false, "");
    acted = true;
    log_->Warn("fallback starting",
               {{"what", job_.description}, {"triggered_by", job_.triggered_by}});
    FallbackOptions options;
    options.command = job_.command;
    options.triggered_by = job_.triggered_by;
    options.detail = job_.detail;
    auto outcome = FallBack(engine, spec_, **db, options);
    if (!outcome.ok()) return finish("fallback: " + outcome.status().message());
    run_id = outcome->id;
    log_->Log(outcome->refused ? "error" : "warn", outcome->message, {{"fallback", outcome->id}});
    return hooks_.done(true, outcome->refused ? outcome->message : "");
  }
  for (const auto& req : job_.requests) {
    DriverContext ctx = engine.Context();
    auto plan = PlanRollback(spec_, req, **store, **db, registry_, ctx);
    std::string plan_error;
    if (!plan.ok()) {
      plan_error = plan.status().message();
      error = "cannot plan the rollback of " +
              (req.all ? std::string("everything") : req.component) + ": " + plan_error;
    }
    if (!acted) {
      if (!hooks_.planned(plan_error)) return hooks_.done(false, "");
      acted = true;
      log_->Warn("rollback starting",
                 {{"what", job_.description}, {"triggered_by", job_.triggered_by}});
    }
    if (!plan.ok()) break;
    hooks_.affects(plan->affected);
    RunOptions options;
    options.command = job_.command;
    options.triggered_by = job_.triggered_by;
    options.trigger_detail = job_.detail;
    options.on_run_id = [&](const std::string& id) {
      run_id = id;
      hooks_.run_started(id);
    };
    auto outcome = engine.Start(*plan, options);
    if (!outcome.ok()) {
      error = "refused: " + outcome.status().message();
      break;
    }
    run_id = outcome->run_id;
    log_->Log(outcome->succeeded() ? "info" : "error",
              outcome->succeeded() ? "rollback succeeded" : "rollback failed",
              {{"run", outcome->run_id},
               {"duration_ms", outcome->duration_ms},
               {"target", outcome->summary.value("target", "")},
               {"error", outcome->error}});
    hooks_.finished_run(*outcome);
    if (!outcome->succeeded()) break;
  }
  finish(error);
}

}  // namespace backstop
