#include "server/rest_server.h"

#include <httplib.h>

#include <limits>

#include "server/auth.h"
#include "server/peer_watch.h"
#include "server/rest_mcp.h"
#include "server/rest_call.h"
#include "server/status_map.h"

namespace agentfense::server {

RestServer::RestServer(const TransportDeps& deps, size_t threads)
    : deps_(deps),
      peers_(std::make_unique<PeerWatch>()),
      mcp_sessions_(std::make_unique<McpSessions>()),
      svr_(std::make_unique<httplib::Server>()) {
  svr_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Body limits are enforced per route by RestCall (JSON) and the upload sink (files); httplib's
  // global cap would otherwise apply the JSON limit to streamed uploads too.
  svr_->set_payload_max_length(std::numeric_limits<size_t>::max());
  svr_->set_read_timeout(30, 0);
  svr_->set_write_timeout(30, 0);
  RegisterGuards();
  RegisterOpsRoutes();
  RegisterCodebaseRoutes();
  RegisterSandboxRoutes();
  RegisterMcpRoutes();
}

RestServer::~RestServer() { Stop(); }

Result<int> RestServer::Bind(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) {
    return Error(ErrorCode::kInvalidArgument, "http address must be host:port: " + addr);
  }
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  int port = 0;
  try {
    port = std::stoi(addr.substr(colon + 1));
  } catch (...) {
    return Error(ErrorCode::kInvalidArgument, "bad port in http address: " + addr);
  }
  if (port == 0) {
    int bound = svr_->bind_to_any_port(host);
    if (bound <= 0) return Error(ErrorCode::kUnavailable, "cannot bind " + addr);
    return bound;
  }
  if (!svr_->bind_to_port(host, port)) {
    return Error(ErrorCode::kUnavailable, "cannot bind " + addr);
  }
  return port;
}

void RestServer::Serve() { svr_->listen_after_bind(); }

void RestServer::Stop() {
  if (svr_->is_running()) svr_->stop();
}

void RestServer::RegisterGuards() {
  svr_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/healthz") return httplib::Server::HandlerResponse::Unhandled;
    if (deps_.auth_token.empty()) {
      if (!deps_.check_host) return httplib::Server::HandlerResponse::Unhandled;
      // Without a token the API trusts "whoever reaches loopback"; a browser page can reach it
      // too through DNS rebinding, which only a Host check stops.
      if (!IsAllowedHost(req.get_header_value("Host"), deps_.extra_allowed_hosts)) {
        RestCall call(deps_, req, res, "unmatched");
        call.ReplyError(Error(ErrorCode::kPermissionDenied, "Host header not allowed"));
        res.set_header("Connection", "close");
        return httplib::Server::HandlerResponse::Handled;
      }
    } else if (!CheckBearer(req.get_header_value("Authorization"), deps_.auth_token)) {
      RestCall call(deps_, req, res, "unmatched");
      call.ReplyError(Error(ErrorCode::kUnauthenticated, "missing or invalid bearer token"));
      res.set_header("WWW-Authenticate", "Bearer");
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // httplib calls this for every status >= 400; only fill bodies it produced itself (no route,
  // malformed request).
  svr_->set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty() || res.content_length_ > 0) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    ErrorCode code = ErrorCode::kUnknown;
    std::string msg = "request failed";
    switch (res.status) {
      case 404:
        code = ErrorCode::kNotFound;
        msg = "no such route";
        break;
      case 405:
        code = ErrorCode::kUnimplemented;
        msg = "method not allowed";
        break;
      case 413:
        code = ErrorCode::kResourceExhausted;
        msg = "request body too large";
        break;
      case 400:
        code = ErrorCode::kInvalidArgument;
        msg = "malformed request";
        break;
      default:
        break;
    }
    res.set_content(ErrorJson(code, msg), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, const std::exception_ptr&) {
        res.status = 500;
        res.set_content(ErrorJson(ErrorCode::kInternal, "internal error"), "application/json");
      });
}

void RestServer::RegisterOpsRoutes() {
  svr_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  svr_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(deps_.metrics != nullptr ? deps_.metrics->Render() : "",
                    "text/plain; version=0.0.4");
  });
}

}  // namespace agentfense::server
