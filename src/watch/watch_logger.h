// WatchLogger: the watch daemon's log, text or JSON lines, with secrets redacted.
//
// Ownership: borrows `out` and the clock (they must outlive it).
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/env.h"

namespace backstop {

// Log lines: text ("<ts> LEVEL msg key=value ...") or JSON lines
// ({"ts", "level", "msg", "fields"}), on `out` (stderr by default). Any
// registered secret is replaced by "[redacted]" wherever it would appear.
// Thread-safety: safe from any thread.
class WatchLogger {
 public:
  explicit WatchLogger(bool json, FILE* out = stderr, Clock* clock = nullptr);
  void Log(const std::string& level, const std::string& msg,
           const nlohmann::json& fields = nlohmann::json::object());
  void Info(const std::string& msg, const nlohmann::json& fields = nlohmann::json::object()) {
    Log("info", msg, fields);
  }
  void Warn(const std::string& msg, const nlohmann::json& fields = nlohmann::json::object()) {
    Log("warn", msg, fields);
  }
  void Error(const std::string& msg, const nlohmann::json& fields = nlohmann::json::object()) {
    Log("error", msg, fields);
  }
  void AddSecret(const std::string& secret);

 private:
  std::string Redact(std::string text) const;
  bool json_;
  FILE* out_;
  Clock* clock_;
  std::mutex mu_;
  std::vector<std::string> secrets_;
};

}  // namespace backstop
