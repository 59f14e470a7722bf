// Control-plane guards shared by both transports: bearer-token check (constant time) and the
// Host-header check that defeats DNS rebinding when the API runs without a token.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace agentfense::server {

// Compares without an early exit on the first differing byte, so the time taken does not reveal
// how much of a guessed token was right.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// True when `authorization` is "Bearer <token>" (scheme case-insensitive) and the token matches.
// An empty `expected` means authentication is off: always true.
bool CheckBearer(std::string_view authorization, const std::string& expected);

// The hosts a browser may legitimately name when talking to a loopback-bound API: "localhost",
// "127.0.0.1", "[::1]" (any port), plus `extra` (the configured listen host). An empty or
// missing Host is refused (an empty host once bypassed such a check elsewhere).
bool IsAllowedHost(std::string_view host_header, const std::vector<std::string>& extra);

// The Origin a browser sends ("http://localhost:8080"): allowed when its scheme is http or https
// and its host is one IsAllowedHost accepts. "null" (sandboxed frames, file: pages) and anything
// malformed are refused. The MCP endpoint checks it on every request (DNS rebinding, and pages
// of other origins driving a local agent's tools).
bool IsAllowedOrigin(std::string_view origin, const std::vector<std::string>& extra);

}  // namespace agentfense::server
