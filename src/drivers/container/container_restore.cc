// The container driver's journaled rollback. See container_restore.h.
#include "drivers/container/container_restore.h"

#include <algorithm>
#include <memory>
#include <optional>

#include "base/crash_point.h"
#include "base/enum_names.h"
#include "base/hash.h"
#include "drivers/container/container_driver.h"
#include "drivers/container/container_record.h"
#include "drivers/container/image_archive.h"
#include "drivers/container/image_ref.h"
#include "store/store.h"

namespace backstop::container {

using nlohmann::json;

namespace {

constexpr int kLogLines = 20;

enum class Stage { kCreate, kStart, kPassed, kFailed };
constexpr EnumNames<Stage, 4> kStageNames{{{
    {Stage::kCreate, "create"},
    {Stage::kStart, "start"},
    {Stage::kPassed, "passed"},
    {Stage::kFailed, "failed"},
}}};

struct Journal {
  std::string run_id;
  Stage stage = Stage::kCreate;
  std::string replaced_id;  // the container replaced; empty when there was none
  std::string new_name;
  std::string new_id;  // once created
  std::string release;
  json create;
  std::string failure;  // the gate's verdict and what the new container printed

  json ToJson() const {
    return {{"run_id", run_id},           {"stage", std::string(kStageNames.Name(stage))},
            {"replaced_id", replaced_id}, {"new_name", new_name},
            {"new_id", new_id},           {"release", release},
            {"create", create},           {"failure", failure}};
  }
  static Result<Journal> FromJson(const json& j) {
    if (!j.is_object()) return Status::Corruption("not a JSON object");
    Journal out;
    auto stage = kStageNames.Parse(j.value("stage", ""));
    if (!stage) return Status::Corruption("unknown stage '" + j.value("stage", "") + "'");
    out.stage = *stage;
    out.run_id = j.value("run_id", "");
    out.replaced_id = j.value("replaced_id", "");
    out.new_name = j.value("new_name", "");
    out.new_id = j.value("new_id", "");
    out.release = j.value("release", "");
    out.create = j.value("create", json::object());
    out.failure = j.value("failure", "");
    if (out.new_name.empty()) return Status::Corruption("no new container name");
    return out;
  }
};

// One restore: the component, its engine and its journal.
class Restorer {
 public:
  Restorer(const ComponentSpec& c, const ContainerSettings& settings, const DockerClient& client,
           DriverContext& ctx)
      : c_(c),
        settings_(settings),
        client_(client),
        ctx_(ctx),
        fs_(ctx.env->fs()),
        path_(RestoreJournalPath(c, ctx)) {}

  Status Run(const json& entry);

 private:
  Result<std::optional<Journal>> ReadJournal();
  Status WriteJournal(const Journal& j);
  Status RemoveJournal();
  // Runs `j` from its stage to its end; `finish_only`: a journal of another
  // run, completed when its gate passed, otherwise undone (its new container
  // removed) without the replaced one being started again.
  Status Advance(Journal& j, bool finish_only);
  Status EnsureImage(const json& entry, const std::string& image_id);
  Result<Journal> Plan(const json& entry, bool* already_there);
  HealthResult Gate(const std::string& name);
  // `error`, after starting `replaced` (a name or id; empty: none) again
  // when it exists: a restore that failed before its new container ran
  // leaves the service on the container it had.
  Status WithReplacedStarted(const Status& error, const std::string& replaced);
  std::string Logs(const std::string& name);

  const ComponentSpec& c_;
  const ContainerSettings& settings_;
  const DockerClient& client_;
  DriverContext& ctx_;
  FileSystem* fs_;
  std::string path_;
};

Result<std::optional<Journal>> Restorer::ReadJournal() {
  if (!fs_->Exists(path_)) return std::optional<Journal>();
  BACKSTOP_ASSIGN_OR_RETURN(std::string text, fs_->ReadFileNoFollow(path_));
  auto journal = Journal::FromJson(json::parse(text, nullptr, false));
  if (!journal.ok()) return journal.status().WithContext("restore journal " + path_);
  return std::optional<Journal>(std::move(*journal));
}

Status Restorer::WriteJournal(const Journal& j) {
  BACKSTOP_RETURN_IF_ERROR(fs_->CreateDirs(Dirname(path_)));
  return fs_->WriteFileAtomic(path_, j.ToJson().dump(2) + "\n", 0600);
}

Status Restorer::RemoveJournal() {
  Status st = fs_->Remove(path_);
  if (!st.ok() && !st.IsNotFound()) return st;
  return fs_->SyncDir(Dirname(path_));
}

Status Restorer::EnsureImage(const json& entry, const std::string& image_id) {
  auto present = client_.InspectImage(image_id);
  if (present.ok()) return Status::OK();
  if (!present.status().IsNotFound()) return present.status();
  if (!entry.contains("archive") || ctx_.store == nullptr) {
    return Status::FailedPrecondition("the engine has no image " + image_id +
                                      " and the restore point holds no copy of it");
  }
  ctx_.Progress("loading image " + entry.value("image", image_id) + " of " + c_.name +
                " from the store");
  std::string tar =
      JoinPath(ctx_.store->TmpDir(),
               "load-" + c_.name + "-" + std::to_string(ctx_.env->clock()->WallMicros()) + ".tar");
  Status loaded = [&]() -> Status {
    BACKSTOP_RETURN_IF_ERROR(
        WriteArchive(*ctx_.store, fs_, entry["archive"].get<std::vector<std::string>>(), tar));
    BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> in, fs_->NewSequentialFile(tar));
    BACKSTOP_ASSIGN_OR_RETURN(std::string reply, client_.LoadImage(in.get()));
    (void)reply;
    return Status::OK();
  }();
  (void)fs_->Remove(tar);
  BACKSTOP_RETURN_IF_ERROR(loaded.WithContext("load image " + image_id + " from the store"));
  CrashPointForTest("container.after-load");
  auto after = client_.InspectImage(image_id);
  if (!after.ok()) {
    return Status::Corruption("the image archive in the store did not hold image " + image_id +
                              ": " + after.status().message());
  }
  return Status::OK();
}

// The create request without the image, to compare two configurations.
json WithoutImage(json create) {
  create.erase("Image");
  return create;
}

Result<Journal> Restorer::Plan(const json& entry, bool* already_there) {
  Journal j;
  j.run_id = ctx_.run_id;
  std::string image_id;
  auto live = client_.InspectContainer(settings_.container);
  if (!live.ok() && !live.status().IsNotFound()) return live.status();
  if (entry.contains("create") && entry.contains("image_id")) {
    image_id = entry["image_id"].get<std::string>();
    BACKSTOP_RETURN_IF_ERROR(EnsureImage(entry, image_id));
    j.create = entry["create"];
    j.release = entry.value("release", "");
    // By its tag when the tag still names the image, so Describe shows the release.
    std::string ref = entry.value("image", "");
    auto tagged = ref.empty() ? Result<json>(Status::NotFound("")) : client_.InspectImage(ref);
    j.create["Image"] = tagged.ok() && tagged->value("Id", "") == image_id ? ref : image_id;
  } else {
    j.release = entry.value("release", "");
    if (j.release.empty()) {
      return Status::InvalidArgument("the entry names neither an image nor a release");
    }
    std::string ref = RefOfRelease(settings_.image, j.release);
    auto image = client_.InspectImage(ref);
    if (!image.ok()) {
      return image.status().WithContext("release " + j.release + " is image " + ref);
    }
    image_id = image->value("Id", "");
    if (!live.ok()) {
      return Status::FailedPrecondition(
          "container " + settings_.container + " does not exist, so release " + j.release +
          " has no configuration to run with; roll back to a restore point instead");
    }
    BACKSTOP_ASSIGN_OR_RETURN(j.create, CreateRequestFromInspect(*live));
    // The new release's image brings its own command and defaults.
    auto old_image = client_.InspectImage(live->value("Image", ""));
    if (old_image.ok())
      j.create = WithoutImageDefaults(j.create, old_image->value("Config", json()));
    j.create["Image"] = ref;
  }
  if (live.ok()) {
    j.replaced_id = live->value("Id", "");
    auto now = CreateRequestFromInspect(*live);
    *already_there = live->value("Image", "") == image_id && now.ok() &&
                     WithoutImage(*now) == WithoutImage(j.create);
  }
  std::string suffix =
      ctx_.run_id.empty() ? Sha256Hex(std::to_string(ctx_.env->clock()->WallMicros())).substr(0, 12)
                          : ctx_.run_id;
  j.new_name = settings_.container + "-" + suffix;
  return j;
}

Status Restorer::WithReplacedStarted(const Status& error, const std::string& replaced) {
  if (replaced.empty()) return error;
  Status started = client_.StartContainer(replaced);
  if (started.IsNotFound()) return error;
  if (!started.ok()) {
    return error.WithContext("the replaced container could not be started again (" +
                             started.message() + ") after this failure");
  }
  return error.WithContext("the replaced container was started again after this failure");
}

std::string Restorer::Logs(const std::string& name) {
  auto logs = client_.ContainerLogs(name, kLogLines);
  if (!logs.ok()) return "(its logs could not be read: " + logs.status().message() + ")";
  std::string text = *logs;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text.empty() ? "(it printed nothing)" : text;
}

HealthResult Restorer::Gate(const std::string& name) {
  Clock* clock = ctx_.env->clock();
  const int64_t deadline = clock->NowMicros() + c_.health.start_period_ms * 1000;
  const int64_t poll_ms = std::clamp<int64_t>(c_.health.interval_ms / 10, 100, 1000);
  for (int n = 1;; ++n) {
    HealthResult h = HealthOf(c_, settings_, client_, name, ctx_);
    // A HEALTHCHECK still "starting" (podman without systemd never runs it)
    // is no verdict: with no probe, a running container passes the gate.
    if (h.state == HealthResult::State::kPass) return h;
    if (h.state == HealthResult::State::kUnknown && !c_.health.enabled()) return h;
    auto inspected = client_.InspectContainer(name);
    bool gone = !inspected.ok() ||
                inspected->value(json::json_pointer("/State/Status"), std::string()) == "exited";
    if (gone || clock->NowMicros() >= deadline) return h;
    if (n == 1 || n % 10 == 0) ctx_.Progress("waiting for " + name + ": " + h.detail);
    clock->SleepForMicros(poll_ms * 1000);
  }
}

Status Restorer::Advance(Journal& j, bool finish_only) {
  if (finish_only && (j.stage == Stage::kCreate || j.stage == Stage::kStart)) {
    BACKSTOP_RETURN_IF_ERROR(client_.RemoveContainer(j.new_name, /*force=*/true));
    return RemoveJournal();
  }
  if (j.stage == Stage::kCreate) {
    auto id = client_.CreateContainer(j.new_name, j.create);
    if (!id.ok() && id.status().code() == Status::Code::kFailedPrecondition) {
      // Created before a crash: the name carries the run id, so it is ours.
      auto made = client_.InspectContainer(j.new_name);
      if (made.ok()) id = made->value("Id", "");
    }
    if (!id.ok()) {
      // Nothing new exists: the replaced container is the service again.
      BACKSTOP_RETURN_IF_ERROR(RemoveJournal());
      return WithReplacedStarted(id.status(), j.replaced_id);
    }
    CrashPointForTest("container.after-create");
    j.new_id = *id;
    j.stage = Stage::kStart;
    BACKSTOP_RETURN_IF_ERROR(WriteJournal(j));
  }
  if (j.stage == Stage::kStart) {
    if (!j.replaced_id.empty()) {
      int grace = static_cast<int>((settings_.stop_timeout_ms + 999) / 1000);
      Status stopped = client_.StopContainer(j.replaced_id, grace);
      if (!stopped.ok() && !stopped.IsNotFound()) return stopped;
    }
    ctx_.Progress("starting " + j.new_name + " (release " + j.release + ")");
    Status started = client_.StartContainer(j.new_name);
    CrashPointForTest("container.after-start");
    HealthResult h = started.ok()
                         ? Gate(j.new_name)
                         : HealthResult::Make(HealthResult::State::kFail, 0, started.message());
    bool passed =
        started.ok() && (h.state == HealthResult::State::kPass ||
                         (h.state == HealthResult::State::kUnknown && !c_.health.enabled()));
    if (passed) {
      j.stage = Stage::kPassed;
    } else {
      j.stage = Stage::kFailed;
      j.failure = "release " + j.release + " of " + c_.name +
                  " failed its health gate: " + h.detail + "\nlast lines of container " +
                  j.new_name + ":\n" + Logs(j.new_name);
    }
    BACKSTOP_RETURN_IF_ERROR(WriteJournal(j));
    CrashPointForTest("container.after-gate");
  }
  if (j.stage == Stage::kPassed) {
    if (!j.replaced_id.empty()) {
      BACKSTOP_RETURN_IF_ERROR(client_.RemoveContainer(j.replaced_id, /*force=*/true));
      CrashPointForTest("container.after-remove-replaced");
    }
    auto current = client_.InspectContainer(settings_.container);
    if (!current.ok() || current->value("Id", "") != j.new_id) {
      BACKSTOP_RETURN_IF_ERROR(client_.RenameContainer(j.new_name, settings_.container));
      CrashPointForTest("container.after-rename");
    }
    return RemoveJournal();
  }
  // Failed: the replaced container comes back; the new one goes.
  BACKSTOP_RETURN_IF_ERROR(client_.RemoveContainer(j.new_name, /*force=*/true));
  CrashPointForTest("container.after-remove-new");
  if (!finish_only && !j.replaced_id.empty()) {
    Status started = client_.StartContainer(j.replaced_id);
    if (!started.ok() && !started.IsNotFound()) return started;
    CrashPointForTest("container.after-restart-replaced");
  }
  BACKSTOP_RETURN_IF_ERROR(RemoveJournal());
  if (finish_only) return Status::OK();
  return Status::Unavailable(j.failure + "\nthe replaced container was started again");
}

Status Restorer::Run(const json& entry) {
  BACKSTOP_ASSIGN_OR_RETURN(std::optional<Journal> journal, ReadJournal());
  if (journal.has_value() && journal->run_id != ctx_.run_id) {
    ctx_.Progress("finishing the restore " + journal->run_id + " left of " + c_.name);
    BACKSTOP_RETURN_IF_ERROR(Advance(*journal, /*finish_only=*/true));
    journal.reset();
  }
  if (!journal.has_value()) {
    bool already_there = false;
    auto plan = Plan(entry, &already_there);
    if (!plan.ok()) return WithReplacedStarted(plan.status(), settings_.container);
    Journal planned = std::move(*plan);
    if (already_there) {
      ctx_.Progress(c_.name + " already runs release " + planned.release);
      return Status::OK();
    }
    BACKSTOP_RETURN_IF_ERROR(WriteJournal(planned));
    CrashPointForTest("container.after-journal");
    journal = std::move(planned);
  }
  return Advance(*journal, /*finish_only=*/false);
}

}  // namespace

std::string RestoreJournalPath(const ComponentSpec& c, const DriverContext& ctx) {
  return JoinPath(JoinPath(JoinPath(ctx.state_dir, "components"), c.name),
                  "container-restore.json");
}

Status RestoreContainer(const ComponentSpec& c, const ContainerSettings& settings,
                        const DockerClient& client, const json& entry, DriverContext& ctx) {
  if (ctx.state_dir.empty()) {
    return Status::FailedPrecondition("component " + c.name +
                                      ": a container restore needs the state directory");
  }
  return Restorer(c, settings, client, ctx).Run(entry);
}

}  // namespace backstop::container
