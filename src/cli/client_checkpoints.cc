// Client mode: `checkpoint create|ls|restore|diff|rm` (docs/CHECKPOINTS.md) and
// `approval ls|allow|deny|watch` (the `ask` level, docs/PERMISSIONS.md).
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "base/utf8.h"
#include "cli/client_common.h"
#include "cli/exit_codes.h"
#include "cli/interrupts.h"

namespace agentfense::cli {
namespace {

std::string ChangeLine(const v1::FileChange& ch) {
  char tag = ch.kind() == v1::CHANGE_KIND_ADDED     ? 'A'
             : ch.kind() == v1::CHANGE_KIND_DELETED ? 'D'
                                                    : 'M';
  return fmt::format("{} {}{}", tag, ForTerminal(ch.path()), ch.is_dir() ? "/" : "");
}

std::string ApprovalLine(const v1::Approval& a) {
  std::string state = v1::ApprovalState_Name(a.state());
  state = state.substr(state.rfind('_') + 1);
  if (a.state() == v1::APPROVAL_STATE_TIMED_OUT) state = "TIMED_OUT";
  return fmt::format("{}  {:<9} {:<5} {:<8} {}  (pid {}: {}){}", a.id(), state,
                     a.access() == v1::APPROVAL_ACCESS_WRITE ? "write" : "read",
                     ForTerminal(a.operation()), ForTerminal(a.path()), a.pid(),
                     ForTerminal(a.command()),
                     a.answered_by().empty() ? "" : " by " + ForTerminal(a.answered_by()));
}

}  // namespace

void AddCheckpointCommands(CLI::App& app, const ClientRegistrar& r) {
  const auto& c = r.c;
  struct Args {
    std::string sandbox, name, against, id, remember = "once", by;
    bool write = false, read = false;
    int priority = 0;
    CLI::Option* priority_opt = nullptr;
  };
  auto a = std::make_shared<Args>();

  CLI::App* ckpt = r.Group(&app, "checkpoint", "Checkpoints of a sandbox's pending changes");
  CLI::App* create = r.Leaf(ckpt, "create", "Checkpoint a sandbox's pending changes as NAME");
  create->add_option("SANDBOX", a->sandbox, "Sandbox id")->required();
  create->add_option("NAME", a->name, "Checkpoint name ([A-Za-z0-9._-], 64 at most)")->required();
  r.commands.On(create, [c, a] {
    Client client(c->flags);
    v1::CreateCheckpointRequest req;
    req.set_sandbox_id(a->sandbox);
    req.set_name(a->name);
    v1::Checkpoint resp;
    auto st = client.sandboxes().CreateCheckpoint(client.Context(300).get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "checkpoint create", client.endpoint(), *c->err);
    *c->out << (c->flags.json ? ToJson(resp)
                              : fmt::format("checkpoint {}: {} files, {} bytes, {} deletions",
                                            resp.name(), resp.files(), resp.size(),
                                            resp.deletions()))
            << "\n";
    return kExitOk;
  });
  CLI::App* ls = r.Leaf(ckpt, "ls", "List a sandbox's checkpoints, oldest first");
  ls->add_option("SANDBOX", a->sandbox, "Sandbox id")->required();
  r.commands.On(ls, [c, a] {
    Client client(c->flags);
    v1::ListCheckpointsRequest req;
    req.set_sandbox_id(a->sandbox);
    v1::ListCheckpointsResponse resp;
    auto st = client.sandboxes().ListCheckpoints(client.Context().get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "checkpoint ls", client.endpoint(), *c->err);
    if (c->flags.json) {
      *c->out << ToJson(resp) << "\n";
      return kExitOk;
    }
    for (const auto& k : resp.checkpoints()) {
      *c->out << fmt::format("{:<24} {}  {} files  {} bytes  {} deletions\n", k.name(),
                             Ts(k.created_at()), k.files(), k.size(), k.deletions());
    }
    return kExitOk;
  });
  CLI::App* restore = r.Leaf(ckpt, "restore",
                             "Make the sandbox's workspace what it was at checkpoint NAME");
  restore->add_option("SANDBOX", a->sandbox, "Sandbox id")->required();
  restore->add_option("NAME", a->name, "Checkpoint name")->required();
  r.commands.On(restore, [c, a] {
    Client client(c->flags);
    v1::RestoreCheckpointRequest req;
    req.set_sandbox_id(a->sandbox);
    req.set_name(a->name);
    v1::Checkpoint resp;
    auto st = client.sandboxes().RestoreCheckpoint(client.Context(600).get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "checkpoint restore", client.endpoint(), *c->err);
    *c->out << (c->flags.json ? ToJson(resp) : "restored " + resp.name()) << "\n";
    return kExitOk;
  });
  CLI::App* diff = r.Leaf(ckpt, "diff", "What changed since checkpoint NAME (or up to --against)");
  diff->add_option("SANDBOX", a->sandbox, "Sandbox id")->required();
  diff->add_option("NAME", a->name, "Checkpoint name")->required();
  diff->add_option("--against", a->against, "Another checkpoint (default: the workspace now)")
      ->type_name("NAME");
  r.commands.On(diff, [c, a] {
    Client client(c->flags);
    v1::DiffCheckpointRequest req;
    req.set_sandbox_id(a->sandbox);
    req.set_name(a->name);
    req.set_against(a->against);
    v1::DiffCheckpointResponse resp;
    auto st = client.sandboxes().DiffCheckpoint(client.Context(300).get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "checkpoint diff", client.endpoint(), *c->err);
    if (c->flags.json) {
      *c->out << ToJson(resp) << "\n";
      return kExitOk;
    }
    for (const auto& ch : resp.changes()) *c->out << ChangeLine(ch) << "\n";
    return kExitOk;
  });
  CLI::App* rm = r.Leaf(ckpt, "rm", "Delete checkpoint NAME");
  rm->add_option("SANDBOX", a->sandbox, "Sandbox id")->required();
  rm->add_option("NAME", a->name, "Checkpoint name")->required();
  r.commands.On(rm, [c, a] {
    Client client(c->flags);
    v1::DeleteCheckpointRequest req;
    req.set_sandbox_id(a->sandbox);
    req.set_name(a->name);
    v1::Empty resp;
    auto st = client.sandboxes().DeleteCheckpoint(client.Context().get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "checkpoint rm", client.endpoint(), *c->err);
    if (!c->flags.json) *c->out << "deleted " << a->name << "\n";
    return kExitOk;
  });

  CLI::App* appr = r.Group(&app, "approval", "Accesses to `ask` paths waiting for a decision");
  CLI::App* als = r.Leaf(appr, "ls", "List the accesses of a sandbox waiting for a decision");
  als->add_option("SANDBOX", a->sandbox, "Sandbox id")->required();
  r.commands.On(als, [c, a] {
    Client client(c->flags);
    v1::ListApprovalsRequest req;
    req.set_sandbox_id(a->sandbox);
    v1::ListApprovalsResponse resp;
    auto st = client.sandboxes().ListApprovals(client.Context().get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "approval ls", client.endpoint(), *c->err);
    if (c->flags.json) {
      *c->out << ToJson(resp) << "\n";
      return kExitOk;
    }
    for (const auto& ap : resp.approvals()) *c->out << ApprovalLine(ap) << "\n";
    return kExitOk;
  });
  for (const char* verb : {"allow", "deny"}) {
    const bool allow = verb[0] == 'a';
    CLI::App* leaf = r.Leaf(appr, verb,
                            allow ? "Allow a waiting access (what it needs, or --read / --write)"
                                  : "Deny a waiting access");
    leaf->add_option("SANDBOX", a->sandbox, "Sandbox id")->required();
    leaf->add_option("ID", a->id, "Approval id (ap_...)")->required();
    if (allow) {
      auto* rd = leaf->add_flag("--read", a->read, "Allow reading only");
      auto* wr = leaf->add_flag("--write", a->write, "Allow writing");
      rd->excludes(wr);
    }
    leaf->add_option("--remember", a->remember,
                     "once (default), path, or a glob pattern: the decision becomes a rule")
        ->type_name("once|path|PATTERN");
    a->priority_opt = leaf->add_option("--priority", a->priority,
                                       "Priority of the remembered rule (default: the ask rule's)");
    leaf->add_option("--by", a->by, "Who answers, for the audit log")->type_name("TEXT");
    r.commands.On(leaf, [c, a, allow, leaf] {
      Client client(c->flags);
      v1::AnswerApprovalRequest req;
      req.set_sandbox_id(a->sandbox);
      req.set_approval_id(a->id);
      req.set_decision(!allow     ? v1::APPROVAL_DECISION_DENY
                       : a->read  ? v1::APPROVAL_DECISION_ALLOW_READ
                       : a->write ? v1::APPROVAL_DECISION_ALLOW_WRITE
                                  : v1::APPROVAL_DECISION_ALLOW);
      req.set_remember(a->remember);
      if (leaf->get_option("--priority")->count() > 0) req.set_priority(a->priority);
      req.set_answered_by(a->by.empty() ? "agentfense approval" : a->by);
      v1::Approval resp;
      auto st = client.sandboxes().AnswerApproval(client.Context().get(), req, &resp);
      if (!st.ok()) return GrpcFail(st, allow ? "approval allow" : "approval deny",
                                    client.endpoint(), *c->err);
      *c->out << (c->flags.json ? ToJson(resp) : ApprovalLine(resp)) << "\n";
      return kExitOk;
    });
  }
  CLI::App* watch = r.Leaf(appr, "watch",
                           "Print each access waiting for a decision, and how it ends (Ctrl-C stops)");
  watch->add_option("SANDBOX", a->sandbox, "Sandbox id")->required();
  r.commands.On(watch, [c, a] {
    InterruptGuard guard;
    Client client(c->flags);
    v1::WatchApprovalsRequest req;
    req.set_sandbox_id(a->sandbox);
    auto ctx = client.Context(0);
    auto stream = client.sandboxes().WatchApprovals(ctx.get(), req);
    std::atomic<bool> done{false};
    std::thread cancel([&ctx, &done] {
      while (!InterruptGuard::interrupted() && !done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ctx->TryCancel();
    });
    v1::Approval ap;
    while (stream->Read(&ap)) {
      *c->out << (c->flags.json ? ToJson(ap) : ApprovalLine(ap)) << '\n' << std::flush;  // live
    }
    auto st = stream->Finish();
    done = true;
    cancel.join();
    if (InterruptGuard::interrupted()) return 128 + InterruptGuard::signal_number();
    if (!st.ok()) return GrpcFail(st, "approval watch", client.endpoint(), *c->err);
    return kExitOk;
  });
}

}  // namespace agentfense::cli
