// The `nats` driver: registration, snapshot, describe, prepare, health,
// integrity checks and prune. Restore, AssessLoss and Salvage have their own
// files (nats_restore.cc, message_loss.cc, nats_salvage.cc). See nats_driver.h.
#include "drivers/nats/nats_driver.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "base/units.h"
#include "drivers/nats/message_loss.h"
#include "drivers/nats/nats_files.h"
#include "drivers/nats/nats_settings.h"
#include "drivers/nats/stream_record.h"
#include "drivers/nats/stream_snapshot.h"
#include "probe/probe.h"
#include "store/store.h"

namespace backstop::nats {

using nlohmann::json;
using Type = SettingSchema::Type;

// --- Registration -----------------------------------------------------------------

DriverInfo NatsDriverInfo() {
  DriverInfo info;
  info.name = "nats";
  info.own_health = true;
  info.kinds = {"stream"};
  info.summary =
      "NATS JetStream streams: snapshots with consumers through the JetStream API, rollback that "
      "saves the current content first, data-loss ledger of messages, connection health";
  info.settings = {
      MakeSetting("url", Type::kString, true, "the NATS server URL, e.g. nats://127.0.0.1:4222"),
      MakeSetting(
          "monitor", Type::kString, false,
          "the monitoring port's URL, e.g. http://127.0.0.1:8222 (its /healthz is checked)"),
      MakeSetting("streams", Type::kStringList, true,
                  "the JetStream streams to snapshot and restore, e.g. [ORDERS, EVENTS]"),
      MakeSetting("connect_timeout", Type::kDuration, false,
                  "how long a connection attempt may take, e.g. 5s", "5s"),
      MakeSetting("request_timeout", Type::kDuration, false,
                  "how long to wait for a JetStream API reply or a snapshot chunk, e.g. 10s",
                  "10s"),
      MakeSetting("chunk_size", Type::kInt, false,
                  "snapshot and restore chunk size in bytes (below the server's max_payload)",
                  131072),
      MakeSetting("credentials", Type::kPath, false, "a NATS .creds file (JWT and NKey seed)"),
      MakeSetting("user", Type::kString, false, "user name for the NATS connection"),
      MakeSetting("password", Type::kString, false, "password for the NATS connection"),
  };
  info.factory = [] { return std::make_unique<NatsDriver>(); };
  return info;
}

std::string NatsDriver::SavedRecordPath(const std::string& run_dir, const std::string& component) {
  return JoinPath(run_dir, "nats-" + component + "-saved.json");
}

std::string NatsDriver::DiscardedPath(const std::string& run_dir, const std::string& component) {
  return JoinPath(run_dir, "nats-" + component + "-discarded.jsonl");
}

std::string NatsDriver::RepublishedPath(const std::string& run_dir, const std::string& component) {
  return JoinPath(run_dir, "nats-" + component + "-republished.jsonl");
}

// --- Snapshot, Describe, Prepare ------------------------------------------------

Result<json> NatsDriver::Snapshot(const ComponentSpec& c, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  json entry = {
      {"url", conn->display_url()}, {"streams", json::object()}, {"blobs", json::array()}};
  for (const auto& stream : settings.streams) {
    BACKSTOP_ASSIGN_OR_RETURN(json rec, CaptureStream(*conn, settings, stream, c, ctx,
                                                      /*with_index=*/true));
    entry["blobs"].push_back(rec["blob"]);
    if (rec.contains("index_blob")) entry["blobs"].push_back(rec["index_blob"]);
    entry["streams"][stream] = std::move(rec);
  }
  return entry;
}

Result<json> NatsDriver::Describe(const ComponentSpec& c, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  json out = {{"url", conn->display_url()}, {"streams", json::object()}};
  for (const auto& stream : settings.streams) {
    auto info = GetStreamInfo(*conn, stream);
    if (info.status().IsNotFound()) {
      out["streams"][stream] = {{"exists", false}};
      continue;
    }
    if (!info.ok()) return info.status().WithContext("stream " + stream);
    BACKSTOP_ASSIGN_OR_RETURN(auto consumers, ListConsumers(*conn, stream));
    json names = json::array();
    for (const auto& ci : consumers) names.push_back(ci.value("name", std::string()));
    json d = PositionOf((*info)["state"]).ToJson();
    d["exists"] = true;
    d["consumers"] = names;
    out["streams"][stream] = d;
  }
  return out;
}

Status NatsDriver::Prepare(const ComponentSpec& c, const json& entry, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto streams, EntryStreams(entry, c.name));
  for (const auto& [stream, rec] : streams) {
    std::string digest = rec["blob"].get<std::string>();
    if (ctx.store == nullptr || !ctx.store->Has(digest)) {
      return Status::NotFound("component " + c.name + ": the snapshot of stream " + stream +
                              " (blob " + digest + ") is missing from the store");
    }
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  // Reachable and JetStream answering.
  auto account = conn->ApiRequest("$JS.API.INFO", json());
  if (!account.ok()) return account.status().WithContext("component " + c.name);
  return Status::OK();
}

// --- Health -----------------------------------------------------------------------

HealthResult NatsDriver::Health(const ComponentSpec& c, DriverContext& ctx) {
  HealthResult r;
  auto settings = ReadSettings(c);
  if (!settings.ok()) {
    r.state = HealthResult::State::kUnknown;
    r.detail = settings.status().message();
    return r;
  }
  Clock* clock = ctx.env->clock();
  const int64_t start_us = clock->NowMicros();
  const int64_t now_wall = clock->WallMicros();
  auto conn = Connect(*settings);
  const int64_t connect_ms = std::max<int64_t>(0, (clock->NowMicros() - start_us) / 1000);
  r.signals["connect_time_ms"] = static_cast<double>(connect_ms);
  const std::string state_path = HealthStatePath(ctx, c.name);
  FileSystem* fs = ctx.env->fs();

  if (!conn.ok()) {
    json persisted = LoadJsonFile(fs, state_path);
    std::optional<int64_t> last = last_connected_wall_us_;
    if (persisted.contains("last_connected_wall_us")) {
      int64_t p = persisted["last_connected_wall_us"].get<int64_t>();
      if (!last || p > *last) last = p;
    }
    int64_t since = now_wall;
    if (last) {
      since = *last;
    } else if (persisted.contains("disconnected_since_wall_us")) {
      since = persisted["disconnected_since_wall_us"].get<int64_t>();
    } else {
      // Never seen connected: count from the first failed check.
      persisted["disconnected_since_wall_us"] = now_wall;
      (void)SaveJsonFile(fs, state_path, persisted);
    }
    r.state = HealthResult::State::kFail;
    r.latency_ms = connect_ms;
    r.signals["disconnected_ms"] =
        static_cast<double>(std::max<int64_t>(0, now_wall - since) / 1000);
    r.detail = conn.status().message();
    return r;
  }

  last_connected_wall_us_ = now_wall;
  (void)SaveJsonFile(fs, state_path, json{{"last_connected_wall_us", now_wall}});
  r.signals["disconnected_ms"] = 0;

  std::vector<std::string> problems;
  auto account = (*conn)->ApiRequest("$JS.API.INFO", json());
  if (!account.ok()) problems.push_back(account.status().message());
  std::string monitor_detail;
  if (!settings->monitor.empty()) {
    ProbeSpec probe;
    probe.type = ProbeSpec::Type::kHttp;
    probe.target = settings->monitor + "/healthz";
    probe.timeout_ms = settings->connect.request_timeout_ms;
    HealthResult h = RunProbe(probe, ctx.env);
    r.signals["monitor_latency_ms"] = static_cast<double>(h.latency_ms);
    if (h.pass()) {
      monitor_detail = "; /healthz " + h.detail;
    } else {
      problems.push_back(probe.target + ": " + h.detail);
    }
  }
  r.latency_ms = std::max<int64_t>(0, (clock->NowMicros() - start_us) / 1000);
  if (problems.empty()) {
    r.state = HealthResult::State::kPass;
    r.detail = "connected to " + (*conn)->display_url() + "; JetStream ok" + monitor_detail;
  } else {
    r.state = HealthResult::State::kFail;
    std::string joined;
    for (const auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
    r.detail = "connected to " + (*conn)->display_url() + " but " + joined;
  }
  return r;
}

// --- CheckIntegrity, Prune ---------------------------------------------------------

Result<std::vector<IntegrityCheck>> NatsDriver::CheckIntegrity(const ComponentSpec& c,
                                                               const json& entry,
                                                               DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  std::vector<IntegrityCheck> checks;
  auto conn = Connect(settings);
  if (!conn.ok()) {
    checks.push_back(
        {"connect " + RedactUrl(settings.connect.url), false, conn.status().message()});
    return checks;
  }
  std::map<std::string, json> recorded;
  if (!entry.is_null()) {
    BACKSTOP_ASSIGN_OR_RETURN(recorded, EntryStreams(entry, c.name));
  }
  std::vector<std::string> names = settings.streams;
  for (const auto& [name, unused] : recorded) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  for (const auto& stream : names) {
    auto info = GetStreamInfo(**conn, stream);
    if (!info.ok()) {
      checks.push_back({"stream " + stream + " exists", false, info.status().message()});
      continue;
    }
    Position now = PositionOf((*info)["state"]);
    checks.push_back({"stream " + stream + " exists", true, now.Describe()});
    auto it = recorded.find(stream);
    if (it == recorded.end()) continue;
    Position want = PositionOf(it->second["position"]);
    checks.push_back({"message count " + stream, now.messages == want.messages,
                      "expected " + FormatThousands(want.messages) + ", found " +
                          FormatThousands(now.messages)});
    checks.push_back(
        {"last sequence " + stream, now.last_seq == want.last_seq,
         "expected " + std::to_string(want.last_seq) + ", found " + std::to_string(now.last_seq)});
    auto missing = MissingConsumers(**conn, stream, it->second);
    if (!missing.ok()) {
      checks.push_back({"consumers " + stream, false, missing.status().message()});
      continue;
    }
    if (it->second.contains("consumers") && it->second["consumers"].is_object()) {
      for (const auto& [name, unused] : it->second["consumers"].items()) {
        bool present = std::find(missing->begin(), missing->end(), name) == missing->end();
        checks.push_back(
            {"consumer " + stream + "/" + name, present, present ? "present" : "missing"});
      }
    }
  }
  return checks;
}

Status NatsDriver::Prune(const ComponentSpec& c, const std::string& run_id, DriverContext& ctx) {
  if (run_id.empty() || ctx.state_dir.empty()) return Status::OK();
  std::string run_dir = JoinPath(JoinPath(ctx.state_dir, "runs"), run_id);
  // The discarded messages go with the saved content, as the replaced
  // database goes for the postgres driver: salvage then says so.
  BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->Remove(DiscardedPath(run_dir, c.name)));
  BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->Remove(RepublishedPath(run_dir, c.name)));
  return ctx.env->fs()->Remove(SavedRecordPath(run_dir, c.name));
}

}  // namespace backstop::nats
