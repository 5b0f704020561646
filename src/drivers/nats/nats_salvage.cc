// NatsDriver::Salvage: the messages a rollback discarded, exported and
// republished. See nats_driver.h.
#include "drivers/nats/nats_driver.h"

#include <map>
#include <optional>
#include <set>

#include "base/crash_point.h"
#include "base/strings.h"
#include "base/units.h"
#include "drivers/nats/message_loss.h"
#include "drivers/nats/nats_files.h"
#include "drivers/nats/nats_settings.h"
#include "drivers/nats/stream_record.h"
#include "drivers/nats/stream_snapshot.h"
#include "store/store.h"

namespace backstop::nats {

using nlohmann::json;

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
                            "; its streams: " + Join(settings.streams));
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

}  // namespace backstop::nats
