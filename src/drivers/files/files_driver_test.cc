#include "drivers/files/files_driver.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/hash.h"
#include "drivers/config_hash.h"
#include "spec/spec.h"
#include "store/store.h"
#include "testing/test_env.h"

namespace backstop::files {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::WriteFileOrDie;

std::string ReadOrEmpty(const std::string& path) {
  auto r = Env::Default()->fs()->ReadFile(path);
  return r.ok() ? *r : "";
}

uint32_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

ino_t InodeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

int CountLines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

class FilesDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = Env::Default();
    auto store = Store::Open(env_, dir_.Join("store"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    driver_ = FilesDriverInfo().factory();
    app_ = dir_.Join("etc/app.json");
    nginx_ = dir_.Join("etc/nginx/site.conf");
    extra_ = dir_.Join("etc/extra.conf");
    reload_log_ = dir_.Join("reloads.log");
    WriteFileOrDie(app_, "{\"db\": \"primary\"}\n", 0640);
    WriteFileOrDie(nginx_, "server { listen 3000; }\n", 0600);

    spec_.name = "config";
    spec_.kind = ComponentKind::kConfig;
    spec_.driver = "files";
    spec_.settings = {{"files", {app_, nginx_, extra_}},
                      {"reload", {"sh", "-c", "echo reloaded >> " + reload_log_}}};
    ctx_.env = env_;
    ctx_.store = store_.get();
    ctx_.state_dir = dir_.Join("state");
    ctx_.run_id = "run-1";
    ctx_.progress = [this](const std::string& l) { progress_.push_back(l); };
  }

  json SnapshotOrDie() {
    auto entry = driver_->Snapshot(spec_, ctx_);
    EXPECT_TRUE(entry.ok()) << entry.status().ToString();
    return entry.ok() ? *entry : json();
  }

  int Reloads() { return CountLines(ReadOrEmpty(reload_log_)); }

  TempDir dir_;
  Env* env_ = nullptr;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Driver> driver_;
  std::string app_, nginx_, extra_, reload_log_;
  ComponentSpec spec_;
  DriverContext ctx_{*Env::Default()};
  std::vector<std::string> progress_;
};

TEST_F(FilesDriverTest, SchemaDescribesTheSettings) {
  DriverInfo info = FilesDriverInfo();
  EXPECT_EQ(info.name, "files");
  EXPECT_EQ(info.kinds, std::vector<std::string>{"config"});
  ASSERT_EQ(info.settings.size(), 4u);
  EXPECT_EQ(info.settings[0].key, "files");
  EXPECT_EQ(info.settings[0].type, SettingSchema::Type::kPathList);
  EXPECT_TRUE(info.settings[0].required);
  EXPECT_EQ(info.settings[1].key, "reload");
  EXPECT_EQ(info.settings[1].type, SettingSchema::Type::kStringList);
  EXPECT_EQ(info.settings[2].key, "reload_timeout");
  EXPECT_EQ(info.settings[2].default_value, "30s");
  EXPECT_EQ(info.settings[3].key, "follow_symlinks");
  EXPECT_EQ(info.settings[3].type, SettingSchema::Type::kPathList);
  EXPECT_FALSE(driver_->IsService());
}

TEST_F(FilesDriverTest, SpecParserAppliesTheSchema) {
  const std::string yaml =
      "environment: test\n"
      "components:\n"
      "  config:\n"
      "    kind: config\n"
      "    driver: files\n"
      "    files: [etc/app.json, etc/nginx/site.conf]\n"
      "    reload: [nginx, -s, reload]\n";
  auto spec = ParseSpec(yaml, dir_.Join("backstop.yaml"), DriverRegistry::Global());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const json& settings = spec->components.at("config").settings;
  EXPECT_EQ(settings["files"], json::array({app_, nginx_}));
  EXPECT_EQ(settings["reload"], json::array({"nginx", "-s", "reload"}));
  EXPECT_EQ(settings["reload_timeout"], 30000);
}

TEST_F(FilesDriverTest, SnapshotRecordsDigestsModesAbsenceAndTheConfigHash) {
  json entry = SnapshotOrDie();
  ASSERT_EQ(entry["files"].size(), 3u);
  const json& app = entry["files"][0];
  EXPECT_EQ(app["path"], app_);
  EXPECT_EQ(app["sha256"], Sha256Hex("{\"db\": \"primary\"}\n"));
  EXPECT_EQ(app["mode"], 0640);
  EXPECT_EQ(app["size"], 18);
  EXPECT_EQ(entry["files"][1]["mode"], 0600);
  EXPECT_EQ(entry["files"][2], (json{{"path", extra_}, {"absent", true}}));
  EXPECT_EQ(entry["blobs"].size(), 2u);
  for (const auto& b : entry["blobs"]) EXPECT_TRUE(store_->Has(b.get<std::string>()));

  // The seed's config_hash: sha256 over the sorted "path\0sha256\n" lines.
  std::vector<std::pair<std::string, std::string>> lines = {
      {nginx_, Sha256Hex("server { listen 3000; }\n")},
      {app_, Sha256Hex("{\"db\": \"primary\"}\n")},
      {extra_, ""}};
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (const auto& [p, d] : lines)
    text += p + std::string(1, '\0') + (d.empty() ? "absent" : d) + "\n";
  EXPECT_EQ(entry["config_hash"], "sha256:" + Sha256Hex(text));
  EXPECT_EQ(
      entry["config_hash"],
      ConfigHash({{app_, app["sha256"]}, {nginx_, entry["files"][1]["sha256"]}, {extra_, ""}}));

  auto described = driver_->Describe(spec_, ctx_);
  ASSERT_TRUE(described.ok());
  EXPECT_EQ((*described)["config_hash"], entry["config_hash"]);
  EXPECT_EQ((*described)["files"], entry["files"]);

  WriteFileOrDie(app_, "{\"db\": \"replica\"}\n", 0640);
  described = driver_->Describe(spec_, ctx_);
  EXPECT_NE((*described)["config_hash"], entry["config_hash"]);
}

TEST_F(FilesDriverTest, RoundTripRestoresContentModesAndAbsence) {
  json entry = SnapshotOrDie();
  WriteFileOrDie(app_, "{\"db\": \"replica\"}\n", 0644);            // content and mode changed
  ASSERT_TRUE(env_->fs()->RemoveAll(dir_.Join("etc/nginx")).ok());  // gone entirely
  WriteFileOrDie(extra_, "created after the snapshot\n");           // absent at the snapshot
  EXPECT_FALSE(driver_->VerifyRestored(spec_, entry, ctx_).ok());

  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(ReadOrEmpty(app_), "{\"db\": \"primary\"}\n");
  EXPECT_EQ(ModeOf(app_), 0640u);
  EXPECT_EQ(ReadOrEmpty(nginx_), "server { listen 3000; }\n");
  EXPECT_EQ(ModeOf(nginx_), 0600u);
  EXPECT_FALSE(env_->fs()->Exists(extra_));
  EXPECT_TRUE(driver_->VerifyRestored(spec_, entry, ctx_).ok());
  EXPECT_EQ(Reloads(), 1);
  // No staging file left behind.
  auto names = env_->fs()->ListDir(dir_.Join("etc"));
  EXPECT_EQ(*names, (std::vector<std::string>{"app.json", "nginx"}));
}

TEST_F(FilesDriverTest, OnlyChangedFilesAreTouchedAndReloadRunsOnlyOnChange) {
  json entry = SnapshotOrDie();
  const ino_t nginx_inode = InodeOf(nginx_);

  // Nothing changed: no write, no reload.
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(Reloads(), 0);

  WriteFileOrDie(app_, "{\"db\": \"replica\"}\n", 0640);
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(ReadOrEmpty(app_), "{\"db\": \"primary\"}\n");
  EXPECT_EQ(InodeOf(nginx_), nginx_inode);  // unchanged file untouched
  EXPECT_EQ(Reloads(), 1);

  // Idempotent: the same restore again changes nothing and does not reload.
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(Reloads(), 1);

  // A mode-only difference is fixed in place (same inode) and reloads.
  ASSERT_EQ(::chmod(nginx_.c_str(), 0644), 0);
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(ModeOf(nginx_), 0600u);
  EXPECT_EQ(InodeOf(nginx_), nginx_inode);
  EXPECT_EQ(Reloads(), 2);
}

TEST_F(FilesDriverTest, CorruptBlobLeavesEveryLiveFileUntouched) {
  json entry = SnapshotOrDie();
  WriteFileOrDie(app_, "{\"db\": \"replica\"}\n", 0640);
  WriteFileOrDie(nginx_, "server { listen 4000; }\n", 0600);
  // Corrupt the nginx blob: the app file would restore fine, but must not either.
  std::string blob = store_->BlobPath(entry["files"][1]["sha256"]);
  ASSERT_EQ(::chmod(blob.c_str(), 0644), 0);
  std::string raw = ReadOrEmpty(blob);
  raw[raw.size() - 3] ^= 0x21;
  WriteFileOrDie(blob, raw);

  Status st = driver_->Restore(spec_, entry, ctx_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no live file of config was changed"), std::string::npos)
      << st.message();
  EXPECT_EQ(ReadOrEmpty(app_), "{\"db\": \"replica\"}\n");
  EXPECT_EQ(ReadOrEmpty(nginx_), "server { listen 4000; }\n");
  EXPECT_EQ(Reloads(), 0);
  auto names = env_->fs()->ListDir(dir_.Join("etc"));
  EXPECT_EQ(*names, (std::vector<std::string>{"app.json", "nginx"}));
  EXPECT_EQ(*env_->fs()->ListDir(dir_.Join("etc/nginx")), std::vector<std::string>{"site.conf"});
}

TEST_F(FilesDriverTest, MissingBlobIsRefused) {
  json entry = SnapshotOrDie();
  WriteFileOrDie(app_, "changed\n", 0640);
  ASSERT_TRUE(store_->RemoveBlob(entry["files"][0]["sha256"]).ok());
  Status st = driver_->Restore(spec_, entry, ctx_);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(ReadOrEmpty(app_), "changed\n");
}

TEST_F(FilesDriverTest, FailedReloadFailsTheRestoreAndIsRetried) {
  spec_.settings["reload"] = {"sh", "-c", "echo 'nginx: [emerg] bad config' >&2; exit 1"};
  json entry = SnapshotOrDie();
  WriteFileOrDie(app_, "changed\n", 0640);
  Status st = driver_->Restore(spec_, entry, ctx_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("exit 1: nginx: [emerg] bad config"), std::string::npos)
      << st.message();
  EXPECT_EQ(ReadOrEmpty(app_), "{\"db\": \"primary\"}\n");         // files are in place
  EXPECT_FALSE(driver_->VerifyRestored(spec_, entry, ctx_).ok());  // but the reload is owed

  // Nothing differs any more, yet the next restore still owes the reload.
  spec_.settings["reload"] = {"sh", "-c", "echo reloaded >> " + reload_log_};
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(Reloads(), 1);
  EXPECT_TRUE(driver_->VerifyRestored(spec_, entry, ctx_).ok());
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(Reloads(), 1);
}

TEST_F(FilesDriverTest, ReloadTimeoutIsAFailure) {
  spec_.settings["reload"] = {"sleep", "10"};
  spec_.settings["reload_timeout"] = "200ms";
  json entry = SnapshotOrDie();
  WriteFileOrDie(app_, "changed\n", 0640);
  Status st = driver_->Restore(spec_, entry, ctx_);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("timed out"), std::string::npos) << st.message();
}

TEST_F(FilesDriverTest, SymlinkIsCapturedAndRestoredAsALinkNeverThroughIt) {
  std::string target = dir_.Join("etc/sites-available/site.conf");
  std::string link = dir_.Join("etc/site-enabled.conf");
  WriteFileOrDie(target, "upstream v1;\n", 0644);
  ASSERT_EQ(::symlink("sites-available/site.conf", link.c_str()), 0);
  spec_.settings["files"] = {link};
  json entry = SnapshotOrDie();
  EXPECT_EQ(entry["files"][0]["symlink"], "sites-available/site.conf");
  EXPECT_FALSE(entry["files"][0].contains("sha256"));
  EXPECT_TRUE(entry["blobs"].empty());
  // Someone points the link at another file, and that file changes.
  std::string elsewhere = dir_.Join("elsewhere/file");
  WriteFileOrDie(elsewhere, "not a config file\n", 0600);
  ASSERT_EQ(::unlink(link.c_str()), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), link.c_str()), 0);
  WriteFileOrDie(target, "upstream v2;\n", 0644);
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(*env_->fs()->ReadLink(link), "sites-available/site.conf");  // the link is restored
  EXPECT_EQ(ReadOrEmpty(elsewhere), "not a config file\n");  // nothing written through it
  EXPECT_EQ(ReadOrEmpty(target), "upstream v2;\n");          // nor into what it points to
  EXPECT_TRUE(driver_->VerifyRestored(spec_, entry, ctx_).ok());
}

TEST_F(FilesDriverTest, RestoringAFileOverALinkReplacesTheLinkNotItsTarget) {
  json entry = SnapshotOrDie();
  std::string secret = dir_.Join("root-only/shadow");
  WriteFileOrDie(secret, "root:x:0:0\n", 0600);
  ASSERT_EQ(::unlink(app_.c_str()), 0);
  ASSERT_EQ(::symlink(secret.c_str(), app_.c_str()), 0);
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(ReadOrEmpty(secret), "root:x:0:0\n");
  struct stat st {};
  ASSERT_EQ(::lstat(app_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(ReadOrEmpty(app_), "{\"db\": \"primary\"}\n");
}

TEST_F(FilesDriverTest, SnapshotNeverCopiesWhatALinkPointsTo) {
  std::string secret = dir_.Join("root-only/key");
  WriteFileOrDie(secret, "secret key material\n", 0600);
  ASSERT_EQ(::unlink(app_.c_str()), 0);
  ASSERT_EQ(::symlink(secret.c_str(), app_.c_str()), 0);
  json entry = SnapshotOrDie();
  EXPECT_FALSE(store_->Has(Sha256Hex("secret key material\n")));
  EXPECT_EQ(entry["files"][0]["symlink"], secret);
  // A retargeted link changes the config hash.
  ASSERT_EQ(::unlink(app_.c_str()), 0);
  ASSERT_EQ(::symlink(nginx_.c_str(), app_.c_str()), 0);
  auto now = driver_->Describe(spec_, ctx_);
  ASSERT_TRUE(now.ok()) << now.status().ToString();
  EXPECT_NE((*now)["config_hash"], entry["config_hash"]);
}

TEST_F(FilesDriverTest, FollowSymlinksOptsInPerFile) {
  std::string target = dir_.Join("etc/sites-available/site.conf");
  std::string link = dir_.Join("etc/site-enabled.conf");
  WriteFileOrDie(target, "upstream v1;\n", 0644);
  ASSERT_EQ(::symlink("sites-available/site.conf", link.c_str()), 0);
  spec_.settings["files"] = {link};
  spec_.settings["follow_symlinks"] = {link};
  json entry = SnapshotOrDie();
  EXPECT_EQ(entry["files"][0]["sha256"], Sha256Hex("upstream v1;\n"));
  WriteFileOrDie(target, "upstream v2;\n", 0644);
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(ReadOrEmpty(target), "upstream v1;\n");
  EXPECT_EQ(*env_->fs()->ReadLink(link), "sites-available/site.conf");

  spec_.settings["follow_symlinks"] = {dir_.Join("etc/not-listed.conf")};
  auto bad = driver_->Snapshot(spec_, ctx_);
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("not one of its files"), std::string::npos);
}

TEST_F(FilesDriverTest, LinkedFolderAnotherUserCouldPlaceIsRefused) {
  // etc/open is writable by everyone; a link in it could be anyone's.
  std::string open_dir = dir_.Join("etc/open");
  ASSERT_TRUE(env_->fs()->CreateDirs(open_dir, 0777).ok());
  std::string real = dir_.Join("real");
  WriteFileOrDie(JoinPath(real, "app.conf"), "x\n", 0644);
  ASSERT_EQ(::symlink(real.c_str(), JoinPath(open_dir, "conf.d").c_str()), 0);
  spec_.settings["files"] = {JoinPath(open_dir, "conf.d/app.conf")};
  auto entry = driver_->Snapshot(spec_, ctx_);
  ASSERT_FALSE(entry.ok());
  EXPECT_NE(entry.status().message().find("is a symbolic link"), std::string::npos)
      << entry.status().message();
  // The same link in a folder only its owner may write to is accepted.
  ASSERT_EQ(::chmod(open_dir.c_str(), 0755), 0);
  EXPECT_TRUE(driver_->Snapshot(spec_, ctx_).ok());
  // And the spec may allow it explicitly.
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  spec_.settings["follow_symlinks"] = spec_.settings["files"];
  EXPECT_TRUE(driver_->Snapshot(spec_, ctx_).ok());
}

TEST_F(FilesDriverTest, CheckRestorableNamesTheFileWhoseBlobIsMissing) {
  json entry = SnapshotOrDie();
  EXPECT_TRUE(driver_->CheckRestorable(spec_, entry, ctx_).ok());
  ASSERT_TRUE(store_->RemoveBlob(Sha256Hex("server { listen 3000; }\n")).ok());
  Status st = driver_->CheckRestorable(spec_, entry, ctx_);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(st.message().find(nginx_), std::string::npos) << st.message();
}

TEST_F(FilesDriverTest, HealthReportsDriftFromTheLastRestore) {
  spec_.settings.erase("reload");
  json entry = SnapshotOrDie();
  // No restore and no restore point yet: nothing to drift from.
  EXPECT_TRUE(driver_->Health(spec_, ctx_).pass());
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  HealthResult h = driver_->Health(spec_, ctx_);
  EXPECT_TRUE(h.pass()) << h.detail;

  WriteFileOrDie(nginx_, "server { listen 4000; }\n", 0600);
  h = driver_->Health(spec_, ctx_);
  EXPECT_FALSE(h.pass());
  EXPECT_NE(h.detail.find("config drift: " + nginx_ + " changed"), std::string::npos) << h.detail;
  EXPECT_NE(h.detail.find("since run run-1"), std::string::npos) << h.detail;

  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  ASSERT_EQ(::unlink(app_.c_str()), 0);
  h = driver_->Health(spec_, ctx_);
  EXPECT_NE(h.detail.find(app_ + " deleted"), std::string::npos) << h.detail;

  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  ASSERT_EQ(::chmod(app_.c_str(), 0666), 0);
  h = driver_->Health(spec_, ctx_);
  EXPECT_NE(h.detail.find("mode of " + app_ + " changed from 0640 to 0666"), std::string::npos)
      << h.detail;
}

TEST_F(FilesDriverTest, RetargetedLinkIsDrift) {
  std::string link = dir_.Join("etc/current.conf");
  ASSERT_EQ(::symlink("app.json", link.c_str()), 0);
  spec_.settings["files"] = {link};
  spec_.settings.erase("reload");
  json entry = SnapshotOrDie();
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  ASSERT_EQ(::unlink(link.c_str()), 0);
  ASSERT_EQ(::symlink("nginx/site.conf", link.c_str()), 0);
  HealthResult h = driver_->Health(spec_, ctx_);
  EXPECT_FALSE(h.pass());
  EXPECT_NE(h.detail.find(link + " retargeted"), std::string::npos) << h.detail;
}

TEST_F(FilesDriverTest, LeftoversOfAnAbandonedRestoreAreRemoved) {
  json entry = SnapshotOrDie();
  const std::string staged = app_ + ".backstop-restore-run-0";
  const std::string partial = dir_.Join("etc/.app.json.backstop-restore-run-0.backstop-7-1.tmp");
  WriteFileOrDie(staged, "half", 0600);
  WriteFileOrDie(partial, "half", 0600);
  WriteFileOrDie(app_, "changed\n", 0640);
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_FALSE(env_->fs()->Exists(staged));
  EXPECT_FALSE(env_->fs()->Exists(partial));
  EXPECT_EQ(*env_->fs()->ListDir(dir_.Join("etc")),
            (std::vector<std::string>{"app.json", "nginx"}));
}

TEST_F(FilesDriverTest, NoReloadConfigured) {
  spec_.settings.erase("reload");
  json entry = SnapshotOrDie();
  WriteFileOrDie(app_, "changed\n", 0640);
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(ReadOrEmpty(app_), "{\"db\": \"primary\"}\n");
  EXPECT_TRUE(driver_->VerifyRestored(spec_, entry, ctx_).ok());
}

TEST_F(FilesDriverTest, DryRunChangesNothing) {
  json entry = SnapshotOrDie();
  WriteFileOrDie(app_, "changed\n", 0640);
  ctx_.dry_run = true;
  ASSERT_TRUE(driver_->Restore(spec_, entry, ctx_).ok());
  EXPECT_EQ(ReadOrEmpty(app_), "changed\n");
  EXPECT_EQ(Reloads(), 0);
  EXPECT_FALSE(progress_.empty());
}

TEST_F(FilesDriverTest, DirectoryIsRefused) {
  spec_.settings["files"] = {dir_.Join("etc")};
  auto entry = driver_->Snapshot(spec_, ctx_);
  EXPECT_FALSE(entry.ok());
  EXPECT_NE(entry.status().message().find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace backstop::files
