// The watch daemon's logger. See watch_logger.h.
#include "watch/watch_logger.h"

#include <cctype>

#include "base/units.h"

namespace backstop {

WatchLogger::WatchLogger(bool json, FILE* out, Clock* clock)
    : json_(json), out_(out), clock_(clock != nullptr ? clock : Env::Default()->clock()) {}

void WatchLogger::AddSecret(const std::string& secret) {
  if (secret.size() < 4) return;  // too short to redact without mangling ordinary text
  std::lock_guard<std::mutex> lock(mu_);
  secrets_.push_back(secret);
}

std::string WatchLogger::Redact(std::string text) const {
  for (const auto& s : secrets_) {
    size_t pos;
    while ((pos = text.find(s)) != std::string::npos) text.replace(pos, s.size(), "[redacted]");
  }
  // Credentials that may ride along in what drivers print: libpq's
  // "password=..." and URLs' "scheme://user:password@host".
  static const std::string kPassword = "password=";
  for (size_t pos = 0; (pos = text.find(kPassword, pos)) != std::string::npos;) {
    size_t start = pos + kPassword.size();
    size_t end = text.find_first_of(" \t\"',;&", start);
    if (end == std::string::npos) end = text.size();
    if (end > start) text.replace(start, end - start, "[redacted]");
    pos = start;
  }
  for (size_t pos = 0; (pos = text.find("://", pos)) != std::string::npos;) {
    size_t start = pos + 3;
    size_t at = text.find('@', start);
    size_t stop = text.find_first_of(" \t\"/'", start);
    if (at != std::string::npos && (stop == std::string::npos || at < stop)) {
      size_t colon = text.find(':', start);
      if (colon != std::string::npos && colon < at) {
        text.replace(colon + 1, at - colon - 1, "[redacted]");
      }
    }
    pos = start;
  }
  return text;
}

void WatchLogger::Log(const std::string& level, const std::string& msg,
                      const nlohmann::json& fields) {
  const std::string ts = FormatRfc3339(clock_->WallMicros(), /*millis=*/true);
  std::string line;
  if (json_) {
    nlohmann::json j = {{"ts", ts},
                        {"level", level},
                        {"msg", msg},
                        {"fields", fields.is_null() ? nlohmann::json::object() : fields}};
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    std::string upper = level;
    for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    line =
        ts + " " + upper + (upper.size() < 5 ? std::string(5 - upper.size(), ' ') : "") + " " + msg;
    if (fields.is_object()) {
      for (const auto& [k, v] : fields.items()) {
        std::string value;
        if (v.is_string()) {
          value = v.get<std::string>();
          if (value.empty() || value.find_first_of(" \t\"=") != std::string::npos) {
            value = nlohmann::json(value).dump(-1, ' ', false,
                                               nlohmann::json::error_handler_t::replace);
          }
        } else {
          value = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        line += " " + k + "=" + value;
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  line = Redact(std::move(line));
  std::fputs(line.c_str(), out_);
  std::fputc('\n', out_);
  std::fflush(out_);
}

}  // namespace backstop
