// SandboxManager: exec, streaming exec and sessions (lifecycle is in sandbox_manager.cc).
#include <fmt/format.h>

#include "base/ids.h"
#include "base/path.h"
#include "base/utf8.h"
#include "service/convert.h"
#include "service/sandbox_convert.h"
#include "service/sandbox_manager.h"
#include "service/validation.h"
#include "store/metadata_store.h"

namespace agentfense::service {
namespace {

namespace proto = runtime::proto;

// The sandbox's env (CreateSandboxRequest.env) overlaid with the request's: the request wins.
Result<std::vector<std::pair<std::string, std::string>>> Env(
    const std::map<std::string, std::string>& base,
    const google::protobuf::Map<std::string, std::string>& env) {
  std::map<std::string, std::string> merged = base;
  std::map<std::string, std::string> request(env.begin(), env.end());
  AF_RETURN_IF_ERROR(ValidateEnv(request));
  for (auto& [k, v] : request) merged[k] = std::move(v);
  AF_RETURN_IF_ERROR(ValidateEnv(merged));
  return std::vector<std::pair<std::string, std::string>>(merged.begin(), merged.end());
}

v1::ExecResult ToProto(const runtime::ExecResult& r) {
  v1::ExecResult out;
  // `string` fields: repaired to valid UTF-8 (base/utf8.h); streams carry the raw bytes.
  out.set_stdout(ToValidUtf8(r.stdout_data));
  out.set_stderr(ToValidUtf8(r.stderr_data));
  out.set_exit_code(r.exit_code);
  SetDuration(static_cast<int64_t>(r.duration_us) * 1000, out.mutable_duration());
  return out;
}

Error TimedOut(std::chrono::milliseconds timeout) {
  return Error(ErrorCode::kDeadlineExceeded,
               fmt::format("command exceeded its timeout of {} ms and was killed", timeout.count()));
}

}  // namespace

// Runs a command (ExecRequest or SessionExecRequest) through the sandbox's agent.
template <typename Request>
Result<runtime::ExecResult> SandboxManager::RunCommand(const CallContext& ctx, const Request& req,
                                                       const runtime::OutputCallback& on_output,
                                                       bool timeout_is_error) {
  AF_RETURN_IF_ERROR(ValidateCommand(req.command()));
  std::chrono::milliseconds timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.default_timeout);
  if (req.has_timeout()) {
    int64_t ns = DurationToNs(req.timeout());
    if (ns < 0) return Error(ErrorCode::kInvalidArgument, "timeout must not be negative");
    if (ns > 0) timeout = std::chrono::milliseconds((ns + 999'999) / 1'000'000);
  }
  auto max = std::chrono::duration_cast<std::chrono::milliseconds>(options_.max_timeout);
  if (timeout > max) timeout = max;

  runtime::CallOptions call;
  call.cancel = ctx.cancelled.get();
  const auto started = std::chrono::steady_clock::now();
  Result<runtime::ExecResult> result = Error(ErrorCode::kInternal, "unreachable");
  if constexpr (std::is_same_v<Request, v1::ExecRequest>) {
    if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
    AF_ASSIGN_OR_RETURN(auto live, RunningSandbox(req.sandbox_id()));
    proto::Exec e;
    e.shell_command = req.command();
    if (req.stdin().size() > kMaxStdinBytes) {
      return Error(ErrorCode::kInvalidArgument, "stdin larger than 16 MiB");
    }
    e.stdin_data = req.stdin();
    AF_ASSIGN_OR_RETURN(e.env, Env(live->env, req.env()));
    AF_ASSIGN_OR_RETURN(e.workdir, SandboxWorkdir(req.workdir()));
    e.timeout_ms = static_cast<uint32_t>(timeout.count());
    e.output_cap = options_.max_output_bytes;
    {
      Live::Running running(*live);
      result = live->agent->Exec(e, on_output, call);
    }
    AfterCommand(*live, "");
  } else {
    if (req.session_id().empty()) return Error(ErrorCode::kInvalidArgument, "session_id is required");
    AF_RETURN_IF_ERROR(ValidateSessionId(req.session_id()));
    AF_ASSIGN_OR_RETURN(store::SessionRecord sess, deps_.metadata->GetSession(req.session_id()));
    if (sess.status != store::SessionStatus::kActive) {
      return Error(ErrorCode::kFailedPrecondition,
                   fmt::format("session {} is closed", req.session_id()));
    }
    AF_ASSIGN_OR_RETURN(auto live, RunningSandbox(sess.sandbox_id));
    uint64_t agent_sid = 0;
    {
      std::lock_guard lock(live->sessions_mu);
      auto it = live->sessions.find(sess.id);
      if (it == live->sessions.end()) {
        return Error(ErrorCode::kFailedPrecondition,
                     fmt::format("session {} is no longer alive in its sandbox", sess.id));
      }
      agent_sid = it->second;
    }
    proto::SessionExec e;
    e.session_id = agent_sid;
    e.command = req.command();
    e.timeout_ms = static_cast<uint32_t>(timeout.count());
    e.output_cap = options_.max_output_bytes;
    {
      Live::Running running(*live);
      result = live->agent->SessionExec(e, on_output, call);
    }
    if (result.ok()) AfterCommand(*live, sess.id);
    if (!result.ok() && result.error().code() == ErrorCode::kFailedPrecondition) {
      // The shell is gone (the user ran `exit`): the session turns CLOSED.
      (void)deps_.metadata->CloseSession(sess.id, NowNs());
      {
        std::lock_guard lock(live->sessions_mu);
        live->sessions.erase(sess.id);
      }
      SaveSessions(*live);
      return Error(ErrorCode::kFailedPrecondition,
                   fmt::format("session {} is closed: its shell exited", sess.id));
    }
  }
  RecordExec(std::is_same_v<Request, v1::ExecRequest> ? "exec" : "session_exec",
             std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
             result.ok() && !result->timed_out);
  if (!result.ok()) return result;
  if (result->timed_out && timeout_is_error) return TimedOut(timeout);
  return result;
}

// sandbox_mcp.cc runs its commands through the same path.
template Result<runtime::ExecResult> SandboxManager::RunCommand<v1::ExecRequest>(
    const CallContext&, const v1::ExecRequest&, const runtime::OutputCallback&, bool);

Result<v1::ExecResult> SandboxManager::Exec(const CallContext& ctx, const v1::ExecRequest& req) {
  AF_ASSIGN_OR_RETURN(auto r, RunCommand(ctx, req, nullptr));
  return ToProto(r);
}

namespace {

// Streams typed chunks through `write`; a write failure (client gone) cancels the command.
runtime::OutputCallback StreamTo(const CallContext& ctx, const ExecOutputWriter& write) {
  return [&ctx, &write](proto::Stream stream, std::string_view data) {
    v1::ExecOutput out;
    out.set_type(stream == proto::Stream::kStdout ? v1::ExecOutput::OUTPUT_TYPE_STDOUT
                                                  : v1::ExecOutput::OUTPUT_TYPE_STDERR);
    out.set_data(std::string(data));
    if (!write(out) && ctx.cancelled) ctx.cancelled->store(true);
  };
}

Status FinishStream(const CallContext& ctx, const Result<runtime::ExecResult>& r,
                    const ExecOutputWriter& write) {
  if (!r.ok()) return r.error();
  if (ctx.IsCancelled()) return Error(ErrorCode::kCancelled, "the client went away");
  v1::ExecOutput last;
  last.set_exit_code(r->exit_code);
  if (!write(last)) return Error(ErrorCode::kCancelled, "the client went away");
  return OkStatus();
}

}  // namespace

Status SandboxManager::ExecStream(const CallContext& ctx, const v1::ExecRequest& req,
                                  const ExecOutputWriter& write) {
  return FinishStream(ctx, RunCommand(ctx, req, StreamTo(ctx, write)), write);
}

Status SandboxManager::SessionExecStream(const CallContext& ctx, const v1::SessionExecRequest& req,
                                         const ExecOutputWriter& write) {
  return FinishStream(ctx, RunCommand(ctx, req, StreamTo(ctx, write)), write);
}

Result<v1::ExecResult> SandboxManager::SessionExec(const CallContext& ctx,
                                                   const v1::SessionExecRequest& req) {
  AF_ASSIGN_OR_RETURN(auto r, RunCommand(ctx, req, nullptr));
  return ToProto(r);
}

Result<v1::Session> SandboxManager::CreateSession(const CallContext&,
                                                  const v1::CreateSessionRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_ASSIGN_OR_RETURN(auto live, RunningSandbox(req.sandbox_id()));
  if (req.shell().size() > 256 || req.shell().find('\0') != std::string::npos) {
    return Error(ErrorCode::kInvalidArgument, "shell is invalid");
  }
  proto::SessionOpen open;
  open.shell = req.shell();
  AF_ASSIGN_OR_RETURN(open.env, Env(live->env, req.env()));
  AF_ASSIGN_OR_RETURN(uint64_t agent_sid, live->agent->OpenSession(open));

  store::SessionRecord rec;
  AF_ASSIGN_OR_RETURN(rec.id, NewSessionId());
  rec.sandbox_id = req.sandbox_id();
  rec.status = store::SessionStatus::kActive;
  rec.shell = req.shell().empty()
                  ? (live->agent->agent_hello().has_bash ? "/bin/bash" : "/bin/sh")
                  : req.shell();
  rec.created_at_ns = NowNs();
  if (auto st = deps_.metadata->CreateSession(rec); !st.ok()) {
    (void)live->agent->CloseSession(agent_sid);
    return st.error();
  }
  {
    std::lock_guard lock(live->sessions_mu);
    live->sessions[rec.id] = agent_sid;
  }
  SaveSessions(*live);
  return SessionToProto(rec);
}

Result<v1::Session> SandboxManager::GetSession(const CallContext&, const v1::GetSessionRequest& req) {
  if (req.session_id().empty()) return Error(ErrorCode::kInvalidArgument, "session_id is required");
  AF_RETURN_IF_ERROR(ValidateSessionId(req.session_id()));
  AF_ASSIGN_OR_RETURN(auto rec, deps_.metadata->GetSession(req.session_id()));
  if (rec.status == store::SessionStatus::kActive) {
    // A shell that exited on its own shows CLOSED now, not at its next command.
    if (auto live = FindLive(rec.sandbox_id)) {
      ProbeSessions(*live, rec.id);
      AF_ASSIGN_OR_RETURN(rec, deps_.metadata->GetSession(req.session_id()));
    }
  }
  return SessionToProto(rec);
}

Result<v1::ListSessionsResponse> SandboxManager::ListSessions(const CallContext&,
                                                              const v1::ListSessionsRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_RETURN_IF_ERROR(ValidateSandboxId(req.sandbox_id()));
  AF_RETURN_IF_ERROR(deps_.metadata->GetSandbox(req.sandbox_id()));
  if (auto live = FindLive(req.sandbox_id())) ProbeSessions(*live, "");
  AF_ASSIGN_OR_RETURN(auto all, deps_.metadata->ListSessions(req.sandbox_id()));
  v1::ListSessionsResponse out;
  for (const auto& rec : all) *out.add_sessions() = SessionToProto(rec);
  return out;
}

Result<v1::Empty> SandboxManager::DestroySession(const CallContext&,
                                                 const v1::DestroySessionRequest& req) {
  if (req.session_id().empty()) return Error(ErrorCode::kInvalidArgument, "session_id is required");
  AF_RETURN_IF_ERROR(ValidateSessionId(req.session_id()));
  AF_ASSIGN_OR_RETURN(auto rec, deps_.metadata->GetSession(req.session_id()));
  if (auto live = FindLive(rec.sandbox_id)) {
    uint64_t agent_sid = 0;
    bool found = false;
    {
      std::lock_guard lock(live->sessions_mu);
      if (auto it = live->sessions.find(rec.id); it != live->sessions.end()) {
        agent_sid = it->second;
        found = true;
        live->sessions.erase(it);
      }
    }
    if (found && live->agent) {
      // Kills the whole process tree of the session; an already-exited shell is fine.
      (void)live->agent->CloseSession(agent_sid);
      SaveSessions(*live);
    }
  }
  if (rec.status == store::SessionStatus::kActive) {
    AF_RETURN_IF_ERROR(deps_.metadata->CloseSession(rec.id, NowNs()));
  }
  return v1::Empty();
}

}  // namespace agentfense::service
