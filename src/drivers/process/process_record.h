// The process record: the file <state_dir>/components/<name>/process.json
// that names the process Backstop started for a service ({pid, pgid,
// start_ticks, release, started_at, command, log, released}), so that any
// later backstop process finds it, adopts it when it is still the same
// process (same pid and start time), and never signals a recycled pid.
// Written atomically (temp file, fsync, rename) before the process may run.
//
// Thread-safety: the functions are safe to call from any thread; one record
// is written by one backstop at a time (the run lock).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/status.h"
#include "drivers/process/process_settings.h"

namespace backstop::process {

struct Record {
  pid_t pid = 0;  // also its process group and session id (started with setsid)
  uint64_t start_ticks = 0;
  std::string release;
  std::string started_at;
  int64_t started_us = 0;  // wall clock; 0 in records written before it was kept
  std::vector<std::string> command;
  std::string log;
  // False while the process is held before exec: written so before it may
  // run, true once it was released. A live process whose record still says
  // false was started by a backstop that died around the release; it is
  // stopped and started afresh rather than trusted. Records written before
  // this field existed describe released processes.
  bool released = true;
  ProcessIdentity identity() const { return {pid, start_ticks}; }
};

// The record, or nullopt when there is none (or it is unreadable: then it is
// treated as absent, which is safe: nothing is signalled without a record).
// REQUIRES: s.record_path is set (LoadSettings with a state directory).
std::optional<Record> ReadRecord(const Settings& s, FileSystem* fs);

// Writes the record atomically. REQUIRES: s.record_path is set.
Status WriteRecord(const Settings& s, FileSystem* fs, const Record& r);

// True if the recorded process is the one we started: alive, same start time.
bool IsOurs(ProcessRunner* procs, const Record& r);

}  // namespace backstop::process
