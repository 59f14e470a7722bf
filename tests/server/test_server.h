// A real agentfense server (ServerApp: real store in a temp dir, real gRPC and HTTP listeners on
// loopback ports) for transport tests, plus a SandboxApi double that lets the tests check the
// transport mapping of the sandbox routes without running sandboxes. Test code only.
#pragma once

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "sandbox/v1/codebase.grpc.pb.h"
#include "sandbox/v1/sandbox.grpc.pb.h"
#include "server/config.h"
#include "server/server_app.h"
#include "service/sandbox_api.h"

namespace agentfense::testing {

namespace v1 = ::sandbox::v1;

// Behaviour keyed on the request: a command "fail:N" fails with ErrorCode N before any output,
// "failafter:N" streams one chunk then fails; sandbox "sb_00000000000000ff" is unknown (NOT_FOUND).
class FakeSandboxApi final : public service::SandboxApi {
 public:
  static constexpr const char* kUnknownSandbox = "sb_00000000000000ff";

  Result<bool> IsCodebaseInUse(const std::string& id) override;
  Result<int64_t> DestroySandboxesOfCodebase(const service::CallContext&,
                                             const std::string& id) override;
  Result<v1::Sandbox> CreateSandbox(const service::CallContext&,
                                    const v1::CreateSandboxRequest& req) override;
  Result<v1::Sandbox> GetSandbox(const service::CallContext&,
                                 const v1::GetSandboxRequest& req) override;
  Result<v1::ListSandboxesResponse> ListSandboxes(const service::CallContext&,
                                                  const v1::ListSandboxesRequest& req) override;
  Result<v1::Sandbox> StartSandbox(const service::CallContext&,
                                   const v1::StartSandboxRequest& req) override;
  Result<v1::Sandbox> StopSandbox(const service::CallContext&,
                                  const v1::StopSandboxRequest& req) override;
  Result<v1::Empty> DestroySandbox(const service::CallContext&,
                                   const v1::DestroySandboxRequest& req) override;
  Result<v1::ExecResult> Exec(const service::CallContext&, const v1::ExecRequest& req) override;
  Status ExecStream(const service::CallContext&, const v1::ExecRequest& req,
                    const service::ExecOutputWriter& write) override;
  Result<v1::Session> CreateSession(const service::CallContext&,
                                    const v1::CreateSessionRequest& req) override;
  Result<v1::Session> GetSession(const service::CallContext&,
                                 const v1::GetSessionRequest& req) override;
  Result<v1::ListSessionsResponse> ListSessions(const service::CallContext&,
                                                const v1::ListSessionsRequest& req) override;
  Result<v1::Empty> DestroySession(const service::CallContext&,
                                   const v1::DestroySessionRequest& req) override;
  Result<v1::ExecResult> SessionExec(const service::CallContext&,
                                     const v1::SessionExecRequest& req) override;
  Status SessionExecStream(const service::CallContext&, const v1::SessionExecRequest& req,
                           const service::ExecOutputWriter& write) override;

  // Extensions: UpdatePermissions, ExplainPermission and GetAuditLog record what they parsed;
  // the delta RPCs keep the interface default (kUnimplemented).
  Result<v1::Sandbox> UpdatePermissions(const service::CallContext&,
                                        const v1::UpdatePermissionsRequest& req) override;
  Result<v1::ExplainPermissionResponse> ExplainPermission(
      const service::CallContext&, const v1::ExplainPermissionRequest& req) override;
  Result<v1::GetAuditLogResponse> GetAuditLog(const service::CallContext&,
                                              const v1::GetAuditLogRequest& req) override;

  std::string MetricsText() override { return "# TYPE agentfense_fake_sandboxes gauge\nagentfense_fake_sandboxes 1\n"; }

  // The last request of each kind, as received (the tests check what the transport parsed).
  std::mutex mu;
  v1::CreateSandboxRequest last_create;
  v1::ExecRequest last_exec;
  v1::SessionExecRequest last_session_exec;
  v1::UpdatePermissionsRequest last_update;
  v1::GetAuditLogRequest last_audit;
  std::string in_use_codebase;  // IsCodebaseInUse answers true for this id
  int destroyed_for_codebase = 0;
  // Set when a "flood" stream (writes until the writer refuses) saw the client go away.
  std::atomic<int> floods_stopped{0};
};

struct TestServerOptions {
  std::string auth_token;
  uint64_t max_body_bytes = 1 << 20;
  uint64_t max_upload_bytes = 0;
};

class TestServer {
 public:
  explicit TestServer(TestServerOptions options = {});
  ~TestServer();

  std::string dir() const { return dir_; }
  std::string codebase_root() const { return dir_ + "/data/codebases"; }
  FakeSandboxApi* fake() { return fake_; }

  std::unique_ptr<v1::CodebaseService::Stub> CodebaseStub();
  std::unique_ptr<v1::SandboxService::Stub> SandboxStub();
  // An HTTP client with the Host header and (when configured) bearer token set.
  std::unique_ptr<httplib::Client> Http(bool with_token = true);
  // A gRPC client context carrying the token (when configured).
  std::unique_ptr<grpc::ClientContext> Ctx(bool with_token = true);

  // Graceful shutdown of the server (what SIGTERM does), with a short grace period.
  void Shutdown(std::chrono::milliseconds grace) { app_->Shutdown(grace); }

  int http_port() const { return app_->http_port(); }
  int grpc_port() const { return app_->grpc_port(); }
  const std::string& token() const { return options_.auth_token; }

 private:
  TestServerOptions options_;
  std::string dir_;
  FakeSandboxApi* fake_ = nullptr;  // owned by app_
  std::unique_ptr<server::ServerApp> app_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Helpers.
std::string ToJson(const google::protobuf::Message& m);
// Reads /proc/self/status VmRSS in KiB.
long RssKiB();

}  // namespace agentfense::testing
