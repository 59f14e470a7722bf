#include "test_server.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "server/json_codec.h"
#include "service/convert.h"

namespace agentfense::testing {

namespace {

v1::Sandbox MakeSandbox(const std::string& id) {
  v1::Sandbox s;
  s.set_id(id);
  s.set_codebase_id("cb_0000000000000001");
  s.set_status(v1::SANDBOX_STATUS_RUNNING);
  s.set_runtime(v1::RUNTIME_TYPE_BWRAP);
  (*s.mutable_labels())["team"] = "a";
  s.mutable_resources()->set_memory_bytes(536870912);
  service::SetTimestamp(1700000000123456789, s.mutable_created_at());
  auto* rule = s.add_permissions();
  rule->set_pattern("**/*.md");
  rule->set_type(v1::PATTERN_TYPE_GLOB);
  rule->set_permission(v1::PERMISSION_READ);
  rule->set_priority(5);
  return s;
}

Error Fail(const std::string& command) {
  int code = std::atoi(command.c_str() + command.find(':') + 1);
  return Error(static_cast<ErrorCode>(code), "fake failure");
}

bool Starts(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

Status CheckSandbox(const std::string& id) {
  if (id.empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is empty");
  if (id == FakeSandboxApi::kUnknownSandbox) return Error(ErrorCode::kNotFound, "no sandbox");
  return OkStatus();
}

Status Stream(const std::string& command, const service::ExecOutputWriter& write) {
  if (Starts(command, "fail:")) return Fail(command);
  v1::ExecOutput out;
  out.set_type(v1::ExecOutput::OUTPUT_TYPE_STDOUT);
  out.set_data("out1\n");
  if (!write(out)) return Error(ErrorCode::kCancelled, "gone");
  if (Starts(command, "failafter:")) return Fail(command);
  out.set_type(v1::ExecOutput::OUTPUT_TYPE_STDERR);
  out.set_data("err1\n");
  if (!write(out)) return Error(ErrorCode::kCancelled, "gone");
  v1::ExecOutput last;
  last.set_exit_code(7);
  if (!write(last)) return Error(ErrorCode::kCancelled, "gone");
  return OkStatus();
}

}  // namespace

Result<bool> FakeSandboxApi::IsCodebaseInUse(const std::string& id) {
  std::lock_guard lock(mu);
  return id == in_use_codebase;
}
Result<int64_t> FakeSandboxApi::DestroySandboxesOfCodebase(const service::CallContext&,
                                                           const std::string& id) {
  std::lock_guard lock(mu);
  if (id == in_use_codebase) {
    in_use_codebase.clear();
    ++destroyed_for_codebase;
    return int64_t{1};
  }
  return int64_t{0};
}
Result<v1::Sandbox> FakeSandboxApi::CreateSandbox(const service::CallContext&,
                                                  const v1::CreateSandboxRequest& req) {
  std::lock_guard lock(mu);
  last_create = req;
  if (req.codebase_id().empty()) return Error(ErrorCode::kInvalidArgument, "codebase_id empty");
  v1::Sandbox s = MakeSandbox("sb_0000000000000001");
  s.set_status(v1::SANDBOX_STATUS_PENDING);
  return s;
}
Result<v1::Sandbox> FakeSandboxApi::GetSandbox(const service::CallContext&,
                                               const v1::GetSandboxRequest& req) {
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  return MakeSandbox(req.sandbox_id());
}
Result<v1::Sandbox> FakeSandboxApi::UpdatePermissions(const service::CallContext&,
                                                      const v1::UpdatePermissionsRequest& req) {
  {
    std::lock_guard lock(mu);
    last_update = req;
  }
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  v1::Sandbox s = MakeSandbox(req.sandbox_id());
  *s.mutable_permissions() = req.permissions();
  return s;
}
Result<v1::ExplainPermissionResponse> FakeSandboxApi::ExplainPermission(
    const service::CallContext&, const v1::ExplainPermissionRequest& req) {
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  v1::ExplainPermissionResponse r;
  r.set_path(req.path());
  r.set_permission(v1::PERMISSION_NONE);
  r.set_deciding_rule(-1);
  return r;
}
Result<v1::GetAuditLogResponse> FakeSandboxApi::GetAuditLog(const service::CallContext&,
                                                            const v1::GetAuditLogRequest& req) {
  {
    std::lock_guard lock(mu);
    last_audit = req;
  }
  v1::GetAuditLogResponse r;
  auto* e = r.add_events();
  e->set_id(int64_t{1} << 40);
  e->set_kind(req.kind());
  e->set_sandbox_id(req.sandbox_id());
  e->mutable_time()->set_seconds(1700000000);
  r.set_next_page_token("next");
  return r;
}
Result<v1::ListSandboxesResponse> FakeSandboxApi::ListSandboxes(
    const service::CallContext&, const v1::ListSandboxesRequest& req) {
  v1::ListSandboxesResponse r;
  *r.add_sandboxes() = MakeSandbox("sb_0000000000000001");
  r.set_next_page_token(req.page_token() + "|" + req.codebase_id() + "|" +
                        std::to_string(req.page_size()));
  return r;
}
Result<v1::Sandbox> FakeSandboxApi::StartSandbox(const service::CallContext&,
                                                 const v1::StartSandboxRequest& req) {
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  return MakeSandbox(req.sandbox_id());
}
Result<v1::Sandbox> FakeSandboxApi::StopSandbox(const service::CallContext&,
                                                const v1::StopSandboxRequest& req) {
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  v1::Sandbox s = MakeSandbox(req.sandbox_id());
  s.set_status(v1::SANDBOX_STATUS_STOPPED);
  return s;
}
Result<v1::Empty> FakeSandboxApi::DestroySandbox(const service::CallContext&,
                                                 const v1::DestroySandboxRequest& req) {
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  return v1::Empty();
}
Result<v1::ExecResult> FakeSandboxApi::Exec(const service::CallContext&,
                                            const v1::ExecRequest& req) {
  {
    std::lock_guard lock(mu);
    last_exec = req;
  }
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  if (Starts(req.command(), "fail:")) return Fail(req.command());
  if (Starts(req.command(), "sleep:")) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(req.command().c_str() + 6)));
  }
  v1::ExecResult r;
  r.set_stdout(req.command());
  r.set_stderr("e");
  r.set_exit_code(3);
  service::SetDuration(250'000'000, r.mutable_duration());
  return r;
}
Status FakeSandboxApi::ExecStream(const service::CallContext& ctx, const v1::ExecRequest& req,
                                  const service::ExecOutputWriter& write) {
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  if (req.command() == "flood") {
    v1::ExecOutput out;
    out.set_type(v1::ExecOutput::OUTPUT_TYPE_STDOUT);
    out.set_data(std::string(4096, 'f'));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!write(out) || ctx.IsCancelled()) {
        ++floods_stopped;
        return Error(ErrorCode::kCancelled, "client went away");
      }
    }
    return Error(ErrorCode::kDeadlineExceeded, "flood never stopped");
  }
  return Stream(req.command(), write);
}
Result<v1::Session> FakeSandboxApi::CreateSession(const service::CallContext&,
                                                  const v1::CreateSessionRequest& req) {
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  v1::Session s;
  s.set_id("sess_0000000000000001");
  s.set_sandbox_id(req.sandbox_id());
  s.set_status(v1::SESSION_STATUS_ACTIVE);
  s.set_shell(req.shell().empty() ? "/bin/bash" : req.shell());
  return s;
}
Result<v1::Session> FakeSandboxApi::GetSession(const service::CallContext&,
                                               const v1::GetSessionRequest& req) {
  if (req.session_id() != "sess_0000000000000001") {
    return Error(ErrorCode::kNotFound, "no session");
  }
  v1::Session s;
  s.set_id(req.session_id());
  s.set_status(v1::SESSION_STATUS_CLOSED);
  return s;
}
Result<v1::ListSessionsResponse> FakeSandboxApi::ListSessions(
    const service::CallContext&, const v1::ListSessionsRequest& req) {
  AF_RETURN_IF_ERROR(CheckSandbox(req.sandbox_id()));
  v1::ListSessionsResponse r;
  r.add_sessions()->set_id("sess_0000000000000001");
  return r;
}
Result<v1::Empty> FakeSandboxApi::DestroySession(const service::CallContext&,
                                                 const v1::DestroySessionRequest& req) {
  if (req.session_id() != "sess_0000000000000001") {
    return Error(ErrorCode::kNotFound, "no session");
  }
  return v1::Empty();
}
Result<v1::ExecResult> FakeSandboxApi::SessionExec(const service::CallContext&,
                                                   const v1::SessionExecRequest& req) {
  {
    std::lock_guard lock(mu);
    last_session_exec = req;
  }
  if (Starts(req.command(), "fail:")) return Fail(req.command());
  v1::ExecResult r;
  r.set_stdout(req.command());
  return r;
}
Status FakeSandboxApi::SessionExecStream(const service::CallContext&,
                                         const v1::SessionExecRequest& req,
                                         const service::ExecOutputWriter& write) {
  return Stream(req.command(), write);
}

// ---- TestServer -------------------------------------------------------------------------------

TestServer::TestServer(TestServerOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/af-server-test-XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  if (d == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return;
  }
  dir_ = d;
  server::Config config;
  config.server.grpc_addr = "127.0.0.1:0";
  config.server.http_addr = "127.0.0.1:0";
  config.server.auth_token = options_.auth_token;
  config.server.max_body_bytes = options_.max_body_bytes;
  config.server.max_upload_bytes = options_.max_upload_bytes;
  config.storage.data_dir = dir_ + "/data";
  config.storage.codebase_path = dir_ + "/data/codebases";
  config.storage.mount_path = dir_ + "/data/mounts";
  config.storage.db_path = dir_ + "/data/agentfense.db";
  auto fake = std::make_unique<FakeSandboxApi>();
  fake_ = fake.get();
  auto app = server::ServerApp::Start(config, std::move(fake));
  if (!app.ok()) {
    ADD_FAILURE() << "server start: " << app.error().ToString();
    return;
  }
  app_ = std::move(app).value();
  channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(app_->grpc_port()),
                                 grpc::InsecureChannelCredentials());
}

TestServer::~TestServer() {
  app_.reset();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::unique_ptr<v1::CodebaseService::Stub> TestServer::CodebaseStub() {
  return v1::CodebaseService::NewStub(channel_);
}
std::unique_ptr<v1::SandboxService::Stub> TestServer::SandboxStub() {
  return v1::SandboxService::NewStub(channel_);
}

std::unique_ptr<httplib::Client> TestServer::Http(bool with_token) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", app_->http_port());
  c->set_read_timeout(30, 0);
  c->set_write_timeout(30, 0);
  httplib::Headers h = {{"Host", "localhost"}};
  if (with_token && !options_.auth_token.empty()) {
    h.emplace("Authorization", "Bearer " + options_.auth_token);
  }
  c->set_default_headers(h);
  return c;
}

std::unique_ptr<grpc::ClientContext> TestServer::Ctx(bool with_token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (with_token && !options_.auth_token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + options_.auth_token);
  }
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return ctx;
}

std::string ToJson(const google::protobuf::Message& m) { return server::MessageToJson(m); }

long RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

}  // namespace agentfense::testing
