// Addresses written in a spec, checked before anything connects to them:
// host:port probe targets, URLs (probes, webhooks, driver settings) and the
// port of a libpq conninfo string (see spec_internal.h).
#include <cctype>
#include <string>
#include <vector>

#include "spec/spec_internal.h"

namespace backstop::spec_internal {

bool ValidHostPort(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string host = text.substr(0, colon);
  if (host.find_first_of(" /") != std::string::npos) return false;
  if (host.find(':') != std::string::npos && (host.front() != '[' || host.back() != ']')) {
    return false;
  }
  auto port = ParseInt(text.substr(colon + 1));
  return port && *port >= 1 && *port <= 65535 && text[colon + 1] != '+';
}

// URL schemes a setting may use, with whether a port is needed.
const std::vector<std::string> kUrlSchemes = {
    "http", "https", "nats", "tls", "ws", "wss", "postgres", "postgresql", "grpc", "unix", "file"};

// Checks "scheme://[user[:password]@]host[:port][/path...]": a scheme in
// `schemes`, a host, and a port (when given) in 1..65535. On failure sets
// *why ("port 99999 is out of range 1..65535"); never quotes the password.
bool CheckUrl(const std::string& text, const std::vector<std::string>& schemes, std::string* why) {
  const size_t sep = text.find("://");
  if (sep == std::string::npos || sep == 0) {
    *why = "no scheme:// part";
    return false;
  }
  const std::string scheme = text.substr(0, sep);
  std::string lower;
  for (char c : scheme) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!Contains(schemes, lower)) {
    *why = "unknown URL scheme '" + scheme + "'" + DidYouMean(lower, schemes) +
           " (known: " + JoinList(schemes) + ")";
    return false;
  }
  if (text.find_first_of(" \t\r\n") != std::string::npos) {
    *why = "a URL has no spaces";
    return false;
  }
  if (lower == "unix" || lower == "file") return true;
  std::string authority = text.substr(sep + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at != std::string::npos) authority = authority.substr(at + 1);
  std::string host = authority;
  std::string port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) {
      *why = "unclosed '[' in the host";
      return false;
    }
    host = authority.substr(0, close + 1);
    std::string rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        *why = "unexpected '" + rest + "' after the host";
        return false;
      }
      port = rest.substr(1);
      if (port.empty()) port = "(empty)";
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty()) port = "(empty)";
  }
  if (host.empty()) {
    *why = "no host";
    return false;
  }
  if (!port.empty()) {
    auto p = ParseInt(port);
    if (!p || port.front() == '+') {
      *why = "port '" + port + "' is not a number";
      return false;
    }
    if (*p < 1 || *p > 65535) {
      *why = "port " + port + " is out of range 1..65535";
      return false;
    }
  }
  return true;
}

bool ValidHttpUrl(const std::string& text, std::string* why) {
  return CheckUrl(text, {"http", "https"}, why);
}

// A string setting that holds URLs ("nats://a:4222" or, as NATS accepts, a
// comma-separated list of them) is checked as such; other strings pass.
bool CheckUrlsIn(const std::string& text, std::string* why) {
  if (text.find("://") == std::string::npos) return true;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string part = text.substr(start, comma - start);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (!CheckUrl(part, kUrlSchemes, why)) {
      std::string shown = part;
      if (size_t at = shown.rfind('@'); at != std::string::npos) {
        size_t sep = shown.find("://");
        shown =
            shown.substr(0, sep == std::string::npos ? 0 : sep + 3) + "***@" + shown.substr(at + 1);
      }
      *why = "bad URL '" + shown + "': " + *why;
      return false;
    }
    start = comma + 1;
  }
  return true;
}

// A libpq conninfo string ("host=x port=5432 ...") names its port as
// port=N: it must be in 1..65535 (libpq would only say so when connecting).
bool CheckConninfoPort(const std::string& text, std::string* why) {
  size_t at = 0;
  while ((at = text.find("port", at)) != std::string::npos) {
    const bool word_start = at == 0 || text[at - 1] == ' ' || text[at - 1] == '\t';
    size_t i = at + 4;
    at = i;
    if (!word_start) continue;
    while (i < text.size() && text[i] == ' ') ++i;
    if (i >= text.size() || text[i] != '=') continue;
    ++i;
    while (i < text.size() && text[i] == ' ') ++i;
    size_t end = text.find_first_of(" \t", i);
    std::string value = text.substr(i, end == std::string::npos ? std::string::npos : end - i);
    if (!value.empty() && (value.front() == '\'' || value.front() == '$')) continue;
    auto port = ParseInt(value);
    if (!port || value.front() == '+' || *port < 1 || *port > 65535) {
      *why = "port=" + value + " is not a port (1..65535)";
      return false;
    }
  }
  return true;
}

// Converts the (already expanded) text of a scalar setting. On failure

}  // namespace backstop::spec_internal
