// String helpers. See strings.h.
#include "base/strings.h"

#include <algorithm>

namespace backstop {

namespace {
constexpr std::string_view kWhitespace = " \t\r\n\v\f";
}  // namespace

std::string Trim(std::string_view s) {
  size_t first = s.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos) return "";
  size_t last = s.find_last_not_of(kWhitespace);
  return std::string(s.substr(first, last - first + 1));
}

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    out += items[i];
  }
  return out;
}

std::string Pad(const std::string& s, size_t width) {
  // Pads by characters as displayed: count UTF-8 lead bytes only.
  size_t shown = 0;
  for (unsigned char ch : s) {
    if ((ch & 0xC0) != 0x80) ++shown;
  }
  return shown >= width ? s + " " : s + std::string(width - shown, ' ');
}

std::string ShellJoin(const std::vector<std::string>& argv) {
  std::string out;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& word = argv[i];
    if (i > 0) out += ' ';
    bool plain = !word.empty() && word.find_first_of(" \t\"'\\$") == std::string::npos;
    out += plain ? word : "'" + word + "'";
  }
  return out;
}

bool SplitHostPort(std::string_view target, std::string* host, std::string* port) {
  if (target.substr(0, 6) == "tcp://") target.remove_prefix(6);
  if (!target.empty() && target.front() == '[') {
    size_t close = target.find(']');
    if (close == std::string_view::npos || close + 1 >= target.size() || target[close + 1] != ':') {
      return false;
    }
    *host = std::string(target.substr(1, close - 1));
    *port = std::string(target.substr(close + 2));
  } else {
    size_t colon = target.rfind(':');
    if (colon == std::string_view::npos) return false;
    *host = std::string(target.substr(0, colon));
    *port = std::string(target.substr(colon + 1));
  }
  return !host->empty() && !port->empty() &&
         std::all_of(port->begin(), port->end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string ShellQuote(std::string_view word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) return text;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

}  // namespace backstop
