// NatsDriver::Restore and VerifyRestored: the rollback of each stream,
// saved first and put back on failure. See nats_driver.h.
#include "drivers/nats/nats_driver.h"

#include <map>
#include <optional>
#include <set>

#include "base/crash_point.h"
#include "base/units.h"
#include "drivers/nats/message_loss.h"
#include "drivers/nats/nats_files.h"
#include "drivers/nats/nats_settings.h"
#include "drivers/nats/stream_record.h"
#include "drivers/nats/stream_snapshot.h"
#include "store/store.h"

namespace backstop::nats {

using nlohmann::json;

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
  for (const auto& stream_and_record : streams) {
    // Named, not a structured binding: the lambdas below capture them.
    const auto& stream = stream_and_record.first;
    const auto& rec = stream_and_record.second;
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

}  // namespace backstop::nats
