#include "drivers/nats/nats_driver.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <memory>
#include <set>

#include "probe.h"
#include "store.h"
#include "units.h"

namespace backstop::nats {
namespace {

using nlohmann::json;
using Type = SettingSchema::Type;

// --- Settings -----------------------------------------------------------------

struct NatsSettings {
  ConnectOptions connect;
  std::string monitor;  // http://host:port of the monitoring port, or empty
  std::vector<std::string> streams;
  int64_t chunk_size = 131072;
};

// Durations arrive converted to milliseconds; a raw string is accepted too.
Result<int64_t> DurationSetting(const json& s, const std::string& key, int64_t fallback) {
  auto it = s.find(key);
  if (it == s.end() || it->is_null()) return fallback;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    auto ms = ParseDurationMs(it->get<std::string>());
    if (ms) return *ms;
  }
  return Status::InvalidArgument(key + ": expected a duration such as \"5s\", got " + it->dump());
}

std::string StringSetting(const json& s, const std::string& key) {
  auto it = s.find(key);
  return it != s.end() && it->is_string() ? it->get<std::string>() : std::string();
}

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
  auto ct = DurationSetting(s, "connect_timeout", 5000);
  if (!ct.ok()) return ct.status().WithContext(where);
  auto rt = DurationSetting(s, "request_timeout", 10000);
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

// --- Entries --------------------------------------------------------------------

uint64_t U64(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer())
    return static_cast<uint64_t>(std::max<int64_t>(0, it->get<int64_t>()));
  return static_cast<uint64_t>(it->get<double>());
}

struct Position {
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t messages = 0;
  uint64_t bytes = 0;
  json ToJson() const {
    return {
        {"first_seq", first_seq}, {"last_seq", last_seq}, {"messages", messages}, {"bytes", bytes}};
  }
  std::string Describe() const {
    return FormatThousands(messages) + " messages, sequences " + std::to_string(first_seq) + ".." +
           std::to_string(last_seq);
  }
};

// From a stream state ("messages", "first_seq", ...) or a recorded "position".
Position PositionOf(const json& state) {
  Position p;
  p.first_seq = U64(state, "first_seq");
  p.last_seq = U64(state, "last_seq");
  p.messages = U64(state, "messages");
  p.bytes = U64(state, "bytes");
  return p;
}

bool SamePosition(const Position& a, const Position& b) {
  return a.messages == b.messages && a.last_seq == b.last_seq &&
         (a.messages == 0 || a.first_seq == b.first_seq);
}

// The stream records of an entry, validated: each has a blob, config, state, position.
Result<std::map<std::string, json>> EntryStreams(const json& entry, const std::string& component) {
  std::map<std::string, json> out;
  if (!entry.is_object() || !entry.contains("streams") || !entry["streams"].is_object()) {
    return Status::InvalidArgument("component " + component +
                                   ": the restore point's entry has no \"streams\" object");
  }
  for (const auto& [name, rec] : entry["streams"].items()) {
    if (!rec.is_object() || !rec.contains("blob") || !rec["blob"].is_string() ||
        !rec.contains("config") || !rec.contains("state") || !rec.contains("position")) {
      return Status::InvalidArgument("component " + component + ": stream " + name +
                                     ": the restore point's record lacks blob, config, state or "
                                     "position");
    }
    out[name] = rec;
  }
  return out;
}

// --- Files ------------------------------------------------------------------------

std::string ComponentDir(const DriverContext& ctx, const std::string& component) {
  return JoinPath(JoinPath(ctx.state_dir, "components"), component);
}

// A directory for snapshot files in transit (kept out of the run directory).
Result<std::string> WorkDir(const DriverContext& ctx, const std::string& component) {
  std::string dir;
  if (!ctx.state_dir.empty()) {
    dir = JoinPath(ComponentDir(ctx, component), "tmp");
  } else if (ctx.store != nullptr) {
    dir = JoinPath(ctx.store->root(), "tmp");
  } else {
    return Status::InvalidArgument("component " + component + ": no state directory or store");
  }
  BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->CreateDirs(dir));
  return dir;
}

std::string TempName(const std::string& dir, const std::string& stream, const char* what) {
  static std::atomic<uint64_t> counter{0};
  return JoinPath(dir, stream + "." + what + "." + std::to_string(::getpid()) + "." +
                           std::to_string(counter.fetch_add(1)));
}

// Removes a temporary file when it goes out of scope.
class TempFile {
 public:
  TempFile(FileSystem* fs, std::string path) : fs_(fs), path_(std::move(path)) {}
  ~TempFile() { (void)fs_->Remove(path_); }
  const std::string& path() const { return path_; }

 private:
  FileSystem* fs_;
  std::string path_;
};

// A JSONL file written through a temporary name and renamed into place when
// complete, so a crash never leaves a half-written ledger under the real name.
class LedgerWriter {
 public:
  static Result<std::unique_ptr<LedgerWriter>> Open(const std::string& path) {
    std::unique_ptr<LedgerWriter> w(new LedgerWriter());
    w->path_ = path;
    w->tmp_ = path + ".tmp-" + std::to_string(::getpid());
    w->f_ = ::fopen(w->tmp_.c_str(), "we");
    if (w->f_ == nullptr) return Status::FromErrno("open " + w->tmp_, errno);
    // The ledger names the discarded messages: private whatever the umask.
    if (::fchmod(::fileno(w->f_), 0600) != 0) return Status::FromErrno("chmod " + w->tmp_, errno);
    return w;
  }
  ~LedgerWriter() {
    if (f_ != nullptr) {
      ::fclose(f_);
      ::unlink(tmp_.c_str());
    }
  }
  Status Write(const json& line) {
    std::string text = line.dump() + "\n";
    if (::fwrite(text.data(), 1, text.size(), f_) != text.size()) {
      return Status::FromErrno("write " + tmp_, errno);
    }
    ++lines_;
    return Status::OK();
  }
  Status Commit(FileSystem* fs) {
    if (::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0) {
      return Status::FromErrno("flush " + tmp_, errno);
    }
    ::fclose(f_);
    f_ = nullptr;
    BACKSTOP_RETURN_IF_ERROR(fs->Rename(tmp_, path_));
    return fs->SyncDir(Dirname(path_));
  }
  uint64_t lines() const { return lines_; }

 private:
  LedgerWriter() = default;
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  uint64_t lines_ = 0;
};

// A ledger line for a message published after the restore point.
json PublishedLine(const std::string& stream, const MessageMeta& m) {
  return {{"stream", stream},
          {"event", "published"},
          {"sequence", m.sequence},
          {"subject", m.subject},
          {"time", FormatRfc3339(m.time_ns / 1000, true)},
          {"size", m.size}};
}

// --- Capture and restore of one stream ------------------------------------------

// Snapshots `stream` into the store; returns its record (see nats_driver.h).
Result<json> CaptureStream(Connection& conn, const NatsSettings& settings,
                           const std::string& stream, const ComponentSpec& c, DriverContext& ctx) {
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
  Position pos = PositionOf(snap->state);
  return json{{"blob", *digest},
              {"snapshot_bytes", snap->bytes},
              {"config", snap->config},
              {"state", snap->state},
              {"created", info->value("created", std::string())},
              {"consumers", cons},
              {"position", pos.ToJson()}};
}

// Names of the record's consumers that the live stream lacks.
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

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Checks the live stream against a record: count, first and last sequence, consumers.
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
    return Status::FailedPrecondition("stream " + stream +
                                      ": consumers missing: " + JoinNames(missing));
  }
  return Status::OK();
}

Status DeleteIfPresent(Connection& conn, const std::string& stream) {
  Status st = DeleteStream(conn, stream);
  if (st.ok() || st.IsNotFound()) return Status::OK();
  return st.WithContext("deleting stream " + stream);
}

// Creates `stream` from the snapshot in `rec` (restore point or saved content)
// and verifies it. REQUIRES: the stream does not exist.
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

// After a failed restore: removes what the server made and puts the saved
// content back. Returns the error to report (always non-OK).
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

// --- Health state -----------------------------------------------------------------

std::string HealthStatePath(const DriverContext& ctx, const std::string& component) {
  if (ctx.state_dir.empty()) return "";
  return JoinPath(ComponentDir(ctx, component), "nats-health.json");
}

json LoadJsonFile(FileSystem* fs, const std::string& path) {
  if (path.empty()) return json::object();
  auto text = fs->ReadFile(path);
  if (!text.ok()) return json::object();
  try {
    json j = json::parse(*text);
    return j.is_object() ? j : json::object();
  } catch (const std::exception&) {
    return json::object();
  }
}

Status SaveJsonFile(FileSystem* fs, const std::string& path, const json& j) {
  if (path.empty()) return Status::OK();
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(path)));
  return fs->WriteFileAtomic(path, j.dump(2) + "\n", 0600);
}

}  // namespace

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

// --- Snapshot, Describe, Prepare ------------------------------------------------

Result<json> NatsDriver::Snapshot(const ComponentSpec& c, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  json entry = {
      {"url", conn->display_url()}, {"streams", json::object()}, {"blobs", json::array()}};
  for (const auto& stream : settings.streams) {
    BACKSTOP_ASSIGN_OR_RETURN(json rec, CaptureStream(*conn, settings, stream, c, ctx));
    entry["blobs"].push_back(rec["blob"]);
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

// --- AssessLoss -------------------------------------------------------------------

Result<DataLossReport> NatsDriver::AssessLoss(const ComponentSpec& c, const json& entry,
                                              DriverContext& ctx) {
  ledger_taken_.reset();
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto streams, EntryStreams(entry, c.name));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  std::unique_ptr<LedgerWriter> ledger;
  std::string ledger_path;
  // Streams an earlier attempt of this run already restored (resumed run):
  // what they discarded is gone from the server, so their lines are kept
  // from the ledger that attempt wrote.
  std::vector<json> earlier_lines;
  json saved;
  if (!ctx.run_dir.empty()) {
    BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->CreateDirs(ctx.run_dir));
    ledger_path = JoinPath(ctx.run_dir, "ledger-" + c.name + ".jsonl");
    BACKSTOP_ASSIGN_OR_RETURN(earlier_lines, ReadJsonLines(ctx.env->fs(), ledger_path));
    saved = LoadJsonFile(ctx.env->fs(), SavedRecordPath(ctx.run_dir, c.name));
    BACKSTOP_ASSIGN_OR_RETURN(ledger, LedgerWriter::Open(ledger_path));
  }
  LedgerTaken taken;
  taken.run_id = ctx.run_id;
  taken.path = ledger_path;
  DataLossReport report;
  for (const auto& [stream, rec] : streams) {
    DataLossItem item;
    item.component = c.name;
    item.object = stream;
    item.unit = "messages";
    auto info = GetStreamInfo(*conn, stream);
    if (info.status().IsNotFound()) {
      // Nothing live to discard: the restore brings the stream back.
      report.items.push_back(item);
      continue;
    }
    if (!info.ok()) return info.status().WithContext("stream " + stream);
    Position then = PositionOf(rec["position"]);
    Position now = PositionOf((*info)["state"]);
    const bool restored_earlier = saved.contains("streams") && saved["streams"].is_object() &&
                                  saved["streams"].contains(stream) && SamePosition(now, then);
    if (restored_earlier) {
      for (const auto& l : earlier_lines) {
        if (l.value("stream", "") != stream) continue;
        if (ledger) BACKSTOP_RETURN_IF_ERROR(ledger->Write(l));
        if (l.value("event", "") == "published") {
          ++item.inserted;
        } else {
          item.deleted += l.value("count", uint64_t{0});
        }
      }
      report.items.push_back(item);
      continue;
    }
    taken.listed_to[stream] = now.last_seq;
    // The sequence went backwards: the stream was deleted and re-created.
    bool recreated = now.last_seq < then.last_seq;
    uint64_t from = recreated ? now.first_seq : then.last_seq + 1;
    uint64_t published = 0;
    Status walk = ForEachMessage(*conn, stream, from, now.last_seq, [&](const MessageMeta& m) {
      ++published;
      if (!ledger) return Status::OK();
      return ledger->Write(PublishedLine(stream, m));
    });
    if (!walk.ok()) return walk.WithContext("ledger of stream " + stream);
    uint64_t deleted = 0;
    if (recreated) {
      deleted = then.messages;
    } else {
      uint64_t old_present = now.messages > published ? now.messages - published : 0;
      deleted = then.messages > old_present ? then.messages - old_present : 0;
    }
    if (deleted > 0 && ledger) {
      BACKSTOP_RETURN_IF_ERROR(ledger->Write({{"stream", stream},
                                              {"event", recreated ? "recreated" : "deleted"},
                                              {"count", deleted},
                                              {"restore_point_first_seq", then.first_seq},
                                              {"restore_point_last_seq", then.last_seq},
                                              {"first_seq_now", now.first_seq}}));
    }
    item.inserted = published;
    item.deleted = deleted;
    report.items.push_back(item);
  }
  if (ledger) {
    bool any = ledger->lines() > 0;
    BACKSTOP_RETURN_IF_ERROR(ledger->Commit(ctx.env->fs()));
    if (any) report.ledger_files.push_back(ledger_path);
  }
  if (!ctx.run_id.empty()) {
    taken.report = report;
    ledger_taken_ = std::move(taken);
  }
  return report;
}

Result<uint64_t> NatsDriver::ListLatePublishes(Connection& conn, const std::string& stream,
                                               uint64_t last_seq, DriverContext& ctx) {
  if (!ledger_taken_ || ledger_taken_->run_id != ctx.run_id) return uint64_t{0};
  auto it = ledger_taken_->listed_to.find(stream);
  if (it == ledger_taken_->listed_to.end() || last_seq <= it->second) return uint64_t{0};
  std::vector<json> late;
  BACKSTOP_RETURN_IF_ERROR(
      ForEachMessage(conn, stream, it->second + 1, last_seq, [&](const MessageMeta& m) {
        late.push_back(PublishedLine(stream, m));
        return Status::OK();
      }));
  it->second = last_seq;
  if (late.empty()) return uint64_t{0};
  ctx.Progress("nats: " + std::to_string(late.size()) + " message(s) reached stream " + stream +
               " after the ledger was taken: listed");
  DataLossReport& r = ledger_taken_->report;
  if (!ledger_taken_->path.empty()) {
    // The whole ledger again, atomically: a resumed run reads it back.
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<json> lines,
                              ReadJsonLines(ctx.env->fs(), ledger_taken_->path));
    BACKSTOP_ASSIGN_OR_RETURN(auto w, LedgerWriter::Open(ledger_taken_->path));
    for (const auto& l : lines) BACKSTOP_RETURN_IF_ERROR(w->Write(l));
    for (const auto& l : late) BACKSTOP_RETURN_IF_ERROR(w->Write(l));
    BACKSTOP_RETURN_IF_ERROR(w->Commit(ctx.env->fs()));
    if (r.ledger_files.empty()) r.ledger_files.push_back(ledger_taken_->path);
  }
  for (auto& item : r.items) {
    if (item.object == stream) item.inserted += late.size();
  }
  revised_loss_ = r;
  return static_cast<uint64_t>(late.size());
}

// --- Restore ----------------------------------------------------------------------

Status NatsDriver::Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) {
  revised_loss_.reset();
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto streams, EntryStreams(entry, c.name));
  if (ctx.run_dir.empty()) {
    return Status::InvalidArgument("component " + c.name +
                                   ": a nats restore needs a run directory for its saved content");
  }
  if (ctx.store == nullptr) return Status::InvalidArgument("nats restore: no store");
  if (ctx.dry_run) return Status::OK();
  FileSystem* fs = ctx.env->fs();
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(ctx.run_dir));
  const std::string saved_path = SavedRecordPath(ctx.run_dir, c.name);
  json saved = LoadJsonFile(fs, saved_path);
  if (!saved.contains("streams") || !saved["streams"].is_object())
    saved["streams"] = json::object();

  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  for (const auto& [stream, rec] : streams) {
    Position target = PositionOf(rec["position"]);
    auto info = GetStreamInfo(*conn, stream);
    if (!info.ok() && !info.status().IsNotFound()) {
      return info.status().WithContext("stream " + stream);
    }
    const bool exists = info.ok();
    Position now = exists ? PositionOf((*info)["state"]) : Position{};
    bool have_saved = saved["streams"].contains(stream);

    if (have_saved && exists && SamePosition(now, target)) {
      BACKSTOP_ASSIGN_OR_RETURN(auto missing, MissingConsumers(*conn, stream, rec));
      if (missing.empty()) {
        ctx.Progress("nats: stream " + stream + " already restored (" + target.Describe() + ")");
        continue;
      }
    }

    // (1) Keep the current content. A resumed run reuses the record, unless
    // the stream holds neither the saved nor the restore point's content
    // (messages arrived after the save): then it is saved again.
    bool save = !have_saved;
    if (have_saved && exists) {
      const json& prev = saved["streams"][stream];
      bool was_saved_content = prev.value("existed", false) && prev.contains("position") &&
                               SamePosition(now, PositionOf(prev["position"]));
      if (!was_saved_content && now.last_seq != target.last_seq) save = true;
    }
    auto save_current = [&]() -> Status {
      json record;
      if (exists) {
        auto captured = CaptureStream(*conn, settings, stream, c, ctx);
        if (!captured.ok()) {
          return captured.status().WithContext("saving the current content of stream " + stream +
                                               " before the rollback (nothing was changed)");
        }
        record = std::move(*captured);
        record["existed"] = true;
      } else {
        record = {{"existed", false}};
      }
      if (have_saved) {
        json earlier = saved["streams"][stream].value("earlier", json::array());
        json prev = saved["streams"][stream];
        prev.erase("earlier");
        earlier.push_back(prev);
        record["earlier"] = earlier;
      }
      record["saved_at"] = FormatRfc3339(ctx.env->clock()->WallMicros(), true);
      saved["streams"][stream] = record;
      have_saved = true;
      return SaveJsonFile(fs, saved_path, saved);
    };
    if (save) BACKSTOP_RETURN_IF_ERROR(save_current());
    if (save && after_save_hook_) after_save_hook_(stream);

    // Messages published after the save would go with the stream, in
    // neither the saved content nor the ledger: the stream must still hold
    // exactly what was saved when it is deleted, else it is saved again.
    // Those published after the ledger was taken are added to it.
    if (exists && !SamePosition(now, target)) {
      for (int attempt = 0;; ++attempt) {
        auto again = GetStreamInfo(*conn, stream);
        if (!again.ok()) return again.status().WithContext("stream " + stream);
        now = PositionOf((*again)["state"]);
        const json& rec_saved = saved["streams"][stream];
        if (rec_saved.contains("position") &&
            SamePosition(now, PositionOf(rec_saved["position"]))) {
          break;
        }
        if (attempt == 3) {
          return Status::Aborted("stream " + stream + " keeps receiving messages (" +
                                 now.Describe() +
                                 "); stop its publishers, then resume the run (the stream was "
                                 "not changed)");
        }
        ctx.Progress("nats: stream " + stream +
                     " received messages after it was saved: saving it again");
        BACKSTOP_RETURN_IF_ERROR(save_current());
      }
      auto late = ListLatePublishes(*conn, stream, now.last_seq, ctx);
      if (!late.ok()) return late.status().WithContext("ledger of stream " + stream);
    }
    const json& saved_rec = saved["streams"][stream];

    // (2) Remove the live stream (the original, or a half-made one from an
    // interrupted attempt); its content is in the store.
    if (exists) {
      ctx.Progress("nats: deleting stream " + stream + " (" + now.Describe() + ", saved)");
      BACKSTOP_RETURN_IF_ERROR(DeleteIfPresent(*conn, stream));
    }

    // (3) and (4): restore from the restore point and verify.
    ctx.Progress("nats: restoring stream " + stream + " (" + target.Describe() + ")");
    Status st = RestoreFromRecord(*conn, settings, stream, rec, restore_hooks_, c, ctx);
    if (!st.ok()) {
      return PutBack(*conn, settings, stream, saved_rec, st, c, ctx)
          .WithContext("component " + c.name);
    }
  }
  return Status::OK();
}

Status NatsDriver::VerifyRestored(const ComponentSpec& c, const json& entry, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto streams, EntryStreams(entry, c.name));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  for (const auto& [stream, rec] : streams) {
    Status st = VerifyStream(*conn, stream, rec);
    if (!st.ok()) return st.WithContext("component " + c.name);
  }
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
  return ctx.env->fs()->Remove(SavedRecordPath(run_dir, c.name));
}

}  // namespace backstop::nats
