// The sandbox routes against the in-test SandboxApi double: checks the transport mapping only
// (parsing, path parameters, JSON conventions, streaming, errors), not sandbox behaviour.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>
#include <thread>

#include "test_server.h"

namespace agentfense::testing {
namespace {

using nlohmann::json;

class SandboxTransportTest : public ::testing::Test {
 protected:
  TestServer server_;
  std::unique_ptr<v1::SandboxService::Stub> stub_ = server_.SandboxStub();
  std::unique_ptr<httplib::Client> http_ = server_.Http();
};

TEST_F(SandboxTransportTest, CreateParsesBothCasesEnumsDurationsInt64) {
  auto r = http_->Post("/v1/sandboxes", R"({
      "codebase_id": "cb_0000000000000001",
      "permissions": [{"pattern": "**/*.md", "type": "PATTERN_TYPE_GLOB",
                       "permission": "PERMISSION_READ", "priority": 5},
                      {"pattern": "secrets", "type": 2, "permission": "PERMISSION_NONE"}],
      "expiresIn": "1.5s",
      "labels": {"team": "a"},
      "runtime": "RUNTIME_TYPE_DOCKER",
      "image": "alpine",
      "resources": {"memoryBytes": "536870912", "pids_limit": 64},
      "unknownField": [1, 2, 3]})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  v1::CreateSandboxRequest got;
  {
    std::lock_guard lock(server_.fake()->mu);
    got = server_.fake()->last_create;
  }
  EXPECT_EQ(got.codebase_id(), "cb_0000000000000001");
  ASSERT_EQ(got.permissions_size(), 2);
  EXPECT_EQ(got.permissions(0).permission(), v1::PERMISSION_READ);
  EXPECT_EQ(got.permissions(1).type(), v1::PATTERN_TYPE_DIRECTORY);
  EXPECT_EQ(got.expires_in().seconds(), 1);
  EXPECT_EQ(got.expires_in().nanos(), 500000000);
  EXPECT_EQ(got.runtime(), v1::RUNTIME_TYPE_DOCKER);
  EXPECT_EQ(got.resources().memory_bytes(), 536870912);
  EXPECT_EQ(got.resources().pids_limit(), 64);
  EXPECT_EQ(got.labels().at("team"), "a");

  json out = json::parse(r->body);
  EXPECT_EQ(out["status"], "SANDBOX_STATUS_PENDING");  // enums by name
  EXPECT_EQ(out["codebaseId"], "cb_0000000000000001");
  EXPECT_EQ(out["resources"]["memoryBytes"], "536870912");
  // Zero values are left out, as grpc-gateway's default marshaler does (contains(): operator[]
  // would insert the key).
  EXPECT_FALSE(out["resources"].contains("cpuQuota"));
  EXPECT_EQ(out["permissions"][0]["permission"], "PERMISSION_READ");
  EXPECT_EQ(out["permissions"][0]["type"], "PATTERN_TYPE_GLOB");
  EXPECT_EQ(out["createdAt"], "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(out["runtime"], "RUNTIME_TYPE_BWRAP");
  EXPECT_FALSE(out.contains("image"));

  // The same request over gRPC gives the identical answer.
  v1::Sandbox via_grpc;
  ASSERT_TRUE(stub_->CreateSandbox(server_.Ctx().get(), got, &via_grpc).ok());
  EXPECT_EQ(json::parse(ToJson(via_grpc)), out);
}

TEST_F(SandboxTransportTest, UnaryRoutesMatchGrpc) {
  const std::string sb = "sb_0000000000000001";
  struct Case {
    std::string method, path, body;
    std::function<std::string()> grpc_json;
  };
  auto ctx = [&] { return server_.Ctx(); };
  std::vector<Case> cases = {
      {"GET", "/v1/sandboxes/" + sb, "", [&] {
         v1::GetSandboxRequest q; q.set_sandbox_id(sb); v1::Sandbox s;
         EXPECT_TRUE(stub_->GetSandbox(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"GET", "/v1/sandboxes?codebase_id=cb_0000000000000001&pageSize=7&page_token=t", "", [&] {
         v1::ListSandboxesRequest q; q.set_codebase_id("cb_0000000000000001");
         q.set_page_size(7); q.set_page_token("t"); v1::ListSandboxesResponse s;
         EXPECT_TRUE(stub_->ListSandboxes(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"POST", "/v1/sandboxes/" + sb + "/start", "", [&] {
         v1::StartSandboxRequest q; q.set_sandbox_id(sb); v1::Sandbox s;
         EXPECT_TRUE(stub_->StartSandbox(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"POST", "/v1/sandboxes/" + sb + "/stop", "{}", [&] {
         v1::StopSandboxRequest q; q.set_sandbox_id(sb); v1::Sandbox s;
         EXPECT_TRUE(stub_->StopSandbox(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"DELETE", "/v1/sandboxes/" + sb, "", [&] {
         v1::DestroySandboxRequest q; q.set_sandbox_id(sb); v1::Empty s;
         EXPECT_TRUE(stub_->DestroySandbox(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"POST", "/v1/sandboxes/" + sb + "/exec", R"({"command":"ls -la","timeout":"30s"})", [&] {
         v1::ExecRequest q; q.set_sandbox_id(sb); q.set_command("ls -la");
         q.mutable_timeout()->set_seconds(30); v1::ExecResult s;
         EXPECT_TRUE(stub_->Exec(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"POST", "/v1/sandboxes/" + sb + "/sessions", R"({"shell":"/bin/sh"})", [&] {
         v1::CreateSessionRequest q; q.set_sandbox_id(sb); q.set_shell("/bin/sh"); v1::Session s;
         EXPECT_TRUE(stub_->CreateSession(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"GET", "/v1/sandboxes/" + sb + "/sessions", "", [&] {
         v1::ListSessionsRequest q; q.set_sandbox_id(sb); v1::ListSessionsResponse s;
         EXPECT_TRUE(stub_->ListSessions(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"GET", "/v1/sessions/sess_0000000000000001", "", [&] {
         v1::GetSessionRequest q; q.set_session_id("sess_0000000000000001"); v1::Session s;
         EXPECT_TRUE(stub_->GetSession(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"POST", "/v1/sessions/sess_0000000000000001/exec", R"({"command":"pwd"})", [&] {
         v1::SessionExecRequest q; q.set_session_id("sess_0000000000000001"); q.set_command("pwd");
         v1::ExecResult s;
         EXPECT_TRUE(stub_->SessionExec(ctx().get(), q, &s).ok()); return ToJson(s); }},
      {"DELETE", "/v1/sessions/sess_0000000000000001", "", [&] {
         v1::DestroySessionRequest q; q.set_session_id("sess_0000000000000001"); v1::Empty s;
         EXPECT_TRUE(stub_->DestroySession(ctx().get(), q, &s).ok()); return ToJson(s); }},
  };
  for (auto& c : cases) {
    httplib::Result r = c.method == "GET"      ? http_->Get(c.path)
                        : c.method == "DELETE" ? http_->Delete(c.path)
                        : c.body.empty()       ? http_->Post(c.path)
                                               : http_->Post(c.path, c.body, "application/json");
    ASSERT_TRUE(r) << c.path;
    ASSERT_EQ(r->status, 200) << c.method << " " << c.path << " " << r->body;
    EXPECT_EQ(json::parse(r->body), json::parse(c.grpc_json())) << c.path;
  }
  // Path parameters win over body fields, Durations and int32 in the exec result.
  auto r = http_->Post("/v1/sandboxes/" + sb + "/exec",
                       R"({"sandbox_id":"sb_00000000000000ff","command":"x","timeout":"2.5s",
                           "env":{"A":"1"},"workdir":"/workspace/sub","stdin":"in"})",
                       "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  json out = json::parse(r->body);
  EXPECT_EQ(out["exitCode"], 3);
  EXPECT_EQ(out["duration"], "0.250s");
  std::lock_guard lock(server_.fake()->mu);
  EXPECT_EQ(server_.fake()->last_exec.sandbox_id(), sb);
  EXPECT_EQ(server_.fake()->last_exec.timeout().seconds(), 2);
  EXPECT_EQ(server_.fake()->last_exec.env().at("A"), "1");
  EXPECT_EQ(server_.fake()->last_exec.workdir(), "/workspace/sub");
}

TEST_F(SandboxTransportTest, NotFoundAndInvalidOnBothTransports) {
  auto r = http_->Get(std::string("/v1/sandboxes/") + FakeSandboxApi::kUnknownSandbox);
  EXPECT_EQ(r->status, 404);
  v1::GetSandboxRequest q;
  q.set_sandbox_id(FakeSandboxApi::kUnknownSandbox);
  v1::Sandbox s;
  EXPECT_EQ(stub_->GetSandbox(server_.Ctx().get(), q, &s).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(http_->Post("/v1/sandboxes", "{}", "application/json")->status, 400);
}

std::vector<json> NdjsonLines(const std::string& body) {
  std::vector<json> out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

TEST_F(SandboxTransportTest, ExecStreamOnBothTransports) {
  v1::ExecRequest req;
  req.set_sandbox_id("sb_0000000000000001");
  req.set_command("echo");
  auto ctx = server_.Ctx();
  auto reader = stub_->ExecStream(ctx.get(), req);
  std::vector<v1::ExecOutput> frames;
  v1::ExecOutput o;
  while (reader->Read(&o)) frames.push_back(o);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].type(), v1::ExecOutput::OUTPUT_TYPE_STDOUT);
  EXPECT_EQ(frames[0].data(), "out1\n");
  EXPECT_EQ(frames[1].type(), v1::ExecOutput::OUTPUT_TYPE_STDERR);
  EXPECT_TRUE(frames[2].has_exit_code());
  EXPECT_EQ(frames[2].exit_code(), 7);

  for (std::string path : {"/v1/sandboxes/sb_0000000000000001/exec:stream",
                           "/v1/sessions/sess_0000000000000001/exec:stream"}) {
    auto r = http_->Post(path, R"({"command":"echo"})", "application/json");
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/x-ndjson");
    auto lines = NdjsonLines(r->body);
    ASSERT_EQ(lines.size(), 3u) << r->body;
    EXPECT_EQ(lines[0]["result"]["type"], "OUTPUT_TYPE_STDOUT");
    EXPECT_EQ(lines[0]["result"]["data"], "b3V0MQo=");  // bytes as base64
    EXPECT_EQ(lines[1]["result"]["type"], "OUTPUT_TYPE_STDERR");
    EXPECT_EQ(lines[2]["result"]["exitCode"], 7);
  }
  // Failing before any output: a plain HTTP error; after output: an error line last.
  auto early = http_->Post("/v1/sandboxes/sb_0000000000000001/exec:stream",
                           R"({"command":"fail:9"})", "application/json");
  EXPECT_EQ(early->status, 400);
  EXPECT_EQ(json::parse(early->body)["code"], 9);
  auto late = http_->Post("/v1/sandboxes/sb_0000000000000001/exec:stream",
                          R"({"command":"failafter:4"})", "application/json");
  ASSERT_EQ(late->status, 200);
  auto lines = NdjsonLines(late->body);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["error"]["code"], 4);
  {
    v1::ExecRequest bad = req;
    bad.set_command("failafter:4");
    auto c = server_.Ctx();
    auto rd = stub_->ExecStream(c.get(), bad);
    int n = 0;
    while (rd->Read(&o)) ++n;
    EXPECT_EQ(n, 1);
    EXPECT_EQ(rd->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  v1::SessionExecRequest sreq;
  sreq.set_session_id("sess_0000000000000001");
  sreq.set_command("echo");
  auto sctx = server_.Ctx();
  auto sreader = stub_->SessionExecStream(sctx.get(), sreq);
  int count = 0;
  while (sreader->Read(&o)) ++count;
  EXPECT_TRUE(sreader->Finish().ok());
  EXPECT_EQ(count, 3);
}

TEST_F(SandboxTransportTest, ExtensionRoutesMatchGrpc) {
  // PUT permissions: the path parameter wins over the body's sandbox_id.
  auto r = http_->Put("/v1/sandboxes/sb_0000000000000002/permissions",
                      R"({"sandboxId": "sb_0000000000000009",
                          "permissions": [{"pattern": "**/*", "permission": "PERMISSION_WRITE"}]})",
                      "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  {
    std::lock_guard lock(server_.fake()->mu);
    EXPECT_EQ(server_.fake()->last_update.sandbox_id(), "sb_0000000000000002");
    ASSERT_EQ(server_.fake()->last_update.permissions_size(), 1);
  }
  EXPECT_EQ(json::parse(r->body)["permissions"][0]["permission"], "PERMISSION_WRITE");

  // explain: the path comes from the query, URL-decoded; -1 is sent (zero values included).
  r = http_->Get("/v1/sandboxes/sb_0000000000000002/permissions:explain?path=%2Fa%20b");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["path"], "/a b");
  EXPECT_EQ(json::parse(r->body)["decidingRule"], -1);
  EXPECT_EQ(http_->Get("/v1/sandboxes/sb_0000000000000002/permissions:explain")->status, 400);
  grpc::ClientContext ctx;
  v1::ExplainPermissionRequest ereq;
  ereq.set_sandbox_id("sb_0000000000000002");
  ereq.set_path("/x");
  v1::ExplainPermissionResponse eresp;
  ASSERT_TRUE(stub_->ExplainPermission(&ctx, ereq, &eresp).ok());
  EXPECT_EQ(eresp.path(), "/x");

  // audit: both spellings of the query, RFC 3339 times, int64 ids as strings.
  r = http_->Get("/v1/audit?sandboxId=sb_0000000000000003&kind=denied&path_prefix=%2Fsrc"
                 "&since=2026-01-02T03:04:05Z&until=2026-01-02T03:04:06.5Z&pageSize=7&page_token=t");
  ASSERT_EQ(r->status, 200) << r->body;
  v1::GetAuditLogRequest got;
  {
    std::lock_guard lock(server_.fake()->mu);
    got = server_.fake()->last_audit;
  }
  EXPECT_EQ(got.sandbox_id(), "sb_0000000000000003");
  EXPECT_EQ(got.kind(), "denied");
  EXPECT_EQ(got.path_prefix(), "/src");
  EXPECT_EQ(got.since().seconds(), 1767323045);
  EXPECT_EQ(got.until().nanos(), 500000000);
  EXPECT_EQ(got.page_size(), 7);
  EXPECT_EQ(got.page_token(), "t");
  json out = json::parse(r->body);
  EXPECT_EQ(out["events"][0]["id"], "1099511627776");
  EXPECT_EQ(out["events"][0]["time"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(out["nextPageToken"], "next");
  // the per-sandbox route fixes sandbox_id; a bad time is refused before the service
  r = http_->Get("/v1/sandboxes/sb_0000000000000004/audit?sandbox_id=sb_0000000000000005");
  ASSERT_EQ(r->status, 200);
  {
    std::lock_guard lock(server_.fake()->mu);
    EXPECT_EQ(server_.fake()->last_audit.sandbox_id(), "sb_0000000000000004");
    EXPECT_FALSE(server_.fake()->last_audit.has_since());
  }
  EXPECT_EQ(http_->Get("/v1/audit?since=yesterday")->status, 400);

  // an RPC the implementation does not serve: UNIMPLEMENTED / 501 on both transports
  EXPECT_EQ(http_->Get("/v1/sandboxes/sb_0000000000000002/changes")->status, 501);
  EXPECT_EQ(http_->Post("/v1/sandboxes/sb_0000000000000002/changes:commit", "{}",
                        "application/json")->status,
            501);
  EXPECT_EQ(http_->Post("/v1/sandboxes/sb_0000000000000002/changes:discard", "{}",
                        "application/json")->status,
            501);
  grpc::ClientContext ctx2;
  v1::ListChangesRequest lreq;
  lreq.set_sandbox_id("sb_0000000000000002");
  v1::ListChangesResponse lresp;
  EXPECT_EQ(stub_->ListChanges(&ctx2, lreq, &lresp).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(SandboxTransportTest, SlowCallsDoNotBlockOthers) {
  // 8 execs that each take 1 s run concurrently on both transports; a cheap call still answers
  // at once (work runs on the executor, not on gRPC or HTTP accept threads).
  std::vector<std::thread> slow;
  for (int i = 0; i < 4; ++i) {
    slow.emplace_back([&] {
      v1::ExecRequest q;
      q.set_sandbox_id("sb_0000000000000001");
      q.set_command("sleep:1000");
      v1::ExecResult r;
      EXPECT_TRUE(stub_->Exec(server_.Ctx().get(), q, &r).ok());
    });
    slow.emplace_back([&] {
      auto c = server_.Http();
      auto r = c->Post("/v1/sandboxes/sb_0000000000000001/exec", R"({"command":"sleep:1000"})",
                       "application/json");
      EXPECT_EQ(r->status, 200);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto start = std::chrono::steady_clock::now();
  v1::GetSandboxRequest q;
  q.set_sandbox_id("sb_0000000000000001");
  v1::Sandbox s;
  EXPECT_TRUE(stub_->GetSandbox(server_.Ctx().get(), q, &s).ok());
  EXPECT_EQ(http_->Get("/v1/sandboxes/sb_0000000000000001")->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  for (auto& t : slow) t.join();
}

}  // namespace
}  // namespace agentfense::testing

namespace agentfense::testing {
namespace {

TEST(StreamDisconnectTest, ProducerLearnsTheClientIsGone) {
  TestServer server;
  auto stub = server.SandboxStub();
  {
    auto ctx = server.Ctx();
    v1::ExecRequest req;
    req.set_sandbox_id("sb_0000000000000001");
    req.set_command("flood");
    auto reader = stub->ExecStream(ctx.get(), req);
    v1::ExecOutput o;
    ASSERT_TRUE(reader->Read(&o));
    ctx->TryCancel();
    while (reader->Read(&o)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  auto wait_for = [&](int n) {
    for (int i = 0; i < 100 && server.fake()->floods_stopped.load() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return server.fake()->floods_stopped.load();
  };
  EXPECT_EQ(wait_for(1), 1);
  {
    // A REST client that stops reading after 100 KB and disconnects.
    auto http = server.Http();
    httplib::Request hr;
    hr.method = "POST";
    hr.path = "/v1/sandboxes/sb_0000000000000001/exec:stream";
    hr.headers = {{"Host", "localhost"}, {"Content-Type", "application/json"}};
    hr.body = R"({"command":"flood"})";
    size_t got = 0;
    hr.content_receiver = [&](const char*, size_t n, uint64_t, uint64_t) {
      got += n;
      return got < 100000;
    };
    httplib::Response resp;
    httplib::Error err = httplib::Error::Success;
    http->send(hr, resp, err);
    EXPECT_GE(got, 100000u);
  }
  EXPECT_EQ(wait_for(2), 2);
}

}  // namespace
}  // namespace agentfense::testing

namespace agentfense::testing {
namespace {

TEST(ShutdownTest, GracefulShutdownEndsLongStreamsAfterGrace) {
  TestServer server;
  std::thread rest_client([&] {
    auto http = server.Http();
    httplib::Request hr;
    hr.method = "POST";
    hr.path = "/v1/sandboxes/sb_0000000000000001/exec:stream";
    hr.headers = {{"Host", "localhost"}, {"Content-Type", "application/json"}};
    hr.body = R"({"command":"flood"})";
    hr.content_receiver = [](const char*, size_t, uint64_t, uint64_t) { return true; };
    httplib::Response resp;
    httplib::Error err = httplib::Error::Success;
    http->send(hr, resp, err);
  });
  auto stub = server.SandboxStub();
  auto ctx = server.Ctx();
  v1::ExecRequest req;
  req.set_sandbox_id("sb_0000000000000001");
  req.set_command("flood");
  auto reader = stub->ExecStream(ctx.get(), req);
  v1::ExecOutput o;
  ASSERT_TRUE(reader->Read(&o));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto start = std::chrono::steady_clock::now();
  server.Shutdown(std::chrono::milliseconds(300));
  // The floods would run 20 s; shutdown ends them soon after the grace period.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(server.fake()->floods_stopped.load(), 2);
  while (reader->Read(&o)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
  rest_client.join();
}

}  // namespace
}  // namespace agentfense::testing
