#include "run/retention.h"

#include <time.h>

#include <algorithm>
#include <cstdio>

namespace backstop {
namespace {

struct Rule {
  const char* name;
  int remaining;
  std::string last_period;  // the period of the restore point this rule kept last
};

// The period of `wall_us` for a rule, as a sortable string (UTC).
std::string Period(const std::string& rule, int64_t wall_us) {
  time_t secs = static_cast<time_t>(wall_us / 1000000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  if (rule == "hourly") {
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H", &tm);
  } else if (rule == "daily") {
    strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
  } else if (rule == "weekly") {
    strftime(buf, sizeof(buf), "%G-W%V", &tm);  // ISO 8601 week (Monday first)
  } else {
    strftime(buf, sizeof(buf), "%Y-%m", &tm);
  }
  return buf;
}

}  // namespace

std::map<std::string, std::vector<std::string>> KeptByPolicy(
    const std::vector<RestorePoint>& points, const KeepPolicy& policy) {
  std::vector<const RestorePoint*> newest_first;
  for (const auto& rp : points) newest_first.push_back(&rp);
  std::sort(newest_first.begin(), newest_first.end(),
            [](const RestorePoint* a, const RestorePoint* b) {
              if (a->created_wall_us != b->created_wall_us) {
                return a->created_wall_us > b->created_wall_us;
              }
              return a->id > b->id;
            });
  std::map<std::string, std::vector<std::string>> kept;
  int last = policy.last;
  Rule rules[] = {{"hourly", policy.hourly, ""},
                  {"daily", policy.daily, ""},
                  {"weekly", policy.weekly, ""},
                  {"monthly", policy.monthly, ""}};
  int position = 0;
  for (const RestorePoint* rp : newest_first) {
    ++position;
    if (last > 0) {
      --last;
      kept[rp->id].push_back("last " + std::to_string(position));
    }
    for (Rule& r : rules) {
      if (r.remaining <= 0) continue;
      std::string period = Period(r.name, rp->created_wall_us);
      if (period == r.last_period) continue;  // a newer one already holds this period
      r.last_period = period;
      --r.remaining;
      kept[rp->id].push_back(std::string(r.name) + " " + period);
    }
  }
  return kept;
}

std::string DescribeKeepPolicy(const KeepPolicy& policy) {
  std::string out;
  auto add = [&](const char* name, int n) {
    if (n > 0) out += (out.empty() ? "" : ", ") + std::string(name) + " " + std::to_string(n);
  };
  add("last", policy.last);
  add("hourly", policy.hourly);
  add("daily", policy.daily);
  add("weekly", policy.weekly);
  add("monthly", policy.monthly);
  return out.empty() ? "none" : out;
}

}  // namespace backstop
