// Building blocks of the gRPC callback services: every RPC is a reactor whose work runs on the
// Executor, never on a gRPC thread. Authentication, the CallContext, metrics and the Error →
// grpc::Status mapping are done here once for all RPCs.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>

#include "base/result.h"
#include "server/status_map.h"
#include "server/transport_deps.h"

namespace agentfense::server {

// Metadata check: "authorization: Bearer <token>". Always true when no token is configured.
bool GrpcAuthorized(const grpc::CallbackServerContext* ctx, const std::string& token);
service::CallContext MakeGrpcCallContext(const TransportDeps& deps,
                                         const grpc::CallbackServerContext* ctx);
Error UnauthenticatedError();

// A unary RPC: deletes itself when gRPC is done with it.
class UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  UnaryCall(const TransportDeps& deps, grpc::CallbackServerContext* ctx, const char* route)
      : deps_(deps), route_(route), cc_(MakeGrpcCallContext(deps, ctx)),
        start_(std::chrono::steady_clock::now()) {}

  void OnCancel() override { cc_.cancelled->store(true); }
  void OnDone() override { delete this; }

  const service::CallContext& context() const { return cc_; }
  // Records the outcome and finishes the RPC; `this` may be gone when it returns.
  void Complete(const Status& status);

 private:
  const TransportDeps& deps_;
  const char* route_;
  service::CallContext cc_;
  std::chrono::steady_clock::time_point start_;
};

// Runs `fn(CallContext, const Req&) -> Result<Resp>` on the executor and finishes with its result.
template <typename Req, typename Resp, typename Fn>
grpc::ServerUnaryReactor* RunUnary(const TransportDeps& deps, grpc::CallbackServerContext* ctx,
                                   const char* route, const Req* req, Resp* resp, Fn fn) {
  auto* call = new UnaryCall(deps, ctx, route);
  if (!GrpcAuthorized(ctx, deps.auth_token)) {
    call->Complete(UnauthenticatedError());
    return call;
  }
  deps.executor->Submit([call, req, resp, fn = std::move(fn)] {
    Result<Resp> result = fn(call->context(), *req);
    if (result.ok()) {
      *resp = std::move(result).value();
      call->Complete(OkStatus());
    } else {
      call->Complete(std::move(result).error());
    }
  });
  return call;
}

// Records one finished RPC in the metrics.
void RecordGrpc(const TransportDeps& deps, const char* route, const Status& status,
                std::chrono::steady_clock::time_point start);

}  // namespace agentfense::server
