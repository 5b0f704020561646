// Restore-point manifests: canonical checksums, immutable writes, selectors.
#include "store/restore_point.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "base/hash.h"
#include "base/units.h"

namespace backstop {
namespace {

constexpr char kChecksumPrefix[] = "sha256:";
constexpr size_t kMinPrefixLength = 6;
constexpr size_t kMaxIdLength = 128;

// The bytes the checksum covers: `manifest` without "checksum", dumped with
// sorted keys (nlohmann::json objects are sorted) and no whitespace. Invalid
// UTF-8 is replaced rather than thrown on; WriteRestorePoint refuses it first.
std::string CanonicalChecksum(nlohmann::json manifest) {
  if (manifest.is_object()) manifest.erase("checksum");
  return kChecksumPrefix +
         Sha256Hex(manifest.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// Ids become file names: keep them to a safe alphabet.
Status ValidateId(const std::string& id) {
  bool ok = !id.empty() && id.size() <= kMaxIdLength && id.front() != '.' &&
            std::all_of(id.begin(), id.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.';
            });
  if (!ok) {
    return Status::InvalidArgument("'" + id +
                                   "' is not a valid restore point id (letters, digits, '-', '_', "
                                   "'.'; at most 128 characters; not starting with '.')");
  }
  return Status::OK();
}

std::string ManifestPath(Store& store, const std::string& id) {
  return JoinPath(store.ManifestDir(), id + ".json");
}

std::string StringField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (!it->is_string()) throw std::runtime_error(std::string("\"") + key + "\" is not a string");
  return it->get<std::string>();
}

Result<RestorePoint> FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::Corruption("the manifest is not a JSON object");
  try {
    RestorePoint rp;
    rp.id = StringField(j, "id");
    if (rp.id.empty()) return Status::Corruption("the manifest has no \"id\"");
    rp.label = StringField(j, "label");
    // Older manifests have no kind: they were taken by `backstop snapshot`.
    const std::string kind = StringField(j, "kind");
    if (!kind.empty()) {
      BACKSTOP_ASSIGN_OR_RETURN(rp.kind,
                                ParseStored(kRestorePointKindNames, kind, "the manifest's kind"));
    }
    rp.run_id = StringField(j, "run_id");
    rp.environment = StringField(j, "environment");
    rp.checksum = StringField(j, "checksum");
    auto t = j.find("created_wall_us");
    if (t == j.end() || !t->is_number_integer()) {
      return Status::Corruption("the manifest has no integer \"created_wall_us\"");
    }
    rp.created_wall_us = t->get<int64_t>();
    auto c = j.find("components");
    if (c == j.end() || !c->is_object()) {
      return Status::Corruption("the manifest has no \"components\" object");
    }
    rp.components = *c;
    return rp;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("the manifest is malformed: ") + e.what());
  }
}

// A manifest as read from disk, with the result of its checksum comparison.
struct LoadedManifest {
  RestorePoint rp;
  nlohmann::json raw;
  bool checksum_ok = false;
  std::string checksum_detail;  // why not, when !checksum_ok
};

Result<LoadedManifest> LoadManifest(Store& store, const std::string& id) {
  BACKSTOP_RETURN_IF_ERROR(ValidateId(id));
  std::string path = ManifestPath(store, id);
  // A manifest is written by Backstop as a regular file: a symlink in its
  // place is damage (or an attack), never something to follow.
  if (auto target = store.env()->fs()->ReadLink(path); target.ok()) {
    return Status::Corruption("manifest " + path + " is a symlink (to " + *target +
                              "), not a file Backstop wrote; refusing to read through it");
  }
  auto text = store.env()->fs()->ReadFileNoFollow(path);  // and never through one
  if (!text.ok()) {
    if (text.status().IsNotFound()) {
      return Status::NotFound("restore point " + id + " does not exist (no " + path +
                              "); run `backstop snapshots` to list them");
    }
    return text.status();
  }
  LoadedManifest m;
  try {
    m.raw = nlohmann::json::parse(*text);
  } catch (const std::exception& e) {
    return Status::Corruption("manifest " + path + " is not valid JSON: " + e.what());
  }
  auto rp = FromJson(m.raw);
  if (!rp.ok()) return rp.status().WithContext("manifest " + path);
  m.rp = std::move(rp).value();
  if (m.rp.id != id) {
    return Status::Corruption("manifest " + path + " names restore point " + m.rp.id + ", not " +
                              id);
  }
  std::string actual = CanonicalChecksum(m.raw);
  m.checksum_ok = actual == m.rp.checksum;
  if (!m.checksum_ok) {
    m.checksum_detail = "manifest " + id + " was modified: it records checksum " +
                        (m.rp.checksum.empty() ? "(none)" : m.rp.checksum) +
                        " but its content hashes to " + actual + " (" + path + ")";
  }
  return m;
}

// Manifests that parse, oldest first, with their checksum state. Those that
// cannot be read go to `damaged` (id -> why), when given.
std::vector<LoadedManifest> LoadAll(Store& store, std::vector<std::string>* errors,
                                    std::map<std::string, std::string>* damaged = nullptr) {
  std::vector<LoadedManifest> out;
  auto names = store.env()->fs()->ListDir(store.ManifestDir());
  if (!names.ok()) {
    if (!names.status().IsNotFound() && errors) errors->push_back(names.status().message());
    return out;
  }
  const std::string kSuffix = ".json";
  for (const auto& name : *names) {
    if (name.size() <= kSuffix.size() || name.front() == '.' ||
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      continue;
    }
    std::string id = name.substr(0, name.size() - kSuffix.size());
    auto m = LoadManifest(store, id);
    if (!m.ok()) {
      if (errors) errors->push_back(m.status().message());
      if (damaged && !m.status().IsNotFound()) (*damaged)[id] = m.status().message();
      continue;
    }
    if (!m->checksum_ok && errors) errors->push_back(m->checksum_detail);
    out.push_back(std::move(m).value());
  }
  std::sort(out.begin(), out.end(), [](const LoadedManifest& a, const LoadedManifest& b) {
    if (a.rp.created_wall_us != b.rp.created_wall_us) {
      return a.rp.created_wall_us < b.rp.created_wall_us;
    }
    return a.rp.id < b.rp.id;
  });
  return out;
}

std::string Describe(const RestorePoint& rp) {
  std::string s = rp.id;
  if (!rp.label.empty()) s += " '" + rp.label + "'";
  if (rp.kind != RestorePointKind::kManual) s += " (" + std::string(Name(rp.kind)) + ")";
  return s;
}

std::string DigestOf(const std::string& s) {
  return s.rfind(kChecksumPrefix, 0) == 0 ? s.substr(sizeof kChecksumPrefix - 1) : s;
}

}  // namespace

std::vector<std::string> RestorePoint::AllBlobs() const {
  std::set<std::string> digests;
  if (components.is_object()) {
    for (const auto& [name, entry] : components.items()) {
      if (!entry.is_object()) continue;
      auto blobs = entry.find("blobs");
      if (blobs == entry.end() || !blobs->is_array()) continue;
      for (const auto& b : *blobs) {
        if (b.is_string()) digests.insert(DigestOf(b.get<std::string>()));
      }
    }
  }
  return {digests.begin(), digests.end()};
}

nlohmann::json RestorePoint::ToJson() const {
  nlohmann::json j = nlohmann::json::object();
  j["id"] = id;
  j["version"] = label.empty() ? id : label;
  j["label"] = label;
  j["kind"] = kind;
  j["run_id"] = run_id;
  j["environment"] = environment;
  j["timestamp"] = FormatRfc3339(created_wall_us);
  // The timestamp has seconds; ordering needs the exact moment.
  j["created_wall_us"] = created_wall_us;
  j["components"] = components;
  j["checksum"] = checksum;
  return j;
}

std::string RestorePoint::ComputeChecksum() const { return CanonicalChecksum(ToJson()); }

std::string NewRestorePointId(int64_t wall_us) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string suffix;
  for (int i = 0; i < 6; ++i) suffix.push_back(kHex[rng() & 15]);
  return "rp-" + FormatCompactUtc(wall_us) + "-" + suffix;
}

Status WriteRestorePoint(Store& store, RestorePoint& rp) {
  if (rp.created_wall_us == 0) rp.created_wall_us = store.env()->clock()->WallMicros();
  if (rp.id.empty()) rp.id = NewRestorePointId(rp.created_wall_us);
  BACKSTOP_RETURN_IF_ERROR(ValidateId(rp.id));
  if (!rp.components.is_object()) {
    return Status::InvalidArgument("restore point " + rp.id + ": components must be a JSON object");
  }
  for (const auto& [name, entry] : rp.components.items()) {
    if (!entry.is_object()) {
      return Status::InvalidArgument("restore point " + rp.id + ": the entry of component " + name +
                                     " is not a JSON object");
    }
    auto blobs = entry.find("blobs");
    if (blobs == entry.end()) continue;
    bool valid = blobs->is_array() && std::all_of(blobs->begin(), blobs->end(), [](const auto& b) {
                   return b.is_string() && IsSha256Hex(DigestOf(b.template get<std::string>()));
                 });
    if (!valid) {
      return Status::InvalidArgument("restore point " + rp.id + ": \"blobs\" of component " + name +
                                     " must be an array of sha256 hex digests");
    }
  }
  std::vector<std::string> missing;
  for (const auto& d : rp.AllBlobs()) {
    if (!store.Has(d)) missing.push_back(d);
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& d : missing) list += (list.empty() ? "" : ", ") + d;
    return Status::FailedPrecondition(
        "restore point " + rp.id + " names " + std::to_string(missing.size()) +
        " blob(s) missing from the store " + store.root() + ": " + list +
        "; every blob must be stored before the manifest is written");
  }
  std::string path = ManifestPath(store, rp.id);
  if (store.env()->fs()->Exists(path)) {
    return Status::FailedPrecondition("restore point " + rp.id + " already exists (" + path +
                                      "); restore points are immutable, choose another id");
  }
  rp.checksum = rp.ComputeChecksum();
  std::string text;
  try {
    text = rp.ToJson().dump(2) + "\n";
  } catch (const std::exception& e) {
    return Status::InvalidArgument("restore point " + rp.id +
                                   " cannot be written as JSON: " + e.what());
  }
  Status st = store.CreateFileNoReplace(path, text);
  if (st.code() == Status::Code::kFailedPrecondition) {
    return Status::FailedPrecondition("restore point " + rp.id +
                                      " already exists; restore points are immutable");
  }
  return st;
}

Result<RestorePoint> ReadRestorePoint(Store& store, const std::string& id, bool check_checksum) {
  BACKSTOP_ASSIGN_OR_RETURN(LoadedManifest m, LoadManifest(store, id));
  if (check_checksum && !m.checksum_ok) return Status::Corruption(m.checksum_detail);
  return std::move(m.rp);
}

Result<RestorePoint> ParseRestorePoint(std::string_view text, const std::string& id,
                                       const std::string& where) {
  BACKSTOP_RETURN_IF_ERROR(ValidateId(id));
  nlohmann::json raw;
  try {
    raw = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return Status::Corruption("manifest " + id + " in " + where +
                              " is not valid JSON: " + e.what());
  }
  auto rp = FromJson(raw);
  if (!rp.ok()) return rp.status().WithContext("manifest " + id + " in " + where);
  if (rp->id != id) {
    return Status::Corruption("manifest " + id + " in " + where + " names restore point " + rp->id);
  }
  std::string actual = CanonicalChecksum(raw);
  if (actual != rp->checksum) {
    return Status::Corruption("manifest " + id + " in " + where + " was modified: it records " +
                              "checksum " + (rp->checksum.empty() ? "(none)" : rp->checksum) +
                              " but its content hashes to " + actual);
  }
  return rp;
}

std::vector<RestorePoint> ListRestorePoints(Store& store, std::vector<std::string>* errors) {
  std::vector<RestorePoint> out;
  for (auto& m : LoadAll(store, errors)) out.push_back(std::move(m.rp));
  return out;
}

namespace {

// Resolves `selector` to a manifest without judging its checksum.
Result<LoadedManifest> ResolveManifest(Store& store, const std::string& selector,
                                       bool include_safety) {
  if (selector.empty()) {
    return Status::InvalidArgument(
        "empty restore point selector; use latest, previous, an id, an id prefix or a label");
  }
  std::map<std::string, std::string> damaged;
  std::vector<LoadedManifest> all = LoadAll(store, nullptr, &damaged);
  // A selector that names a damaged manifest is refused as damaged, not
  // reported as missing: the operator must learn the restore point is broken.
  auto refuse_damaged = [&](const std::string& id) {
    return Status::Corruption("restore point " + id + " is damaged: " + damaged[id] +
                              "; refusing to use it (nothing was touched)");
  };
  if (damaged.count(selector)) return refuse_damaged(selector);
  if (selector.size() >= kMinPrefixLength) {
    for (const auto& [id, why] : damaged) {
      if (id.compare(0, selector.size(), selector) == 0) return refuse_damaged(id);
    }
  }

  if (selector == "latest" || selector == "previous") {
    std::vector<const LoadedManifest*> candidates;
    for (const auto& m : all) {
      if (include_safety || m.rp.kind != RestorePointKind::kSafety) candidates.push_back(&m);
    }
    size_t want = selector == "latest" ? 1 : 2;
    if (candidates.size() < want) {
      std::string have =
          candidates.empty() ? "there is none" : "there is only " + Describe(candidates.back()->rp);
      std::string safety_note;
      if (!include_safety && all.size() > candidates.size()) {
        safety_note = " (safety restore points are not counted)";
      }
      return Status::NotFound("no '" + selector + "' restore point in " + store.ManifestDir() +
                              ": " + have + safety_note +
                              "; take one with `backstop snapshot`, run `backstop snapshots` "
                              "to list them");
    }
    return *candidates[candidates.size() - want];
  }

  for (const auto& m : all) {
    if (m.rp.id == selector) return m;
  }
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (!it->rp.label.empty() && it->rp.label == selector) return *it;
  }
  if (selector.size() >= kMinPrefixLength) {
    std::vector<const LoadedManifest*> matches;
    for (const auto& m : all) {
      if (m.rp.id.compare(0, selector.size(), selector) == 0) matches.push_back(&m);
    }
    if (matches.size() == 1) return *matches.front();
    if (matches.size() > 1) {
      std::string list;
      const size_t kShown = 10;
      for (size_t i = 0; i < matches.size() && i < kShown; ++i) {
        list += (i == 0 ? "" : ", ") + Describe(matches[i]->rp);
      }
      if (matches.size() > kShown) {
        list += " and " + std::to_string(matches.size() - kShown) + " more";
      }
      return Status::InvalidArgument("restore point prefix '" + selector + "' is ambiguous: it " +
                                     "matches " + std::to_string(matches.size()) + ": " + list +
                                     "; give more characters of the id");
    }
  }
  std::string what;
  if (all.empty()) {
    what = " (there are none yet; take one with `backstop snapshot`)";
  } else {
    what = " (" + std::to_string(all.size()) + " exist, the newest is " + Describe(all.back().rp) +
           ")";
  }
  std::string prefix_note;
  if (selector.size() < kMinPrefixLength) {
    prefix_note =
        "; an id prefix needs at least " + std::to_string(kMinPrefixLength) + " characters";
  }
  return Status::NotFound("no restore point matches '" + selector + "'" + what + prefix_note +
                          "; run `backstop snapshots` to list them");
}

}  // namespace

Result<RestorePoint> ResolveRestorePoint(Store& store, const std::string& selector,
                                         bool include_safety) {
  BACKSTOP_ASSIGN_OR_RETURN(LoadedManifest m, ResolveManifest(store, selector, include_safety));
  // Never hand out a modified manifest, nor silently fall back to an older one.
  if (!m.checksum_ok) return Status::Corruption(m.checksum_detail);
  return std::move(m.rp);
}

Result<std::string> ResolveRestorePointId(Store& store, const std::string& selector,
                                          bool include_safety) {
  BACKSTOP_ASSIGN_OR_RETURN(LoadedManifest m, ResolveManifest(store, selector, include_safety));
  return m.rp.id;
}

bool RestorePointCheck::ok() const {
  if (!manifest_ok) return false;
  return std::all_of(blobs.begin(), blobs.end(),
                     [](const BlobCheck& b) { return b.state == BlobCheck::State::kOk; });
}

std::vector<BlobCheck> RestorePointCheck::Failures() const {
  std::vector<BlobCheck> out;
  for (const auto& b : blobs) {
    if (b.state != BlobCheck::State::kOk) out.push_back(b);
  }
  return out;
}

RestorePointCheck VerifyRestorePoint(Store& store, const RestorePoint& rp) {
  RestorePointCheck result;
  auto m = LoadManifest(store, rp.id);
  if (!m.ok()) {
    result.manifest_ok = false;
    result.manifest_detail = m.status().message();
  } else if (!m->checksum_ok) {
    result.manifest_ok = false;
    result.manifest_detail = m->checksum_detail;
  } else if (m->rp.checksum != rp.checksum) {
    result.manifest_ok = false;
    result.manifest_detail = "restore point " + rp.id + " carries checksum " + rp.checksum +
                             " but its manifest on disk records " + m->rp.checksum;
  } else if (m->rp.components != rp.components) {
    result.manifest_ok = false;
    result.manifest_detail =
        "restore point " + rp.id + " differs from its manifest on disk (components changed)";
  }
  for (const auto& d : rp.AllBlobs()) result.blobs.push_back(store.Check(d));
  return result;
}

Status DeleteRestorePoint(Store& store, const std::string& id) {
  FileSystem* fs = store.env()->fs();
  std::string path = ManifestPath(store, id);
  if (!fs->Exists(path)) return Status::NotFound("no restore point " + id);
  BACKSTOP_RETURN_IF_ERROR(fs->Remove(path));
  return fs->SyncDir(store.ManifestDir());
}

}  // namespace backstop
