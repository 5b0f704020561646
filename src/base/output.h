// Output: where commands write for people and for scripts.
//
// In text mode, progress and results go to stdout and errors to stderr. With
// `--output json`, stdout carries exactly one JSON document per command (the
// result), and progress lines move to stderr so scripts can still show them.
// Thread-safety: Line/Error may be called from several threads (serialized).
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace backstop {

class Output {
 public:
  explicit Output(bool json = false, FILE* out = stdout, FILE* err = stderr)
      : json_(json), out_(out), err_(err) {}
  bool json() const { return json_; }
  // Progress: on stdout in text mode, on stderr in json mode.
  void Line(const std::string& text);
  // A human-readable result (tables, summaries): text mode only, since json
  // mode prints the same content as the JSON document.
  void Text(const std::string& text) {
    if (!json_) Line(text);
  }
  // Errors and warnings, always on stderr.
  void Error(const std::string& text);
  // The machine-readable result (json mode only; ignored otherwise).
  void Json(const nlohmann::json& doc);
  // Whether to decorate text with symbols that need UTF-8 (✓ ✗ ▶).
  static const char* Ok() { return "✓"; }
  static const char* Fail() { return "✗"; }

 private:
  bool json_;
  FILE* out_;
  FILE* err_;
  std::mutex mu_;
};

}  // namespace backstop
