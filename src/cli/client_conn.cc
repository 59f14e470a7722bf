#include "cli/client_conn.h"

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "cli/exit_codes.h"

namespace agentfense::cli {
namespace {

std::string FromEnv(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): nobody calls setenv
  return v != nullptr ? v : "";
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "CODE_" + std::to_string(static_cast<int>(code));
  }
}

}  // namespace

Client::Client(const ClientFlags& flags)
    : endpoint_(!flags.endpoint.empty() ? flags.endpoint : FromEnv("AGENTFENSE_ENDPOINT")),
      token_(!flags.token.empty() ? flags.token : FromEnv("AGENTFENSE_TOKEN")) {
  if (endpoint_.empty()) endpoint_ = "127.0.0.1:9000";
  // Accept the URL forms people paste; gRPC wants host:port (or unix:/path).
  for (const char* scheme : {"grpc://", "http://"}) {
    if (endpoint_.rfind(scheme, 0) == 0) endpoint_ = endpoint_.substr(std::strlen(scheme));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  channel_ = grpc::CreateCustomChannel(endpoint_, grpc::InsecureChannelCredentials(), args);
  codebases_ = sandbox::v1::CodebaseService::NewStub(channel_);
  sandboxes_ = sandbox::v1::SandboxService::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> Client::Context(double timeout_s) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
  if (timeout_s > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  }
  return ctx;
}

int GrpcFail(const grpc::Status& status, const std::string& what, const std::string& endpoint,
             std::ostream& err) {
  err << "agentfense: error: " << what << ": " << CodeName(status.error_code()) << ": "
      << status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) err << " (endpoint " << endpoint << ")";
  err << "\n";
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitUsage;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnavailable;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitUnauthorized;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ABORTED:
      return kExitConflict;
    default:
      return kExitFailure;
  }
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = false;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

}  // namespace agentfense::cli
