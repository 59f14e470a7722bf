// REST routes of SandboxService (WIRE.md) and the exec:stream extensions.
#include <httplib.h>

#include <google/protobuf/util/time_util.h>

#include "sandbox/v1/sandbox.pb.h"
#include "server/json_codec.h"
#include "server/peer_watch.h"
#include "server/rest_call.h"
#include "server/rest_server.h"
#include "server/status_map.h"

namespace agentfense::server {

namespace v1 = ::sandbox::v1;
using httplib::ContentReader;
using httplib::Request;
using httplib::Response;

namespace {

template <typename M>
Result<std::string> Json(Result<M> r) {
  if (!r.ok()) return std::move(r).error();
  return MessageToJson(r.value());
}

// grpc-gateway's framing of server streams: {"result": <msg>} per line, {"error": {...}} last
// when the call fails after output began.
std::string ResultLine(const google::protobuf::Message& out) {
  return "{\"result\":" + MessageToJson(out) + "}\n";
}
std::string ErrorLine(const Error& e) {
  return "{\"error\":" + ErrorJson(e.code(), ClientMessage(e)) + "}\n";
}

// Runs `produce(cc, writer) -> Status` on the executor and streams its output as NDJSON. If the
// call fails before producing anything, the client gets a normal HTTP error instead. A client
// that hangs up cancels the command at once (`peers`), even while the command prints nothing.
template <typename Msg = v1::ExecOutput, typename Produce>
void StreamExec(RestCall& call, PeerWatch& peers, Produce produce) {
  auto bridge = std::make_shared<StreamBridge>();
  service::CallContext cc = call.context();
  std::shared_ptr<void> watch = peers.Watch(call.request(), cc.cancelled);
  call.deps().executor->Submit([bridge, cc, produce = std::move(produce)] {
    Status status = produce(cc, [&bridge, &cc](const Msg& out) {
      return bridge->Push(ResultLine(out), cc);
    });
    bridge->Finish(std::move(status));
  });
  {
    std::unique_lock lock(bridge->mu);
    bridge->cv.wait(lock, [&] { return !bridge->lines.empty() || bridge->done; });
    if (bridge->lines.empty() && !bridge->final.ok()) {
      Error e = bridge->final.error();
      lock.unlock();
      call.ReplyError(e);
      return;
    }
  }
  call.Record(ErrorCode::kOk);
  Response& res = call.response();
  res.status = 200;
  auto cancelled = cc.cancelled;
  res.set_chunked_content_provider(
      "application/x-ndjson",
      [bridge](size_t, httplib::DataSink& sink) {
        if (auto line = bridge->Next()) return sink.write(line->data(), line->size());
        std::string tail = bridge->final.ok() ? "" : ErrorLine(bridge->final.error());
        if (!tail.empty() && !sink.write(tail.data(), tail.size())) return false;
        sink.done();
        return true;
      },
      // Runs when the response is over for any reason (done, client gone, server stopping): a
      // producer still running has nobody to write to.
      [bridge, cancelled, watch](bool /*success*/) {
        cancelled->store(true);
        bridge->Abandon();
      });
}

}  // namespace

void RestServer::RegisterSandboxRoutes() {
  const TransportDeps& d = deps_;
  PeerWatch* peers = peers_.get();
  // Routes whose whole request is the JSON body, plus a path parameter.
  svr_->Post("/v1/sandboxes", [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes:post", [&](RestCall& call) -> Result<std::string> {
      v1::CreateSandboxRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      return Json(d.sandboxes->CreateSandbox(call.context(), m));
    });
  });
  svr_->Get("/v1/sandboxes", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sandboxes:get", [&](RestCall& call) -> Result<std::string> {
      v1::ListSandboxesRequest m;
      m.set_codebase_id(call.Query("codebase_id", "codebaseId"));
      AF_ASSIGN_OR_RETURN(int32_t size, call.QueryInt("page_size", "pageSize"));
      m.set_page_size(size);
      m.set_page_token(call.Query("page_token", "pageToken"));
      return Json(d.sandboxes->ListSandboxes(call.context(), m));
    });
  });
  svr_->Get(R"(/v1/sandboxes/([^/]+))", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}:get", [&](RestCall& call) -> Result<std::string> {
      v1::GetSandboxRequest m;
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->GetSandbox(call.context(), m));
    });
  });
  svr_->Post(R"(/v1/sandboxes/([^/]+)/start)",
             [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/start", [&](RestCall& call) -> Result<std::string> {
      v1::StartSandboxRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->StartSandbox(call.context(), m));
    });
  });
  svr_->Post(R"(/v1/sandboxes/([^/]+)/stop)",
             [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/stop", [&](RestCall& call) -> Result<std::string> {
      v1::StopSandboxRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->StopSandbox(call.context(), m));
    });
  });
  svr_->Delete(R"(/v1/sandboxes/([^/]+))",
               [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}:delete", [&](RestCall& call) -> Result<std::string> {
      v1::DestroySandboxRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->DestroySandbox(call.context(), m));
    });
  });
  svr_->Post(R"(/v1/sandboxes/([^/]+)/exec)",
             [&d, peers](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/exec", [&](RestCall& call) -> Result<std::string> {
      v1::ExecRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      auto watch = peers->Watch(req, call.context().cancelled);
      return Json(d.sandboxes->Exec(call.context(), m));
    });
  });
  svr_->Post(R"(/v1/sandboxes/([^/]+)/exec:stream)",
             [&d, peers](const Request& req, Response& res, const ContentReader& rd) {
    RestCall call(d, req, res, "/v1/sandboxes/{id}/exec:stream");
    v1::ExecRequest m;
    if (Status s = call.ReadJson(&rd, &m); !s.ok()) {
      call.ReplyError(s.error());
      return;
    }
    m.set_sandbox_id(call.Param(1));
    StreamExec(call, *peers, [api = d.sandboxes, m](const service::CallContext& cc,
                                            const service::ExecOutputWriter& w) {
      return api->ExecStream(cc, m, w);
    });
  });
  svr_->Post(R"(/v1/sandboxes/([^/]+)/sessions)",
             [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/sessions:post",
              [&](RestCall& call) -> Result<std::string> {
      v1::CreateSessionRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->CreateSession(call.context(), m));
    });
  });
  svr_->Get(R"(/v1/sandboxes/([^/]+)/sessions)", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/sessions:get",
              [&](RestCall& call) -> Result<std::string> {
      v1::ListSessionsRequest m;
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->ListSessions(call.context(), m));
    });
  });
  svr_->Get(R"(/v1/sessions/([^/]+))", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sessions/{id}:get", [&](RestCall& call) -> Result<std::string> {
      v1::GetSessionRequest m;
      m.set_session_id(call.Param(1));
      return Json(d.sandboxes->GetSession(call.context(), m));
    });
  });
  svr_->Delete(R"(/v1/sessions/([^/]+))",
               [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sessions/{id}:delete", [&](RestCall& call) -> Result<std::string> {
      v1::DestroySessionRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_session_id(call.Param(1));
      return Json(d.sandboxes->DestroySession(call.context(), m));
    });
  });
  svr_->Post(R"(/v1/sessions/([^/]+)/exec)",
             [&d, peers](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sessions/{id}/exec", [&](RestCall& call) -> Result<std::string> {
      v1::SessionExecRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_session_id(call.Param(1));
      auto watch = peers->Watch(req, call.context().cancelled);
      return Json(d.sandboxes->SessionExec(call.context(), m));
    });
  });
  svr_->Post(R"(/v1/sessions/([^/]+)/exec:stream)",
             [&d, peers](const Request& req, Response& res, const ContentReader& rd) {
    RestCall call(d, req, res, "/v1/sessions/{id}/exec:stream");
    v1::SessionExecRequest m;
    if (Status s = call.ReadJson(&rd, &m); !s.ok()) {
      call.ReplyError(s.error());
      return;
    }
    m.set_session_id(call.Param(1));
    StreamExec(call, *peers, [api = d.sandboxes, m](const service::CallContext& cc,
                                            const service::ExecOutputWriter& w) {
      return api->SessionExecStream(cc, m, w);
    });
  });

  RegisterExtensionRoutes();
  RegisterCheckpointRoutes();
}

namespace {

// since / until as grpc-gateway encodes a Timestamp in a query: RFC 3339.
Status ParseTimeQuery(const RestCall& call, const char* name, google::protobuf::Timestamp* out) {
  std::string v = call.Query(name);
  if (v.empty()) return OkStatus();
  if (!google::protobuf::util::TimeUtil::FromString(v, out)) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(name) + " must be an RFC 3339 time (2026-01-02T03:04:05Z)");
  }
  return OkStatus();
}

Result<std::string> AuditQuery(const TransportDeps& d, RestCall& call, const std::string& sandbox) {
  if (HasBody(call.request())) {
    return Error(ErrorCode::kInvalidArgument, "this route takes no request body");
  }
  v1::GetAuditLogRequest m;
  m.set_sandbox_id(sandbox.empty() ? call.Query("sandbox_id", "sandboxId") : sandbox);
  m.set_kind(call.Query("kind"));
  m.set_path_prefix(call.Query("path_prefix", "pathPrefix"));
  AF_RETURN_IF_ERROR(ParseTimeQuery(call, "since", m.mutable_since()));
  AF_RETURN_IF_ERROR(ParseTimeQuery(call, "until", m.mutable_until()));
  if (call.Query("since").empty()) m.clear_since();
  if (call.Query("until").empty()) m.clear_until();
  AF_ASSIGN_OR_RETURN(int32_t size, call.QueryInt("page_size", "pageSize"));
  m.set_page_size(size);
  m.set_page_token(call.Query("page_token", "pageToken"));
  return Json(d.sandboxes->GetAuditLog(call.context(), m));
}

}  // namespace

// The AgentFense extensions of SandboxService (proto/sandbox/v1/sandbox.proto).
void RestServer::RegisterExtensionRoutes() {
  const TransportDeps& d = deps_;
  svr_->Put(R"(/v1/sandboxes/([^/]+)/permissions)",
            [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/permissions:put",
              [&](RestCall& call) -> Result<std::string> {
      v1::UpdatePermissionsRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->UpdatePermissions(call.context(), m));
    });
  });
  svr_->Put(R"(/v1/sandboxes/([^/]+)/egress)",
            [&d](const Request& req, Response& res, const ContentReader& rd) {
              ServeJson(d, req, res, "/v1/sandboxes/{id}/egress:put",
                        [&](RestCall& call) -> Result<std::string> {
                          v1::UpdateEgressRequest m;
                          AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
                          m.set_sandbox_id(call.Param(1));
                          return Json(d.sandboxes->UpdateEgress(call.context(), m));
                        });
            });
  svr_->Get(R"(/v1/sandboxes/([^/]+)/permissions:explain)", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/permissions:explain",
              [&](RestCall& call) -> Result<std::string> {
      v1::ExplainPermissionRequest m;
      m.set_sandbox_id(call.Param(1));
      if (!call.request().has_param("path")) {
        return Error(ErrorCode::kInvalidArgument, "query parameter path is required");
      }
      m.set_path(call.Query("path"));
      return Json(d.sandboxes->ExplainPermission(call.context(), m));
    });
  });
  svr_->Get(R"(/v1/sandboxes/([^/]+)/changes)", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/changes", [&](RestCall& call) -> Result<std::string> {
      v1::ListChangesRequest m;
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->ListChanges(call.context(), m));
    });
  });
  svr_->Post(R"(/v1/sandboxes/([^/]+)/changes:commit)",
             [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/changes:commit",
              [&](RestCall& call) -> Result<std::string> {
      v1::CommitChangesRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->CommitChanges(call.context(), m));
    });
  });
  svr_->Post(R"(/v1/sandboxes/([^/]+)/changes:discard)",
             [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/changes:discard",
              [&](RestCall& call) -> Result<std::string> {
      v1::DiscardChangesRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->DiscardChanges(call.context(), m));
    });
  });
  svr_->Get("/v1/audit", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/audit",
              [&](RestCall& call) { return AuditQuery(d, call, ""); });
  });
  svr_->Get(R"(/v1/sandboxes/([^/]+)/audit)", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/audit",
              [&](RestCall& call) { return AuditQuery(d, call, call.Param(1)); });
  });
}

// Checkpoints (docs/CHECKPOINTS.md) and approvals (docs/PERMISSIONS.md, "ask"). Names and ids
// never contain '/' or ':' (the services check them again), so a capture stops at either.
void RestServer::RegisterCheckpointRoutes() {
  const TransportDeps& d = deps_;
  PeerWatch* peers = peers_.get();
  svr_->Post(R"(/v1/sandboxes/([^/]+)/checkpoints)",
             [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/checkpoints:post",
              [&](RestCall& call) -> Result<std::string> {
      v1::CreateCheckpointRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->CreateCheckpoint(call.context(), m));
    });
  });
  svr_->Get(R"(/v1/sandboxes/([^/]+)/checkpoints)", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/checkpoints:get",
              [&](RestCall& call) -> Result<std::string> {
      v1::ListCheckpointsRequest m;
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->ListCheckpoints(call.context(), m));
    });
  });
  svr_->Post(R"(/v1/sandboxes/([^/]+)/checkpoints/([^/:]+):restore)",
             [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/checkpoints/{name}:restore",
              [&](RestCall& call) -> Result<std::string> {
      v1::RestoreCheckpointRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      m.set_name(call.Param(2));
      return Json(d.sandboxes->RestoreCheckpoint(call.context(), m));
    });
  });
  svr_->Get(R"(/v1/sandboxes/([^/]+)/checkpoints/([^/:]+)/diff)",
            [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/checkpoints/{name}/diff",
              [&](RestCall& call) -> Result<std::string> {
      v1::DiffCheckpointRequest m;
      m.set_sandbox_id(call.Param(1));
      m.set_name(call.Param(2));
      m.set_against(call.Query("against"));
      return Json(d.sandboxes->DiffCheckpoint(call.context(), m));
    });
  });
  svr_->Delete(R"(/v1/sandboxes/([^/]+)/checkpoints/([^/:]+))",
               [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/checkpoints/{name}:delete",
              [&](RestCall& call) -> Result<std::string> {
      v1::DeleteCheckpointRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_sandbox_id(call.Param(1));
      m.set_name(call.Param(2));
      return Json(d.sandboxes->DeleteCheckpoint(call.context(), m));
    });
  });

  svr_->Get(R"(/v1/sandboxes/([^/]+)/approvals)", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/sandboxes/{id}/approvals", [&](RestCall& call) -> Result<std::string> {
      v1::ListApprovalsRequest m;
      m.set_sandbox_id(call.Param(1));
      return Json(d.sandboxes->ListApprovals(call.context(), m));
    });
  });
  for (const char* verb : {"allow", "deny"}) {
    const bool allow = verb[0] == 'a';
    svr_->Post(std::string(R"(/v1/sandboxes/([^/]+)/approvals/([^/:]+):)") + verb,
               [&d, allow](const Request& req, Response& res, const ContentReader& rd) {
      ServeJson(d, req, res,
                allow ? "/v1/sandboxes/{id}/approvals/{id}:allow"
                      : "/v1/sandboxes/{id}/approvals/{id}:deny",
                [&](RestCall& call) -> Result<std::string> {
        v1::AnswerApprovalRequest m;
        AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
        m.set_sandbox_id(call.Param(1));
        m.set_approval_id(call.Param(2));
        if (!allow) {
          if (m.decision() != v1::APPROVAL_DECISION_UNSPECIFIED &&
              m.decision() != v1::APPROVAL_DECISION_DENY) {
            return Error(ErrorCode::kInvalidArgument, ":deny takes no allowing decision");
          }
          m.set_decision(v1::APPROVAL_DECISION_DENY);
        } else if (m.decision() == v1::APPROVAL_DECISION_UNSPECIFIED) {
          m.set_decision(v1::APPROVAL_DECISION_ALLOW);
        } else if (m.decision() == v1::APPROVAL_DECISION_DENY) {
          return Error(ErrorCode::kInvalidArgument, ":allow cannot deny; use :deny");
        }
        return Json(d.sandboxes->AnswerApproval(call.context(), m));
      });
    });
  }
  svr_->Get(R"(/v1/sandboxes/([^/]+)/approvals:watch)",
            [&d, peers](const Request& req, Response& res) {
    RestCall call(d, req, res, "/v1/sandboxes/{id}/approvals:watch");
    v1::WatchApprovalsRequest m;
    if (Status s = call.ReadJson(nullptr, &m); !s.ok()) {
      call.ReplyError(s.error());
      return;
    }
    m.set_sandbox_id(call.Param(1));
    StreamExec<v1::Approval>(call, *peers, [api = d.sandboxes, m](const service::CallContext& cc,
                                                         const service::ApprovalWriter& w) {
      return api->WatchApprovals(cc, m, w);
    });
  });
}

}  // namespace agentfense::server
