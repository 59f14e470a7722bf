#include "runtime/bwrap_sandbox.h"

#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "base/log.h"
#include "runtime/seccomp_filter.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif

namespace agentfense::runtime {
namespace {

// open_tree(2) and move_mount(2) flags (linux/mount.h, which clashes with glibc's sys/mount.h).
constexpr unsigned kOpenTreeClone = 1;       // OPEN_TREE_CLONE
constexpr unsigned kMoveMountFEmptyPath = 4;  // MOVE_MOUNT_F_EMPTY_PATH

Result<UniqueFd> MemfdWith(const char* name, const std::string& content) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
  if (!fd) return Error::FromErrno(errno, "memfd_create");
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
    if (n < 0) return Error::FromErrno(errno, "write memfd");
    off += static_cast<size_t>(n);
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) return Error::FromErrno(errno, "lseek memfd");
  return fd;
}

std::string ReadAllFrom(int fd, size_t max) {
  std::string out(max, '\0');
  ssize_t n = ::pread(fd, out.data(), max, 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

// Waits for the process behind `pidfd` to exit, up to `timeout`.
bool WaitExit(int pidfd, std::chrono::milliseconds timeout) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

// The child between fork and exec. Only async-signal-safe calls: the parent may be a
// multi-threaded server whose locks were copied in any state.
[[noreturn]] void ChildExec(const char* path, char* const* argv, int go_r, int go_w,
                            const int (*moves)[2], int nmoves, int err_w, bool drop, uid_t uid,
                            gid_t gid, pid_t parent, int stage_tree, int netns_fd) {
  auto fail = [err_w](int err) {
    (void)!::write(err_w, &err, sizeof(err));
    ::_exit(127);
  };
  // Wait until the launcher has put this process into the sandbox's cgroup (Cgroup::Adopt), so
  // bwrap and everything below it are born inside. EOF instead of the byte: the launcher gave up
  // or died (our copy of the write end is closed first, or EOF could never come).
  ::close(go_w);
  char go = 0;
  ssize_t n;
  do {
    n = ::read(go_r, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) ::_exit(127);
  if (stage_tree >= 0) {
    // A mount namespace of bwrap's own, where the workspace (a detached copy of its mount, made
    // from the descriptor the launcher opened: no path is resolved) is attached at the stage, so
    // the sandbox's uid never walks the host path to it. Private: nothing propagates either way.
    // A slave would also receive every mount the host makes later, on a host whose root mount is
    // shared (systemd's): every sandbox's FUSE mount, copied into every other sandbox's namespace
    // for its life (N² mounts, 0.41 KiB each; docs/PERFORMANCE.md, "Where an idle sandbox's
    // memory goes"). A sandbox's own mount does not come from here but from the stage.
    if (::unshare(CLONE_NEWNS) != 0) fail(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail(errno);
    if (::syscall(SYS_move_mount, stage_tree, "", AT_FDCWD, kWorkspaceStage,
                  kMoveMountFEmptyPath) != 0) {
      fail(errno);
    }
  }
  // Network on: the namespace the supervisor prepared, joined before the descriptors move (its
  // number may be a target) and while we still may (setns needs CAP_SYS_ADMIN); bwrap then keeps
  // it (no --unshare-net).
  if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) fail(errno);
  // Lift every source above the targets, then place them: dup2 never clobbers a later source.
  int err_hi = ::fcntl(err_w, F_DUPFD_CLOEXEC, 100);
  if (err_hi < 0) fail(errno);
  err_w = err_hi;
  int hi[16];
  for (int i = 0; i < nmoves; ++i) {
    hi[i] = ::fcntl(moves[i][0], F_DUPFD, 100);
    if (hi[i] < 0) fail(errno);
  }
  for (int i = 0; i < nmoves; ++i) {
    if (::dup2(hi[i], moves[i][1]) < 0) fail(errno);
  }
  if (drop) {
    if (::setgroups(0, nullptr) != 0) fail(errno);
    if (::setresgid(gid, gid, gid) != 0) fail(errno);
    if (::setresuid(uid, uid, uid) != 0) fail(errno);
  }
  // If the launcher dies, bwrap dies (bwrap's --die-with-parent then takes the agent down).
  // The signal follows the *thread* that forked: callers spawn from a long-lived thread.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(errno);
  if (::getppid() != parent) ::_exit(127);
  // Every fd but 0..kFirstUnusedFd-1 closes at exec (the error pipe only if exec succeeds).
  if (::syscall(SYS_close_range, kFirstUnusedFd, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = kFirstUnusedFd; fd < 1024; ++fd) {
      if (fd != err_w) ::close(fd);
    }
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  char* const empty_env[] = {nullptr};
  ::execve(path, argv, empty_env);
  fail(errno);
  ::_exit(127);
}

std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path);
  std::string v;
  std::getline(in, v);
  return v;
}

}  // namespace

std::string UserNamespaceBlocker(const std::string& proc) {
  if (ReadTrimmed(proc + "/sys/kernel/unprivileged_userns_clone") == "0") {
    return "unprivileged user namespaces are disabled on this host "
           "(kernel.unprivileged_userns_clone = 0), and bwrap needs one: "
           "sudo sysctl -w kernel.unprivileged_userns_clone=1, or run agentfense as root";
  }
  if (ReadTrimmed(proc + "/sys/user/max_user_namespaces") == "0") {
    return "user namespaces are disabled on this host (user.max_user_namespaces = 0), and bwrap "
           "needs one: sudo sysctl -w user.max_user_namespaces=15000, or run agentfense as root";
  }
  if (ReadTrimmed(proc + "/sys/kernel/apparmor_restrict_unprivileged_userns") == "1") {
    return "AppArmor restricts unprivileged user namespaces on this host "
           "(kernel.apparmor_restrict_unprivileged_userns = 1), and bwrap needs one: allow bwrap "
           "with an AppArmor profile (Ubuntu ships bwrap-userns-restrict), or run agentfense as "
           "root";
  }
  return "";
}

namespace {

// The empty directory a root launcher binds each workspace over in bwrap's own mount namespace.
Status EnsureWorkspaceStage() {
  for (const char* dir : {"/run/agentfense", kWorkspaceStage}) {
    if (::mkdir(dir, 0755) != 0 && errno != EEXIST) return Error::FromErrno(errno, "mkdir " + std::string(dir));
    struct stat st;
    if (::lstat(dir, &st) != 0) return Error::FromErrno(errno, "stat " + std::string(dir));
    if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0) {
      return Error(ErrorCode::kFailedPrecondition,
                   std::string(dir) + " must be a directory of root's that nobody else can write");
    }
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<BwrapSandbox>> BwrapSandbox::Start(const SandboxSpec& requested) {
  SandboxSpec spec = requested;
  spec.stage_workspace = ::geteuid() == 0;
  AF_ASSIGN_OR_RETURN(BwrapPlan plan, BuildBwrapPlan(spec, ProbeHostLayout()));
  if (::access(spec.bwrap_path.c_str(), X_OK) != 0) {
    return Error(ErrorCode::kFailedPrecondition,
                 "bwrap not found or not executable at " + spec.bwrap_path, errno);
  }
  // Opened with the launcher's rights. O_PATH never asks the filesystem to open anything, so root
  // holds it even on a mount that serves only the sandbox's uid.
  UniqueFd workspace(
      ::open(spec.workspace_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!workspace) {
    return Error(ErrorCode::kFailedPrecondition,
                 "workspace is not a directory: " + spec.workspace_dir, errno);
  }
  UniqueFd stage_tree;  // a detached clone of the workspace's mount (open_tree(2))
  if (spec.stage_workspace) {
    AF_RETURN_IF_ERROR(EnsureWorkspaceStage());
    stage_tree.Reset(static_cast<int>(::syscall(SYS_open_tree, workspace.get(), "",
                                                kOpenTreeClone | AT_EMPTY_PATH | O_CLOEXEC)));
    if (!stage_tree) return Error::FromErrno(errno, "open_tree " + spec.workspace_dir);
  }
  struct stat st;
  if (::stat(spec.agent_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kFailedPrecondition, "agent binary missing: " + spec.agent_path);
  }
  bool drop = ::geteuid() == 0;
  if (!drop) {
    // bwrap would only say "No permissions to creating new namespace": say why and what to do.
    if (std::string why = UserNamespaceBlocker(); !why.empty()) {
      return Error(ErrorCode::kFailedPrecondition, why);
    }
  }
  if (!drop && ::geteuid() != spec.host_uid) {
    // Unprivileged launcher: we run as ourselves; say so rather than pretend.
    AF_LOG_WARN("bwrap sandbox {}: launcher is uid {}, not root: sandbox runs as uid {}", spec.id,
                ::geteuid(), ::geteuid());
  }

  std::unique_ptr<BwrapSandbox> sb(new BwrapSandbox);
  auto cg = Cgroup::Create(spec.id, spec.limits, spec.cgroup);
  if (cg.ok()) {
    sb->cgroup_ = std::move(*cg);
  } else if (spec.limits.Any() && !drop) {
    // Rootless: never a silent "no limit". Say why there is no cgroup for us and what to do.
    const bool v2 = ::access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    return Error(ErrorCode::kFailedPrecondition,
                 std::string("resource limits (memory, pids, cpu) need a cgroup you may manage, and "
                             "there is none: ") +
                     (v2 ? "no cgroup v2 subtree is delegated to you here; start agentfense "
                           "under systemd-run --user --scope -p Delegate=yes, "
                         : "this host runs cgroup v1, where only root creates groups; ") +
                     "or run as root, or drop the limits (" + cg.error().message() + ")");
  } else if (spec.limits.Any() || spec.require_cgroup) {
    return std::move(cg).error().With("sandbox " + spec.id + " needs a cgroup for its limits");
  } else {
    AF_LOG_WARN("sandbox {}: running without a cgroup: {}", spec.id, cg.error().ToString());
  }

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Error::FromErrno(errno, "socketpair");
  }
  UniqueFd host_end(sv[0]), sandbox_end(sv[1]);
  AF_ASSIGN_OR_RETURN(UniqueFd seccomp, BuildSeccompProgramFd());
  AF_ASSIGN_OR_RETURN(UniqueFd stderr_fd, MemfdWith("agentfense-bwrap-stderr", ""));
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return Error::FromErrno(errno, "open /dev/null");
  std::vector<UniqueFd> files;
  std::vector<std::pair<int, int>> moves = {{devnull.get(), 0},
                                            {devnull.get(), 1},
                                            {stderr_fd.get(), 2},
                                            {sandbox_end.get(), kAgentSocketFd},
                                            {seccomp.get(), kSeccompFd}};
  for (const auto& [num, content] : plan.file_fds) {
    AF_ASSIGN_OR_RETURN(UniqueFd f, MemfdWith("agentfense-etc", content));
    moves.emplace_back(f.get(), num);
    files.push_back(std::move(f));
  }
  int move_arr[16][2];
  for (size_t i = 0; i < moves.size(); ++i) {
    move_arr[i][0] = moves[i].first;
    move_arr[i][1] = moves[i].second;
  }
  AF_ASSIGN_OR_RETURN(auto go_pipe, MakePipe());
  AF_ASSIGN_OR_RETURN(auto err_pipe, MakePipe());
  std::vector<char*> argv;
  argv.reserve(plan.argv.size() + 1);
  for (auto& a : plan.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) return Error::FromErrno(errno, "fork");
  if (pid == 0) {
    ChildExec(spec.bwrap_path.c_str(), argv.data(), go_pipe.first.get(), go_pipe.second.get(),
              move_arr, static_cast<int>(moves.size()), err_pipe.second.get(), drop, spec.host_uid,
              spec.host_gid, parent, stage_tree.get(), spec.network ? spec.netns_fd : -1);
  }
  sb->pid_ = pid;
  sb->stderr_fd_ = std::move(stderr_fd);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) sb->pidfd_.Reset(pidfd);
  err_pipe.second.Reset();
  sandbox_end.Reset();
  go_pipe.first.Reset();
  if (sb->cgroup_) {
    Status adopted = sb->cgroup_->Adopt(pid);
    if (!adopted.ok() && (spec.limits.Any() || spec.require_cgroup)) {
      go_pipe.second.Reset();  // the child reads EOF and exits
      (void)sb->Stop();
      return std::move(adopted).error().With("sandbox " + spec.id);
    }
    if (!adopted.ok()) {
      // As when no cgroup can be made (a launcher without rights on the systemd bus, say).
      AF_LOG_WARN("sandbox {}: running without a cgroup: {}", spec.id, adopted.error().ToString());
      sb->cgroup_.reset();
    }
  }
  if (::write(go_pipe.second.get(), "g", 1) != 1) {
    int err = errno;
    (void)sb->Stop();
    return Error::FromErrno(err, "release the sandbox's first process");
  }
  go_pipe.second.Reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe.first.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(child_errno)) {
    (void)sb->Stop();
    return Error(ErrorCode::kFailedPrecondition, "cannot start bwrap " + spec.bwrap_path,
                 child_errno);
  }
  auto client = AgentClient::Create(std::move(host_end), std::chrono::seconds(15));
  if (!client.ok()) {
    // Give bwrap a moment to finish writing why it failed.
    if (sb->pidfd_) WaitExit(sb->pidfd_.get(), std::chrono::milliseconds(500));
    std::string why = ReadAllFrom(sb->stderr_fd_.get(), 4096);
    (void)sb->Stop();
    return Error(ErrorCode::kUnavailable, "sandbox " + spec.id +
                                              " did not start: " + client.error().ToString() +
                                              (why.empty() ? "" : "; bwrap said: " + why));
  }
  sb->client_.Set(std::move(*client));
  return sb;
}

BwrapSandbox::~BwrapSandbox() { (void)Stop(); }

bool BwrapSandbox::running() const {
  std::lock_guard lock(stop_mu_);
  auto client = client_.Get();
  if (stopped_ || !client || !client->alive()) return false;
  if (pidfd_) return !WaitExit(pidfd_.get(), std::chrono::milliseconds(0));
  return true;
}

Status BwrapSandbox::Stop() {
  std::lock_guard lock(stop_mu_);
  if (stopped_) return OkStatus();
  stopped_ = true;
  // Closing the connection makes the agent kill every process and exit; the pid namespace dies
  // with it, and bwrap exits. Calls in flight end with kUnavailable.
  client_.Close();
  if (pid_ > 0) {
    bool exited = pidfd_ && WaitExit(pidfd_.get(), std::chrono::milliseconds(2000));
    if (!exited) {
      if (pidfd_) {
        ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
      } else {
        ::kill(pid_, SIGKILL);
      }
      // Whatever else is left (bwrap included: it is born inside) dies through the cgroup.
      if (cgroup_) (void)cgroup_->Kill();
    }
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  pidfd_.Reset();
  Status st = OkStatus();
  if (cgroup_) st = cgroup_->Remove();
  return st;
}

void BwrapSandbox::MarkOom(ExecResult& r, uint64_t oom_before) const {
  if (cgroup_ && r.exit_code == 128 + SIGKILL && cgroup_->OomKills() > oom_before) r.oom = true;
}

Result<std::shared_ptr<AgentClient>> BwrapSandbox::Client() const {
  auto client = client_.Get();
  if (!client) return Error(ErrorCode::kFailedPrecondition, "sandbox is stopped");
  return client;
}

Result<ExecResult> BwrapSandbox::Exec(const proto::Exec& request, const OutputCallback& on_output,
                                      const CallOptions& options) {
  AF_ASSIGN_OR_RETURN(auto client, Client());
  uint64_t before = cgroup_ ? cgroup_->OomKills() : 0;
  AF_ASSIGN_OR_RETURN(ExecResult r, client->Exec(request, on_output, options));
  MarkOom(r, before);
  return r;
}

Result<uint64_t> BwrapSandbox::OpenSession(const proto::SessionOpen& request) {
  AF_ASSIGN_OR_RETURN(auto client, Client());
  return client->OpenSession(request);
}

Result<ExecResult> BwrapSandbox::SessionExec(const proto::SessionExec& request,
                                             const OutputCallback& on_output,
                                             const CallOptions& options) {
  AF_ASSIGN_OR_RETURN(auto client, Client());
  uint64_t before = cgroup_ ? cgroup_->OomKills() : 0;
  AF_ASSIGN_OR_RETURN(ExecResult r, client->SessionExec(request, on_output, options));
  MarkOom(r, before);
  return r;
}

Status BwrapSandbox::CloseSession(uint64_t session_id) {
  AF_ASSIGN_OR_RETURN(auto client, Client());
  return client->CloseSession(session_id);
}

}  // namespace agentfense::runtime
