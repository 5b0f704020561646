// A container's configuration as a create request. See container_record.h.
#include "drivers/container/container_record.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace backstop::container {

using nlohmann::json;

namespace {

// Copies `key` from `from` into `to` when present and not null.
void CopyKey(const json& from, json& to, const char* key) {
  auto it = from.find(key);
  if (it != from.end() && !it->is_null()) to[key] = *it;
}

}  // namespace

Result<json> CreateRequestFromInspect(const json& inspected) {
  auto image = inspected.find("Image");
  if (image == inspected.end() || !image->is_string() || image->get<std::string>().empty()) {
    return Status::InvalidArgument("the container's inspect answer names no image id");
  }
  json config = inspected.value("Config", json::object());
  json request = {{"Image", image->get<std::string>()}};
  for (const char* key : {"Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
                          "Healthcheck", "StopSignal", "Tty", "OpenStdin"}) {
    CopyKey(config, request, key);
  }
  if (config.contains("Env") && config["Env"].is_array()) {
    json env = json::array();
    for (const auto& entry : config["Env"]) {
      // The old container's hostname (its id) would name the wrong container.
      if (entry.is_string() && entry.get<std::string>().rfind("HOSTNAME=", 0) == 0) continue;
      env.push_back(entry);
    }
    request["Env"] = env;
  }
  json host = inspected.value("HostConfig", json::object());
  json host_request = json::object();
  for (const char* key : {"Binds", "Mounts", "PortBindings", "RestartPolicy", "NetworkMode",
                          "ExtraHosts", "Init", "Privileged", "CapAdd", "CapDrop", "Ulimits"}) {
    CopyKey(host, host_request, key);
  }
  // Podman reports a limit as "RLIMIT_NOFILE" but accepts only Docker's "nofile" on create.
  if (host_request.contains("Ulimits") && host_request["Ulimits"].is_array()) {
    for (auto& limit : host_request["Ulimits"]) {
      if (!limit.is_object() || !limit.contains("Name") || !limit["Name"].is_string()) continue;
      std::string name = limit["Name"].get<std::string>();
      if (name.rfind("RLIMIT_", 0) == 0) name.erase(0, 7);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      limit["Name"] = name;
    }
  }
  request["HostConfig"] = host_request;
  return request;
}

json WithoutImageDefaults(json create, const json& image_config) {
  if (!image_config.is_object()) return create;
  for (const char* key : {"Cmd", "Entrypoint", "WorkingDir", "User", "Healthcheck", "StopSignal"}) {
    auto own = create.find(key);
    auto inherited = image_config.find(key);
    if (own != create.end() && inherited != image_config.end() && *own == *inherited) {
      create.erase(key);
    }
  }
  if (create.contains("Env") && create["Env"].is_array() && image_config.contains("Env") &&
      image_config["Env"].is_array()) {
    json env = json::array();
    for (const auto& entry : create["Env"]) {
      const json& inherited = image_config["Env"];
      if (std::find(inherited.begin(), inherited.end(), entry) == inherited.end()) {
        env.push_back(entry);
      }
    }
    create["Env"] = env;
  }
  if (create.contains("Labels") && create["Labels"].is_object() &&
      image_config.contains("Labels") && image_config["Labels"].is_object()) {
    json labels = json::object();
    for (const auto& [key, value] : create["Labels"].items()) {
      auto inherited = image_config["Labels"].find(key);
      if (inherited == image_config["Labels"].end() || *inherited != value) labels[key] = value;
    }
    create["Labels"] = labels;
  }
  return create;
}

}  // namespace backstop::container
