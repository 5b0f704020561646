// /proc/<pid>/stat, parsed once: the fields of a process Backstop uses to
// name it across pid reuse (start time), to find its session and to measure
// it (cpu time, resident memory); and /proc/meminfo. See proc(5).
//
// Thread-safety: pure functions, safe from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include "base/env.h"
#include "base/status.h"

namespace backstop {

struct ProcStat {
  char state = '?';          // field 3: R, S, D, Z (zombie), X (dead), ...
  pid_t ppid = 0;            // field 4
  pid_t pgrp = 0;            // field 5
  pid_t session = 0;         // field 6
  uint64_t utime_ticks = 0;  // field 14, clock ticks in user mode
  uint64_t stime_ticks = 0;  // field 15, clock ticks in kernel mode
  uint64_t start_ticks = 0;  // field 22, start time in clock ticks since boot
  uint64_t rss_pages = 0;    // field 24, resident set size in pages
};

// Parses the text of /proc/<pid>/stat. The command name (field 2) is
// skipped up to its last ')', as it may hold spaces and parentheses.
// Corruption when fields are missing or not numbers.
Result<ProcStat> ParseProcStat(std::string_view text);

// Reads /proc/<pid>/stat through `fs` and parses it: NotFound when the
// process is gone.
Result<ProcStat> ReadProcStat(FileSystem* fs, pid_t pid);

// The value of `key` ("MemTotal", "MemAvailable") in /proc/meminfo, read
// through `fs`, in bytes (the file gives kB). NotFound when the file or the
// key is missing.
Result<uint64_t> ReadMemInfoBytes(FileSystem* fs, std::string_view key);

}  // namespace backstop
