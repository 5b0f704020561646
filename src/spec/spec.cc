// The spec parser's entry (ParseSpec, CheckSpecText) and its top-level keys;
// each section has its own file: spec_components.cc, spec_settings.cc,
// spec_triggers.cc, spec_drills_notify.cc, on the machinery of spec_parser.h.
//
// yaml-cpp builds the node tree; everything after that is ours: each map is
// read key by key (so duplicate keys, which yaml-cpp keeps silently, and
// unknown keys are reported), each scalar goes through ${VAR} expansion and
// then a typed conversion. Errors are collected, never thrown, so one run of
// `backstop check` lists all of them. Nothing here may crash on any input
// (src/spec/spec_fuzz.cc): no .as<>(), no operator[] on nodes, every yaml-cpp call
// inside a try block, no recursion whose depth the input controls.
#include "spec/spec.h"

#include <string>
#include <vector>

#include "base/env.h"
#include "base/strings.h"
#include "spec/spec_parser.h"

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

ProbeSpec ProbeSpec::ForPort(int port) const {
  ProbeSpec out = *this;
  const std::string value = std::to_string(port);
  out.target = ReplaceAll(out.target, "{port}", value);
  for (auto& arg : out.command) arg = ReplaceAll(arg, "{port}", value);
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

namespace spec_internal {

namespace {

const std::vector<std::string> kTopKeys = {
    "environment",    "protected",   "state_dir",       "store",  "data_loss",
    "components",     "triggers",    "decision_matrix", "drills", "notify",
    "restore_points", "performance", "fallback"};

}  // namespace

void Parser::ParseRoot(const YAML::Node& root, Spec* spec) {
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
  if (Entry* e = top.Take("restore_points")) ParseRestorePoints(*e, spec);
  if (Entry* e = top.Take("performance")) ParsePerformance(*e, spec);
  if (Entry* e = top.Take("fallback")) ParseFallback(*e, spec);

  RejectUnknown(top, kTopKeys);
}

void Parser::ParseDataLoss(const Entry& e, Spec* spec) {
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

}  // namespace spec_internal

std::vector<SpecError> CheckSpecText(const std::string& text, const std::string& filename,
                                     const DriverCatalog& drivers) {
  Spec spec;
  std::string abs = AbsolutePath(filename, CurrentDir());
  spec_internal::Parser parser(filename, Dirname(abs), drivers);
  parser.Run(text, &spec);
  return parser.TakeErrors();
}

Result<Spec> ParseSpec(const std::string& text, const std::string& filename,
                       const DriverCatalog& drivers) {
  Spec spec;
  spec.path = AbsolutePath(filename, CurrentDir());
  spec.base_dir = Dirname(spec.path);
  spec_internal::Parser parser(filename, spec.base_dir, drivers);
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
