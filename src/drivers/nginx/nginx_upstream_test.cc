#include "drivers/nginx/nginx_upstream.h"

#include <gtest/gtest.h>

namespace backstop::nginx {
namespace {

TEST(NginxUpstreamTest, TheTextReadsBackAsTheSameServersInOrder) {
  const std::vector<std::string> servers = {"127.0.0.1:8001", "[::1]:8002", "web-2.internal:80"};
  const std::string text = UpstreamConfigText("web", "app", servers);
  EXPECT_NE(text.find("upstream app {\n  server 127.0.0.1:8001;\n"), std::string::npos) << text;
  auto back = ParseUpstreamConfig("app", text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, servers);
}

TEST(NginxUpstreamTest, AnEditedFileIsCorruption) {
  EXPECT_TRUE(ParseUpstreamConfig("app", "upstream other {\n  server a:1;\n}\n").status().code() ==
              Status::Code::kCorruption);
  EXPECT_TRUE(ParseUpstreamConfig("app", "upstream app {\n  server a:1;\n  keepalive 4;\n}\n")
                  .status()
                  .code() == Status::Code::kCorruption);
  EXPECT_TRUE(ParseUpstreamConfig("app", "upstream app {\n  server a:1;\n").status().code() ==
              Status::Code::kCorruption);
}

TEST(NginxUpstreamTest, NamesAndServersThatCouldEscapeTheFileAreRefused) {
  EXPECT_TRUE(CheckUpstreamName("app_v2-blue.x").ok());
  for (const char* bad : {"", ".hidden", "../app", "a b", "a;b", "a/b"}) {
    EXPECT_TRUE(CheckUpstreamName(bad).code() == Status::Code::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(CheckUpstreamServers({"127.0.0.1:1", "[::1]:2", "host:3"}).ok());
  EXPECT_TRUE(CheckUpstreamServers({}).code() == Status::Code::kInvalidArgument);
  for (const char* bad : {"127.0.0.1", "a:1;", "a:1 backup", "a:1}", "tcp://a:1", "$x:1", ":1"}) {
    EXPECT_TRUE(CheckUpstreamServers({bad}).code() == Status::Code::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace backstop::nginx
