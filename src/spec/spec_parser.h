// The spec parser's machinery, shared by the files that read each section of
// backstop.yaml (spec.cc: the top-level keys; spec_components.cc,
// spec_settings.cc, spec_triggers.cc, spec_drills_notify.cc,
// spec_restore_points.cc, spec_performance.cc, spec_fallback.cc). Not part of
// the spec contract: other modules use spec.h.
//
// yaml-cpp builds the node tree; the Parser reads it map by map (Entry,
// MapFields), collects every error with its position (Err), and never
// throws or crashes on any input (spec_fuzz.cc): no .as<>(), no operator[]
// on nodes, every yaml-cpp call inside Run's try block, no recursion whose
// depth the input controls.
//
// Ownership: a Parser refers to the driver catalogue it is given, which must outlive it.
// Thread-safety: one Parser per parse, used by one thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "spec/driver_catalog.h"
#include "spec/setting_schema.h"
#include "spec/spec.h"
#include "spec/spec_enums.h"
#include "spec/spec_internal.h"

namespace backstop {

namespace spec_internal {

using Mark = YAML::Mark;

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
  // Like Take, without marking the key as read.
  Entry* Find(std::string_view key) {
    for (auto& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
};

class Parser {
 public:
  Parser(std::string file, std::string base_dir, const DriverCatalog& drivers)
      : file_(std::move(file)), base_dir_(std::move(base_dir)), drivers_(drivers) {}

  // Parses `text` into *spec, collecting every error found.
  void Run(const std::string& text, Spec* spec);
  // The errors collected, in file order.
  std::vector<SpecError> TakeErrors();

 private:
  // ---- errors and positions (spec_parser.cc) ----

  SourcePos Pos(const Mark& m) const;
  void Err(const Mark& m, const std::string& key, const std::string& what,
           const std::string& expected = "");

  // The position of `n`, or `fallback` where yaml-cpp has none worth
  // showing (an empty value is marked on the next line).
  static Mark At(const YAML::Node& n, const Mark& fallback) {
    if (!n.IsDefined() || n.IsNull()) return fallback;
    Mark m = n.Mark();
    return m.line < 0 ? fallback : m;
  }
  static Mark At(const Entry& e) { return At(e.value, e.key_mark); }

  void ReportSyntaxError(const std::string& text, const Mark& mark, const std::string& msg);

  // Walks the documents of `text` with yaml-cpp's event parser; reports a
  // second document, and a parser that stops making progress. yaml-cpp 0.7
  // does not consume some stray tokens (a lone ',' for one) and hands out
  // the same empty document again and again, which makes YAML::LoadAll loop
  // forever (jbeder/yaml-cpp#1040, fixed upstream after 0.8). Returns false
  // when parsing must stop. May throw YAML::Exception like YAML::Load.
  bool CountDocuments(const std::string& text);

  // ---- generic readers (spec_parser.cc) ----

  // Reads a map; reports a non-map, keys that are not plain strings and
  // duplicate keys. Returns false (after reporting) when `n` is not a map.
  bool ReadMap(const YAML::Node& n, const Mark& fallback, const std::string& path,
               const std::string& expected, MapFields* out);
  void RejectUnknown(const MapFields& f, const std::vector<std::string>& known);
  bool ExpectList(const YAML::Node& n, const Mark& fallback, const std::string& path,
                  const std::string& expected);

  // A scalar as a string, after ${VAR} expansion.
  std::optional<std::string> Str(const YAML::Node& n, const Mark& fallback, const std::string& path,
                                 const std::string& expected);
  std::optional<std::string> Str(const Entry& e, const std::string& path,
                                 const std::string& expected = "a string");

  // A quoted value that runs over several lines is almost always a quote
  // left open: YAML then folds the lines that follow into the value, up to
  // the next quote, and whole components vanish into a connection string.
  // Only free-text keys (sql, procedure) may span lines; elsewhere the value
  // is refused, pointing at its opening quote.
  bool CheckQuotedOnOneLine(const YAML::Node& n, const std::string& path);

  std::optional<std::string> NonEmptyStr(const Entry& e, const std::string& path,
                                         const std::string& expected);
  std::optional<int64_t> Int(const Entry& e, const std::string& path, int64_t min, int64_t max,
                             const std::string& expected);
  std::optional<bool> Bool(const Entry& e, const std::string& path);
  std::optional<int64_t> Duration(const Entry& e, const std::string& path, bool positive);
  std::optional<std::string> OneOf(const Entry& e, const std::string& path,
                                   const std::vector<std::string>& allowed,
                                   const std::string& what);
  // The same for a name of one of the spec's enums (spec/spec_enums.h).
  template <typename Enum, size_t N>
  std::optional<Enum> OneOf(const Entry& e, const std::string& path,
                            const EnumNames<Enum, N>& names, const std::string& what) {
    auto s = OneOf(e, path, names.All(), what);
    if (!s) return std::nullopt;
    return names.Parse(*s);
  }

  // A list of scalars (a single scalar too when `allow_single`), each with
  // its position. Items that fail are reported and left out.
  std::optional<std::vector<std::pair<std::string, Mark>>> StrList(const YAML::Node& n,
                                                                   const Mark& fallback,
                                                                   const std::string& path,
                                                                   const std::string& expected,
                                                                   bool allow_single);
  std::optional<std::vector<std::pair<std::string, Mark>>> StrList(const Entry& e,
                                                                   const std::string& path,
                                                                   const std::string& expected,
                                                                   bool allow_single);

  std::string ResolvePath(const std::string& p) const;

  // ---- the top-level keys (spec.cc) ----

  void ParseRoot(const YAML::Node& root, Spec* spec);
  void ParseStore(const Entry& e, Spec* spec);
  void ParseRemoteStore(MapFields& f, const Mark& anchor, const std::string& path,
                        RemoteStoreSpec::Role role, Spec* spec);
  void ParseDataLoss(const Entry& e, Spec* spec);

  // ---- components (spec_components.cc) ----

  std::string DriversFor(const std::optional<ComponentKind>& kind) const;
  void ParseComponents(const Entry& e, Spec* spec);
  void ParseComponent(const Entry& c, const std::string& path, ComponentSpec* comp);
  void ParseProbe(const Entry& h, const std::string& path, ProbeSpec* probe);
  void CheckDependencies(const Spec& spec);

  // ---- a service's traffic block (spec_traffic.cc) ----

  void ParseServiceTraffic(const Entry& t, const std::string& path, const DriverSchema* driver,
                           ComponentSpec* comp);
  // Each traffic block names a component of kind traffic (needs every component read).
  void CheckTrafficComponents(const Spec& spec);

  // ---- driver settings (spec_settings.cc) ----

  void ValidateSettings(const std::vector<SettingSchema>& schema, MapFields* f,
                        const std::string& path, nlohmann::json* out);
  std::optional<nlohmann::json> ConvertSetting(const SettingSchema& s, const YAML::Node& n,
                                               const Mark& fallback, const std::string& path);

  // ---- triggers and the decision matrix (spec_triggers.cc) ----

  // `signal` is nullopt when the trigger's signal is missing or unknown
  // (already reported): either form of threshold is then accepted silently.
  std::optional<double> Threshold(const Entry& e, const std::string& path,
                                  std::optional<Signal> signal);
  void ParseTriggers(const Entry& e, Spec* spec);
  bool ParseTrigger(const YAML::Node& item, const Mark& fallback, const std::string& path,
                    const Spec& spec, std::map<std::string, int>* first_line, TriggerSpec* t);
  void ParseDecisionMatrix(const Entry& e, Spec* spec);

  // ---- drills and notify (spec_drills_notify.cc) ----

  void ParseDrills(const Entry& e, Spec* spec);
  void ParseNotify(const Entry& e, Spec* spec);

  // ---- restore_points (spec_restore_points.cc) ----

  void ParseRestorePoints(const Entry& e, Spec* spec);

  // ---- fallback (spec_fallback.cc); after the components ----

  void ParseFallback(const Entry& e, Spec* spec);

  // ---- performance (spec_performance.cc) ----

  void ParsePerformance(const Entry& e, Spec* spec);
  std::optional<double> Tolerance(const Entry& e, const std::string& path, double max_pct);

  // A hostile file could otherwise make the error list as big as the input
  // times the number of keys; the first thousand are plenty.
  static constexpr size_t kMaxErrors = 1000;

  std::string file_;
  std::string base_dir_;
  std::string_view text_;  // the spec's text, for checks yaml-cpp cannot make
  const DriverCatalog& drivers_;
  std::vector<SpecError> errors_;
  std::map<std::string, std::vector<Mark>> dep_marks_;  // parallel to depends_on
  std::map<std::string, Mark> traffic_marks_;           // service -> its traffic.component
  std::set<std::string> trigger_names_;                 // every trigger name written
  std::vector<std::string> scenario_names_;             // every scenario written
};

}  // namespace spec_internal
}  // namespace backstop
