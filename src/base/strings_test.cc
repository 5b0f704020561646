#include "base/strings.h"

#include <gtest/gtest.h>

namespace backstop {
namespace {

TEST(StringsTest, TrimRemovesWhitespaceAtBothEnds) {
  EXPECT_EQ(Trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(Trim("\n\tx"), "x");
  EXPECT_EQ(Trim("x"), "x");
  EXPECT_EQ(Trim(""), "");
  EXPECT_EQ(Trim(" \t\r\n\v\f"), "");
  EXPECT_EQ(Trim("a\nb"), "a\nb");  // inside is kept
}

TEST(StringsTest, JoinPutsTheSeparatorBetweenItems) {
  EXPECT_EQ(Join({}), "");
  EXPECT_EQ(Join({"a"}), "a");
  EXPECT_EQ(Join({"a", "b", "c"}), "a, b, c");
  EXPECT_EQ(Join({"a", "b"}, " "), "a b");
  EXPECT_EQ(Join({"a", "b"}, ""), "ab");
  EXPECT_EQ(Join({"", "b"}, "|"), "|b");
  EXPECT_EQ(Join({"a", ""}, "|"), "a|");
}

TEST(StringsTest, PadFillsTheColumnAndSeparatesOverflow) {
  EXPECT_EQ(Pad("ab", 5), "ab   ");
  EXPECT_EQ(Pad("", 3), "   ");
  EXPECT_EQ(Pad("abcde", 5), "abcde ");
  EXPECT_EQ(Pad("abcdefg", 5), "abcdefg ");
  EXPECT_EQ(Pad("", 0), " ");
  EXPECT_EQ(Pad("caf\xc3\xa9", 6), "caf\xc3\xa9  ");  // "café" is 4 wide, 5 bytes
  EXPECT_EQ(Pad("\xe2\x9c\x93", 1), "\xe2\x9c\x93 ");
}

TEST(StringsTest, ShellQuoteKeepsEveryCharacterOneWord) {
  EXPECT_EQ(ShellQuote(""), R"('')");
  EXPECT_EQ(ShellQuote("/srv/app v1/bin"), R"('/srv/app v1/bin')");
  EXPECT_EQ(ShellQuote("it's"), R"('it'\''s')");
  EXPECT_EQ(ShellQuote("$(rm -rf /) `x` \\ \"q\""), R"('$(rm -rf /) `x` \ "q"')");
}

TEST(StringsTest, ShellJoinQuotesWordsPeopleCouldMisread) {
  EXPECT_EQ(ShellJoin({}), "");
  EXPECT_EQ(ShellJoin({"/bin/app", "--port=80"}), "/bin/app --port=80");
  EXPECT_EQ(ShellJoin({"echo", "a b", ""}), "echo 'a b' ''");
  EXPECT_EQ(ShellJoin({"x$HOME", "back\\slash", "tab\there", "\"q\""}),
            "'x$HOME' 'back\\slash' 'tab\there' '\"q\"'");
}

TEST(StringsTest, ReplaceAllReplacesEveryOccurrenceOnce) {
  EXPECT_EQ(ReplaceAll("--port={port} x{port}", "{port}", "3001"), "--port=3001 x3001");
  EXPECT_EQ(ReplaceAll("aaa", "a", "aa"), "aaaaaa");  // what `to` brings is not searched again
  EXPECT_EQ(ReplaceAll("none", "{port}", "1"), "none");
  EXPECT_EQ(ReplaceAll("abc", "", "x"), "abc");
}

TEST(StringsTest, SplitHostPortAcceptsNamesV4AndBracketedV6) {
  std::string host, port;
  ASSERT_TRUE(SplitHostPort("localhost:8080", &host, &port));
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, "8080");
  ASSERT_TRUE(SplitHostPort("127.0.0.1:5432", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, "5432");
  ASSERT_TRUE(SplitHostPort("[::1]:80", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, "80");
  ASSERT_TRUE(SplitHostPort("tcp://[fe80::1]:4222", &host, &port));
  EXPECT_EQ(host, "fe80::1");
  EXPECT_EQ(port, "4222");
  ASSERT_TRUE(SplitHostPort("tcp://db:5432", &host, &port));
  EXPECT_EQ(host, "db");
  EXPECT_EQ(port, "5432");
}

TEST(StringsTest, SplitHostPortRejectsMalformedTargets) {
  std::string host, port;
  EXPECT_FALSE(SplitHostPort("", &host, &port));
  EXPECT_FALSE(SplitHostPort("   ", &host, &port));
  EXPECT_FALSE(SplitHostPort("localhost", &host, &port));
  EXPECT_FALSE(SplitHostPort(":80", &host, &port));
  EXPECT_FALSE(SplitHostPort("host:", &host, &port));
  EXPECT_FALSE(SplitHostPort("host:http", &host, &port));
  EXPECT_FALSE(SplitHostPort("host:-1", &host, &port));
  EXPECT_FALSE(SplitHostPort("[::1]", &host, &port));
  EXPECT_FALSE(SplitHostPort("[::1]80", &host, &port));
  EXPECT_FALSE(SplitHostPort("[::1:80", &host, &port));
  EXPECT_FALSE(SplitHostPort("[]:80", &host, &port));
  EXPECT_FALSE(SplitHostPort("::1:80x", &host, &port));
}

}  // namespace
}  // namespace backstop
