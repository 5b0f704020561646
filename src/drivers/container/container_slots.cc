// Blue/green slots of a container service. See container_slots.h.
#include "drivers/container/container_slots.h"

#include <time.h>

#include <cstdio>
#include <string_view>

#include "drivers/container/container_driver.h"
#include "drivers/container/container_record.h"
#include "drivers/container/image_ref.h"

namespace backstop::container {

using nlohmann::json;

namespace {

// Every "{port}" in `s` replaced by `port`.
std::string WithPort(std::string s, int port) {
  const std::string token = "{port}";
  for (size_t at = s.find(token); at != std::string::npos; at = s.find(token, at)) {
    s.replace(at, token.size(), std::to_string(port));
  }
  return s;
}

void ReplacePortIn(json& list, int port) {
  if (!list.is_array()) return;
  for (auto& item : list) {
    if (item.is_string()) item = WithPort(item.get<std::string>(), port);
  }
}

// The slot's configuration source: the service's container, else the other
// slot's, without what it inherited from its image; null when neither exists.
Result<json> BaseRequest(const ContainerSettings& settings, const DockerClient& client, Slot slot) {
  for (const std::string& name : {settings.container, SlotContainerName(settings, OtherSlot(slot)),
                                  SlotContainerName(settings, slot)}) {
    auto inspected = client.InspectContainer(name);
    if (!inspected.ok()) {
      if (inspected.status().IsNotFound()) continue;
      return inspected.status();
    }
    BACKSTOP_ASSIGN_OR_RETURN(json create, CreateRequestFromInspect(*inspected));
    auto image = client.InspectImage(inspected->value("Image", ""));
    if (image.ok()) create = WithoutImageDefaults(create, image->value("Config", json()));
    if (create.contains("Labels") && create["Labels"].is_object()) {
      create["Labels"].erase("backstop.slot");
      create["Labels"].erase("backstop.release");
    }
    return create;
  }
  return json::object();
}

SlotState Describe(const ComponentSpec& c, const ContainerSettings& settings, Slot slot,
                   const json& inspected) {
  SlotState state;
  state.slot = slot;
  state.port = SlotPort(c, slot);
  std::string name = SlotContainerName(settings, slot);
  if (inspected.is_null()) {
    state.detail = "no container " + name;
    return state;
  }
  const json config = inspected.value("Config", json::object());
  const json labels = config.value("Labels", json::object());
  state.release = labels.is_object() && labels.contains("backstop.release")
                      ? labels["backstop.release"].get<std::string>()
                      : ReleaseOfRef(config.value("Image", ""));
  const json st = inspected.value("State", json::object());
  state.running = st.value("Running", false);
  state.started_us = ParseStartedAt(st.value("StartedAt", ""));
  state.detail = "container " + name + " (" + st.value("Status", std::string("unknown")) + ")";
  return state;
}

}  // namespace

std::string SlotContainerName(const ContainerSettings& settings, Slot slot) {
  return settings.container + "-" + std::string(Name(slot));
}

Result<json> SlotCreateRequest(json base, Slot slot, int host_port, int container_port,
                               const std::string& ref, const std::string& release) {
  std::string host_ip = "127.0.0.1";
  json host_config = base.value("HostConfig", json::object());
  json bindings = host_config.value("PortBindings", json::object());
  std::string port_key;
  if (container_port > 0) {
    port_key = std::to_string(container_port) + "/tcp";
  } else if (bindings.is_object() && bindings.size() == 1) {
    port_key = bindings.begin().key();
  } else {
    return Status::InvalidArgument(
        "a blue/green slot needs the container's port: the container publishes " +
        std::to_string(bindings.is_object() ? bindings.size() : 0) + " ports; set container_port");
  }
  if (bindings.is_object() && bindings.contains(port_key) && bindings[port_key].is_array() &&
      !bindings[port_key].empty()) {
    std::string ip = bindings[port_key][0].value("HostIp", "");
    if (!ip.empty()) host_ip = ip;
  }
  host_config["PortBindings"] = {
      {port_key, {{{"HostIp", host_ip}, {"HostPort", std::to_string(host_port)}}}}};
  base["HostConfig"] = host_config;
  json exposed = base.value("ExposedPorts", json::object());
  exposed[port_key] = json::object();
  base["ExposedPorts"] = exposed;
  base["Image"] = ref;
  if (base.contains("Cmd")) ReplacePortIn(base["Cmd"], host_port);
  json env = base.value("Env", json::array());
  ReplacePortIn(env, host_port);
  env.push_back("BACKSTOP_PORT=" + std::to_string(host_port));
  base["Env"] = env;
  json labels = base.value("Labels", json::object());
  if (!labels.is_object()) labels = json::object();
  labels["backstop.slot"] = std::string(Name(slot));
  labels["backstop.release"] = release;
  base["Labels"] = labels;
  return base;
}

int64_t ParseStartedAt(const std::string& text) {
  struct tm tm = {};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr || tm.tm_year < 70) return 0;
  int64_t micros = 0;
  if (*rest == '.') {
    int digits = 0;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest, ++digits) {
      if (digits < 6) micros = micros * 10 + (*rest - '0');
    }
    for (; digits < 6; ++digits) micros *= 10;
  }
  int64_t offset_s = 0;
  if (*rest == '+' || *rest == '-') {
    int hours = 0, minutes = 0;
    if (std::sscanf(rest + 1, "%2d:%2d", &hours, &minutes) == 2) {
      offset_s = (hours * 3600 + minutes * 60) * (*rest == '+' ? 1 : -1);
    }
  }
  return (static_cast<int64_t>(::timegm(&tm)) - offset_s) * 1'000'000 + micros;
}

Status StartSlotContainer(const ComponentSpec& c, const ContainerSettings& settings,
                          const DockerClient& client, Slot slot, const std::string& release,
                          DriverContext& ctx) {
  if (!c.traffic) return Status::FailedPrecondition(c.name + " is not a blue/green service");
  const std::string name = SlotContainerName(settings, slot);
  const std::string ref = RefOfRelease(settings.image, release);
  BACKSTOP_ASSIGN_OR_RETURN(json image, client.InspectImage(ref));
  auto existing = client.InspectContainer(name);
  if (existing.ok()) {
    json labels = (*existing)["Config"].value("Labels", json::object());
    bool same = existing->value("Image", "") == image.value("Id", "") && labels.is_object() &&
                labels.value("backstop.release", "") == release;
    if (same) return client.StartContainer(name);  // OK when it already runs
    ctx.Progress("replacing " + name + " (release " + labels.value("backstop.release", "?") +
                 ") with release " + release);
    BACKSTOP_RETURN_IF_ERROR(client.RemoveContainer(name, /*force=*/true));
  } else if (!existing.status().IsNotFound()) {
    return existing.status();
  }
  BACKSTOP_ASSIGN_OR_RETURN(json base, BaseRequest(settings, client, slot));
  BACKSTOP_ASSIGN_OR_RETURN(json create, SlotCreateRequest(std::move(base), slot, SlotPort(c, slot),
                                                           settings.container_port, ref, release));
  auto id = client.CreateContainer(name, create);
  if (!id.ok()) return id.status();
  return client.StartContainer(name);
}

Status StopSlotContainer(const ContainerSettings& settings, const DockerClient& client, Slot slot) {
  int grace = static_cast<int>((settings.stop_timeout_ms + 999) / 1000);
  Status st = client.StopContainer(SlotContainerName(settings, slot), grace);
  return st.IsNotFound() ? Status::OK() : st;
}

Result<std::vector<SlotState>> SlotContainers(const ComponentSpec& c,
                                              const ContainerSettings& settings,
                                              const DockerClient& client) {
  if (!c.traffic) return Status::FailedPrecondition(c.name + " is not a blue/green service");
  std::vector<SlotState> out;
  for (Slot slot : {Slot::kBlue, Slot::kGreen}) {
    auto inspected = client.InspectContainer(SlotContainerName(settings, slot));
    if (!inspected.ok() && !inspected.status().IsNotFound()) return inspected.status();
    out.push_back(Describe(c, settings, slot, inspected.ok() ? *inspected : json()));
  }
  return out;
}

HealthResult SlotContainerHealth(const ComponentSpec& c, const ContainerSettings& settings,
                                 const DockerClient& client, Slot slot, DriverContext& ctx) {
  if (!c.traffic) {
    return HealthResult::Make(HealthResult::State::kUnknown, 0, "not a blue/green service");
  }
  ComponentSpec aimed = c;
  if (aimed.health.enabled()) aimed.health = c.health.ForPort(SlotPort(c, slot));
  return HealthOf(aimed, settings, client, SlotContainerName(settings, slot), ctx);
}

}  // namespace backstop::container
