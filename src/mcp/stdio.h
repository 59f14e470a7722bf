// The stdio transport of MCP: newline-delimited JSON-RPC messages on a pair of descriptors
// (`agentfense mcp` serves its sandbox this way to the agent host that started it). One line is one
// message, bounded in size; an over-long or malformed line gets a JSON-RPC error and the server
// reads on. tools/call requests run concurrently (each on its own thread, a bounded number at a
// time); everything else is answered in order as it arrives.
#pragma once

#include <atomic>
#include <cstddef>

#include "base/result.h"
#include "mcp/jsonrpc.h"
#include "mcp/protocol.h"

namespace agentfense::mcp {

struct StdioOptions {
  size_t max_message_bytes = jsonrpc::kMaxMessageBytes;
  size_t max_calls_in_flight = 256;  // tools/call beyond this are refused until some end
};

// Serves until end of input, until the output breaks (the client is gone), or until `*stop`
// turns true (checked at least every 200 ms). Calls still running are cancelled, and joined,
// before it returns. Errors: reading `in_fd` failed.
Status ServeStdio(const Server& server, Workspace& workspace, int in_fd, int out_fd,
                  const std::atomic<bool>* stop, const StdioOptions& options = {});

}  // namespace agentfense::mcp
