#include <condition_variable>
#include <deque>
#include <mutex>

#include "server/grpc_call.h"
#include "server/grpc_services.h"

namespace agentfense::server {

namespace {

using service::CallContext;

// ExecStream / SessionExecStream / WatchApprovals: the producer runs on the executor and pushes
// messages through a small bounded queue; the reactor writes them one at a time. A slow client
// therefore slows the producer (back-pressure) instead of growing memory, and a gone client makes
// the writer return false.
template <typename Msg>
class StreamCall final : public grpc::ServerWriteReactor<Msg> {
 public:
  static constexpr size_t kMaxQueued = 16;

  StreamCall(const TransportDeps& deps, grpc::CallbackServerContext* ctx, const char* route)
      : deps_(deps), route_(route), cc_(MakeGrpcCallContext(deps, ctx)),
        start_(std::chrono::steady_clock::now()) {}

  // `produce(cc, writer) -> Status` runs on the executor.
  template <typename Fn>
  void Run(grpc::CallbackServerContext* ctx, Fn produce) {
    if (!GrpcAuthorized(ctx, deps_.auth_token)) {
      ProducerDone(UnauthenticatedError());
      return;
    }
    deps_.executor->Submit([this, produce = std::move(produce)] {
      Status status = produce(cc_, [this](const Msg& out) { return Push(out); });
      ProducerDone(status);
    });
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    queue_.pop_front();
    if (!ok) {
      failed_ = true;
      queue_.clear();
      cc_.cancelled->store(true);
    }
    cv_.notify_all();
    if (!queue_.empty()) {
      const Msg* next = &queue_.front();
      lock.unlock();
      this->StartWrite(next);
      return;
    }
    writing_ = false;
    MaybeFinishLocked(lock);
  }
  void OnCancel() override {
    std::lock_guard lock(mu_);
    cc_.cancelled->store(true);
    cv_.notify_all();
  }
  void OnDone() override { delete this; }

 private:
  // Called on the producer thread. Blocks while the queue is full.
  bool Push(const Msg& out) {
    std::unique_lock lock(mu_);
    // Timed: server shutdown sets cc_'s stopping flag without notifying cv_.
    while (queue_.size() >= kMaxQueued && !failed_ && !cc_.IsCancelled()) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    if (failed_ || cc_.IsCancelled()) return false;
    queue_.push_back(out);  // deque: references to earlier elements stay valid
    if (writing_) return true;
    writing_ = true;
    const Msg* first = &queue_.front();
    lock.unlock();
    this->StartWrite(first);
    return true;
  }

  void ProducerDone(const Status& status) {
    std::unique_lock lock(mu_);
    producer_done_ = true;
    final_ = status;
    MaybeFinishLocked(lock);
  }

  // Finishes once the producer is done and every queued message is written. Releases the lock
  // before Finish; nothing touches `this` afterwards (OnDone may run at once).
  void MaybeFinishLocked(std::unique_lock<std::mutex>& lock) {
    if (!producer_done_ || writing_ || finished_) return;
    finished_ = true;
    Status status = final_;
    if (status.ok() && failed_) status = Error(ErrorCode::kCancelled, "client went away");
    lock.unlock();
    RecordGrpc(deps_, route_, status, start_);
    this->Finish(status.ok() ? grpc::Status::OK : ToGrpcStatus(status.error()));
  }

  const TransportDeps& deps_;
  const char* route_;
  CallContext cc_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;  // guards the fields below; leaf lock, never held across StartWrite/Finish
  std::condition_variable cv_;
  std::deque<Msg> queue_;  // front is being written while writing_
  bool writing_ = false;
  bool failed_ = false;
  bool producer_done_ = false;
  bool finished_ = false;
  Status final_;
};

}  // namespace

#define AF_SANDBOX_UNARY(Method, Req, Resp)                                              \
  grpc::ServerUnaryReactor* SandboxGrpcService::Method(grpc::CallbackServerContext* ctx, \
                                                       const v1::Req* req, v1::Resp* resp) { \
    return RunUnary(deps_, ctx, #Method, req, resp,                                      \
                    [s = deps_.sandboxes](const CallContext& cc, const auto& r) {        \
                      return s->Method(cc, r);                                           \
                    });                                                                  \
  }

AF_SANDBOX_UNARY(CreateSandbox, CreateSandboxRequest, Sandbox)
AF_SANDBOX_UNARY(GetSandbox, GetSandboxRequest, Sandbox)
AF_SANDBOX_UNARY(ListSandboxes, ListSandboxesRequest, ListSandboxesResponse)
AF_SANDBOX_UNARY(StartSandbox, StartSandboxRequest, Sandbox)
AF_SANDBOX_UNARY(StopSandbox, StopSandboxRequest, Sandbox)
AF_SANDBOX_UNARY(DestroySandbox, DestroySandboxRequest, Empty)
AF_SANDBOX_UNARY(Exec, ExecRequest, ExecResult)
AF_SANDBOX_UNARY(CreateSession, CreateSessionRequest, Session)
AF_SANDBOX_UNARY(GetSession, GetSessionRequest, Session)
AF_SANDBOX_UNARY(ListSessions, ListSessionsRequest, ListSessionsResponse)
AF_SANDBOX_UNARY(DestroySession, DestroySessionRequest, Empty)
AF_SANDBOX_UNARY(SessionExec, SessionExecRequest, ExecResult)
AF_SANDBOX_UNARY(UpdatePermissions, UpdatePermissionsRequest, Sandbox)
AF_SANDBOX_UNARY(UpdateEgress, UpdateEgressRequest, Sandbox)
AF_SANDBOX_UNARY(ExplainPermission, ExplainPermissionRequest, ExplainPermissionResponse)
AF_SANDBOX_UNARY(ListChanges, ListChangesRequest, ListChangesResponse)
AF_SANDBOX_UNARY(CommitChanges, CommitChangesRequest, CommitChangesResponse)
AF_SANDBOX_UNARY(DiscardChanges, DiscardChangesRequest, DiscardChangesResponse)
AF_SANDBOX_UNARY(GetAuditLog, GetAuditLogRequest, GetAuditLogResponse)
AF_SANDBOX_UNARY(CreateCheckpoint, CreateCheckpointRequest, Checkpoint)
AF_SANDBOX_UNARY(ListCheckpoints, ListCheckpointsRequest, ListCheckpointsResponse)
AF_SANDBOX_UNARY(RestoreCheckpoint, RestoreCheckpointRequest, Checkpoint)
AF_SANDBOX_UNARY(DiffCheckpoint, DiffCheckpointRequest, DiffCheckpointResponse)
AF_SANDBOX_UNARY(DeleteCheckpoint, DeleteCheckpointRequest, Empty)
AF_SANDBOX_UNARY(ListApprovals, ListApprovalsRequest, ListApprovalsResponse)
AF_SANDBOX_UNARY(AnswerApproval, AnswerApprovalRequest, Approval)

#undef AF_SANDBOX_UNARY

grpc::ServerWriteReactor<v1::ExecOutput>* SandboxGrpcService::ExecStream(
    grpc::CallbackServerContext* ctx, const v1::ExecRequest* req) {
  auto* call = new StreamCall<v1::ExecOutput>(deps_, ctx, "ExecStream");
  call->Run(ctx, [s = deps_.sandboxes, req](const CallContext& cc,
                                            const service::ExecOutputWriter& write) {
    return s->ExecStream(cc, *req, write);
  });
  return call;
}

grpc::ServerWriteReactor<v1::ExecOutput>* SandboxGrpcService::SessionExecStream(
    grpc::CallbackServerContext* ctx, const v1::SessionExecRequest* req) {
  auto* call = new StreamCall<v1::ExecOutput>(deps_, ctx, "SessionExecStream");
  call->Run(ctx, [s = deps_.sandboxes, req](const CallContext& cc,
                                            const service::ExecOutputWriter& write) {
    return s->SessionExecStream(cc, *req, write);
  });
  return call;
}

grpc::ServerWriteReactor<v1::Approval>* SandboxGrpcService::WatchApprovals(
    grpc::CallbackServerContext* ctx, const v1::WatchApprovalsRequest* req) {
  auto* call = new StreamCall<v1::Approval>(deps_, ctx, "WatchApprovals");
  call->Run(ctx, [s = deps_.sandboxes, req](const CallContext& cc,
                                            const service::ApprovalWriter& write) {
    return s->WatchApprovals(cc, *req, write);
  });
  return call;
}

}  // namespace agentfense::server
