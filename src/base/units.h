// Parsing and printing of the units that appear in specs and output:
// durations ("250ms", "30s", "5m", "1h30m"), percentages ("5%"), byte sizes
// ("512MB"), timestamps (RFC 3339, UTC).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace backstop {

// Parses a duration into milliseconds. Units: ms, s, m, h, d; parts may be
// combined ("1h30m"). A bare number is not accepted (ambiguous).
std::optional<int64_t> ParseDurationMs(std::string_view text);
// Parses "5%" or "5.5%" into 5.0 / 5.5. Range 0..100.
std::optional<double> ParsePercent(std::string_view text);
// Parses "1024", "10kB", "512MB", "2GiB" into bytes.
std::optional<uint64_t> ParseBytes(std::string_view text);

// "850 ms", "2.31 s", "4m05s", "1h02m".
std::string FormatDurationMs(int64_t ms);
// Compact spec-style duration: "30s", "5m", "1h30m", "250ms".
std::string FormatDurationSpec(int64_t ms);
// "2026-11-26T02:19:47Z" (seconds) or with milliseconds when `millis`.
std::string FormatRfc3339(int64_t wall_micros, bool millis = false);
// "2026-11-30T14:03:12Z", "2026-11-30T16:03:12.5+02:00" (RFC 3339) or
// PostgreSQL's "2026-11-30 14:03:12.123456+00" (an offset "+HH", "+HH:MM" or
// "+HH:MM:SS") into microseconds since the epoch, UTC; nullopt when the text
// is not one of these or names no real time of day. An offset is required.
std::optional<int64_t> ParseTimestamp(std::string_view text);
// "20261126T021947Z": sortable, for identifiers.
std::string FormatCompactUtc(int64_t wall_micros);
// "1,204".
std::string FormatThousands(uint64_t n);
// Bytes for people, in powers of 1024 with one decimal below 100: "512 B",
// "1.5 KiB", "23.4 MiB", "118 GiB".
std::string FormatBytes(uint64_t n);

}  // namespace backstop
