// Client mode: `sandbox create|start|stop|get|rm|ls|exec|shell`.
#include <fmt/format.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include "base/units.h"
#include "cli/client_common.h"
#include "cli/exit_codes.h"
#include "cli/interrupts.h"
#include "cli/rules_input.h"

namespace agentfense::cli {
namespace {

std::string LevelOf(v1::Permission p) {
  switch (p) {
    case v1::PERMISSION_NONE:
      return "none";
    case v1::PERMISSION_VIEW:
      return "view";
    case v1::PERMISSION_READ:
      return "read";
    case v1::PERMISSION_WRITE:
      return "write";
    case v1::PERMISSION_ASK:
      return "ask";
    default:
      return "?";
  }
}

v1::PermissionRule ToProto(const policy::Rule& r) {
  v1::PermissionRule p;
  p.set_pattern(r.pattern);
  p.set_type(r.type == policy::PatternType::kDirectory ? v1::PATTERN_TYPE_DIRECTORY
             : r.type == policy::PatternType::kFile    ? v1::PATTERN_TYPE_FILE
                                                       : v1::PATTERN_TYPE_GLOB);
  p.set_permission(r.level == policy::Level::kWrite  ? v1::PERMISSION_WRITE
                   : r.level == policy::Level::kRead ? v1::PERMISSION_READ
                   : r.level == policy::Level::kAsk  ? v1::PERMISSION_ASK
                   : r.level == policy::Level::kView ? v1::PERMISSION_VIEW
                                                     : v1::PERMISSION_NONE);
  p.set_priority(r.priority);
  return p;
}

void PrintSandbox(ClientCtx& c, const v1::Sandbox& s) {
  if (c.flags.json) {
    *c.out << ToJson(s) << "\n";
    return;
  }
  std::ostream& o = *c.out;
  o << "id:        " << s.id() << "\n"
    << "status:    " << StatusName(s.status())
    << (s.status_message().empty() ? "" : " (" + s.status_message() + ")") << "\n"
    << "codebase:  " << s.codebase_id() << "\n"
    << "runtime:   " << (s.runtime() == v1::RUNTIME_TYPE_DOCKER ? "docker" : "bwrap")
    << (s.image().empty() ? "" : " " + s.image()) << "\n"
    << "network:   " << (s.network() ? "yes" : "no") << "\n";
  if (s.network()) {
    o << "egress:    " << (s.egress().any_public() ? "every public destination" : "only the rules");
    for (const auto& rule : s.egress().allow()) o << " " << rule;
    o << "\n";
  }
  o << "created:   " << Ts(s.created_at()) << "\n";
  o << "rules:\n";
  for (const auto& r : s.permissions()) {
    o << "  " << r.pattern() << "=" << LevelOf(r.permission()) << "@" << r.priority() << "\n";
  }
}

}  // namespace

void AddSandboxCommands(CLI::App& app, const ClientRegistrar& r) {
  const auto& c = r.c;
  CLI::App* sandbox = r.Group(&app, "sandbox", "Sandboxes on a server (client mode)");
  struct CreateArgs {
    std::string codebase, preset, rules_file, runtime, image, memory, expires, sync_mode;
    std::vector<std::string> rules, labels, env, allow_net;
    double cpus = 0;
    int64_t pids = 0;
    bool network = false, start = false;
  };
  auto a = std::make_shared<CreateArgs>();
  CLI::App* create = r.Leaf(sandbox, "create", "Create a sandbox over a codebase; prints its id");
  create->add_option("CODEBASE", a->codebase, "Codebase id")->required();
  auto* preset = create->add_option("--preset", a->preset, "Start from a preset");
  create->add_option("--rule", a->rules, "Add a rule PATTERN=LEVEL[@PRIORITY] (repeatable)")
      ->allow_extra_args(false);
  auto* rules_file = create->add_option("--rules-file", a->rules_file, "Add the rules of FILE");
  create->add_option("--runtime", a->runtime, "bwrap or docker (default: the server's)");
  create->add_option("--image", a->image, "Container image (docker)");
  create->add_option("--memory", a->memory, "Memory limit, e.g. 512M");
  create->add_option("--cpus", a->cpus, "CPU limit in CPUs");
  create->add_option("--pids", a->pids, "Maximum number of processes");
  create->add_flag("--network", a->network,
                   "Network on: every public destination (with --allow-net: plus those)");
  create
      ->add_option("--allow-net", a->allow_net,
                   "Allow egress to HOST[:PORTS] (*.domain, IP, CIDR, udp:...; repeatable); "
                   "implies network")
      ->allow_extra_args(false)
      ->type_name("HOST[:PORT]");
  create->add_option("--expires", a->expires, "Destroy after DUR (e.g. 1h)");
  create->add_option("--label", a->labels, "KEY=VALUE label (repeatable)")->allow_extra_args(false);
  create->add_option("--env", a->env, "NAME=VALUE for every exec (repeatable)")
      ->allow_extra_args(false);
  create->add_option("--sync-mode", a->sync_mode, "on-exec, on-stop, manual or never");
  create->add_flag("--start", a->start, "Start it right away");
  r.commands.On(create, [c, a, preset, rules_file] {
    v1::CreateSandboxRequest req;
    req.set_codebase_id(a->codebase);
    RuleSources sources;
    if (preset->count() > 0) sources.preset = a->preset;
    if (rules_file->count() > 0) sources.rules_file = a->rules_file;
    sources.rule_specs = a->rules;
    if (sources.preset || sources.rules_file || !sources.rule_specs.empty()) {
      auto rules = CollectRules(sources);
      if (!rules.ok()) return Fail(*c, rules.error());
      for (const auto& rule : *rules) *req.add_permissions() = ToProto(rule.rule);
    }
    if (a->runtime == "bwrap")
      req.set_runtime(v1::RUNTIME_TYPE_BWRAP);
    else if (a->runtime == "docker")
      req.set_runtime(v1::RUNTIME_TYPE_DOCKER);
    else if (!a->runtime.empty())
      return Usage(*c, "--runtime " + a->runtime + ": bwrap or docker");
    req.set_image(a->image);
    if (!a->memory.empty()) {
      auto size = ParseSize(a->memory);
      if (!size.ok()) return Usage(*c, "--memory " + a->memory + ": " + size.error().message());
      req.mutable_resources()->set_memory_bytes(static_cast<int64_t>(*size));
    }
    if (a->cpus < 0 || a->pids < 0) return Usage(*c, "--cpus and --pids must be positive");
    req.mutable_resources()->set_cpu_quota(static_cast<int64_t>(a->cpus * 100000));
    req.mutable_resources()->set_pids_limit(a->pids);
    // The same meaning as `agentfense run`: --network with --allow-net = public plus the rules.
    req.set_network(a->network || !a->allow_net.empty());
    for (const auto& rule : a->allow_net) req.mutable_egress()->add_allow(rule);
    req.mutable_egress()->set_any_public(a->network && !a->allow_net.empty());
    if (!a->expires.empty()) {
      auto d = ToDuration(a->expires, "--expires");
      if (!d.ok()) return Fail(*c, d.error());
      *req.mutable_expires_in() = *d;
    }
    auto labels = KeyValues(a->labels, "--label");
    if (!labels.ok()) return Fail(*c, labels.error());
    for (auto& [k, v] : *labels) (*req.mutable_labels())[k] = v;
    auto env = KeyValues(a->env, "--env");
    if (!env.ok()) return Fail(*c, env.error());
    for (auto& [k, v] : *env) (*req.mutable_env())[k] = v;
    static const std::map<std::string, v1::SyncMode> kModes = {{"on-exec", v1::SYNC_MODE_ON_EXEC},
                                                               {"on-stop", v1::SYNC_MODE_ON_STOP},
                                                               {"manual", v1::SYNC_MODE_MANUAL},
                                                               {"never", v1::SYNC_MODE_NEVER}};
    if (!a->sync_mode.empty()) {
      auto it = kModes.find(a->sync_mode);
      if (it == kModes.end()) {
        return Usage(*c, "--sync-mode " + a->sync_mode + ": on-exec, on-stop, manual or never");
      }
      req.set_sync_mode(it->second);
    }
    Client client(c->flags);
    v1::Sandbox sb;
    auto st = client.sandboxes().CreateSandbox(client.Context().get(), req, &sb);
    if (!st.ok()) return GrpcFail(st, "sandbox create", client.endpoint(), *c->err);
    if (a->start) {
      v1::StartSandboxRequest sreq;
      sreq.set_sandbox_id(sb.id());
      st = client.sandboxes().StartSandbox(client.Context(120).get(), sreq, &sb);
      if (!st.ok()) return GrpcFail(st, "sandbox start " + sb.id(), client.endpoint(), *c->err);
    }
    *c->out << (c->flags.json ? ToJson(sb) : sb.id()) << "\n";
    return kExitOk;
  });

  // start / stop / get / rm: one id, one RPC.
  auto simple = [&r, c](CLI::App* parent, const std::string& name, const std::string& desc,
                        auto call) {
    auto id = std::make_shared<std::string>();
    CLI::App* sub = r.Leaf(parent, name, desc);
    sub->add_option("SANDBOX", *id, "Sandbox id")->required();
    r.commands.On(sub, [c, id, call, name] {
      Client client(c->flags);
      return call(*c, client, *id, name);
    });
  };
  auto lifecycle = [](auto rpc) {
    return [rpc](ClientCtx& cx, Client& client, const std::string& id, const std::string& name) {
      typename decltype(rpc)::Request req;
      req.set_sandbox_id(id);
      v1::Sandbox sb;
      auto st = (client.sandboxes().*(rpc.method))(client.Context(120).get(), req, &sb);
      if (!st.ok()) return GrpcFail(st, "sandbox " + name + " " + id, client.endpoint(), *cx.err);
      if (cx.flags.json) {
        *cx.out << ToJson(sb) << "\n";
      } else if (name == "get") {
        PrintSandbox(cx, sb);
      } else {
        *cx.out << sb.id() << " " << StatusName(sb.status()) << "\n";
      }
      return kExitOk;
    };
  };
  struct StartRpc {
    using Request = v1::StartSandboxRequest;
    grpc::Status (v1::SandboxService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                     v1::Sandbox*) =
        &v1::SandboxService::Stub::StartSandbox;
  };
  struct StopRpc {
    using Request = v1::StopSandboxRequest;
    grpc::Status (v1::SandboxService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                     v1::Sandbox*) =
        &v1::SandboxService::Stub::StopSandbox;
  };
  struct GetRpc {
    using Request = v1::GetSandboxRequest;
    grpc::Status (v1::SandboxService::Stub::*method)(
        grpc::ClientContext*, const Request&, v1::Sandbox*) = &v1::SandboxService::Stub::GetSandbox;
  };
  simple(sandbox, "start", "Start a sandbox (mount + runtime)", lifecycle(StartRpc{}));
  simple(sandbox, "stop", "Stop a sandbox", lifecycle(StopRpc{}));
  simple(sandbox, "get", "Show a sandbox", lifecycle(GetRpc{}));
  simple(sandbox, "rm", "Destroy a sandbox",
         [](ClientCtx& cx, Client& client, const std::string& id, const std::string&) {
           v1::DestroySandboxRequest req;
           req.set_sandbox_id(id);
           v1::Empty empty;
           auto st = client.sandboxes().DestroySandbox(client.Context(120).get(), req, &empty);
           if (!st.ok()) return GrpcFail(st, "sandbox rm " + id, client.endpoint(), *cx.err);
           if (cx.flags.json) *cx.out << "{}\n";
           return kExitOk;
         });

  struct EgressArgs {
    std::string id;
    std::vector<std::string> allow_net;
    bool any_public = false;
  };
  auto eg = std::make_shared<EgressArgs>();
  CLI::App* egress = r.Leaf(sandbox, "egress",
                            "Replace a sandbox's egress allow-list (live on a running sandbox)");
  egress->add_option("SANDBOX", eg->id, "Sandbox id")->required();
  egress->add_option("--allow-net", eg->allow_net, "Allow egress to HOST[:PORTS] (repeatable)")
      ->allow_extra_args(false)
      ->type_name("HOST[:PORT]");
  egress->add_flag("--network", eg->any_public, "Every public destination too");
  r.commands.On(egress, [c, eg] {
    v1::UpdateEgressRequest req;
    req.set_sandbox_id(eg->id);
    for (const auto& rule : eg->allow_net) req.mutable_egress()->add_allow(rule);
    req.mutable_egress()->set_any_public(eg->any_public);
    Client client(c->flags);
    v1::Sandbox sb;
    auto st = client.sandboxes().UpdateEgress(client.Context().get(), req, &sb);
    if (!st.ok()) return GrpcFail(st, "sandbox egress " + eg->id, client.endpoint(), *c->err);
    if (c->flags.json) {
      *c->out << ToJson(sb) << "\n";
    } else {
      PrintSandbox(*c, sb);
    }
    return kExitOk;
  });

  auto lcb = std::make_shared<std::string>();
  CLI::App* ls = r.Leaf(sandbox, "ls", "List sandboxes");
  ls->add_option("--codebase", *lcb, "Only the sandboxes of this codebase");
  r.commands.On(ls, [c, lcb] {
    Client client(c->flags);
    v1::ListSandboxesRequest req;
    req.set_codebase_id(*lcb);
    v1::ListSandboxesResponse all;
    do {
      v1::ListSandboxesResponse page;
      auto st = client.sandboxes().ListSandboxes(client.Context().get(), req, &page);
      if (!st.ok()) return GrpcFail(st, "sandbox ls", client.endpoint(), *c->err);
      for (auto& s : *page.mutable_sandboxes()) *all.add_sandboxes() = std::move(s);
      req.set_page_token(page.next_page_token());
    } while (!req.page_token().empty());
    if (c->flags.json) {
      *c->out << ToJson(all) << "\n";
      return kExitOk;
    }
    *c->out << fmt::format("{:<20} {:<8} {:<24} {:<7} {}\n", "ID", "STATUS", "CODEBASE", "RUNTIME",
                           "CREATED");
    for (const auto& s : all.sandboxes()) {
      *c->out << fmt::format(
          "{:<20} {:<8} {:<24} {:<7} {}\n", s.id(), StatusName(s.status()), s.codebase_id(),
          s.runtime() == v1::RUNTIME_TYPE_DOCKER ? "docker" : "bwrap", Ts(s.created_at()));
    }
    return kExitOk;
  });

  struct ExecArgs {
    std::string id, timeout, workdir;
    std::vector<std::string> env;
    bool stdin_data = false;
  };
  auto e = std::make_shared<ExecArgs>();
  CLI::App* exec = r.Leaf(sandbox, "exec",
                          "Run a command in a running sandbox, streaming its output; exits with "
                          "its status. Usage: sandbox exec ID -- COMMAND [ARG...] (joined with "
                          "spaces and run by /bin/sh -c, like ssh)");
  exec->add_option("SANDBOX", e->id, "Sandbox id")->required();
  exec->add_option("--timeout", e->timeout, "Kill the command after DUR");
  exec->add_option("--workdir", e->workdir, "Working directory (default /workspace)");
  exec->add_option("--env", e->env, "NAME=VALUE (repeatable)")->allow_extra_args(false);
  exec->add_flag("-i,--stdin", e->stdin_data, "Feed our stdin (read to EOF) to the command");
  r.commands.On(
      exec,
      [c, e] {
        auto text = CommandText(*c);
        if (!text.ok()) return Fail(*c, text.error());
        v1::ExecRequest req;
        req.set_sandbox_id(e->id);
        req.set_command(*text);
        req.set_workdir(e->workdir);
        auto env = KeyValues(e->env, "--env");
        if (!env.ok()) return Fail(*c, env.error());
        for (auto& [k, v] : *env) (*req.mutable_env())[k] = v;
        if (!e->timeout.empty()) {
          auto d = ToDuration(e->timeout, "--timeout");
          if (!d.ok()) return Fail(*c, d.error());
          *req.mutable_timeout() = *d;
        }
        if (e->stdin_data) {
          std::string data((std::istreambuf_iterator<char>(std::cin)),
                           std::istreambuf_iterator<char>());
          req.set_stdin(std::move(data));
        }
        return RunExecStream(*c, req);
      },
      /*takes_command=*/true);

  auto shid = std::make_shared<std::string>();
  CLI::App* shell =
      r.Leaf(sandbox, "shell", "A line-mode shell in a running sandbox (a server session; no TTY)");
  shell->add_option("SANDBOX", *shid, "Sandbox id")->required();
  r.commands.On(shell, [c, shid] {
    // Ctrl-C cancels the running command (the session and its state stay) or the line being
    // typed; SIGTERM / SIGHUP leave. Installed first so that no signal can leak the session.
    InterruptGuard guard;
    Client client(c->flags);
    v1::CreateSessionRequest creq;
    creq.set_sandbox_id(*shid);
    v1::Session session;
    auto st = client.sandboxes().CreateSession(client.Context().get(), creq, &session);
    if (!st.ok()) return GrpcFail(st, "sandbox shell", client.endpoint(), *c->err);
    const bool tty = ::isatty(0) == 1;
    if (tty) {
      *c->err << "agentfense: session " << session.id()
              << " (line mode, no TTY; Ctrl-C cancels a command; Ctrl-D or `exit` leaves)\n";
    }
    int last = 0;
    int left_on = 0;  // the signal that ended the shell
    std::string line;
    for (;;) {
      if (InterruptGuard::interrupted()) {
        if (InterruptGuard::signal_number() != SIGINT) left_on = InterruptGuard::signal_number();
        InterruptGuard::Reset();
        WriteAll(2, "\n");
        if (left_on != 0) break;
      }
      if (tty) WriteAll(2, "agentfense$ ");
      if (!std::getline(std::cin, line)) {
        if (!InterruptGuard::interrupted()) break;  // end of input
        std::cin.clear();
        std::clearerr(stdin);
        continue;
      }
      v1::SessionExecRequest req;
      req.set_session_id(session.id());
      req.set_command(line);
      ExecOutcome o = StreamExecOutput(client, [&](grpc::ClientContext* ctx) {
        return client.sandboxes().SessionExecStream(ctx, req);
      });
      if (o.signal != 0) {
        last = 128 + o.signal;
        continue;
      }
      if (!o.status.ok()) {
        if (o.status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) break;  // exited
        last = GrpcFail(o.status, "session exec", client.endpoint(), *c->err);
        break;
      }
      if (o.exit_code >= 0) last = o.exit_code;
    }
    v1::DestroySessionRequest dreq;
    dreq.set_session_id(session.id());
    v1::Empty empty;
    (void)client.sandboxes().DestroySession(client.Context().get(), dreq, &empty);
    return left_on != 0 ? 128 + left_on : last;
  });
}

}  // namespace agentfense::cli
