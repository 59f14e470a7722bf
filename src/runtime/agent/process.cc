// Process helpers of the agent: spawning with a clean fd table and environment, walking the
// process tree through /proc, killing trees.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "runtime/agent/agent.h"

namespace agentfense::runtime::agent {
namespace {

struct ProcInfo {
  pid_t ppid = 0;
  pid_t pgid = 0;
  pid_t sid = 0;
  uint64_t start = 0;
};

// Parses /proc/<pid>/stat. The comm field may contain spaces and ')' : fields are counted from
// the last ')'.
bool ReadStat(pid_t pid, ProcInfo& info) {
  char path[64];
  (void)std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  (void)std::fclose(f);  // read-only stream: nothing to flush
  buf[n] = '\0';
  char* p = std::strrchr(buf, ')');
  if (p == nullptr) return false;
  // After ")": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
  // cutime cstime priority nice num_threads itrealvalue starttime
  char state;
  int ppid, pgrp, session;
  unsigned long long start = 0;
  // Kernel-formatted numbers; the count of conversions is checked.
  // NOLINTNEXTLINE(bugprone-unchecked-string-to-number-conversion)
  int got = std::sscanf(p + 1,
                        " %c %d %d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d "
                        "%llu",
                        &state, &ppid, &pgrp, &session, &start);
  if (got != 5) return false;
  info.ppid = ppid;
  info.pgid = pgrp;
  info.sid = session;
  info.start = start;
  return true;
}

std::map<pid_t, ProcInfo> AllProcs() {
  std::map<pid_t, ProcInfo> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 0) continue;
    ProcInfo info;
    if (ReadStat(static_cast<pid_t>(pid), info)) out[static_cast<pid_t>(pid)] = info;
  }
  ::closedir(d);
  return out;
}

}  // namespace

std::vector<std::pair<pid_t, uint64_t>> Descendants(pid_t root) {
  auto procs = AllProcs();
  std::multimap<pid_t, pid_t> children;
  for (const auto& [pid, info] : procs) children.emplace(info.ppid, pid);
  std::vector<std::pair<pid_t, uint64_t>> out;
  std::vector<pid_t> stack{root};
  while (!stack.empty()) {
    pid_t p = stack.back();
    stack.pop_back();
    auto [b, e] = children.equal_range(p);
    for (auto it = b; it != e; ++it) {
      out.emplace_back(it->second, procs[it->second].start);
      stack.push_back(it->second);
    }
  }
  return out;
}

bool CatchesSignal(pid_t pid, int sig) {
  if (sig < 1 || sig > 64) return false;
  std::string path = "/proc/" + std::to_string(pid) + "/status";
  FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) return false;
  char line[256];
  bool caught = false;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, "SigCgt:", 7) != 0) continue;
    unsigned long long mask = std::strtoull(line + 7, nullptr, 16);
    caught = ((mask >> (sig - 1)) & 1) != 0;
    break;
  }
  (void)std::fclose(f);  // read-only stream: nothing to flush
  return caught;
}

void KillTree(pid_t root) {
  if (root <= 1) return;
  // Stop the tree first so that nothing forks between the walk and the kill, then kill. A fork
  // bomb re-spawning faster than we walk is contained by the pids cgroup, and SweepStrays / the
  // sandbox teardown catch anything that left the tree.
  for (int round = 0; round < 3; ++round) {
    ::kill(-root, SIGKILL);
    auto desc = Descendants(root);
    for (const auto& [pid, start] : desc) ::kill(pid, SIGSTOP);
    for (const auto& [pid, start] : Descendants(root)) ::kill(pid, SIGKILL);
    ::kill(root, SIGKILL);
    if (desc.empty()) break;
  }
}

void Agent::SweepStrays() {
  // Only as init of our own pid namespace is /proc the sandbox and nothing else. Run as a plain
  // process (tests, debugging) the same sweep would kill the host's processes.
  if (::getpid() != 1) return;
  std::set<pid_t> live;
  for (const auto& [id, job] : jobs_) {
    if (!job.exited) live.insert(job.pid);
  }
  for (const auto& [id, s] : sessions_) {
    if (!s.closed) live.insert(s.pid);
  }
  for (const auto& [id, p] : ptys_) {
    if (!p.exited) live.insert(p.pid);  // a terminal's session: its background jobs belong to it
  }
  pid_t self = ::getpid();
  for (const auto& [pid, info] : AllProcs()) {
    if (pid == self || info.sid == 0 || live.count(info.sid) != 0) continue;
    if (file_workers_.count(pid) != 0) continue;  // in the agent's own session, not a command's
    // Only processes in our pid namespace are listed (our /proc), and none of them is the host.
    ::kill(pid, SIGKILL);
  }
}

void KillSessionMembers(pid_t sid) {
  if (sid <= 1) return;
  // Two rounds: a member that forked between the listing and the kill is caught by the second.
  for (int round = 0; round < 2; ++round) {
    bool any = false;
    for (const auto& [pid, info] : AllProcs()) {
      if (info.sid == sid && pid != ::getpid()) {
        ::kill(pid, SIGKILL);
        any = true;
      }
    }
    if (!any) break;
  }
}

uint64_t OomKillCount() {
  for (const char* path :
       {"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"}) {
    FILE* f = std::fopen(path, "re");
    if (f == nullptr) continue;
    char line[256];
    uint64_t count = 0;
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      unsigned long long v;
      // A kernel-formatted counter; a line that does not match leaves it unset.
      // NOLINTNEXTLINE(bugprone-unchecked-string-to-number-conversion)
      if (std::sscanf(line, "oom_kill %llu", &v) == 1) count = v;
    }
    (void)std::fclose(f);  // read-only stream
    return count;
  }
  return 0;
}

std::string ResolveExecutable(const std::string& name, const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) return name;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = std::move(dir);
    candidate += '/';
    candidate += name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return "";
}

Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    const std::string& dir, int in_fd, int out_fd, int err_fd,
                    const std::vector<std::pair<int, int>>& extra, bool controlling_tty) {
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  cenv.reserve(env.size() + 1);
  for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  // The agent is single-threaded, so the child may use any call; it still sticks to plain syscalls.
  pid_t pid = ::fork();
  if (pid < 0) return Error::FromErrno(errno, "fork");
  if (pid == 0) {
    ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) (void)::signal(sig, SIG_DFL);  // EINVAL for 32/33 only
    // Move every source fd above the targets first so that dup2 never clobbers a later source.
    int fds[3] = {in_fd, out_fd, err_fd};
    int hi[3];
    for (int i = 0; i < 3; ++i) hi[i] = ::fcntl(fds[i], F_DUPFD, 100);
    std::vector<std::pair<int, int>> ex;
    ex.reserve(extra.size());
    for (const auto& [from, to] : extra) ex.emplace_back(::fcntl(from, F_DUPFD, 100), to);
    for (int i = 0; i < 3; ++i) ::dup2(hi[i], i);
    for (const auto& [from, to] : ex) ::dup2(from, to);
    // A session leader without a controlling terminal acquires this one (it is the slave of a
    // terminal the agent allocated in the sandbox's own devpts). Without it job control fails.
    if (controlling_tty && ::ioctl(0, TIOCSCTTY, 0) != 0) {
      const char msg[] = "agentfense-agent: cannot acquire the terminal\n";
      (void)!::write(2, msg, sizeof(msg) - 1);
      ::_exit(126);
    }
    // Close everything else. Extra fds are few and numbered just above 2 by convention (60, 61):
    // close the gaps around them.
    int lo = 3;
    std::vector<int> keep;
    keep.reserve(extra.size());
    for (const auto& [from, to] : extra) keep.push_back(to);
    std::sort(keep.begin(), keep.end());
    for (int k : keep) {
      if (k > lo) ::syscall(SYS_close_range, lo, k - 1, 0);
      lo = k + 1;
    }
    ::syscall(SYS_close_range, lo, ~0U, 0);
    // Make commands, not the agent, the OOM killer's choice in the sandbox's memory cgroup.
    // Raising one's own score needs no privilege, but /proc/self of a non-dumpable process (we
    // inherited the agent's flag) belongs to root: become dumpable first, as exec would anyway.
    // Only now that every fd of the agent is closed: a dumpable process's fds can be opened
    // through /proc by other processes of the same uid.
    ::prctl(PR_SET_DUMPABLE, 1);
    int adj = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) {
      (void)!::write(adj, "500", 3);
      ::close(adj);
    }
    if (::chdir(dir.c_str()) != 0) {
      const char msg[] = "agentfense-agent: cannot enter the working directory\n";
      (void)!::write(2, msg, sizeof(msg) - 1);
      ::_exit(126);
    }
    ::execve(cargv[0], cargv.data(), cenv.data());
    int err = errno;
    const char* what = err == ENOENT ? "agentfense-agent: command not found\n"
                                     : "agentfense-agent: cannot execute command\n";
    (void)!::write(2, what, std::strlen(what));
    ::_exit(err == ENOENT ? 127 : 126);
  }
  return pid;
}

}  // namespace agentfense::runtime::agent
