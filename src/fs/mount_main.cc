// agentfense-mount: serves one PermFs mount in the foreground, for tests, benchmarks and inspection.
//
//   agentfense-mount [--preset NAME] [--rule PATTERN=LEVEL[@PRIORITY]]... [--threads N]
//                    [--fd-cache N] [--no-xattr] [--audit] [--background]
//                    [--serve UID:GID] [--daemon-open]
//                    [--delta DIR [--delta-quota-bytes N] [--delta-quota-inodes N]]
//                    SOURCE MOUNTPOINT
//   agentfense-mount --delta DIR (--changes | --commit | --discard) [policy] SOURCE
//
// With --delta every write lands in DIR (docs/DELTA.md). The second form works on a delta whose
// mount is not running (inspection, recovery, benchmarks): it lists, commits (with the policy
// given, re-checked per path) or discards the pending changes and prints them as text.
//
// Process model: the process you start is a small watcher; the filesystem runs in a forked worker.
// SIGINT/SIGTERM/SIGHUP are forwarded to the worker, which unmounts cleanly. If the worker dies any
// other way (crash, SIGKILL) the watcher lazily unmounts the dead mount so no "Transport endpoint
// is not connected" directory is left behind. A stale mount from an earlier run is removed first.
// --background returns once the mount is up (what bench/run_fs_matrix.sh expects).
//
// --serve UID:GID (root only) makes the mount serve that identity alone, as a sandbox's mount
// does (the kernel refuses everyone else, root included); opens are then decided by the kernel
// (FsOptions::kernel_open) unless --daemon-open keeps every open a request.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "base/unique_fd.h"
#include "fs/mount.h"
#include "policy/policy.h"

namespace {

using agentfense::Result;
namespace fs = agentfense::fs;
namespace policy = agentfense::policy;

struct Args {
  std::vector<std::string> presets;
  std::vector<std::string> rules;
  std::string source, mountpoint;
  fs::FsOptions options;
  bool audit = false;
  bool background = false;
  std::optional<fs::MountAccess> serve;  // --serve UID:GID
  std::string log_level = "warn";
  std::string offline_op;  // "changes" | "commit" | "discard"
};

// The whole of `text` as a decimal number in [lo, hi]; false on a sign, trailing junk or overflow
// (atoi/strtoull would turn "abc" into 0 and "-1" into 2^64-1).
bool ParseNumber(const char* text, uint64_t lo, uint64_t hi, uint64_t* out) {
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, *out);
  return ec == std::errc() && ptr == end && ptr != text && *out >= lo && *out <= hi;
}

int Usage(const char* msg) {
  if (msg != nullptr) (void)std::fprintf(stderr, "agentfense-mount: %s\n", msg);
  (void)std::fprintf(
      stderr,
      "usage: agentfense-mount [--preset NAME] [--rule PATTERN=LEVEL[@PRIORITY]]...\n"
      "         [--threads N] [--busy-poll US] [--fd-cache N] [--no-xattr] [--audit]\n"
      "         [--background]\n"
      "         [--serve UID:GID] [--daemon-open]\n"
      "         [--log-level LEVEL]\n"
      "         [--delta DIR [--delta-quota-bytes N] [--delta-quota-inodes N]]\n"
      "         SOURCE MOUNTPOINT\n"
      "       agentfense-mount --delta DIR (--changes | --discard | --commit POLICY) SOURCE\n");
  return 2;
}

Result<policy::Policy> BuildPolicy(const Args& a) {
  std::vector<policy::Rule> rules;
  for (const auto& name : a.presets) {
    AF_ASSIGN_OR_RETURN(auto pr, policy::PresetRules(name));
    rules.insert(rules.end(), pr.begin(), pr.end());
  }
  for (const auto& spec : a.rules) {
    AF_ASSIGN_OR_RETURN(auto r, policy::ParseRuleSpec(spec));
    rules.push_back(std::move(r));
  }
  return policy::Policy::Compile(std::move(rules));
}

void WriteByte(int fd) {
  if (fd < 0) return;
  char c = '1';
  ssize_t r = ::write(fd, &c, 1);
  (void)r;
}

// The worker: mounts, reports readiness, serves until a forwarded signal, unmounts.
int RunWorker(const Args& a, policy::Policy pol, int ready_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  (void)agentfense::InitLogging(a.log_level);
  fs::FsOptions options = a.options;
  if (a.audit) {
    options.audit = [](const fs::AuditEvent& ev) {
      (void)std::fprintf(
          stderr, "{\"denied\":\"%.*s\",\"path\":\"%s\",\"rule\":%d,\"pid\":%d,\"errno\":%d}\n",
          static_cast<int>(ev.op.size()), ev.op.data(), ev.path.c_str(), ev.rule,
          static_cast<int>(ev.pid), ev.error);
    };
  }
  auto m = fs::Mount::Start(a.source, a.mountpoint, std::move(pol), options,
                            a.serve ? *a.serve : fs::MountAccess::Self());
  if (!m.ok()) {
    (void)std::fprintf(stderr, "agentfense-mount: %s\n", m.error().ToString().c_str());
    return 1;
  }
  WriteByte(ready_fd);
  if (ready_fd >= 0) ::close(ready_fd);
  // An unmount from outside (fusermount3 -u, umount) ends the session: turn that into the same
  // clean shutdown as a signal.
  fs::Mount* mount = m->get();
  std::thread waiter([mount] {
    mount->Wait();
    ::kill(::getpid(), SIGTERM);
  });
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  int sig = 0;
  sigwait(&set, &sig);
  (*m)->Unmount();
  waiter.join();
  return 0;
}

int RunOffline(const Args& a) {
  auto store = fs::DeltaStore::Open(a.options.delta_dir, 0, 0);
  if (!store.ok()) {
    (void)std::fprintf(stderr, "agentfense-mount: %s\n", store.error().ToString().c_str());
    return 1;
  }
  agentfense::UniqueFd root(::open(a.source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    std::perror("agentfense-mount: source");
    return 1;
  }
  if (a.offline_op == "changes") {
    auto set = (*store)->Changes(root.get());
    if (!set.ok()) return 1;
    for (const auto& c : set->changes) {
      std::printf("%-8s %10lld %s%s\n", std::string(fs::ChangeKindName(c.kind)).c_str(),
                  static_cast<long long>(c.size), c.path.c_str(), c.is_dir ? "/" : "");
    }
    std::printf("delta: %lld bytes, %lld inodes\n", static_cast<long long>(set->delta_bytes),
                static_cast<long long>(set->delta_inodes));
    return 0;
  }
  if (a.offline_op == "discard") {
    auto n = (*store)->Discard(root.get());
    if (!n.ok()) return 1;
    std::printf("discarded %lld\n", static_cast<long long>(*n));
    return 0;
  }
  auto pol = BuildPolicy(a);
  if (!pol.ok()) {
    (void)std::fprintf(stderr, "agentfense-mount: bad policy: %s\n",
                       pol.error().ToString().c_str());
    return 2;
  }
  auto report = (*store)->Commit(root.get(), [&](const std::string& path, bool is_dir) {
    return pol->Decide(path, is_dir).level;
  });
  std::printf("applied %zu, errors %zu\n", report.applied.size(), report.errors.size());
  for (const auto& e : report.errors) std::printf("error %s: %s\n", e.path.c_str(), e.message.c_str());
  return report.errors.empty() ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (s == "--preset") {
      const char* v = next();
      if (!v) return Usage("--preset needs a value");
      a.presets.push_back(v);
    } else if (s == "--rule") {
      const char* v = next();
      if (!v) return Usage("--rule needs a value");
      a.rules.push_back(v);
    } else if (s == "--threads") {
      const char* v = next();
      uint64_t n = 0;
      if (!v || !ParseNumber(v, 1, 64, &n)) return Usage("--threads needs a number from 1 to 64");
      a.options.threads = static_cast<int>(n);
    } else if (s == "--busy-poll") {
      const char* v = next();
      uint64_t n = 0;
      if (!v || !ParseNumber(v, 0, fs::kMaxBusyPollUs, &n)) {
        return Usage("--busy-poll needs a number of microseconds from 0 to 10000");
      }
      a.options.busy_poll_us = static_cast<int>(n);
    } else if (s == "--fd-cache") {
      const char* v = next();
      uint64_t n = 0;
      if (!v || !ParseNumber(v, 0, SIZE_MAX, &n)) return Usage("--fd-cache needs a number");
      a.options.fd_cache_capacity = static_cast<size_t>(n);
    } else if (s == "--log-level") {
      const char* v = next();
      if (!v) return Usage("--log-level needs a value");
      a.log_level = v;
    } else if (s == "--delta") {
      const char* v = next();
      if (!v) return Usage("--delta needs a directory");
      a.options.delta_dir = v;
    } else if (s == "--delta-quota-bytes") {
      const char* v = next();
      if (!v || !ParseNumber(v, 0, UINT64_MAX, &a.options.delta_quota_bytes)) {
        return Usage("--delta-quota-bytes needs a number");
      }
    } else if (s == "--delta-quota-inodes") {
      const char* v = next();
      if (!v || !ParseNumber(v, 0, UINT64_MAX, &a.options.delta_quota_inodes)) {
        return Usage("--delta-quota-inodes needs a number");
      }
    } else if (s == "--changes" || s == "--commit" || s == "--discard") {
      a.offline_op = s.substr(2);
    } else if (s == "--serve") {
      const char* v = next();
      const char* colon = v != nullptr ? std::strchr(v, ':') : nullptr;
      uint64_t uid = 0, gid = 0;
      if (colon == nullptr || !ParseNumber(std::string(v, colon).c_str(), 1, UINT32_MAX - 1, &uid) ||
          !ParseNumber(colon + 1, 1, UINT32_MAX - 1, &gid)) {
        return Usage("--serve needs UID:GID (not root)");
      }
      fs::MountAccess access;
      access.uid = static_cast<uid_t>(uid);
      access.gid = static_cast<gid_t>(gid);
      a.serve = access;
    } else if (s == "--daemon-open") {
      a.options.kernel_open = false;
    } else if (s == "--no-xattr") {
      a.options.xattrs = false;
    } else if (s == "--audit") {
      a.audit = true;
    } else if (s == "--background") {
      a.background = true;
    } else if (s == "-h" || s == "--help") {
      Usage(nullptr);
      return 0;
    } else if (!s.empty() && s[0] == '-') {
      return Usage(("unknown option " + s).c_str());
    } else {
      pos.push_back(s);
    }
  }
  if (!a.offline_op.empty()) {
    if (a.options.delta_dir.empty()) return Usage("--changes/--commit/--discard need --delta DIR");
    if (pos.size() != 1) return Usage("need SOURCE");
    a.source = pos[0];
    if (a.offline_op == "commit" && a.presets.empty() && a.rules.empty()) {
      return Usage("--commit needs the policy (--preset NAME or --rule ...)");
    }
    return RunOffline(a);
  }
  if (pos.size() != 2) return Usage("need SOURCE and MOUNTPOINT");
  a.source = pos[0];
  a.mountpoint = pos[1];
  if (a.presets.empty() && a.rules.empty()) return Usage("give --preset NAME or --rule ...");
  auto pol = BuildPolicy(a);
  if (!pol.ok()) {
    (void)std::fprintf(stderr, "agentfense-mount: bad policy: %s\n",
                       pol.error().ToString().c_str());
    return 2;
  }
  char real[PATH_MAX];
  if (::realpath(a.mountpoint.c_str(), real) == nullptr) {
    // A dead FUSE mount fails realpath with ENOTCONN; clean it with the path as given.
    (void)fs::CleanupStaleMount(a.mountpoint);
    if (::realpath(a.mountpoint.c_str(), real) == nullptr) {
      std::perror("agentfense-mount: mountpoint");
      return 1;
    }
  }
  a.mountpoint = real;
  if (auto st = fs::CleanupStaleMount(a.mountpoint); !st.ok()) {
    (void)std::fprintf(stderr, "agentfense-mount: %s\n", st.error().ToString().c_str());
    return 1;
  }
  if (fs::IsFuseMountPoint(a.mountpoint)) {
    (void)std::fprintf(stderr, "agentfense-mount: %s is already a live FUSE mount\n",
                       a.mountpoint.c_str());
    return 1;
  }

  int ready_w = -1;
  if (a.background) {
    auto pipe = agentfense::MakePipe();
    if (!pipe.ok()) return 1;
    pid_t pid = ::fork();
    if (pid < 0) return 1;
    if (pid > 0) {
      pipe->second.Reset();
      char c;
      ssize_t r = ::read(pipe->first.get(), &c, 1);
      return r == 1 ? 0 : 1;
    }
    pipe->first.Reset();
    ::setsid();
    ready_w = pipe->second.Release();
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, nullptr);  // inherited by the worker and all its threads

  pid_t worker = ::fork();
  if (worker < 0) return 1;
  if (worker == 0) {
    std::_Exit(RunWorker(a, std::move(*pol), ready_w));
  }
  if (ready_w >= 0) ::close(ready_w);
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&set, &info);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      ::kill(worker, sig);
      continue;
    }
    int status = 0;
    pid_t r = ::waitpid(worker, &status, WNOHANG);
    if (r != worker) continue;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (fs::IsFuseMountPoint(a.mountpoint)) {
      // The worker died with the mount still there: detach it now (lazy unmount on crash).
      ::umount2(a.mountpoint.c_str(), MNT_DETACH);
      if (clean) {
        (void)std::fprintf(stderr, "agentfense-mount: mount was still present; detached\n");
      }
    }
    if (!clean) {
      (void)std::fprintf(stderr, "agentfense-mount: filesystem worker %s %d\n",
                         WIFSIGNALED(status) ? "killed by signal" : "exited with",
                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      return 1;
    }
    return 0;
  }
}
