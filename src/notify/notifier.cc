#include "notify/notifier.h"

#include <algorithm>
#include <random>

#include "notify/notify_events.h"
#include "notify/payload.h"
#include "notify/signature.h"

namespace backstop {
namespace {

std::string CursorKey(const std::string& target) { return "notify.cursor." + target; }

// How many deliveries one DeliverDue looks at, and events one Feed reads.
constexpr int kBatch = 100;

}  // namespace

Notifier::Notifier(Env* env, const Spec& spec, Transport* transport, NotifyLog log,
                   NotifyOptions options)
    : env_(env),
      spec_(spec),
      transport_(transport),
      log_(std::move(log)),
      options_(std::move(options)) {
  if (!options_.random01) {
    options_.random01 = [] {
      thread_local std::mt19937_64 gen{std::random_device{}()};
      return std::uniform_real_distribution<double>(0.0, 1.0)(gen);
    };
  }
}

const NotifySpec* Notifier::Target(const std::string& name) const {
  for (const auto& t : spec_.notify) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Status Notifier::Feed(StateDb& db, int64_t first_event_id) {
  if (spec_.notify.empty()) return Status::OK();
  // Each target's cursor; a new one starts at first_event_id or the journal's end.
  std::vector<int64_t> cursors;
  int64_t journal_end = -1;
  for (const auto& t : spec_.notify) {
    BACKSTOP_ASSIGN_OR_RETURN(auto saved, db.Get(CursorKey(t.name)));
    int64_t cursor = 0;
    if (saved) {
      cursor = std::stoll(*saved);
    } else if (first_event_id > 0) {
      cursor = first_event_id - 1;
    } else {
      if (journal_end < 0) {
        journal_end = 0;
        for (int64_t after = 0;;) {
          BACKSTOP_ASSIGN_OR_RETURN(auto page, db.ListEvents({after, "", 1000}));
          if (page.empty()) break;
          after = journal_end = page.back().id;
        }
      }
      cursor = journal_end;
    }
    if (!saved) BACKSTOP_RETURN_IF_ERROR(db.Put(CursorKey(t.name), std::to_string(cursor)));
    cursors.push_back(cursor);
  }
  int64_t from = *std::min_element(cursors.begin(), cursors.end());
  const int64_t now_us = env_->clock()->WallMicros();
  for (;;) {
    BACKSTOP_ASSIGN_OR_RETURN(auto events, db.ListEvents({from, "", kBatch}));
    if (events.empty()) return Status::OK();
    std::vector<DeliveryRecord> queued;
    for (const auto& e : events) {
      for (size_t i = 0; i < spec_.notify.size(); ++i) {
        if (e.id <= cursors[i] || !TargetWants(spec_.notify[i], e.kind)) continue;
        DeliveryRecord d;
        d.event_id = e.id;
        d.target = spec_.notify[i].name;
        d.next_attempt_us = now_us;
        queued.push_back(std::move(d));
      }
    }
    BACKSTOP_RETURN_IF_ERROR(db.EnqueueDeliveries(queued));
    from = events.back().id;
    for (size_t i = 0; i < spec_.notify.size(); ++i) {
      if (cursors[i] >= from) continue;
      cursors[i] = from;
      BACKSTOP_RETURN_IF_ERROR(db.Put(CursorKey(spec_.notify[i].name), std::to_string(from)));
    }
  }
}

Result<int> Notifier::DeliverDue(StateDb& db, int64_t deadline_us, const std::string& target_name) {
  if (spec_.notify.empty()) return 0;
  BACKSTOP_ASSIGN_OR_RETURN(auto due,
                            db.Deliveries({env_->clock()->WallMicros(), kBatch, target_name}));
  int attempts = 0;
  for (DeliveryRecord d : due) {
    if (deadline_us > 0 && env_->clock()->NowMicros() >= deadline_us) break;
    const NotifySpec* target = Target(d.target);
    if (target == nullptr) continue;  // no longer in the spec: left queued
    BACKSTOP_ASSIGN_OR_RETURN(auto events, db.ListEvents({d.event_id - 1, "", 1}));
    if (events.empty() || events.front().id != d.event_id) continue;
    const Event& event = events.front();
    // Leased for longer than an attempt can last; lost to another process: skip it.
    const int64_t lease_us = (options_.total_timeout_ms + 60'000) * 1000;
    const int64_t claimed_at = env_->clock()->WallMicros();
    BACKSTOP_ASSIGN_OR_RETURN(
        bool mine, db.ClaimDelivery(d.event_id, d.target, claimed_at, claimed_at + lease_us));
    if (!mine) continue;
    Status sent = Send(*target, event, deadline_us);
    ++attempts;
    const int64_t now_us = env_->clock()->WallMicros();
    d.attempts += 1;
    const std::string what = std::string(EventKindName(event.kind)) + " (event " +
                             NotificationId(spec_.environment, event) + ")";
    if (sent.ok()) {
      d.delivered_us = now_us;
      d.last_error.clear();
    } else {
      d.last_error = sent.message();
      if (RetriesExhausted(options_.retry, d.attempts)) {
        d.failed_us = now_us;
        log_("error", "notify " + target->name + ": gave up on " + what + " after " +
                          std::to_string(d.attempts) + " attempts: " + d.last_error);
      } else {
        const int64_t delay_ms = RetryDelayMs(options_.retry, d.attempts, options_.random01());
        d.next_attempt_us = now_us + delay_ms * 1000;
        log_("warn", "notify " + target->name + ": " + what + " not delivered (attempt " +
                         std::to_string(d.attempts) + "): " + d.last_error + "; next in " +
                         std::to_string(delay_ms / 1000) + " s");
      }
    }
    BACKSTOP_RETURN_IF_ERROR(db.RecordDeliveryAttempt(d));
  }
  return attempts;
}

Status Notifier::Send(const NotifySpec& target, const Event& event, int64_t deadline_us) {
  int64_t total_ms = options_.total_timeout_ms;
  if (deadline_us > 0) {
    total_ms = std::min(total_ms, (deadline_us - env_->clock()->NowMicros()) / 1000);
    if (total_ms <= 0) return Status::Timeout("no time left to send");
  }
  const std::string& env_name = spec_.environment;
  if (target.type == "log") {
    log_("info", NotificationLogLine(target.name, env_name, event));
    return Status::OK();
  }
  if (target.type == "command") {
    return transport_->RunCommand(target.command, WebhookPayload(env_name, event).dump() + "\n",
                                  total_ms);
  }
  HttpPost post;
  post.url = target.url;
  post.connect_timeout_ms = std::min(options_.connect_timeout_ms, total_ms);
  post.total_timeout_ms = total_ms;
  if (target.type == "slack") {
    post.body = SlackPayload(env_name, event).dump();
  } else {
    post.body = WebhookPayload(env_name, event).dump();
    post.headers.emplace_back(kEventIdHeader, NotificationId(env_name, event));
    BACKSTOP_ASSIGN_OR_RETURN(std::string key, LoadSigningKey(env_->fs(), spec_, target));
    if (!key.empty())
      post.headers.emplace_back(kSignatureHeader, SignatureHeaderValue(key, post.body));
  }
  return transport_->Post(post);
}

}  // namespace backstop
