// Client mode: `changes`, `commit`, `discard` and `audit` (top-level commands).
#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "base/units.h"
#include "cli/client_common.h"
#include "cli/exit_codes.h"

namespace agentfense::cli {

using google::protobuf::util::TimeUtil;

void AddChangesCommands(CLI::App& app, const ClientRegistrar& r) {
  const auto& c = r.c;
  auto chid = std::make_shared<std::string>();
  CLI::App* changes = r.Leaf(&app, "changes", "List a sandbox's pending changes (its delta)");
  changes->add_option("SANDBOX", *chid, "Sandbox id")->required();
  r.commands.On(changes, [c, chid] {
    Client client(c->flags);
    v1::ListChangesRequest req;
    req.set_sandbox_id(*chid);
    v1::ListChangesResponse resp;
    auto st = client.sandboxes().ListChanges(client.Context().get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "changes", client.endpoint(), *c->err);
    if (c->flags.json) {
      *c->out << ToJson(resp) << "\n";
      return kExitOk;
    }
    for (const auto& ch : resp.changes()) {
      char tag = ch.kind() == v1::CHANGE_KIND_ADDED     ? 'A'
                 : ch.kind() == v1::CHANGE_KIND_DELETED ? 'D'
                                                        : 'M';
      *c->out << tag << " " << ch.path() << (ch.is_dir() ? "/" : "") << "\n";
    }
    *c->err << resp.changes_size() << " change(s), " << resp.delta_bytes()
            << " bytes in the delta\n";
    return kExitOk;
  });

  auto cmid = std::make_shared<std::string>();
  CLI::App* commit = r.Leaf(&app, "commit", "Apply a sandbox's pending changes to its codebase");
  commit->add_option("SANDBOX", *cmid, "Sandbox id")->required();
  r.commands.On(commit, [c, cmid] {
    Client client(c->flags);
    v1::CommitChangesRequest req;
    req.set_sandbox_id(*cmid);
    v1::CommitChangesResponse resp;
    auto st = client.sandboxes().CommitChanges(client.Context(1800).get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "commit", client.endpoint(), *c->err);
    if (c->flags.json) {
      *c->out << ToJson(resp) << "\n";
    } else {
      *c->out << "committed " << resp.applied_size() << " change(s)\n";
      for (const auto& e : resp.errors()) {
        *c->err << "agentfense: error: not committed: " << e.path() << ": " << e.message() << "\n";
      }
    }
    return resp.errors_size() > 0 ? kExitFailure : kExitOk;
  });

  auto dcid = std::make_shared<std::string>();
  CLI::App* discard = r.Leaf(&app, "discard", "Drop a sandbox's pending changes");
  discard->add_option("SANDBOX", *dcid, "Sandbox id")->required();
  r.commands.On(discard, [c, dcid] {
    Client client(c->flags);
    v1::DiscardChangesRequest req;
    req.set_sandbox_id(*dcid);
    v1::DiscardChangesResponse resp;
    auto st = client.sandboxes().DiscardChanges(client.Context().get(), req, &resp);
    if (!st.ok()) return GrpcFail(st, "discard", client.endpoint(), *c->err);
    *c->out << (c->flags.json ? ToJson(resp)
                              : "discarded " + std::to_string(resp.discarded()) + " change(s)")
            << "\n";
    return kExitOk;
  });

  struct AuditArgs {
    std::string sandbox, kind, prefix, since;
    int limit = 100;
  };
  auto au = std::make_shared<AuditArgs>();
  CLI::App* audit = r.Leaf(&app, "audit", "Show audit events (denied operations, lifecycle)");
  audit->add_option("--sandbox", au->sandbox, "Only this sandbox");
  audit->add_option("--kind", au->kind, "denied or lifecycle");
  audit->add_option("--path-prefix", au->prefix, "Only paths under this prefix");
  audit->add_option("--since", au->since, "Only events newer than DUR ago (e.g. 1h)");
  audit->add_option("--limit", au->limit, "At most N events (default 100)");
  r.commands.On(audit, [c, au] {
    v1::GetAuditLogRequest req;
    req.set_sandbox_id(au->sandbox);
    req.set_kind(au->kind);
    req.set_path_prefix(au->prefix);
    if (!au->since.empty()) {
      auto d = ParseDuration(au->since);
      if (!d.ok()) return Usage(*c, "--since " + au->since + ": " + d.error().message());
      *req.mutable_since() = TimeUtil::NanosecondsToTimestamp(
          TimeUtil::TimestampToNanoseconds(TimeUtil::GetCurrentTime()) - d->count());
    }
    if (au->limit <= 0) return Usage(*c, "--limit must be positive");
    Client client(c->flags);
    v1::GetAuditLogResponse all;
    do {
      req.set_page_size(std::min(au->limit - all.events_size(), 1000));
      v1::GetAuditLogResponse page;
      auto st = client.sandboxes().GetAuditLog(client.Context().get(), req, &page);
      if (!st.ok()) return GrpcFail(st, "audit", client.endpoint(), *c->err);
      for (auto& ev : *page.mutable_events()) {
        if (all.events_size() < au->limit) *all.add_events() = std::move(ev);
      }
      req.set_page_token(page.next_page_token());
    } while (!req.page_token().empty() && all.events_size() < au->limit);
    if (c->flags.json) {
      *c->out << ToJson(all) << "\n";
      return kExitOk;
    }
    for (const auto& ev : all.events()) {
      *c->out << fmt::format("{} {} {:<9} {:<9} {}{}{}\n", Ts(ev.time()), ev.sandbox_id(),
                             ev.kind(), ev.operation(), ev.path(),
                             ev.rule().empty() ? "" : "  rule " + ev.rule(),
                             ev.detail().empty() ? "" : "  " + ev.detail());
    }
    return kExitOk;
  });
}

}  // namespace agentfense::cli
