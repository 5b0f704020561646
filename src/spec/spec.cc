// The spec parser: backstop.yaml -> Spec, with every error positioned.
//
// yaml-cpp builds the node tree; everything after that is ours: each map is
// read key by key (so duplicate keys, which yaml-cpp keeps silently, and
// unknown keys are reported), each scalar goes through ${VAR} expansion and
// then a typed conversion. Errors are collected, never thrown, so one run of
// `backstop check` lists all of them. Nothing here may crash on any input
// (src/spec_fuzz.cc): no .as<>(), no operator[] on nodes, every yaml-cpp call
// inside a try block, no recursion whose depth the input controls.
#include "spec/spec.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "base/env.h"
#include "base/units.h"
#include "drivers/driver.h"
#include "spec/spec_expect.h"
#include "spec/spec_internal.h"

namespace backstop {

std::string SourcePos::ToString() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string SpecError::ToString() const {
  std::string out = pos.ToString();
  for (const std::string* part : {&key, &message}) {
    if (part->empty()) continue;
    if (!out.empty()) out += ": ";
    out += *part;
  }
  return out;
}

std::string ProbeSpec::Describe() const {
  switch (type) {
    case Type::kHttp:
      return "http " + target;
    case Type::kTcp:
      return "tcp " + target;
    case Type::kGrpc:
      return "grpc " + target + (grpc_service.empty() ? "" : " service " + grpc_service);
    case Type::kExec: {
      std::string out = "exec";
      for (const auto& arg : command) out += " " + arg;
      return out;
    }
    case Type::kNone:
      break;
  }
  return "none";
}

const ComponentSpec* Spec::Find(const std::string& name) const {
  auto it = components.find(name);
  return it == components.end() ? nullptr : &it->second;
}

namespace {

using spec_internal::DidYouMean;
using Mark = YAML::Mark;

const std::vector<std::string> kTopKeys = {
    "environment", "protected", "state_dir",       "store",  "data_loss",
    "components",  "triggers",  "decision_matrix", "drills", "notify"};
const std::vector<std::string> kKinds = {"service", "config", "database", "stream", "traffic"};
const std::vector<std::string> kComponentKeys = {"kind", "driver", "depends_on", "health"};
const std::vector<std::string> kProbeTypes = {"http", "tcp", "exec", "grpc"};
const std::vector<std::string> kProbeKeys = {"http",         "tcp",           "exec",     "grpc",
                                             "service",      "expect_status", "interval", "timeout",
                                             "start_period", "retries"};
const std::vector<std::string> kSignals = {"health",       "latency",     "error_rate",
                                           "cpu",          "memory",      "connect_time",
                                           "disconnected", "unreachable", "integrity"};
const std::vector<std::string> kTriggerKeys = {
    "name",  "component", "signal", "metric",          "consecutive",  "above",
    "below", "for",       "window", "keep_firing_for", "missing_data", "action"};
const std::vector<std::string> kMissingData = {"fail", "ignore", "keep"};
const std::vector<std::string> kActions = {"component_rollback", "evaluate_and_rollback",
                                           "immediate_rollback", "alert"};
const std::vector<std::string> kRuleKeys = {"scenario", "triggers", "scope", "procedure",
                                            "recovery_time"};
const std::vector<std::string> kScopes = {"component", "component_and_dependents", "affected",
                                          "all", "fallback"};
const std::vector<std::string> kDrillKeys = {"name", "scenario", "component", "schedule",
                                             "environment"};
const std::vector<std::string> kBuiltinFaults = {
    "service_failure", "bad_deploy", "database_corruption", "stream_loss", "full_system"};
const std::vector<std::string> kSchedules = {"weekly", "monthly", "quarterly", "annually"};
const std::vector<std::string> kNotifyKeys = {"name", "type", "url", "command", "on"};
const std::vector<std::string> kNotifyTypes = {"webhook", "command", "log"};
const std::vector<std::string> kEvents = {"rollback_started", "rollback_finished",
                                          "rollback_failed",  "trigger_firing",
                                          "trigger_resolved", "drill_finished"};

// Signals measured as a time (thresholds are durations, stored in ms), as a
// percentage, or as a pass/fail count (only `consecutive` applies).
enum class SignalUnit { kUnknown, kTime, kPercent, kCount };

SignalUnit UnitOf(const std::string& signal) {
  if (signal == "latency" || signal == "connect_time" || signal == "disconnected") {
    return SignalUnit::kTime;
  }
  if (signal == "error_rate" || signal == "cpu" || signal == "memory") return SignalUnit::kPercent;
  if (signal == "health" || signal == "unreachable" || signal == "integrity") {
    return SignalUnit::kCount;
  }
  return SignalUnit::kUnknown;
}

std::string JoinList(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string JoinPathKey(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string IndexPath(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

const char* DescribeNode(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  return "a single value";
}

std::string TypeDescription(const SettingSchema& s) {
  using T = SettingSchema::Type;
  switch (s.type) {
    case T::kString:
      return s.allowed.empty() ? "a string" : "one of " + JoinList(s.allowed);
    case T::kPath:
      return "a path";
    case T::kInt:
      return "a non-negative integer";
    case T::kBool:
      return "true or false";
    case T::kDuration:
      return "a duration such as 250ms, 30s, 5m or 1h30m";
    case T::kPercent:
      return "a percentage between 0% and 100% such as 5%";
    case T::kBytes:
      return "a size such as 512MB or 2GiB";
    case T::kStringList:
      return "a list of strings";
    case T::kPathList:
      return "a list of paths";
    case T::kStringMap:
      return "a map of names to strings";
    case T::kObjectList:
      return "a list of maps";
    case T::kComparison:
      return kExpectationHelp;
  }
  return "a value";
}

std::optional<int64_t> ParseInt(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const char* begin = text.data();
  if (*begin == '+') ++begin;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(begin, text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<bool> ParseBool(const std::string& text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true" || lower == "yes" || lower == "on") return true;
  if (lower == "false" || lower == "no" || lower == "off") return false;
  return std::nullopt;
}

bool LooksNumeric(const std::string& text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.') return false;
  }
  return true;
}

// "host:port" or "[v6]:port" with a port in 1..65535.
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
// returns nullopt and sets *why ("what was wrong; expected what").
std::optional<nlohmann::json> ConvertScalar(const SettingSchema& s, const std::string& text,
                                            const std::string& base_dir, std::string* why) {
  using T = SettingSchema::Type;
  const std::string expected = "; expected " + TypeDescription(s);
  switch (s.type) {
    case T::kString:
    case T::kStringList:
    case T::kStringMap:
      if (s.type != T::kStringMap && !s.allowed.empty() && !Contains(s.allowed, text)) {
        *why = "'" + text + "' is not allowed" + DidYouMean(text, s.allowed) + expected;
        return std::nullopt;
      }
      if (s.type != T::kStringMap && !CheckConninfoPort(text, why)) {
        *why += expected;
        return std::nullopt;
      }
      if (s.type != T::kStringMap && !CheckUrlsIn(text, why)) {
        *why += "; expected a URL such as nats://127.0.0.1:4222 or http://127.0.0.1:8222";
        return std::nullopt;
      }
      return nlohmann::json(text);
    case T::kPath:
    case T::kPathList:
      if (text.empty()) {
        *why = "empty path" + expected;
        return std::nullopt;
      }
      return nlohmann::json(AbsolutePath(text, base_dir));
    case T::kInt: {
      auto v = ParseInt(text);
      if (!v) {
        *why = "'" + text + "' is not an integer" + expected;
        return std::nullopt;
      }
      // Every integer setting is a count or a size (jobs, staged_keep,
      // chunk_size) that drivers read as an int.
      if (*v < 0 || *v > INT32_MAX) {
        *why =
            text + " is out of range; expected an integer from 0 to " + std::to_string(INT32_MAX);
        return std::nullopt;
      }
      return nlohmann::json(*v);
    }
    case T::kBool: {
      auto v = ParseBool(text);
      if (!v) {
        *why = "'" + text + "' is not a boolean" + expected;
        return std::nullopt;
      }
      return nlohmann::json(*v);
    }
    case T::kDuration: {
      auto v = ParseDurationMs(text);
      if (!v) {
        *why = "bad duration '" + text + "'" + expected;
        return std::nullopt;
      }
      return nlohmann::json(*v);
    }
    case T::kPercent: {
      auto v = ParsePercent(text);
      if (!v) {
        *why = "bad percentage '" + text + "'" + expected;
        return std::nullopt;
      }
      return nlohmann::json(*v);
    }
    case T::kBytes: {
      auto v = ParseBytes(text);
      if (!v) {
        *why = "bad size '" + text + "'" + expected;
        return std::nullopt;
      }
      return nlohmann::json(*v);
    }
    case T::kComparison: {
      std::string problem;
      auto e = Expectation::Parse(text, &problem);
      if (!e) {
        *why = problem + expected;
        return std::nullopt;
      }
      return nlohmann::json(e->ToString());
    }
    case T::kObjectList:
      break;
  }
  *why = "got a single value" + expected;
  return std::nullopt;
}

// A driver's default_value, converted like a value from the file would be
// ("10s" -> 10000, relative paths made absolute). Kept as written when it
// does not convert (then it is the driver's own business).
nlohmann::json ConvertDefault(const SettingSchema& s, const std::string& base_dir) {
  using T = SettingSchema::Type;
  const nlohmann::json& d = s.default_value;
  std::string why;
  if (d.is_string() && s.type != T::kStringList && s.type != T::kPathList) {
    auto v = ConvertScalar(s, d.get<std::string>(), base_dir, &why);
    return v ? *v : d;
  }
  if ((s.type == T::kStringList || s.type == T::kPathList) && d.is_string()) {
    auto v = ConvertScalar(s, d.get<std::string>(), base_dir, &why);
    return v ? nlohmann::json::array({*v}) : d;
  }
  if (s.type == T::kPathList && d.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : d) {
      out.push_back(item.is_string()
                        ? nlohmann::json(AbsolutePath(item.get<std::string>(), base_dir))
                        : item);
    }
    return out;
  }
  return d;
}

// One key of a YAML map, in file order.
struct Entry {
  std::string key;
  Mark key_mark;
  YAML::Node value;
  bool used = false;
};

// A YAML map read key by key: the first occurrence of each key.
struct MapFields {
  std::string path;  // dotted path of the map itself
  Mark anchor;       // where "missing key" errors point
  std::vector<Entry> entries;

  Entry* Take(std::string_view key) {
    for (auto& e : entries) {
      if (e.key == key) {
        e.used = true;
        return &e;
      }
    }
    return nullptr;
  }
};

class Parser {
 public:
  Parser(std::string file, std::string base_dir, const DriverRegistry& registry)
      : file_(std::move(file)), base_dir_(std::move(base_dir)), registry_(registry) {}

  void Run(const std::string& text, Spec* spec) {
    text_ = text;
    YAML::Node root;
    try {
      if (!CountDocuments(text)) return;
      root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      ReportSyntaxError(text, e.mark, e.msg);
      return;
    } catch (const YAML::Exception& e) {
      ReportSyntaxError(text, e.mark, e.msg);
      return;
    } catch (const std::exception& e) {
      Err(Mark::null_mark(), "", std::string("cannot read the YAML: ") + e.what());
      return;
    }
    try {
      if (!root.IsDefined() || root.IsNull()) {
        Err(Mark(), "", "the spec is empty", "a map with at least environment and components");
        return;
      }
      ParseRoot(root, spec);
    } catch (const std::exception& e) {
      // Should not happen: every yaml-cpp call above is on a valid node. Say
      // so rather than crash.
      Err(Mark::null_mark(), "",
          std::string("internal error while reading the spec: ") + e.what() +
              "; please report this");
    }
  }

  std::vector<SpecError> TakeErrors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const SpecError& a, const SpecError& b) {
      return std::make_pair(a.pos.line, a.pos.column) < std::make_pair(b.pos.line, b.pos.column);
    });
    return std::move(errors_);
  }

 private:
  // ---- errors and positions ----

  SourcePos Pos(const Mark& m) const {
    SourcePos pos;
    pos.file = file_;
    if (m.line >= 0 && m.column >= 0) {
      pos.line = m.line + 1;
      pos.column = m.column + 1;
    }
    return pos;
  }

  void Err(const Mark& m, const std::string& key, const std::string& what,
           const std::string& expected = "") {
    if (errors_.size() >= kMaxErrors) return;
    SpecError e;
    e.pos = Pos(m);
    e.key = key;
    e.message = expected.empty() ? what : what + "; expected " + expected;
    errors_.push_back(std::move(e));
  }

  // The position of `n`, or `fallback` where yaml-cpp has none worth
  // showing (an empty value is marked on the next line).
  static Mark At(const YAML::Node& n, const Mark& fallback) {
    if (!n.IsDefined() || n.IsNull()) return fallback;
    Mark m = n.Mark();
    return m.line < 0 ? fallback : m;
  }
  static Mark At(const Entry& e) { return At(e.value, e.key_mark); }

  void ReportSyntaxError(const std::string& text, const Mark& mark, const std::string& msg) {
    // yaml-cpp reports a tab in indentation as something else ("illegal map
    // value"): look for one at or before the failing line.
    int line = 0;
    size_t start = 0;
    while (start <= text.size() && (mark.line < 0 || line <= mark.line)) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      size_t i = start;
      size_t tab = std::string::npos;
      for (; i < end && (text[i] == ' ' || text[i] == '\t'); ++i) {
        if (text[i] == '\t' && tab == std::string::npos) tab = i;
      }
      if (i < end && tab != std::string::npos) {
        Mark m;
        m.line = line;
        m.column = static_cast<int>(tab - start);
        Err(m, "", "tab character in indentation", "spaces (YAML does not allow tabs there)");
        return;
      }
      start = end + 1;
      ++line;
    }
    Err(mark, "", "YAML syntax error: " + msg, "valid YAML (check indentation, quotes, brackets)");
  }

  // Walks the documents of `text` with yaml-cpp's event parser; reports a
  // second document, and a parser that stops making progress. yaml-cpp 0.7
  // does not consume some stray tokens (a lone ',' for one) and hands out
  // the same empty document again and again, which makes YAML::LoadAll loop
  // forever (jbeder/yaml-cpp#1040, fixed upstream after 0.8). Returns false
  // when parsing must stop. May throw YAML::Exception like YAML::Load.
  bool CountDocuments(const std::string& text) {
    struct DocumentStart : YAML::EventHandler {
      Mark start;
      void OnDocumentStart(const Mark& mark) override { start = mark; }
      void OnDocumentEnd() override {}
      void OnNull(const Mark&, YAML::anchor_t) override {}
      void OnAlias(const Mark&, YAML::anchor_t) override {}
      void OnScalar(const Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
      void OnSequenceStart(const Mark&, const std::string&, YAML::anchor_t,
                           YAML::EmitterStyle::value) override {}
      void OnSequenceEnd() override {}
      void OnMapStart(const Mark&, const std::string&, YAML::anchor_t,
                      YAML::EmitterStyle::value) override {}
      void OnMapEnd() override {}
    };
    std::istringstream in(text);
    YAML::Parser parser(in);
    std::vector<Mark> starts;
    // Documents are counted to the end (stray tokens may follow a valid
    // second document); the cap only bounds the work.
    for (int i = 0; i < 1000; ++i) {
      DocumentStart doc;
      if (!parser.HandleNextDocument(doc)) break;
      if (!starts.empty() && doc.start.pos <= starts.back().pos) {
        std::string token = doc.start.pos >= 0 && static_cast<size_t>(doc.start.pos) < text.size()
                                ? std::string(1, text[doc.start.pos])
                                : std::string();
        Err(doc.start, "", "YAML syntax error: unexpected '" + token + "'",
            "valid YAML (check indentation, quotes, brackets)");
        return false;
      }
      starts.push_back(doc.start);
    }
    if (starts.size() > 1) {
      Err(starts[1], "", "more than one YAML document in the file",
          "exactly one (remove the '---' separator)");
    }
    return true;
  }

  // ---- generic readers ----

  // Reads a map; reports a non-map, keys that are not plain strings and
  // duplicate keys. Returns false (after reporting) when `n` is not a map.
  bool ReadMap(const YAML::Node& n, const Mark& fallback, const std::string& path,
               const std::string& expected, MapFields* out) {
    out->path = path;
    out->anchor = At(n, fallback);
    if (!n.IsMap()) {
      Err(At(n, fallback), path, std::string("got ") + DescribeNode(n), expected);
      return false;
    }
    std::map<std::string, int> seen;  // key -> line of first occurrence
    for (auto it = n.begin(); it != n.end(); ++it) {
      YAML::Node key = it->first;
      Mark key_mark = At(key, out->anchor);
      if (!key.IsScalar()) {
        Err(key_mark, path, std::string("a map key is ") + DescribeNode(key),
            "plain names as keys");
        continue;
      }
      std::string name = key.Scalar();
      auto [pos, inserted] = seen.emplace(name, key_mark.line + 1);
      if (!inserted) {
        Err(key_mark, JoinPathKey(path, name),
            "duplicate key (first defined at line " + std::to_string(pos->second) + ")",
            "each key once");
        continue;
      }
      out->entries.push_back(Entry{name, key_mark, it->second});
    }
    return true;
  }

  void RejectUnknown(const MapFields& f, const std::vector<std::string>& known) {
    for (const auto& e : f.entries) {
      if (e.used || Contains(known, e.key)) continue;
      Err(e.key_mark, JoinPathKey(f.path, e.key),
          "unknown key '" + e.key + "'" + DidYouMean(e.key, known), "one of " + JoinList(known));
    }
  }

  bool ExpectList(const YAML::Node& n, const Mark& fallback, const std::string& path,
                  const std::string& expected) {
    if (n.IsSequence()) return true;
    Err(At(n, fallback), path, std::string("got ") + DescribeNode(n), expected);
    return false;
  }

  // A scalar as a string, after ${VAR} expansion.
  std::optional<std::string> Str(const YAML::Node& n, const Mark& fallback, const std::string& path,
                                 const std::string& expected) {
    if (!n.IsScalar()) {
      Err(At(n, fallback), path, std::string("got ") + DescribeNode(n), expected);
      return std::nullopt;
    }
    if (!CheckQuotedOnOneLine(n, path)) return std::nullopt;
    std::vector<std::string> problems;
    std::string out = spec_internal::ExpandEnv(n.Scalar(), &problems);
    for (const auto& p : problems) Err(At(n, fallback), path, p);
    if (!problems.empty()) return std::nullopt;
    return out;
  }

  // A quoted value that runs over several lines is almost always a quote
  // left open: YAML then folds the lines that follow into the value, up to
  // the next quote, and whole components vanish into a connection string.
  // Only free-text keys (sql, procedure) may span lines; elsewhere the value
  // is refused, pointing at its opening quote.
  bool CheckQuotedOnOneLine(const YAML::Node& n, const std::string& path) {
    const Mark m = n.Mark();
    if (m.pos < 0 || static_cast<size_t>(m.pos) >= text_.size()) return true;
    const char quote = text_[m.pos];
    if (quote != '"' && quote != '\'') return true;
    for (const char* free_text : {".sql", ".procedure"}) {
      const std::string_view suffix(free_text);
      if (path.size() >= suffix.size() &&
          path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return true;
      }
    }
    size_t i = static_cast<size_t>(m.pos) + 1;
    int newlines = 0;
    for (; i < text_.size(); ++i) {
      const char c = text_[i];
      if (c == '\n') ++newlines;
      if (quote == '"' && c == '\\') {
        ++i;  // an escaped character, perhaps a quote
        continue;
      }
      if (c == quote) {
        if (quote == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
          ++i;  // '' is a quote inside a single-quoted value
          continue;
        }
        break;
      }
    }
    if (newlines == 0 || i >= text_.size()) return true;
    int end_line = m.line + 1;
    for (size_t k = static_cast<size_t>(m.pos); k < i; ++k) end_line += text_[k] == '\n';
    Err(m, path,
        std::string("the value opened by this ") + (quote == '"' ? "double" : "single") +
            " quote does not close on its line: it runs to line " + std::to_string(end_line) +
            " and takes in everything between (an unclosed quote?)",
        "a one-line value: close the quote on the same line");
    return false;
  }
  std::optional<std::string> Str(const Entry& e, const std::string& path,
                                 const std::string& expected = "a string") {
    return Str(e.value, e.key_mark, path, expected);
  }

  std::optional<std::string> NonEmptyStr(const Entry& e, const std::string& path,
                                         const std::string& expected) {
    auto s = Str(e, path, expected);
    if (s && s->empty()) {
      Err(At(e), path, "empty value", expected);
      return std::nullopt;
    }
    return s;
  }

  std::optional<int64_t> Int(const Entry& e, const std::string& path, int64_t min, int64_t max,
                             const std::string& expected) {
    auto s = Str(e, path, expected);
    if (!s) return std::nullopt;
    auto v = ParseInt(*s);
    if (!v) {
      Err(At(e), path, "'" + *s + "' is not an integer", expected);
      return std::nullopt;
    }
    if (*v < min || *v > max) {
      Err(At(e), path, std::to_string(*v) + " is out of range", expected);
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> Bool(const Entry& e, const std::string& path) {
    auto s = Str(e, path, "true or false");
    if (!s) return std::nullopt;
    auto v = ParseBool(*s);
    if (!v) Err(At(e), path, "'" + *s + "' is not a boolean", "true or false");
    return v;
  }

  std::optional<int64_t> Duration(const Entry& e, const std::string& path, bool positive) {
    const std::string expected =
        std::string(positive ? "a positive" : "a") + " duration such as 250ms, 30s, 5m or 1h30m";
    auto s = Str(e, path, expected);
    if (!s) return std::nullopt;
    auto v = ParseDurationMs(*s);
    if (!v) {
      Err(At(e), path, LooksNumeric(*s) ? "'" + *s + "' has no unit" : "bad duration '" + *s + "'",
          expected);
      return std::nullopt;
    }
    if (positive && *v <= 0) {
      Err(At(e), path, "duration must be greater than zero", expected);
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::string> OneOf(const Entry& e, const std::string& path,
                                   const std::vector<std::string>& allowed,
                                   const std::string& what) {
    auto s = Str(e, path, "one of " + JoinList(allowed));
    if (!s) return std::nullopt;
    if (!Contains(allowed, *s)) {
      Err(At(e), path, "unknown " + what + " '" + *s + "'" + DidYouMean(*s, allowed),
          "one of " + JoinList(allowed));
      return std::nullopt;
    }
    return s;
  }

  // A list of scalars (a single scalar too when `allow_single`), each with
  // its position. Items that fail are reported and left out.
  std::optional<std::vector<std::pair<std::string, Mark>>> StrList(const YAML::Node& n,
                                                                   const Mark& fallback,
                                                                   const std::string& path,
                                                                   const std::string& expected,
                                                                   bool allow_single) {
    std::vector<std::pair<std::string, Mark>> out;
    if (allow_single && n.IsScalar()) {
      auto s = Str(n, fallback, path, expected);
      if (!s) return std::nullopt;
      out.emplace_back(*s, At(n, fallback));
      return out;
    }
    if (!ExpectList(n, fallback, path, expected)) return std::nullopt;
    size_t i = 0;
    for (auto it = n.begin(); it != n.end(); ++it, ++i) {
      YAML::Node item = *it;
      Mark m = At(item, At(n, fallback));
      auto s = Str(item, m, IndexPath(path, i), "a string");
      if (s) out.emplace_back(*s, m);
    }
    return out;
  }
  std::optional<std::vector<std::pair<std::string, Mark>>> StrList(const Entry& e,
                                                                   const std::string& path,
                                                                   const std::string& expected,
                                                                   bool allow_single) {
    return StrList(e.value, e.key_mark, path, expected, allow_single);
  }

  std::string ResolvePath(const std::string& p) const { return AbsolutePath(p, base_dir_); }

  // ---- the spec ----

  void ParseRoot(const YAML::Node& root, Spec* spec) {
    MapFields top;
    if (!ReadMap(root, Mark(), "", "a map with at least environment and components", &top)) {
      return;
    }
    top.anchor = At(root, Mark());

    if (Entry* e = top.Take("environment")) {
      auto env = NonEmptyStr(*e, "environment", "an environment name such as production");
      if (env) {
        if (!ValidName(*env)) {
          Err(At(*e), "environment", "bad environment name '" + *env + "'",
              "letters, digits, '_', '.' and '-' only");
        }
        spec->environment = *env;
      }
    } else {
      Err(top.anchor, "environment", "missing required key 'environment'",
          "an environment name such as production or staging");
    }

    spec->requires_confirm = spec->environment == "production";
    if (Entry* e = top.Take("protected")) {
      if (auto v = Bool(*e, "protected")) spec->requires_confirm = *v;
    }

    spec->state_dir = ResolvePath(".backstop");
    if (Entry* e = top.Take("state_dir")) {
      if (auto v = NonEmptyStr(*e, "state_dir", "a directory path")) {
        spec->state_dir = ResolvePath(*v);
      }
    }
    spec->store_path = JoinPath(spec->state_dir, "store");
    if (Entry* e = top.Take("store")) ParseStore(*e, spec);

    if (Entry* e = top.Take("data_loss")) ParseDataLoss(*e, spec);

    if (Entry* e = top.Take("components")) {
      ParseComponents(*e, spec);
    } else {
      Err(top.anchor, "components", "missing required key 'components'",
          "a map of component name to {kind, driver, ...}");
    }

    if (Entry* e = top.Take("triggers")) {
      ParseTriggers(*e, spec);
    } else {
      spec->triggers = DefaultTriggers();
      spec->triggers_defaulted = true;
      for (const auto& t : spec->triggers) trigger_names_.insert(t.name);
    }

    if (Entry* e = top.Take("decision_matrix")) {
      ParseDecisionMatrix(*e, spec);
    } else {
      spec->decision_matrix = DefaultDecisionMatrix();
      spec->decision_matrix_defaulted = true;
      for (const auto& r : spec->decision_matrix) scenario_names_.push_back(r.scenario);
    }

    if (Entry* e = top.Take("drills")) ParseDrills(*e, spec);
    if (Entry* e = top.Take("notify")) ParseNotify(*e, spec);

    RejectUnknown(top, kTopKeys);
  }

  void ParseStore(const Entry& e, Spec* spec) {
    const std::string expected = "a directory path, or a map {path: ...}";
    if (e.value.IsMap()) {
      MapFields f;
      ReadMap(e.value, e.key_mark, "store", expected, &f);
      f.anchor = e.key_mark;
      if (Entry* p = f.Take("path")) {
        if (auto v = NonEmptyStr(*p, "store.path", "a directory path")) {
          spec->store_path = ResolvePath(*v);
        }
      } else {
        Err(e.key_mark, "store.path", "missing required key 'path'", "a directory path");
      }
      RejectUnknown(f, {"path"});
      return;
    }
    if (auto v = NonEmptyStr(e, "store", expected)) spec->store_path = ResolvePath(*v);
  }

  void ParseDataLoss(const Entry& e, Spec* spec) {
    MapFields f;
    if (!ReadMap(e.value, e.key_mark, "data_loss", "a map {max_rows: N, max_messages: N}", &f)) {
      return;
    }
    const std::string expected = "a non-negative integer (0: any loss needs --accept-data-loss)";
    if (Entry* r = f.Take("max_rows")) {
      if (auto v = Int(*r, "data_loss.max_rows", 0, INT64_MAX, expected)) {
        spec->max_data_loss_rows = static_cast<uint64_t>(*v);
      }
    }
    if (Entry* m = f.Take("max_messages")) {
      if (auto v = Int(*m, "data_loss.max_messages", 0, INT64_MAX, expected)) {
        spec->max_data_loss_messages = static_cast<uint64_t>(*v);
      }
    }
    RejectUnknown(f, {"max_rows", "max_messages"});
  }

  // ---- components ----

  std::string DriversFor(const std::optional<std::string>& kind) const {
    std::vector<std::string> serving;
    std::vector<std::string> all = registry_.Names();
    if (kind) {
      for (const auto& name : all) {
        const DriverInfo* info = registry_.Find(name);
        if (info != nullptr && Contains(info->kinds, *kind)) serving.push_back(name);
      }
      if (!serving.empty()) return "a driver for kind " + *kind + ": " + JoinList(serving);
      return "a driver for kind " + *kind +
             ", but none is registered (known drivers: " + (all.empty() ? "none" : JoinList(all)) +
             ")";
    }
    return "one of the known drivers: " + (all.empty() ? "none" : JoinList(all));
  }

  void ParseComponents(const Entry& e, Spec* spec) {
    MapFields comps;
    if (!ReadMap(e.value, e.key_mark, "components",
                 "a map of component name to {kind, driver, ...}", &comps)) {
      return;
    }
    if (comps.entries.empty()) {
      Err(At(e), "components", "no components",
          "at least one, such as 'webui: {kind: service, driver: process, ...}'");
      return;
    }
    for (auto& c : comps.entries) {
      const std::string path = "components." + c.key;
      if (!ValidName(c.key)) {
        Err(c.key_mark, path, "bad component name '" + c.key + "'",
            "letters, digits, '_', '.' and '-' only");
      }
      ComponentSpec comp;
      comp.name = c.key;
      comp.pos = Pos(c.key_mark);
      ParseComponent(c, path, &comp);
      spec->component_order.push_back(c.key);
      spec->components[c.key] = std::move(comp);
    }
    CheckDependencies(*spec);
  }

  void ParseComponent(const Entry& c, const std::string& path, ComponentSpec* comp) {
    MapFields f;
    if (!ReadMap(c.value, c.key_mark, path, "a map with kind, driver and the driver's settings",
                 &f)) {
      return;
    }
    f.anchor = c.key_mark;

    std::optional<std::string> kind;
    if (Entry* k = f.Take("kind")) {
      kind = OneOf(*k, path + ".kind", kKinds, "kind");
      if (kind) comp->kind = *kind;
    } else {
      Err(c.key_mark, path + ".kind", "missing required key 'kind'", "one of " + JoinList(kKinds));
    }

    const DriverInfo* info = nullptr;
    if (Entry* d = f.Take("driver")) {
      auto name = NonEmptyStr(*d, path + ".driver", DriversFor(kind));
      if (name) {
        comp->driver = *name;
        info = registry_.Find(*name);
        if (info == nullptr) {
          Err(At(*d), path + ".driver",
              "unknown driver '" + *name + "'" + DidYouMean(*name, registry_.Names()),
              DriversFor(kind));
        } else if (kind && !Contains(info->kinds, *kind)) {
          Err(At(*d), path + ".driver",
              "driver '" + *name + "' does not serve kind '" + *kind + "' (it serves " +
                  JoinList(info->kinds) + ")",
              DriversFor(kind));
        }
      }
    } else {
      Err(c.key_mark, path + ".driver", "missing required key 'driver'", DriversFor(kind));
    }

    if (Entry* d = f.Take("depends_on")) {
      auto deps = StrList(*d, path + ".depends_on", "a list of component names", true);
      if (deps) {
        for (auto& [name, mark] : *deps) {
          comp->depends_on.push_back(name);
          dep_marks_[comp->name].push_back(mark);
        }
      }
    }

    if (Entry* h = f.Take("health")) ParseProbe(*h, path + ".health", &comp->health);

    if (info != nullptr) {
      ValidateSettings(info->settings, &f, path, &comp->settings);
      std::vector<std::string> known = kComponentKeys;
      for (const auto& s : info->settings) known.push_back(s.key);
      RejectUnknown(f, known);
    }
    // Without a known driver the remaining keys cannot be checked; the
    // driver error above says what to fix first.
  }

  void ValidateSettings(const std::vector<SettingSchema>& schema, MapFields* f,
                        const std::string& path, nlohmann::json* out) {
    for (const auto& s : schema) {
      const std::string key_path = JoinPathKey(path, s.key);
      Entry* e = f->Take(s.key);
      if (e == nullptr) {
        if (s.required) {
          Err(f->anchor, key_path, "missing required setting '" + s.key + "'",
              TypeDescription(s) + (s.help.empty() ? "" : " (" + s.help + ")"));
        } else if (!s.default_value.is_null()) {
          (*out)[s.key] = ConvertDefault(s, base_dir_);
        }
        continue;
      }
      if (auto v = ConvertSetting(s, e->value, e->key_mark, key_path)) (*out)[s.key] = *v;
    }
  }

  std::optional<nlohmann::json> ConvertSetting(const SettingSchema& s, const YAML::Node& n,
                                               const Mark& fallback, const std::string& path) {
    using T = SettingSchema::Type;
    const std::string expected = TypeDescription(s);
    switch (s.type) {
      case T::kStringList:
      case T::kPathList: {
        auto items = StrList(n, fallback, path, expected, true);
        if (!items) return std::nullopt;
        if (items->empty() && s.required) {
          // `command: []` would pass here and fail only when the driver acts
          // (after a deploy switched `current`): a required list needs an item.
          Err(At(n, fallback), path, "empty list",
              expected + (s.help.empty() ? "" : " (" + s.help + ")") + " with at least one item");
          return std::nullopt;
        }
        nlohmann::json arr = nlohmann::json::array();
        for (size_t i = 0; i < items->size(); ++i) {
          std::string why;
          auto v = ConvertScalar(s, (*items)[i].first, base_dir_, &why);
          if (!v) {
            Err((*items)[i].second, n.IsSequence() ? IndexPath(path, i) : path, why);
            continue;
          }
          arr.push_back(*v);
        }
        return arr;
      }
      case T::kStringMap: {
        MapFields m;
        if (!ReadMap(n, fallback, path, expected, &m)) return std::nullopt;
        nlohmann::json obj = nlohmann::json::object();
        for (auto& e : m.entries) {
          auto v = Str(e, JoinPathKey(path, e.key), "a string");
          if (v) obj[e.key] = *v;
        }
        return obj;
      }
      case T::kObjectList: {
        std::vector<std::string> keys;
        for (const auto& field : s.fields) keys.push_back(field.key);
        const std::string item_expected = "a map with " + JoinList(keys);
        if (!ExpectList(n, fallback, path, "a list of maps, each with " + JoinList(keys))) {
          return std::nullopt;
        }
        nlohmann::json arr = nlohmann::json::array();
        size_t i = 0;
        for (auto it = n.begin(); it != n.end(); ++it, ++i) {
          YAML::Node item = *it;
          MapFields mf;
          const std::string item_path = IndexPath(path, i);
          if (!ReadMap(item, At(n, fallback), item_path, item_expected, &mf)) continue;
          nlohmann::json obj = nlohmann::json::object();
          ValidateSettings(s.fields, &mf, item_path, &obj);
          RejectUnknown(mf, keys);
          arr.push_back(std::move(obj));
        }
        return arr;
      }
      default:
        break;
    }
    auto text = Str(n, fallback, path, expected);
    if (!text) return std::nullopt;
    std::string why;
    auto v = ConvertScalar(s, *text, base_dir_, &why);
    if (!v) Err(At(n, fallback), path, why);
    return v;
  }

  void ParseProbe(const Entry& h, const std::string& path, ProbeSpec* probe) {
    const std::string one_of = "exactly one of http, tcp, exec or grpc";
    MapFields f;
    probe->pos = Pos(h.key_mark);
    if (!ReadMap(h.value, h.key_mark, path, "a map with " + one_of, &f)) return;
    f.anchor = h.key_mark;

    std::vector<Entry*> types;
    for (const auto& t : kProbeTypes) {
      if (Entry* e = f.Take(t)) types.push_back(e);
    }
    if (types.empty()) {
      Err(h.key_mark, path, "no probe type", one_of);
    } else if (types.size() > 1) {
      Err(types[1]->key_mark, JoinPathKey(path, types[1]->key),
          "more than one probe type (" + types[0]->key + " and " + types[1]->key + ")", one_of);
    }
    if (!types.empty()) {
      Entry& t = *types[0];
      const std::string tpath = JoinPathKey(path, t.key);
      if (t.key == "http") {
        const std::string expected = "an http:// or https:// URL";
        if (auto url = Str(t, tpath, expected)) {
          std::string why;
          if (ValidHttpUrl(*url, &why)) {
            probe->type = ProbeSpec::Type::kHttp;
            probe->target = *url;
          } else {
            Err(At(t), tpath, "'" + *url + "' is not a usable URL: " + why, expected);
          }
        }
      } else if (t.key == "tcp" || t.key == "grpc") {
        const std::string expected = "host:port such as 127.0.0.1:50051";
        if (auto target = Str(t, tpath, expected)) {
          if (ValidHostPort(*target)) {
            probe->type = t.key == "tcp" ? ProbeSpec::Type::kTcp : ProbeSpec::Type::kGrpc;
            probe->target = *target;
          } else {
            Err(At(t), tpath, "'" + *target + "' is not host:port", expected);
          }
        }
      } else {  // exec
        const std::string expected = "a command as a list, such as [pg_isready, -q]";
        if (auto argv = StrList(t, tpath, expected, false)) {
          if (argv->empty()) {
            Err(At(t), tpath, "empty command", expected);
          } else {
            probe->type = ProbeSpec::Type::kExec;
            for (auto& [arg, mark] : *argv) probe->command.push_back(arg);
          }
        }
      }
    }
    const std::string type_key = types.empty() ? "" : types[0]->key;

    if (Entry* e = f.Take("service")) {
      if (type_key != "grpc" && !type_key.empty()) {
        Err(e->key_mark, path + ".service", "'service' applies only to grpc probes",
            "no service for a " + type_key + " probe");
      } else if (auto v = Str(*e, path + ".service", "a gRPC service name")) {
        probe->grpc_service = *v;
      }
    }
    if (Entry* e = f.Take("expect_status")) {
      if (type_key != "http" && !type_key.empty()) {
        Err(e->key_mark, path + ".expect_status", "'expect_status' applies only to http probes",
            "no expect_status for a " + type_key + " probe");
      } else if (auto v = Int(*e, path + ".expect_status", 100, 599,
                              "an HTTP status code between 100 and 599")) {
        probe->expect_status = static_cast<int>(*v);
      }
    }
    bool timeout_set = false;
    Mark timeout_mark;
    if (Entry* e = f.Take("interval")) {
      if (auto v = Duration(*e, path + ".interval", true)) probe->interval_ms = *v;
    }
    if (Entry* e = f.Take("timeout")) {
      if (auto v = Duration(*e, path + ".timeout", true)) {
        probe->timeout_ms = *v;
        timeout_set = true;
        timeout_mark = At(*e);
      }
    }
    if (Entry* e = f.Take("start_period")) {
      if (auto v = Duration(*e, path + ".start_period", true)) probe->start_period_ms = *v;
    }
    if (Entry* e = f.Take("retries")) {
      if (auto v = Int(*e, path + ".retries", 1, 1'000'000, "an integer of at least 1")) {
        probe->retries = static_cast<int>(*v);
      }
    }
    if (probe->timeout_ms > probe->interval_ms) {
      if (timeout_set) {
        Err(timeout_mark, path + ".timeout",
            "timeout " + FormatDurationSpec(probe->timeout_ms) + " exceeds interval " +
                FormatDurationSpec(probe->interval_ms),
            "a timeout no longer than the interval");
      } else {
        // Only the interval was shortened (as the demo does): the default
        // timeout follows it.
        probe->timeout_ms = probe->interval_ms;
      }
    }
    RejectUnknown(f, kProbeKeys);
  }

  void CheckDependencies(const Spec& spec) {
    std::vector<std::string> names = spec.component_order;
    for (const auto& name : spec.component_order) {
      const ComponentSpec& c = spec.components.at(name);
      const auto& marks = dep_marks_[name];
      const std::string path = "components." + name + ".depends_on";
      std::set<std::string> seen;
      for (size_t i = 0; i < c.depends_on.size() && i < marks.size(); ++i) {
        const std::string& dep = c.depends_on[i];
        if (dep == name) {
          Err(marks[i], path, "component '" + name + "' depends on itself",
              "names of other components");
        } else if (spec.components.count(dep) == 0) {
          Err(marks[i], path, "unknown component '" + dep + "'" + DidYouMean(dep, names),
              "one of " + JoinList(names));
        } else if (!seen.insert(dep).second) {
          Err(marks[i], path, "'" + dep + "' is listed twice", "each dependency once");
        }
      }
    }

    // Cycles: an iterative depth-first search (the input decides the depth)
    // in file order; each cycle is reported once, starting from the
    // component written first, at its depends_on entry.
    std::map<std::string, size_t> order;
    for (size_t i = 0; i < names.size(); ++i) order[names[i]] = i;
    auto edges = [&](const std::string& name) {
      std::vector<std::string> out;
      for (const auto& dep : spec.components.at(name).depends_on) {
        if (dep != name && spec.components.count(dep) != 0) out.push_back(dep);
      }
      return out;
    };
    enum Color { kWhite, kGray, kBlack };
    std::map<std::string, Color> color;
    std::set<std::string> reported;
    for (const auto& start : names) {
      if (color[start] != kWhite) continue;
      std::vector<std::pair<std::string, std::vector<std::string>>> stack;
      std::vector<size_t> next;
      stack.emplace_back(start, edges(start));
      next.push_back(0);
      color[start] = kGray;
      while (!stack.empty()) {
        auto& [node, outs] = stack.back();
        if (next.back() >= outs.size()) {
          color[node] = kBlack;
          stack.pop_back();
          next.pop_back();
          continue;
        }
        std::string target = outs[next.back()++];
        if (color[target] == kWhite) {
          color[target] = kGray;
          auto target_edges = edges(target);
          stack.emplace_back(target, std::move(target_edges));
          next.push_back(0);
        } else if (color[target] == kGray) {
          std::vector<std::string> cycle;
          size_t from = 0;
          while (from < stack.size() && stack[from].first != target) ++from;
          for (size_t i = from; i < stack.size(); ++i) cycle.push_back(stack[i].first);
          auto first = std::min_element(
              cycle.begin(), cycle.end(),
              [&](const std::string& a, const std::string& b) { return order[a] < order[b]; });
          std::rotate(cycle.begin(), first, cycle.end());
          std::string text = JoinList(cycle, " -> ") + " -> " + cycle.front();
          if (!reported.insert(text).second) continue;
          const std::string& head = cycle.front();
          const std::string& succ = cycle.size() > 1 ? cycle[1] : cycle.front();
          Mark m = Mark();
          const auto& deps = spec.components.at(head).depends_on;
          const auto& marks = dep_marks_[head];
          for (size_t i = 0; i < deps.size() && i < marks.size(); ++i) {
            if (deps[i] == succ) {
              m = marks[i];
              break;
            }
          }
          Err(m, "components." + head + ".depends_on", "dependency cycle " + text,
              "depends_on without cycles (remove one of these dependencies)");
        }
      }
    }
  }

  // ---- triggers ----

  std::optional<double> Threshold(const Entry& e, const std::string& path,
                                  const std::string& signal) {
    SignalUnit unit = UnitOf(signal);
    const std::string as_time = "a duration such as 5s or 500ms";
    const std::string as_percent = "a percentage between 0% and 100% such as 5%";
    auto text = Str(e, path, unit == SignalUnit::kPercent ? as_percent : as_time);
    if (!text) return std::nullopt;
    bool percent_form = !text->empty() && text->back() == '%';
    switch (unit) {
      case SignalUnit::kTime: {
        if (percent_form) {
          Err(At(e), path,
              "'" + *text + "' is a percentage, but signal '" + signal + "' is measured in time",
              as_time);
          return std::nullopt;
        }
        auto ms = ParseDurationMs(*text);
        if (!ms) {
          Err(At(e), path,
              LooksNumeric(*text) ? "'" + *text + "' has no unit" : "bad duration '" + *text + "'",
              as_time);
          return std::nullopt;
        }
        return static_cast<double>(*ms);
      }
      case SignalUnit::kPercent: {
        if (!percent_form && ParseDurationMs(*text)) {
          Err(At(e), path,
              "'" + *text + "' is a duration, but signal '" + signal + "' is a percentage",
              as_percent);
          return std::nullopt;
        }
        auto p = ParsePercent(*text);
        if (!p) {
          Err(At(e), path,
              percent_form ? "bad percentage '" + *text + "'"
                           : "'" + *text + "' is not a percentage",
              as_percent);
          return std::nullopt;
        }
        return *p;
      }
      case SignalUnit::kCount:
        Err(e.key_mark, path, "signal '" + signal + "' has no threshold",
            "consecutive: N (failures in a row)");
        return std::nullopt;
      case SignalUnit::kUnknown:
        break;
    }
    // No usable signal (already reported): accept either form silently.
    if (auto ms = ParseDurationMs(*text)) return static_cast<double>(*ms);
    if (auto p = ParsePercent(*text)) return *p;
    return std::nullopt;
  }

  void ParseTriggers(const Entry& e, Spec* spec) {
    if (!ExpectList(e.value, e.key_mark, "triggers",
                    "a list of triggers such as '- {name: health_check_failures, signal: health, "
                    "consecutive: 3, action: component_rollback}'")) {
      return;
    }
    // Every name written is remembered (trigger_names_), even that of a
    // trigger with other errors, so the decision matrix adds no cascade.
    size_t i = 0;
    std::map<std::string, int> first_line;
    for (auto it = e.value.begin(); it != e.value.end(); ++it, ++i) {
      YAML::Node item = *it;
      TriggerSpec t;
      if (ParseTrigger(item, At(e.value, e.key_mark), IndexPath("triggers", i), *spec, &first_line,
                       &t)) {
        spec->triggers.push_back(std::move(t));
      }
    }
  }

  bool ParseTrigger(const YAML::Node& item, const Mark& fallback, const std::string& path,
                    const Spec& spec, std::map<std::string, int>* first_line, TriggerSpec* t) {
    MapFields f;
    if (!ReadMap(item, fallback, path, "a map with name, signal, a condition and action", &f)) {
      return false;
    }
    size_t errors_before = errors_.size();
    t->pos = Pos(f.anchor);

    if (Entry* e = f.Take("name")) {
      if (auto name = NonEmptyStr(*e, path + ".name", "a trigger name")) {
        t->name = *name;
        trigger_names_.insert(*name);
        auto [it, inserted] = first_line->emplace(*name, At(*e).line + 1);
        if (!inserted) {
          Err(At(*e), path + ".name",
              "duplicate trigger name '" + *name + "' (first at line " +
                  std::to_string(it->second) + ")",
              "unique trigger names");
        }
      }
    } else {
      Err(f.anchor, path + ".name", "missing required key 'name'", "a trigger name");
    }
    if (Entry* e = f.Take("component")) {
      if (auto c = Str(*e, path + ".component", "a component name")) {
        if (spec.components.count(*c) == 0) {
          Err(At(*e), path + ".component",
              "unknown component '" + *c + "'" + DidYouMean(*c, spec.component_order),
              "one of " + JoinList(spec.component_order));
        } else {
          t->component = *c;
        }
      }
    }
    std::string signal;
    if (Entry* e = f.Take("signal")) {
      if (auto s = OneOf(*e, path + ".signal", kSignals, "signal")) signal = t->signal = *s;
    } else {
      Err(f.anchor, path + ".signal", "missing required key 'signal'",
          "one of " + JoinList(kSignals));
    }
    if (Entry* e = f.Take("metric")) {
      if (auto m = NonEmptyStr(*e, path + ".metric", "a Prometheus metric name")) {
        size_t slash = m->find('/');
        if (signal == "error_rate" &&
            (slash == std::string::npos || slash == 0 || slash + 1 == m->size() ||
             m->find('/', slash + 1) != std::string::npos)) {
          Err(At(*e), path + ".metric", "'" + *m + "' is not a ratio of two counters",
              "errors/total counters such as errors_total/requests_total");
        } else {
          t->metric = *m;
        }
      }
    }
    if (Entry* e = f.Take("consecutive")) {
      if (auto v = Int(*e, path + ".consecutive", 1, 1'000'000, "an integer of at least 1")) {
        t->consecutive = static_cast<int>(*v);
      }
    }
    Entry* above = f.Take("above");
    Entry* below = f.Take("below");
    if (above != nullptr) t->above = Threshold(*above, path + ".above", signal);
    if (below != nullptr) t->below = Threshold(*below, path + ".below", signal);
    if (Entry* e = f.Take("for")) {
      if (auto v = Duration(*e, path + ".for", false)) t->for_ms = *v;
    }
    if (Entry* e = f.Take("window")) {
      if (auto v = Duration(*e, path + ".window", false)) t->window_ms = *v;
    }
    if (Entry* e = f.Take("keep_firing_for")) {
      if (auto v = Duration(*e, path + ".keep_firing_for", false)) t->keep_firing_for_ms = *v;
    }
    if (Entry* e = f.Take("missing_data")) {
      if (auto v = OneOf(*e, path + ".missing_data", kMissingData, "missing_data policy")) {
        t->missing_data = *v;
      }
    }
    if (Entry* e = f.Take("action")) {
      if (auto v = OneOf(*e, path + ".action", kActions, "action")) t->action = *v;
    } else {
      Err(f.anchor, path + ".action", "missing required key 'action'",
          "one of " + JoinList(kActions));
    }
    if (above == nullptr && below == nullptr && !f.Take("consecutive") && !signal.empty()) {
      Err(f.anchor, path, "trigger has no condition",
          UnitOf(signal) == SignalUnit::kCount
              ? "consecutive: N for signal '" + signal + "'"
              : "above, below or consecutive (for example above: " +
                    std::string(UnitOf(signal) == SignalUnit::kTime ? "5s" : "5%") + ")");
    }
    RejectUnknown(f, kTriggerKeys);
    return errors_.size() == errors_before;
  }

  // ---- decision matrix ----

  void ParseDecisionMatrix(const Entry& e, Spec* spec) {
    if (!ExpectList(e.value, e.key_mark, "decision_matrix",
                    "a list of rules {scenario, triggers, scope, procedure, recovery_time}")) {
      return;
    }
    std::map<std::string, int> first_line;
    std::vector<std::string> trigger_names(trigger_names_.begin(), trigger_names_.end());
    size_t i = 0;
    for (auto it = e.value.begin(); it != e.value.end(); ++it, ++i) {
      YAML::Node item = *it;
      const std::string path = IndexPath("decision_matrix", i);
      MapFields f;
      if (!ReadMap(item, At(e), path, "a map with scenario, triggers, scope", &f)) continue;
      DecisionRule r;
      r.pos = Pos(f.anchor);
      if (Entry* s = f.Take("scenario")) {
        if (auto v = NonEmptyStr(*s, path + ".scenario", "a scenario name")) {
          r.scenario = *v;
          scenario_names_.push_back(*v);
          auto [first, inserted] = first_line.emplace(*v, At(*s).line + 1);
          if (!inserted) {
            Err(At(*s), path + ".scenario",
                "duplicate scenario '" + *v + "' (first at line " + std::to_string(first->second) +
                    ")",
                "unique scenario names");
          }
        }
      } else {
        Err(f.anchor, path + ".scenario", "missing required key 'scenario'", "a scenario name");
      }
      if (Entry* t = f.Take("triggers")) {
        auto names = StrList(*t, path + ".triggers", "a list of trigger names", true);
        if (names) {
          for (size_t k = 0; k < names->size(); ++k) {
            const auto& [name, mark] = (*names)[k];
            if (trigger_names_.count(name) == 0) {
              Err(mark,
                  t->value.IsSequence() ? IndexPath(path + ".triggers", k) : path + ".triggers",
                  "unknown trigger '" + name + "'" + DidYouMean(name, trigger_names),
                  "one of " + JoinList(trigger_names));
            } else {
              r.triggers.push_back(name);
            }
          }
        }
      }
      if (Entry* s = f.Take("scope")) {
        if (auto v = OneOf(*s, path + ".scope", kScopes, "scope")) r.scope = *v;
      } else {
        Err(f.anchor, path + ".scope", "missing required key 'scope'",
            "one of " + JoinList(kScopes));
      }
      if (Entry* p = f.Take("procedure")) {
        if (auto v = Str(*p, path + ".procedure", "a description of the procedure")) {
          r.procedure = *v;
        }
      }
      if (Entry* rt = f.Take("recovery_time")) {
        const std::string expected = "a duration or a range such as 5m or 2-5m";
        if (auto v = Str(*rt, path + ".recovery_time", expected)) {
          auto range = spec_internal::ParseRecoveryTime(*v);
          if (range) {
            r.recovery_min_ms = range->first;
            r.recovery_max_ms = range->second;
          } else {
            Err(At(*rt), path + ".recovery_time", "bad recovery time '" + *v + "'", expected);
          }
        }
      }
      RejectUnknown(f, kRuleKeys);
      spec->decision_matrix.push_back(std::move(r));
    }
  }

  // ---- drills ----

  void ParseDrills(const Entry& e, Spec* spec) {
    if (!ExpectList(e.value, e.key_mark, "drills",
                    "a list of drills {name, scenario, component, schedule}")) {
      return;
    }
    std::vector<std::string> scenarios = scenario_names_;
    scenarios.insert(scenarios.end(), kBuiltinFaults.begin(), kBuiltinFaults.end());
    std::map<std::string, int> first_line;
    size_t i = 0;
    for (auto it = e.value.begin(); it != e.value.end(); ++it, ++i) {
      YAML::Node item = *it;
      const std::string path = IndexPath("drills", i);
      MapFields f;
      if (!ReadMap(item, At(e), path, "a map with name, scenario and schedule", &f)) continue;
      DrillSpec d;
      d.pos = Pos(f.anchor);
      if (Entry* n = f.Take("name")) {
        if (auto v = NonEmptyStr(*n, path + ".name", "a drill name")) {
          d.name = *v;
          auto [first, inserted] = first_line.emplace(*v, At(*n).line + 1);
          if (!inserted) {
            Err(At(*n), path + ".name",
                "duplicate drill name '" + *v + "' (first at line " +
                    std::to_string(first->second) + ")",
                "unique drill names");
          }
        }
      } else {
        Err(f.anchor, path + ".name", "missing required key 'name'", "a drill name");
      }
      if (Entry* s = f.Take("scenario")) {
        if (auto v = NonEmptyStr(*s, path + ".scenario", "a scenario")) {
          if (Contains(scenarios, *v)) {
            d.scenario = *v;
          } else {
            Err(At(*s), path + ".scenario",
                "unknown scenario '" + *v + "'" + DidYouMean(*v, scenarios),
                "a decision_matrix scenario or a built-in fault: " + JoinList(scenarios));
          }
        }
      } else {
        Err(f.anchor, path + ".scenario", "missing required key 'scenario'",
            "a decision_matrix scenario or a built-in fault: " + JoinList(kBuiltinFaults));
      }
      if (Entry* c = f.Take("component")) {
        if (auto v = Str(*c, path + ".component", "a component name")) {
          if (spec->components.count(*v) == 0) {
            Err(At(*c), path + ".component",
                "unknown component '" + *v + "'" + DidYouMean(*v, spec->component_order),
                "one of " + JoinList(spec->component_order));
          } else {
            d.component = *v;
          }
        }
      }
      if (Entry* s = f.Take("schedule")) {
        const std::string expected =
            "weekly, monthly, quarterly, annually or a cron expression "
            "'minute hour day-of-month month day-of-week' such as '0 3 * * 1'";
        if (auto v = NonEmptyStr(*s, path + ".schedule", expected)) {
          std::string why;
          if (Contains(kSchedules, *v)) {
            d.schedule = *v;
          } else if (v->find(' ') == std::string::npos) {
            Err(At(*s), path + ".schedule",
                "unknown schedule '" + *v + "'" + DidYouMean(*v, kSchedules), expected);
          } else if (!spec_internal::ValidateCron(*v, &why)) {
            Err(At(*s), path + ".schedule", "bad cron expression '" + *v + "': " + why, expected);
          } else {
            d.schedule = *v;
          }
        }
      }
      if (Entry* en = f.Take("environment")) {
        if (auto v = NonEmptyStr(*en, path + ".environment", "an environment name")) {
          d.environment = *v;
        }
      }
      RejectUnknown(f, kDrillKeys);
      spec->drills.push_back(std::move(d));
    }
  }

  // ---- notify ----

  void ParseNotify(const Entry& e, Spec* spec) {
    if (!ExpectList(e.value, e.key_mark, "notify",
                    "a list of notifiers {name, type: webhook|command|log, ...}")) {
      return;
    }
    std::map<std::string, int> first_line;
    size_t i = 0;
    for (auto it = e.value.begin(); it != e.value.end(); ++it, ++i) {
      YAML::Node item = *it;
      const std::string path = IndexPath("notify", i);
      MapFields f;
      if (!ReadMap(item, At(e), path, "a map with name and type", &f)) continue;
      NotifySpec n;
      n.pos = Pos(f.anchor);
      if (Entry* x = f.Take("name")) {
        if (auto v = NonEmptyStr(*x, path + ".name", "a notifier name")) {
          n.name = *v;
          auto [first, inserted] = first_line.emplace(*v, At(*x).line + 1);
          if (!inserted) {
            Err(At(*x), path + ".name",
                "duplicate notifier name '" + *v + "' (first at line " +
                    std::to_string(first->second) + ")",
                "unique notifier names");
          }
        }
      } else {
        Err(f.anchor, path + ".name", "missing required key 'name'", "a notifier name");
      }
      if (Entry* x = f.Take("type")) {
        if (auto v = OneOf(*x, path + ".type", kNotifyTypes, "notifier type")) n.type = *v;
      } else {
        Err(f.anchor, path + ".type", "missing required key 'type'",
            "one of " + JoinList(kNotifyTypes));
      }
      Entry* url = f.Take("url");
      Entry* command = f.Take("command");
      if (url != nullptr) {
        const std::string expected = "an http:// or https:// URL";
        if (auto v = Str(*url, path + ".url", expected)) {
          std::string why;
          if (!ValidHttpUrl(*v, &why)) {
            Err(At(*url), path + ".url", "'" + *v + "' is not a usable URL: " + why, expected);
          } else if (n.type != "webhook" && !n.type.empty()) {
            Err(url->key_mark, path + ".url", "'url' applies only to webhook notifiers",
                "no url for type " + n.type);
          } else {
            n.url = *v;
          }
        }
      } else if (n.type == "webhook") {
        Err(f.anchor, path + ".url", "missing required key 'url' for a webhook",
            "an http:// or https:// URL");
      }
      if (command != nullptr) {
        const std::string expected = "a command as a list, such as [/usr/local/bin/page, oncall]";
        if (auto argv = StrList(*command, path + ".command", expected, false)) {
          if (argv->empty()) {
            Err(At(*command), path + ".command", "empty command", expected);
          } else if (n.type != "command" && !n.type.empty()) {
            Err(command->key_mark, path + ".command", "'command' applies only to command notifiers",
                "no command for type " + n.type);
          } else {
            for (auto& [arg, mark] : *argv) n.command.push_back(arg);
          }
        }
      } else if (n.type == "command") {
        Err(f.anchor, path + ".command", "missing required key 'command' for a command notifier",
            "a command as a list");
      }
      if (Entry* on = f.Take("on")) {
        auto events = StrList(*on, path + ".on", "a list of events: " + JoinList(kEvents), true);
        if (events) {
          for (size_t k = 0; k < events->size(); ++k) {
            const auto& [ev, mark] = (*events)[k];
            if (!Contains(kEvents, ev)) {
              Err(mark, on->value.IsSequence() ? IndexPath(path + ".on", k) : path + ".on",
                  "unknown event '" + ev + "'" + DidYouMean(ev, kEvents),
                  "one of " + JoinList(kEvents));
            } else {
              n.on.push_back(ev);
            }
          }
        }
      } else {
        n.on = kEvents;  // no `on`: every event
      }
      RejectUnknown(f, kNotifyKeys);
      spec->notify.push_back(std::move(n));
    }
  }

  // A hostile file could otherwise make the error list as big as the input
  // times the number of keys; the first thousand are plenty.
  static constexpr size_t kMaxErrors = 1000;

  std::string file_;
  std::string base_dir_;
  std::string_view text_;  // the spec's text, for checks yaml-cpp cannot make
  const DriverRegistry& registry_;
  std::vector<SpecError> errors_;
  std::map<std::string, std::vector<Mark>> dep_marks_;  // parallel to depends_on
  std::set<std::string> trigger_names_;                 // every trigger name written
  std::vector<std::string> scenario_names_;             // every scenario written
};

}  // namespace

std::vector<SpecError> CheckSpecText(const std::string& text, const std::string& filename,
                                     const DriverRegistry& registry) {
  Spec spec;
  std::string abs = AbsolutePath(filename, CurrentDir());
  Parser parser(filename, Dirname(abs), registry);
  parser.Run(text, &spec);
  return parser.TakeErrors();
}

Result<Spec> ParseSpec(const std::string& text, const std::string& filename,
                       const DriverRegistry& registry) {
  Spec spec;
  spec.path = AbsolutePath(filename, CurrentDir());
  spec.base_dir = Dirname(spec.path);
  Parser parser(filename, spec.base_dir, registry);
  parser.Run(text, &spec);
  std::vector<SpecError> errors = parser.TakeErrors();
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) {
      if (!msg.empty()) msg += "\n";
      msg += e.ToString();
    }
    return Status::InvalidArgument(msg);
  }
  return spec;
}

}  // namespace backstop
