// The settings of a `nats` component (NatsDriverInfo lists them), and the
// connection they describe.
//
// Thread-safety: the functions are safe to call from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "drivers/nats/nats_client.h"
#include "spec/spec.h"

namespace backstop::nats {

struct NatsSettings {
  ConnectOptions connect;
  std::string monitor;  // http://host:port of the monitoring port, or empty
  std::vector<std::string> streams;
  int64_t chunk_size = 131072;
};

Result<NatsSettings> ReadSettings(const ComponentSpec& c);

Result<std::unique_ptr<Connection>> Connect(const NatsSettings& s);

}  // namespace backstop::nats
