// The REST transport (cpp-httplib): the 17 grpc-gateway-style routes of WIRE.md plus our
// extensions (file PUT/GET/DELETE, exec:stream, the MCP endpoint of each sandbox, /healthz,
// /metrics). Requests are parsed into the
// same protobuf messages gRPC uses and call the same service functions (SPEC §2).
//
// Guards, in order, on every request: Host check when no token is configured (DNS rebinding),
// bearer token when one is, Content-Type application/json where a JSON body is expected (CSRF
// with text/plain or forms), body size (server.max_body_bytes; the upload route streams under
// its own cap), JSON depth, then the service's own validation of every id and path.
//
// Threading: httplib serves each connection on a pool thread; handlers may block (a long exec),
// so the pool is sized for concurrent execs. Streamed exec output is produced on the Executor and
// handed over through a bounded queue.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "server/transport_deps.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class ContentReader;
}  // namespace httplib

namespace agentfense::server {

class PeerWatch;
class McpSessions;

class RestServer {
 public:
  explicit RestServer(const TransportDeps& deps, size_t threads = 64);
  ~RestServer();
  RestServer(const RestServer&) = delete;
  RestServer& operator=(const RestServer&) = delete;

  // Binds "host:port" (port 0 picks a free one). Returns the bound port.
  Result<int> Bind(const std::string& addr);
  // Serves until Stop(); call on its own thread after Bind.
  void Serve();
  void Stop();

 private:
  void RegisterGuards();
  void RegisterCodebaseRoutes();
  void RegisterSandboxRoutes();
  void RegisterExtensionRoutes();
  void RegisterCheckpointRoutes();  // checkpoints and approvals (rest_sandbox.cc)
  void RegisterOpsRoutes();
  void RegisterMcpRoutes();  // rest_mcp.cc

  const TransportDeps& deps_;
  // Cancels a running exec whose client hung up (declared first: outlives svr_'s handlers).
  std::unique_ptr<PeerWatch> peers_;
  std::unique_ptr<McpSessions> mcp_sessions_;  // legacy MCP clients' sessions (rest_mcp.h)
  std::unique_ptr<httplib::Server> svr_;
};

}  // namespace agentfense::server
