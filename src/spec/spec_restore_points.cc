// The restore_points section: a schedule (`every`, taken by `backstop
// watch`) and a retention policy (`keep`, applied by `backstop prune`):
//   restore_points: {every: 1h, keep: {last: 3, hourly: 24, daily: 7, weekly: 4, monthly: 6}}
#include <string>
#include <vector>

#include "spec/spec_parser.h"

namespace backstop::spec_internal {

namespace {

const std::vector<std::string> kRestorePointsKeys = {"every", "keep"};
const std::vector<std::string> kKeepKeys = {"last", "hourly", "daily", "weekly", "monthly"};
// Far more than any retention needs; small enough that a typo (100000) is caught.
constexpr int64_t kMaxKeep = 10000;

}  // namespace

void Parser::ParseRestorePoints(const Entry& e, Spec* spec) {
  MapFields f;
  if (!ReadMap(e.value, At(e), "restore_points",
               "a map {every: DURATION, keep: {last, hourly, daily, weekly, monthly}}", &f)) {
    return;
  }
  RestorePointsSpec& rp = spec->restore_points;
  rp.pos = Pos(At(e));
  if (Entry* every = f.Take("every")) {
    if (auto v = Duration(*every, "restore_points.every", /*positive=*/true)) rp.every_ms = *v;
  }
  if (Entry* keep = f.Take("keep")) {
    MapFields k;
    if (ReadMap(keep->value, At(*keep), "restore_points.keep",
                "a map of counts {last, hourly, daily, weekly, monthly}", &k)) {
      int* slots[] = {&rp.keep.last, &rp.keep.hourly, &rp.keep.daily, &rp.keep.weekly,
                      &rp.keep.monthly};
      for (size_t i = 0; i < kKeepKeys.size(); ++i) {
        Entry* n = k.Take(kKeepKeys[i]);
        if (n == nullptr) continue;
        const std::string path = "restore_points.keep." + kKeepKeys[i];
        if (auto v = Int(*n, path, 0, kMaxKeep, "a count from 0 to " + std::to_string(kMaxKeep))) {
          *slots[i] = static_cast<int>(*v);
        }
      }
      RejectUnknown(k, kKeepKeys);
    }
  }
  RejectUnknown(f, kRestorePointsKeys);
}

}  // namespace backstop::spec_internal
