// The client side of client mode: where the server is (--endpoint / AGENTFENSE_ENDPOINT), the
// bearer token (--token / AGENTFENSE_TOKEN), gRPC stubs, and how a gRPC status becomes one stderr
// line and an exit status.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <ostream>
#include <string>

#include "sandbox/v1/codebase.grpc.pb.h"
#include "sandbox/v1/sandbox.grpc.pb.h"

namespace agentfense::cli {

struct ClientFlags {
  std::string endpoint;  // "" = $AGENTFENSE_ENDPOINT, else 127.0.0.1:9000
  std::string token;     // "" = $AGENTFENSE_TOKEN, else none
  bool json = false;
  double rpc_timeout_s = 0;  // 0 = the per-command default
};

class Client {
 public:
  explicit Client(const ClientFlags& flags);
  const std::string& endpoint() const { return endpoint_; }
  // A context carrying the token and a deadline (`timeout_s` 0 = none: streaming exec).
  std::unique_ptr<grpc::ClientContext> Context(double timeout_s = 60) const;
  sandbox::v1::CodebaseService::Stub& codebases() { return *codebases_; }
  sandbox::v1::SandboxService::Stub& sandboxes() { return *sandboxes_; }

 private:
  std::string endpoint_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<sandbox::v1::CodebaseService::Stub> codebases_;
  std::unique_ptr<sandbox::v1::SandboxService::Stub> sandboxes_;
};

// Prints "agentfense: error: <what>: <CODE>: <message>" and returns the exit status for it.
int GrpcFail(const grpc::Status& status, const std::string& what, const std::string& endpoint,
             std::ostream& err);

// The proto3 JSON mapping, as the REST API renders it (lowerCamelCase, defaults printed).
std::string ToJson(const google::protobuf::Message& message);

}  // namespace agentfense::cli
