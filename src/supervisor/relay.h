// Serves the agent protocol (runtime/agent_protocol.h) on one accepted connection from the server,
// executing each request against the sandbox's RuntimeInstance. The server therefore talks to a
// supervisor exactly as it would to an agent (runtime::AgentClient::Connect on the relay socket).
#pragma once

#include <memory>

#include "base/unique_fd.h"
#include "supervisor/runtime_instance.h"

namespace agentfense::supervisor {

// Blocks until the peer disconnects (or `conn` fails); in-flight commands of this connection are
// cancelled and joined before it returns. Thread-safe with respect to other connections. The
// connection holds its own reference to `runtime`: the supervisor may stop and drop it meanwhile
// (requests then fail with the runtime's "stopped" error).
void ServeAgentConnection(UniqueFd conn, std::shared_ptr<RuntimeInstance> runtime);

}  // namespace agentfense::supervisor
