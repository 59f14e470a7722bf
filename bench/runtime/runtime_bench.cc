// Whole-system latency of the bwrap runtime, measured side by side in one run (root required):
//   start: BwrapSandbox::Start + first Exec("true") result   vs   raw `bwrap <same binds> sh -c
//   true` exec:  Exec(argv {"true"}) in a running sandbox          vs   raw fork/exec/wait of
//   /bin/true session: SessionExec("true")                             vs   raw fork/exec/wait of
//   /bin/true
//   system call: getpid/close/fstat/ioctl in a loop, unfiltered   vs   under the seccomp filter
// Prints p50/p99/mean in milliseconds (system calls: ns per call). Usage: runtime_bench AGENT_PATH
// [iterations]
#include <fcntl.h>
#include <grp.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/bwrap_plan.h"
#include "runtime/bwrap_sandbox.h"
#include "runtime/identity.h"
#include "runtime/seccomp_filter.h"

using namespace agentfense;
using namespace agentfense::runtime;
using Clock = std::chrono::steady_clock;

namespace {

struct Stats {
  double p50, p99, mean;
};

Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
  };
  return {at(0.5), at(0.99), sum / v.size()};
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void Row(const char* name, const Stats& s) {
  std::printf("| %-44s | %8.3f | %8.3f | %8.3f |\n", name, s.p50, s.p99, s.mean);
}

UniqueFd Memfd(const std::string& content) {
  UniqueFd fd(::memfd_create("bench", MFD_CLOEXEC));
  if (::write(fd.get(), content.data(), content.size()) < 0) std::abort();
  ::lseek(fd.get(), 0, SEEK_SET);
  return fd;
}

// bwrap with exactly the sandbox's arguments, but `sh -c true` instead of the agent.
double RawBwrapOnce(const SandboxSpec& spec, const BwrapPlan& plan) {
  std::vector<std::string> argv = plan.argv;
  auto dd = std::find(argv.begin(), argv.end(), "--");
  argv.erase(dd + 1, argv.end());
  argv.insert(argv.end(), {"/bin/sh", "-c", "true"});
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  auto seccomp = BuildSeccompProgramFd();
  std::vector<std::pair<int, UniqueFd>> fds;
  fds.emplace_back(kSeccompFd, std::move(*seccomp));
  for (const auto& [n, c] : plan.file_fds) fds.emplace_back(n, Memfd(c));
  auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    // Lift the sources above the targets first so that no dup2 clobbers a later source.
    std::vector<std::pair<int, int>> hi;
    for (auto& [n, fd] : fds) hi.emplace_back(::fcntl(fd.get(), F_DUPFD, 100), n);
    for (auto& [from, to] : hi) ::dup2(from, to);
    (void)!::setgroups(0, nullptr);
    (void)!::setresgid(spec.host_gid, spec.host_gid, spec.host_gid);
    (void)!::setresuid(spec.host_uid, spec.host_uid, spec.host_uid);
    char* env[] = {nullptr};
    ::execve(cargv[0], cargv.data(), env);
    ::_exit(127);
  }
  int st;
  ::waitpid(pid, &st, 0);
  double ms = Ms(Clock::now() - start);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::fprintf(stderr, "raw bwrap failed: status %d\n", st);
    std::exit(1);
  }
  return ms;
}

double RawTrueOnce() {
  auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    char* env[] = {nullptr};
    ::execve(argv[0], argv, env);
    ::_exit(127);
  }
  int st;
  ::waitpid(pid, &st, 0);
  return Ms(Clock::now() - start);
}

// Nanoseconds per system call of a getpid/close(-1)/fstat(-1)/ioctl(-1) mix, measured in a forked
// child (under the sandbox's seccomp filter when `filtered`), best of 5 runs of 400k calls.
double SyscallNs(bool filtered) {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  pid_t pid = ::fork();
  if (pid == 0) {
    double best = 1e9;
    if (!filtered || LoadSeccompFilterForThisThread().ok()) {
      for (int run = 0; run < 5; ++run) {
        auto t0 = Clock::now();
        for (int i = 0; i < 100000; ++i) {
          ::syscall(SYS_getpid);
          ::syscall(SYS_close, -1);
          ::syscall(SYS_fstat, -1, nullptr);
          ::syscall(SYS_ioctl, -1, 0x5401, nullptr);
        }
        best = std::min(
            best, std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / 400000);
      }
    }
    (void)!::write(fds[1], &best, sizeof(best));
    ::_exit(0);
  }
  ::close(fds[1]);
  double ns = 0;
  if (::read(fds[0], &ns, sizeof(ns)) != sizeof(ns)) ns = -1;
  ::close(fds[0]);
  ::waitpid(pid, nullptr, 0);
  return ns;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || ::geteuid() != 0) {
    std::fprintf(stderr, "usage (as root): %s AGENT_PATH [iterations]\n", argv[0]);
    return 2;
  }
  int n = argc > 2 ? std::atoi(argv[2]) : 100;
  char tmpl[] = "/tmp/af-bench-ws-XXXXXX";
  std::string ws = ::mkdtemp(tmpl);
  // A host identity of its own, leased as a supervisor leases one.
  auto lease = IdentityLease::Acquire(IdentityRange{}, kDefaultLeaseDir, 0, "runtime-bench");
  if (!lease.ok()) {
    std::fprintf(stderr, "%s\n", lease.error().ToString().c_str());
    return 1;
  }
  if (::chown(ws.c_str(), lease->uid(), lease->gid()) != 0) return 1;
  SandboxSpec spec;
  spec.host_uid = lease->uid();
  spec.host_gid = lease->gid();
  spec.workspace_dir = ws;
  spec.agent_path = argv[1];
  spec.limits.pids_max = 512;
  spec.limits.memory_bytes = 1ull << 30;

  std::vector<double> raw_bwrap, start, stop, raw_true, exec_argv, exec_shell, session;
  int starts = std::max(10, n / 4);
  for (int i = 0; i < starts; ++i) {
    spec.id = fmt::format("sb_{:016x}", 0xbe0000 + i);  // a sandbox id (base/ids.h)
    auto plan = BuildBwrapPlan(spec, ProbeHostLayout());
    raw_bwrap.push_back(RawBwrapOnce(spec, *plan));
    auto t0 = Clock::now();
    auto sb = BwrapSandbox::Start(spec);
    if (!sb.ok()) {
      std::fprintf(stderr, "%s\n", sb.error().ToString().c_str());
      return 1;
    }
    proto::Exec e;
    e.argv = {"/bin/true"};
    e.timeout_ms = 10000;
    e.output_cap = 1024;
    auto r = (*sb)->Exec(e);
    if (!r.ok() || r->exit_code != 0) return 1;
    start.push_back(Ms(Clock::now() - t0));
    auto t1 = Clock::now();
    (void)(*sb)->Stop();
    stop.push_back(Ms(Clock::now() - t1));
  }

  spec.id = "sb_00000000be00ffff";
  auto sb = BwrapSandbox::Start(spec);
  if (!sb.ok()) return 1;
  auto sid = (*sb)->OpenSession({});
  if (!sid.ok()) return 1;
  for (int i = 0; i < n; ++i) {
    raw_true.push_back(RawTrueOnce());
    proto::Exec e;
    e.argv = {"/bin/true"};
    e.timeout_ms = 10000;
    e.output_cap = 1024;
    auto t0 = Clock::now();
    if (!(*sb)->Exec(e).ok()) return 1;
    exec_argv.push_back(Ms(Clock::now() - t0));
    proto::Exec s;
    s.shell_command = "true";
    s.timeout_ms = 10000;
    s.output_cap = 1024;
    t0 = Clock::now();
    if (!(*sb)->Exec(s).ok()) return 1;
    exec_shell.push_back(Ms(Clock::now() - t0));
    proto::SessionExec se;
    se.session_id = *sid;
    se.command = "true";
    se.timeout_ms = 10000;
    se.output_cap = 1024;
    t0 = Clock::now();
    if (!(*sb)->SessionExec(se).ok()) return 1;
    session.push_back(Ms(Clock::now() - t0));
  }
  (void)(*sb)->Stop();
  std::filesystem::remove_all(ws);

  std::printf("bwrap runtime, %d sandbox starts, %d execs each (ms)\n\n", starts, n);
  std::printf("| %-44s | %8s | %8s | %8s |\n", "measurement", "p50", "p99", "mean");
  std::printf("|%s|%s|%s|%s|\n", std::string(46, '-').c_str(), std::string(10, '-').c_str(),
              std::string(10, '-').c_str(), std::string(10, '-').c_str());
  Row("raw bwrap (same binds) sh -c true", Summarize(raw_bwrap));
  Row("sandbox start + cgroup + first exec result", Summarize(start));
  Row("sandbox stop (kill, reap, rmdir cgroup)", Summarize(stop));
  Row("raw fork/exec/wait /bin/true", Summarize(raw_true));
  Row("exec argv /bin/true in running sandbox", Summarize(exec_argv));
  Row("exec sh -c true in running sandbox", Summarize(exec_shell));
  Row("session command `true` round trip", Summarize(session));
  const double plain = SyscallNs(false), filtered = SyscallNs(true);
  std::printf(
      "\nsystem call (getpid/close/fstat/ioctl mix): %.0f ns unfiltered, %.0f ns under the "
      "seccomp filter (+%.0f ns)\n",
      plain, filtered, filtered - plain);
  return 0;
}
