#include "drivers/nats/nats_driver.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "base/crash_point.h"
#include "base/hash.h"
#include "base/units.h"
#include "probe/probe.h"
#include "store/store.h"

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
    // Private (ledgers name what was discarded), and never through a link
    // planted under the temporary name.
    int fd = ::open(w->tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Status::FromErrno("open " + w->tmp_, errno);
    if (::fchmod(fd, 0600) != 0) {  // a leftover of a killed run may have had another mode
      int err = errno;
      ::close(fd);
      return Status::FromErrno("chmod " + w->tmp_, err);
    }
    w->f_ = ::fdopen(fd, "w");
    if (w->f_ == nullptr) {
      int err = errno;
      ::close(fd);
      return Status::FromErrno("open " + w->tmp_, err);
    }
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

// The consumers whose ack floor the restore moves back: each one's messages
// between the restore point's ack floor and the live one will be delivered
// again. By stream sequence, which does not count redeliveries.
Result<std::vector<PositionRewind>> ConsumerRewinds(Connection& conn, const std::string& stream,
                                                    const json& rec, const std::string& component) {
  std::vector<PositionRewind> out;
  if (!rec.contains("consumers") || !rec["consumers"].is_object()) return out;
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ListConsumers(conn, stream));
  for (const auto& ci : live) {
    std::string name = ci.value("name", std::string());
    auto then = rec["consumers"].find(name);
    if (name.empty() || then == rec["consumers"].end()) continue;
    uint64_t floor_now = U64(ci.value("ack_floor", json::object()), "stream_seq");
    uint64_t floor_then = U64(then->value("ack_floor", json::object()), "stream_seq");
    if (floor_now <= floor_then) continue;
    PositionRewind r;
    r.component = component;
    r.object = stream + "/" + name;
    r.unit = "messages redelivered";
    r.from = static_cast<int64_t>(floor_now);
    r.to = static_cast<int64_t>(floor_then);
    out.push_back(r);
  }
  return out;
}

// A ledger line for a consumer's ack floor moved back, and back again.
json RewoundLine(const std::string& stream, const PositionRewind& r) {
  return {{"stream", stream},
          {"event", "rewound"},
          {"consumer", r.object.substr(stream.size() + 1)},
          {"unit", r.unit},
          {"ack_floor_now", r.from},
          {"ack_floor_restored", r.to},
          {"count", r.count()}};
}

PositionRewind RewindOfLine(const json& line, const std::string& component) {
  PositionRewind r;
  r.component = component;
  r.object = line.value("stream", "") + "/" + line.value("consumer", "");
  r.unit = line.value("unit", "messages redelivered");
  r.from = line.value("ack_floor_now", int64_t{0});
  r.to = line.value("ack_floor_restored", int64_t{0});
  return r;
}

// A message's identity when contents are compared: a digest of its
// subject, headers and data (each length-prefixed), with its sequence.
std::string MessageDigest(const MessageMeta& m) {
  Sha256 h;
  auto add = [&h](std::string_view part) {
    h.Update(std::to_string(part.size()) + ":");
    h.Update(part);
  };
  add(m.subject);
  for (const auto& [key, value] : m.headers) {
    add(key);
    add(value);
  }
  add(m.data);
  return h.FinishHex().substr(0, 32);
}

// A discarded message as `backstop salvage` exports it.
json DiscardedLine(const std::string& stream, const MessageMeta& m) {
  json headers = json::array();
  for (const auto& [key, value] : m.headers) headers.push_back({key, value});
  return {{"stream", stream},     {"sequence", m.sequence},
          {"subject", m.subject}, {"time", FormatRfc3339(m.time_ns / 1000, true)},
          {"headers", headers},   {"data", Base64Encode(m.data)}};
}

// The restore point's message index (see CaptureStream), read in sequence
// order alongside a walk of the live stream.
class IndexReader {
 public:
  explicit IndexReader(const std::string& path) : in_(path) { Next(); }
  // The digest the restore point held at `seq`, or empty when it held no
  // message there. Calls come in increasing `seq` order.
  std::string DigestAt(uint64_t seq) {
    while (have_ && seq_ < seq) Next();
    return have_ && seq_ == seq ? digest_ : std::string();
  }
  // How many of the restore point's messages have a sequence <= `seq`.
  uint64_t CountThrough(uint64_t seq) {
    while (have_ && seq_ <= seq) Next();
    return passed_;
  }

 private:
  void Next() {
    if (have_) ++passed_;
    have_ = static_cast<bool>(in_ >> seq_ >> digest_);
  }
  std::ifstream in_;
  bool have_ = false;
  uint64_t seq_ = 0;
  uint64_t passed_ = 0;
  std::string digest_;
};

// --- Capture and restore of one stream ------------------------------------------

// Snapshots `stream` into the store; returns its record (see nats_driver.h).
// With `with_index`, also stores the index of its messages ("index_blob").
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
  std::vector<json> earlier_discarded;
  std::unique_ptr<LedgerWriter> discarded;  // the messages themselves, for salvage
  json saved;
  if (!ctx.run_dir.empty()) {
    BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->CreateDirs(ctx.run_dir));
    ledger_path = JoinPath(ctx.run_dir, "ledger-" + c.name + ".jsonl");
    const std::string discarded_path = NatsDriver::DiscardedPath(ctx.run_dir, c.name);
    BACKSTOP_ASSIGN_OR_RETURN(earlier_lines, ReadJsonLines(ctx.env->fs(), ledger_path));
    BACKSTOP_ASSIGN_OR_RETURN(earlier_discarded, ReadJsonLines(ctx.env->fs(), discarded_path));
    saved = LoadJsonFile(ctx.env->fs(), SavedRecordPath(ctx.run_dir, c.name));
    BACKSTOP_ASSIGN_OR_RETURN(ledger, LedgerWriter::Open(ledger_path));
    BACKSTOP_ASSIGN_OR_RETURN(discarded, LedgerWriter::Open(discarded_path));
  }
  LedgerTaken taken;
  taken.run_id = ctx.run_id;
  taken.path = ledger_path;
  if (!ctx.run_dir.empty()) taken.discarded_path = NatsDriver::DiscardedPath(ctx.run_dir, c.name);
  DataLossReport report;
  for (const auto& [stream, rec] : streams) {
    DataLossItem item;
    item.component = c.name;
    item.object = stream;
    item.unit = "messages";
    auto info = GetStreamInfo(*conn, stream);
    if (!info.ok() && !info.status().IsNotFound()) {
      return info.status().WithContext("stream " + stream);
    }
    if (saved.contains("streams") && saved["streams"].is_object() &&
        saved["streams"].contains(stream)) {
      // An earlier attempt of this run saved the stream and may have deleted
      // or replaced it since (a kill after the delete, during the restore):
      // what it discards is no longer on the server but in the saved
      // content, so the lines that attempt's ledger listed stand.
      // Up to where that ledger listed the stream, as recorded with the save
      // (older records: the restore point's last sequence).
      uint64_t listed_to = U64(saved["streams"][stream], "ledger_listed_to");
      const bool recorded = saved["streams"][stream].contains("ledger_listed_to");
      if (!recorded) listed_to = PositionOf(rec["position"]).last_seq;
      for (const auto& l : earlier_lines) {
        if (l.value("stream", "") != stream) continue;
        if (ledger) BACKSTOP_RETURN_IF_ERROR(ledger->Write(l));
        const std::string event = l.value("event", "");
        if (event == "published") {
          ++item.inserted;
          if (!recorded) listed_to = std::max(listed_to, l.value("sequence", uint64_t{0}));
        } else if (event == "rewound") {
          report.rewinds.push_back(RewindOfLine(l, c.name));
        } else {
          item.deleted += l.value("count", uint64_t{0});
        }
      }
      for (const auto& l : earlier_discarded) {
        if (discarded && l.value("stream", "") == stream) {
          BACKSTOP_RETURN_IF_ERROR(discarded->Write(l));
        }
      }
      // Messages that reach a stream still live after that ledger are
      // listed by the restore (ListLatePublishes) from here on.
      if (info.ok()) taken.listed_to[stream] = listed_to;
      report.items.push_back(item);
      continue;
    }
    if (info.status().IsNotFound()) {
      // Nothing live to discard: the restore brings the stream back.
      report.items.push_back(item);
      continue;
    }
    Position then = PositionOf(rec["position"]);
    Position now = PositionOf((*info)["state"]);
    taken.listed_to[stream] = now.last_seq;
    uint64_t published = 0;  // live messages the restore discards
    uint64_t deleted = 0;    // restore-point messages the live stream no longer holds
    std::string deleted_event = "deleted";
    auto discard = [&](const MessageMeta& m) -> Status {
      ++published;
      if (ledger) BACKSTOP_RETURN_IF_ERROR(ledger->Write(PublishedLine(stream, m)));
      if (discarded) BACKSTOP_RETURN_IF_ERROR(discarded->Write(DiscardedLine(stream, m)));
      return Status::OK();
    };
    if (rec.contains("index_blob") && rec["index_blob"].is_string()) {
      // Contents compared, message by message: a live message the restore
      // point holds at the same sequence with the same digest is kept, any
      // other is discarded (a live stream that is a prefix of the restore
      // point's discards nothing, whatever the sequences say).
      BACKSTOP_ASSIGN_OR_RETURN(std::string dir, WorkDir(ctx, c.name));
      TempFile index_file(ctx.env->fs(), TempName(dir, stream, "index"));
      std::string index_blob = rec["index_blob"].get<std::string>();
      Status got = ctx.store->GetToFile(index_blob, index_file.path(), 0600);
      if (!got.ok()) return got.WithContext("message index " + index_blob + " of stream " + stream);
      IndexReader index(index_file.path());
      uint64_t kept = 0;
      Status walk = ForEachMessage(
          *conn, stream, now.first_seq, now.last_seq,
          [&](const MessageMeta& m) {
            if (index.DigestAt(m.sequence) == MessageDigest(m)) {
              ++kept;
              return Status::OK();
            }
            return discard(m);
          },
          /*with_payload=*/true);
      if (!walk.ok()) return walk.WithContext("ledger of stream " + stream);
      uint64_t held = index.CountThrough(now.last_seq);
      deleted = held > kept ? held - kept : 0;
    } else {
      // A restore point without an index (taken by an older Backstop):
      // sequences are trusted. If the last sequence went backwards, the
      // stream was deleted and re-created.
      bool recreated = now.last_seq < then.last_seq;
      if (recreated) deleted_event = "recreated";
      uint64_t from = recreated ? now.first_seq : then.last_seq + 1;
      Status walk = ForEachMessage(*conn, stream, from, now.last_seq, discard,
                                   /*with_payload=*/discarded != nullptr);
      if (!walk.ok()) return walk.WithContext("ledger of stream " + stream);
      if (recreated) {
        deleted = then.messages;
      } else {
        uint64_t old_present = now.messages > published ? now.messages - published : 0;
        deleted = then.messages > old_present ? then.messages - old_present : 0;
      }
    }
    if (deleted > 0 && ledger) {
      BACKSTOP_RETURN_IF_ERROR(ledger->Write({{"stream", stream},
                                              {"event", deleted_event},
                                              {"count", deleted},
                                              {"restore_point_first_seq", then.first_seq},
                                              {"restore_point_last_seq", then.last_seq},
                                              {"first_seq_now", now.first_seq}}));
    }
    item.inserted = published;
    item.deleted = deleted;
    report.items.push_back(item);
    BACKSTOP_ASSIGN_OR_RETURN(auto rewinds, ConsumerRewinds(*conn, stream, rec, c.name));
    for (const auto& r : rewinds) {
      if (ledger) BACKSTOP_RETURN_IF_ERROR(ledger->Write(RewoundLine(stream, r)));
      report.rewinds.push_back(r);
    }
  }
  if (discarded) BACKSTOP_RETURN_IF_ERROR(discarded->Commit(ctx.env->fs()));
  if (ledger) {
    bool any = ledger->lines() > 0;
    BACKSTOP_RETURN_IF_ERROR(ledger->Commit(ctx.env->fs()));
    if (any) report.ledger_files.push_back(ledger_path);
    CrashPointForTest("nats.after-ledger");
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
  std::vector<json> late_messages;
  BACKSTOP_RETURN_IF_ERROR(ForEachMessage(
      conn, stream, it->second + 1, last_seq,
      [&](const MessageMeta& m) {
        late.push_back(PublishedLine(stream, m));
        late_messages.push_back(DiscardedLine(stream, m));
        return Status::OK();
      },
      /*with_payload=*/true));
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
    // The messages first: a ledger line never lacks its message.
    const std::string& discarded_path = ledger_taken_->discarded_path;
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<json> kept, ReadJsonLines(ctx.env->fs(), discarded_path));
    BACKSTOP_ASSIGN_OR_RETURN(auto d, LedgerWriter::Open(discarded_path));
    for (const auto& l : kept) BACKSTOP_RETURN_IF_ERROR(d->Write(l));
    for (const auto& l : late_messages) BACKSTOP_RETURN_IF_ERROR(d->Write(l));
    BACKSTOP_RETURN_IF_ERROR(d->Commit(ctx.env->fs()));
    BACKSTOP_RETURN_IF_ERROR(w->Commit(ctx.env->fs()));
    if (r.ledger_files.empty()) r.ledger_files.push_back(ledger_taken_->path);
  }
  for (auto& item : r.items) {
    if (item.object == stream) item.inserted += late.size();
  }
  revised_loss_ = r;
  return static_cast<uint64_t>(late.size());
}

// --- Salvage ----------------------------------------------------------------------

namespace {

// The sequences a salvage request chose, or nullopt for all.
Result<std::optional<std::set<uint64_t>>> ChosenSequences(const std::vector<json>& keys) {
  if (keys.empty()) return std::optional<std::set<uint64_t>>();
  std::set<uint64_t> out;
  for (const auto& k : keys) {
    const json& v = k.is_object() && k.contains("sequence") ? k["sequence"] : k;
    if (v.is_number_integer() && v.get<int64_t>() > 0) {
      out.insert(v.get<uint64_t>());
    } else if (v.is_string() && !v.get<std::string>().empty() &&
               v.get<std::string>().find_first_not_of("0123456789") == std::string::npos) {
      out.insert(std::stoull(v.get<std::string>()));
    } else {
      return Status::InvalidArgument("key " + k.dump() +
                                     ": expected a message sequence, e.g. 205 or "
                                     "{\"sequence\": 205}");
    }
  }
  return std::optional<std::set<uint64_t>>(std::move(out));
}

}  // namespace

Result<SalvageResult> NatsDriver::Salvage(const ComponentSpec& c, const SalvageRequest& req,
                                          DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  if (req.run_dir.empty() || req.object.empty()) {
    return Status::InvalidArgument("component " + c.name +
                                   ": salvage needs the run and the stream (object)");
  }
  if (req.output_path.empty()) {
    return Status::InvalidArgument("component " + c.name +
                                   ": salvage needs a file to export the messages to");
  }
  FileSystem* fs = ctx.env->fs();
  const std::string path = DiscardedPath(req.run_dir, c.name);
  if (!fs->Exists(path)) {
    return Status::NotFound("run " + req.run_id + " kept no discarded messages of component " +
                            c.name + " (" + path +
                            " is missing: the run discarded none, or an older Backstop ran it)");
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<json> lines, ReadJsonLines(fs, path));
  BACKSTOP_ASSIGN_OR_RETURN(auto chosen, ChosenSequences(req.keys));

  std::vector<json> picked;
  std::set<std::string> streams_seen;
  for (const auto& l : lines) {
    streams_seen.insert(l.value("stream", ""));
    if (l.value("stream", "") != req.object) continue;
    if (chosen && !chosen->count(l.value("sequence", uint64_t{0}))) continue;
    picked.push_back(l);
  }
  if (picked.empty() && !streams_seen.count(req.object) &&
      std::find(settings.streams.begin(), settings.streams.end(), req.object) ==
          settings.streams.end()) {
    return Status::NotFound("component " + c.name + " has no stream " + req.object +
                            "; its streams: " + JoinNames(settings.streams));
  }
  if (chosen) {
    std::set<uint64_t> found;
    for (const auto& l : picked) found.insert(l.value("sequence", uint64_t{0}));
    for (uint64_t seq : *chosen) {
      if (!found.count(seq)) {
        return Status::NotFound("stream " + req.object + ": run " + req.run_id +
                                " discarded no message with sequence " + std::to_string(seq));
      }
    }
  }

  std::string text;
  for (const auto& l : picked) text += l.dump() + "\n";
  BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(req.output_path, text, 0600));
  SalvageResult result;
  result.exported = picked.size();
  if (!req.apply || picked.empty()) return result;

  // Everything checked before the first publish.
  struct Outgoing {
    uint64_t sequence;
    std::string subject;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string data;
  };
  std::vector<Outgoing> out;
  for (const auto& l : picked) {
    Outgoing o;
    o.sequence = l.value("sequence", uint64_t{0});
    o.subject = l.value("subject", "");
    auto data = Base64Decode(l.value("data", ""));
    if (!data.ok() || o.subject.empty()) {
      return Status::Corruption(
          path + ": the message with sequence " + std::to_string(o.sequence) + " is damaged (" +
          (data.ok() ? "no subject" : data.status().message()) + "); nothing was republished");
    }
    o.data = std::move(*data);
    for (const auto& h : l.value("headers", json::array())) {
      if (h.is_array() && h.size() == 2 && h[0].is_string() && h[1].is_string()) {
        o.headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
      }
    }
    out.push_back(std::move(o));
  }
  // Messages an earlier salvage of this run put back: a second --apply would
  // deliver them twice, so they are conflicts and nothing is republished.
  const std::string record_path = RepublishedPath(req.run_dir, c.name);
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<json> record, ReadJsonLines(fs, record_path));
  std::map<uint64_t, uint64_t> republished_as;
  for (const auto& r : record) {
    if (r.is_object() && r.value("stream", "") == req.object) {
      republished_as[r.value("sequence", uint64_t{0})] = r.value("republished_as", uint64_t{0});
    }
  }
  for (const auto& o : out) {
    auto earlier = republished_as.find(o.sequence);
    if (earlier == republished_as.end()) continue;
    result.conflicts.push_back("sequence " + std::to_string(o.sequence) + " (" + o.subject +
                               "): an earlier salvage of run " + req.run_id +
                               " republished it, as sequence " + std::to_string(earlier->second));
  }
  if (!result.conflicts.empty()) return result;

  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  auto info = GetStreamInfo(*conn, req.object);
  if (!info.ok()) {
    return info.status().WithContext("stream " + req.object + " (nothing was republished)");
  }
  // The record is written once the publishing ends; a message published
  // just before a kill carries a message id, so that JetStream drops its
  // republication by a rerun within the stream's duplicate window.
  std::string record_text;
  for (const auto& r : record) record_text += r.dump() + "\n";
  auto save_record = [&]() { return fs->WriteFileAtomic(record_path, record_text, 0600); };
  std::string published;
  for (auto& o : out) {
    bool has_id = std::any_of(o.headers.begin(), o.headers.end(),
                              [](const auto& h) { return h.first == "Nats-Msg-Id"; });
    if (!has_id) {
      o.headers.emplace_back("Nats-Msg-Id", "backstop-salvage:" + req.run_id + ":" + req.object +
                                                ":" + std::to_string(o.sequence));
    }
    auto seq = PublishToStream(*conn, o.subject, o.headers, o.data);
    if (!seq.ok()) {
      result.conflicts.push_back("sequence " + std::to_string(o.sequence) + " (" + o.subject +
                                 "): " + seq.status().message() +
                                 "; stopped there; republished before it: " +
                                 (published.empty() ? std::string("none") : published));
      BACKSTOP_RETURN_IF_ERROR(save_record());
      return result;
    }
    ++result.applied;
    record_text +=
        json{{"stream", req.object}, {"sequence", o.sequence}, {"republished_as", *seq}}.dump() +
        "\n";
    published += (published.empty() ? "" : ", ") + std::to_string(o.sequence);
    ctx.Progress("nats: republished message " + std::to_string(o.sequence) + " of run " +
                 req.run_id + " to " + req.object + " as sequence " + std::to_string(*seq));
  }
  BACKSTOP_RETURN_IF_ERROR(save_record());
  return result;
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

    // Skipped only when this run's restore of it finished: a stream at the
    // target's position may still hold other content (a kill right after
    // the save of a stream that diverged from the target at equal length).
    if (have_saved && saved["streams"][stream].value("restored", false) && exists &&
        SamePosition(now, target)) {
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
        auto captured = CaptureStream(*conn, settings, stream, c, ctx, /*with_index=*/false);
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
      if (ledger_taken_ && ledger_taken_->run_id == ctx.run_id) {
        auto listed = ledger_taken_->listed_to.find(stream);
        if (listed != ledger_taken_->listed_to.end()) {
          record["ledger_listed_to"] = listed->second;
        }
      }
      saved["streams"][stream] = record;
      have_saved = true;
      BACKSTOP_RETURN_IF_ERROR(SaveJsonFile(fs, saved_path, saved));
      CrashPointForTest("nats.after-save");
      return Status::OK();
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
      CrashPointForTest("nats.after-delete");
    }

    // (3) and (4): restore from the restore point and verify.
    ctx.Progress("nats: restoring stream " + stream + " (" + target.Describe() + ")");
    Status st = RestoreFromRecord(*conn, settings, stream, rec, restore_hooks_, c, ctx);
    if (!st.ok()) {
      return PutBack(*conn, settings, stream, saved_rec, st, c, ctx)
          .WithContext("component " + c.name);
    }
    saved["streams"][stream]["restored"] = true;
    BACKSTOP_RETURN_IF_ERROR(SaveJsonFile(fs, saved_path, saved));
    CrashPointForTest("nats.after-restore");
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
  // The discarded messages go with the saved content, as the replaced
  // database goes for the postgres driver: salvage then says so.
  BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->Remove(DiscardedPath(run_dir, c.name)));
  BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->Remove(RepublishedPath(run_dir, c.name)));
  return ctx.env->fs()->Remove(SavedRecordPath(run_dir, c.name));
}

}  // namespace backstop::nats
