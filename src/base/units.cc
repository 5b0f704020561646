#include "base/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iterator>

namespace backstop {

std::optional<int64_t> ParseDurationMs(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double total = 0;
  size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (i == start) return std::nullopt;
    double value = 0;
    try {
      value = std::stod(std::string(text.substr(start, i - start)));
    } catch (...) {
      return std::nullopt;
    }
    size_t ustart = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(ustart, i - ustart);
    double factor;
    if (unit == "ms")
      factor = 1;
    else if (unit == "s")
      factor = 1000;
    else if (unit == "m")
      factor = 60'000;
    else if (unit == "h")
      factor = 3'600'000;
    else if (unit == "d")
      factor = 86'400'000;
    else
      return std::nullopt;
    total += value * factor;
    any = true;
  }
  if (!any || total > 9.0e15) return std::nullopt;
  return static_cast<int64_t>(std::llround(total));
}

std::optional<double> ParsePercent(std::string_view text) {
  if (text.size() < 2 || text.back() != '%') return std::nullopt;
  std::string num(text.substr(0, text.size() - 1));
  for (char c : num) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.') return std::nullopt;
  }
  try {
    size_t used = 0;
    double v = std::stod(num, &used);
    if (used != num.size() || v < 0 || v > 100) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<uint64_t> ParseBytes(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return std::nullopt;
  double v = 0;
  try {
    v = std::stod(std::string(text.substr(0, i)));
  } catch (...) {
    return std::nullopt;
  }
  std::string unit(text.substr(i));
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  double f;
  if (unit.empty() || unit == "B")
    f = 1;
  else if (unit == "kB" || unit == "KB")
    f = 1e3;
  else if (unit == "MB")
    f = 1e6;
  else if (unit == "GB")
    f = 1e9;
  else if (unit == "TB")
    f = 1e12;
  else if (unit == "KiB")
    f = 1024.0;
  else if (unit == "MiB")
    f = 1024.0 * 1024;
  else if (unit == "GiB")
    f = 1024.0 * 1024 * 1024;
  else if (unit == "TiB")
    f = 1024.0 * 1024 * 1024 * 1024;
  else
    return std::nullopt;
  return static_cast<uint64_t>(std::llround(v * f));
}

std::string FormatDurationMs(int64_t ms) {
  char buf[64];
  if (ms < 0) ms = 0;
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lld ms", static_cast<long long>(ms));
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.2f s", ms / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>((ms / 1000) % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>((ms / 60'000) % 60));
  }
  return buf;
}

std::string FormatDurationSpec(int64_t ms) {
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  int64_t s = ms / 1000;
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h", s %= 3600;
  if (s >= 60) out += std::to_string(s / 60) + "m", s %= 60;
  if (s > 0) out += std::to_string(s) + "s";
  return out;
}

static std::tm UtcTm(int64_t wall_micros) {
  std::time_t t = static_cast<std::time_t>(wall_micros / 1'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

std::string FormatRfc3339(int64_t wall_micros, bool millis) {
  std::tm tm = UtcTm(wall_micros);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (millis) {
    char ms[8];
    std::snprintf(ms, sizeof ms, ".%03lld", static_cast<long long>((wall_micros / 1000) % 1000));
    out += ms;
  }
  return out + "Z";
}

// Reads exactly `n` digits at *p.
static bool Digits(std::string_view s, size_t* p, int n, int* out) {
  if (*p + n > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char ch = s[*p + i];
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + (ch - '0');
  }
  *p += n;
  *out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil).
static int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::optional<int64_t> ParseTimestamp(std::string_view s) {
  size_t p = 0;
  auto sep = [&](char ch) {
    if (p >= s.size() || s[p] != ch) return false;
    ++p;
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!Digits(s, &p, 4, &y) || !sep('-') || !Digits(s, &p, 2, &mo) || !sep('-') ||
      !Digits(s, &p, 2, &d) || !(sep(' ') || sep('T') || sep('t')) || !Digits(s, &p, 2, &h) ||
      !sep(':') || !Digits(s, &p, 2, &mi) || !sep(':') || !Digits(s, &p, 2, &se)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  int64_t micros = 0;
  if (sep('.')) {
    int n = 0;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      if (n++ < 6) micros = micros * 10 + (s[p] - '0');
      ++p;
    }
    if (n == 0) return std::nullopt;
    for (; n < 6; ++n) micros *= 10;
  }
  if (sep('Z') || sep('z')) {
    if (p != s.size()) return std::nullopt;
    return (DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) * 1'000'000 + micros;
  }
  int sign = sep('-') ? -1 : 1;
  if (sign == 1 && !sep('+')) return std::nullopt;
  int oh = 0, om = 0, os = 0;
  if (!Digits(s, &p, 2, &oh)) return std::nullopt;
  if (sep(':') && !Digits(s, &p, 2, &om)) return std::nullopt;
  if (sep(':') && !Digits(s, &p, 2, &os)) return std::nullopt;
  if (p != s.size()) return std::nullopt;
  int64_t secs = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
  secs -= sign * (oh * 3600 + om * 60 + os);  // local time minus its offset is UTC
  return secs * 1'000'000 + micros;
}

std::string FormatCompactUtc(int64_t wall_micros) {
  std::tm tm = UtcTm(wall_micros);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string FormatThousands(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  int count = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (count > 0 && count % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++count;
  }
  return out;
}

std::string FormatBytes(uint64_t n) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (n < 1024) return std::to_string(n) + " B";
  double value = static_cast<double>(n);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  // One decimal below 100 ("23.4 MiB"); none above ("118 GiB"). A value that
  // rounds up to 1024 stays in its unit ("1024 KiB" rather than a wrong "1.0 MiB").
  std::snprintf(text, sizeof text, value < 99.95 ? "%.1f %s" : "%.0f %s", value, kUnits[unit]);
  return text;
}

}  // namespace backstop
