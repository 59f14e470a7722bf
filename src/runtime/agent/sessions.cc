// Persistent shell sessions.
//
// A session is one long-lived shell (bash when present, else sh) running a tiny driver loop. The
// shell's stdin is /dev/null; its stdout and stderr are two pipes the agent reads for as long as
// the session lives. Two more pipes, private to the driver, carry control:
//   fd 60 (agent → shell): the next command, terminated by NUL (bash) or as one escaped line
//                          (sh);
//   fd 61 (shell → agent): '+' when the command starts, then its exit status as decimal digits +
//                          NUL.
// (With sh the fds are 8 and 9: dash only parses single-digit fds in redirections.)
// The driver evaluates the command in the shell itself (so cd, export, functions, aliases and
// background jobs persist) with fds 60 and 61 closed for the duration (`eval ... 60<&- 61>&-`):
// bash keeps its saved copies close-on-exec, so no program the command runs inherits them, and
// the command's stdin is /dev/null, so a program reading stdin gets EOF, never the command stream.
//
// Why the results cannot be confused: there are no markers in the output. Output bytes only ever
// travel on the stdout/stderr pipes and are attributed by time: when the status arrives, the
// foreground command has finished, so everything it wrote is already in (or read from) the pipes;
// the agent drains both before it sends Exit. Nothing a command prints can end a command early or
// change an exit code. What remains is deliberate tampering by shell code running inside the very
// same shell (redefining `printf`, writing to the driver's saved fd copies): it can only falsify
// that session's own results, which the same principal controls anyway, and the agent parses the
// status pipe strictly (digits + NUL, bounded) so it cannot hurt the agent or other sessions.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "runtime/agent/agent.h"

namespace agentfense::runtime::agent {
namespace {

constexpr size_t kMaxSessions = 64;
constexpr size_t kMaxQueued = 64;
constexpr size_t kMaxSessionCommand = 256 * 1024;

// The signal the agent sends the shell to stop the running command line (timeout or Cancel).
constexpr int kStopSignal = SIGUSR1;
// While a stopped command unwinds, the agent re-sends the signal and kills whatever the command
// started since, this often, until the shell reports (or hard_deadline closes the session).
constexpr auto kStopSweep = std::chrono::milliseconds(20);
constexpr auto kStopGrace = std::chrono::milliseconds(2000);

// Both drivers ignore the stop signal while they wait for or read the next command (dash's `read`
// would fail on a trapped signal and end the loop) and arm it just before running one, then tell
// the agent so with a '+' on the status pipe: from then on, a shell that does not catch the
// signal was made not to by the command itself. The status goes out before the signal is ignored
// again, so the agent, which reads the status pipe before it checks, never mistakes the driver's
// own quiet phase for tampering.
//
// bash: the command runs in a `source`d one-line file (a here-string on fd 62, read whole before
// anything runs), not in a function, so `declare`/`typeset` keep making globals. The stop: the
// USR1 trap sets a flag and installs a DEBUG trap, which runs before every next simple command
// and (with functrace) inside every function, and returns — from the innermost function, then from
// each caller in turn, then from the `source` — so nothing more of the command line runs. (Only
// then: a DEBUG trap costs ~50 µs per simple command.) Everything is re-armed before each
// command, so a command that disarms it (`set +T`, its own USR1 trap) only affects itself.
const char kBashDriver[] =
    "shopt -s expand_aliases\n"
    "builtin trap '' USR1\n"
    "while IFS= read -r -d '' __af_cmd <&60; do\n"
    "  __af_stop=\n"
    "  builtin set -o functrace\n"
    "  builtin trap '__af_stop=1; builtin trap \"[[ \\${#BASH_SOURCE[@]} -eq 0 ]] || return 137\" "
    "DEBUG' USR1\n"
    "  builtin printf + >&61\n"
    "  builtin source /dev/fd/62 62<<<'eval \"$__af_cmd\" 60<&- 61>&- 62<&- </dev/null'\n"
    "  builtin printf '%d\\0' \"$?\" >&61\n"
    "  builtin trap '' USR1\n"
    "  [[ -z $__af_stop ]] || builtin trap - DEBUG\n"
    "done\n";

// POSIX sh has no `read -d`: the command comes as one line in which the agent wrote each
// backslash as \\ and each newline as \n, decoded by printf %b (the line is consumed whole by the
// builtin `read` even if the decoding subshell is killed by a stop, and a command whose decoding
// did not finish is not run). dash only parses single-digit fds in redirections, so the sh driver
// uses 8 and 9 (a command's own use of fds 8/9 does not survive past the command there).
// sh has no DEBUG trap: the command runs in a function (sh has no `declare`: its variables stay
// global) and the USR1 trap returns from it, ending every list, loop and group of the command line.
// `__af_in` (local to that function) keeps a signal that arrives between commands from returning
// out of the driver loop.
const char kShDriver[] =
    "__af_run() { local __af_in=1; [ -z \"$__af_stop\" ] || return 137\n"
    "  eval \"$__af_cmd\" 8<&- 9>&- </dev/null; }\n"
    "trap '' USR1\n"
    "while IFS= read -r __af_line <&8; do\n"
    "  __af_stop=\n"
    "  if __af_cmd=$(printf '%b' \"$__af_line\"); then\n"
    "    trap '__af_stop=1; if [ -n \"${__af_in-}\" ]; then return 137; fi' USR1\n"
    "    printf + >&9\n"
    "    __af_run\n"
    "    __af_st=$?\n"
    "  else\n"
    "    __af_st=137\n"
    "  fi\n"
    "  printf '%d\\0' \"$__af_st\" >&9\n"
    "  trap '' USR1\n"
    "done\n";

void SetNonBlock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

void Agent::OpenSession(uint64_t conn_id, uint64_t request_id, const proto::SessionOpen& req) {
  size_t open = std::count_if(sessions_.begin(), sessions_.end(),
                              [](const auto& kv) { return !kv.second.closed; });
  if (open >= kMaxSessions) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kResourceExhausted, "too many sessions in this sandbox"));
  }
  std::string shell = req.shell;
  if (shell.empty()) shell = has_bash_ ? "/bin/bash" : "/bin/sh";
  std::string base = shell.substr(shell.rfind('/') + 1);
  bool bash = base == "bash";
  // The drivers are shell code: only POSIX shells can run them.
  if (shell[0] != '/' || (base != "bash" && base != "sh" && base != "dash" && base != "ash")) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kInvalidArgument,
                           "session shell must be an absolute path to bash, sh, dash or ash"));
  }
  if (::access(shell.c_str(), X_OK) != 0) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kNotFound, "session shell not found: " + shell));
  }
  auto workdir = Workdir(req.workdir);
  if (!workdir.ok()) return SendError(conn_id, request_id, workdir.error());
  const std::string& dir = *workdir;
  std::vector<std::string> env = BaseEnv();
  std::erase_if(env, [](const std::string& e) { return e.rfind("SHELL=", 0) == 0; });
  env.push_back("SHELL=" + shell);
  for (const auto& kv : req.env) {
    const std::string prefix = kv.first + "=";
    std::erase_if(env,
                  [&](const std::string& e) { return e.compare(0, prefix.size(), prefix) == 0; });
    env.push_back(prefix + kv.second);
  }
  auto cmd = MakePipe();
  auto status = MakePipe();
  auto out = MakePipe();
  auto err = MakePipe();
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!cmd.ok() || !status.ok() || !out.ok() || !err.ok() || !devnull) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kResourceExhausted, "cannot create pipes"));
  }
  std::vector<std::string> argv;
  if (bash) {
    argv = {shell, "--norc", "--noprofile", "-c", kBashDriver, "agentfense-session"};
  } else {
    argv = {shell, "-c", kShDriver, "agentfense-session"};
  }
  auto pid = Spawn(argv, env, dir, devnull.get(), out->second.get(), err->second.get(),
                   {{cmd->first.get(), bash ? 60 : 8}, {status->second.get(), bash ? 61 : 9}});
  if (!pid.ok()) return SendError(conn_id, request_id, pid.error());
  Session s;
  s.id = next_session_id_++;
  s.pid = *pid;
  s.cmd_w = std::move(cmd->second);
  s.status_r = std::move(status->first);
  s.out = std::move(out->first);
  s.err = std::move(err->first);
  SetNonBlock(s.cmd_w.get());
  SetNonBlock(s.status_r.get());
  SetNonBlock(s.out.get());
  SetNonBlock(s.err.get());
  s.bash = bash;
  uint64_t id = s.id;
  sessions_.emplace(id, std::move(s));
  Send(conn_id, proto::Encode(request_id, proto::SessionOpened{id}));
}

void Agent::SessionExec(uint64_t conn_id, uint64_t request_id, proto::SessionExec req) {
  auto it = sessions_.find(req.session_id);
  if (it == sessions_.end()) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kNotFound, "no session " + std::to_string(req.session_id)));
  }
  Session& s = it->second;
  if (s.closed) {
    return SendError(
        conn_id, request_id,
        Error(ErrorCode::kFailedPrecondition, "session " + std::to_string(s.id) +
                                                  " is closed: its shell exited (status " +
                                                  std::to_string(s.shell_status) + ")"));
  }
  if (req.command.find('\0') != std::string::npos || req.command.size() > kMaxSessionCommand) {
    return SendError(
        conn_id, request_id,
        Error(ErrorCode::kInvalidArgument, "session command contains NUL or exceeds 256 KiB"));
  }
  if (s.queue.size() >= kMaxQueued) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kResourceExhausted, "too many commands queued on session"));
  }
  s.queue.push_back({conn_id, request_id, std::move(req)});
  if (!s.busy) StartNextSessionCommand(s);
}

void Agent::StartNextSessionCommand(Session& s) {
  if (s.busy || s.closed || s.queue.empty()) return;
  Session::Pending p = std::move(s.queue.front());
  s.queue.pop_front();
  // Whatever background jobs printed while no command ran belongs to no command.
  PumpSessionOutput(s, 0, true);
  PumpSessionOutput(s, 1, true);
  s.busy = true;
  s.capture = Capture{p.conn_id, p.request_id, p.req.output_cap, {0, 0}, false};
  s.start = Clock::now();
  s.timed_out = false;
  s.deadline.reset();
  s.hard_deadline.reset();
  if (p.req.timeout_ms > 0) s.deadline = s.start + std::chrono::milliseconds(p.req.timeout_ms);
  auto before = Descendants(s.pid);
  s.before = std::set<std::pair<pid_t, uint64_t>>(before.begin(), before.end());
  s.oom_before = OomKillCount();
  s.running = false;
  ++s.seq;
  if (s.bash) {
    s.cmd_buf = p.req.command;
    s.cmd_buf.push_back('\0');
  } else {
    s.cmd_buf.clear();
    for (char c : p.req.command) {
      if (c == '\\') {
        s.cmd_buf += "\\\\";
      } else if (c == '\n') {
        s.cmd_buf += "\\n";
      } else {
        s.cmd_buf.push_back(c);
      }
    }
    s.cmd_buf.push_back('\n');
  }
  s.cmd_off = 0;
  WriteSessionCommand(s);
}

void Agent::WriteSessionCommand(Session& s) {
  while (s.cmd_off < s.cmd_buf.size()) {
    ssize_t n = ::write(s.cmd_w.get(), s.cmd_buf.data() + s.cmd_off, s.cmd_buf.size() - s.cmd_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // EAGAIN: the poll loop resumes; EPIPE: the shell died, reaping reports it
    s.cmd_off += static_cast<size_t>(n);
  }
  s.cmd_buf.clear();
  s.cmd_off = 0;
}

void Agent::PumpSessionOutput(Session& s, int which, bool drain) {
  UniqueFd& fd = which == 0 ? s.out : s.err;
  if (!fd) return;
  char buf[65536];
  // Even a drain is bounded: a background `yes` would otherwise keep the pipe full forever.
  for (int i = 0; i < (drain ? 256 : 16); ++i) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;
    if (n == 0) {
      fd.Reset();
      return;
    }
    if (s.busy) {
      EmitOutput(s.capture, which == 0 ? proto::Stream::kStdout : proto::Stream::kStderr, buf,
                 static_cast<size_t>(n));
    }
  }
}

void Agent::ReadSessionStatus(Session& s) {
  char buf[64];
  ssize_t n = ::read(s.status_r.get(), buf, sizeof(buf));
  if (n < 0) return;
  if (n == 0) {
    s.status_r.Reset();  // the shell is exiting; reaping reports it
    return;
  }
  s.status_buf.append(buf, static_cast<size_t>(n));
  while (!s.status_buf.empty()) {
    if (s.status_buf[0] == '+') {  // the driver armed the stop and is about to run the command
      s.status_buf.erase(0, 1);
      if (s.busy) s.running = true;
      continue;
    }
    size_t nul = s.status_buf.find('\0');
    if (nul == std::string::npos) break;
    std::string digits = s.status_buf.substr(0, nul);
    s.status_buf.erase(0, nul + 1);
    bool ok =
        !digits.empty() && digits.size() <= 3 &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (ok && s.busy) FinishSessionCommand(s, std::stoi(digits));
  }
  if (s.status_buf.size() > 16) s.status_buf.clear();  // garbage: never grows
}

void Agent::FinishSessionCommand(Session& s, int status) {
  PumpSessionOutput(s, 0, true);
  PumpSessionOutput(s, 1, true);
  // A stopped command line reports as killed, whatever the shell's last status was.
  proto::Exit e = ExitFromStatus(s.timed_out ? SIGKILL : W_EXITCODE(status & 0xff, 0), s.start);
  e.timed_out = s.timed_out;
  e.truncated = s.capture.truncated;
  e.oom = status == 128 + SIGKILL && OomKillCount() > s.oom_before;
  Send(s.capture.conn_id, proto::Encode(s.capture.request_id, e));
  s.busy = false;
  s.deadline.reset();
  s.hard_deadline.reset();
  s.sweep_at.reset();
  s.timed_out = false;
  s.before.clear();
  StartNextSessionCommand(s);
}

void Agent::SessionShellDied(Session& s, int status) {
  PumpSessionOutput(s, 0, true);
  PumpSessionOutput(s, 1, true);
  s.closed = true;
  proto::Exit e = ExitFromStatus(status, s.start);
  int code = e.exit_code;
  if (s.busy) {
    // The command ended the shell (`exit`, or a kill when a stopped command did not come back):
    // it gets its result; the session is closed for every later command.
    e.timed_out = s.timed_out;
    e.truncated = s.capture.truncated;
    Send(s.capture.conn_id, proto::Encode(s.capture.request_id, e));
    s.busy = false;
  }
  s.shell_status = code;
  for (const auto& p : s.queue) {
    SendError(p.conn_id, p.request_id,
              Error(ErrorCode::kFailedPrecondition, "session " + std::to_string(s.id) +
                                                        " is closed: its shell exited (status " +
                                                        std::to_string(code) + ")"));
  }
  s.queue.clear();
  // Background jobs of a dead shell die with it: they were in its process group.
  ::kill(-s.pid, SIGKILL);
  s.cmd_w.Reset();
  s.status_r.Reset();
  s.out.Reset();
  s.err.Reset();
  s.deadline.reset();
  s.hard_deadline.reset();
  s.sweep_at.reset();
}

void Agent::KillSession(Session& s) {
  if (s.closed) return;
  KillTree(s.pid);
}

namespace {

// Kills every process that appeared since the command began. Background jobs of earlier commands
// (in `before`) and their children are spared.
void KillNewDescendants(const Session& s) {
  std::set<pid_t> spare;
  for (const auto& [old, ostart] : s.before) {
    spare.insert(old);
    for (const auto& [d, dstart] : Descendants(old)) spare.insert(d);
  }
  for (const auto& [pid, start] : Descendants(s.pid)) {
    if (s.before.count({pid, start}) == 0 && spare.count(pid) == 0) KillTree(pid);
  }
}

}  // namespace

void Agent::StopSessionCommand(Session& s, Clock::time_point now) {
  s.timed_out = true;
  // If the shell does not come back (the command made it ignore the stop, or keeps it busy in a
  // trap of its own), the session is killed then.
  s.hard_deadline = now + kStopGrace;
  SweepStoppedSession(s, now);
}

void Agent::SweepStoppedSession(Session& s, Clock::time_point now) {
  s.sweep_at.reset();
  // The command may have ended already: its status settles it (and the driver reports it before
  // it stops catching the signal, so what follows never sees the driver's own quiet phase).
  uint64_t seq = s.seq;
  if (s.status_r) ReadSessionStatus(s);
  if (s.closed || !s.busy || s.seq != seq) return;
  // Once the driver has armed the stop, a shell that does not catch the signal was made to
  // ignore it (or leave it at its default, which would kill it) by the command: it cannot be
  // made to drop the rest of the line, so the session ends now rather than let it go on.
  if (s.running && !CatchesSignal(s.pid, kStopSignal)) {
    s.hard_deadline.reset();
    return KillSession(s);  // reported when reaped
  }
  // Signal first, then kill: the flag is set before the shell can move on to the next part.
  // Until the shell reports, both are repeated: whatever the command still managed to start dies
  // too, and a signal sent while the driver was still reading the command is not lost.
  ::kill(s.pid, kStopSignal);
  KillNewDescendants(s);
  s.sweep_at = now + kStopSweep;
}

void Agent::CloseSession(uint64_t conn_id, uint64_t request_id, uint64_t session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kNotFound, "no session " + std::to_string(session_id)));
  }
  Session& s = it->second;
  KillSession(s);
  if (!s.closed) {
    // Reap now so that the tree is gone when we acknowledge.
    int status = 0;
    if (::waitpid(s.pid, &status, 0) == s.pid) SessionShellDied(s, status);
  }
  sessions_.erase(it);
  Send(conn_id, proto::Encode(request_id, proto::Ok{}));
}

}  // namespace agentfense::runtime::agent
