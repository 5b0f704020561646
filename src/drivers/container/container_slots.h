// Blue/green slots of a container service (drivers/slot.h): slot S of the
// component whose `container` setting is C is the container C-blue or
// C-green, publishing SlotPort(c, S) on 127.0.0.1 (or the host address the
// service's own port binding names).
//
// Its configuration is the service's: the create request of C when it
// exists (else of the other slot's container, else the image's defaults),
// without what C inherited from its image (container_record.h), with:
//   - the image <repository>:<release> (image_ref.h);
//   - the port: container port P (setting `container_port`, or the one port C
//     publishes) bound to the slot's port, and no other binding;
//   - "{port}" in the command and the environment replaced by the slot's
//     port, and BACKSTOP_PORT=<port> added (as for process slots);
//   - labels backstop.slot=<slot>, backstop.release=<release>.
// StartSlot is idempotent: a slot container running the release is left
// alone, a stopped one is started, one of another release is replaced.
// StopSlot stops it (kept, so its logs stay readable; the next StartSlot
// replaces it). Slots inspects both. SlotHealth: the slot container's state
// and the spec's probe aimed at the slot's port (ProbeSpec::ForPort).
//
// Thread-safety: one call per component at a time (the run lock).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/container/container_settings.h"
#include "drivers/container/docker_client.h"
#include "drivers/driver.h"

namespace backstop::container {

// "<container>-blue" / "<container>-green".
std::string SlotContainerName(const ContainerSettings& settings, Slot slot);

// The create request of `slot` running image `ref` (above), from `base` (a
// create request with the image's defaults already removed). `container_port`
// 0: the one port `base` publishes. InvalidArgument when that is not one.
Result<nlohmann::json> SlotCreateRequest(nlohmann::json base, Slot slot, int host_port,
                                         int container_port, const std::string& ref,
                                         const std::string& release);

// Docker's StartedAt ("2026-12-01T06:29:18.123456789Z" or with an offset)
// as wall-clock microseconds; 0 when it cannot be read (or "0001-01-01...").
int64_t ParseStartedAt(const std::string& text);

Status StartSlotContainer(const ComponentSpec& c, const ContainerSettings& settings,
                          const DockerClient& client, Slot slot, const std::string& release,
                          DriverContext& ctx);
Status StopSlotContainer(const ContainerSettings& settings, const DockerClient& client, Slot slot);
Result<std::vector<SlotState>> SlotContainers(const ComponentSpec& c,
                                              const ContainerSettings& settings,
                                              const DockerClient& client);
HealthResult SlotContainerHealth(const ComponentSpec& c, const ContainerSettings& settings,
                                 const DockerClient& client, Slot slot, DriverContext& ctx);

}  // namespace backstop::container
