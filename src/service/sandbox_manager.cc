#include "service/sandbox_manager.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/ids.h"
#include "base/log.h"
#include "fs/mount.h"
#include "policy/egress.h"
#include "policy/policy.h"
#include "service/convert.h"
#include "service/sandbox_convert.h"
#include "service/validation.h"
#include "store/codebase_files.h"
#include "store/metadata_store.h"

namespace agentfense::service {
namespace {

namespace stdfs = std::filesystem;
using store::SandboxRecord;
using store::SandboxStatus;

constexpr const char* kSessionsFile = "sessions.json";

Error NotRunning(const std::string& id, SandboxStatus status) {
  return Error(ErrorCode::kFailedPrecondition,
               fmt::format("sandbox {} is not running (status {})", id, SandboxStatusName(status)));
}

}  // namespace

supervisor::HostSettings HostRequest(const SandboxApiOptions& options) {
  supervisor::HostSettings h;
  h.bwrap_path = options.bwrap_path;
  h.docker_host = options.docker_host;
  h.docker_default_image = options.docker_default_image;
  // Container names and orphan cleanup are scoped by an FNV-1a of the mount path: stable across
  // restarts of this server, distinct between servers sharing one dockerd.
  uint64_t fnv = 1469598103934665603ull;
  for (unsigned char c : options.mount_path) {
    fnv ^= c;
    fnv *= 1099511628211ull;
  }
  h.docker_instance = fmt::format("af{:012x}", fnv & 0xffffffffffffull);
  h.identity_range = options.identity_range;
  h.dns_servers = options.network_dns_servers;
  h.public_cidrs = options.network_public_cidrs;
  return h;
}

SandboxManager::SandboxManager(const SandboxApiOptions& options, const SandboxApiDeps& deps,
                               supervisor::HostSettings host)
    : options_(options), deps_(deps), host_(std::move(host)) {}

Result<std::unique_ptr<SandboxManager>> SandboxManager::Create(const SandboxApiOptions& options,
                                                               const SandboxApiDeps& deps,
                                                               supervisor::HostSettings host) {
  if (!deps.metadata || !deps.files) {
    return Error(ErrorCode::kInvalidArgument, "sandbox manager needs the metadata and file stores");
  }
  std::error_code ec;
  stdfs::create_directories(options.mount_path + "/.run", ec);
  if (ec) return Error(ErrorCode::kFailedPrecondition, "cannot create " + options.mount_path);
  // Root's alone (SPEC §5, host side): bwrap gets each mount as a descriptor and Docker binds it
  // as root, so no sandbox identity, and no other local user, ever needs to traverse these.
  for (const std::string& dir : {options.mount_path, options.mount_path + "/.run"}) {
    if (::chmod(dir.c_str(), 0700) != 0) return Error::FromErrno(errno, "chmod 0700 " + dir);
  }
  std::unique_ptr<SandboxManager> m(new SandboxManager(options, deps, std::move(host)));
  m->Readopt();
  m->reaper_ = std::thread([raw = m.get()] { raw->ReaperLoop(); });
  return m;
}

SandboxManager::~SandboxManager() { Shutdown(); }

void SandboxManager::Shutdown() {
  {
    std::lock_guard lock(reaper_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  // Supervisors keep running: a restarted server re-adopts them. Only connections go.
  std::lock_guard lock(mu_);
  live_.clear();
}

std::string SandboxManager::MountPoint(const std::string& id) const {
  return options_.mount_path + "/" + id;
}
std::string SandboxManager::RunDir(const std::string& id) const {
  return options_.mount_path + "/.run/" + id;
}

Status SandboxManager::PrepareDirs(const std::string& id) const {
  AF_RETURN_IF_ERROR(supervisor::MakePrivateDir(MountPoint(id)));
  return supervisor::MakePrivateDir(RunDir(id));
}

void SandboxManager::RemoveDirs(const std::string& id) const {
  (void)fs::CleanupStaleMount(MountPoint(id), /*force=*/true);
  ::rmdir(MountPoint(id).c_str());  // only ever an empty mount point
  std::error_code ec;
  stdfs::remove_all(RunDir(id), ec);  // ours alone: root-owned 0700, nothing of the agent's
}

std::shared_ptr<std::mutex> SandboxManager::LifecycleLock(const std::string& id) {
  std::lock_guard lock(mu_);
  auto& l = locks_[id];
  if (!l) l = std::make_shared<std::mutex>();
  return l;
}

std::shared_ptr<SandboxManager::Live> SandboxManager::FindLive(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : it->second;
}

Result<SandboxRecord> SandboxManager::LoadSandbox(const std::string& id) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(id));
  return deps_.metadata->GetSandbox(id);
}

Result<std::shared_ptr<SandboxManager::Live>> SandboxManager::RunningSandbox(
    const std::string& id, SandboxRecord* record) {
  AF_ASSIGN_OR_RETURN(SandboxRecord rec, LoadSandbox(id));
  if (rec.status != SandboxStatus::kRunning) return NotRunning(id, rec.status);
  auto live = FindLive(id);
  if (!live || !live->agent || !live->agent->alive()) {
    return Error(ErrorCode::kUnavailable, fmt::format("sandbox {} lost its runtime", id));
  }
  if (record != nullptr) *record = std::move(rec);
  return live;
}

void SandboxManager::Audit(const std::string& sandbox_id, const std::string& operation,
                           const std::string& detail) {
  store::AuditEventRecord ev;
  ev.sandbox_id = sandbox_id;
  ev.time_ns = NowNs();
  ev.kind = "lifecycle";
  ev.operation = operation;
  ev.detail = detail;
  if (auto r = deps_.metadata->AppendAudit(ev); !r.ok()) {
    AF_LOG_WARN("audit: {}", r.error().ToString());
  }
}

// ---- lifecycle ----------------------------------------------------------------------------

Result<v1::Sandbox> SandboxManager::CreateSandbox(const CallContext&,
                                                  const v1::CreateSandboxRequest& req) {
  if (req.codebase_id().empty()) {
    return Error(ErrorCode::kInvalidArgument, "codebase_id is required");
  }
  AF_RETURN_IF_ERROR(ValidateCodebaseId(req.codebase_id()));
  AF_ASSIGN_OR_RETURN(store::CodebaseRecord codebase, deps_.metadata->GetCodebase(req.codebase_id()));

  SandboxRecord rec;
  AF_ASSIGN_OR_RETURN(rec.rules, RulesFromProto(req.permissions()));
  // Compiling validates every rule (index and reason in the error) before anything is stored.
  AF_RETURN_IF_ERROR(policy::Policy::Compile(RulesToPolicy(rec.rules)));

  switch (req.runtime()) {
    case v1::RUNTIME_TYPE_UNSPECIFIED:
      rec.runtime = options_.runtime == "docker" ? store::RuntimeKind::kDocker
                                                 : store::RuntimeKind::kBwrap;
      break;
    case v1::RUNTIME_TYPE_BWRAP: rec.runtime = store::RuntimeKind::kBwrap; break;
    case v1::RUNTIME_TYPE_DOCKER: rec.runtime = store::RuntimeKind::kDocker; break;
    default: return Error(ErrorCode::kInvalidArgument, "unknown runtime type");
  }
  if (!req.image().empty() && rec.runtime != store::RuntimeKind::kDocker) {
    return Error(ErrorCode::kInvalidArgument, "image is only meaningful with the docker runtime");
  }
  if (req.image().size() > 256) return Error(ErrorCode::kInvalidArgument, "image name too long");
  rec.image = req.image();
  AF_ASSIGN_OR_RETURN(rec.resources, LimitsFromProto(req.resources()));
  AF_ASSIGN_OR_RETURN(rec.sync_mode, SyncModeFromProto(req.sync_mode()));
  {
    auto mode = policy::ResolveEgressMode(req.network(), req.egress().any_public(),
                                          static_cast<size_t>(req.egress().allow_size()));
    rec.network = mode.network;
    if (rec.network) AF_RETURN_IF_ERROR(SetEgress(rec, mode.any_public, req.egress().allow()));
  }
  if (rec.network && rec.runtime == store::RuntimeKind::kDocker &&
      !options_.docker_enable_networking) {
    return Error(ErrorCode::kFailedPrecondition,
                 "network access is disabled on this server (runtime.docker.enable_networking)");
  }
  if (req.delta_quota().max_bytes() < 0 || req.delta_quota().max_inodes() < 0) {
    return Error(ErrorCode::kInvalidArgument, "delta_quota limits must not be negative");
  }
  if (req.has_ask_timeout()) {
    const int64_t ns = DurationToNs(req.ask_timeout());
    if (ns <= 0 || ns > int64_t{24} * 3600 * 1'000'000'000) {
      return Error(ErrorCode::kInvalidArgument, "ask_timeout must be between 1 ms and 24 h");
    }
    rec.ask_timeout_ms = std::max<int64_t>(1, ns / 1'000'000);
  }
  rec.delta_quota_bytes = req.delta_quota().max_bytes();
  rec.delta_quota_inodes = req.delta_quota().max_inodes();
  rec.env = std::map<std::string, std::string>(req.env().begin(), req.env().end());
  AF_RETURN_IF_ERROR(ValidateEnv(rec.env));
  if (req.labels_size() > 64) return Error(ErrorCode::kInvalidArgument, "too many labels (64 max)");
  for (const auto& [k, v] : req.labels()) {
    if (k.empty() || k.size() > 128 || v.size() > 1024) {
      return Error(ErrorCode::kInvalidArgument, "label keys are 1-128 bytes, values ≤ 1024");
    }
    rec.labels[k] = v;
  }

  rec.codebase_id = codebase.id;
  rec.owner_id = codebase.owner_id;
  store::SandboxFilter mine;
  mine.owner_id = rec.owner_id;
  AF_ASSIGN_OR_RETURN(int64_t count, deps_.metadata->CountSandboxes(mine));
  if (count >= options_.max_per_user) {
    return Error(ErrorCode::kResourceExhausted,
                 fmt::format("owner {} already has {} sandboxes (sandbox.max_per_user)",
                             rec.owner_id, count));
  }
  AF_ASSIGN_OR_RETURN(rec.id, NewSandboxId());
  rec.status = SandboxStatus::kPending;
  rec.created_at_ns = NowNs();
  int64_t expires_in = req.has_expires_in() ? DurationToNs(req.expires_in())
                                            : options_.default_expiration.count();
  if (expires_in < 0) return Error(ErrorCode::kInvalidArgument, "expires_in must not be negative");
  if (expires_in > 0) rec.expires_at_ns = rec.created_at_ns + expires_in;
  AF_RETURN_IF_ERROR(deps_.metadata->CreateSandbox(rec));
  Audit(rec.id, "created", "codebase " + rec.codebase_id);
  return SandboxToProto(rec);
}

Result<v1::Sandbox> SandboxManager::GetSandbox(const CallContext&, const v1::GetSandboxRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_ASSIGN_OR_RETURN(SandboxRecord rec, LoadSandbox(req.sandbox_id()));
  return SandboxToProto(rec);
}

Result<v1::ListSandboxesResponse> SandboxManager::ListSandboxes(
    const CallContext&, const v1::ListSandboxesRequest& req) {
  store::SandboxFilter filter;
  if (!req.codebase_id().empty()) {
    AF_RETURN_IF_ERROR(ValidateCodebaseId(req.codebase_id()));
    filter.codebase_id = req.codebase_id();
  }
  store::PageRequest page{req.page_size(), req.page_token()};
  AF_ASSIGN_OR_RETURN(auto result, deps_.metadata->ListSandboxes(filter, page));
  v1::ListSandboxesResponse out;
  for (const auto& rec : result.items) *out.add_sandboxes() = SandboxToProto(rec);
  out.set_next_page_token(result.next_page_token);
  return out;
}

Status SandboxManager::StartLocked(SandboxRecord& rec) {
  AF_RETURN_IF_ERROR(PrepareDirs(rec.id));
  supervisor::SupervisorSpec spec;
  spec.sandbox_id = rec.id;
  AF_ASSIGN_OR_RETURN(spec.source_dir, deps_.files->CodebasePath(rec.codebase_id));
  spec.mountpoint = MountPoint(rec.id);
  spec.run_dir = RunDir(rec.id);
  spec.rules = RulesToPolicy(rec.rules);
  spec.runtime = rec.runtime == store::RuntimeKind::kDocker ? supervisor::RuntimeKind::kDocker
                                                            : supervisor::RuntimeKind::kBwrap;
  spec.image = rec.image;
  spec.network = rec.network;
  spec.egress.any_public = rec.egress_any_public;
  spec.egress.allow = rec.egress_allow;  // upstreams and public ranges: host-wide (Launch)
  spec.limits.memory_bytes = static_cast<uint64_t>(rec.resources.memory_bytes);
  spec.limits.cpu_quota_us = rec.resources.cpu_quota;
  spec.limits.cpu_shares = static_cast<uint64_t>(rec.resources.cpu_shares);
  spec.limits.pids_limit = static_cast<uint64_t>(rec.resources.pids_limit);
  spec.preferred_uid = static_cast<uint32_t>(rec.host_uid);
  spec.delta_dir = DeltaDir(rec.id);
  // Private to root: the agent reaches its files only through the permission filesystem. Kept
  // across stop/start (pending changes of a MANUAL sandbox survive a restart).
  if (::mkdir(spec.delta_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error::FromErrno(errno, "mkdir " + spec.delta_dir);
  }
  spec.delta_quota_bytes = static_cast<uint64_t>(rec.delta_quota_bytes);
  spec.delta_quota_inodes = static_cast<uint64_t>(rec.delta_quota_inodes);
  spec.max_checkpoints = static_cast<uint64_t>(std::max(options_.max_checkpoints, 1));
  spec.ask_timeout_ms = static_cast<uint64_t>(rec.ask_timeout_ms);
  spec.fuse_busy_poll_us = options_.fuse_busy_poll_us;
  std::error_code ec;
  stdfs::remove(spec.run_dir + "/" + kSessionsFile, ec);  // sessions die with a stopped sandbox

  AF_RETURN_IF_ERROR(supervisor::Launch(std::move(spec), host_));
  auto live = Attach(rec.id);
  if (!live.ok()) {
    (void)supervisor::SupervisorControl(RunDir(rec.id)).Stop(false);
    return std::move(live).error().With("connecting to the sandbox supervisor");
  }
  auto status = (*live)->control->Status();
  rec.supervisor_pid = status.ok() ? status->pid : 0;
  // Kept after a stop too: the next start asks for the same identity first.
  if (status.ok()) rec.host_uid = status->host_uid;
  rec.supervisor_socket = (*live)->control->agent_socket();
  return OkStatus();
}

Result<std::shared_ptr<SandboxManager::Live>> SandboxManager::Attach(const std::string& id) {
  auto live = std::make_shared<Live>();
  live->id = id;
  live->control = std::make_unique<supervisor::SupervisorControl>(RunDir(id));
  AF_ASSIGN_OR_RETURN(SandboxRecord rec, deps_.metadata->GetSandbox(id));
  live->codebase_id = rec.codebase_id;
  live->sync_mode = rec.sync_mode;
  live->env = rec.env;
  AF_ASSIGN_OR_RETURN(auto status, live->control->Status());
  if (status.sandbox_id != id) {
    return Error(ErrorCode::kInternal, "supervisor socket of " + id + " answers for another sandbox");
  }
  AF_ASSIGN_OR_RETURN(live->agent,
                      runtime::AgentClient::Connect(live->control->agent_socket(),
                                                    std::chrono::seconds(5)));
  // Sessions survive a server restart inside the agent; their ids come back from the run dir.
  std::ifstream in(RunDir(id) + "/" + kSessionsFile);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    auto j = nlohmann::json::parse(text.str(), nullptr, false);
    if (j.is_object()) {
      for (auto& [sess, sid] : j.items()) {
        if (sid.is_number_unsigned()) live->sessions[sess] = sid.get<uint64_t>();
      }
    }
  }
  std::lock_guard lock(mu_);
  live_[id] = live;
  return live;
}

void SandboxManager::SaveSessions(Live& live) {
  nlohmann::json j = nlohmann::json::object();
  {
    std::lock_guard lock(live.sessions_mu);
    for (const auto& [sess, sid] : live.sessions) j[sess] = sid;
  }
  std::string path = RunDir(live.id) + "/" + kSessionsFile;
  std::ofstream out(path + ".tmp", std::ios::trunc);
  out << j.dump();
  out.close();
  if (::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
    AF_LOG_WARN("saving sessions of {}: {}", live.id, strerror(errno));
  }
}

Result<v1::Sandbox> SandboxManager::StartSandbox(const CallContext&,
                                                 const v1::StartSandboxRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_RETURN_IF_ERROR(ValidateSandboxId(req.sandbox_id()));
  auto lock_handle = LifecycleLock(req.sandbox_id());
  std::lock_guard lifecycle(*lock_handle);
  AF_ASSIGN_OR_RETURN(SandboxRecord rec, LoadSandbox(req.sandbox_id()));
  if (rec.status == SandboxStatus::kRunning) {
    return Error(ErrorCode::kFailedPrecondition,
                 fmt::format("sandbox {} is already running", rec.id));
  }
  Status started = StartLocked(rec);
  if (!started.ok()) {
    rec.status = SandboxStatus::kError;
    rec.error_reason = started.error().ToString();
    (void)deps_.metadata->UpdateSandbox(rec);
    Audit(rec.id, "start_failed", rec.error_reason);
    IngestAudit(rec.id);
    return std::move(started).error().With("starting sandbox " + rec.id);
  }
  rec.status = SandboxStatus::kRunning;
  rec.error_reason.clear();
  rec.started_at_ns = NowNs();
  rec.stopped_at_ns = 0;
  AF_RETURN_IF_ERROR(deps_.metadata->UpdateSandbox(rec));
  Audit(rec.id, "started", "");
  return SandboxToProto(rec);
}

Status SandboxManager::StopLocked(SandboxRecord& rec, bool destroy) {
  std::shared_ptr<Live> live;
  {
    std::lock_guard lock(mu_);
    if (auto it = live_.find(rec.id); it != live_.end()) {
      live = it->second;
      live_.erase(it);
    }
  }
  // Only our reference goes: an exec, session call or reaper probe in flight holds the Live and
  // keeps using live->agent until the supervisor's stop breaks its connection (kUnavailable).
  // Resetting live->agent here destroyed the client under such a call (a use-after-free).
  live.reset();
  supervisor::SupervisorControl control(RunDir(rec.id));
  Status st = control.Stop(destroy);
  if (!st.ok() && st.error().code() != ErrorCode::kUnavailable) {
    AF_LOG_WARN("stopping sandbox {}: {}", rec.id, st.error().ToString());
  }
  // Whatever the supervisor managed, no mount may stay behind.
  (void)fs::CleanupStaleMount(MountPoint(rec.id), /*force=*/true);
  (void)deps_.metadata->CloseSessionsOfSandbox(rec.id, NowNs());
  rec.supervisor_pid = 0;
  rec.supervisor_socket.clear();
  return OkStatus();
}

Result<v1::Sandbox> SandboxManager::StopSandbox(const CallContext&,
                                                const v1::StopSandboxRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_RETURN_IF_ERROR(ValidateSandboxId(req.sandbox_id()));
  auto lock_handle = LifecycleLock(req.sandbox_id());
  std::lock_guard lifecycle(*lock_handle);
  AF_ASSIGN_OR_RETURN(SandboxRecord rec, LoadSandbox(req.sandbox_id()));
  if (rec.status != SandboxStatus::kRunning) return NotRunning(rec.id, rec.status);
  if (rec.sync_mode == kSyncOnStop) {
    if (auto live = FindLive(rec.id)) {
      auto report = CommitLive(*live);
      if (!report.ok()) {
        // The delta stays on disk: a later start (or a MANUAL commit after it) still has it.
        AF_LOG_WARN("sandbox {}: commit at stop failed: {}", rec.id, report.error().ToString());
        Audit(rec.id, "commit_failed", report.error().ToString());
      }
    }
  }
  IngestAudit(rec.id);
  AF_RETURN_IF_ERROR(StopLocked(rec, /*destroy=*/false));
  rec.status = SandboxStatus::kStopped;
  rec.stopped_at_ns = NowNs();
  AF_RETURN_IF_ERROR(deps_.metadata->UpdateSandbox(rec));
  Audit(rec.id, "stopped", "");
  return SandboxToProto(rec);
}

Status SandboxManager::DestroyLocked(const std::string& id) {
  AF_ASSIGN_OR_RETURN(SandboxRecord rec, LoadSandbox(id));
  AF_RETURN_IF_ERROR(StopLocked(rec, /*destroy=*/true));
  if (rec.runtime == store::RuntimeKind::kDocker && rec.status != SandboxStatus::kRunning) {
    // A stopped Docker sandbox keeps its container for a restart, and no supervisor is left to
    // remove it.
    AF_LOG_INFO("sandbox {}: removing its stopped container", id);
    auto launcher = supervisor::MakeDockerLauncher(host_);
    Status removed = launcher.ok() ? (*launcher)->Destroy(id) : std::move(launcher).error();
    if (!removed.ok()) {
      AF_LOG_WARN("sandbox {}: removing its container: {}", id, removed.error().ToString());
    }
  }
  IngestAudit(id);  // its denials outlive it; the file does not
  RemoveDirs(id);
  AF_RETURN_IF_ERROR(deps_.metadata->DeleteSandbox(id));
  Audit(id, "destroyed", "");
  return OkStatus();
}

Result<v1::Empty> SandboxManager::DestroySandbox(const CallContext&,
                                                 const v1::DestroySandboxRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_RETURN_IF_ERROR(ValidateSandboxId(req.sandbox_id()));
  auto lock_handle = LifecycleLock(req.sandbox_id());
  std::lock_guard lifecycle(*lock_handle);
  AF_RETURN_IF_ERROR(DestroyLocked(req.sandbox_id()));
  std::lock_guard lock(mu_);
  locks_.erase(req.sandbox_id());
  return v1::Empty();
}

Result<bool> SandboxManager::IsCodebaseInUse(const std::string& codebase_id) {
  store::SandboxFilter f;
  f.codebase_id = codebase_id;
  AF_ASSIGN_OR_RETURN(int64_t n, deps_.metadata->CountSandboxes(f));
  return n > 0;
}

Result<int64_t> SandboxManager::DestroySandboxesOfCodebase(const CallContext& ctx,
                                                           const std::string& codebase_id) {
  store::SandboxFilter f;
  f.codebase_id = codebase_id;
  AF_ASSIGN_OR_RETURN(auto all, deps_.metadata->AllSandboxes(f));
  int64_t n = 0;
  for (const auto& rec : all) {
    v1::DestroySandboxRequest req;
    req.set_sandbox_id(rec.id);
    AF_RETURN_IF_ERROR(DestroySandbox(ctx, req));
    ++n;
  }
  return n;
}

// ---- restart and expiry -----------------------------------------------------------------

void SandboxManager::CleanupDockerOrphans() {
  auto all = deps_.metadata->AllSandboxes(store::SandboxFilter{});
  if (!all.ok()) return;
  bool any_docker = options_.runtime == "docker";
  std::set<std::string> keep;
  for (const auto& rec : *all) {
    if (rec.runtime == store::RuntimeKind::kDocker) any_docker = true;
    // A stopped sandbox keeps its container for its next start; one in ERROR does not need it.
    if (rec.status != SandboxStatus::kError) keep.insert(rec.id);
  }
  if (!any_docker) return;  // this server never made a container: do not even ask dockerd
  auto launcher = supervisor::MakeDockerLauncher(host_);
  if (!launcher.ok()) {
    AF_LOG_WARN("docker orphan cleanup skipped: {}", launcher.error().ToString());
    return;
  }
  auto removed = (*launcher)->CleanupOrphans(keep);
  if (!removed.ok()) {
    AF_LOG_WARN("docker orphan cleanup: {}", removed.error().ToString());
  } else if (!removed->empty()) {
    AF_LOG_INFO("docker orphan cleanup removed {} container(s)", removed->size());
  }
}

void SandboxManager::Readopt() {
  store::SandboxFilter running;
  running.statuses = {SandboxStatus::kRunning};
  auto all = deps_.metadata->AllSandboxes(running);
  if (!all.ok()) {
    AF_LOG_ERROR("re-adopting sandboxes: {}", all.error().ToString());
    return;
  }
  for (auto& rec : *all) {
    auto live = Attach(rec.id);
    if (live.ok()) {
      AF_LOG_INFO("re-adopted running sandbox {}", rec.id);
      continue;
    }
    AF_LOG_WARN("sandbox {} lost its supervisor ({}); marking it stopped", rec.id,
                live.error().ToString());
    (void)StopLocked(rec, /*destroy=*/false);
    rec.status = SandboxStatus::kStopped;
    rec.stopped_at_ns = NowNs();
    rec.error_reason = "its supervisor was gone when the server restarted";
    (void)deps_.metadata->UpdateSandbox(rec);
    Audit(rec.id, "lost", rec.error_reason);
  }
}

void SandboxManager::ReaperLoop() {
  // Off the start-up path: dockerd may be slow or absent.
  CleanupDockerOrphans();
  std::unique_lock lock(reaper_mu_);
  // Sessions whose shell died on its own are looked for every few seconds; expiry, dead
  // supervisors and audit ingestion every cleanup_interval.
  const auto tick = std::min<std::chrono::nanoseconds>(options_.cleanup_interval,
                                                        std::chrono::seconds(2));
  auto next_cleanup = std::chrono::steady_clock::now() + options_.cleanup_interval;
  while (!stopping_) {
    reaper_cv_.wait_for(lock, tick, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    if (std::chrono::steady_clock::now() < next_cleanup) {
      std::vector<std::shared_ptr<Live>> lives;
      {
        std::lock_guard g(mu_);
        for (auto& [id, live] : live_) lives.push_back(live);
      }
      for (auto& live : lives) ProbeSessions(*live, "");
      lock.lock();
      continue;
    }
    next_cleanup = std::chrono::steady_clock::now() + options_.cleanup_interval;
    auto expired = deps_.metadata->ListExpiredSandboxes(NowNs());
    if (expired.ok()) {
      for (const auto& rec : *expired) {
        auto lock_handle = LifecycleLock(rec.id);
        std::lock_guard lifecycle(*lock_handle);
        if (auto st = DestroyLocked(rec.id); st.ok()) {
          AF_LOG_INFO("sandbox {} expired and was destroyed", rec.id);
        } else {
          AF_LOG_WARN("destroying expired sandbox {}: {}", rec.id, st.error().ToString());
        }
      }
    }
    // A running sandbox whose supervisor died on its own is marked, and its mount cleaned up.
    std::vector<std::shared_ptr<Live>> lives;
    {
      std::lock_guard g(mu_);
      for (auto& [id, live] : live_) lives.push_back(live);
    }
    for (auto& live : lives) {
      if (live->agent && live->agent->alive()) {
        ProbeSessions(*live, "");
        continue;
      }
      auto lock_handle = LifecycleLock(live->id);
      std::lock_guard lifecycle(*lock_handle);
      auto rec = deps_.metadata->GetSandbox(live->id);
      if (!rec.ok() || rec->status != SandboxStatus::kRunning) continue;
      (void)StopLocked(*rec, false);
      rec->status = SandboxStatus::kError;
      rec->error_reason = "the sandbox runtime exited unexpectedly";
      rec->stopped_at_ns = NowNs();
      (void)deps_.metadata->UpdateSandbox(*rec);
      Audit(rec->id, "died", rec->error_reason);
    }
    IngestAllAudit();
    lock.lock();
  }
}

}  // namespace agentfense::service

namespace agentfense::service {

Result<std::unique_ptr<SandboxApi>> MakeSandboxApi(const SandboxApiOptions& options,
                                                   const SandboxApiDeps& deps) {
  AF_ASSIGN_OR_RETURN(auto host, supervisor::ResolveHost(HostRequest(options)));
  AF_ASSIGN_OR_RETURN(auto manager, SandboxManager::Create(options, deps, std::move(host)));
  return std::unique_ptr<SandboxApi>(std::move(manager));
}

}  // namespace agentfense::service
