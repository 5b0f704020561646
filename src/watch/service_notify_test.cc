#include "watch/service_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "testing/test_env.h"

namespace backstop {
namespace {

// A stand-in service manager: a unix datagram socket named by NOTIFY_SOCKET.
class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = tmp_.Join("notify.sock");
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(path_.size(), sizeof addr.sun_path);
    path_.copy(addr.sun_path, path_.size());
    ASSERT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "1000000", 1);
    ::unsetenv("WATCHDOG_PID");
  }
  void TearDown() override {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    if (fd_ >= 0) ::close(fd_);
  }
  // Every message sent so far, joined with " / " (sd_notify sends datagrams
  // synchronously, so they are all queued by now).
  std::string Received() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0) {
      out += (out.empty() ? "" : " / ") + std::string(buf, static_cast<size_t>(n));
    }
    return out;
  }

  testing::TempDir tmp_;
  std::string path_;
  int fd_ = -1;
};

TEST_F(ServiceNotifyTest, PingsAtHalfTheWatchdogIntervalFromAliveOnly) {
  ServiceNotifier n;
  ASSERT_TRUE(n.enabled());
  EXPECT_EQ(n.watchdog_usec(), 1'000'000);
  n.Ready("watching", 0);
  EXPECT_EQ(Received(), "READY=1\nSTATUS=watching\nWATCHDOG=1");
  auto status = [] { return std::string("watching"); };
  n.Alive(499'999, status);  // before half the interval: nothing
  EXPECT_EQ(Received(), "");
  n.Alive(500'000, status);
  EXPECT_EQ(Received(), "WATCHDOG=1");
  n.Alive(600'000, status);
  EXPECT_EQ(Received(), "");
}

TEST_F(ServiceNotifyTest, SendsStatusWhenItChangesAtMostOnceASecond) {
  ::unsetenv("WATCHDOG_USEC");
  ServiceNotifier n;
  EXPECT_EQ(n.watchdog_usec(), 0);
  n.Ready("a", 0);
  EXPECT_EQ(Received(), "READY=1\nSTATUS=a");
  std::string line = "b";
  n.Alive(500'000, [&] { return line; });  // too soon
  EXPECT_EQ(Received(), "");
  n.Alive(1'000'000, [&] { return line; });
  EXPECT_EQ(Received(), "STATUS=b");
  n.Alive(2'000'000, [&] { return line; });  // unchanged
  EXPECT_EQ(Received(), "");
  n.Stopping("stopping\nnow");
  EXPECT_EQ(Received(), "STOPPING=1\nSTATUS=stopping now");
}

TEST_F(ServiceNotifyTest, BoundWakesTheLoopBeforeThePingIsDue) {
  ServiceNotifier n;
  n.Ready("x", 0);
  using std::chrono::milliseconds;
  EXPECT_EQ(n.Bound(milliseconds(1000), 0), milliseconds(500));
  EXPECT_EQ(n.Bound(milliseconds(1000), 400'000), milliseconds(100));
  EXPECT_EQ(n.Bound(milliseconds(50), 400'000), milliseconds(50));
  EXPECT_EQ(n.Bound(milliseconds(1000), 900'000), milliseconds(1));  // overdue
}

TEST_F(ServiceNotifyTest, WatchdogOfAnotherProcessAndNoSocketMeanNothing) {
  ::setenv("WATCHDOG_PID", "1", 1);
  EXPECT_EQ(ServiceNotifier().watchdog_usec(), 0);
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("NOTIFY_SOCKET");
  ServiceNotifier off;
  EXPECT_FALSE(off.enabled());
  off.Ready("x", 0);
  off.Stopping("y");
  EXPECT_EQ(Received(), "");
  EXPECT_EQ(off.Bound(std::chrono::milliseconds(1000), 0), std::chrono::milliseconds(1000));
}

TEST(ServiceStatusLineTest, SaysWhatTheDaemonDoes) {
  ServiceState s;
  s.components = 1;
  EXPECT_EQ(ServiceStatusLine(s), "watching 1 component, all triggers ok");
  s.components = 4;
  s.not_ok = 2;
  s.dry_run = true;
  s.paused = true;
  s.paused_reason = "change freeze";
  s.running = "rollback of orchestrator";
  EXPECT_EQ(ServiceStatusLine(s),
            "watching 4 components; 2 triggers pending or firing; dry run; paused (change "
            "freeze); running rollback of orchestrator");
}

}  // namespace
}  // namespace backstop
