// Driver settings: each component's keys checked and converted against its
// driver's setting schema (durations to milliseconds, paths made absolute,
// defaults filled in) before any driver code sees them.
#include <climits>
#include <optional>
#include <string>

#include "base/env.h"
#include "base/units.h"
#include "spec/spec_expect.h"
#include "spec/spec_parser.h"

namespace backstop::spec_internal {

namespace {

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

}  // namespace

void Parser::ValidateSettings(const std::vector<SettingSchema>& schema, MapFields* f,
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

std::optional<nlohmann::json> Parser::ConvertSetting(const SettingSchema& s, const YAML::Node& n,
                                                     const Mark& fallback,
                                                     const std::string& path) {
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

}  // namespace backstop::spec_internal
