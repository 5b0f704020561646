// The message index, content-based loss and AssessLoss. See message_loss.h
// and nats_driver.h (the ledger).
#include "drivers/nats/message_loss.h"

#include <algorithm>
#include <map>
#include <set>

#include "base/crash_point.h"
#include "base/hash.h"
#include "base/json_lines.h"
#include "base/units.h"
#include "drivers/nats/nats_driver.h"
#include "drivers/nats/nats_files.h"
#include "drivers/nats/nats_settings.h"
#include "drivers/nats/stream_record.h"
#include "store/store.h"

namespace backstop::nats {

using nlohmann::json;

json PublishedLine(const std::string& stream, const MessageMeta& m) {
  return {{"stream", stream},
          {"event", "published"},
          {"sequence", m.sequence},
          {"subject", m.subject},
          {"time", FormatRfc3339(m.time_ns / 1000, true)},
          {"size", m.size}};
}

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

json DiscardedLine(const std::string& stream, const MessageMeta& m) {
  json headers = json::array();
  for (const auto& [key, value] : m.headers) headers.push_back({key, value});
  return {{"stream", stream},     {"sequence", m.sequence},
          {"subject", m.subject}, {"time", FormatRfc3339(m.time_ns / 1000, true)},
          {"headers", headers},   {"data", Base64Encode(m.data)}};
}

// --- AssessLoss -------------------------------------------------------------------

Result<DataLossReport> NatsDriver::AssessLoss(const ComponentSpec& c, const json& entry,
                                              DriverContext& ctx) {
  ledger_taken_.reset();
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto streams, EntryStreams(entry, c.name));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  std::unique_ptr<JsonLinesWriter> ledger;
  std::string ledger_path;
  // Streams an earlier attempt of this run already restored (resumed run):
  // what they discarded is gone from the server, so their lines are kept
  // from the ledger that attempt wrote.
  std::vector<json> earlier_lines;
  std::vector<json> earlier_discarded;
  std::unique_ptr<JsonLinesWriter> discarded;  // the messages themselves, for salvage
  json saved;
  if (!ctx.run_dir.empty()) {
    BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->CreateDirs(ctx.run_dir));
    ledger_path = JoinPath(ctx.run_dir, "ledger-" + c.name + ".jsonl");
    const std::string discarded_path = NatsDriver::DiscardedPath(ctx.run_dir, c.name);
    BACKSTOP_ASSIGN_OR_RETURN(earlier_lines, ReadJsonLines(ctx.env->fs(), ledger_path));
    BACKSTOP_ASSIGN_OR_RETURN(earlier_discarded, ReadJsonLines(ctx.env->fs(), discarded_path));
    saved = LoadJsonFile(ctx.env->fs(), SavedRecordPath(ctx.run_dir, c.name));
    BACKSTOP_ASSIGN_OR_RETURN(ledger, JsonLinesWriter::Create(ctx.env->fs(), ledger_path));
    BACKSTOP_ASSIGN_OR_RETURN(discarded, JsonLinesWriter::Create(ctx.env->fs(), discarded_path));
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
        if (ledger) BACKSTOP_RETURN_IF_ERROR(ledger->Append(l));
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
          BACKSTOP_RETURN_IF_ERROR(discarded->Append(l));
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
    // A named copy: clang 14 cannot capture a structured binding.
    const std::string& stream_name = stream;
    auto discard = [&](const MessageMeta& m) -> Status {
      ++published;
      if (ledger) BACKSTOP_RETURN_IF_ERROR(ledger->Append(PublishedLine(stream_name, m)));
      if (discarded) BACKSTOP_RETURN_IF_ERROR(discarded->Append(DiscardedLine(stream_name, m)));
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
      BACKSTOP_RETURN_IF_ERROR(ledger->Append({{"stream", stream},
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
      if (ledger) BACKSTOP_RETURN_IF_ERROR(ledger->Append(RewoundLine(stream, r)));
      report.rewinds.push_back(r);
    }
  }
  if (discarded) BACKSTOP_RETURN_IF_ERROR(discarded->Close());
  if (ledger) {
    bool any = ledger->lines() > 0;
    BACKSTOP_RETURN_IF_ERROR(ledger->Close());
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
    BACKSTOP_ASSIGN_OR_RETURN(auto w, JsonLinesWriter::Create(ctx.env->fs(), ledger_taken_->path));
    for (const auto& l : lines) BACKSTOP_RETURN_IF_ERROR(w->Append(l));
    for (const auto& l : late) BACKSTOP_RETURN_IF_ERROR(w->Append(l));
    // The messages first: a ledger line never lacks its message.
    const std::string& discarded_path = ledger_taken_->discarded_path;
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<json> kept, ReadJsonLines(ctx.env->fs(), discarded_path));
    BACKSTOP_ASSIGN_OR_RETURN(auto d, JsonLinesWriter::Create(ctx.env->fs(), discarded_path));
    for (const auto& l : kept) BACKSTOP_RETURN_IF_ERROR(d->Append(l));
    for (const auto& l : late_messages) BACKSTOP_RETURN_IF_ERROR(d->Append(l));
    BACKSTOP_RETURN_IF_ERROR(d->Close());
    BACKSTOP_RETURN_IF_ERROR(w->Close());
    if (r.ledger_files.empty()) r.ledger_files.push_back(ledger_taken_->path);
  }
  for (auto& item : r.items) {
    if (item.object == stream) item.inserted += late.size();
  }
  revised_loss_ = r;
  return static_cast<uint64_t>(late.size());
}

}  // namespace backstop::nats
