// Client mode: `session create|exec|rm|ls`.
#include <fmt/format.h>

#include "cli/client_common.h"
#include "cli/exit_codes.h"

namespace agentfense::cli {

void AddSessionCommands(CLI::App& app, const ClientRegistrar& r) {
  const auto& c = r.c;
  CLI::App* session = r.Group(&app, "session", "Persistent shell sessions (client mode)");
  auto sbid = std::make_shared<std::string>();
  auto shell = std::make_shared<std::string>();
  auto env = std::make_shared<std::vector<std::string>>();
  CLI::App* create = r.Leaf(session, "create", "Open a session in a sandbox; prints its id");
  create->add_option("SANDBOX", *sbid, "Sandbox id")->required();
  create->add_option("--shell", *shell, "Shell (default bash, else sh)");
  create->add_option("--env", *env, "NAME=VALUE (repeatable)")->allow_extra_args(false);
  r.commands.On(create, [c, sbid, shell, env] {
    v1::CreateSessionRequest req;
    req.set_sandbox_id(*sbid);
    req.set_shell(*shell);
    auto kv = KeyValues(*env, "--env");
    if (!kv.ok()) return Fail(*c, kv.error());
    for (auto& [k, v] : *kv) (*req.mutable_env())[k] = v;
    Client client(c->flags);
    v1::Session s;
    auto st = client.sandboxes().CreateSession(client.Context().get(), req, &s);
    if (!st.ok()) return GrpcFail(st, "session create", client.endpoint(), *c->err);
    *c->out << (c->flags.json ? ToJson(s) : s.id()) << "\n";
    return kExitOk;
  });

  auto sid = std::make_shared<std::string>();
  auto timeout = std::make_shared<std::string>();
  CLI::App* exec = r.Leaf(session, "exec",
                          "Run shell text in a session (state persists); exits with its status. "
                          "Usage: session exec SESSION -- COMMAND...");
  exec->add_option("SESSION", *sid, "Session id")->required();
  exec->add_option("--timeout", *timeout, "Kill the command after DUR");
  r.commands.On(
      exec,
      [c, sid, timeout] {
        auto text = CommandText(*c);
        if (!text.ok()) return Fail(*c, text.error());
        v1::SessionExecRequest req;
        req.set_session_id(*sid);
        req.set_command(*text);
        if (!timeout->empty()) {
          auto d = ToDuration(*timeout, "--timeout");
          if (!d.ok()) return Fail(*c, d.error());
          *req.mutable_timeout() = *d;
        }
        return RunExecStream(*c, req);
      },
      /*takes_command=*/true);

  auto rmid = std::make_shared<std::string>();
  CLI::App* rm = r.Leaf(session, "rm", "Close a session (kills its processes)");
  rm->add_option("SESSION", *rmid, "Session id")->required();
  r.commands.On(rm, [c, rmid] {
    Client client(c->flags);
    v1::DestroySessionRequest req;
    req.set_session_id(*rmid);
    v1::Empty empty;
    auto st = client.sandboxes().DestroySession(client.Context().get(), req, &empty);
    if (!st.ok()) return GrpcFail(st, "session rm", client.endpoint(), *c->err);
    if (c->flags.json) *c->out << "{}\n";
    return kExitOk;
  });

  auto lsid = std::make_shared<std::string>();
  CLI::App* ls = r.Leaf(session, "ls", "List the sessions of a sandbox");
  ls->add_option("SANDBOX", *lsid, "Sandbox id")->required();
  r.commands.On(ls, [c, lsid] {
    Client client(c->flags);
    v1::ListSessionsRequest req;
    req.set_sandbox_id(*lsid);
    v1::ListSessionsResponse resp;
    auto st = client.sandboxes().ListSessions(client.Context().get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "session ls", client.endpoint(), *c->err);
    if (c->flags.json) {
      *c->out << ToJson(resp) << "\n";
      return kExitOk;
    }
    for (const auto& s : resp.sessions()) {
      std::string status = v1::SessionStatus_Name(s.status());
      if (status.rfind("SESSION_STATUS_", 0) == 0) status = status.substr(15);
      *c->out << fmt::format("{:<24} {:<7} {:<10} {}\n", s.id(), status, s.shell(),
                             Ts(s.created_at()));
    }
    return kExitOk;
  });
}

}  // namespace agentfense::cli
