// What a restore point will record of a container's configuration: the
// create request (POST /containers/create) that makes an equivalent
// container from the recorded image, read back from the engine's inspect
// answer. Kept: the image by digest (its id, never a tag that may move),
// command and entrypoint, environment, working directory, user, labels,
// exposed ports, health check, stop signal; and of the host configuration:
// binds and mounts, port bindings, restart policy, network mode, extra hosts,
// capabilities and ulimits (named as Docker names them: podman reports
// "RLIMIT_NOFILE" but accepts only "nofile" on create). The stop timeout is
// not kept: the driver passes its own stop_timeout on every stop.
// Dropped: what names the old container (its hostname, a HOSTNAME variable
// derived from its id) and the engine's runtime state.
//
// Not wired into Snapshot yet (container_driver.h).
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace backstop::container {

// The create request for a container like `inspected` (an inspect answer).
// InvalidArgument when the answer names no image id.
Result<nlohmann::json> CreateRequestFromInspect(const nlohmann::json& inspected);

}  // namespace backstop::container
