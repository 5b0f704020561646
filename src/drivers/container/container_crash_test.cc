// The container driver's rollback killed at every crash point
// (base/crash_point.h) and resumed, against a real podman service: each
// resume ends where an uninterrupted restore ends. Its own test program:
// crash points read their variable once per process, so no Restore may run
// in this process itself, only in the children it forks.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>

#include "testing/container_restore_fixture.h"

namespace backstop::container {
namespace {

using ContainerCrashTest = ContainerRestoreTest;

// Runs `fn` in a child process with BACKSTOP_CRASH_POINT_FOR_TEST=`point`
// (none when empty); returns its wait status. The crash points read the
// variable once per process, so every Restore here runs in a child.
int InChild(const std::string& point, const std::function<bool()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!point.empty()) ::setenv("BACKSTOP_CRASH_POINT_FOR_TEST", point.c_str(), 1);
    ::_exit(fn() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST_F(ContainerCrashTest, ACrashAtEveryStepResumesToTheSameEnd) {
  RunFirst();
  json good = Snapshot();
  std::string v1 = good["image_id"];
  std::string v2 = Image("2", kServe);
  const std::vector<std::string> points = {
      "container.after-load",  "container.after-journal", "container.after-create",
      "container.after-start", "container.after-gate",    "container.after-remove-replaced",
      "container.after-rename"};
  bool on_v1 = true;
  int n = 0;
  for (const auto& point : points) {
    SCOPED_TRACE(point);
    // Alternate: a deploy of release 2, a rollback to the restore point after
    // the image was deleted (so the load step runs).
    json entry = on_v1 ? json{{"release", "2"}} : good;
    std::string want = on_v1 ? v2 : v1;
    if (!on_v1) {
      ASSERT_TRUE(service_->Podman({"rmi", "--force", repo_ + ":1"}).ok());
    }
    ctx_.run_id = "run-crash-" + std::to_string(++n);
    auto restore = [&] {
      Status st = driver_.Stop(c_, ctx_);
      if (st.ok()) st = driver_.Restore(c_, entry, ctx_);
      if (st.ok()) st = driver_.Start(c_, ctx_);
      if (!st.ok()) std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return st.ok();
    };
    int crashed = InChild(point, restore);
    EXPECT_TRUE(WIFEXITED(crashed) || WIFSIGNALED(crashed)) << crashed;
    if (point == "container.after-load" && on_v1) {
      EXPECT_TRUE(WIFEXITED(crashed));  // a deploy loads nothing
    } else {
      ASSERT_TRUE(WIFSIGNALED(crashed) && WTERMSIG(crashed) == SIGKILL) << crashed;
    }
    int resumed = InChild("", restore);
    ASSERT_TRUE(WIFEXITED(resumed) && WEXITSTATUS(resumed) == 0) << resumed;
    auto containers = Containers();
    EXPECT_EQ(containers.size(), 1u);
    EXPECT_EQ(containers[name_].first, Short(want));
    EXPECT_EQ(containers[name_].second, "running");
    EXPECT_EQ(Served(), "up");
    EXPECT_FALSE(Env::Default()->fs()->Exists(RestoreJournalPath(c_, ctx_)));
    on_v1 = !on_v1;
  }
}

TEST_F(ContainerCrashTest, ACrashInAFailedGateResumesToTheReplacedOne) {
  RunFirst();
  std::string v1 = Client().InspectContainer(name_)->value("Image", "");
  Image("bad", kBroken);
  int n = 0;
  for (const std::string point :
       {"container.after-gate", "container.after-remove-new", "container.after-restart-replaced"}) {
    SCOPED_TRACE(point);
    ctx_.run_id = "run-bad-" + std::to_string(++n);
    auto restore = [&] {
      Status st = driver_.Stop(c_, ctx_);
      if (st.ok()) st = driver_.Restore(c_, {{"release", "bad"}}, ctx_);
      return st.ok();
    };
    int crashed = InChild(point, restore);
    ASSERT_TRUE(WIFSIGNALED(crashed) && WTERMSIG(crashed) == SIGKILL) << crashed;
    int resumed = InChild("", restore);
    EXPECT_TRUE(WIFEXITED(resumed) && WEXITSTATUS(resumed) == 1) << resumed;
    auto containers = Containers();
    EXPECT_EQ(containers.size(), 1u);
    EXPECT_EQ(containers[name_].first, Short(v1));
    EXPECT_EQ(containers[name_].second, "running");
    EXPECT_FALSE(Env::Default()->fs()->Exists(RestoreJournalPath(c_, ctx_)));
  }
}

}  // namespace
}  // namespace backstop::container
