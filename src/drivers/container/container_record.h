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
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace backstop::container {

// The create request for a container like `inspected` (an inspect answer).
// InvalidArgument when the answer names no image id.
Result<nlohmann::json> CreateRequestFromInspect(const nlohmann::json& inspected);

// `create` without what the container inherited from its image rather than
// was given (`image_config`: that image's inspect "Config"): a command,
// entrypoint, working directory, user, health check or stop signal equal to
// the image's, the image's environment entries and labels. What remains is
// the container's own configuration, to run another release's image with:
// that image's defaults then apply. A setting given explicitly with the same
// value as the image's default is indistinguishable and also dropped.
nlohmann::json WithoutImageDefaults(nlohmann::json create, const nlohmann::json& image_config);

}  // namespace backstop::container
