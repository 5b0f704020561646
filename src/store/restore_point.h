// Restore points: immutable manifests of every component's state at one moment.
//
// The manifest follows the seed's "Configuration Versioning" block:
//   {
//     "id": "rp-20261126T021947Z-a1b2c3",
//     "version": "pre-migration",          // the label, or the id when unlabelled
//     "label": "pre-migration",
//     "kind": "manual",                    // RestorePointKind: manual | safety | pre-deploy |
//                                          // drill | scheduled | post-rollback
//     "run_id": "",                        // the run that took it (safety points)
//     "environment": "production",
//     "timestamp": "2026-11-26T02:19:47Z",
//     "components": { "<name>": { "kind": ..., "driver": ..., "release": ...,
//                                  "config_hash": "sha256:...", "blobs": [...], ... } },
//     "checksum": "sha256:<hex>"           // over the canonical JSON of all other fields
//   }
// The manifest is written after every blob it names, so a manifest that exists
// refers to blobs that were complete when it was written.
//
// Thread-safety: functions are safe to call concurrently on one Store.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/restore_point_kind.h"
#include "store/store.h"

namespace backstop {

struct RestorePoint {
  std::string id;
  std::string label;
  RestorePointKind kind = RestorePointKind::kManual;
  std::string run_id;
  std::string environment;
  int64_t created_wall_us = 0;
  nlohmann::json components = nlohmann::json::object();
  std::string checksum;  // "sha256:<hex>", filled by WriteRestorePoint

  // Every blob digest named by any component entry, deduplicated, sorted.
  std::vector<std::string> AllBlobs() const;
  nlohmann::json ToJson() const;  // includes the checksum
  // The checksum the manifest should carry: sha256 over ToJson() minus "checksum", dumped
  // canonically.
  std::string ComputeChecksum() const;
};

// A fresh id "rp-<compact utc>-<6 hex>".
std::string NewRestorePointId(int64_t wall_us);

// Computes the checksum and writes the manifest atomically. Refuses to
// overwrite an existing id (restore points are immutable).
Status WriteRestorePoint(Store& store, RestorePoint& rp);
// Reads a manifest. With `check_checksum`, Corruption when its checksum does
// not match its content ("manifest rp-… was modified: checksum …"); without,
// the caller (VerifyRestorePoint) reports it.
Result<RestorePoint> ReadRestorePoint(Store& store, const std::string& id,
                                      bool check_checksum = true);
// Parses a manifest's text read from elsewhere (a remote store, `where` for
// messages): Corruption when it is not valid, names another id, or its
// checksum does not match its content.
Result<RestorePoint> ParseRestorePoint(std::string_view text, const std::string& id,
                                       const std::string& where);
// Every readable manifest, oldest first (created time, then id). Unreadable
// ones are reported in `errors`; modified ones (checksum mismatch) are listed
// and also reported in `errors`, so that "latest" cannot silently skip them.
std::vector<RestorePoint> ListRestorePoints(Store& store, std::vector<std::string>* errors);

// Resolves a selector: "latest", "previous" (the one before latest), an id (or
// a unique prefix of one), or a label (the newest with that label). Safety
// restore points are skipped by latest/previous unless `include_safety`.
// Precedence: latest/previous, exact id, label, unique id prefix (>= 6
// characters). Corruption if the chosen manifest was modified; NotFound /
// InvalidArgument (ambiguous prefix) messages list what exists.
Result<RestorePoint> ResolveRestorePoint(Store& store, const std::string& selector,
                                         bool include_safety = false);
// The same resolution, but a modified manifest is not an error: for
// `backstop snapshots verify`, which reports the damage (ReadRestorePoint with
// check_checksum=false, then VerifyRestorePoint).
Result<std::string> ResolveRestorePointId(Store& store, const std::string& selector,
                                          bool include_safety = false);

// Deletes a manifest (its blobs stay until garbage-collected by `backstop prune`).
Status DeleteRestorePoint(Store& store, const std::string& id);

struct RestorePointCheck {
  bool manifest_ok = true;
  std::string manifest_detail;
  std::vector<BlobCheck> blobs;  // one per blob
  bool ok() const;
  std::vector<BlobCheck> Failures() const;
};
// Re-hashes the manifest (against rp.checksum as read) and every blob it names.
RestorePointCheck VerifyRestorePoint(Store& store, const RestorePoint& rp);

}  // namespace backstop
