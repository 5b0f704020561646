// The settings of a `container` component. See container_settings.h.
#include "drivers/container/container_settings.h"

#include "drivers/driver_settings.h"

namespace backstop::container {

using nlohmann::json;

namespace {

std::string StringSetting(const json& s, const std::string& key) {
  auto it = s.find(key);
  return it != s.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<ContainerSettings> ReadSettings(const ComponentSpec& c) {
  const json& s = c.settings;
  ContainerSettings out;
  std::string where = "component " + c.name + " (container)";
  std::string socket = StringSetting(s, "socket");
  if (!socket.empty()) out.socket = socket;
  out.container = StringSetting(s, "container");
  if (out.container.empty()) {
    return Status::InvalidArgument(where + ": container is required: the container's name");
  }
  out.image = StringSetting(s, "image");
  if (out.image.empty()) {
    return Status::InvalidArgument(where +
                                   ": image is required: the image it runs, e.g. registry/app:1.4");
  }
  std::string source = StringSetting(s, "health_check");
  if (source.empty() || source == "auto") {
    out.health_check = HealthCheckSource::kAuto;
  } else if (source == "image") {
    out.health_check = HealthCheckSource::kImage;
  } else if (source == "probe") {
    out.health_check = HealthCheckSource::kProbe;
  } else {
    return Status::InvalidArgument(where + ": health_check must be auto, image or probe, not " +
                                   source);
  }
  auto stop = DurationSettingMs(s, "stop_timeout", 10'000);
  if (!stop.ok()) return stop.status().WithContext(where);
  auto request = DurationSettingMs(s, "request_timeout", 30'000);
  if (!request.ok()) return request.status().WithContext(where);
  if (auto port = s.find("container_port"); port != s.end() && !port->is_null()) {
    if (!port->is_number_integer() || port->get<int64_t>() < 1 || port->get<int64_t>() > 65535) {
      return Status::InvalidArgument(where + ": container_port must be a port number, 1 to 65535");
    }
    out.container_port = port->get<int>();
  }
  out.stop_timeout_ms = *stop >= 0 ? *stop : 10'000;
  out.request_timeout_ms = *request > 0 ? *request : 30'000;
  return out;
}

DockerClientOptions ClientOptions(const ContainerSettings& s) {
  DockerClientOptions options;
  options.socket_path = s.socket;
  options.request_timeout_ms = s.request_timeout_ms;
  return options;
}

}  // namespace backstop::container
