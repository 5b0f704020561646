// The spec parser's machinery (spec_parser.h): reading the YAML, collecting
// positioned errors, and the typed readers every section uses.
#include "spec/spec_parser.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <sstream>
#include <utility>

#include "base/env.h"
#include "base/units.h"

namespace backstop::spec_internal {

namespace {

const char* DescribeNode(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  return "a single value";
}

}  // namespace

void Parser::Run(const std::string& text, Spec* spec) {
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
        std::string("internal error while reading the spec: ") + e.what() + "; please report this");
  }
}

std::vector<SpecError> Parser::TakeErrors() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const SpecError& a, const SpecError& b) {
    return std::make_pair(a.pos.line, a.pos.column) < std::make_pair(b.pos.line, b.pos.column);
  });
  return std::move(errors_);
}

SourcePos Parser::Pos(const Mark& m) const {
  SourcePos pos;
  pos.file = file_;
  if (m.line >= 0 && m.column >= 0) {
    pos.line = m.line + 1;
    pos.column = m.column + 1;
  }
  return pos;
}

void Parser::Err(const Mark& m, const std::string& key, const std::string& what,
                 const std::string& expected) {
  if (errors_.size() >= kMaxErrors) return;
  SpecError e;
  e.pos = Pos(m);
  e.key = key;
  e.message = expected.empty() ? what : what + "; expected " + expected;
  errors_.push_back(std::move(e));
}

void Parser::ReportSyntaxError(const std::string& text, const Mark& mark, const std::string& msg) {
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

bool Parser::CountDocuments(const std::string& text) {
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

bool Parser::ReadMap(const YAML::Node& n, const Mark& fallback, const std::string& path,
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
      Err(key_mark, path, std::string("a map key is ") + DescribeNode(key), "plain names as keys");
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

void Parser::RejectUnknown(const MapFields& f, const std::vector<std::string>& known) {
  for (const auto& e : f.entries) {
    if (e.used || Contains(known, e.key)) continue;
    Err(e.key_mark, JoinPathKey(f.path, e.key),
        "unknown key '" + e.key + "'" + DidYouMean(e.key, known), "one of " + JoinList(known));
  }
}

bool Parser::ExpectList(const YAML::Node& n, const Mark& fallback, const std::string& path,
                        const std::string& expected) {
  if (n.IsSequence()) return true;
  Err(At(n, fallback), path, std::string("got ") + DescribeNode(n), expected);
  return false;
}

std::optional<std::string> Parser::Str(const YAML::Node& n, const Mark& fallback,
                                       const std::string& path, const std::string& expected) {
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

bool Parser::CheckQuotedOnOneLine(const YAML::Node& n, const std::string& path) {
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

std::optional<std::string> Parser::Str(const Entry& e, const std::string& path,
                                       const std::string& expected) {
  return Str(e.value, e.key_mark, path, expected);
}

std::optional<std::string> Parser::NonEmptyStr(const Entry& e, const std::string& path,
                                               const std::string& expected) {
  auto s = Str(e, path, expected);
  if (s && s->empty()) {
    Err(At(e), path, "empty value", expected);
    return std::nullopt;
  }
  return s;
}

std::optional<int64_t> Parser::Int(const Entry& e, const std::string& path, int64_t min,
                                   int64_t max, const std::string& expected) {
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

std::optional<bool> Parser::Bool(const Entry& e, const std::string& path) {
  auto s = Str(e, path, "true or false");
  if (!s) return std::nullopt;
  auto v = ParseBool(*s);
  if (!v) Err(At(e), path, "'" + *s + "' is not a boolean", "true or false");
  return v;
}

std::optional<int64_t> Parser::Duration(const Entry& e, const std::string& path, bool positive) {
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

std::optional<std::string> Parser::OneOf(const Entry& e, const std::string& path,
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

std::optional<std::vector<std::pair<std::string, Mark>>> Parser::StrList(
    const YAML::Node& n, const Mark& fallback, const std::string& path, const std::string& expected,
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

std::optional<std::vector<std::pair<std::string, Mark>>> Parser::StrList(
    const Entry& e, const std::string& path, const std::string& expected, bool allow_single) {
  return StrList(e.value, e.key_mark, path, expected, allow_single);
}

std::string Parser::ResolvePath(const std::string& p) const { return AbsolutePath(p, base_dir_); }

}  // namespace backstop::spec_internal
