// The settings of a `container` component (ContainerDriverInfo lists them),
// and the API client they describe.
//
// Thread-safety: the functions are safe to call from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "drivers/container/docker_client.h"
#include "spec/spec.h"

namespace backstop::container {

// What Health counts besides the container running (setting `health_check`).
enum class HealthCheckSource {
  kAuto,   // the spec's probe when there is one, and the image's HEALTHCHECK when it has one
  kImage,  // the image's HEALTHCHECK as the engine reports it (an image without one fails)
  kProbe,  // the spec's probe only; the engine's health status is ignored
};

struct ContainerSettings {
  std::string socket = "/var/run/docker.sock";
  std::string container;  // the container's name
  std::string image;      // the image reference it is meant to run, e.g. registry/orch:1.4
  HealthCheckSource health_check = HealthCheckSource::kAuto;
  int64_t stop_timeout_ms = 10'000;
  int64_t request_timeout_ms = 30'000;
  // Blue/green slots: the port inside the container a slot publishes on its
  // slot port; 0: the one port the container publishes (container_slots.h).
  int container_port = 0;
};

// The settings of `c`: InvalidArgument naming the component and the setting
// when one is missing or wrong.
Result<ContainerSettings> ReadSettings(const ComponentSpec& c);

DockerClientOptions ClientOptions(const ContainerSettings& s);

}  // namespace backstop::container
