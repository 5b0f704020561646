#include "notify/notify_service.h"

#include <atomic>
#include <chrono>
#include <cstdio>

#include "run/run.h"

namespace backstop {
namespace {

// The NotifyService running in this process, if any.
std::atomic<NotifyService*> g_running_service{nullptr};

}  // namespace

NotifyService::NotifyService(Env* env, const Spec& spec, NotifyLog log, NotifyOptions options)
    : env_(env), spec_(spec), log_(std::move(log)), options_(std::move(options)) {}

NotifyService::~NotifyService() { Stop(); }

Status NotifyService::Start(int64_t poll_ms) {
  if (spec_.notify.empty()) return Status::OK();
  BACKSTOP_ASSIGN_OR_RETURN(db_, StateDb::Open(JoinPath(spec_.state_dir, "state.db")));
  transport_ = std::make_unique<CurlTransport>(env_);
  g_running_service.store(this);
  thread_ = std::thread([this, poll_ms] { Loop(poll_ms); });
  return Status::OK();
}

void NotifyService::Stop() {
  if (!thread_.joinable()) return;
  NotifyService* self = this;
  g_running_service.compare_exchange_strong(self, nullptr);
  {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  thread_.join();
}

void NotifyService::Wake() {
  MutexLock lock(&mu_);
  woken_ = true;
  cv_.SignalAll();
}

void NotifyService::Loop(int64_t poll_ms) {
  Notifier notifier(env_, spec_, transport_.get(), log_, options_);
  std::string last_error;  // logged once until it changes
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (stop_) return;
    }
    Status st = notifier.Feed(*db_);
    int attempts = 0;
    if (st.ok()) {
      auto made = notifier.DeliverDue(*db_);
      st = made.status();
      if (made.ok()) attempts = *made;
    }
    if (!st.ok() && st.message() != last_error) {
      log_("error", "notifications: " + st.message());
    }
    last_error = st.ok() ? "" : st.message();
    MutexLock lock(&mu_);
    if (stop_) return;
    if (attempts > 0 && st.ok()) continue;  // more may be due
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(poll_ms);
    while (!stop_ && !woken_) {
      if (!cv_.WaitUntil(&mu_, deadline)) break;
    }
    woken_ = false;
  }
}

void DeliverRunNotifications(Env* env, const Spec& spec, StateDb& db, const std::string& run_id,
                             const NotifyLog& log, int64_t budget_ms) {
  if (spec.notify.empty()) return;
  if (NotifyService* service = g_running_service.load()) {
    service->Wake();
    return;
  }
  const int64_t deadline_us = env->clock()->NowMicros() + budget_ms * 1000;
  auto first = db.ListEvents({0, run_id, 1});
  CurlTransport transport(env);
  Notifier notifier(env, spec, &transport, log);
  Status st = notifier.Feed(db, first.ok() && !first->empty() ? first->front().id : 0);
  if (st.ok()) st = notifier.DeliverDue(db, deadline_us).status();
  if (!st.ok()) log("error", "notifications: " + st.message());
}

void InstallRunNotifier() {
  AddRunEndedHook([](const RunEnded& ended) {
    DeliverRunNotifications(ended.env, ended.spec, ended.state, ended.run_id,
                            [](const std::string& level, const std::string& line) {
                              std::fprintf(stderr, "backstop: %s: %s\n", level.c_str(),
                                           line.c_str());
                            });
  });
}

}  // namespace backstop
