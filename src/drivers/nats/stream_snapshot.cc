// Capture and restore of one stream. See stream_snapshot.h.
#include "drivers/nats/stream_snapshot.h"

#include <fstream>
#include <optional>
#include <set>

#include "base/strings.h"
#include "base/units.h"
#include "drivers/nats/message_loss.h"
#include "drivers/nats/nats_files.h"
#include "drivers/nats/stream_record.h"
#include "store/store.h"

namespace backstop::nats {

using nlohmann::json;

Result<json> CaptureStream(Connection& conn, const NatsSettings& settings,
                           const std::string& stream, const ComponentSpec& c, DriverContext& ctx,
                           bool with_index) {
  if (ctx.store == nullptr) return Status::InvalidArgument("nats snapshot: no store");
  auto info = GetStreamInfo(conn, stream);
  if (info.status().IsNotFound()) {
    return Status::NotFound("stream " + stream + " does not exist at " + conn.display_url() + " (" +
                            info.status().message() +
                            "); create it or remove it from the component's streams");
  }
  if (!info.ok()) return info.status().WithContext("stream " + stream);
  BACKSTOP_ASSIGN_OR_RETURN(std::string dir, WorkDir(ctx, c.name));
  TempFile tmp(ctx.env->fs(), TempName(dir, stream, "snapshot"));
  ctx.Progress("nats: snapshot of stream " + stream + " (" +
               FormatThousands(U64((*info)["state"], "messages")) + " messages)");
  auto snap = SnapshotStreamToFile(conn, stream, settings.chunk_size, tmp.path());
  if (!snap.ok()) return snap.status().WithContext("snapshot of stream " + stream);
  BACKSTOP_ASSIGN_OR_RETURN(auto consumers, ListConsumers(conn, stream));
  auto digest = ctx.store->PutFile(tmp.path());
  if (!digest.ok()) return digest.status().WithContext("storing the snapshot of stream " + stream);
  Position pos = PositionOf(snap->state);

  // The index of the snapshot's messages (sequence and digest, one a line),
  // so that a later rollback compares contents rather than sequence numbers.
  // Complete only if no message went between the snapshot and this walk.
  std::optional<std::string> index_digest;
  if (with_index) {
    TempFile index(ctx.env->fs(), TempName(dir, stream, "index"));
    std::ofstream out(index.path(), std::ios::trunc);
    uint64_t indexed = 0;
    Status walk = ForEachMessage(
        conn, stream, pos.first_seq, pos.last_seq,
        [&](const MessageMeta& m) {
          out << m.sequence << ' ' << MessageDigest(m) << '\n';
          ++indexed;
          return Status::OK();
        },
        /*with_payload=*/true);
    out.close();
    if (!walk.ok()) return walk.WithContext("message index of stream " + stream);
    if (!out) return Status::IOError("writing the message index of stream " + stream);
    if (indexed == pos.messages) {
      auto stored = ctx.store->PutFile(index.path());
      if (!stored.ok()) return stored.status().WithContext("storing the index of stream " + stream);
      index_digest = *stored;
    }
  }

  json cons = json::object();
  for (const auto& ci : consumers) {
    std::string name = ci.value("name", std::string());
    if (name.empty()) continue;
    json rec = {{"config", ci.value("config", json::object())}};
    for (const char* key : {"delivered", "ack_floor", "num_pending", "num_ack_pending",
                            "num_redelivered", "created"}) {
      if (ci.contains(key)) rec[key] = ci[key];
    }
    cons[name] = rec;
  }
  json rec = {{"blob", *digest},
              {"snapshot_bytes", snap->bytes},
              {"config", snap->config},
              {"state", snap->state},
              {"created", info->value("created", std::string())},
              {"consumers", cons},
              {"position", pos.ToJson()}};
  if (index_digest) rec["index_blob"] = *index_digest;
  return rec;
}

Result<std::vector<std::string>> MissingConsumers(Connection& conn, const std::string& stream,
                                                  const json& rec) {
  std::vector<std::string> missing;
  if (!rec.contains("consumers") || !rec["consumers"].is_object() || rec["consumers"].empty()) {
    return missing;
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ListConsumers(conn, stream));
  std::set<std::string> names;
  for (const auto& ci : live) names.insert(ci.value("name", std::string()));
  for (const auto& [name, unused] : rec["consumers"].items()) {
    if (!names.count(name)) missing.push_back(name);
  }
  return missing;
}

Status VerifyStream(Connection& conn, const std::string& stream, const json& rec) {
  auto info = GetStreamInfo(conn, stream);
  if (!info.ok()) return info.status().WithContext("stream " + stream);
  Position want = PositionOf(rec["position"]);
  Position got = PositionOf((*info)["state"]);
  if (!SamePosition(want, got)) {
    return Status::FailedPrecondition("stream " + stream + ": expected " + want.Describe() +
                                      ", found " + got.Describe());
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto missing, MissingConsumers(conn, stream, rec));
  if (!missing.empty()) {
    return Status::FailedPrecondition("stream " + stream + ": consumers missing: " + Join(missing));
  }
  return Status::OK();
}

Status DeleteIfPresent(Connection& conn, const std::string& stream) {
  Status st = DeleteStream(conn, stream);
  if (st.ok() || st.IsNotFound()) return Status::OK();
  return st.WithContext("deleting stream " + stream);
}

Status RestoreFromRecord(Connection& conn, const NatsSettings& settings, const std::string& stream,
                         const json& rec, const RestoreHooks& hooks, const ComponentSpec& c,
                         DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string dir, WorkDir(ctx, c.name));
  TempFile tmp(ctx.env->fs(), TempName(dir, stream, "restore"));
  std::string digest = rec["blob"].get<std::string>();
  Status st = ctx.store->GetToFile(digest, tmp.path(), 0600);
  if (!st.ok()) return st.WithContext("reading snapshot blob " + digest + " of stream " + stream);
  auto restored = RestoreStreamFromFile(conn, stream, rec["config"], rec["state"], tmp.path(),
                                        settings.chunk_size, hooks);
  if (!restored.ok()) return restored.status();
  return VerifyStream(conn, stream, rec);
}

Status PutBack(Connection& conn, const NatsSettings& settings, const std::string& stream,
               const json& saved, const Status& cause, const ComponentSpec& c, DriverContext& ctx) {
  std::string what =
      "restoring stream " + stream + " from the restore point failed: " + cause.message();
  Status deleted = DeleteIfPresent(conn, stream);
  if (!saved.value("existed", false)) {
    if (!deleted.ok()) {
      return Status(cause).WithContext(
          what + "; removing the half-made stream failed too: " + deleted.message());
    }
    return Status::FailedPrecondition(
        what + "; the stream did not exist before the rollback and the half-made one was removed");
  }
  Status put = deleted;
  for (int attempt = 0; attempt < 3 && deleted.ok(); ++attempt) {
    ctx.Progress("nats: putting back the previous content of stream " + stream);
    put = RestoreFromRecord(conn, settings, stream, saved, RestoreHooks{}, c, ctx);
    if (put.ok()) break;
    // A restore the server finished late may occupy the name: remove and retry.
    deleted = DeleteIfPresent(conn, stream);
  }
  if (put.ok()) {
    return Status::FailedPrecondition(what + "; the stream's previous content is back (" +
                                      PositionOf(saved["position"]).Describe() + ")");
  }
  return Status::Internal(what + "; putting back its previous content failed too: " +
                          put.message() + "; that content is kept in the store as blob " +
                          saved.value("blob", std::string()) + " (snapshot of stream " + stream +
                          ", restore it with $JS.API.STREAM.RESTORE." + stream + ")");
}

}  // namespace backstop::nats
