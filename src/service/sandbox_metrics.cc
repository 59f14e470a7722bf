// SandboxManager: the sandbox families of GET /metrics (docs/OPERATIONS.md): sandboxes by state
// (from the store, so they are right after a restart), exec latency by kind, and the denials
// ingested from the supervisors' audit logs since this server started, and the FUSE requests
// of the running sandboxes.
#include <cctype>
#include <map>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "service/sandbox_convert.h"
#include "service/sandbox_manager.h"
#include "store/metadata_store.h"

namespace agentfense::service {

void SandboxManager::RecordExec(const char* kind, double seconds, bool ok) {
  std::lock_guard lock(metrics_mu_);
  ExecHistogram& h = exec_metrics_[kind];
  for (size_t i = 0; i < kExecBuckets.size(); ++i) {
    if (seconds <= kExecBuckets[i]) {
      ++h.buckets[i];
      break;
    }
  }
  ++h.count;
  if (!ok) ++h.errors;
  h.sum += seconds;
}

std::string SandboxManager::MetricsText() {
  std::string out;
  out += "# HELP agentfense_sandboxes Sandboxes by state.\n# TYPE agentfense_sandboxes gauge\n";
  for (auto status : {store::SandboxStatus::kPending, store::SandboxStatus::kRunning,
                      store::SandboxStatus::kStopped, store::SandboxStatus::kError}) {
    store::SandboxFilter f;
    f.statuses = {status};
    auto n = deps_.metadata->CountSandboxes(f);
    std::string name(SandboxStatusName(status));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out += fmt::format("agentfense_sandboxes{{state=\"{}\"}} {}\n", name, n.ok() ? *n : 0);
  }
  out += "# HELP agentfense_denials_total File operations refused by the permission filesystem "
         "(ingested from the supervisors since this server started).\n"
         "# TYPE agentfense_denials_total counter\n";
  out += fmt::format("agentfense_denials_total {}\n", denials_ingested_.load());

  // FUSE requests of the running sandboxes, asked of each supervisor at scrape time (a gauge:
  // the sum drops when a sandbox stops; per-sandbox labels would not scale to 1,000 sandboxes).
  std::vector<std::shared_ptr<Live>> live;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, l] : live_) live.push_back(l);
  }
  std::map<std::string, uint64_t> fuse, egress;
  for (const auto& l : live) {
    if (!l->control) continue;
    auto st = l->control->Status();
    if (!st.ok()) continue;
    for (const auto& [kind, n] : st->fuse_requests) fuse[kind] += n;
    for (const auto& [kind, n] : st->egress) egress[kind] += n;
  }
  out += "# HELP agentfense_fuse_requests FUSE requests served by the running sandboxes' "
         "filesystems since each was mounted, by kind.\n"
         "# TYPE agentfense_fuse_requests gauge\n";
  for (const auto& [kind, n] : fuse) {
    out += fmt::format("agentfense_fuse_requests{{op=\"{}\"}} {}\n", kind, n);
  }

  // The egress filters of the running sandboxes (docs/NETWORK.md), summed like the FUSE counts.
  out +=
      "# HELP agentfense_egress_connections TCP connections and UDP flows the running "
      "sandboxes' egress filters allowed or refused since each started.\n"
      "# TYPE agentfense_egress_connections gauge\n";
  for (const auto& [label, key] : {std::pair{"proto=\"tcp\",decision=\"allowed\"", "tcp_allowed"},
                                   {"proto=\"tcp\",decision=\"denied\"", "tcp_denied"},
                                   {"proto=\"udp\",decision=\"allowed\"", "udp_allowed"},
                                   {"proto=\"udp\",decision=\"denied\"", "udp_denied"}}) {
    out += fmt::format("agentfense_egress_connections{{{}}} {}\n", label, egress[key]);
  }
  out +=
      "# HELP agentfense_egress_dns_queries DNS questions the sandboxes' resolvers answered or "
      "refused.\n# TYPE agentfense_egress_dns_queries gauge\n";
  out += fmt::format("agentfense_egress_dns_queries{{decision=\"answered\"}} {}\n",
                     egress["dns_answered"]);
  out += fmt::format("agentfense_egress_dns_queries{{decision=\"refused\"}} {}\n",
                     egress["dns_refused"]);
  out +=
      "# HELP agentfense_egress_bytes Bytes relayed by the egress filters, by direction.\n"
      "# TYPE agentfense_egress_bytes gauge\n";
  out += fmt::format("agentfense_egress_bytes{{direction=\"out\"}} {}\n", egress["bytes_out"]);
  out += fmt::format("agentfense_egress_bytes{{direction=\"in\"}} {}\n", egress["bytes_in"]);

  out += "# HELP agentfense_exec_duration_seconds Commands run in sandboxes, by kind "
         "(exec, session_exec), from request to result.\n"
         "# TYPE agentfense_exec_duration_seconds histogram\n";
  std::lock_guard lock(metrics_mu_);
  for (const auto& [kind, h] : exec_metrics_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kExecBuckets.size(); ++i) {
      cumulative += h.buckets[i];
      out += fmt::format("agentfense_exec_duration_seconds_bucket{{kind=\"{}\",le=\"{}\"}} {}\n",
                         kind, kExecBuckets[i], cumulative);
    }
    out += fmt::format("agentfense_exec_duration_seconds_bucket{{kind=\"{}\",le=\"+Inf\"}} {}\n",
                       kind, h.count);
    out += fmt::format("agentfense_exec_duration_seconds_sum{{kind=\"{}\"}} {}\n", kind, h.sum);
    out += fmt::format("agentfense_exec_duration_seconds_count{{kind=\"{}\"}} {}\n", kind, h.count);
  }
  out += "# HELP agentfense_exec_failures_total Commands that failed to run or timed out.\n"
         "# TYPE agentfense_exec_failures_total counter\n";
  for (const auto& [kind, h] : exec_metrics_) {
    out += fmt::format("agentfense_exec_failures_total{{kind=\"{}\"}} {}\n", kind, h.errors);
  }
  return out;
}

}  // namespace agentfense::service
