// The legacy MCP sessions of the Streamable HTTP endpoint (/v1/sandboxes/{id}/mcp). A client of
// the revisions before 2026-07-28 opens one with `initialize` and names it on every later request
// (Mcp-Session-Id); a current client needs none. Internal to server/ (rest_mcp.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/result.h"
#include "mcp/protocol.h"

namespace agentfense::server {

struct McpSession {
  explicit McpSession(std::string sandbox) : sandbox_id(std::move(sandbox)) {}
  const std::string sandbox_id;  // a session serves the sandbox it was opened on, no other
  std::mutex mu;                 // guards state (passed as RequestContext::session_mu)
  mcp::LegacySession state;
  mcp::InFlight in_flight;
  std::atomic<int64_t> last_used_ms{0};  // steady clock
};

// Thread-safe. Bounded: beyond `max` sessions, the one idle longest is dropped (a client that
// comes back with its id gets 404 and initializes again, as the specification says), and a
// session idle for `idle` is dropped too.
class McpSessions {
 public:
  explicit McpSessions(size_t max = 1024, std::chrono::milliseconds idle = std::chrono::hours(1))
      : max_(max), idle_(idle) {}

  // A new session on `sandbox_id` and its id (128 random bits, hex).
  Result<std::pair<std::string, std::shared_ptr<McpSession>>> Create(const std::string& sandbox_id);
  // The session, when it exists and belongs to `sandbox_id` (null otherwise); marks it used.
  std::shared_ptr<McpSession> Find(const std::string& id, const std::string& sandbox_id);
  // Ends it: its calls in flight are cancelled. False when there is no such session.
  bool Remove(const std::string& id, const std::string& sandbox_id);
  size_t size() const;

 private:
  void DropExpiredLocked(int64_t now_ms);

  const size_t max_;
  const std::chrono::milliseconds idle_;
  mutable std::mutex mu_;  // guards sessions_; taken before a session's own mu, never after
  std::map<std::string, std::shared_ptr<McpSession>> sessions_;
};

}  // namespace agentfense::server
