// LatencyHistory (latency_history.h): a bounded deque of 10-second buckets.
#include "watch/latency_history.h"

#include <algorithm>

namespace backstop {

void LatencyHistory::Add(int64_t wall_us, double latency_ms, bool pass) {
  const int64_t bucket = wall_us / kBucketUs;
  if (!points_.empty() && bucket < points_.back().bucket) return;
  if (!points_.empty() && bucket == points_.back().bucket) {
    Point& p = points_.back();
    p.latency_ms = std::max(p.latency_ms, latency_ms);
    p.pass = p.pass && pass;
  } else {
    points_.push_back({bucket, latency_ms, pass});
  }
  const int64_t oldest = bucket - static_cast<int64_t>(kMaxPoints) + 1;
  while (!points_.empty() && (points_.front().bucket < oldest || points_.size() > kMaxPoints)) {
    points_.pop_front();
  }
}

nlohmann::json LatencyHistory::ToJson(int64_t now_wall_us) const {
  const int64_t oldest = (now_wall_us - kKeepUs) / kBucketUs;
  nlohmann::json list = nlohmann::json::array();
  for (const Point& p : points_) {
    if (p.bucket <= oldest) continue;
    list.push_back({p.bucket * (kBucketUs / 1000), p.latency_ms, p.pass ? 1 : 0});
  }
  return list;
}

}  // namespace backstop
