#include "fs/mount.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "base/log.h"
#include "base/mountinfo.h"

namespace agentfense::fs {

bool IsFuseMountPoint(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    auto entry = ParseMountinfoLine(line);
    if (entry && entry->mount_point == path && entry->fstype.starts_with("fuse")) return true;
  }
  return false;
}

Status DetachMount(const std::string& mountpoint) {
  if (::geteuid() == 0) {
    if (::umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
      return Error::FromErrno(errno, "umount2 " + mountpoint);
    }
    return OkStatus();
  }
  // An ordinary user may detach only what fusermount3 (setuid) agrees they mounted.
  const char* helper = nullptr;
  for (const char* p : {"/usr/bin/fusermount3", "/bin/fusermount3"}) {
    if (::access(p, X_OK) == 0) {
      helper = p;
      break;
    }
  }
  if (helper == nullptr) {
    return Error(ErrorCode::kFailedPrecondition,
                 "cannot unmount " + mountpoint + ": fusermount3 is missing (apt install fuse3)");
  }
  AF_ASSIGN_OR_RETURN(auto pipe, MakePipe());
  auto& [r, w] = pipe;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, w.get(), 2);
  std::string target = mountpoint;
  char* argv[] = {const_cast<char*>(helper), const_cast<char*>("-u"), const_cast<char*>("-z"),
                  target.data(), nullptr};
  char* envp[] = {nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, helper, &fa, nullptr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  w.Reset();
  if (rc != 0) return Error::FromErrno(rc, "starting fusermount3");
  std::string said;
  char buf[512];
  ssize_t n;
  while ((n = ::read(r.get(), buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0 && said.size() < 4096) said.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!said.empty() && said.back() == '\n') said.pop_back();
    return Error(ErrorCode::kPermissionDenied, "fusermount3 -u " + mountpoint + ": " + said);
  }
  return OkStatus();
}

Status CleanupStaleMount(const std::string& mountpoint, bool force) {
  if (!IsFuseMountPoint(mountpoint)) return OkStatus();
  struct stat st;
  bool dead = ::stat(mountpoint.c_str(), &st) != 0 && errno == ENOTCONN;
  if (!dead && !force) return OkStatus();
  AF_RETURN_IF_ERROR(DetachMount(mountpoint));
  AF_LOG_INFO("removed stale FUSE mount at {}", mountpoint);
  return OkStatus();
}

Status CheckUnprivilegedFuse(const std::string& mountpoint, bool allow_other,
                             const std::string& etc) {
  struct stat st;
  if (::stat("/dev/fuse", &st) != 0) {
    return Error(ErrorCode::kFailedPrecondition,
                 "the FUSE device /dev/fuse is missing: load the module (sudo modprobe fuse), or "
                 "in a container pass the device in (docker run --device /dev/fuse)");
  }
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 10 || minor(st.st_rdev) != 229) {
    return Error(ErrorCode::kFailedPrecondition, "/dev/fuse is not the FUSE device (char 10:229)");
  }
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    return Error(ErrorCode::kFailedPrecondition,
                 fmt::format("/dev/fuse is not open to you (mode {:o}, owner uid {}): Debian makes it "
                             "crw-rw-rw- (udev); restore that with: sudo chmod 0666 /dev/fuse",
                             st.st_mode & 07777, st.st_uid));
  }
  const char* helper = nullptr;
  for (const char* p : {"/usr/bin/fusermount3", "/bin/fusermount3"}) {
    if (::stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
      helper = p;
      break;
    }
  }
  if (helper == nullptr) {
    return Error(ErrorCode::kFailedPrecondition,
                 "fusermount3, which mounts FUSE filesystems for ordinary users, is missing: "
                 "sudo apt install fuse3");
  }
  if (st.st_uid != 0 || (st.st_mode & S_ISUID) == 0 || ::access(helper, X_OK) != 0) {
    return Error(ErrorCode::kFailedPrecondition,
                 fmt::format("{} is not a setuid-root program you can run, so it cannot mount for "
                             "you: sudo chown root {} && sudo chmod 4755 {} (as Debian's fuse3 "
                             "package installs it)",
                             helper, helper, helper));
  }
  if (::access(mountpoint.c_str(), W_OK) != 0) {
    return Error(ErrorCode::kPermissionDenied,
                 "you cannot write to " + mountpoint +
                     ": fusermount3 mounts only on directories you own or may write");
  }
  if (allow_other) {
    bool allowed = false;
    std::ifstream conf(etc + "/fuse.conf");
    std::string line;
    while (std::getline(conf, line)) {
      line.erase(0, line.find_first_not_of(" \t"));
      line.erase(line.find_last_not_of(" \t\r") + 1);
      if (line == "user_allow_other") allowed = true;
    }
    if (!allowed) {
      return Error(ErrorCode::kPermissionDenied,
                   "serving other users (allow_other) needs user_allow_other in " + etc +
                       "/fuse.conf, which only root can set: echo user_allow_other | sudo tee "
                       "-a " + etc + "/fuse.conf");
    }
  }
  return OkStatus();
}

MountAccess MountAccess::Self() {
  MountAccess a;
  a.uid = ::getuid();
  a.gid = ::getgid();
  return a;
}

Status Mount::MountDirect(const MountAccess& access) {
  UniqueFd dev(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!dev) {
    return Error::FromErrno(errno, "opening /dev/fuse (is the fuse module loaded? modprobe fuse)");
  }
  struct stat st;
  if (::stat(mountpoint_.c_str(), &st) != 0) return Error::FromErrno(errno, "stat " + mountpoint_);
  // user_id/group_id: the only identity the kernel lets through without allow_other (fuse(4));
  // libfuse would put its own getuid() there, which is why the mount is ours.
  std::string data = fmt::format("fd={},rootmode={:o},user_id={},group_id={}", dev.get(),
                                 st.st_mode & S_IFMT, access.uid, access.gid);
  if (access.allow_other || access.everyone) data += ",allow_other";
  // Also for opens decided by the kernel (FsOptions::kernel_open): the permission bits PermFs
  // presents are then what the kernel checks an open against.
  if (access.everyone || fs_->kernel_checks()) data += ",default_permissions";
  if (::mount("agentfense", mountpoint_.c_str(), "fuse.agentfense", MS_NOSUID | MS_NODEV,
              data.c_str()) != 0) {
    return Error::FromErrno(errno, "mount " + mountpoint_);
  }
  // libfuse takes a descriptor that is already mounted as the mount point "/dev/fd/N".
  std::string devpath = fmt::format("/dev/fd/{}", dev.get());
  if (fuse_session_mount(session_, devpath.c_str()) != 0) {
    ::umount2(mountpoint_.c_str(), MNT_DETACH);
    return Error(ErrorCode::kInternal, "fuse_session_mount refused " + devpath);
  }
  (void)dev.Release();  // the session owns it now (fuse_session_destroy closes it)
  direct_ = true;
  return OkStatus();
}

namespace {

// The descriptor caches (O_PATH per inode, I/O descriptors for kernel-decided opens) want more
// descriptors than the soft limit of 1,024 an ordinary login gets: with it, a walk of a large
// tree by `agentfense mount` failed with EMFILE (rg over the kernel's fs/: 93 errors). The soft
// limit is raised to the hard one, and the caches shrink to fit when even that is lower.
void FitDescriptorLimit(FsOptions* options) {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0 || ::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  }
  constexpr size_t kReserve = 256;  // /dev/fuse, listings, copy-ups, the caller's own
  if (rl.rlim_cur == RLIM_INFINITY ||
      options->fd_cache_capacity + options->io_fd_cache_capacity + kReserve <= rl.rlim_cur) {
    return;
  }
  const size_t room = rl.rlim_cur > 2 * kReserve ? rl.rlim_cur - kReserve : rl.rlim_cur / 2;
  options->fd_cache_capacity = std::max<size_t>(16, room * 4 / 5);
  options->io_fd_cache_capacity = std::max<size_t>(16, room / 5);
  AF_LOG_WARN("descriptor limit {}: caches of {} and {} descriptors", rl.rlim_cur,
              options->fd_cache_capacity, options->io_fd_cache_capacity);
}

}  // namespace

Result<std::unique_ptr<Mount>> Mount::Start(const std::string& source, const std::string& mountpoint,
                                            policy::Policy policy, FsOptions options,
                                            const MountAccess& access) {
  std::unique_ptr<Mount> m(new Mount());
  m->mountpoint_ = mountpoint;
  m->wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!m->wake_) return Error::FromErrno(errno, "eventfd");
  const bool root = ::geteuid() == 0;
  if (!root && access.uid != ::getuid()) {
    return Error(ErrorCode::kPermissionDenied,
                 fmt::format("only root can mount for another user (uid {})", access.uid));
  }
  FitDescriptorLimit(&options);
  options.caller_uid.reset();
  if (!access.everyone) {
    options.caller_uid = access.uid;
    options.caller_gid = access.gid;
  }
  options.others_reach_mount = access.allow_other || access.everyone;
  AF_ASSIGN_OR_RETURN(m->fs_, PermFs::Create(source, std::move(policy), std::move(options)));
  // default_permissions only for `everyone` (the host's bits for other users) and for opens
  // decided by the kernel: a mount serving one unprivileged identity, which holds no capability
  // that bypasses permission bits (sandboxes drop them all and cannot make user namespaces), and
  // whose READ and WRITE requests are still decided by the daemon (docs/FILESYSTEM.md). A root
  // caller would bypass the bits: a mount serving root keeps every open a request.
  std::string opts = "fsname=agentfense,subtype=agentfense,nosuid,nodev";
  if (!root && (access.allow_other || access.everyone)) opts += ",allow_other";
  if (!root && (access.everyone || m->fs_->kernel_checks())) opts += ",default_permissions";
  std::vector<std::string> store = {"agentfense", "-o", opts};
  std::vector<char*> argv;
  argv.reserve(store.size());
  for (auto& s : store) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  const fuse_lowlevel_ops& ops = PermFs::Ops();
  m->session_ = fuse_session_new(&args, &ops, sizeof(ops), m->fs_.get());
  fuse_opt_free_args(&args);
  if (m->session_ == nullptr) return Error(ErrorCode::kInternal, "fuse_session_new failed");
  if (root) {
    if (Status st = m->MountDirect(access); !st.ok()) {
      fuse_session_destroy(m->session_);
      m->session_ = nullptr;
      return std::move(st).error();
    }
  } else {
    Status ready = CheckUnprivilegedFuse(mountpoint, access.allow_other || access.everyone);
    if (ready.ok() && fuse_session_mount(m->session_, mountpoint.c_str()) != 0) {
      ready = Error(ErrorCode::kInternal,
                    "fusermount3 could not mount at " + mountpoint + " (its words are above)");
    }
    if (!ready.ok()) {
      fuse_session_destroy(m->session_);
      m->session_ = nullptr;
      return std::move(ready).error();
    }
  }
  // Non-blocking: an idle worker sleeps in poll() on /dev/fuse *and* the wake-up eventfd, so
  // Stop() reaches it; with several workers, the ones that lose the race for a request get
  // EAGAIN instead of blocking where Stop() cannot reach them.
  m->dev_fd_ = fuse_session_fd(m->session_);
  int fl = ::fcntl(m->dev_fd_, F_GETFL);
  if (fl < 0 || ::fcntl(m->dev_fd_, F_SETFL, fl | O_NONBLOCK) != 0) {
    int err = errno;
    m->DetachSession();
    return Error::FromErrno(err, "O_NONBLOCK on /dev/fuse");
  }
  m->fs_->AttachSession(m->session_);
  m->loop_ = std::thread([mp = m.get()] { mp->Serve(); });
  return m;
}

// Our own loop rather than fuse_session_loop{,_mt}: those can only be stopped by
// fuse_session_exit() (a plain flag the blocked read() never sees) plus fuse_session_unmount(),
// which closes /dev/fuse under the reading thread: the loop may then read or reply on whatever
// the descriptor number names next (another mount's /dev/fuse, a file), or serve a request after
// its PermFs is gone. Here the descriptor stays open and unread by anyone until every worker has
// returned.
void Mount::Work() {
  // libfuse allocates buf.mem (se->bufsize) on first use; flags 0 is libfuse's own "plain memory
  // buffer", which has no enumerator.
  fuse_buf buf{};  // NOLINT(bugprone-invalid-enum-default-initialization)
  pollfd fds[2] = {{dev_fd_, POLLIN, 0}, {wake_.get(), POLLIN, 0}};
  // Idle: poll, then read (two syscalls per request). Busy, i.e. within busy_poll_us of the last
  // request: reads that find nothing return at once (O_NONBLOCK), and the worker keeps trying
  // instead of sleeping. A sleeping worker costs each request two wake-ups (ours, then the
  // caller's, whose CPU went idle meanwhile), which on a VM cost more than the rest of the round
  // trip (docs/PERFORMANCE.md, "What one request costs").
  using Clock = std::chrono::steady_clock;
  const auto busy_poll = std::chrono::microseconds(fs_->options().busy_poll_us);
  Clock::time_point busy_until{};
  while (!stop_.load(std::memory_order_acquire)) {
    if (busy_poll.count() == 0 || Clock::now() >= busy_until) {
      fds[0].revents = fds[1].revents = 0;
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        AF_LOG_ERROR("FUSE loop for {}: poll: {}", mountpoint_, std::strerror(errno));
        break;
      }
      if (fds[1].revents != 0 || (fds[0].revents & POLLNVAL) != 0) break;
    }
    // Readable, or POLLERR (connection gone), or busy: the read returns the request, ENODEV, or
    // EAGAIN.
    int r = fuse_session_receive_buf(session_, &buf);
    if (r > 0) {
      fuse_session_process_buf(session_, &buf);
      if (busy_poll.count() != 0) busy_until = Clock::now() + busy_poll;
      continue;
    }
    if (r == -EAGAIN || r == -EINTR) continue;  // nothing yet, or another worker took it
    // 0: ENODEV, the connection is gone (unmounted from outside). Else a fatal error.
    if (r < 0) {
      AF_LOG_ERROR("FUSE loop for {}: reading /dev/fuse: {}", mountpoint_, std::strerror(-r));
    }
    break;
  }
  std::free(buf.mem);
  Stop();  // one worker ending (connection gone, fatal error) ends them all
}

void Mount::Stop() {
  stop_.store(true, std::memory_order_release);
  uint64_t one = 1;
  // eventfd counts: a second Stop() only adds; it never blocks below 2^64-1.
  ssize_t r = ::write(wake_.get(), &one, sizeof(one));
  (void)r;
}

void Mount::Serve() {
  int n = std::max(1, fs_->options().threads);
  std::vector<std::thread> extra;
  extra.reserve(static_cast<size_t>(n - 1));
  for (int i = 1; i < n; ++i) extra.emplace_back([this] { Work(); });
  Work();
  for (auto& t : extra) t.join();
  std::lock_guard lock(mu_);
  loop_done_ = true;
  cv_.notify_all();
}

void Mount::Wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return loop_done_; });
}

void Mount::Unmount() {
  std::lock_guard guard(unmount_mu_);
  if (session_ == nullptr) return;
  // 0. Accesses to `ask` paths waiting for a decision are denied (EACCES) now, and no new one is
  //    held: a stopping sandbox releases every waiter, and the broker's thread (which re-runs
  //    allowed ones) is gone before /dev/fuse closes.
  fs_->StopAsks();
  // 1. Notifications (SetPolicy, InvalidatePath on other threads) write to /dev/fuse: none may
  //    start now, and this waits for those in flight. The workers still serve meanwhile, so a
  //    notification waiting on a page lock held by a read in progress completes.
  fs_->AttachSession(nullptr);
  // 2. Stop serving. Each worker finishes and answers the request it holds, then returns. This
  //    waits on our handlers only, never on the kernel or on processes holding the mount open.
  Stop();
  loop_.join();
  // 3. Nothing reads or writes /dev/fuse any more. fuse_session_unmount closes it (ours was the
  //    only reference: the kernel aborts the connection, so requests still queued and all later
  //    ones fail instead of waiting for a daemon that is gone), then detaches the mount
  //    (umount2 MNT_DETACH as root) unless the connection was already gone.
  DetachSession();
}

void Mount::DetachSession() {
  fuse_session_unmount(session_);  // a direct mount: nothing (libfuse does not know the path)
  fuse_session_destroy(session_);  // closes /dev/fuse
  session_ = nullptr;
  dev_fd_ = -1;
  if (direct_) {
    // EINVAL: already gone (unmounted from outside).
    if (::umount2(mountpoint_.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
      AF_LOG_WARN("detaching {}: {}", mountpoint_, std::strerror(errno));
    }
    direct_ = false;
  }
}

Mount::~Mount() { Unmount(); }

}  // namespace agentfense::fs
