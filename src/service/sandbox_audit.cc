// SandboxManager: the audit log. Supervisors append one JSON line per denied file operation to
// <run dir>/audit.jsonl (they never talk to the store); the manager moves those lines into the
// store — periodically from the reaper, before a sandbox's run dir is removed, and before
// answering GetAuditLog — remembering in the store how far each file was read, in the same
// transaction as the events, so that no line is ingested twice, not even across restarts.
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/ids.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "service/convert.h"
#include "service/sandbox_convert.h"
#include "service/sandbox_manager.h"
#include "store/metadata_store.h"

namespace agentfense::service {
namespace {

// Read per ingestion pass and sandbox; the rest waits for the next pass (bounded memory).
constexpr size_t kMaxIngestBytes = 4 << 20;
constexpr size_t kMaxAuditFilterBytes = 4096;

// One line of audit.jsonl (written by supervisor.cc) → a "denied" event.
std::optional<store::AuditEventRecord> ParseLine(std::string_view line,
                                                 const std::vector<store::RuleRecord>& rules) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  store::AuditEventRecord ev;
  ev.kind = "denied";
  if (j.value("kind", std::string()) == "approval") {
    // An access to an `ask` path (docs/PERMISSIONS.md): held ("pending"), then how it ended,
    // by whom, and what was remembered. Kind "approval", operation "<op>:<state>".
    ev.kind = "approval";
    ev.time_ns = j.value("time_ns", int64_t{0});
    ev.path = j.value("path", std::string());
    ev.operation = j.value("op", std::string()) + ":" + j.value("state", std::string());
    ev.command = j.value("command", std::string());
    ev.rule = j.value("remember", std::string());
    const std::string state = j.value("state", std::string());
    const std::string id = j.value("id", std::string());
    if (state == "pending") {
      ev.detail = fmt::format("{} asks to {} (host pid {})", id, j.value("need", std::string()),
                              j.value("pid", 0));
    } else {
      ev.detail = fmt::format("{} {} by {}{}", id, state, j.value("by", std::string()),
                              j.value("grant", std::string()) == "none"
                                  ? std::string()
                                  : " (granted " + j.value("grant", std::string()) + ")");
    }
    return ev;
  }
  if (j.value("kind", std::string()) == "net") {
    // A refused connection, lookup or datagram (net/egress_proxy.h): the destination stands
    // where a file denial has its path, the reason where it has its rule.
    ev.time_ns = j.value("time", int64_t{0}) * 1'000'000'000;
    ev.operation = j.value("op", std::string());
    ev.path = j.value("dest", std::string());
    ev.rule = j.value("reason", std::string());
    ev.command = j.value("command", std::string());
    std::string addr = j.value("addr", std::string());
    std::string name = j.value("name", std::string());
    ev.detail = fmt::format(
        "egress {} to {}{}{} refused (host pid {})", ev.operation, name.empty() ? "" : name + " ",
        addr.empty() ? "" : "address " + addr + " ",
        j.value("port", 0) ? "port " + std::to_string(j.value("port", 0)) : std::string(),
        j.value("pid", 0));
    return ev;
  }
  ev.time_ns = j.value("time", int64_t{0}) * 1'000'000'000;
  ev.path = j.value("path", std::string());
  ev.operation = j.value("op", std::string());
  int rule = j.value("rule", -1);
  if (rule >= 0 && static_cast<size_t>(rule) < rules.size()) {
    ev.rule = fmt::format("#{}: {}", rule, RenderRule(rules[static_cast<size_t>(rule)]));
  } else {
    ev.rule = "no rule matched (default none)";
  }
  int err = j.value("errno", 0);
  const char* name = err > 0 ? ::strerrorname_np(err) : nullptr;
  ev.detail = fmt::format("refused with {} (host pid {})", name ? name : std::to_string(err),
                          j.value("pid", 0));
  return ev;
}

}  // namespace

void SandboxManager::IngestAudit(const std::string& id) {
  std::lock_guard lock(ingest_mu_);
  auto rec = deps_.metadata->GetSandbox(id);
  if (!rec.ok()) return;
  auto offset = deps_.metadata->AuditIngestOffset(id);
  if (!offset.ok()) return;
  std::string path = RunDir(id) + "/audit.jsonl";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return;  // nothing denied yet
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  if (st.st_size < *offset) {
    // The file is shorter than what we read: it was recreated. Start over on the new one.
    *offset = 0;
  }
  size_t want = static_cast<size_t>(std::min<int64_t>(st.st_size - *offset, kMaxIngestBytes));
  if (want == 0) return;
  std::string buf(want, '\0');
  ssize_t n = ::pread(fd.get(), buf.data(), want, *offset);
  if (n <= 0) return;
  buf.resize(static_cast<size_t>(n));
  // Only whole lines: the supervisor may be in the middle of appending one.
  size_t end = buf.rfind('\n');
  if (end == std::string::npos) {
    if (buf.size() < kMaxIngestBytes) return;
    end = buf.size() - 1;  // a line longer than a pass: skip it rather than stall forever
  }
  std::vector<store::AuditEventRecord> events;
  size_t start = 0;
  while (start <= end) {
    size_t nl = buf.find('\n', start);
    if (nl == std::string::npos || nl > end) nl = end + 1;
    std::string_view line(buf.data() + start, nl - start);
    if (!line.empty()) {
      if (auto ev = ParseLine(line, rec->rules)) {
        ev->sandbox_id = id;
        events.push_back(std::move(*ev));
      }
    }
    start = nl + 1;
  }
  if (auto st2 = deps_.metadata->IngestAudit(id, events, *offset + static_cast<int64_t>(end + 1));
      !st2.ok()) {
    AF_LOG_WARN("ingesting the audit log of {}: {}", id, st2.error().ToString());
  } else {
    denials_ingested_ += events.size();
  }
}

void SandboxManager::IngestAllAudit() {
  auto all = deps_.metadata->AllSandboxes(store::SandboxFilter{});
  if (!all.ok()) return;
  for (const auto& rec : *all) IngestAudit(rec.id);
}

Result<v1::GetAuditLogResponse> SandboxManager::GetAuditLog(const CallContext&,
                                                            const v1::GetAuditLogRequest& req) {
  store::AuditFilter filter;
  if (!req.sandbox_id().empty()) {
    AF_RETURN_IF_ERROR(ValidateSandboxId(req.sandbox_id()));
    filter.sandbox_id = req.sandbox_id();
  }
  if (req.kind().size() > 64 || req.path_prefix().size() > kMaxAuditFilterBytes ||
      req.path_prefix().find('\0') != std::string::npos ||
      req.kind().find('\0') != std::string::npos) {
    return Error(ErrorCode::kInvalidArgument, "kind or path_prefix is too long or contains NUL");
  }
  filter.kind = req.kind();
  filter.path_prefix = req.path_prefix();
  if (req.has_since()) filter.since_ns = TimestampToNs(req.since());
  if (req.has_until()) filter.until_ns = TimestampToNs(req.until());
  if (filter.since_ns < 0 || filter.until_ns < 0) {
    return Error(ErrorCode::kInvalidArgument, "since and until must not be before 1970");
  }
  if (filter.sandbox_id.empty()) {
    IngestAllAudit();
  } else {
    IngestAudit(filter.sandbox_id);
  }
  AF_ASSIGN_OR_RETURN(auto page, deps_.metadata->QueryAudit(
                                     filter, store::PageRequest{req.page_size(), req.page_token()}));
  v1::GetAuditLogResponse out;
  for (const auto& ev : page.items) {
    auto* e = out.add_events();
    e->set_id(ev.seq);
    SetTimestamp(ev.time_ns, e->mutable_time());
    e->set_sandbox_id(ev.sandbox_id);
    e->set_kind(ev.kind);
    e->set_operation(ev.operation);
    e->set_path(ev.path);
    e->set_rule(ev.rule);
    e->set_command(ev.command);
    e->set_detail(ev.detail);
  }
  out.set_next_page_token(page.next_page_token);
  return out;
}

}  // namespace agentfense::service
