#include "runtime/docker_launcher.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/ids.h"
#include "base/log.h"
#include "base/mountinfo.h"

namespace agentfense::runtime {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Creates every missing component of an absolute host path (a configured, trusted path).
Status MakeDirs(const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return Error::FromErrno(errno, "mkdir " + prefix);
    }
  }
  return OkStatus();
}

Result<uint64_t> ReadOomKill(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(ErrorCode::kNotFound, "cannot read " + path);
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "oom_kill") return value;
  }
  return Error(ErrorCode::kUnimplemented, "no oom_kill counter in " + path);
}

// The memory-cgroup file that counts OOM kills of a container, for cgroup v1 and v2 with the
// cgroupfs driver ("<parent>/<id>", parent "docker" by default) and v2 with the systemd driver
// ("system.slice/docker-<id>.scope").
Result<std::string> OomCounterPath(const ContainerInfo& info) {
  std::string parent = info.cgroup_parent;
  while (!parent.empty() && parent.front() == '/') parent.erase(0, 1);
  if (parent.empty()) parent = "docker";
  std::vector<std::string> candidates;
  if (::access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
    candidates = {"/sys/fs/cgroup/" + parent + "/" + info.id + "/memory.events",
                  "/sys/fs/cgroup/system.slice/docker-" + info.id + ".scope/memory.events"};
  } else {
    candidates = {"/sys/fs/cgroup/memory/" + parent + "/" + info.id + "/memory.oom_control"};
  }
  for (const auto& c : candidates) {
    if (::access(c.c_str(), R_OK) == 0) return c;
  }
  return Error(ErrorCode::kNotFound, "memory cgroup of container " + info.id + " not found");
}

bool PathUnder(std::string_view path, std::string_view mount_point) {
  if (mount_point == "/") return true;
  return path.starts_with(mount_point) &&
         (path.size() == mount_point.size() || path[mount_point.size()] == '/');
}

}  // namespace

bool MountPropagatesAt(std::string_view mountinfo, std::string_view path) {
  size_t best_len = 0;
  bool best_propagates = false;
  bool found = false;
  while (!mountinfo.empty()) {
    size_t nl = mountinfo.find('\n');
    std::string_view line = mountinfo.substr(0, nl);
    mountinfo = nl == std::string_view::npos ? std::string_view() : mountinfo.substr(nl + 1);
    auto entry = ParseMountinfoLine(line);
    if (!entry || !PathUnder(path, entry->mount_point)) continue;
    const std::string& mount_point = entry->mount_point;
    bool propagates = false;
    for (std::string_view field : entry->optional) {
      if (field.starts_with("shared:") || field.starts_with("master:")) propagates = true;
    }
    // Longest mount point wins; among equal ones the later line is the mount on top.
    if (!found || mount_point.size() >= best_len) {
      found = true;
      best_len = mount_point.size();
      best_propagates = propagates;
    }
  }
  return best_propagates;
}

Status RemoveTreeAt(int dirfd, const std::string& name, int max_depth) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return OkStatus();
  if (errno != EISDIR) return Error::FromErrno(errno, "unlink " + name);
  if (max_depth <= 0) return Error(ErrorCode::kResourceExhausted, "tree too deep: " + name);
  {
    auto sub = OpenAt(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY);
    if (!sub.ok()) {
      if (sub.error().sys_errno() == ENOENT) return OkStatus();
      return std::move(sub).error();
    }
    // fdopendir takes the fd; DIR owns it from here.
    DIR* dir = ::fdopendir(sub->Release());
    if (dir == nullptr) return Error::FromErrno(errno, "fdopendir " + name);
    std::vector<std::string> children;
    while (dirent* e = ::readdir(dir)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") children.emplace_back(n);
    }
    Status st = OkStatus();
    for (const auto& child : children) {
      st = RemoveTreeAt(::dirfd(dir), child, max_depth - 1);
      if (!st.ok()) break;
    }
    ::closedir(dir);
    AF_RETURN_IF_ERROR(st);
  }
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return Error::FromErrno(errno, "rmdir " + name);
  }
  return OkStatus();
}

Result<std::unique_ptr<DockerLauncher>> DockerLauncher::Create(DockerLauncherConfig config) {
  if (config.agent_path.empty() || config.agent_path.front() != '/') {
    return Error(ErrorCode::kInvalidArgument, "docker runtime: agent_path must be absolute");
  }
  struct stat st;
  if (::stat(config.agent_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kFailedPrecondition,
                 "docker runtime: agent binary " + config.agent_path + " not found");
  }
  if (config.run_root.empty() || config.run_root.front() != '/') {
    return Error(ErrorCode::kInvalidArgument, "docker runtime: run_root must be absolute");
  }
  AF_RETURN_IF_ERROR(ValidateInstanceName(config.instance));
  AF_RETURN_IF_ERROR(ValidateImageRef(config.default_image));
  AF_RETURN_IF_ERROR(MakeDirs(config.run_root, 0711));
  AF_ASSIGN_OR_RETURN(auto client, DockerClient::Connect(config.client));
  return std::unique_ptr<DockerLauncher>(new DockerLauncher(std::move(config), std::move(client)));
}

std::string DockerLauncher::ContainerName(std::string_view sandbox_id) const {
  return DockerContainerName(config_.instance, sandbox_id);
}

std::string DockerLauncher::RunDir(std::string_view sandbox_id) const {
  return config_.run_root + "/" + ContainerName(sandbox_id);
}

Status DockerLauncher::PrepareRunDir(std::string_view sandbox_id) const {
  AF_ASSIGN_OR_RETURN(UniqueFd root,
                      OpenAt(AT_FDCWD, config_.run_root.c_str(), O_RDONLY | O_DIRECTORY));
  const std::string name = ContainerName(sandbox_id);
  // A leftover from a crashed run: start clean.
  AF_RETURN_IF_ERROR(RemoveTreeAt(root.get(), name));
  if (::mkdirat(root.get(), name.c_str(), 0700) != 0) {
    return Error::FromErrno(errno, "mkdir " + RunDir(sandbox_id));
  }
  if (::fchownat(root.get(), name.c_str(), config_.uid, config_.gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return Error::FromErrno(errno, "chown " + RunDir(sandbox_id));
  }
  return OkStatus();
}

Status DockerLauncher::RemoveRunDir(std::string_view name) const {
  AF_ASSIGN_OR_RETURN(UniqueFd root,
                      OpenAt(AT_FDCWD, config_.run_root.c_str(), O_RDONLY | O_DIRECTORY));
  return RemoveTreeAt(root.get(), std::string(name));
}

Status DockerLauncher::CreateSandbox(const DockerSandboxSpec& spec) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(spec.sandbox_id));
  if (spec.network && !config_.enable_networking) {
    return Error(ErrorCode::kFailedPrecondition,
                 "sandbox " + spec.sandbox_id +
                     " asks for network but networking is disabled for the docker runtime");
  }
  const std::string image = spec.image.empty() ? config_.default_image : spec.image;
  AF_RETURN_IF_ERROR(client_->InspectImage(image));

  struct stat st;
  if (spec.workspace_dir.empty() || ::stat(spec.workspace_dir.c_str(), &st) != 0 ||
      !S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kFailedPrecondition, "sandbox " + spec.sandbox_id +
                                                     ": workspace directory \"" +
                                                     spec.workspace_dir + "\" does not exist");
  }

  DockerContainerPlan plan;
  plan.sandbox_id = spec.sandbox_id;
  plan.instance = config_.instance;
  plan.image = image;
  plan.workspace_dir = spec.workspace_dir;
  {
    // rslave is what we want (a FUSE mount re-made under the workspace is seen inside), but Docker
    // refuses it on a private mount, the default on hosts without systemd. Fall back to rprivate
    // there: the mount present at start is still bound, later ones are not seen.
    char real[PATH_MAX];
    std::ifstream in("/proc/self/mountinfo");
    std::stringstream mi;
    mi << in.rdbuf();
    if (::realpath(spec.workspace_dir.c_str(), real) == nullptr ||
        !MountPropagatesAt(mi.str(), real)) {
      plan.workspace_propagation = "rprivate";
      AF_LOG_WARN(
          "docker: workspace {} of sandbox {} is on a private mount: bound rprivate, so "
          "mounts made under it later are not seen inside (make its parent a shared "
          "mount to fix)",
          spec.workspace_dir, spec.sandbox_id);
    }
  }
  plan.agent_path = config_.agent_path;
  plan.run_dir = RunDir(spec.sandbox_id);
  plan.uid = config_.uid;
  plan.gid = config_.gid;
  plan.network = spec.network;
  plan.limits = spec.limits.value_or(config_.default_limits);
  plan.agent_args = {"--listen",
                     std::string(kContainerRunDir) + "/" + std::string(kAgentSocketName)};
  AF_ASSIGN_OR_RETURN(nlohmann::json body, BuildContainerCreateBody(plan));

  // Before touching the run directory: an existing sandbox's agent socket lives there.
  if (auto existing = client_->InspectContainer(ContainerName(spec.sandbox_id)); existing.ok()) {
    return Error(ErrorCode::kAlreadyExists, "sandbox " + spec.sandbox_id +
                                                " already has a container (" +
                                                ContainerName(spec.sandbox_id) + ")");
  } else if (existing.error().code() != ErrorCode::kNotFound) {
    return std::move(existing).error();
  }
  AF_RETURN_IF_ERROR(PrepareRunDir(spec.sandbox_id));
  auto id = client_->CreateContainer(ContainerName(spec.sandbox_id), body);
  if (!id.ok()) {
    Error e = std::move(id).error();
    if (e.code() == ErrorCode::kAlreadyExists) {
      // Leave the existing container's run directory alone: it is in use.
      return Error(ErrorCode::kAlreadyExists, "sandbox " + spec.sandbox_id +
                                                  " already has a container (" +
                                                  ContainerName(spec.sandbox_id) + ")");
    }
    (void)RemoveRunDir(ContainerName(spec.sandbox_id));
    return std::move(e).With("creating the container of sandbox " + spec.sandbox_id);
  }
  AF_LOG_INFO("docker: created {} ({}) for sandbox {} from {}", ContainerName(spec.sandbox_id),
              id->substr(0, 12), spec.sandbox_id, image);
  return OkStatus();
}

Result<UniqueFd> DockerLauncher::ConnectAgentSocket(std::string_view sandbox_id) const {
  AF_ASSIGN_OR_RETURN(UniqueFd root,
                      OpenAt(AT_FDCWD, config_.run_root.c_str(), O_PATH | O_DIRECTORY));
  AF_ASSIGN_OR_RETURN(UniqueFd dir,
                      OpenAt(root.get(), ContainerName(sandbox_id).c_str(), O_PATH | O_DIRECTORY));
  // The directory belongs to the sandbox: agent.sock could be a symlink to a host socket (say,
  // docker.sock) or a FIFO. Open it without following links, check it is a socket owned by the
  // sandbox uid, and connect through the descriptor so nothing can be swapped in between.
  AF_ASSIGN_OR_RETURN(UniqueFd sock_path,
                      OpenAt(dir.get(), std::string(kAgentSocketName).c_str(), O_PATH));
  struct stat st;
  if (::fstat(sock_path.get(), &st) != 0) return Error::FromErrno(errno, "fstat agent socket");
  if (!S_ISSOCK(st.st_mode) || st.st_uid != config_.uid) {
    return Error(ErrorCode::kPermissionDenied, "agent socket of sandbox " +
                                                   std::string(sandbox_id) +
                                                   " is not a socket owned by the sandbox user");
  }
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return Error::FromErrno(errno, "socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // At most 25 bytes ("/proc/self/fd/" and an int) of the 108: never truncated.
  (void)std::snprintf(addr.sun_path, sizeof(addr.sun_path), "/proc/self/fd/%d", sock_path.get());
  if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error::FromErrno(errno, "connect to the agent of sandbox " + std::string(sandbox_id));
  }
  return s;
}

Error DockerLauncher::StartFailure(std::string_view sandbox_id, std::string_view what) const {
  std::string detail(what);
  if (auto info = client_->InspectContainer(ContainerName(sandbox_id)); info.ok()) {
    detail += " (container " + info->status + ", exit code " + std::to_string(info->exit_code);
    if (!info->error.empty()) detail += ", " + info->error;
    detail += ")";
  }
  if (auto logs = client_->Logs(ContainerName(sandbox_id), 2048); logs.ok()) {
    std::string tail = logs->stderr_data.empty() ? logs->stdout_data : logs->stderr_data;
    while (!tail.empty() && tail.back() == '\n') tail.pop_back();
    if (!tail.empty()) detail += ": " + tail;
  }
  return Error(ErrorCode::kUnavailable,
               "sandbox " + std::string(sandbox_id) + " did not start: " + detail);
}

Result<std::unique_ptr<AgentClient>> DockerLauncher::Start(std::string_view sandbox_id) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(sandbox_id));
  const std::string name = ContainerName(sandbox_id);
  auto info = client_->InspectContainer(name);
  if (!info.ok()) {
    if (info.error().code() == ErrorCode::kNotFound) {
      return Error(ErrorCode::kNotFound,
                   "sandbox " + std::string(sandbox_id) + " has no container (" + name + ")");
    }
    return std::move(info).error();
  }
  if (info->running) return Attach(sandbox_id, config_.agent_ready_timeout);
  {
    // A socket left by the previous run would be found before the new agent listens.
    AF_ASSIGN_OR_RETURN(UniqueFd root,
                        OpenAt(AT_FDCWD, config_.run_root.c_str(), O_PATH | O_DIRECTORY));
    auto dir = OpenAt(root.get(), name.c_str(), O_PATH | O_DIRECTORY);
    if (!dir.ok()) {
      // Created by an older process whose run directory is gone: recreate it.
      AF_RETURN_IF_ERROR(PrepareRunDir(sandbox_id));
    } else if (::unlinkat(dir->get(), std::string(kAgentSocketName).c_str(), 0) != 0 &&
               errno != ENOENT) {
      return Error::FromErrno(errno, "removing the stale agent socket of " + name);
    }
  }
  AF_RETURN_IF_ERROR(client_->StartContainer(name));
  return Attach(sandbox_id, config_.agent_ready_timeout);
}

Result<std::unique_ptr<AgentClient>> DockerLauncher::Attach(std::string_view sandbox_id,
                                                            milliseconds timeout) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(sandbox_id));
  const auto deadline = Clock::now() + timeout;
  auto next_inspect = Clock::now() + milliseconds(100);
  milliseconds backoff(1);
  while (true) {
    auto fd = ConnectAgentSocket(sandbox_id);
    if (fd.ok()) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      return AgentClient::Create(std::move(*fd), std::max(left, milliseconds(1000)));
    }
    const int err = fd.error().sys_errno();
    if (err != ENOENT && err != ECONNREFUSED) {
      return std::move(fd).error().With("sandbox " + std::string(sandbox_id));
    }
    if (Clock::now() >= deadline) {
      return StartFailure(
          sandbox_id, "the agent did not listen within " + std::to_string(timeout.count()) + " ms");
    }
    if (Clock::now() >= next_inspect) {
      next_inspect = Clock::now() + milliseconds(250);
      AF_ASSIGN_OR_RETURN(ContainerInfo info, client_->InspectContainer(ContainerName(sandbox_id)));
      if (!info.running) return StartFailure(sandbox_id, "the container exited");
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, milliseconds(20));
  }
}

Status DockerLauncher::Stop(std::string_view sandbox_id) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(sandbox_id));
  return client_->StopContainer(ContainerName(sandbox_id), config_.stop_grace);
}

Status DockerLauncher::Destroy(std::string_view sandbox_id) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(sandbox_id));
  const std::string name = ContainerName(sandbox_id);
  Status st = client_->RemoveContainer(name, /*force=*/true);
  if (!st.ok() && st.error().code() != ErrorCode::kNotFound) return st;
  return RemoveRunDir(name);
}

Result<ContainerInfo> DockerLauncher::Inspect(std::string_view sandbox_id) const {
  AF_RETURN_IF_ERROR(ValidateSandboxId(sandbox_id));
  return client_->InspectContainer(ContainerName(sandbox_id));
}

Result<uint64_t> DockerLauncher::OomKillCount(std::string_view sandbox_id) const {
  AF_ASSIGN_OR_RETURN(ContainerInfo info, Inspect(sandbox_id));
  AF_ASSIGN_OR_RETURN(std::string path, OomCounterPath(info));
  return ReadOomKill(path);
}

Result<ExecResult> DockerLauncher::Exec(AgentClient& agent, std::string_view sandbox_id,
                                        const proto::Exec& request, const OutputCallback& on_output,
                                        const CallOptions& options) const {
  AF_ASSIGN_OR_RETURN(ContainerInfo info, Inspect(sandbox_id));
  if (!info.running) {
    return Error(ErrorCode::kFailedPrecondition,
                 "sandbox " + std::string(sandbox_id) + " is not running");
  }
  // The agent reports OOM from inside, but it shares its uid with the commands it runs; the host's
  // view of the container's memory cgroup is the one to trust.
  std::optional<std::string> counter;
  std::optional<uint64_t> before;
  if (auto p = OomCounterPath(info); p.ok()) {
    counter = *p;
    if (auto c = ReadOomKill(*counter); c.ok()) before = *c;
  }
  AF_ASSIGN_OR_RETURN(ExecResult r, agent.Exec(request, on_output, options));
  if (before && counter) {  // `before` is only ever set with `counter`
    auto after = ReadOomKill(*counter);
    r.oom = after.ok() && *after > *before;
  }
  return r;
}

Result<std::vector<std::string>> DockerLauncher::CleanupOrphans(
    const std::set<std::string>& live_ids) {
  AF_ASSIGN_OR_RETURN(auto containers, client_->ListContainers(
                                           {std::string(kLabelManaged) + "=true",
                                            std::string(kLabelInstance) + "=" + config_.instance},
                                           /*all=*/true));
  std::vector<std::string> removed;
  std::set<std::string> kept_names;
  for (const ContainerInfo& c : containers) {
    auto it = c.labels.find(std::string(kLabelSandbox));
    const std::string sandbox = it == c.labels.end() ? "" : it->second;
    if (!sandbox.empty() && live_ids.count(sandbox) != 0) {
      kept_names.insert(c.name);
      continue;
    }
    Status st = client_->RemoveContainer(c.id, /*force=*/true);
    if (!st.ok() && st.error().code() != ErrorCode::kNotFound) {
      return std::move(st).error().With("removing orphaned container " + c.name);
    }
    AF_LOG_INFO("docker: removed orphaned container {} (sandbox {})", c.name, sandbox);
    removed.push_back(sandbox);
  }
  // Run directories of this instance that belong to no live sandbox.
  const std::string prefix = DockerContainerName(config_.instance, "");
  std::vector<std::string> stale_dirs;
  {
    AF_ASSIGN_OR_RETURN(UniqueFd root,
                        OpenAt(AT_FDCWD, config_.run_root.c_str(), O_RDONLY | O_DIRECTORY));
    DIR* dir = ::fdopendir(root.Release());
    if (dir == nullptr) return Error::FromErrno(errno, "opendir " + config_.run_root);
    while (dirent* e = ::readdir(dir)) {
      std::string n = e->d_name;
      if (!n.starts_with(prefix)) continue;
      if (live_ids.count(n.substr(prefix.size())) != 0) continue;
      stale_dirs.push_back(std::move(n));
    }
    ::closedir(dir);
  }
  for (const auto& n : stale_dirs) AF_RETURN_IF_ERROR(RemoveRunDir(n));
  return removed;
}

}  // namespace agentfense::runtime
