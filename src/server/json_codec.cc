#include "server/json_codec.h"

#include <google/protobuf/util/json_util.h>

#include <fmt/format.h>

#include "base/json_depth.h"
#include "server/status_map.h"

namespace agentfense::server {

Status CheckJsonDepth(std::string_view text, int max_depth) {
  if (!JsonNestingWithin(text, max_depth)) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("JSON nested deeper than {} levels", max_depth));
  }
  return OkStatus();
}

Status JsonToMessage(std::string_view text, google::protobuf::Message* msg) {
  msg->Clear();
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return OkStatus();
  AF_RETURN_IF_ERROR(CheckJsonDepth(text));
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), msg, options);
  if (!status.ok()) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("invalid JSON body: {}", std::string(status.message())));
  }
  return OkStatus();
}

std::string MessageToJson(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions options;
  // grpc-gateway's default: fields at their zero value are left out (issue 21).
  options.always_print_primitive_fields = false;
  options.preserve_proto_field_names = false;
  options.always_print_enums_as_ints = false;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(msg, &out, options);
  if (!status.ok()) {
    // Only invalid UTF-8 in a string field can fail here; say so instead of sending half a body.
    return ErrorJson(ErrorCode::kInternal,
                     "response not encodable as JSON: " + std::string(status.message()));
  }
  return out;
}

}  // namespace agentfense::server
