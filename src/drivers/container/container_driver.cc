// The `container` driver: registration, Describe and Health. See container_driver.h.
#include "drivers/container/container_driver.h"

#include <memory>

#include "probe/probe.h"

namespace backstop::container {

using nlohmann::json;
using Type = SettingSchema::Type;

namespace {

std::string StringAt(const json& j, const json::json_pointer& at) {
  return j.contains(at) && j[at].is_string() ? j[at].get<std::string>() : std::string();
}

// The engine's health status: healthy, unhealthy, starting; empty when the
// container has no health check.
std::string EngineHealth(const json& container) {
  return StringAt(container, json::json_pointer("/State/Health/Status"));
}

// The last output of the engine's health check, for a failure's detail.
std::string LastHealthOutput(const json& container) {
  const json::json_pointer log("/State/Health/Log");
  if (!container.contains(log) || !container[log].is_array() || container[log].empty()) return "";
  std::string output = StringAt(container[log].back(), json::json_pointer("/Output"));
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return output;
}

std::string ContainerName(const json& container) {
  std::string name = StringAt(container, json::json_pointer("/Name"));
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  return name;
}

HealthResult Verdict(HealthResult::State state, std::string detail) {
  return HealthResult::Make(state, 0, std::move(detail));
}

}  // namespace

DriverInfo ContainerDriverInfo() {
  DriverInfo info;
  info.name = "container";
  info.own_health = true;
  info.kinds = {"service"};
  info.summary =
      "a service run as a container by Docker or podman, through the Docker Engine API on its "
      "unix socket (unfinished: describe and health only, no restore points yet)";
  info.settings = {
      MakeSetting("socket", Type::kPath, false,
                  "the engine's API socket, e.g. /var/run/docker.sock or a podman service's",
                  "/var/run/docker.sock"),
      MakeSetting("container", Type::kString, true, "the container's name, e.g. orchestrator"),
      MakeSetting("image", Type::kString, true,
                  "the image reference it runs, e.g. registry.example/orchestrator:1.4"),
      MakeSetting("health_check", Type::kString, false,
                  "what health counts besides the container running: auto (the probe and the "
                  "image's HEALTHCHECK, where present), image, or probe",
                  "auto", {"auto", "image", "probe"}),
      MakeSetting("stop_timeout", Type::kDuration, false,
                  "how long a stop may take before SIGKILL, e.g. 10s", "10s"),
      MakeSetting("request_timeout", Type::kDuration, false,
                  "how long one request to the engine may take, e.g. 30s", "30s"),
  };
  info.factory = [] { return std::make_unique<ContainerDriver>(); };
  return info;
}

json DescribeContainer(const json& container, const json& image) {
  json out = {
      {"container", ContainerName(container)},
      {"id", StringAt(container, json::json_pointer("/Id"))},
      {"release", StringAt(container, json::json_pointer("/Config/Image"))},
      {"image_id", StringAt(container, json::json_pointer("/Image"))},
      {"repo_digests", json::array()},
      {"state", StringAt(container, json::json_pointer("/State/Status"))},
      {"started_at", StringAt(container, json::json_pointer("/State/StartedAt"))},
      {"restart_count", container.value("RestartCount", 0)},
  };
  std::string health = EngineHealth(container);
  out["health"] = health.empty() ? "none" : health;
  if (image.is_object() && image.contains("RepoDigests") && image["RepoDigests"].is_array()) {
    out["repo_digests"] = image["RepoDigests"];
  }
  return out;
}

HealthResult JudgeHealth(const json& container, HealthCheckSource source,
                         const std::optional<HealthResult>& probe) {
  using State = HealthResult::State;
  std::string name = ContainerName(container);
  std::string status = StringAt(container, json::json_pointer("/State/Status"));
  bool running = container.contains(json::json_pointer("/State/Running")) &&
                 container[json::json_pointer("/State/Running")] == true;
  if (!running) {
    std::string detail = "container " + name + " is " + (status.empty() ? "not running" : status);
    const json::json_pointer exit_code("/State/ExitCode");
    if (status == "exited" && container.contains(exit_code)) {
      detail += " (exit code " + container[exit_code].dump() + ")";
    }
    std::string error = StringAt(container, json::json_pointer("/State/Error"));
    if (!error.empty()) detail += ": " + error;
    return Verdict(State::kFail, detail);
  }

  std::string engine = source == HealthCheckSource::kProbe ? "" : EngineHealth(container);
  if (engine == "unhealthy") {
    std::string detail = "container " + name + " is unhealthy (its HEALTHCHECK)";
    std::string output = LastHealthOutput(container);
    if (!output.empty()) detail += ": " + output;
    return Verdict(State::kFail, detail);
  }
  if (source == HealthCheckSource::kImage) {
    if (engine.empty()) {
      return Verdict(State::kFail,
                     "container " + name + " has no HEALTHCHECK; set health_check: probe or auto");
    }
    if (engine == "starting") {
      return Verdict(State::kUnknown, "container " + name + ": its HEALTHCHECK is still starting");
    }
    return Verdict(State::kPass, "container " + name + " is healthy (its HEALTHCHECK)");
  }
  if (probe.has_value()) {
    HealthResult result = *probe;
    std::string prefix = "container " + name + " is running";
    if (engine == "healthy") prefix += " and healthy";
    result.detail = prefix + "; probe: " + result.detail;
    return result;
  }
  if (source == HealthCheckSource::kProbe) {
    return Verdict(State::kUnknown, "container " + name +
                                        " is running; health_check is probe but the component "
                                        "has no health probe");
  }
  if (engine == "healthy") {
    return Verdict(State::kPass, "container " + name + " is healthy (its HEALTHCHECK)");
  }
  if (engine == "starting") {
    return Verdict(State::kUnknown, "container " + name + ": its HEALTHCHECK is still starting");
  }
  return Verdict(State::kPass, "container " + name + " is running (no health check configured)");
}

Result<json> ContainerDriver::Snapshot(const ComponentSpec& c, DriverContext& ctx) {
  (void)ctx;
  return Status::FailedPrecondition("component " + c.name +
                                    ": the container driver cannot take restore points yet");
}

Status ContainerDriver::Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) {
  (void)entry;
  (void)ctx;
  return Status::FailedPrecondition("component " + c.name +
                                    ": the container driver cannot restore yet");
}

Result<json> ContainerDriver::Describe(const ComponentSpec& c, DriverContext& ctx) {
  (void)ctx;
  BACKSTOP_ASSIGN_OR_RETURN(ContainerSettings settings, ReadSettings(c));
  DockerClient client(ClientOptions(settings));
  BACKSTOP_ASSIGN_OR_RETURN(json container, client.InspectContainer(settings.container));
  json image;  // null when the image is gone (the container keeps running)
  std::string image_id = StringAt(container, json::json_pointer("/Image"));
  if (!image_id.empty()) {
    auto inspected = client.InspectImage(image_id);
    if (inspected.ok()) {
      image = std::move(*inspected);
    } else if (!inspected.status().IsNotFound()) {
      return inspected.status();
    }
  }
  return DescribeContainer(container, image);
}

HealthResult ContainerDriver::Health(const ComponentSpec& c, DriverContext& ctx) {
  int64_t started = ctx.env->clock()->NowMicros();
  auto finish = [&](HealthResult r) {
    r.latency_ms = (ctx.env->clock()->NowMicros() - started) / 1000;
    return r;
  };
  auto settings = ReadSettings(c);
  if (!settings.ok()) {
    return finish(Verdict(HealthResult::State::kUnknown, settings.status().message()));
  }
  DockerClient client(ClientOptions(*settings));
  auto container = client.InspectContainer(settings->container);
  if (!container.ok()) {
    // A container that is gone has failed; an engine that does not answer says nothing of it.
    auto state = container.status().IsNotFound() ? HealthResult::State::kFail
                                                 : HealthResult::State::kUnknown;
    return finish(Verdict(state, container.status().message()));
  }
  std::optional<HealthResult> probe;
  if (c.health.enabled() && settings->health_check != HealthCheckSource::kImage) {
    probe = RunProbe(c.health, ctx.env);
  }
  return finish(JudgeHealth(*container, settings->health_check, probe));
}

}  // namespace backstop::container
