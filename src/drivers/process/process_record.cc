// The process record. See process_record.h.
#include "drivers/process/process_record.h"

#include <nlohmann/json.hpp>

namespace backstop::process {

using nlohmann::json;

std::optional<Record> ReadRecord(const Settings& s, FileSystem* fs) {
  auto text = fs->ReadFile(s.record_path);
  if (!text.ok()) return std::nullopt;
  try {
    json j = json::parse(*text);
    Record r;
    r.pid = j.at("pid").get<pid_t>();
    r.start_ticks = j.at("start_ticks").get<uint64_t>();
    r.release = j.value("release", "");
    r.started_at = j.value("started_at", "");
    r.started_us = j.value("started_us", int64_t{0});
    r.command = j.value("command", std::vector<std::string>{});
    r.log = j.value("log", "");
    r.released = j.value("released", true);
    if (r.pid <= 0) return std::nullopt;
    return r;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Status WriteRecord(const Settings& s, FileSystem* fs, const Record& r) {
  json j = {{"pid", r.pid},
            {"pgid", r.pid},
            {"start_ticks", r.start_ticks},
            {"release", r.release},
            {"started_at", r.started_at},
            {"started_us", r.started_us},
            {"command", r.command},
            {"log", r.log},
            {"released", r.released}};
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(s.record_path)));
  return fs->WriteFileAtomic(s.record_path, j.dump(2) + "\n");
}

// True if the recorded process is the one we started: alive, same start time.
bool IsOurs(ProcessRunner* procs, const Record& r) {
  if (!procs->IsAlive(r.pid)) return false;
  auto ticks = procs->StartTicks(r.pid);
  return ticks.ok() && *ticks == r.start_ticks;
}
}  // namespace backstop::process
