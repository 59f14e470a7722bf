// PTY sessions: a program (by default an interactive shell) on a pseudo-terminal that the agent
// allocates INSIDE the sandbox.
//
// Why the terminal lives here and not on the host: a process that holds a descriptor of a terminal
// can push bytes into its input queue (TIOCSTI) or reprogram it; if the sandbox got the user's real
// terminal, whatever the agent typed that way would be read by the user's shell after the sandbox
// ends (CVE-2017-5226 and its many cousins). So the sandbox only ever sees the slave of a pty from
// its own devpts instance (bwrap's --dev, Docker's /dev/pts), and the bytes travel as protocol
// frames: the host client writes them to the user's terminal as plain output, never as ioctls.
//
// Life cycle: PtyOpen → the agent opens /dev/ptmx, forks the program in a new session with the
// slave as controlling terminal and stdin/stdout/stderr, and answers PtyOpened. Output read from
// the master goes out as Output (stdout) frames of the PtyOpen's request id; PtyInput bytes are
// written to the master (bounded buffer: beyond it input is dropped, as a full terminal drops typed
// keys); PtyResize sets the window size (the kernel signals SIGWINCH to the foreground job). When
// the program exits, everything left in its terminal session is killed, the last output is drained
// and Exit is sent. A Cancel of the request id, the connection closing, or the agent leaving kill
// the whole session (process groups of background jobs included).
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>

#include "runtime/agent/agent.h"

namespace agentfense::runtime::agent {
namespace {

constexpr size_t kMaxPtys = 16;
// Typed bytes the terminal has not accepted yet. A paste larger than this while the program does
// not read is cut, like keys typed into a full terminal; the agent's memory stays bounded.
constexpr size_t kMaxPendingInput = 256 * 1024;

void SetNonBlock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Opens a new master/slave pair in the devpts of our mount namespace (the sandbox's own).
Result<std::pair<UniqueFd, UniqueFd>> OpenPtyPair(uint16_t rows, uint16_t cols) {
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) return Error::FromErrno(errno, "cannot open /dev/ptmx");
  if (::grantpt(master.get()) != 0) return Error::FromErrno(errno, "grantpt");
  if (::unlockpt(master.get()) != 0) return Error::FromErrno(errno, "unlockpt");
  // TIOCGPTPEER opens the slave that belongs to this master without a path lookup, so nothing in
  // the sandbox can substitute another file under /dev/pts between the two calls.
  UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave && (errno == EINVAL || errno == ENOTTY)) {
    // Kernels before 4.13: the path, checked to be a terminal of the same devpts as ptmx.
    char name[128];
    if (::ptsname_r(master.get(), name, sizeof(name)) != 0)
      return Error::FromErrno(errno, "ptsname");
    slave.Reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (slave && !::isatty(slave.get()))
      return Error(ErrorCode::kInternal, "pty slave is not a tty");
  }
  if (!slave) return Error::FromErrno(errno, "cannot open the terminal's slave");
  winsize ws{};
  ws.ws_row = rows;
  ws.ws_col = cols;
  if (::ioctl(master.get(), TIOCSWINSZ, &ws) != 0) return Error::FromErrno(errno, "TIOCSWINSZ");
  return std::make_pair(std::move(master), std::move(slave));
}

}  // namespace

Pty* Agent::FindPty(uint64_t conn_id, uint64_t request_id) {
  for (auto& [id, p] : ptys_) {
    if (p.conn_id == conn_id && p.request_id == request_id) return &p;
  }
  return nullptr;
}

void Agent::OpenPty(uint64_t conn_id, uint64_t request_id, const proto::PtyOpen& req) {
  if (FindPty(conn_id, request_id) != nullptr) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kAlreadyExists, "a terminal with this request id is open"));
  }
  size_t live =
      std::count_if(ptys_.begin(), ptys_.end(), [](const auto& kv) { return !kv.second.exited; });
  if (live >= kMaxPtys) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kResourceExhausted, "too many terminals in this sandbox"));
  }
  auto workdir = Workdir(req.workdir);
  if (!workdir.ok()) return SendError(conn_id, request_id, workdir.error());
  const std::string& dir = *workdir;
  std::vector<std::string> env = BaseEnv();
  std::vector<std::string> argv = req.argv;
  if (argv.empty()) {
    std::string shell = has_bash_ ? "/bin/bash" : "/bin/sh";
    argv = {shell, "-i"};
    std::erase_if(env, [](const std::string& e) { return e.rfind("SHELL=", 0) == 0; });
    env.push_back("SHELL=" + shell);
  }
  // A terminal is not "dumb": the host passes its own TERM when it knows better.
  std::erase_if(env, [](const std::string& e) { return e.rfind("TERM=", 0) == 0; });
  env.push_back("TERM=xterm-256color");
  for (const auto& kv : req.env) {
    const std::string prefix = kv.first + "=";
    std::erase_if(env,
                  [&](const std::string& e) { return e.compare(0, prefix.size(), prefix) == 0; });
    env.push_back(prefix + kv.second);
  }
  std::string exe = ResolveExecutable(argv[0], env);
  if (!exe.empty()) argv[0] = exe;

  auto pair = OpenPtyPair(req.rows, req.cols);
  if (!pair.ok()) {
    return SendError(
        conn_id, request_id,
        Error(ErrorCode::kFailedPrecondition,
              "cannot allocate a terminal in the sandbox: " + pair.error().ToString()));
  }
  auto& [master, slave] = *pair;
  Pty p;
  p.start = Clock::now();
  auto pid = Spawn(argv, env, dir, slave.get(), slave.get(), slave.get(), {}, true);
  if (!pid.ok()) return SendError(conn_id, request_id, pid.error());
  slave.Reset();  // only the program's session holds the slave now: its exit gives us EIO
  p.conn_id = conn_id;
  p.request_id = request_id;
  p.pid = *pid;
  p.master = std::move(master);
  SetNonBlock(p.master.get());
  ptys_.emplace(next_pty_id_++, std::move(p));
  Send(conn_id, proto::Encode(request_id, proto::PtyOpened{}));
}

void Agent::PtyInput(uint64_t conn_id, uint64_t request_id, const std::string& data) {
  Pty* p = FindPty(conn_id, request_id);
  // Input racing with the program's exit is normal: dropped without an error (the Exit follows).
  if (p == nullptr || p->exited || !p->master) return;
  size_t room = kMaxPendingInput > p->in.size() ? kMaxPendingInput - p->in.size() : 0;
  p->in.append(data, 0, std::min(room, data.size()));
  WritePtyInput(*p);
}

void Agent::WritePtyInput(Pty& p) {
  while (!p.in.empty() && p.master) {
    ssize_t n = ::write(p.master.get(), p.in.data(), p.in.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;  // the terminal's input queue is full: poll resumes
    if (n <= 0) {
      p.in.clear();  // EIO: the slave side is gone; the exit is reported through reaping
      return;
    }
    p.in.erase(0, static_cast<size_t>(n));
  }
}

void Agent::PtyResize(uint64_t conn_id, uint64_t request_id, const proto::PtyResize& req) {
  Pty* p = FindPty(conn_id, request_id);
  if (p == nullptr || p->exited || !p->master) return;
  winsize ws{};
  ws.ws_row = req.rows;
  ws.ws_col = req.cols;
  ::ioctl(p->master.get(), TIOCSWINSZ, &ws);  // the kernel sends SIGWINCH to the foreground job
}

void Agent::PumpPtyOutput(Pty& p, bool drain) {
  if (!p.master) return;
  char buf[16 * 1024];
  for (int i = 0; i < (drain ? 256 : 16); ++i) {
    ssize_t n = ::read(p.master.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      // EIO: every slave descriptor is closed (the session is gone); nothing more can come.
      p.master.Reset();
      p.in.clear();
      return;
    }
    if (p.conn_id == 0) continue;  // the host went away: keep the terminal from blocking
    proto::Output o{proto::Stream::kStdout, std::string(buf, static_cast<size_t>(n))};
    Send(p.conn_id, proto::Encode(p.request_id, o));
  }
}

void Agent::KillPty(Pty& p) {
  if (p.pid <= 1) return;
  if (!p.exited) KillTree(p.pid);
  // Background jobs of an interactive shell have their own process groups, but stay in the
  // terminal's session.
  KillSessionMembers(p.pid);
}

void Agent::FinishPty(std::map<uint64_t, Pty>::iterator it) {
  Pty& p = it->second;
  PumpPtyOutput(p, true);
  proto::Exit e = ExitFromStatus(p.status, p.start);
  if (p.conn_id != 0) Send(p.conn_id, proto::Encode(p.request_id, e));
  ptys_.erase(it);
}

}  // namespace agentfense::runtime::agent
