// Prune against a temporary store and state database, with a fake driver
// that records what it is asked to release: which restore points are kept
// (the newest N, labelled ones, those of kept runs), which go (older ones,
// safety points of released runs), that a blob is deleted only when nothing
// kept refers to it, that an unfinished run refuses prune, and that a dry run
// changes nothing.
#include "run/prune.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/units.h"
#include "run/plan.h"
#include "run/state_db.h"
#include "store/restore_point.h"
#include "store/store.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

// Records every release it is asked for: "prune conf run-1", "discard conf".
class RecordingDriver : public Driver {
 public:
  explicit RecordingDriver(std::vector<std::string>* calls) : calls_(calls) {}
  Result<nlohmann::json> Snapshot(const ComponentSpec&, DriverContext&) override {
    return nlohmann::json::object();
  }
  Result<nlohmann::json> Describe(const ComponentSpec&, DriverContext&) override {
    return nlohmann::json::object();
  }
  Status Restore(const ComponentSpec&, const nlohmann::json&, DriverContext&) override {
    return Status::OK();
  }
  Status Prune(const ComponentSpec& c, const std::string& run_id, DriverContext& ctx) override {
    // Leftovers of killed runs (no run id) are looked for on every prune;
    // only what a run kept aside is a release worth recording.
    if (!run_id.empty()) calls_->push_back("prune " + c.name + " " + run_id);
    return Status::OK();
  }
  Status DiscardSnapshot(const ComponentSpec& c, const nlohmann::json&, DriverContext&) override {
    calls_->push_back("discard " + c.name);
    return Status::OK();
  }

 private:
  std::vector<std::string>* calls_;
};

class PruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DriverInfo info;
    info.name = "recording";
    info.kinds = {"config", "database"};
    std::vector<std::string>* calls = &calls_;
    info.factory = [calls] { return std::make_unique<RecordingDriver>(calls); };
    registry_.Register(info);
    ComponentSpec conf;
    conf.name = "conf";
    conf.kind = ComponentKind::kConfig;
    conf.driver = "recording";
    spec_.component_order.push_back("conf");
    spec_.components["conf"] = conf;
    spec_.environment = "test";
    spec_.state_dir = dir_.Join("state");
    spec_.store_path = dir_.Join("state/store");
    auto store = Store::Open(Env::Default(), spec_.store_path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto state = StateDb::Open(dir_.Join("state/state.db"));
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    state_ = std::move(*state);
    engine_ = std::make_unique<RunEngine>(Env::Default(), spec_, *store_, *state_, registry_, out_);
  }

  std::string Blob(const std::string& content) {
    auto digest = store_->Put(content);
    EXPECT_TRUE(digest.ok()) << digest.status().ToString();
    return digest.ok() ? *digest : "";
  }

  // A restore point of "conf" naming `blobs`, taken at second `second`.
  void AddRestorePoint(const std::string& id, int second, const std::vector<std::string>& blobs,
                       const std::string& label = "",
                       RestorePointKind kind = RestorePointKind::kManual,
                       const std::string& run_id = "") {
    RestorePoint rp;
    rp.id = id;
    rp.label = label;
    rp.kind = kind;
    rp.run_id = run_id;
    rp.environment = "test";
    rp.created_wall_us = Wall(second);
    rp.components = {{"conf", {{"blobs", blobs}}}};
    Status st = WriteRestorePoint(*store_, rp);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  // A rollback of "conf" journaled with `status`, started at second `second`.
  void AddRun(const std::string& id, int second, RunStatus status = RunStatus::kSucceeded) {
    Plan plan;
    plan.kind = RunKind::kRollback;
    plan.scope = PlanScope::kAll;
    plan.affected = {"conf"};
    RunRecord run;
    run.id = id;
    run.kind = RunKind::kRollback;
    run.status = status;
    run.plan = plan.ToJson();
    run.started_us = Wall(second);
    Status st = state_->CreateRun(run, {});
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  static int64_t Wall(int second) { return (1'790'000'000LL + second) * 1'000'000; }

  std::vector<std::string> RestorePointIds() {
    std::vector<std::string> errors;
    std::vector<std::string> ids;
    for (const auto& rp : ListRestorePoints(*store_, &errors)) ids.push_back(rp.id);
    EXPECT_TRUE(errors.empty());
    return ids;
  }

  // Bytes the blob takes in the store (compressed): what deleting it frees.
  uint64_t StoredSize(const std::string& digest) {
    auto info = Env::Default()->fs()->Stat(store_->BlobPath(digest));
    EXPECT_TRUE(info.ok());
    return info.ok() ? info->size : 0;
  }

  std::vector<std::string> Blobs() {
    auto blobs = store_->ListBlobs();
    EXPECT_TRUE(blobs.ok());
    std::vector<std::string> out = blobs.ok() ? *blobs : std::vector<std::string>{};
    std::sort(out.begin(), out.end());
    return out;
  }

  Result<PruneReport> Prune(PruneOptions options) {
    return PruneEnvironment(*engine_, spec_, *store_, *state_, options);
  }

  testing::TempDir dir_;
  std::vector<std::string> calls_;
  DriverRegistry registry_;
  Spec spec_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StateDb> state_;
  Output out_{false, stdout, stdout};
  std::unique_ptr<RunEngine> engine_;
};

TEST_F(PruneTest, KeepsTheNewestRestorePointsAndDeletesTheOlderOnes) {
  const std::string a = Blob("a"), b = Blob("b"), c = Blob("c"), d = Blob("d");
  AddRestorePoint("rp-1", 1, {a});
  AddRestorePoint("rp-2", 2, {b});
  AddRestorePoint("rp-3", 3, {c});
  AddRestorePoint("rp-4", 4, {d});
  const uint64_t a_size = StoredSize(a), b_size = StoredSize(b);
  PruneOptions options;
  options.keep_restore_points = 2;
  auto report = Prune(options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->actions,
            (std::vector<std::string>{"delete restore point rp-2 of " + FormatRfc3339(Wall(2)),
                                      "delete restore point rp-1 of " + FormatRfc3339(Wall(1)),
                                      "delete 2 unreferenced blobs (0 kB)"}));
  EXPECT_TRUE(report->errors.empty());
  EXPECT_EQ(RestorePointIds(), (std::vector<std::string>{"rp-3", "rp-4"}));
  std::vector<std::string> kept = {c, d};
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(Blobs(), kept);
  EXPECT_EQ(report->blobs_deleted, 2u);
  EXPECT_EQ(report->bytes_freed, a_size + b_size);
  EXPECT_EQ(calls_, (std::vector<std::string>{"discard conf", "discard conf"}));
}

TEST_F(PruneTest, LabelledRestorePointsAreKeptBeyondTheCountUnlessAskedOtherwise) {
  const std::string a = Blob("a"), b = Blob("b"), c = Blob("c");
  AddRestorePoint("rp-1", 1, {a}, "golden");
  AddRestorePoint("rp-2", 2, {b});
  AddRestorePoint("rp-3", 3, {c});
  PruneOptions options;
  options.keep_restore_points = 1;
  auto report = Prune(options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(RestorePointIds(), (std::vector<std::string>{"rp-1", "rp-3"}));
  EXPECT_FALSE(store_->Has(b));
  EXPECT_TRUE(store_->Has(a));

  options.keep_labelled = false;
  report = Prune(options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->actions.front(),
            "delete restore point rp-1 (golden) of " + FormatRfc3339(Wall(1)));
  EXPECT_EQ(RestorePointIds(), (std::vector<std::string>{"rp-3"}));
  EXPECT_FALSE(store_->Has(a));
}

// A run beyond keep_runs has what it kept aside released (once), and its
// safety restore point, which would restore what is now gone, goes with it
// even when it is among the newest; a kept run's safety point stays even
// beyond the count.
TEST_F(PruneTest, SafetyRestorePointsOfReleasedRunsGoAndThoseOfKeptRunsStay) {
  const std::string a = Blob("a"), b = Blob("b"), c = Blob("c");
  AddRun("run-1", 10);
  AddRun("run-2", 20);
  AddRestorePoint("rp-safety-2", 21, {b}, "", RestorePointKind::kSafety, "run-2");
  AddRestorePoint("rp-safety-1", 30, {a}, "", RestorePointKind::kSafety, "run-1");
  AddRestorePoint("rp-5", 50, {c});
  PruneOptions options;
  options.keep_runs = 1;
  options.keep_restore_points = 2;
  auto report = Prune(options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->actions, (std::vector<std::string>{
                                 "release what run run-1 kept aside for conf",
                                 "delete restore point rp-safety-1 of " + FormatRfc3339(Wall(30)) +
                                     " (what it restores was released with run run-1)",
                                 "delete 1 unreferenced blobs (0 kB)"}));
  EXPECT_EQ(RestorePointIds(), (std::vector<std::string>{"rp-safety-2", "rp-5"}));
  EXPECT_EQ(calls_, (std::vector<std::string>{"prune conf run-1", "discard conf"}));
  auto marked = state_->Get("pruned:run-1");
  ASSERT_TRUE(marked.ok());
  EXPECT_EQ(marked->value_or(""), "1");

  // Released once: a second prune asks the driver for nothing more.
  calls_.clear();
  report = Prune(options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->actions.empty());
  EXPECT_TRUE(calls_.empty());
}

// A run that can still be resumed may need any restore point or blob: prune
// refuses and releases nothing.
TEST_F(PruneTest, AnUnfinishedRunRefusesPruneAndNothingIsReleased) {
  const std::string a = Blob("a"), b = Blob("b"), loose = Blob("loose");
  AddRun("run-1", 10);
  AddRun("run-2", 20, RunStatus::kRunning);
  AddRestorePoint("rp-1", 1, {a});
  AddRestorePoint("rp-2", 2, {b});
  PruneOptions options;
  options.keep_runs = 0;
  options.keep_restore_points = 0;
  auto report = Prune(options);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(report.status().message(),
            "run run-2 is unfinished and may need what prune would release; resume or abandon "
            "it first");
  EXPECT_EQ(RestorePointIds(), (std::vector<std::string>{"rp-1", "rp-2"}));
  EXPECT_EQ(Blobs().size(), 3u);
  EXPECT_TRUE(calls_.empty());
  auto marked = state_->Get("pruned:run-1");
  ASSERT_TRUE(marked.ok());
  EXPECT_FALSE(marked->has_value());
}

// A blob is deleted only when no remaining restore point and no kept run
// refers to it.
TEST_F(PruneTest, ABlobSharedWithAKeptRestorePointOrAKeptRunIsNeverDeleted) {
  const std::string shared = Blob("shared"), only_old = Blob("only-old");
  const std::string in_run = Blob("saved by run-1"), loose = Blob("loose");
  AddRestorePoint("rp-1", 1, {shared, only_old});
  AddRestorePoint("rp-2", 2, {"sha256:" + shared});
  AddRun("run-1", 10);
  testing::WriteFileOrDie(spec_.state_dir + "/runs/run-1/saved.json",
                          "{\"content\":\"" + in_run + "\"}");
  const uint64_t freed = StoredSize(only_old) + StoredSize(loose);
  PruneOptions options;
  options.keep_restore_points = 1;
  auto report = Prune(options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(RestorePointIds(), (std::vector<std::string>{"rp-2"}));
  EXPECT_TRUE(store_->Has(shared));
  EXPECT_TRUE(store_->Has(in_run));
  EXPECT_FALSE(store_->Has(only_old));
  EXPECT_FALSE(store_->Has(loose));
  EXPECT_EQ(report->blobs_deleted, 2u);
  EXPECT_EQ(report->bytes_freed, freed);
}

// A dry run says what a real one does, word for word, and changes nothing.
TEST_F(PruneTest, ADryRunReportsWhatARealRunDoesAndChangesNothing) {
  const std::string a = Blob("a"), b = Blob("b"), loose = Blob("loose");
  AddRun("run-1", 10);
  AddRun("run-2", 20);
  AddRestorePoint("rp-safety-1", 11, {a}, "", RestorePointKind::kSafety, "run-1");
  AddRestorePoint("rp-2", 21, {b});
  PruneOptions options;
  options.keep_runs = 1;
  options.keep_restore_points = 5;
  options.dry_run = true;
  auto dry = Prune(options);
  ASSERT_TRUE(dry.ok()) << dry.status().ToString();
  EXPECT_EQ(dry->actions.size(), 3u);
  EXPECT_EQ(dry->blobs_deleted, 2u);
  EXPECT_TRUE(calls_.empty());
  EXPECT_EQ(RestorePointIds(), (std::vector<std::string>{"rp-safety-1", "rp-2"}));
  EXPECT_EQ(Blobs().size(), 3u);
  auto marked = state_->Get("pruned:run-1");
  ASSERT_TRUE(marked.ok());
  EXPECT_FALSE(marked->has_value());

  options.dry_run = false;
  auto real = Prune(options);
  ASSERT_TRUE(real.ok()) << real.status().ToString();
  EXPECT_EQ(real->actions, dry->actions);
  EXPECT_EQ(real->blobs_deleted, dry->blobs_deleted);
  EXPECT_EQ(real->bytes_freed, dry->bytes_freed);
  EXPECT_EQ(RestorePointIds(), (std::vector<std::string>{"rp-2"}));
  EXPECT_EQ(Blobs(), (std::vector<std::string>{b}));
}

// The spec's keep policy in prune: hourly buckets at fixed times, a user
// label kept beyond the policy while Backstop's own labels are not, the
// newest post-rollback restore point and a kept deploy's pre-deploy one kept
// whatever their age, and a dry run saying why each kept one is kept.
TEST_F(PruneTest, TheKeepPolicyDecidesWhichRestorePointsGoAndSaysWhyOthersStay) {
  const std::string a = Blob("a");
  const int h = 3600;
  AddRestorePoint("rp-old-post", 1, {a}, "post-rollback", RestorePointKind::kPostRollback,
                  "run-gone");
  AddRestorePoint("rp-golden", 2, {a}, "golden");
  AddRestorePoint("rp-pre", 3, {a}, "pre-deploy", RestorePointKind::kPreDeploy);
  AddRestorePoint("rp-s1", h + 10, {a}, "scheduled", RestorePointKind::kScheduled);
  AddRestorePoint("rp-s2", h + 20, {a}, "scheduled", RestorePointKind::kScheduled);
  AddRestorePoint("rp-s3", 2 * h + 10, {a}, "scheduled", RestorePointKind::kScheduled);
  AddRestorePoint("rp-s4", 2 * h + 20, {a}, "scheduled", RestorePointKind::kScheduled);
  {
    RunRecord deploy;  // the newest run: a deploy that recorded rp-pre
    deploy.id = "run-deploy";
    deploy.kind = RunKind::kDeploy;
    deploy.status = RunStatus::kSucceeded;
    Plan plan;
    plan.kind = RunKind::kDeploy;
    plan.scope = PlanScope::kComponent;
    plan.affected = {"conf"};
    deploy.plan = plan.ToJson();
    deploy.restore_point = "rp-pre";
    deploy.started_us = Wall(4);
    ASSERT_TRUE(state_->CreateRun(deploy, {}).ok());
  }
  PruneOptions options;
  options.keep.hourly = 2;
  options.dry_run = true;
  auto report = Prune(options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  const std::string hour1 = FormatRfc3339(Wall(h)).substr(0, 13);
  const std::string hour2 = FormatRfc3339(Wall(2 * h)).substr(0, 13);
  EXPECT_EQ(report->kept,
            (std::vector<std::string>{"keep restore point rp-s4 (scheduled) of " +
                                          FormatRfc3339(Wall(2 * h + 20)) + ": hourly " + hour2,
                                      "keep restore point rp-s2 (scheduled) of " +
                                          FormatRfc3339(Wall(h + 20)) + ": hourly " + hour1,
                                      "keep restore point rp-pre (pre-deploy) of " +
                                          FormatRfc3339(Wall(3)) + ": target of run run-deploy",
                                      "keep restore point rp-golden (golden) of " +
                                          FormatRfc3339(Wall(2)) + ": labelled golden",
                                      "keep restore point rp-old-post (post-rollback) of " +
                                          FormatRfc3339(Wall(1)) +
                                          ": the newest post-rollback restore point"}));
  EXPECT_EQ(report->actions,
            (std::vector<std::string>{
                "delete restore point rp-s3 (scheduled) of " + FormatRfc3339(Wall(2 * h + 10)),
                "delete restore point rp-s1 (scheduled) of " + FormatRfc3339(Wall(h + 10))}));
  EXPECT_EQ(RestorePointIds().size(), 7u);  // a dry run deletes nothing

  options.dry_run = false;
  report = Prune(options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(RestorePointIds(),
            (std::vector<std::string>{"rp-old-post", "rp-golden", "rp-pre", "rp-s2", "rp-s4"}));
}

// After a scheduled restore point only restore points are pruned: what runs
// kept aside stays for `backstop prune`.
TEST_F(PruneTest, RestorePointsOnlyReleasesNothingRunsKeptAside) {
  const std::string a = Blob("a");
  AddRun("run-1", 10);
  AddRun("run-2", 20);
  AddRestorePoint("rp-1", 30, {a});
  AddRestorePoint("rp-2", 40, {a});
  PruneOptions options;
  options.keep_runs = 0;
  options.keep.last = 1;
  options.restore_points_only = true;
  auto report = Prune(options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(RestorePointIds(), (std::vector<std::string>{"rp-2"}));
  EXPECT_EQ(calls_, (std::vector<std::string>{"discard conf"}));
  auto marked = state_->Get("pruned:run-1");
  ASSERT_TRUE(marked.ok());
  EXPECT_FALSE(marked->has_value());
}

}  // namespace
}  // namespace backstop
