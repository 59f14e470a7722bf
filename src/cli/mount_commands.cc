#include "cli/mount_commands.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "base/unique_fd.h"
#include "cli/exit_codes.h"
#include "fs/mount.h"

namespace agentfense::cli {
namespace {

int Fail(const Error& error, std::ostream& err) {
  err << "agentfense: error: " << error.ToString() << "\n";
  return ExitCodeFor(error);
}

Result<std::string> ExistingDir(const std::string& path, const std::string& what) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    return Error(ErrorCode::kInvalidArgument, what + " " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kInvalidArgument, what + " " + path + " is not a directory");
  }
  return std::string(resolved);
}

struct Validated {
  std::string source, mountpoint, delta_dir;
  std::optional<policy::Policy> policy;  // always set once validated
};

Result<Validated> Validate(const MountOptions& o) {
  if (o.threads < 1 || o.threads > 64) {
    return Error(ErrorCode::kInvalidArgument, "--threads must be between 1 and 64");
  }
  if (o.busy_poll_us && (*o.busy_poll_us < 0 || *o.busy_poll_us > fs::kMaxBusyPollUs)) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("--busy-poll must be between 0 and {} microseconds",
                             fs::kMaxBusyPollUs));
  }
  Validated v;
  AF_ASSIGN_OR_RETURN(v.source, ExistingDir(o.source, "SOURCE"));
  // A dead mount from an earlier crash reads as ENOTCONN: remove it before checking.
  (void)fs::CleanupStaleMount(o.mountpoint);
  AF_ASSIGN_OR_RETURN(v.mountpoint, ExistingDir(o.mountpoint, "MOUNTPOINT"));
  if (v.mountpoint == v.source || v.mountpoint.rfind(v.source + "/", 0) == 0) {
    return Error(ErrorCode::kInvalidArgument, "MOUNTPOINT must not be inside SOURCE");
  }
  if (fs::IsFuseMountPoint(v.mountpoint)) {
    return Error(ErrorCode::kFailedPrecondition, v.mountpoint + " is already a FUSE mount");
  }
  if (!o.delta_dir.empty()) {
    // Created when missing. Never inside SOURCE (the mount would show its own delta) nor under
    // MOUNTPOINT (it would hide beneath the mount).
    std::error_code ec;
    std::string planned = std::filesystem::weakly_canonical(o.delta_dir, ec).string();
    for (const std::string* root : {&v.source, &v.mountpoint}) {
      if (!ec && (planned == *root || planned.rfind(*root + "/", 0) == 0)) {
        return Error(ErrorCode::kInvalidArgument, "--delta " + o.delta_dir + " is inside " + *root);
      }
    }
    if (::mkdir(o.delta_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error(ErrorCode::kInvalidArgument,
                   "--delta " + o.delta_dir + ": " + std::strerror(errno));
    }
    AF_ASSIGN_OR_RETURN(v.delta_dir, ExistingDir(o.delta_dir, "--delta"));
    for (const std::string* root : {&v.source, &v.mountpoint}) {
      if (v.delta_dir == *root || v.delta_dir.rfind(*root + "/", 0) == 0) {
        return Error(ErrorCode::kInvalidArgument, "--delta " + o.delta_dir + " is inside " + *root);
      }
    }
  }
  AF_ASSIGN_OR_RETURN(auto rules, CollectRules(o.sources));
  AF_ASSIGN_OR_RETURN(auto compiled, CompileSourced(rules));
  v.policy.emplace(std::move(compiled));
  return v;
}

// Serves until SIGINT/SIGTERM/SIGHUP or an external umount. The signals are blocked before the
// mount starts so that the FUSE threads inherit the mask and only this thread takes them.
int Serve(Validated v, const MountOptions& o, int ready_fd, std::ostream& err) {
  // Validate() always sets it; checked here because the type cannot say so.
  if (!v.policy) return Fail(Error(ErrorCode::kInternal, "mount: no policy"), err);
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  fs::FsOptions options;
  options.threads = o.threads;
  if (o.busy_poll_us) options.busy_poll_us = *o.busy_poll_us;
  options.delta_dir = v.delta_dir;
  fs::MountAccess access = fs::MountAccess::Self();
  access.everyone = o.allow_other;
  auto mount = fs::Mount::Start(v.source, v.mountpoint, std::move(*v.policy), options, access);
  if (!mount.ok()) {
    std::string line = "error: " + mount.error().ToString() + "\n";
    if (ready_fd >= 0) (void)!::write(ready_fd, line.data(), line.size());
    return Fail(mount.error(), err);
  }
  if (ready_fd >= 0) {
    (void)!::write(ready_fd, "ok\n", 3);
    ::close(ready_fd);
  } else {
    err << "agentfense: " << v.source << " mounted at " << v.mountpoint
        << " (Ctrl-C or `agentfense umount " << v.mountpoint << "` ends it)\n";
    err.flush();
  }
  std::atomic<bool> ended{false};
  std::thread waiter([&] {
    (*mount)->Wait();
    ended.store(true);
  });
  timespec tick{0, 200 * 1000 * 1000};
  while (!ended.load()) {
    if (::sigtimedwait(&set, nullptr, &tick) > 0) break;
  }
  (*mount)->Unmount();
  waiter.join();
  return kExitOk;
}

}  // namespace

int RunMount(const MountOptions& options, std::ostream& out, std::ostream& err) {
  auto v = Validate(options);
  if (!v.ok()) return Fail(v.error(), err);
  if (!options.background) {
    return Serve(std::move(*v), options, -1, err);
  }

  // -d: a detached child serves; we return once it reports the mount up (or its error).
  auto pipe = MakePipe();
  if (!pipe.ok()) return Fail(pipe.error(), err);
  auto& [r, w] = *pipe;
  out.flush();
  err.flush();
  pid_t pid = ::fork();
  if (pid < 0) return Fail(Error::FromErrno(errno, "fork"), err);
  if (pid == 0) {
    r.Reset();
    ::setsid();
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    std::ostringstream ignored;
    ::_exit(Serve(std::move(*v), options, w.Release(), ignored));
  }
  w.Reset();
  std::string line;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(r.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
    if (line.find('\n') != std::string::npos) break;
  }
  if (line.rfind("ok", 0) == 0) {
    out << "mounted " << options.source << " at " << options.mountpoint << " (pid " << pid << ")\n";
    return kExitOk;
  }
  ::waitpid(pid, nullptr, WNOHANG);
  if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
  err << "agentfense: " << (line.empty() ? "error: the mount process exited" : line) << "\n";
  return kExitFailure;
}

int RunUmount(const std::string& mountpoint, std::ostream& out, std::ostream& err) {
  char resolved[PATH_MAX];
  std::string mp = ::realpath(mountpoint.c_str(), resolved) != nullptr ? resolved : mountpoint;
  if (!fs::IsFuseMountPoint(mp)) {
    err << "agentfense: error: " << mountpoint << " is not an agentfense (FUSE) mount\n";
    return kExitUsage;
  }
  Status st = fs::CleanupStaleMount(mp, /*force=*/true);
  if (!st.ok()) return Fail(st.error(), err);
  out << "unmounted " << mp << "\n";
  return kExitOk;
}

}  // namespace agentfense::cli
