#include "cli/local_sandbox.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "base/ids.h"
#include "fs/mount.h"
#include "supervisor/launch.h"

extern char** environ;

namespace agentfense::cli {
namespace {

namespace stdfs = std::filesystem;

// Where the private directory goes: $AGENTFENSE_RUNTIME_DIR, else $XDG_RUNTIME_DIR, else /tmp.
// It is ours alone (0700): the sandbox gets its mount as a descriptor and never needs to pass.
std::string RuntimeParent() {
  for (const char* var : {"AGENTFENSE_RUNTIME_DIR", "XDG_RUNTIME_DIR"}) {
    const char* dir = std::getenv(var);  // NOLINT(concurrency-mt-unsafe): nobody calls setenv
    if (dir == nullptr || dir[0] != '/') continue;
    struct stat st {};
    if (::stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return dir;
  }
  return "/tmp";
}

}  // namespace

Result<std::unique_ptr<LocalSandbox>> LocalSandbox::Start(const LocalSandboxOptions& options) {
  supervisor::HostSettings requested;
  requested.bwrap_path = options.bwrap_path;
  requested.docker_host = options.docker_host;
  requested.docker_instance = "cli";
  requested.dns_servers = options.egress.dns_servers;
  requested.public_cidrs = options.egress.public_cidrs;
  AF_ASSIGN_OR_RETURN(supervisor::HostSettings host, supervisor::ResolveHost(requested));
  AF_ASSIGN_OR_RETURN(std::string id, NewSandboxId());
  std::unique_ptr<LocalSandbox> sb(new LocalSandbox());

  // The mount point must not lie inside the directory it exposes: the filesystem would serve its
  // own mount point (a lookup loop back into itself).
  const std::string parent = RuntimeParent();
  const std::string& src = options.source_dir;
  if (src == "/" || parent == src || parent.rfind(src + "/", 0) == 0) {
    return Error(ErrorCode::kInvalidArgument,
                 "DIR " + src + " contains the runtime directory " + parent +
                     "; choose another DIR or set AGENTFENSE_RUNTIME_DIR outside it");
  }
  std::string templ = parent + "/agentfense-" + id.substr(3) + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    return Error::FromErrno(errno, "creating a private directory in " + RuntimeParent());
  }
  sb->base_dir_ = templ;  // 0700 (mkdtemp): no other local user reaches the mount beneath
  sb->run_dir_ = sb->base_dir_ + "/run";
  sb->mountpoint_ = sb->base_dir_ + "/mnt";
  AF_RETURN_IF_ERROR(supervisor::MakePrivateDir(sb->run_dir_));
  AF_RETURN_IF_ERROR(supervisor::MakePrivateDir(sb->mountpoint_));
  if (options.keep_delta_dir.empty()) {
    sb->delta_dir_ = sb->base_dir_ + "/delta";
    AF_RETURN_IF_ERROR(supervisor::MakePrivateDir(sb->delta_dir_));
  } else {
    sb->delta_dir_ = options.keep_delta_dir;
    sb->private_delta_ = false;
  }

  supervisor::SupervisorSpec spec;
  spec.sandbox_id = id;
  spec.source_dir = options.source_dir;
  spec.mountpoint = sb->mountpoint_;
  spec.run_dir = sb->run_dir_;
  spec.delta_dir = sb->delta_dir_;
  spec.rules = options.rules;
  spec.runtime = options.runtime;
  spec.image = options.image;
  spec.network = options.network;
  spec.egress = options.egress;
  spec.limits = options.limits;

  sb->control_ = std::make_unique<supervisor::SupervisorControl>(sb->run_dir_);
  AF_RETURN_IF_ERROR(sb->SpawnReaper());
  sb->started_ = true;  // from here on, Close() must try to stop a supervisor
  AF_RETURN_IF_ERROR(supervisor::Launch(std::move(spec), host));
  auto agent =
      runtime::AgentClient::Connect(sb->control_->agent_socket(), std::chrono::seconds(10));
  if (!agent.ok()) return std::move(agent).error().With("connecting to the sandbox agent");
  sb->agent_ = std::move(*agent);
  if (auto status = sb->control_->Status(); status.ok()) sb->supervisor_pid_ = status->pid;
  return sb;
}

Status LocalSandbox::Close(bool keep_delta) {
  if (closed_) return OkStatus();
  closed_ = true;
  Status first = OkStatus();
  agent_.reset();  // the agent kills whatever this connection still runs
  if (started_) {
    Status stopped = StopSupervisor();
    // kUnavailable: no supervisor answers (it never started, or already stopped): not an error.
    if (!stopped.ok() && stopped.error().code() != ErrorCode::kUnavailable) first = stopped;
    // Belt and braces: a supervisor that died hard leaves a dead FUSE mount behind.
    (void)fs::CleanupStaleMount(mountpoint_, /*force=*/true);
  }
  if (!base_dir_.empty()) {
    std::error_code ec;
    if (keep_delta && private_delta_) {
      // Everything but the delta goes.
      stdfs::remove_all(run_dir_, ec);
      ::rmdir(mountpoint_.c_str());
    } else {
      if (fs::IsFuseMountPoint(mountpoint_)) {
        // Never recurse into a mount: that would delete the user's files through it.
        if (first.ok()) first = Error(ErrorCode::kInternal, mountpoint_ + " is still mounted");
        return first;
      }
      ::rmdir(mountpoint_.c_str());
      stdfs::remove_all(run_dir_, ec);
      if (private_delta_) stdfs::remove_all(delta_dir_, ec);
      ::rmdir(base_dir_.c_str());
    }
  }
  if (reaper_.valid()) {
    (void)!::write(reaper_.get(), "done", 4);
    reaper_.Reset();
    // It exits at once; reaping it here leaves neither a zombie nor a helper outliving us.
    while (::waitpid(reaper_pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  return first;
}

Status LocalSandbox::SpawnReaper() {
  AF_ASSIGN_OR_RETURN(auto pipe, MakePipe());
  auto& [r, w] = pipe;
  std::error_code ec;
  std::string self = stdfs::read_symlink("/proc/self/exe", ec).string();
  if (ec) return Error(ErrorCode::kInternal, "cannot locate the running executable");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, r.get(), 0);  // dup2 clears O_CLOEXEC on fd 0
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own session: a Ctrl-C on our terminal is ours to handle, not the reaper's.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
  std::vector<std::string> args = {
      self, "_reaper", base_dir_, run_dir_, mountpoint_, delta_dir_, private_delta_ ? "1" : "0"};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, self.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::FromErrno(rc, "starting the cleanup helper");
  reaper_ = std::move(w);
  reaper_pid_ = pid;
  return OkStatus();
}

int RunReaper(const std::vector<std::string>& args) {
  if (args.size() != 5) return 2;
  const std::string& base = args[0];
  const std::string& run_dir = args[1];
  const std::string& mnt = args[2];
  const std::string& delta = args[3];
  const bool private_delta = args[4] == "1";
  // signal(2) fails only with EINVAL (a bad signal number): these are valid constants.
  for (int s : {SIGINT, SIGHUP, SIGPIPE}) (void)::signal(s, SIG_IGN);
  std::string said;
  char buf[16];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    said.append(buf, static_cast<size_t>(n));
  }
  if (said == "done") return 0;
  // The owner died without cleaning up. A supervisor may still be starting: give it a moment to
  // answer before concluding there is none.
  supervisor::SupervisorControl control(run_dir);
  const std::string spec = run_dir + "/" + supervisor::kSpecFile;
  // Unknown = keep: a delta is only removed when the supervisor says it holds no change.
  auto changes = control.Changes();
  bool delta_empty = changes.ok() && changes->changes.empty();
  for (int i = 0; i < 100; ++i) {
    Status st = control.Stop(/*destroy=*/true, std::chrono::seconds(30));
    if (st.ok() || ::access(spec.c_str(), F_OK) != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (void)fs::CleanupStaleMount(mnt, /*force=*/true);
  if (fs::IsFuseMountPoint(mnt)) return 1;  // never delete through a mount
  std::error_code ec;
  ::rmdir(mnt.c_str());
  stdfs::remove_all(run_dir, ec);
  if (private_delta && (delta_empty || stdfs::is_empty(delta, ec))) stdfs::remove_all(delta, ec);
  ::rmdir(base.c_str());  // only when nothing (no kept delta) is left
  return 0;
}

// SupervisorControl::Stop waits for the control socket to disappear; a supervisor that crashed
// while stopping never removes it. So wait briefly there, then watch the process itself.
Status LocalSandbox::StopSupervisor() {
  Status stopped = control_->Stop(/*destroy=*/true, std::chrono::milliseconds(500));
  if (stopped.ok() || stopped.error().code() != ErrorCode::kDeadlineExceeded) return stopped;
  const std::string control = run_dir_ + "/" + supervisor::kControlSocket;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (::access(control.c_str(), F_OK) == 0) {
    if (supervisor_pid_ > 0 && ::kill(supervisor_pid_, 0) != 0 && errno == ESRCH) {
      return Error(ErrorCode::kInternal, "the sandbox supervisor died while stopping (see " +
                                             run_dir_ + "/" + supervisor::kLogFile + ")");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Error(ErrorCode::kDeadlineExceeded, "the sandbox supervisor did not stop in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return OkStatus();
}

LocalSandbox::~LocalSandbox() { (void)Close(); }

}  // namespace agentfense::cli
