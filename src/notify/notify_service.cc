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

Status NotifyService::Start(int64_t poll_ms, Transport* transport) {
  if (spec_.notify.empty()) return Status::OK();
  const std::string db_path = JoinPath(spec_.state_dir, "state.db");
  BACKSTOP_ASSIGN_OR_RETURN(db_, StateDb::Open(db_path));
  for (const auto& target : spec_.notify) {
    auto d = std::make_unique<Deliverer>();
    d->target = target.name;
    BACKSTOP_ASSIGN_OR_RETURN(d->db, StateDb::Open(db_path));
    if (transport == nullptr) d->own_transport = std::make_unique<CurlTransport>(env_);
    d->transport = transport != nullptr ? transport : d->own_transport.get();
    deliverers_.push_back(std::move(d));
  }
  g_running_service.store(this);
  feeder_ = std::thread([this, poll_ms] { FeedLoop(poll_ms); });
  for (auto& d : deliverers_) {
    Deliverer* self = d.get();
    d->thread = std::thread([this, self, poll_ms] { DeliverLoop(self, poll_ms); });
  }
  return Status::OK();
}

void NotifyService::Stop() {
  if (!feeder_.joinable()) return;
  NotifyService* self = this;
  g_running_service.compare_exchange_strong(self, nullptr);
  {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  feeder_.join();
  for (auto& d : deliverers_) {
    if (d->thread.joinable()) d->thread.join();
  }
}

void NotifyService::Wake() {
  MutexLock lock(&mu_);
  woken_ = true;
  cv_.SignalAll();
}

void NotifyService::FeedLoop(int64_t poll_ms) {
  // Feeding needs no transport: the feeder never sends.
  Notifier notifier(env_, spec_, nullptr, log_, options_);
  std::string last_error;  // logged once until it changes
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (stop_) return;
    }
    Status st = notifier.Feed(*db_);
    if (!st.ok() && st.message() != last_error) {
      log_("error", "notifications: " + st.message());
    }
    last_error = st.ok() ? "" : st.message();
    MutexLock lock(&mu_);
    ++fed_;
    cv_.SignalAll();  // the deliverers look at their queues again
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(poll_ms);
    while (!stop_ && !woken_) {
      if (!cv_.WaitUntil(&mu_, deadline)) break;
    }
    woken_ = false;
  }
}

void NotifyService::DeliverLoop(Deliverer* d, int64_t poll_ms) {
  Notifier notifier(env_, spec_, d->transport, log_, options_);
  std::string last_error;  // logged once until it changes
  uint64_t seen = 0;       // the feeds this deliverer has looked after
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (stop_) return;
      seen = fed_;
    }
    auto made = notifier.DeliverDue(*d->db, 0, d->target);
    const Status st = made.status();
    if (!st.ok() && st.message() != last_error) {
      log_("error", "notifications to " + d->target + ": " + st.message());
    }
    last_error = st.ok() ? "" : st.message();
    MutexLock lock(&mu_);
    if (stop_) return;
    if (made.ok() && *made > 0) continue;  // more may be due
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(poll_ms);
    while (!stop_ && fed_ == seen) {
      if (!cv_.WaitUntil(&mu_, deadline)) break;
    }
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
