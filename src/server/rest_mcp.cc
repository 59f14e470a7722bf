// The Streamable HTTP MCP endpoint of each sandbox, /v1/sandboxes/{id}/mcp on the REST port: the
// tools of `agentfense mcp` (mcp/tools.h) over a running sandbox of the server.
//
// Guards, in order: the REST guards of every route (Host check without a token, bearer token);
// Origin, when present, must name an allowed host (403 otherwise: DNS rebinding, other pages);
// Content-Type application/json, no exception (CSRF); the body within server.max_body_bytes and
// the codec's own bound; then the JSON-RPC codec (mcp/jsonrpc.h) and the protocol (mcp/protocol.h).
// A current (2026-07-28) request must mirror its version, method and tool name in headers that
// match the body (HeaderMismatch otherwise); a legacy client opens a session with `initialize`
// and names it in Mcp-Session-Id (sessions are bound to the sandbox they were opened on).
//
// tools/call answers as an SSE stream when the client accepts one: progress notifications, then
// the response. A client that closes the connection cancels its call, whatever its era; a legacy
// client may also send notifications/cancelled in its session.
#include "server/rest_mcp.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>

#include "base/base64.h"
#include "base/ids.h"
#include "mcp/jsonrpc.h"
#include "server/auth.h"
#include "server/peer_watch.h"
#include "server/rest_call.h"
#include "server/rest_server.h"
#include "server/status_map.h"

namespace agentfense::server {

namespace jsonrpc = mcp::jsonrpc;
using httplib::ContentReader;
using httplib::Request;
using httplib::Response;

namespace {

constexpr const char* kRoute = "/v1/sandboxes/{id}/mcp";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ErrorCode CodeForStatus(int status) {
  switch (status) {
    case 200:
    case 202:
    case 204:
      return ErrorCode::kOk;
    case 400:
    case 406:
    case 415:
      return ErrorCode::kInvalidArgument;
    case 403:
      return ErrorCode::kPermissionDenied;
    case 404:
      return ErrorCode::kNotFound;
    case 405:
      return ErrorCode::kUnimplemented;
    case 413:
      return ErrorCode::kResourceExhausted;
    case 503:
      return ErrorCode::kUnavailable;
    default:
      return ErrorCode::kInternal;
  }
}

// Replies with one JSON-RPC message (or no body) and records the outcome in the metrics.
void Send(RestCall& call, int status, const std::optional<std::string>& body) {
  Response& res = call.response();
  res.status = status;
  if (body) res.set_content(*body, "application/json");
  call.Record(CodeForStatus(status));
}

void SendError(RestCall& call, int status, int code, std::string_view message,
               const std::optional<jsonrpc::Id>& id = std::nullopt) {
  Send(call, status, jsonrpc::EncodeError(id, code, message));
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool AcceptsEventStream(const Request& req) {
  std::string accept = Lower(req.get_header_value("Accept"));
  return accept.find("text/event-stream") != std::string::npos ||
         accept.find("*/*") != std::string::npos;
}

// Origin is checked on every request that carries one (MCP transports, security).
bool OriginRefused(RestCall& call) {
  const Request& req = call.request();
  if (!req.has_header("Origin")) return false;  // not a browser: nothing to defend against
  if (IsAllowedOrigin(req.get_header_value("Origin"), call.deps().extra_allowed_hosts)) {
    return false;
  }
  SendError(call, 403, jsonrpc::kInvalidRequest, "Origin not allowed");
  return true;
}

// Mcp-Name (and Mcp-Param-*) values that are not plain ASCII travel as =?base64?...?=.
std::optional<std::string> HeaderText(std::string_view v) {
  constexpr std::string_view kOpen = "=?base64?", kClose = "?=";
  if (v.size() >= kOpen.size() + kClose.size() && v.substr(0, kOpen.size()) == kOpen &&
      v.substr(v.size() - kClose.size()) == kClose) {
    auto decoded = Base64Decode(v.substr(kOpen.size(), v.size() - kOpen.size() - kClose.size()));
    if (!decoded.ok()) return std::nullopt;
    return *decoded;
  }
  return std::string(v);
}

// A current request mirrors body fields into headers; they must agree, so that nothing on the
// way can route on one value while the server acts on another.
std::optional<std::string> HeaderMismatch(const Request& req, const jsonrpc::Message& m,
                                          const std::string& version) {
  if (!req.has_header("MCP-Protocol-Version")) return "MCP-Protocol-Version header missing";
  if (req.get_header_value("MCP-Protocol-Version") != version) {
    return "MCP-Protocol-Version header does not match the body's _meta";
  }
  if (m.kind != jsonrpc::Message::Kind::kRequest) return std::nullopt;
  if (!req.has_header("Mcp-Method")) return "Mcp-Method header missing";
  if (req.get_header_value("Mcp-Method") != m.method) {
    return "Mcp-Method header does not match the body's method";
  }
  if (m.method == "tools/call") {
    if (!req.has_header("Mcp-Name")) return "Mcp-Name header missing";
    auto name = HeaderText(req.get_header_value("Mcp-Name"));
    auto body = m.params.find("name");
    if (!name || body == m.params.end() || !body->is_string() ||
        *name != body->get_ref<const std::string&>()) {
      return "Mcp-Name header does not match params.name";
    }
  }
  return std::nullopt;
}

std::string SseEvent(const std::string& message) {
  return "event: message\ndata: " + message + "\n\n";
}

// Everything one request needs while its tool runs, possibly on an executor thread after the
// handler returned.
struct McpCall {
  explicit McpCall(const std::string& sandbox_id)
      : server(mcp::ServerInfo{"agentfense", "AgentFense sandbox", AF_VERSION,
                               "The tools act on sandbox " + sandbox_id +
                                   " of an AgentFense server: a least-privilege permission "
                                   "policy decides every file access of its commands and of "
                                   "the file tools alike (explain_permission says why)."}) {}
  mcp::Server server;
  std::unique_ptr<mcp::Workspace> workspace;
  std::shared_ptr<McpSession> session;  // legacy clients only
  jsonrpc::Message message;
  std::shared_ptr<std::atomic<bool>> cancel;

  mcp::Reply Run(const mcp::NotifyFn& notify) {
    mcp::RequestContext ctx;
    ctx.workspace = workspace.get();
    if (session) {
      ctx.session = &session->state;
      ctx.session_mu = &session->mu;
      ctx.in_flight = &session->in_flight;
    }
    ctx.cancel = cancel.get();
    ctx.notify = notify;
    mcp::Reply r = server.Handle(message, ctx);
    if (session && message.id) session->in_flight.Remove(message.id->Key());
    return r;
  }
};

// Runs the call on the executor and streams its notifications and its response as SSE events.
void ServeSse(RestCall& call, PeerWatch& peers, const std::shared_ptr<McpCall>& mcall,
              service::CallContext cc) {
  auto bridge = std::make_shared<StreamBridge>();
  std::shared_ptr<void> watch = peers.Watch(call.request(), mcall->cancel);
  call.deps().executor->Submit([bridge, cc, mcall] {
    mcp::Reply r = mcall->Run([&bridge, &cc](const std::string& m) {
      (void)bridge->Push(SseEvent(m), cc);
    });
    if (r.message) (void)bridge->Push(SseEvent(*r.message), cc);
    bridge->Finish(OkStatus());
  });
  call.Record(ErrorCode::kOk);
  Response& res = call.response();
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto cancel = mcall->cancel;
  res.set_chunked_content_provider(
      "text/event-stream",
      [bridge](size_t, httplib::DataSink& sink) {
        if (auto event = bridge->Next()) return sink.write(event->data(), event->size());
        sink.done();
        return true;
      },
      // The response is over (done, client gone, server stopping): a tool still running has
      // nobody to answer, and closing the stream is the current revision's cancellation.
      [bridge, cancel, watch](bool /*success*/) {
        cancel->store(true);
        bridge->Abandon();
      });
}

void ServePost(PeerWatch& peers, McpSessions& sessions, RestCall& call, const ContentReader& rd) {
  const TransportDeps& d = call.deps();
  const Request& req = call.request();
  const std::string sandbox_id = call.Param(1);
  if (OriginRefused(call)) return;
  const uint64_t cap = std::min<uint64_t>(d.max_body_bytes, jsonrpc::kMaxMessageBytes);
  auto body = call.ReadBody(&rd, cap, /*allow_cli_form=*/false);
  if (!body.ok()) {
    int status = call.http_override() != 0 ? call.http_override()
                                           : HttpStatusForCode(body.error().code());
    return SendError(call, status, jsonrpc::kInvalidRequest, body.error().message());
  }
  jsonrpc::Decoded decoded = jsonrpc::Decode(*body, cap);
  if (!decoded.message) {
    return SendError(call, 400, decoded.error.code, decoded.error.message, decoded.error.id);
  }
  auto mcall = std::make_shared<McpCall>(sandbox_id);
  mcall->message = std::move(*decoded.message);
  const jsonrpc::Message& m = mcall->message;
  mcall->cancel = std::make_shared<std::atomic<bool>>(false);
  service::CallContext cc = call.context();
  cc.transport = "mcp";
  cc.cancelled = mcall->cancel;
  auto ws = d.sandboxes->OpenWorkspace(cc, sandbox_id);
  if (!ws.ok()) {
    return SendError(call, HttpStatusForCode(ws.error().code()), jsonrpc::kInvalidRequest,
                     ClientMessage(ws.error()), m.id);
  }
  mcall->workspace = std::move(*ws);

  const bool is_request = m.kind == jsonrpc::Message::Kind::kRequest;
  mcp::Classified era = mcp::Classify(m);
  std::string new_session;
  if (era.modern) {
    if (auto why = HeaderMismatch(req, m, era.version)) {
      return SendError(call, 400, jsonrpc::kHeaderMismatch, *why, m.id);
    }
  } else if (is_request && m.method == "initialize") {
    auto created = sessions.Create(sandbox_id);
    if (!created.ok()) {
      return SendError(call, 503, jsonrpc::kInternalError, created.error().message(), m.id);
    }
    new_session = created->first;
    mcall->session = std::move(created->second);
  } else {
    std::string sid = req.get_header_value("Mcp-Session-Id");
    if (sid.empty()) {
      return SendError(call, 400, jsonrpc::kInvalidRequest,
                       "Mcp-Session-Id header required: send initialize first (or use per-request "
                       "_meta, protocol 2026-07-28)",
                       m.id);
    }
    mcall->session = sessions.Find(sid, sandbox_id);
    if (!mcall->session) {
      return SendError(call, 404, jsonrpc::kInvalidRequest, "session not found: initialize again",
                       m.id);
    }
    if (req.has_header("MCP-Protocol-Version") &&
        !mcp::IsLegacyVersion(req.get_header_value("MCP-Protocol-Version"))) {
      return SendError(call, 400, jsonrpc::kInvalidRequest, "unsupported MCP-Protocol-Version",
                       m.id);
    }
  }

  if (!is_request) {  // notifications (initialized, cancelled) and responses: accepted, no body
    (void)mcall->Run(nullptr);
    return Send(call, 202, std::nullopt);
  }
  if (mcall->session && m.id && !mcall->session->in_flight.Add(m.id->Key(), mcall->cancel)) {
    return SendError(call, 400, jsonrpc::kInvalidRequest,
                     "a request with this id is already in flight", m.id);
  }
  if (!new_session.empty()) call.response().set_header("Mcp-Session-Id", new_session);
  // A request the protocol refuses at once (unsupported version...) gets its error with its own
  // HTTP status, not a stream.
  if (m.method == "tools/call" && AcceptsEventStream(req) && (!era.modern || era.acceptable)) {
    return ServeSse(call, peers, mcall, cc);
  }
  mcp::Reply r;
  {
    auto watch = peers.Watch(req, mcall->cancel);
    r = mcall->Run(nullptr);
  }
  if (!new_session.empty() && r.negotiated.empty()) sessions.Remove(new_session, sandbox_id);
  if (!r.message) return Send(call, 204, std::nullopt);  // cancelled: no answer is due
  // A legacy client reads JSON-RPC errors from a 200 response; the current revision maps them to
  // HTTP statuses (400 unsupported version, 404 unknown method...).
  Send(call, r.modern ? r.http_status : 200, r.message);
}

}  // namespace

Result<std::pair<std::string, std::shared_ptr<McpSession>>> McpSessions::Create(
    const std::string& sandbox_id) {
  AF_ASSIGN_OR_RETURN(std::string id, RandomHex(16));
  auto session = std::make_shared<McpSession>(sandbox_id);
  const int64_t now = NowMs();
  session->last_used_ms = now;
  std::lock_guard lock(mu_);
  DropExpiredLocked(now);
  if (sessions_.size() >= max_) {
    // The session idle longest, among those with nothing in flight, makes room.
    auto victim = sessions_.end();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (it->second->in_flight.size() > 0) continue;
      if (victim == sessions_.end() || it->second->last_used_ms < victim->second->last_used_ms) {
        victim = it;
      }
    }
    if (victim == sessions_.end()) {
      return Error(ErrorCode::kUnavailable, "too many MCP sessions with calls in flight");
    }
    sessions_.erase(victim);
  }
  sessions_.emplace(id, session);
  return std::make_pair(id, session);
}

std::shared_ptr<McpSession> McpSessions::Find(const std::string& id,
                                              const std::string& sandbox_id) {
  std::lock_guard lock(mu_);
  DropExpiredLocked(NowMs());
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->sandbox_id != sandbox_id) return nullptr;
  it->second->last_used_ms = NowMs();
  return it->second;
}

bool McpSessions::Remove(const std::string& id, const std::string& sandbox_id) {
  std::shared_ptr<McpSession> gone;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second->sandbox_id != sandbox_id) return false;
    gone = std::move(it->second);
    sessions_.erase(it);
  }
  gone->in_flight.CancelAll();
  return true;
}

size_t McpSessions::size() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

void McpSessions::DropExpiredLocked(int64_t now_ms) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second->in_flight.size() == 0 &&
        now_ms - it->second->last_used_ms > idle_.count()) {
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

void RestServer::RegisterMcpRoutes() {
  const TransportDeps& d = deps_;
  PeerWatch* peers = peers_.get();
  McpSessions* sessions = mcp_sessions_.get();
  svr_->Post(R"(/v1/sandboxes/([^/]+)/mcp)",
             [&d, peers, sessions](const Request& req, Response& res, const ContentReader& rd) {
               RestCall call(d, req, res, kRoute);
               ServePost(*peers, *sessions, call, rd);
             });
  // Legacy clients end their session with DELETE.
  svr_->Delete(R"(/v1/sandboxes/([^/]+)/mcp)",
               [&d, sessions](const Request& req, Response& res) {
                 RestCall call(d, req, res, kRoute);
                 if (OriginRefused(call)) return;
                 std::string sid = req.get_header_value("Mcp-Session-Id");
                 if (sid.empty()) {
                   return SendError(call, 400, jsonrpc::kInvalidRequest,
                                    "Mcp-Session-Id header required");
                 }
                 if (!sessions->Remove(sid, call.Param(1))) {
                   return SendError(call, 404, jsonrpc::kInvalidRequest, "session not found");
                 }
                 Send(call, 200, std::nullopt);
               });
  // No standalone server-to-client stream: the server sends nothing unasked (the specification
  // lets a server answer 405 here, and the current revision removed the stream altogether).
  svr_->Get(R"(/v1/sandboxes/([^/]+)/mcp)", [&d](const Request& req, Response& res) {
    RestCall call(d, req, res, kRoute);
    if (OriginRefused(call)) return;
    res.set_header("Allow", "POST, DELETE");
    SendError(call, 405, jsonrpc::kInvalidRequest, "GET is not offered on this MCP endpoint");
  });
}

}  // namespace agentfense::server
