// The subset of JSON Schema (2020-12) the MCP tools' inputSchema and outputSchema use, enforced:
// the schema a tool advertises is the one its arguments are checked against, so the published
// contract and the validation cannot drift apart. Supported keywords: type (a name or a list),
// properties, required, additionalProperties: false, items, enum, minimum, maximum, minLength,
// maxLength (in characters), and the annotations description, title and default (ignored).
// Any other keyword in a schema is a programming error (ValidateJson fails loudly on it).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace agentfense::mcp {

// kInvalidArgument naming the first offending location ("arguments.timeout: must be >= 0").
Status ValidateJson(const nlohmann::json& schema, const nlohmann::json& value,
                    const std::string& where);

}  // namespace agentfense::mcp
