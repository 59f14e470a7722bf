#include "server/grpc_call.h"

#include "server/auth.h"

namespace agentfense::server {

bool GrpcAuthorized(const grpc::CallbackServerContext* ctx, const std::string& token) {
  if (token.empty()) return true;
  const auto& md = ctx->client_metadata();
  auto range = md.equal_range("authorization");
  for (auto it = range.first; it != range.second; ++it) {
    if (CheckBearer(std::string_view(it->second.data(), it->second.size()), token)) return true;
  }
  return false;
}

service::CallContext MakeGrpcCallContext(const TransportDeps& deps,
                                         const grpc::CallbackServerContext* ctx) {
  service::CallContext cc;
  cc.server_stopping = deps.stopping;
  cc.transport = "grpc";
  cc.peer = ctx->peer();
  return cc;
}

Error UnauthenticatedError() {
  return Error(ErrorCode::kUnauthenticated, "missing or invalid bearer token");
}

void RecordGrpc(const TransportDeps& deps, const char* route, const Status& status,
                std::chrono::steady_clock::time_point start) {
  if (deps.metrics == nullptr) return;
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int code = status.ok() ? 0 : static_cast<int>(status.error().code());
  deps.metrics->RecordRequest("grpc", route, GrpcCodeName(code), secs);
}

void UnaryCall::Complete(const Status& status) {
  RecordGrpc(deps_, route_, status, start_);
  Finish(status.ok() ? grpc::Status::OK : ToGrpcStatus(status.error()));
}

}  // namespace agentfense::server
