// The `container` driver: registration, Describe and Health. See container_driver.h.
#include "drivers/container/container_driver.h"

#include <memory>
#include <set>

#include "base/hash.h"
#include "drivers/container/container_record.h"
#include "drivers/container/container_restore.h"
#include "drivers/container/container_slots.h"
#include "drivers/container/image_archive.h"
#include "drivers/container/image_ref.h"
#include "probe/probe.h"
#include "store/store.h"

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

// The last image archive a snapshot stored, remembered per component so that
// the next snapshot of the same image (by the same reference) skips the
// export: <state_dir>/components/<name>/image-archive.json. Only a hint: it
// is used when every piece is still in the store, and losing it costs one
// export.
std::string ArchiveCachePath(const ComponentSpec& c, const DriverContext& ctx) {
  if (ctx.state_dir.empty()) return "";
  return JoinPath(JoinPath(JoinPath(ctx.state_dir, "components"), c.name), "image-archive.json");
}

Result<StoredArchive> CachedArchive(Store& store, FileSystem* fs, const std::string& path,
                                    const std::string& key) {
  if (path.empty() || !fs->Exists(path)) return Status::NotFound("no archive remembered");
  BACKSTOP_ASSIGN_OR_RETURN(std::string text, fs->ReadFileNoFollow(path));
  json cached = json::parse(text, nullptr, false);
  if (!cached.is_object() || cached.value("key", "") != key || !cached.contains("pieces") ||
      !cached["pieces"].is_array()) {
    return Status::NotFound("another image remembered");
  }
  StoredArchive out;
  out.bytes = cached.value("bytes", uint64_t{0});
  for (const auto& piece : cached["pieces"]) {
    if (!piece.is_string() || !store.Has(piece.get<std::string>())) {
      return Status::NotFound("a piece is gone");
    }
    out.pieces.push_back(piece.get<std::string>());
  }
  return out;
}

void RememberArchive(FileSystem* fs, const std::string& path, const std::string& key,
                     const StoredArchive& archive) {
  if (path.empty() || !fs->CreateDirs(Dirname(path)).ok()) return;
  json cached = {{"key", key}, {"pieces", archive.pieces}, {"bytes", archive.bytes}};
  (void)fs->WriteFileAtomic(path, cached.dump() + "\n", 0600);  // a hint: an error costs an export
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
      "unix socket; restore points keep the image itself in the store";
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
      MakeSetting("container_port", Type::kInt, false,
                  "blue/green: the port inside the container that each slot publishes on its "
                  "slot port, e.g. 8080 (default: the one port the container publishes)"),
  };
  info.factory = [] { return std::make_unique<ContainerDriver>(); };
  return info;
}

json DescribeContainer(const json& container, const json& image) {
  json out = {
      {"container", ContainerName(container)},
      {"id", StringAt(container, json::json_pointer("/Id"))},
      {"release", ReleaseOfRef(StringAt(container, json::json_pointer("/Config/Image")))},
      {"image", StringAt(container, json::json_pointer("/Config/Image"))},
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
  if (ctx.store == nullptr) {
    return Status::FailedPrecondition("component " + c.name + ": a snapshot needs the store");
  }
  BACKSTOP_ASSIGN_OR_RETURN(ContainerSettings settings, ReadSettings(c));
  DockerClient client(ClientOptions(settings));
  BACKSTOP_ASSIGN_OR_RETURN(json container, client.InspectContainer(settings.container));
  BACKSTOP_ASSIGN_OR_RETURN(json create, CreateRequestFromInspect(container));
  const std::string image_id = create["Image"].get<std::string>();
  // Exported by its tag when the tag still names this image, so that a load
  // brings the tag back; by id otherwise.
  std::string ref = StringAt(container, json::json_pointer("/Config/Image"));
  auto tagged = client.InspectImage(ref);
  std::string export_ref = tagged.ok() && tagged->value("Id", "") == image_id ? ref : image_id;

  FileSystem* fs = ctx.env->fs();
  const std::string cache_key = export_ref + " " + image_id;
  Result<StoredArchive> stored = CachedArchive(*ctx.store, fs, ArchiveCachePath(c, ctx), cache_key);
  if (!stored.ok()) {
    std::string tar =
        JoinPath(ctx.store->TmpDir(),
                 "image-" + c.name + "-" + std::to_string(ctx.env->clock()->WallMicros()) + ".tar");
    ctx.Progress("saving image " + export_ref + " of " + c.name + " into the store");
    stored = [&]() -> Result<StoredArchive> {
      BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> out, fs->NewWritableFile(tar));
      BACKSTOP_ASSIGN_OR_RETURN(uint64_t bytes, client.ExportImage(export_ref, out.get()));
      (void)bytes;
      BACKSTOP_RETURN_IF_ERROR(out->Close());
      return StoreArchive(*ctx.store, fs, tar);
    }();
    (void)fs->Remove(tar);
    if (!stored.ok()) return stored.status().WithContext("component " + c.name + ": save image");
    RememberArchive(fs, ArchiveCachePath(c, ctx), cache_key, *stored);
  }

  std::set<std::string> unique(stored->pieces.begin(), stored->pieces.end());
  return json{{"container", settings.container},
              {"release", ReleaseOfRef(ref.empty() ? image_id : ref)},
              {"image", ref},
              {"image_id", image_id},
              {"create", create},
              {"archive", stored->pieces},
              {"archive_bytes", stored->bytes},
              {"blobs", std::vector<std::string>(unique.begin(), unique.end())},
              {"config_hash", "sha256:" + Sha256Hex(create.dump())}};
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
  json described = DescribeContainer(container, image);
  auto images = client.ListImages();
  if (!images.ok()) return images.status();
  described["releases"] = ReleasesIn(*images, ParseImageRef(settings.image).repository);
  return described;
}

HealthResult ContainerDriver::Health(const ComponentSpec& c, DriverContext& ctx) {
  auto settings = ReadSettings(c);
  if (!settings.ok()) {
    return Verdict(HealthResult::State::kUnknown, settings.status().message());
  }
  DockerClient client(ClientOptions(*settings));
  return HealthOf(c, *settings, client, settings->container, ctx);
}

HealthResult HealthOf(const ComponentSpec& c, const ContainerSettings& settings,
                      const DockerClient& client, const std::string& name, DriverContext& ctx) {
  int64_t started = ctx.env->clock()->NowMicros();
  auto finish = [&](HealthResult r) {
    r.latency_ms = (ctx.env->clock()->NowMicros() - started) / 1000;
    return r;
  };
  auto container = client.InspectContainer(name);
  if (!container.ok()) {
    // A container that is gone has failed; an engine that does not answer says nothing of it.
    auto state = container.status().IsNotFound() ? HealthResult::State::kFail
                                                 : HealthResult::State::kUnknown;
    return finish(Verdict(state, container.status().message()));
  }
  std::optional<HealthResult> probe;
  if (c.health.enabled() && settings.health_check != HealthCheckSource::kImage) {
    probe = RunProbe(c.health, ctx.env);
  }
  return finish(JudgeHealth(*container, settings.health_check, probe));
}

}  // namespace backstop::container

namespace backstop::container {

Status ContainerDriver::Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(ContainerSettings settings, ReadSettings(c));
  DockerClient client(ClientOptions(settings));
  return RestoreContainer(c, settings, client, entry, ctx);
}

Status ContainerDriver::Stop(const ComponentSpec& c, DriverContext& ctx) {
  (void)ctx;
  BACKSTOP_ASSIGN_OR_RETURN(ContainerSettings settings, ReadSettings(c));
  DockerClient client(ClientOptions(settings));
  int grace = static_cast<int>((settings.stop_timeout_ms + 999) / 1000);
  Status st = client.StopContainer(settings.container, grace);
  return st.IsNotFound() ? Status::OK() : st;  // nothing runs: stopped
}

Status ContainerDriver::Start(const ComponentSpec& c, DriverContext& ctx) {
  (void)ctx;
  BACKSTOP_ASSIGN_OR_RETURN(ContainerSettings settings, ReadSettings(c));
  DockerClient client(ClientOptions(settings));
  Status st = client.StartContainer(settings.container);
  if (st.IsNotFound()) {
    return Status::FailedPrecondition("container " + settings.container +
                                      " does not exist; roll back to a restore point of " + c.name +
                                      " to create it again");
  }
  return st;
}

std::string ContainerDriver::Diagnose(const ComponentSpec& c, DriverContext& ctx) {
  (void)ctx;
  auto settings = ReadSettings(c);
  if (!settings.ok()) return "";
  DockerClient client(ClientOptions(*settings));
  auto logs = client.ContainerLogs(settings->container, 20);
  if (!logs.ok()) return "";
  std::string text = *logs;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text.empty()) return "container " + settings->container + " printed nothing";
  return "last lines of container " + settings->container + ":\n" + text;
}

Status ContainerDriver::StartSlot(const ComponentSpec& c, Slot slot, const std::string& release,
                                  DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(ContainerSettings settings, ReadSettings(c));
  return StartSlotContainer(c, settings, DockerClient(ClientOptions(settings)), slot, release, ctx);
}

Status ContainerDriver::StopSlot(const ComponentSpec& c, Slot slot, DriverContext& ctx) {
  (void)ctx;
  BACKSTOP_ASSIGN_OR_RETURN(ContainerSettings settings, ReadSettings(c));
  return StopSlotContainer(settings, DockerClient(ClientOptions(settings)), slot);
}

Result<std::vector<SlotState>> ContainerDriver::Slots(const ComponentSpec& c, DriverContext& ctx) {
  (void)ctx;
  BACKSTOP_ASSIGN_OR_RETURN(ContainerSettings settings, ReadSettings(c));
  return SlotContainers(c, settings, DockerClient(ClientOptions(settings)));
}

HealthResult ContainerDriver::SlotHealth(const ComponentSpec& c, Slot slot, DriverContext& ctx) {
  auto settings = ReadSettings(c);
  if (!settings.ok()) return Verdict(HealthResult::State::kUnknown, settings.status().message());
  return SlotContainerHealth(c, *settings, DockerClient(ClientOptions(*settings)), slot, ctx);
}

Status ContainerDriver::VerifyRestored(const ComponentSpec& c, const json& entry,
                                       DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(json described, Describe(c, ctx));
  if (entry.contains("image_id")) {
    if (described.value("image_id", "") != entry.value("image_id", "")) {
      return Status::Corruption("container " + described.value("container", "") + " runs image " +
                                described.value("image_id", "") + ", not the restored " +
                                entry.value("image_id", ""));
    }
  } else if (entry.contains("release") &&
             described.value("release", "") != entry.value("release", "")) {
    return Status::Corruption("container " + described.value("container", "") + " runs release " +
                              described.value("release", "") + ", not " +
                              entry.value("release", ""));
  }
  return Status::OK();
}

}  // namespace backstop::container
