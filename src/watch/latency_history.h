// The probe latencies of one component over the last hour, for the
// dashboard's sparklines (GET /api/v1/latency): one point per 10-second
// bucket (the slowest probe in it, and whether any failed), at most 360
// points, so a component costs a few kilobytes however often it is probed.
//
// Thread-safety: none; the Watcher guards each one with its mu_.
#pragma once

#include <cstdint>
#include <deque>

#include <nlohmann/json.hpp>

namespace backstop {

class LatencyHistory {
 public:
  static constexpr int64_t kBucketUs = 10'000'000;           // 10 s
  static constexpr int64_t kKeepUs = 3'600'000'000;          // one hour
  static constexpr size_t kMaxPoints = kKeepUs / kBucketUs;  // 360

  // A probe's outcome at wall-clock `wall_us`. Outcomes older than the newest
  // bucket are ignored (the wall clock stepped back).
  void Add(int64_t wall_us, double latency_ms, bool pass);

  // [[bucket start in ms since the epoch, slowest latency ms, 1 when all
  // passed else 0], ...], oldest first, within the hour before `now_wall_us`.
  nlohmann::json ToJson(int64_t now_wall_us) const;

  size_t size() const { return points_.size(); }

 private:
  struct Point {
    int64_t bucket = 0;  // wall_us / kBucketUs
    double latency_ms = 0;
    bool pass = true;
  };
  std::deque<Point> points_;
};

}  // namespace backstop
