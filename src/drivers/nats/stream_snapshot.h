// Capture and restore of one stream: its snapshot ($JS.API.STREAM.SNAPSHOT)
// stored as a blob with its consumers and position (and optionally its
// message index), a restore from such a record with the check that follows,
// and putting the saved content back after a failed restore.
//
// Thread-safety: one thread per Connection.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/driver.h"
#include "drivers/nats/nats_client.h"
#include "drivers/nats/nats_settings.h"
#include "spec/spec.h"

namespace backstop::nats {

// Snapshots `stream` into the store; returns its record (see nats_driver.h).
// With `with_index`, also stores the index of its messages ("index_blob").
Result<nlohmann::json> CaptureStream(Connection& conn, const NatsSettings& settings,
                                     const std::string& stream, const ComponentSpec& c,
                                     DriverContext& ctx, bool with_index);

// Names of the record's consumers that the live stream lacks.
Result<std::vector<std::string>> MissingConsumers(Connection& conn, const std::string& stream,
                                                  const nlohmann::json& rec);

// Checks the live stream against a record: count, first and last sequence, consumers.
Status VerifyStream(Connection& conn, const std::string& stream, const nlohmann::json& rec);

Status DeleteIfPresent(Connection& conn, const std::string& stream);

// Creates `stream` from the snapshot in `rec` (restore point or saved content)
// and verifies it. REQUIRES: the stream does not exist.
Status RestoreFromRecord(Connection& conn, const NatsSettings& settings, const std::string& stream,
                         const nlohmann::json& rec, const RestoreHooks& hooks,
                         const ComponentSpec& c, DriverContext& ctx);

// After a failed restore: removes what the server made and puts the saved
// content back. Returns the error to report (always non-OK).
Status PutBack(Connection& conn, const NatsSettings& settings, const std::string& stream,
               const nlohmann::json& saved, const Status& cause, const ComponentSpec& c,
               DriverContext& ctx);

}  // namespace backstop::nats
