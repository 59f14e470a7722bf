// The SandboxApi used while no sandbox manager is linked in: every sandbox RPC answers
// kUnimplemented with a message saying why, so clients get a clear, correct error.
#include "service/sandbox_api.h"

namespace agentfense::service {
namespace {

Error NotAvailable() {
  return Error(ErrorCode::kUnimplemented, "sandboxes are not available in this build of the server");
}

class UnimplementedSandboxApi final : public SandboxApi {
 public:
  Result<bool> IsCodebaseInUse(const std::string&) override { return false; }
  Result<int64_t> DestroySandboxesOfCodebase(const CallContext&, const std::string&) override {
    return int64_t{0};
  }
  Result<v1::Sandbox> CreateSandbox(const CallContext&, const v1::CreateSandboxRequest&) override {
    return NotAvailable();
  }
  Result<v1::Sandbox> GetSandbox(const CallContext&, const v1::GetSandboxRequest&) override {
    return NotAvailable();
  }
  Result<v1::ListSandboxesResponse> ListSandboxes(const CallContext&,
                                                  const v1::ListSandboxesRequest&) override {
    return NotAvailable();
  }
  Result<v1::Sandbox> StartSandbox(const CallContext&, const v1::StartSandboxRequest&) override {
    return NotAvailable();
  }
  Result<v1::Sandbox> StopSandbox(const CallContext&, const v1::StopSandboxRequest&) override {
    return NotAvailable();
  }
  Result<v1::Empty> DestroySandbox(const CallContext&, const v1::DestroySandboxRequest&) override {
    return NotAvailable();
  }
  Result<v1::ExecResult> Exec(const CallContext&, const v1::ExecRequest&) override {
    return NotAvailable();
  }
  Status ExecStream(const CallContext&, const v1::ExecRequest&, const ExecOutputWriter&) override {
    return NotAvailable();
  }
  Result<v1::Session> CreateSession(const CallContext&, const v1::CreateSessionRequest&) override {
    return NotAvailable();
  }
  Result<v1::Session> GetSession(const CallContext&, const v1::GetSessionRequest&) override {
    return NotAvailable();
  }
  Result<v1::ListSessionsResponse> ListSessions(const CallContext&,
                                                const v1::ListSessionsRequest&) override {
    return NotAvailable();
  }
  Result<v1::Empty> DestroySession(const CallContext&, const v1::DestroySessionRequest&) override {
    return NotAvailable();
  }
  Result<v1::ExecResult> SessionExec(const CallContext&, const v1::SessionExecRequest&) override {
    return NotAvailable();
  }
  Status SessionExecStream(const CallContext&, const v1::SessionExecRequest&,
                           const ExecOutputWriter&) override {
    return NotAvailable();
  }
};

}  // namespace

std::unique_ptr<SandboxApi> MakeUnimplementedSandboxApi() {
  return std::make_unique<UnimplementedSandboxApi>();
}

}  // namespace agentfense::service
