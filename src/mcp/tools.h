// The MCP tools of a sandbox: run_command, read_file, write_file, edit_file, list_files,
// explain_permission, changes. One implementation for both transports (`agentfense mcp` on stdio,
// the server's Streamable HTTP endpoint), over a Workspace (workspace.h).
//
// Each tool publishes an inputSchema and an outputSchema (schema.h enforces the input one on every
// call) and answers a CallToolResult: structuredContent plus a text block. Anything that goes wrong
// inside a tool is a tool error (isError, with the errno meaning: "ENOENT: /workspace/x (No such
// file or directory)"), so the model can read it and correct itself; only an unknown tool is a
// protocol error.
//
// Paths: relative to /workspace ("src/a.py"), or with a leading '/' in the policy's notation
// ("/src/a.py"), or as commands see them ("/workspace/src/a.py"). ".." is refused.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "mcp/workspace.h"

namespace agentfense::mcp {

// Progress of a long call (run_command), for notifications/progress. `total` is 0 when unknown.
using ProgressFn = std::function<void(double progress, double total, const std::string& message)>;

struct ToolCall {
  Workspace* workspace = nullptr;
  const std::atomic<bool>* cancel = nullptr;  // the client cancelled the request
  ProgressFn progress;                        // null: the client did not ask for progress
  bool structured = true;  // structuredContent (protocol 2025-06-18 and later)
};

// The entries of tools/list, in a fixed order; outputSchema only when `with_output_schema`.
nlohmann::json ListTools(bool with_output_schema);

// Runs tool `name`. kNotFound when there is no such tool (the caller answers a JSON-RPC error);
// kCancelled when the call was cancelled (no answer is due); otherwise a CallToolResult.
Result<nlohmann::json> CallTool(std::string_view name, const nlohmann::json& arguments,
                                const ToolCall& call);

// The canonical relative form of a tool path ("" = /workspace itself), or kInvalidArgument.
Result<std::string> ToolPath(std::string_view path);

// A tool error's text: the errno's name and meaning when there is one, then the message.
std::string ToolErrorText(const Error& error);

}  // namespace agentfense::mcp
