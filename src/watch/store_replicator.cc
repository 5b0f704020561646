#include "watch/store_replicator.h"

#include <algorithm>

#include "base/units.h"
#include "store/remote/remote_store_open.h"

namespace backstop {

StoreReplicator::StoreReplicator(Env* env, ReplicateFn replicate)
    : env_(env), replicate_(std::move(replicate)) {}

StoreReplicator::~StoreReplicator() {
  if (thread_.joinable()) thread_.join();
}

void StoreReplicator::Reap(bool block) {
  if (!thread_.joinable() || (!block && !done_.load())) return;
  thread_.join();
  done_ = false;
  last_ = attempt_;
  const int64_t now = env_->clock()->NowMicros();
  if (last_.result == ReplicateAttempt::Result::kFailed) {
    ++failures_;
    int64_t delay = kReplicateFirstRetryMs;
    for (int i = 1; i < failures_ && delay < kReplicateMaxRetryMs; ++i) delay *= 2;
    next_due_us_ = now + std::min(delay, kReplicateMaxRetryMs) * 1000;
  } else {
    failures_ = 0;
    next_due_us_ = now + kReplicateCheckEveryMs * 1000;
  }
}

void StoreReplicator::Wait() { Reap(/*block=*/true); }

void StoreReplicator::Tick(bool run_active) {
  Reap(/*block=*/false);
  if (thread_.joinable() || run_active) return;
  if (env_->clock()->NowMicros() < next_due_us_) return;
  done_ = false;
  thread_ = std::thread([this] {
    attempt_ = replicate_();
    done_ = true;
  });
}

ReplicateAttempt ReplicateRestorePoints(Env* env, const Spec& spec, WatchLogger* log) {
  ReplicateAttempt attempt;
  auto fail = [&](const std::string& why) {
    attempt.result = ReplicateAttempt::Result::kFailed;
    attempt.detail = why;
    log->Error("restore points not replicated", {{"remote", spec.remote_store->url}, {"why", why}});
    return attempt;
  };
  auto store = Store::Open(env, spec.store_path);
  if (!store.ok()) return fail(store.status().message());
  if (RemoteStore::NotReplicated(**store, ReplicaName(*spec.remote_store)).empty()) {
    return attempt;  // kNothing, without a request
  }
  auto remote = OpenRemoteStore(env, spec, store->get());
  if (!remote.ok()) return fail(remote.status().message());
  const int64_t t0 = env->clock()->NowMicros();
  auto summary = (*remote)->Sync([log](const ReplicationProgress& p) {
    if (p.blobs_done == 0) {
      log->Info("replicating restore point",
                {{"restore_point", p.restore_point}, {"blobs", p.blobs_to_move}});
    }
  });
  if (!summary.ok()) return fail(summary.status().message());
  attempt.uploaded = summary->uploaded;
  const int64_t ms = (env->clock()->NowMicros() - t0) / 1000;
  for (const auto& id : summary->uploaded) {
    log->Info("restore point replicated",
              {{"restore_point", id}, {"remote", (*remote)->Describe()}});
  }
  if (!summary->uploaded.empty()) {
    log->Info("replication done", {{"uploaded", summary->uploaded.size()},
                                   {"blobs_sent", summary->blobs_sent},
                                   {"bytes_sent", summary->bytes_sent},
                                   {"duration_ms", ms}});
  }
  if (!summary->failed.empty()) {
    std::string why;
    for (const auto& f : summary->failed) why += (why.empty() ? "" : "; ") + f;
    return fail(why);
  }
  attempt.result = ReplicateAttempt::Result::kReplicated;
  return attempt;
}

}  // namespace backstop
