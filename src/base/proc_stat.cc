// /proc/<pid>/stat parsing. See proc_stat.h.
#include "base/proc_stat.h"

#include <charconv>
#include <string>

namespace backstop {

namespace {

// The next space-separated word of `rest`, removed from it; empty at the end.
std::string_view NextField(std::string_view* rest) {
  size_t start = rest->find_first_not_of(' ');
  if (start == std::string_view::npos) {
    *rest = {};
    return {};
  }
  size_t end = rest->find_first_of(" \n", start);
  if (end == std::string_view::npos) end = rest->size();
  std::string_view field = rest->substr(start, end - start);
  rest->remove_prefix(end);
  return field;
}

template <typename T>
bool ParseNumber(std::string_view field, T* out) {
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), *out);
  return ec == std::errc() && end == field.data() + field.size();
}

}  // namespace

Result<ProcStat> ParseProcStat(std::string_view text) {
  size_t close = text.rfind(')');
  if (close == std::string_view::npos) {
    return Status::Corruption("process stat has no command name: " + std::string(text));
  }
  std::string_view rest = text.substr(close + 1);
  ProcStat st;
  for (int field = 3; field <= 24; ++field) {
    std::string_view word = NextField(&rest);
    if (word.empty()) {
      return Status::Corruption("process stat ends before field " + std::to_string(field));
    }
    bool ok = true;
    switch (field) {
      case 3:
        st.state = word[0];
        break;
      case 4:
        ok = ParseNumber(word, &st.ppid);
        break;
      case 5:
        ok = ParseNumber(word, &st.pgrp);
        break;
      case 6:
        ok = ParseNumber(word, &st.session);
        break;
      case 14:
        ok = ParseNumber(word, &st.utime_ticks);
        break;
      case 15:
        ok = ParseNumber(word, &st.stime_ticks);
        break;
      case 22:
        ok = ParseNumber(word, &st.start_ticks);
        break;
      case 24:
        ok = ParseNumber(word, &st.rss_pages);
        break;
      default:
        break;
    }
    if (!ok) {
      return Status::Corruption("process stat field " + std::to_string(field) +
                                " is not a number: " + std::string(word));
    }
  }
  return st;
}

Result<uint64_t> ReadMemInfoBytes(FileSystem* fs, std::string_view key) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string text, fs->ReadFile("/proc/meminfo"));
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') {
      continue;
    }
    std::string_view value = line.substr(key.size() + 1);
    std::string_view number = NextField(&value);
    uint64_t kb = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), kb);
    if (ec != std::errc() || end != number.data() + number.size()) break;
    return kb * 1024;
  }
  return Status::NotFound(std::string(key) + " in /proc/meminfo");
}

Result<ProcStat> ReadProcStat(FileSystem* fs, pid_t pid) {
  auto text = fs->ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text.ok() || text->empty()) return Status::NotFound("process " + std::to_string(pid));
  return ParseProcStat(*text);
}

}  // namespace backstop
