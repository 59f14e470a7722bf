// Unit tests of the transport helpers: token and Host checks, JSON depth and codec, status
// mapping, the executor and metrics rendering.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "sandbox/v1/codebase.pb.h"
#include "server/auth.h"
#include "server/executor.h"
#include "server/json_codec.h"
#include "server/metrics.h"
#include "server/status_map.h"

namespace agentfense::server {
namespace {

TEST(AuthTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST(AuthTest, Bearer) {
  EXPECT_TRUE(CheckBearer("", ""));  // auth off
  EXPECT_TRUE(CheckBearer("Bearer tok", "tok"));
  EXPECT_TRUE(CheckBearer("bearer  tok ", "tok"));
  EXPECT_FALSE(CheckBearer("Basic tok", "tok"));
  EXPECT_FALSE(CheckBearer("Bearer", "tok"));
  EXPECT_FALSE(CheckBearer("Bearer tok2", "tok"));
  EXPECT_FALSE(CheckBearer("", "tok"));
}

TEST(AuthTest, AllowedHosts) {
  for (const char* ok : {"localhost", "localhost:8080", "127.0.0.1:9", "[::1]:8080", "[::1]",
                         "LocalHost.", "127.0.0.1"}) {
    EXPECT_TRUE(IsAllowedHost(ok, {})) << ok;
  }
  for (const char* bad : {"", ":8080", "evil.com", "localhost.evil.com", "127.0.0.2", "[::1",
                          "[::1]x", "0.0.0.0:8080", "127.0.0.1.nip.io"}) {
    EXPECT_FALSE(IsAllowedHost(bad, {})) << bad;
  }
  EXPECT_TRUE(IsAllowedHost("10.0.0.5:8080", {"10.0.0.5"}));
}

TEST(AuthTest, AllowedOrigins) {
  for (const char* ok : {"http://localhost:8080", "https://127.0.0.1", "HTTP://LOCALHOST",
                         "http://[::1]:3000"}) {
    EXPECT_TRUE(IsAllowedOrigin(ok, {})) << ok;
  }
  for (const char* bad : {"", "null", "http://evil.com", "https://localhost.evil.com",
                          "file://localhost", "http://localhost/path", "http://user@localhost",
                          "localhost:8080", "http://", "chrome-extension://abc",
                          "http://127.0.0.1.nip.io"}) {
    EXPECT_FALSE(IsAllowedOrigin(bad, {})) << bad;
  }
  EXPECT_TRUE(IsAllowedOrigin("https://agents.example:8443", {"agents.example"}));
}

TEST(JsonCodecTest, Depth) {
  EXPECT_TRUE(CheckJsonDepth(std::string(64, '[') + std::string(64, ']')).ok());
  EXPECT_FALSE(CheckJsonDepth(std::string(65, '{')).ok());
  // Brackets inside strings do not count, escaped quotes do not end strings.
  EXPECT_TRUE(CheckJsonDepth("{\"a\":\"" + std::string(100, '[') + "\\\"" + "\"}").ok());
}

TEST(JsonCodecTest, BothCasesInCamelOut) {
  ::sandbox::v1::ListCodebasesRequest m;
  ASSERT_TRUE(JsonToMessage(R"({"owner_id":"a","pageSize":5,"x":1})", &m).ok());
  EXPECT_EQ(m.owner_id(), "a");
  EXPECT_EQ(m.page_size(), 5);
  // Unpopulated fields are left out, as grpc-gateway's default marshaler does.
  EXPECT_EQ(MessageToJson(m), R"({"ownerId":"a","pageSize":5})");
  ::sandbox::v1::Codebase cb;
  cb.set_size(5);
  EXPECT_NE(MessageToJson(cb).find(R"("size":"5")"), std::string::npos);
  EXPECT_FALSE(JsonToMessage("[1]", &m).ok());
  EXPECT_FALSE(JsonToMessage(R"({"pageSize":"abc"})", &m).ok());
  EXPECT_TRUE(JsonToMessage("  ", &m).ok());
}

TEST(StatusMapTest, HttpAndGrpc) {
  EXPECT_EQ(HttpStatusForCode(ErrorCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusForCode(ErrorCode::kCancelled), 499);
  EXPECT_EQ(HttpStatusForCode(ErrorCode::kResourceExhausted), 429);
  auto s = ToGrpcStatus(Error(ErrorCode::kNotFound, "no codebase"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no codebase");
  // Internal errors do not leak their text.
  auto i = ToGrpcStatus(Error(ErrorCode::kInternal, "open /var/lib/secret failed"));
  EXPECT_EQ(i.error_message().find("/var/lib"), std::string::npos);
  EXPECT_EQ(ErrorJson(ErrorCode::kNotFound, "x\xff"),
            "{\"code\":5,\"message\":\"x\xEF\xBF\xBD\",\"details\":[]}");
}

TEST(ExecutorTest, RunsConcurrentlyUpToCapAndDrains) {
  std::atomic<int> done{0};
  {
    Executor ex(4);
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 8; ++i) {
      ex.Submit([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        ++done;
      });
    }
    // Destructor drains: 8 tasks of 100 ms on 4 threads take about 200 ms.
    (void)start;
  }
  EXPECT_EQ(done.load(), 8);
}

TEST(MetricsTest, Render) {
  Metrics m;
  m.RecordRequest("rest", "/v1/codebases:get", "OK", 0.003);
  m.RecordRequest("rest", "/v1/codebases:get", "OK", 2);
  m.AddCollector([] { return std::string("# TYPE x gauge\nx 1\n"); });
  std::string text = m.Render();
  EXPECT_NE(text.find(
                R"(agentfense_api_requests_total{transport="rest",route="/v1/codebases:get",code="OK"} 2)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(le="0.005"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(le="+Inf"} 2)"), std::string::npos);
  EXPECT_NE(text.find("x 1\n"), std::string::npos);
  EXPECT_EQ(GrpcCodeName(5), "NOT_FOUND");
}

}  // namespace
}  // namespace agentfense::server
