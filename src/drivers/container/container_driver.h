// The `container` driver (kind service): a service run as a container by
// Docker or podman, reached through the Docker Engine API on its unix socket
// (docker_client.h).
//
// Settings (see ContainerDriverInfo for the schema):
//   socket          the engine's API socket (default /var/run/docker.sock;
//                   podman: `podman system service unix://PATH`)
//   container       the container's name (required)
//   image           the image reference it is meant to run (required)
//   health_check    auto | image | probe (default auto): what Health counts
//                   besides the container running (container_settings.h)
//   stop_timeout    SIGTERM to SIGKILL when the container is stopped (10s)
//   request_timeout how long one API request may take (30s)
//   container_port  blue/green: the port inside the container each slot
//                   publishes on its slot port (container_slots.h)
//
// Releases (image_ref.h): a release is a tag of the repository `image`
// names; `backstop deploy orchestrator 1.5` runs <repository>:1.5.
//
// Describe: {"container", "id", "release" (the tag of the image reference
// the container was created from), "image" (that reference), "image_id"
// (sha256:<hex>, the image's content digest), "repo_digests", "state"
// (created, running, exited...), "health" (healthy, unhealthy, starting, or
// none), "started_at", "restart_count", "releases" (the repository's tags
// the engine has)}.
//
// Snapshot: the entry {"container", "release", "image", "image_id",
// "create" (the create request that remakes the container from the image by
// id, container_record.h), "archive" (the image as exported, in pieces:
// image_archive.h), "archive_bytes", "blobs", "config_hash" (sha256 of the
// create request)}. The export streams to a file under the store's tmp/,
// never into memory.
//
// Health: a container that does not exist or does not run fails, naming its
// state and exit code; then, per health_check, the image's HEALTHCHECK as the
// engine reports it and the spec's probe. Podman runs HEALTHCHECKs from
// systemd timers: where systemd is not running, its health stays
// "starting", which is Unknown, never a pass.
//
// Thread-safety: a ContainerDriver is used by one thread at a time; the free
// functions are pure.
#pragma once

#include <optional>

#include <nlohmann/json.hpp>

#include "drivers/container/container_settings.h"
#include "drivers/driver.h"

namespace backstop::container {

// Name, kinds, summary, settings schema and factory of the driver.
DriverInfo ContainerDriverInfo();

// Describe's answer from the engine's inspect answers for the container and
// its image (`image` may be null when the image is gone).
nlohmann::json DescribeContainer(const nlohmann::json& container, const nlohmann::json& image);

// The health of a container from its inspect answer and, when the spec has
// a probe, that probe's result.
HealthResult JudgeHealth(const nlohmann::json& container, HealthCheckSource source,
                         const std::optional<HealthResult>& probe);

// The health of container `name` (the component's own, or the one a
// restore is gating) as Health judges it.
HealthResult HealthOf(const ComponentSpec& c, const ContainerSettings& settings,
                      const DockerClient& client, const std::string& name, DriverContext& ctx);

class ContainerDriver : public Driver {
 public:
  Result<nlohmann::json> Snapshot(const ComponentSpec& c, DriverContext& ctx) override;
  Result<nlohmann::json> Describe(const ComponentSpec& c, DriverContext& ctx) override;
  bool IsService() const override { return true; }
  // Stop: the container, SIGKILL after stop_timeout; OK when it does not exist.
  Status Stop(const ComponentSpec& c, DriverContext& ctx) override;
  // Start: the container as it is; FailedPrecondition when it does not exist.
  Status Start(const ComponentSpec& c, DriverContext& ctx) override;
  // Restore: container_restore.h.
  Status Restore(const ComponentSpec& c, const nlohmann::json& entry, DriverContext& ctx) override;
  // The container runs the entry's image (by id) or release.
  Status VerifyRestored(const ComponentSpec& c, const nlohmann::json& entry,
                        DriverContext& ctx) override;
  // The last 20 lines the container printed (stdout and stderr).
  std::string Diagnose(const ComponentSpec& c, DriverContext& ctx) override;
  // Blue/green slots: container_slots.h.
  bool SupportsSlots() const override { return true; }
  Status StartSlot(const ComponentSpec& c, Slot slot, const std::string& release,
                   DriverContext& ctx) override;
  Status StopSlot(const ComponentSpec& c, Slot slot, DriverContext& ctx) override;
  Result<std::vector<SlotState>> Slots(const ComponentSpec& c, DriverContext& ctx) override;
  HealthResult SlotHealth(const ComponentSpec& c, Slot slot, DriverContext& ctx) override;
  HealthResult Health(const ComponentSpec& c, DriverContext& ctx) override;
};

}  // namespace backstop::container
