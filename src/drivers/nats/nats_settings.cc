// The settings of a `nats` component. See nats_settings.h.
#include "drivers/nats/nats_settings.h"

#include "base/units.h"
#include "drivers/driver_settings.h"

namespace backstop::nats {

using nlohmann::json;

namespace {

std::string StringSetting(const json& s, const std::string& key) {
  auto it = s.find(key);
  return it != s.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<NatsSettings> ReadSettings(const ComponentSpec& c) {
  const json& s = c.settings;
  NatsSettings out;
  std::string where = "component " + c.name + " (nats): ";
  out.connect.url = StringSetting(s, "url");
  if (out.connect.url.empty()) {
    return Status::InvalidArgument(where + "url is required, e.g. nats://127.0.0.1:4222");
  }
  out.monitor = StringSetting(s, "monitor");
  while (!out.monitor.empty() && out.monitor.back() == '/') out.monitor.pop_back();
  auto streams = s.find("streams");
  if (streams != s.end() && streams->is_string()) {
    out.streams.push_back(streams->get<std::string>());
  } else if (streams != s.end() && streams->is_array()) {
    for (const auto& v : *streams) {
      if (v.is_string()) out.streams.push_back(v.get<std::string>());
    }
  }
  if (out.streams.empty()) {
    return Status::InvalidArgument(where + "streams is required: the JetStream streams to restore");
  }
  auto ct = DurationSettingMs(s, "connect_timeout", 5000);
  if (!ct.ok()) return ct.status().WithContext(where);
  auto rt = DurationSettingMs(s, "request_timeout", 10000);
  if (!rt.ok()) return rt.status().WithContext(where);
  out.connect.connect_timeout_ms = *ct > 0 ? *ct : 5000;
  out.connect.request_timeout_ms = *rt > 0 ? *rt : 10000;
  auto cs = s.find("chunk_size");
  if (cs != s.end() && cs->is_number_integer() && cs->get<int64_t>() > 0) {
    out.chunk_size = cs->get<int64_t>();
  }
  out.connect.credentials_file = StringSetting(s, "credentials");
  out.connect.user = StringSetting(s, "user");
  out.connect.password = StringSetting(s, "password");
  return out;
}

Result<std::unique_ptr<Connection>> Connect(const NatsSettings& s) {
  return Connection::Open(s.connect);
}

}  // namespace backstop::nats
