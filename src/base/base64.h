// Base64 (RFC 4648 §4, with padding) for bytes that must travel in JSON strings: the MCP file
// tools carry binary file content this way. Decoding is strict: any character outside the
// alphabet, a misplaced or missing '=', or non-zero trailing bits is an error, so one text never
// decodes two ways.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace agentfense {

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace agentfense
