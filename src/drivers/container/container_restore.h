// The container driver's rollback (ContainerDriver::Restore), step by step
// with a journal so that a crash anywhere is resumed, never repeated blindly.
//
// Steps, for the component's container C and a restore of run R:
//   1. the target: the entry's image (loaded from the store's archive when
//      the engine lacks it) and create request; or, for a release-only entry
//      ({"release": "1.5"}, deploy), the image <repository>:1.5 and the
//      live container's configuration;
//   2. journal {run R, the replaced container's id, new name C-R, request};
//   3. create C-R; 4. stop the replaced container, start C-R;
//   5. gate on C-R's health (the spec's probe, and the image's HEALTHCHECK
//      when the engine reports one that is not "starting"), until it passes
//      or the probe's start_period runs out;
//   6a. passed: remove the replaced container, rename C-R to C;
//   6b. failed: remove C-R, start the replaced container again, and fail
//       with the gate's verdict and the last lines C-R printed.
// The journal is <state_dir>/components/<name>/container-restore.json
// (temp + fsync + rename), rewritten before each step that changes what a
// resume must do. A resume of R continues from it; a journal left by another
// run is finished first (completed when its gate had passed, otherwise its
// new container is removed). A restore that fails before its new container
// exists (the image cannot be loaded, the create is refused) starts the
// replaced container again, since the run engine does not (RunEngine::Recover
// restarts only services whose switch never began). A restore whose target already runs under C
// (same image, same configuration) changes nothing.
//
// Crash points (base/crash_point.h): container.after-load,
// container.after-journal, container.after-create, container.after-start,
// container.after-gate, container.after-remove-replaced,
// container.after-rename, container.after-remove-new,
// container.after-restart-replaced.
//
// Thread-safety: one restore of a component at a time (the run lock).
#pragma once

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/container/container_settings.h"
#include "drivers/container/docker_client.h"
#include "drivers/driver.h"

namespace backstop::container {

Status RestoreContainer(const ComponentSpec& c, const ContainerSettings& settings,
                        const DockerClient& client, const nlohmann::json& entry,
                        DriverContext& ctx);

// The journal's path for component `c`.
std::string RestoreJournalPath(const ComponentSpec& c, const DriverContext& ctx);

}  // namespace backstop::container
