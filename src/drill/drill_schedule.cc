#include "drill/drill_schedule.h"

#include <time.h>

#include <algorithm>
#include <bitset>
#include <cctype>
#include <cstdio>
#include <sstream>

#include "base/units.h"
#include "drill/drill_faults.h"
#include "drill/full_system.h"

namespace backstop {
namespace {

constexpr int64_t kMinuteUs = 60'000'000;
constexpr int64_t kYearMinutes = 366 * 24 * 60;

struct tm UtcTm(int64_t wall_us) {
  time_t secs = static_cast<time_t>(wall_us / 1000000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  return tm;
}

// One cron field as the set of values it matches. The spec parser has
// validated the expression (spec_internal::ValidateCron); anything it would
// refuse makes the field empty here, so it never matches.
struct CronSet {
  std::bitset<61> values;
  bool star = false;  // "*" (or "*/1"): unrestricted, for the day-of-month/week rule
};

int CronValue(const std::string& text, const std::vector<std::string>& names, int low) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (size_t i = 0; i < names.size(); ++i) {
    if (lower == names[i]) return static_cast<int>(i) + low;
  }
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoi(text);
}

CronSet ParseCronField(const std::string& field, int low, int high,
                       const std::vector<std::string>& names) {
  CronSet out;
  std::stringstream items(field);
  std::string item;
  while (std::getline(items, item, ',')) {
    int step = 1;
    const bool stepped = item.find('/') != std::string::npos;
    if (size_t slash = item.find('/'); slash != std::string::npos) {
      step = CronValue(item.substr(slash + 1), {}, 0);
      item = item.substr(0, slash);
      if (step <= 0) return CronSet{};
    }
    int from = low, to = high;
    if (item == "*") {
      out.star = out.star || step == 1;
    } else if (size_t dash = item.find('-'); dash != std::string::npos) {
      from = CronValue(item.substr(0, dash), names, low);
      to = CronValue(item.substr(dash + 1), names, low);
    } else {
      from = CronValue(item, names, low);
      to = from;
      if (stepped) to = high;  // "5/15": from 5 on, every 15
    }
    if (from < low || to > high || from > to) return CronSet{};
    for (int v = from; v <= to; v += step) out.values.set(v);
  }
  return out;
}

struct Cron {
  CronSet minute, hour, dom, month, dow;
  bool Matches(const struct tm& tm) const {
    if (!minute.values.test(tm.tm_min) || !hour.values.test(tm.tm_hour) ||
        !month.values.test(tm.tm_mon + 1)) {
      return false;
    }
    const bool dom_ok = dom.values.test(tm.tm_mday);
    const bool dow_ok = dow.values.test(tm.tm_wday) || (tm.tm_wday == 0 && dow.values.test(7));
    // cron(8): when both day fields are restricted, either one matching will do.
    if (!dom.star && !dow.star) return dom_ok || dow_ok;
    return dom_ok && dow_ok;
  }
};

std::optional<Cron> ParseCron(const std::string& expr) {
  std::vector<std::string> fields;
  std::stringstream in(expr);
  std::string f;
  while (in >> f) fields.push_back(f);
  if (fields.size() != 5) return std::nullopt;
  Cron c;
  c.minute = ParseCronField(fields[0], 0, 59, {});
  c.hour = ParseCronField(fields[1], 0, 23, {});
  c.dom = ParseCronField(fields[2], 1, 31, {});
  c.month = ParseCronField(
      fields[3], 1, 12,
      {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"});
  c.dow = ParseCronField(fields[4], 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"});
  return c;
}

bool IsCalendar(const std::string& schedule) {
  return schedule == "weekly" || schedule == "monthly" || schedule == "quarterly" ||
         schedule == "annually";
}

// The newest drill of that name (a running one counts: it is being done).
const DrillRecord* LastOf(const std::string& name, const std::vector<DrillRecord>& history) {
  const DrillRecord* last = nullptr;
  for (const auto& d : history) {
    if (d.name != name) continue;
    if (last == nullptr || d.started_us > last->started_us) last = &d;
  }
  return last;
}

std::vector<std::string> ComponentsFor(const Spec& spec, const std::string& scenario) {
  if (scenario == "full_system") return {kAllServices};  // every service at once
  const ComponentKind kind = FaultComponentKind(scenario);
  std::vector<std::string> out;
  for (const auto& name : spec.component_order) {
    const ComponentSpec* c = spec.Find(name);
    if (c != nullptr && c->kind == kind) out.push_back(name);
  }
  return out;
}

}  // namespace

std::string DrillPeriod(const std::string& schedule, int64_t wall_us) {
  struct tm tm = UtcTm(wall_us);
  char buf[32];
  if (schedule == "weekly") {
    strftime(buf, sizeof(buf), "%G-W%V", &tm);
  } else if (schedule == "monthly") {
    strftime(buf, sizeof(buf), "%Y-%m", &tm);
  } else if (schedule == "quarterly") {
    snprintf(buf, sizeof(buf), "%04d-Q%d", tm.tm_year + 1900, tm.tm_mon / 3 + 1);
  } else if (schedule == "annually") {
    snprintf(buf, sizeof(buf), "%04d", tm.tm_year + 1900);
  } else {
    return "";
  }
  return buf;
}

std::optional<int64_t> LastCronFiring(const std::string& expr, int64_t wall_us) {
  std::optional<Cron> cron = ParseCron(expr);
  if (!cron) return std::nullopt;
  int64_t t = wall_us - wall_us % kMinuteUs;
  for (int64_t i = 0; i <= kYearMinutes; ++i, t -= kMinuteUs) {
    if (cron->Matches(UtcTm(t))) return t;
  }
  return std::nullopt;
}

bool DrillDue(const DrillSpec& drill, const std::vector<DrillRecord>& history, int64_t now_wall_us,
              std::string* why) {
  const DrillRecord* last = LastOf(drill.name, history);
  std::string said;
  bool due = false;
  if (IsCalendar(drill.schedule)) {
    const std::string now_period = DrillPeriod(drill.schedule, now_wall_us);
    if (last != nullptr && DrillPeriod(drill.schedule, last->started_us) == now_period) {
      said = drill.schedule + ": done in " + now_period + " (drill " + last->id + ")";
    } else {
      due = true;
      said = drill.schedule + ": none yet in " + now_period;
    }
  } else if (!drill.schedule.empty()) {
    std::optional<int64_t> fired = LastCronFiring(drill.schedule, now_wall_us);
    if (!fired) {
      said = "cron '" + drill.schedule + "': no firing within the last year";
    } else if (last != nullptr && last->started_us >= *fired) {
      said = "cron '" + drill.schedule + "': done since it last fired at " + FormatRfc3339(*fired) +
             " (drill " + last->id + ")";
    } else {
      due = true;
      said = "cron '" + drill.schedule + "': fired at " + FormatRfc3339(*fired) +
             (last == nullptr ? ", never run" : ", not run since");
    }
  } else {
    said = "no schedule: run by hand only";
  }
  if (why != nullptr) *why = said;
  return due;
}

std::string NextRotatingComponent(const Spec& spec, const DrillSpec& drill,
                                  const std::vector<DrillRecord>& history) {
  if (!drill.component.empty()) return drill.component;
  std::vector<std::string> candidates = ComponentsFor(spec, drill.scenario);
  if (candidates.empty()) return "";
  const DrillRecord* last = LastOf(drill.name, history);
  if (last == nullptr) return candidates.front();
  auto it = std::find(candidates.begin(), candidates.end(), last->component);
  if (it == candidates.end() || std::next(it) == candidates.end()) return candidates.front();
  return *std::next(it);
}

DrillTrend ComputeTrend(const std::vector<DrillRecord>& newest_first, int n) {
  DrillTrend t;
  std::vector<const DrillRecord*> done;
  for (const auto& d : newest_first) {
    if (d.status == DrillStatus::kRunning) continue;
    if (n > 0 && static_cast<int>(done.size()) >= n) break;
    done.push_back(&d);
  }
  t.drills = static_cast<int>(done.size());
  int64_t detection_sum = 0, recovery_sum = 0;
  int detections = 0;
  std::vector<int64_t> recoveries;  // newest first
  for (const DrillRecord* d : done) {
    if (d->status == DrillStatus::kPassed) ++t.passed;
    if (d->detection_ms >= 0) detection_sum += d->detection_ms, ++detections;
    if (d->recovery_ms >= 0) {
      recovery_sum += d->recovery_ms;
      recoveries.push_back(d->recovery_ms);
      if (d->target_ms > 0) {
        ++t.with_target;
        if (d->recovery_ms <= d->target_ms) ++t.targets_met;
      }
    }
  }
  if (detections > 0) t.avg_detection_ms = detection_sum / detections;
  if (!recoveries.empty()) {
    t.avg_recovery_ms = recovery_sum / static_cast<int64_t>(recoveries.size());
  }
  if (recoveries.size() >= 2) {
    const size_t half = recoveries.size() / 2;
    double newer = 0, older = 0;
    for (size_t i = 0; i < half; ++i) newer += static_cast<double>(recoveries[i]);
    for (size_t i = recoveries.size() - half; i < recoveries.size(); ++i) {
      older += static_cast<double>(recoveries[i]);
    }
    newer /= static_cast<double>(half);
    older /= static_cast<double>(half);
    // Within 10% either way is noise, not a trend.
    t.direction = newer < older * 0.9 ? "improving" : newer > older * 1.1 ? "worsening" : "steady";
  }
  return t;
}

std::string DrillTrend::Describe() const {
  if (drills == 0) return "no finished drills yet";
  std::string out = std::to_string(passed) + " of " + std::to_string(drills) + " passed";
  if (avg_recovery_ms >= 0) {
    out += "; recovery " + FormatDurationMs(avg_recovery_ms) + " on average";
    if (with_target > 0) {
      out += " (target met " + std::to_string(targets_met) + " of " + std::to_string(with_target) +
             ")";
    }
  }
  if (avg_detection_ms >= 0) out += "; detection " + FormatDurationMs(avg_detection_ms);
  if (!direction.empty()) out += "; recovery " + direction;
  return out;
}

}  // namespace backstop
