// What both transports borrow from the server: the service objects, the executor that runs their
// work, the metrics and the auth token. Everything outlives the transports.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "server/executor.h"
#include "server/metrics.h"
#include "service/codebase_service.h"
#include "service/sandbox_api.h"

namespace agentfense::server {

struct TransportDeps {
  service::CodebaseService* codebases = nullptr;
  service::SandboxApi* sandboxes = nullptr;
  Executor* executor = nullptr;
  Metrics* metrics = nullptr;
  std::string auth_token;  // empty = no authentication (loopback only, enforced by config)
  // REST only: largest JSON body; largest streamed upload (0 = the store's limit only).
  uint64_t max_body_bytes = 16ull << 20;
  uint64_t max_upload_bytes = 0;
  // REST only: whether to check the Host header (no token and a loopback bind: the DNS
  // rebinding case), and the Host values accepted besides the loopback names.
  bool check_host = true;
  // Becomes true when the shutdown grace period is over; copied into every CallContext.
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
  std::vector<std::string> extra_allowed_hosts;
};

}  // namespace agentfense::server
