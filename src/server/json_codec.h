// The REST side of "one schema, two transports": JSON bodies are parsed into the same protobuf
// messages gRPC uses, with protobuf's JSON mapping (grpc-gateway conventions, WIRE.md).
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>

#include "base/result.h"

namespace agentfense::server {

inline constexpr int kMaxJsonDepth = 64;

// Refuses (kInvalidArgument) nesting deeper than `max_depth` objects/arrays, before any parser
// sees the text (a deep document would otherwise cost recursion in the parser).
Status CheckJsonDepth(std::string_view text, int max_depth = kMaxJsonDepth);

// Parses `text` into `msg`: snake_case and lowerCamelCase names, unknown keys ignored, enums by
// name or number, int64 as string or number, Durations "30s", Timestamps RFC 3339. An empty body
// is the empty message. Errors are kInvalidArgument.
Status JsonToMessage(std::string_view text, google::protobuf::Message* msg);

// lowerCamelCase, enums as names, int64 as strings; unpopulated fields (zero, empty, unset) are
// omitted, as grpc-gateway's default marshaler does (a reference client reads a missing field as
// its zero value).
std::string MessageToJson(const google::protobuf::Message& msg);

}  // namespace agentfense::server
