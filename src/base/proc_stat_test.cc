#include "base/proc_stat.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace backstop {
namespace {

// A real line (Linux 6.1), its command name made awkward on purpose.
constexpr char kStat[] =
    "4242 (my (odd) app) S 1 4240 4239 0 -1 4194560 1234 0 0 0 "
    "250 75 0 0 20 0 3 0 987654 123456789 3210 18446744073709551615 1 1 0 0 0 0 0 "
    "4096 0 0 0 17 1 0 0 0 0 0\n";

TEST(ProcStatTest, ParsesTheFieldsBackstopUses) {
  auto st = ParseProcStat(kStat);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->ppid, 1);
  EXPECT_EQ(st->pgrp, 4240);
  EXPECT_EQ(st->session, 4239);
  EXPECT_EQ(st->utime_ticks, 250u);
  EXPECT_EQ(st->stime_ticks, 75u);
  EXPECT_EQ(st->start_ticks, 987654u);
  EXPECT_EQ(st->rss_pages, 3210u);
}

bool IsCorruption(std::string_view text) {
  return ParseProcStat(text).status().code() == Status::Code::kCorruption;
}

TEST(ProcStatTest, RejectsTruncatedOrDamagedText) {
  EXPECT_TRUE(IsCorruption(""));
  EXPECT_TRUE(IsCorruption("   "));
  EXPECT_TRUE(IsCorruption("4242 no-parens S 1 2 3"));
  EXPECT_TRUE(IsCorruption("4242 (app) S 1 4240 4239"));
  EXPECT_TRUE(
      IsCorruption("4242 (app) S x 4240 4239 0 -1 4194560 1234 0 0 0 "
                   "250 75 0 0 20 0 3 0 987654 123456789 3210"));
}

TEST(ProcStatTest, ReadsThisProcessThroughTheFileSystem) {
  auto st = ReadProcStat(Env::Default()->fs(), ::getpid());
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->state, 'R');
  EXPECT_EQ(st->ppid, ::getppid());
  EXPECT_EQ(st->session, ::getsid(0));
  EXPECT_GT(st->start_ticks, 0u);
  EXPECT_GT(st->rss_pages, 0u);
}

TEST(ProcStatTest, AGoneProcessIsNotFound) {
  // Above /proc/sys/kernel/pid_max's largest possible value (2^22).
  EXPECT_TRUE(ReadProcStat(Env::Default()->fs(), 1 << 23).status().IsNotFound());
}

}  // namespace
}  // namespace backstop
