// The release layout of a `process` component: the release directories
// under <releases>/ and the `current` symlink that names the deployed one
// (process_driver.h draws it). Reading where `current` points, listing the
// releases, checking a release name, and the "nothing deployed" restore that
// removes the link. The link itself is switched by the driver's Restore
// (FileSystem::SymlinkAtomic).
//
// Thread-safety: the functions are safe to call from any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"
#include "drivers/driver.h"
#include "drivers/process/process_settings.h"

namespace backstop::process {

// <releases>/<release>.
std::string ReleaseDir(const Settings& s, const std::string& release);

// InvalidArgument unless `release` is a plain directory name inside the
// releases directory (no '/', not hidden, not "." or "..").
Status CheckReleaseName(const std::string& release);

struct CurrentTarget {
  std::string release;  // basename of the target
  std::string dir;      // absolute target
};

// Where `current` points. NotFound when there is no current symlink;
// FailedPrecondition when `current` is not a symlink.
Result<CurrentTarget> ReadCurrent(const Settings& s, FileSystem* fs);

// The release directories (symlinks to directories included, hidden ones
// excluded), in NaturalLess order. NotFound without a releases directory.
Result<std::vector<std::string>> ListReleaseNames(const Settings& s, FileSystem* fs);

// The release a manifest entry asks for; nullopt for "nothing deployed"
// ("release": null). InvalidArgument for an entry without a valid release.
Result<std::optional<std::string>> TargetRelease(const Settings& s, const nlohmann::json& entry);

// The restore of "nothing deployed": removes the `current` symlink (never
// anything that is not a symlink). Idempotent.
Status RestoreNothingDeployed(const Settings& s, DriverContext& ctx);

}  // namespace backstop::process
