#include "drivers/process/process_driver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "drivers/process/proc_table.h"
#include "probe/probe.h"
#include "spec/spec.h"
#include "store/restore_point.h"
#include "store/store.h"
#include "testing/test_env.h"

#ifndef DEMO_SERVICE_BIN
#error "DEMO_SERVICE_BIN must name the demo-service binary (see the top-level CMakeLists.txt)"
#endif

namespace backstop::process {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::WriteFileOrDie;

int UnusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string ReadOrEmpty(const std::string& path) {
  auto r = Env::Default()->fs()->ReadFile(path);
  return r.ok() ? *r : "";
}

uint32_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// A long-running service script: says which release it is, then sleeps.
const char kSleeper[] =
    "#!/bin/sh\n"
    "echo \"svc $BACKSTOP_COMPONENT $BACKSTOP_RELEASE up in $(pwd) GREETING=$GREETING\"\n"
    "exec sleep 600\n";

class ProcessDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = Env::Default();
    releases_ = dir_.Join("app/releases");
    current_ = dir_.Join("app/current");
    state_ = dir_.Join("state");
    auto store = Store::Open(env_, dir_.Join("store"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    driver_ = ProcessDriverInfo().factory();

    spec_.name = "orchestrator";
    spec_.kind = ComponentKind::kService;
    spec_.driver = "process";
    spec_.settings = {{"releases", releases_},
                      {"command", json::array({"bin/svc"})},
                      {"env", {{"GREETING", "hello"}}},
                      {"stop_timeout", 5000}};
    ctx_.env = env_;
    ctx_.store = store_.get();
    ctx_.state_dir = state_;
    ctx_.run_id = "run-1";
    ctx_.progress = [this](const std::string& line) { progress_.push_back(line); };
  }

  void TearDown() override {
    // Never leave a service behind, whatever the test did.
    auto d = ProcessDriverInfo().factory();
    (void)d->Stop(spec_, ctx_);
  }

  void MakeSleeperRelease(const std::string& name) {
    WriteFileOrDie(JoinPath(releases_, name + "/bin/svc"), kSleeper, 0755);
  }

  // A richer release: nested dirs, modes, a symlink, an empty directory.
  void MakeRichRelease(const std::string& name) {
    std::string d = JoinPath(releases_, name);
    WriteFileOrDie(d + "/bin/svc", kSleeper, 0755);
    WriteFileOrDie(d + "/config.json", "{\"version\": \"" + name + "\"}\n", 0640);
    WriteFileOrDie(d + "/lib/deep/data.bin", std::string(100000, 'x') + name, 0600);
    ASSERT_EQ(::symlink("lib/deep/data.bin", (d + "/data-link").c_str()), 0);
    ASSERT_TRUE(env_->fs()->CreateDirs(d + "/empty", 0700).ok());
    ASSERT_EQ(::chmod((d + "/empty").c_str(), 0700), 0);
  }

  Status Deploy(const std::string& release) {
    return driver_->Restore(spec_, json{{"release", release}}, ctx_);
  }

  std::optional<json> Record() {
    std::string text = ReadOrEmpty(state_ + "/components/orchestrator/process.json");
    if (text.empty()) return std::nullopt;
    return json::parse(text);
  }

  pid_t RecordedPid() {
    auto r = Record();
    return r ? (*r)["pid"].get<pid_t>() : 0;
  }

  bool Alive(pid_t pid) { return env_->processes()->IsAlive(pid); }

  std::string Log() const { return state_ + "/logs/orchestrator.log"; }

  // Waits (up to 10 s) until the service's log holds `needle`.
  bool WaitForLog(const std::string& needle) {
    for (int i = 0; i < 1000; ++i) {
      if (ReadOrEmpty(Log()).find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Waits (up to 10 s) until `pid` has exited.
  bool WaitForExit(pid_t pid) {
    for (int i = 0; i < 1000; ++i) {
      if (!Alive(pid)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // The processes started for this service, recorded or not.
  std::vector<ProcessIdentity> ServiceProcesses() {
    return env_->processes()->FindByEnvironment(
        {"BACKSTOP_COMPONENT=orchestrator", "BACKSTOP_STATE_DIR=" + state_});
  }

  // Stores a restore point holding `entry` for the service.
  void WriteRestorePointWith(const json& entry) {
    RestorePoint rp;
    rp.id = NewRestorePointId(env_->clock()->WallMicros());
    rp.components["orchestrator"] = entry;
    ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  }

  bool AnyProgressContains(const std::string& needle) {
    for (const auto& l : progress_) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }

  TempDir dir_;
  Env* env_ = nullptr;
  std::string releases_, current_, state_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Driver> driver_;
  ComponentSpec spec_;
  DriverContext ctx_{*Env::Default()};
  std::vector<std::string> progress_;
};

TEST(NaturalLessTest, NumbersCompareByValue) {
  std::vector<std::string> v = {"v10", "v2", "v1", "v1.10.0", "v1.9.3", "alpha", "v02"};
  std::sort(v.begin(), v.end(), NaturalLess);
  EXPECT_EQ(v, (std::vector<std::string>{"alpha", "v1", "v1.9.3", "v1.10.0", "v2", "v02", "v10"}));
  EXPECT_FALSE(NaturalLess("v2", "v2"));
}

TEST_F(ProcessDriverTest, SchemaDescribesTheSettings) {
  DriverInfo info = ProcessDriverInfo();
  EXPECT_EQ(info.name, "process");
  EXPECT_EQ(info.kinds, std::vector<std::string>{"service"});
  std::map<std::string, SettingSchema> by_key;
  for (const auto& s : info.settings) by_key[s.key] = s;
  ASSERT_EQ(by_key.size(), 7u);
  EXPECT_TRUE(by_key["releases"].required);
  EXPECT_EQ(by_key["releases"].type, SettingSchema::Type::kPath);
  EXPECT_TRUE(by_key["command"].required);
  EXPECT_EQ(by_key["command"].type, SettingSchema::Type::kStringList);
  EXPECT_FALSE(by_key["current"].required);
  EXPECT_EQ(by_key["env"].type, SettingSchema::Type::kStringMap);
  EXPECT_EQ(by_key["stop_timeout"].type, SettingSchema::Type::kDuration);
  EXPECT_EQ(by_key["stop_timeout"].default_value, "10s");
  EXPECT_EQ(by_key["log"].type, SettingSchema::Type::kPath);
  EXPECT_EQ(by_key["check_listener"].type, SettingSchema::Type::kBool);
  EXPECT_EQ(by_key["check_listener"].default_value, true);
  EXPECT_TRUE(driver_->IsService());
}

TEST_F(ProcessDriverTest, SpecParserAppliesTheSchema) {
  const std::string yaml =
      "environment: test\n"
      "components:\n"
      "  orchestrator:\n"
      "    kind: service\n"
      "    driver: process\n"
      "    releases: app/releases\n"
      "    command: bin/svc\n"
      "    env: {GREETING: hi}\n";
  auto spec = ParseSpec(yaml, dir_.Join("backstop.yaml"), DriverRegistry::Global());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const json& settings = spec->components.at("orchestrator").settings;
  EXPECT_EQ(settings["releases"], releases_);
  EXPECT_EQ(settings["command"], json::array({"bin/svc"}));
  EXPECT_EQ(settings["stop_timeout"], 10000);
  EXPECT_EQ(settings["env"], (json{{"GREETING", "hi"}}));

  MakeSleeperRelease("v1");
  ASSERT_TRUE(
      driver_->Restore(spec->components.at("orchestrator"), json{{"release", "v1"}}, ctx_).ok());
  EXPECT_EQ(*CurrentRelease(spec->components.at("orchestrator"), env_), "v1");
  EXPECT_TRUE(env_->fs()->Exists(current_));  // the default: next to the releases directory

  auto bad = ParseSpec(
      "components:\n  orchestrator:\n    kind: service\n    driver: process\n"
      "    releases: app/releases\n",
      dir_.Join("backstop.yaml"), DriverRegistry::Global());
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("command"), std::string::npos) << bad.status().message();
}

TEST_F(ProcessDriverTest, ListReleasesSortsNaturallyAndHidesAsideCopies) {
  for (const char* r : {"v10", "v2", "v1", ".v1.replaced-run-0"}) MakeSleeperRelease(r);
  WriteFileOrDie(JoinPath(releases_, "NOTES.txt"), "not a release");
  auto list = ListReleases(spec_, env_);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(*list, (std::vector<std::string>{"v1", "v2", "v10"}));

  EXPECT_TRUE(CurrentRelease(spec_, env_).status().IsNotFound());
  ASSERT_TRUE(Deploy("v10").ok());
  auto cur = CurrentRelease(spec_, env_);
  ASSERT_TRUE(cur.ok()) << cur.status().ToString();
  EXPECT_EQ(*cur, "v10");
}

TEST_F(ProcessDriverTest, ReleaseSwitchIsAtomicAndIdempotent) {
  MakeSleeperRelease("v1");
  MakeSleeperRelease("v2");
  ASSERT_TRUE(Deploy("v1").ok());
  EXPECT_EQ(ReadOrEmpty(current_ + "/bin/svc"), kSleeper);
  auto link = env_->fs()->ReadLink(current_);
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(*link, releases_ + "/v1");

  // A reader never sees `current` missing while it flips back and forth.
  std::atomic<bool> stop{false};
  std::atomic<int> missing{0}, reads{0};
  std::thread reader([&] {
    while (!stop) {
      char buf[4096];
      if (::readlink(current_.c_str(), buf, sizeof buf) < 0) ++missing;
      ++reads;
    }
  });
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(Deploy(i % 2 ? "v1" : "v2").ok());
  stop = true;
  reader.join();
  EXPECT_EQ(missing.load(), 0) << "of " << reads.load() << " reads";

  // Deploying what is deployed changes nothing.
  ASSERT_TRUE(Deploy("v1").ok());
  struct stat before {};
  ASSERT_EQ(::lstat(current_.c_str(), &before), 0);
  progress_.clear();
  ASSERT_TRUE(Deploy("v1").ok());
  struct stat after {};
  ASSERT_EQ(::lstat(current_.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_TRUE(progress_.empty());
  EXPECT_TRUE(driver_->VerifyRestored(spec_, json{{"release", "v1"}}, ctx_).ok());
  EXPECT_FALSE(driver_->VerifyRestored(spec_, json{{"release", "v2"}}, ctx_).ok());
}

TEST_F(ProcessDriverTest, UnknownReleaseListsTheAvailableOnes) {
  MakeSleeperRelease("v1");
  MakeSleeperRelease("v2");
  Status st = Deploy("v7");
  EXPECT_TRUE(st.IsNotFound()) << st.ToString();
  EXPECT_NE(st.message().find("available: v1, v2"), std::string::npos) << st.message();
  EXPECT_FALSE(env_->fs()->Exists(current_));
  EXPECT_EQ(Deploy("../v1").code(), Status::Code::kInvalidArgument);
}

TEST_F(ProcessDriverTest, StartStopAreIdempotent) {
  MakeSleeperRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  pid_t pid = RecordedPid();
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(Alive(pid));
  auto rec = Record();
  EXPECT_EQ((*rec)["release"], "v1");
  EXPECT_EQ((*rec)["start_ticks"].get<uint64_t>(), *env_->processes()->StartTicks(pid));

  // Started again: still the same process.
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  EXPECT_EQ(RecordedPid(), pid);
  EXPECT_TRUE(AnyProgressContains("already running"));

  // The service got its environment, working directory and log.
  std::string log = Log();
  EXPECT_TRUE(WaitForLog("svc "));
  EXPECT_NE(ReadOrEmpty(log).find("svc orchestrator v1 up in " + releases_ + "/v1 GREETING=hello"),
            std::string::npos)
      << ReadOrEmpty(log);

  auto described = driver_->Describe(spec_, ctx_);
  ASSERT_TRUE(described.ok());
  EXPECT_EQ((*described)["running"], true);
  EXPECT_EQ((*described)["pid"], pid);
  EXPECT_EQ((*described)["release"], "v1");
  EXPECT_EQ((*described)["releases"], json::array({"v1"}));

  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  EXPECT_FALSE(Alive(pid));
  EXPECT_FALSE(Record().has_value());
  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());  // not running: fine

  // Restart after a stop gives a new process.
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  pid_t pid2 = RecordedPid();
  EXPECT_TRUE(Alive(pid2));
  EXPECT_NE(pid2, pid);
}

TEST_F(ProcessDriverTest, RecordSurvivesANewBackstopProcess) {
  MakeSleeperRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  pid_t pid = RecordedPid();
  driver_.reset();  // backstop exits (or crashes); the service keeps running

  auto fresh = ProcessDriverInfo().factory();
  auto described = fresh->Describe(spec_, ctx_);
  ASSERT_TRUE(described.ok());
  EXPECT_EQ((*described)["running"], true);
  EXPECT_EQ((*described)["pid"], pid);
  ASSERT_TRUE(fresh->Start(spec_, ctx_).ok());
  EXPECT_EQ(RecordedPid(), pid);
  HealthResult h = fresh->Health(spec_, ctx_);  // no probe: the process itself
  EXPECT_TRUE(h.pass()) << h.detail;
  EXPECT_GT(h.signals.count("memory_bytes"), 0u);
  ASSERT_TRUE(fresh->Stop(spec_, ctx_).ok());
  EXPECT_FALSE(Alive(pid));
  h = fresh->Health(spec_, ctx_);
  EXPECT_EQ(h.state, HealthResult::State::kUnknown);
}

TEST_F(ProcessDriverTest, StartOnAnotherReleaseStopsTheOldProcessFirst) {
  MakeSleeperRelease("v1");
  MakeSleeperRelease("v2");
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  pid_t old_pid = RecordedPid();
  ASSERT_TRUE(Deploy("v2").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  EXPECT_FALSE(Alive(old_pid));
  pid_t new_pid = RecordedPid();
  EXPECT_NE(new_pid, old_pid);
  EXPECT_TRUE(Alive(new_pid));
  EXPECT_EQ((*Record())["release"], "v2");
}

TEST_F(ProcessDriverTest, SigtermIgnoringServiceGetsSigkillAfterTheStopTimeout) {
  WriteFileOrDie(JoinPath(releases_, "v1/bin/svc"),
                 "#!/bin/sh\ntrap '' TERM\necho stubborn\nwhile true; do sleep 0.05; done\n", 0755);
  spec_.settings["stop_timeout"] = "300ms";  // also accepted as text
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  pid_t pid = RecordedPid();
  // The script says "stubborn" once its trap is set.
  ASSERT_TRUE(WaitForLog("stubborn")) << ReadOrEmpty(Log());
  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  EXPECT_FALSE(Alive(pid));
  EXPECT_TRUE(AnyProgressContains("sending SIGKILL"));
  EXPECT_FALSE(Record().has_value());
}

// True if `pid` has a SIGTERM pending (it blocks SIGTERM, so one sent stays pending).
bool SigtermPending(pid_t pid) {
  std::string status = ReadOrEmpty("/proc/" + std::to_string(pid) + "/status");
  auto at = status.find("ShdPnd:");
  if (at == std::string::npos) return false;
  uint64_t pending = std::strtoull(status.c_str() + at + 7, nullptr, 16);
  return (pending & (1ull << (SIGTERM - 1))) != 0;
}

TEST_F(ProcessDriverTest, RecycledPidIsNeverSignalled) {
  // Someone else's process, with the pid our record names but another start
  // time. It blocks SIGTERM, so a SIGTERM sent to it would stay visible as
  // pending: what Stop did is known the moment it returns.
  pid_t other = ::fork();
  ASSERT_GE(other, 0);
  if (other == 0) {
    ::setsid();
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &term, nullptr);
    ::execlp("sleep", "sleep", "600", static_cast<char*>(nullptr));
    _exit(127);
  }
  auto pid = std::optional<pid_t>(other);
  auto ticks = env_->processes()->StartTicks(*pid);
  ASSERT_TRUE(ticks.ok());
  WriteFileOrDie(state_ + "/components/orchestrator/process.json",
                 json{{"pid", *pid}, {"start_ticks", *ticks + 1}, {"release", "v1"}}.dump());
  MakeSleeperRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());

  auto described = driver_->Describe(spec_, ctx_);
  ASSERT_TRUE(described.ok());
  EXPECT_EQ((*described)["running"], false);
  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  EXPECT_TRUE(Alive(*pid));
  EXPECT_FALSE(SigtermPending(*pid));
  EXPECT_TRUE(AnyProgressContains("belongs to another process"));
  EXPECT_FALSE(Record().has_value());

  // Start with such a stale record starts a new process and leaves the other alone.
  WriteFileOrDie(state_ + "/components/orchestrator/process.json",
                 json{{"pid", *pid}, {"start_ticks", *ticks + 1}, {"release", "v1"}}.dump());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  EXPECT_NE(RecordedPid(), *pid);
  EXPECT_TRUE(Alive(*pid));
  EXPECT_FALSE(SigtermPending(*pid));
  // The checked signal refuses a wrong start time, and reaches the right one.
  EXPECT_TRUE(env_->processes()->SignalIfSame({*pid, *ticks + 1}, SIGKILL, true).IsNotFound());
  EXPECT_TRUE(Alive(*pid));
  EXPECT_TRUE(env_->processes()->SignalIfSame({*pid, *ticks}, SIGTERM, false).ok());
  EXPECT_TRUE(SigtermPending(*pid));
  (void)env_->processes()->Signal(*pid, SIGKILL, true);
  int status = 0;
  ::waitpid(*pid, &status, 0);
}

TEST_F(ProcessDriverTest, ImmediateExitIsReportedWithTheLog) {
  WriteFileOrDie(JoinPath(releases_, "v1/bin/svc"),
                 "#!/bin/sh\necho 'fatal: cannot open config.json' >&2\nexit 3\n", 0755);
  ASSERT_TRUE(Deploy("v1").ok());
  Status st = driver_->Start(spec_, ctx_);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kUnavailable);
  EXPECT_NE(st.message().find("exited right after it started"), std::string::npos);
  EXPECT_NE(st.message().find("fatal: cannot open config.json"), std::string::npos) << st.message();
  EXPECT_FALSE(Record().has_value());
  std::string diag = driver_->Diagnose(spec_, ctx_);
  EXPECT_NE(diag.find("not running"), std::string::npos) << diag;
  EXPECT_NE(diag.find("fatal: cannot open config.json"), std::string::npos) << diag;
}

TEST_F(ProcessDriverTest, MissingExecutableIsReported) {
  ASSERT_TRUE(env_->fs()->CreateDirs(JoinPath(releases_, "v1")).ok());
  ASSERT_TRUE(Deploy("v1").ok());
  Status st = driver_->Start(spec_, ctx_);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("cannot execute"), std::string::npos) << st.message();
}

TEST_F(ProcessDriverTest, StartWithoutADeployedReleaseFails) {
  Status st = driver_->Start(spec_, ctx_);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("deploy a release first"), std::string::npos);
}

TEST_F(ProcessDriverTest, BareCommandFromPathAndCustomCurrentAndLog) {
  ASSERT_TRUE(env_->fs()->CreateDirs(JoinPath(releases_, "v1")).ok());
  WriteFileOrDie(JoinPath(releases_, "v1/marker"), "v1 marker\n");
  spec_.settings["command"] = json::array({"sh", "-c", "cat marker; exec sleep 600"});
  spec_.settings["current"] = dir_.Join("elsewhere/live");
  spec_.settings["log"] = dir_.Join("logs/custom.log");
  ASSERT_TRUE(Deploy("v1").ok());
  EXPECT_TRUE(env_->fs()->Exists(dir_.Join("elsewhere/live")));
  EXPECT_FALSE(env_->fs()->Exists(current_));
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  for (int i = 0;
       i < 200 && ReadOrEmpty(dir_.Join("logs/custom.log")).find("v1 marker") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(ReadOrEmpty(dir_.Join("logs/custom.log")).find("v1 marker"), std::string::npos);
}

TEST_F(ProcessDriverTest, NothingDeployedSnapshotAndRestore) {
  auto entry = driver_->Snapshot(spec_, ctx_);
  ASSERT_TRUE(entry.ok()) << entry.status().ToString();
  EXPECT_TRUE((*entry)["release"].is_null());
  EXPECT_EQ((*entry)["blobs"], json::array());

  MakeSleeperRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Restore(spec_, *entry, ctx_).ok());
  EXPECT_FALSE(env_->fs()->Exists(current_));
  EXPECT_TRUE(env_->fs()->Exists(JoinPath(releases_, "v1/bin/svc")));  // releases are kept
  EXPECT_TRUE(driver_->VerifyRestored(spec_, *entry, ctx_).ok());
  ASSERT_TRUE(driver_->Restore(spec_, *entry, ctx_).ok());  // idempotent
}

TEST_F(ProcessDriverTest, SnapshotStoresTheTreeAndRestoresADeletedRelease) {
  MakeRichRelease("v1");
  MakeSleeperRelease("v2");
  ASSERT_TRUE(Deploy("v1").ok());
  auto entry = driver_->Snapshot(spec_, ctx_);
  ASSERT_TRUE(entry.ok()) << entry.status().ToString();
  EXPECT_EQ((*entry)["release"], "v1");
  ASSERT_TRUE((*entry)["release_tree"].is_string());
  // Tree + three distinct files.
  EXPECT_EQ((*entry)["blobs"].size(), 4u);
  for (const auto& b : (*entry)["blobs"]) EXPECT_TRUE(store_->Has(b.get<std::string>()));

  // An unchanged re-snapshot names the same tree.
  auto again = driver_->Snapshot(spec_, ctx_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)["release_tree"], (*entry)["release_tree"]);

  ASSERT_TRUE(Deploy("v2").ok());
  ASSERT_TRUE(env_->fs()->RemoveAll(JoinPath(releases_, "v1")).ok());
  EXPECT_TRUE(Deploy("v1").IsNotFound());  // without the tree there is nothing to rebuild from

  ASSERT_TRUE(driver_->Restore(spec_, *entry, ctx_).ok());
  std::string v1 = JoinPath(releases_, "v1");
  EXPECT_EQ(ReadOrEmpty(v1 + "/config.json"), "{\"version\": \"v1\"}\n");
  EXPECT_EQ(ModeOf(v1 + "/config.json"), 0640u);
  EXPECT_EQ(ModeOf(v1 + "/bin/svc"), 0755u);
  EXPECT_EQ(ModeOf(v1 + "/lib/deep/data.bin"), 0600u);
  EXPECT_EQ(ReadOrEmpty(v1 + "/lib/deep/data.bin"), std::string(100000, 'x') + "v1");
  EXPECT_EQ(*env_->fs()->ReadLink(v1 + "/data-link"), "lib/deep/data.bin");
  EXPECT_EQ(ModeOf(v1 + "/empty"), 0700u);
  EXPECT_EQ(*CurrentRelease(spec_, env_), "v1");
  EXPECT_FALSE(env_->fs()->Exists(JoinPath(releases_, ".v1.restoring")));
  EXPECT_TRUE(driver_->VerifyRestored(spec_, *entry, ctx_).ok());

  // Idempotent: a second restore finds everything in place and moves nothing aside.
  ASSERT_TRUE(driver_->Restore(spec_, *entry, ctx_).ok());
  auto names = env_->fs()->ListDir(releases_);
  EXPECT_EQ(*names, (std::vector<std::string>{"v1", "v2"}));

  // The restored release runs.
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  EXPECT_TRUE(Alive(RecordedPid()));
}

TEST_F(ProcessDriverTest, ModifiedReleaseIsMovedAsideAndRebuilt) {
  MakeRichRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());
  auto entry = driver_->Snapshot(spec_, ctx_);
  ASSERT_TRUE(entry.ok()) << entry.status().ToString();

  std::string v1 = JoinPath(releases_, "v1");
  WriteFileOrDie(v1 + "/config.json", "{\"version\": \"hotfixed\"}\n", 0640);
  WriteFileOrDie(v1 + "/stray.txt", "left by hand\n");
  Status verify = driver_->VerifyRestored(spec_, *entry, ctx_);
  EXPECT_FALSE(verify.ok());
  EXPECT_NE(verify.message().find("config.json changed"), std::string::npos) << verify.message();

  ASSERT_TRUE(driver_->Restore(spec_, *entry, ctx_).ok());
  EXPECT_EQ(ReadOrEmpty(v1 + "/config.json"), "{\"version\": \"v1\"}\n");
  EXPECT_FALSE(env_->fs()->Exists(v1 + "/stray.txt"));
  std::string aside = JoinPath(releases_, ".v1.replaced-run-1");
  EXPECT_EQ(ReadOrEmpty(aside + "/config.json"), "{\"version\": \"hotfixed\"}\n");
  EXPECT_EQ(ReadOrEmpty(aside + "/stray.txt"), "left by hand\n");
  EXPECT_TRUE(AnyProgressContains("moved it aside"));
  EXPECT_TRUE(driver_->VerifyRestored(spec_, *entry, ctx_).ok());

  // A mode change alone is a difference too; the second aside copy gets its own name.
  ASSERT_EQ(::chmod((v1 + "/config.json").c_str(), 0666), 0);
  ASSERT_TRUE(driver_->Restore(spec_, *entry, ctx_).ok());
  EXPECT_EQ(ModeOf(v1 + "/config.json"), 0640u);
  EXPECT_TRUE(env_->fs()->Exists(JoinPath(releases_, ".v1.replaced-run-1-2")));
  EXPECT_EQ(*ListReleases(spec_, env_), std::vector<std::string>{"v1"});

  // Prune removes what this run set aside, and nothing else.
  WriteFileOrDie(JoinPath(releases_, ".v1.replaced-run-10/keep"), "another run's copy");
  ASSERT_TRUE(driver_->Prune(spec_, "run-1", ctx_).ok());
  EXPECT_EQ(*env_->fs()->ListDir(releases_),
            (std::vector<std::string>{".v1.replaced-run-10", "v1"}));
}

TEST_F(ProcessDriverTest, CorruptBlobLeavesTheLiveReleaseAlone) {
  MakeRichRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());
  auto entry = driver_->Snapshot(spec_, ctx_);
  ASSERT_TRUE(entry.ok());
  std::string v1 = JoinPath(releases_, "v1");
  WriteFileOrDie(v1 + "/config.json", "{\"version\": \"hotfixed\"}\n", 0640);
  // Damage the blob of the big file (the only one larger than 100 kB).
  for (const auto& b : (*entry)["blobs"]) {
    auto size = store_->SizeOf(b.get<std::string>());
    if (size.ok() && *size > 100000) {
      std::string path = store_->BlobPath(b.get<std::string>());
      ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
      std::string raw = ReadOrEmpty(path);
      raw[raw.size() / 2] ^= 0x5a;
      WriteFileOrDie(path, raw);
    }
  }
  Status st = driver_->Restore(spec_, *entry, ctx_);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not touched"), std::string::npos) << st.message();
  EXPECT_EQ(ReadOrEmpty(v1 + "/config.json"), "{\"version\": \"hotfixed\"}\n");
  EXPECT_FALSE(env_->fs()->Exists(JoinPath(releases_, ".v1.restoring")));
  EXPECT_FALSE(env_->fs()->Exists(JoinPath(releases_, ".v1.replaced-run-1")));
}

// A spawned process runs nothing until the caller has recorded it: it is
// held, already leading its own session, while before_exec runs.
TEST_F(ProcessDriverTest, SpawnHoldsTheProcessUntilItIsRecorded) {
  const std::string ran = dir_.Join("ran");
  ProcessOptions opts;
  opts.argv = {"sh", "-c", "echo yes > " + ran + "; exec sleep 600"};
  pid_t held = 0;
  opts.before_exec = [&](pid_t pid) -> Status {
    held = pid;
    EXPECT_TRUE(Alive(pid));
    EXPECT_EQ(SessionOf(env_->fs(), pid), pid);  // its own session and group: pid == pgid == sid
    EXPECT_FALSE(env_->fs()->Exists(ran));       // held: the command has not run
    return Status::OK();
  };
  auto pid = env_->processes()->SpawnDetached(opts);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  EXPECT_EQ(*pid, held);
  for (int i = 0; i < 1000 && !env_->fs()->Exists(ran); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(env_->fs()->Exists(ran));
  (void)env_->processes()->Signal(*pid, SIGKILL, true);

  // Refused (or the caller died): the held process exits having run nothing.
  opts.before_exec = [&](pid_t pid) -> Status {
    held = pid;
    return Status::IOError("cannot write the record");
  };
  ASSERT_TRUE(env_->fs()->Remove(ran).ok());
  auto refused = env_->processes()->SpawnDetached(opts);
  EXPECT_EQ(refused.status().code(), Status::Code::kIOError);
  ASSERT_TRUE(WaitForExit(held));
  EXPECT_FALSE(env_->fs()->Exists(ran));
}

TEST_F(ProcessDriverTest, RecordNamesTheSessionBeforeTheServiceRuns) {
  MakeSleeperRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  auto rec = Record();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ((*rec)["pgid"], (*rec)["pid"]);
  EXPECT_EQ((*rec)["released"], true);
  EXPECT_EQ(SessionOf(env_->fs(), RecordedPid()), RecordedPid());
}

// A process whose record says it was never confirmed released (its backstop
// died around the release) is not trusted as running: it is replaced.
TEST_F(ProcessDriverTest, UnconfirmedRecordedProcessIsReplaced) {
  MakeSleeperRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  pid_t first = RecordedPid();
  json rec = *Record();
  rec["released"] = false;
  WriteFileOrDie(state_ + "/components/orchestrator/process.json", rec.dump());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  EXPECT_FALSE(Alive(first));
  EXPECT_NE(RecordedPid(), first);
  ASSERT_EQ(ServiceProcesses().size(), 1u);
  EXPECT_EQ(ServiceProcesses()[0].pid, RecordedPid());
}

// Processes of the service that nothing records (left by a start that was
// interrupted before its record, or by an older backstop) are found by their
// environment: Stop stops them, Start replaces them instead of adding one.
TEST_F(ProcessDriverTest, UnrecordedProcessesOfTheServiceAreStopped) {
  MakeSleeperRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  pid_t orphan = RecordedPid();
  ASSERT_TRUE(env_->fs()->Remove(state_ + "/components/orchestrator/process.json").ok());

  // Another environment's process of the same name is not ours.
  ComponentSpec other = spec_;
  DriverContext other_ctx = ctx_;
  other_ctx.state_dir = dir_.Join("other-state");
  auto other_driver = ProcessDriverInfo().factory();
  ASSERT_TRUE(other_driver->Start(other, other_ctx).ok());
  pid_t foreign =
      json::parse(ReadOrEmpty(other_ctx.state_dir + "/components/orchestrator/process.json"))["pid"]
          .get<pid_t>();

  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  EXPECT_FALSE(Alive(orphan));
  EXPECT_TRUE(AnyProgressContains("that no record names"));
  ASSERT_EQ(ServiceProcesses().size(), 1u);
  EXPECT_EQ(ServiceProcesses()[0].pid, RecordedPid());

  pid_t second = RecordedPid();
  ASSERT_TRUE(env_->fs()->Remove(state_ + "/components/orchestrator/process.json").ok());
  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  EXPECT_FALSE(Alive(second));
  EXPECT_TRUE(ServiceProcesses().empty());
  EXPECT_TRUE(Alive(foreign));
  ASSERT_TRUE(other_driver->Stop(other, other_ctx).ok());
  EXPECT_FALSE(Alive(foreign));
}

// A helper the service detached into its own session is the service's: a
// Start that finds the service running leaves it alone, Stop stops it too.
TEST_F(ProcessDriverTest, DetachedHelperOfTheServiceIsStoppedWithIt) {
  WriteFileOrDie(JoinPath(releases_, "v1/bin/svc"),
                 "#!/bin/sh\nsetsid sleep 600 &\necho \"helper $!\"\nexec sleep 600\n", 0755);
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  ASSERT_TRUE(WaitForLog("helper ")) << ReadOrEmpty(Log());
  const std::string log = ReadOrEmpty(Log());
  const pid_t helper = std::atoi(log.c_str() + log.find("helper ") + 7);
  ASSERT_GT(helper, 0);
  ASSERT_TRUE(Alive(helper));
  EXPECT_NE(SessionOf(env_->fs(), helper),
            RecordedPid());  // outside the service's group and session
  const pid_t service = RecordedPid();

  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  EXPECT_EQ(RecordedPid(), service);
  EXPECT_TRUE(Alive(helper));
  EXPECT_EQ(ServiceProcesses().size(), 2u);

  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  EXPECT_FALSE(Alive(service));
  EXPECT_FALSE(Alive(helper));
  EXPECT_TRUE(ServiceProcesses().empty());
}

// The health gate passes only when the process it started serves the port:
// here the port is served by this test process, while the started service
// only sleeps.
TEST_F(ProcessDriverTest, HealthFailsWhenAnotherProcessServesThePort) {
  httplib::Server impostor;
  impostor.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  const int port = impostor.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  // Bound and listening already: connections queue until the thread accepts them.
  std::thread serving([&] { impostor.listen_after_bind(); });

  MakeSleeperRelease("v1");
  spec_.health.type = ProbeSpec::Type::kHttp;
  spec_.health.target = "http://localhost:" + std::to_string(port) + "/health";
  spec_.health.timeout_ms = 1000;
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  EXPECT_TRUE(RunProbe(spec_.health, env_).pass());  // the probe alone is fooled
  HealthResult h = driver_->Health(spec_, ctx_);
  EXPECT_EQ(h.state, HealthResult::State::kFail) << h.detail;
  EXPECT_NE(h.detail.find("served by pid " + std::to_string(::getpid())), std::string::npos)
      << h.detail;

  ProbeSpec tcp = spec_.health;
  tcp.type = ProbeSpec::Type::kTcp;
  tcp.target = "127.0.0.1:" + std::to_string(port);
  EXPECT_NE(ForeignListener(env_->fs(), tcp, RecordedPid(), "orchestrator"), "");
  EXPECT_EQ(ForeignListener(env_->fs(), tcp, ::getpid(), "orchestrator"),
            "");  // the test's own session

  // A probe that goes through a local proxy opts out.
  spec_.settings["check_listener"] = false;
  EXPECT_TRUE(driver_->Health(spec_, ctx_).pass());
  impostor.stop();
  serving.join();
}

TEST_F(ProcessDriverTest, PrepareRebuildsAMissingReleaseBeforeAnythingStops) {
  MakeRichRelease("v1");
  MakeSleeperRelease("v2");
  ASSERT_TRUE(Deploy("v1").ok());
  auto entry = driver_->Snapshot(spec_, ctx_);
  ASSERT_TRUE(entry.ok()) << entry.status().ToString();
  WriteRestorePointWith(*entry);
  ASSERT_TRUE(Deploy("v2").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  pid_t running = RecordedPid();
  ASSERT_TRUE(env_->fs()->RemoveAll(JoinPath(releases_, "v1")).ok());

  // `--to v1` or the history name only the release: its files come from the
  // restore point that holds them, and the running v2 is left alone.
  const json by_name = {{"release", "v1"}};
  EXPECT_TRUE(driver_->CheckRestorable(spec_, by_name, ctx_).ok());
  Status prepared = driver_->Prepare(spec_, by_name, ctx_);
  ASSERT_TRUE(prepared.ok()) << prepared.ToString();
  EXPECT_EQ(ReadOrEmpty(JoinPath(releases_, "v1/config.json")), "{\"version\": \"v1\"}\n");
  EXPECT_EQ(*CurrentRelease(spec_, env_), "v2");
  EXPECT_TRUE(Alive(running));
  ASSERT_TRUE(driver_->Restore(spec_, by_name, ctx_).ok());
  EXPECT_EQ(*CurrentRelease(spec_, env_), "v1");

  // The same from the entry's own tree.
  ASSERT_TRUE(Deploy("v2").ok());
  ASSERT_TRUE(env_->fs()->RemoveAll(JoinPath(releases_, "v1")).ok());
  ASSERT_TRUE(driver_->Prepare(spec_, *entry, ctx_).ok());
  EXPECT_TRUE(driver_->VerifyRestored(spec_, json{{"release", "v2"}}, ctx_).ok());
  EXPECT_TRUE(env_->fs()->Exists(JoinPath(releases_, "v1/lib/deep/data.bin")));
}

TEST_F(ProcessDriverTest, PrepareRefusesAReleaseNothingCanRebuild) {
  MakeSleeperRelease("v2");
  ASSERT_TRUE(Deploy("v2").ok());
  const json by_name = {{"release", "v1"}};
  Status prepared = driver_->Prepare(spec_, by_name, ctx_);
  EXPECT_TRUE(prepared.IsNotFound()) << prepared.ToString();
  EXPECT_NE(prepared.message().find("no restore point holds its files; available: v2"),
            std::string::npos)
      << prepared.message();
  EXPECT_TRUE(driver_->CheckRestorable(spec_, by_name, ctx_).IsNotFound());
}

TEST_F(ProcessDriverTest, CheckRestorableReportsAMissingBlob) {
  MakeRichRelease("v1");
  ASSERT_TRUE(Deploy("v1").ok());
  auto entry = driver_->Snapshot(spec_, ctx_);
  ASSERT_TRUE(entry.ok()) << entry.status().ToString();
  EXPECT_TRUE(driver_->CheckRestorable(spec_, *entry, ctx_).ok());
  // The blob of the big file goes missing from the store.
  for (const auto& b : (*entry)["blobs"]) {
    auto size = store_->SizeOf(b.get<std::string>());
    if (size.ok() && *size > 100000) {
      ASSERT_EQ(::unlink(store_->BlobPath(b.get<std::string>()).c_str()), 0);
    }
  }
  Status st = driver_->CheckRestorable(spec_, *entry, ctx_);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("lib/deep/data.bin"), std::string::npos) << st.message();
  // Prepare refuses too when the release would have to be rebuilt.
  ASSERT_TRUE(env_->fs()->RemoveAll(JoinPath(releases_, "v1")).ok());
  EXPECT_EQ(driver_->Prepare(spec_, *entry, ctx_).code(), Status::Code::kFailedPrecondition);
  EXPECT_FALSE(env_->fs()->Exists(JoinPath(releases_, "v1")));
}

// The required "process rollback against real child processes" test: v2 is
// deployed, fails its health gate, and Backstop's driver calls bring v1 back.
TEST_F(ProcessDriverTest, UnhealthyV2RollsBackToHealthyV1) {
  for (auto [version, healthy] : {std::pair{"v1", "true"}, std::pair{"v2", "false"}}) {
    std::string cmd = std::string(DEMO_SERVICE_BIN) + " make-release --role orchestrator" +
                      " --version " + version + " --healthy " + healthy + " --dir " +
                      JoinPath(releases_, version);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  const int port = UnusedPort();
  spec_.settings["command"] = json::array({"bin/orchestrator"});
  spec_.settings["env"] = {{"PORT", std::to_string(port)}};
  spec_.health.type = ProbeSpec::Type::kHttp;
  spec_.health.target = "http://127.0.0.1:" + std::to_string(port) + "/health";
  spec_.health.timeout_ms = 1000;
  spec_.health.start_period_ms = 5000;

  // v1 runs and is healthy; a restore point records it.
  ASSERT_TRUE(Deploy("v1").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  HealthResult h = WaitHealthy(spec_.health, env_, 20, nullptr, nullptr);
  ASSERT_TRUE(h.pass()) << h.detail << "\n" << driver_->Diagnose(spec_, ctx_);
  h = driver_->Health(spec_, ctx_);  // the listener is the started process's own
  EXPECT_TRUE(h.pass()) << h.detail;
  auto restore_point = driver_->Snapshot(spec_, ctx_);
  ASSERT_TRUE(restore_point.ok()) << restore_point.status().ToString();

  // Deploy v2: it starts, but its health gate fails.
  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  ASSERT_TRUE(Deploy("v2").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  ProbeSpec gate = spec_.health;
  gate.start_period_ms = 500;
  std::vector<std::string> lines;
  h = WaitHealthy(gate, env_, 20, nullptr, [&](const std::string& l) { lines.push_back(l); });
  EXPECT_EQ(h.state, HealthResult::State::kFail);
  EXPECT_EQ(h.detail, "HTTP 503");
  EXPECT_EQ(driver_->Health(spec_, ctx_).state, HealthResult::State::kFail);

  // Roll back: stop, restore v1, start, gate.
  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  ASSERT_TRUE(driver_->Restore(spec_, *restore_point, ctx_).ok());
  ASSERT_TRUE(driver_->VerifyRestored(spec_, *restore_point, ctx_).ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  h = WaitHealthy(spec_.health, env_, 20, nullptr, nullptr);
  ASSERT_TRUE(h.pass()) << h.detail << "\n" << driver_->Diagnose(spec_, ctx_);

  httplib::Client client("127.0.0.1", port);
  auto version = client.Get("/version");
  ASSERT_TRUE(version);
  EXPECT_EQ(json::parse(version->body)["version"], "v1");
  EXPECT_EQ(json::parse(version->body)["pid"], RecordedPid());

  // The demo service stops gracefully on SIGTERM and says so in the log.
  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  std::string log = ReadOrEmpty(state_ + "/logs/orchestrator.log");
  EXPECT_NE(log.find("orchestrator v1 stopping on"), std::string::npos) << log;
  EXPECT_EQ(RunProbe(spec_.health, env_).detail, "connection refused");
}

// The demo service's own behaviour, which the example and the script tests rely on.
TEST_F(ProcessDriverTest, DemoServiceMetricsErrorRateAndIgnoredSigterm) {
  std::string cmd = std::string(DEMO_SERVICE_BIN) +
                    " make-release --role webui --version v3 --healthy true --error-rate 0.25" +
                    " --ignore-sigterm true --dir " + JoinPath(releases_, "v3");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const int port = UnusedPort();
  spec_.settings["command"] = json::array({"bin/webui", "--port", std::to_string(port)});
  spec_.settings["stop_timeout"] = 300;
  spec_.health.type = ProbeSpec::Type::kHttp;
  spec_.health.target = "http://127.0.0.1:" + std::to_string(port) + "/health";
  spec_.health.start_period_ms = 5000;
  ASSERT_TRUE(Deploy("v3").ok());
  ASSERT_TRUE(driver_->Start(spec_, ctx_).ok());
  HealthResult h = WaitHealthy(spec_.health, env_, 20, nullptr, nullptr);
  ASSERT_TRUE(h.pass()) << h.detail << "\n" << driver_->Diagnose(spec_, ctx_);

  httplib::Client client("127.0.0.1", port);
  int errors = 0;
  for (int i = 0; i < 20; ++i) {
    auto res = client.Get("/");
    ASSERT_TRUE(res);
    if (res->status == 500) {
      ++errors;
    } else {
      EXPECT_NE(res->body.find("webui"), std::string::npos);
      EXPECT_NE(res->body.find("v3"), std::string::npos);
    }
  }
  EXPECT_EQ(errors, 5);  // 25%, spread evenly
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("\ndemo_requests_total 20\n"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("\ndemo_errors_total 5\n"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("\ndemo_up 1\n"), std::string::npos) << metrics->body;

  pid_t pid = RecordedPid();
  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  EXPECT_FALSE(Alive(pid));
  EXPECT_TRUE(AnyProgressContains("sending SIGKILL"));
}

}  // namespace
}  // namespace backstop::process
