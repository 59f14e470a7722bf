// The MCP protocol of one sandbox, transport-free: stdio (stdio.h) and the server's Streamable HTTP
// endpoint (server/rest_mcp.cc) decode a message with jsonrpc::Decode and hand it to Server::Handle.
//
// Dual-era (MCP "Versioning and Compatibility"): a request whose params._meta carries
// io.modelcontextprotocol/protocolVersion is served statelessly by the current revision
// (2026-07-28: server/discover, per-request version and capabilities, resultType); anything else is
// a legacy client, which negotiates one of the earlier revisions the official SDKs still speak with
// `initialize` and keeps that state per stdio connection or per HTTP session (LegacySession).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mcp/jsonrpc.h"
#include "mcp/workspace.h"

namespace agentfense::mcp {

inline constexpr std::string_view kProtocolVersionMeta = "io.modelcontextprotocol/protocolVersion";
inline constexpr std::string_view kClientCapabilitiesMeta =
    "io.modelcontextprotocol/clientCapabilities";
inline constexpr std::string_view kServerInfoMeta = "io.modelcontextprotocol/serverInfo";

// The stateless revisions, newest first.
const std::vector<std::string>& ModernVersions();
// The revisions negotiated with `initialize`, newest first.
const std::vector<std::string>& LegacyVersions();
bool IsModernVersion(std::string_view v);
bool IsLegacyVersion(std::string_view v);

struct ServerInfo {
  std::string name = "agentfense";
  std::string title = "AgentFense sandbox";
  std::string version;
  std::string instructions;  // shown to the model: what the sandbox is
};

// What a legacy client negotiated: per stdio connection, per HTTP session. Guarded by its owner.
struct LegacySession {
  std::string version;       // empty until `initialize`
  bool initialized = false;  // notifications/initialized arrived
};

// The requests in flight of one connection or session, for notifications/cancelled.
// Thread-safe.
class InFlight {
 public:
  // Registers the cancel flag of a new request. False when a request with this id is already in
  // flight (MCP forbids reusing the id of an unanswered request).
  bool Add(const std::string& key, std::shared_ptr<std::atomic<bool>> flag);
  void Remove(const std::string& key);
  void Cancel(const std::string& key);
  void CancelAll();
  size_t size() const;

 private:
  mutable std::mutex mu_;  // guards calls_; leaf lock
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> calls_;
};

// Receives one notification (a whole JSON-RPC message) about the request being handled. May be
// called from another thread than Handle's; must be thread-safe.
using NotifyFn = std::function<void(const std::string& message)>;

struct RequestContext {
  Workspace* workspace = nullptr;
  // The legacy state of the stdio connection or HTTP session; null for a modern HTTP request.
  // Handle reads and writes it: the caller serializes calls that pass the same session.
  LegacySession* session = nullptr;
  std::mutex* session_mu = nullptr;  // when set, Handle takes it around session accesses
  InFlight* in_flight = nullptr;     // where notifications/cancelled looks
  const std::atomic<bool>* cancel = nullptr;  // this request's own cancel flag
  NotifyFn notify;                            // progress; null: dropped
};

struct Reply {
  std::optional<std::string> message;  // the response; none for notifications and cancellations
  int http_status = 200;               // what Streamable HTTP answers with
  bool modern = false;                 // the request was served statelessly (2026-07-28)
  std::string negotiated;              // `initialize`: the version agreed (empty otherwise)
};

// How a message will be served, decided before it runs (the HTTP transport needs it to pick a
// session and to check headers).
struct Classified {
  bool modern = false;
  std::string version;  // modern: the requested one (may be unsupported)
  // modern: the version is served and the required client capabilities are present, so the
  // request will run (else Handle answers an error at once, with an HTTP status of its own).
  bool acceptable = false;
};
Classified Classify(const jsonrpc::Message& m);

class Server {
 public:
  explicit Server(ServerInfo info) : info_(std::move(info)) {}

  // Handles one client message. Thread-safe: many requests may be in Handle at once (tools/call
  // blocks for as long as its tool runs).
  Reply Handle(const jsonrpc::Message& m, const RequestContext& ctx) const;

  const ServerInfo& info() const { return info_; }

 private:
  Reply HandleModern(const jsonrpc::Message& m, const RequestContext& ctx,
                     const Classified& era) const;
  Reply HandleLegacy(const jsonrpc::Message& m, const RequestContext& ctx) const;
  // tools/call, both eras. `structured`: the client's revision knows structuredContent.
  Reply CallTool(const jsonrpc::Message& m, const RequestContext& ctx, bool structured,
                 const std::function<jsonrpc::Json(jsonrpc::Json)>& finish) const;
  jsonrpc::Json ServerInfoJson() const;

  const ServerInfo info_;
};

}  // namespace agentfense::mcp
