#include "runtime/agent/agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace agentfense::runtime::agent {
namespace {

using std::chrono::milliseconds;

constexpr size_t kConnBacklogLimit = 2 << 20;  // stop reading command output beyond this
constexpr auto kTermGrace = milliseconds(500);
constexpr auto kDrainAfterExit = milliseconds(200);

uint64_t Micros(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

void SetNonBlock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

proto::Exit ExitFromStatus(int wait_status, Clock::time_point start) {
  proto::Exit e;
  if (WIFSIGNALED(wait_status)) {
    e.signal = WTERMSIG(wait_status);
    e.exit_code = 128 + e.signal;
  } else {
    e.exit_code = WEXITSTATUS(wait_status);
  }
  e.duration_us = Micros(Clock::now() - start);
  return e;
}

Agent::Agent(AgentOptions options) : options_(std::move(options)) {}

std::vector<std::string> Agent::BaseEnv() const {
  // Nothing is inherited: the agent's own environment came from the launcher and is not the
  // command's business.
  return {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          "HOME=" + options_.home,
          "USER=" + options_.user,
          "LOGNAME=" + options_.user,
          "LANG=C.UTF-8",
          "TERM=dumb",
          "SHELL=/bin/sh"};
}

Status Agent::Setup() {
  // Commands run as our uid: without this they could open /proc/1/fd/* (our control socket) or
  // read our memory. A non-dumpable process's /proc files belong to root, out of their reach.
  if (::prctl(PR_SET_DUMPABLE, 0) != 0) return Error::FromErrno(errno, "prctl(PR_SET_DUMPABLE)");
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // when not PID 1 (tests), still reap our orphans
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  if (!options_.listen_path.empty()) {
    // Docker's stop sends SIGTERM to PID 1. An init ignores signals it has no handler for, but a
    // blocked signal is queued and read through the signalfd. (In --fd mode the host ends us by
    // closing the connection, and commands cannot kill their init this way.)
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
  }
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return Error::FromErrno(errno, "sigprocmask");
  int sfd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return Error::FromErrno(errno, "signalfd");
  signal_fd_.Reset(sfd);
  (void)::signal(SIGPIPE, SIG_IGN);  // cannot fail for a valid signal number
  struct stat st;
  has_bash_ = ::stat("/bin/bash", &st) == 0 && S_ISREG(st.st_mode);

  if (options_.serve_fd >= 0) {
    ::fcntl(options_.serve_fd, F_SETFD, FD_CLOEXEC);
    SetNonBlock(options_.serve_fd);
    Conn c;
    c.id = next_conn_id_++;
    c.fd.Reset(options_.serve_fd);
    conns_.emplace(c.id, std::move(c));
  }
  if (!options_.listen_path.empty()) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return Error::FromErrno(errno, "socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (options_.listen_path.size() >= sizeof(addr.sun_path)) {
      return Error(ErrorCode::kInvalidArgument, "listen path too long");
    }
    std::memcpy(addr.sun_path, options_.listen_path.c_str(), options_.listen_path.size() + 1);
    ::unlink(options_.listen_path.c_str());
    // Only our uid may connect: the host side runs as root or as the same uid.
    mode_t old = ::umask(077);
    int r = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::umask(old);
    if (r != 0) return Error::FromErrno(errno, "bind " + options_.listen_path);
    if (::listen(fd.get(), 16) != 0) return Error::FromErrno(errno, "listen");
    listen_fd_ = std::move(fd);
  }
  if (conns_.empty() && !listen_fd_) {
    return Error(ErrorCode::kInvalidArgument, "need --fd or --listen");
  }
  return OkStatus();
}

Status Agent::Run() {
  AF_RETURN_IF_ERROR(Setup());
  Loop();
  // Leaving: nothing we started may outlive us.
  for (auto& [id, s] : sessions_) KillSession(s);
  for (auto& [id, job] : jobs_) KillTree(job.pid);
  for (auto& [id, p] : ptys_) KillPty(p);
  // A file worker may wait at an `ask` path: the mount lets a killed waiter go at once.
  for (auto& [pid, w] : file_workers_) {
    if (!w.exited) ::kill(pid, SIGKILL);
  }
  if (::getpid() == 1) ::kill(-1, SIGKILL);
  // Reap what we killed so that no zombie is handed to whoever inherits it (bounded: ~1 s).
  for (int i = 0; i < 100; ++i) {
    int status;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0) break;  // ECHILD: none left
    if (pid == 0) ::usleep(10000);
  }
  return OkStatus();
}

void Agent::Loop() {
  while (!stop_) {
    std::vector<pollfd> pfds;
    // What each pollfd is for: kind (0 signal, 1 listen, 2 conn, 3 job out/err, 4 job stdin,
    // 5 session out/err, 6 session status, 7 session command, 8 pty master, 9 file worker),
    // key, which.
    struct Ref {
      int kind;
      uint64_t key;
      int which;
    };
    std::vector<Ref> refs;
    auto add = [&](int fd, short events, Ref ref) {
      pfds.push_back({fd, events, 0});
      refs.push_back(ref);
    };
    add(signal_fd_.get(), POLLIN, {0, 0, 0});
    if (listen_fd_) add(listen_fd_.get(), POLLIN, {1, 0, 0});
    for (auto& [id, c] : conns_) {
      short ev = c.closing ? 0 : POLLIN;
      if (c.out.size() > c.out_off) ev |= POLLOUT;
      add(c.fd.get(), ev, {2, id, 0});
    }
    for (auto& [id, job] : jobs_) {
      // Back-pressure: a slow reader on the host stalls the command instead of growing memory.
      bool hold = Backlogged(job.capture.conn_id);
      if (job.out && !hold) add(job.out.get(), POLLIN, {3, id, 0});
      if (job.err && !hold) add(job.err.get(), POLLIN, {3, id, 1});
      if (job.in) add(job.in.get(), POLLOUT, {4, id, 0});
    }
    for (auto& [id, s] : sessions_) {
      if (s.closed) continue;
      bool hold = s.busy && Backlogged(s.capture.conn_id);
      if (s.out && !hold) add(s.out.get(), POLLIN, {5, id, 0});
      if (s.err && !hold) add(s.err.get(), POLLIN, {5, id, 1});
      if (s.status_r) add(s.status_r.get(), POLLIN, {6, id, 0});
      if (s.cmd_w && s.cmd_off < s.cmd_buf.size()) add(s.cmd_w.get(), POLLOUT, {7, id, 0});
    }
    for (auto& [id, p] : ptys_) {
      if (!p.master) continue;
      short ev = 0;
      if (!Backlogged(p.conn_id)) ev |= POLLIN;
      if (!p.in.empty()) ev |= POLLOUT;
      if (ev != 0) add(p.master.get(), ev, {8, id, 0});
    }
    for (auto& [pid, w] : file_workers_) {
      short ev = POLLIN;
      if (w.out_off < w.out.size()) ev |= POLLOUT;
      if (w.sock) add(w.sock.get(), ev, {9, static_cast<uint64_t>(pid), 0});
    }
    int timeout = 1000;
    auto now = Clock::now();
    auto consider = [&](const std::optional<Clock::time_point>& t) {
      if (!t) return;
      auto ms = std::chrono::duration_cast<milliseconds>(*t - now).count() + 1;
      timeout = static_cast<int>(std::clamp<int64_t>(ms, 0, timeout));
    };
    for (auto& [id, job] : jobs_) {
      consider(job.deadline);
      consider(job.kill_at);
      consider(job.drain_until);
    }
    for (auto& [id, s] : sessions_) {
      consider(s.deadline);
      consider(s.hard_deadline);
    consider(s.sweep_at);
    }
    for (auto& [id, p] : ptys_) consider(p.drain_until);
    for (auto& [pid, w] : file_workers_) {
      if (w.job == 0) consider(w.idle_since + kFileWorkerIdle);
    }
    int n = ::poll(pfds.data(), pfds.size(), timeout);
    if (n < 0 && errno != EINTR) break;
    for (size_t i = 0; n > 0 && i < pfds.size(); ++i) {
      if (pfds[i].revents == 0) continue;
      const Ref& r = refs[i];
      switch (r.kind) {
        case 0:
          ReapChildren();
          break;
        case 1:
          AcceptConn();
          break;
        case 2: {
          auto it = conns_.find(r.key);
          if (it == conns_.end()) break;
          if (pfds[i].revents & POLLOUT) FlushConn(it->second);
          if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) ReadConn(it->second);
          break;
        }
        case 3: {
          auto it = jobs_.find(r.key);
          if (it != jobs_.end()) PumpJobOutput(it->second, r.which);
          break;
        }
        case 4: {
          auto it = jobs_.find(r.key);
          if (it == jobs_.end() || !it->second.in) break;
          Job& job = it->second;
          ssize_t w = ::write(job.in.get(), job.stdin_data.data() + job.stdin_off,
                              job.stdin_data.size() - job.stdin_off);
          if (w > 0) job.stdin_off += static_cast<size_t>(w);
          if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
              job.stdin_off == job.stdin_data.size()) {
            job.in.Reset();  // EOF for the command (or it closed its stdin: EPIPE)
            job.stdin_data.clear();
          }
          break;
        }
        case 5: {
          auto it = sessions_.find(r.key);
          if (it != sessions_.end()) PumpSessionOutput(it->second, r.which, false);
          break;
        }
        case 6: {
          auto it = sessions_.find(r.key);
          if (it != sessions_.end()) ReadSessionStatus(it->second);
          break;
        }
        case 7: {
          auto it = sessions_.find(r.key);
          if (it != sessions_.end()) WriteSessionCommand(it->second);
          break;
        }
        case 8: {
          auto it = ptys_.find(r.key);
          if (it == ptys_.end()) break;
          if (pfds[i].revents & POLLOUT) WritePtyInput(it->second);
          if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) PumpPtyOutput(it->second, false);
          break;
        }
        case 9: {
          auto it = file_workers_.find(static_cast<pid_t>(r.key));
          if (it == file_workers_.end()) break;
          if (pfds[i].revents & POLLOUT) FlushFileWorker(it->second);
          if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) PumpFileWorker(it->second);
          break;
        }
        default:
          break;  // every kind pushed above is handled
      }
    }
    ReapChildren();
    CheckTimers();
    // Finish jobs whose process is reaped and whose output is complete.
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      auto next = std::next(it);
      Job& job = it->second;
      if (job.exited &&
          ((!job.out && !job.err) || (job.drain_until && Clock::now() >= *job.drain_until))) {
        FinishJob(it);
      }
      it = next;
    }
    TendFileWorkers();
    // Terminals whose program is reaped end once their output is drained (EIO) or at the deadline.
    for (auto it = ptys_.begin(); it != ptys_.end();) {
      auto next = std::next(it);
      Pty& p = it->second;
      if (p.exited && (!p.master || (p.drain_until && Clock::now() >= *p.drain_until))) {
        FinishPty(it);
      }
      it = next;
    }
    // Drop connections that are closing and flushed.
    for (auto it = conns_.begin(); it != conns_.end();) {
      auto next = std::next(it);
      if (it->second.closing && it->second.out.size() == it->second.out_off) DropConn(it->first);
      it = next;
    }
    if (options_.serve_fd >= 0 && conns_.empty()) stop_ = true;
  }
}

void Agent::AcceptConn() {
  while (true) {
    int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    Conn c;
    c.id = next_conn_id_++;
    c.fd.Reset(fd);
    conns_.emplace(c.id, std::move(c));
  }
}

bool Agent::Backlogged(uint64_t conn_id) const {
  auto it = conns_.find(conn_id);
  return it != conns_.end() && it->second.out.size() - it->second.out_off > kConnBacklogLimit;
}

void Agent::Send(uint64_t conn_id, const Result<std::string>& frame) {
  auto it = conns_.find(conn_id);
  if (it == conns_.end() || !frame.ok()) return;
  Conn& c = it->second;
  if (c.out_off > 0 && c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  }
  c.out += *frame;
  FlushConn(c);
}

Result<std::string> ErrorFrame(uint64_t request_id, const Error& e) {
  proto::ErrorMsg m;
  m.code = static_cast<uint32_t>(e.code());
  // The errno travels as its own field, so the text leaves it out: the host's Error prints it once.
  Error without_errno(e.code(), e.message());
  for (const std::string& c : e.context()) without_errno.With(c);
  m.message = without_errno.ToString();
  m.sys_errno = e.sys_errno();
  return proto::Encode(request_id, m);
}

void Agent::SendError(uint64_t conn_id, uint64_t request_id, const Error& e) {
  Send(conn_id, ErrorFrame(request_id, e));
}

void Agent::FlushConn(Conn& c) {
  while (c.out_off < c.out.size()) {
    ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      c.closing = true;  // peer gone
      c.out.clear();
      c.out_off = 0;
      return;
    }
    c.out_off += static_cast<size_t>(n);
  }
  if (c.out_off > (1 << 20)) {
    c.out.erase(0, c.out_off);
    c.out_off = 0;
  }
}

void Agent::ReadConn(Conn& c) {
  char buf[65536];
  ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    c.closing = true;
    c.out.clear();
    c.out_off = 0;
    return;
  }
  c.reader.Append(std::string_view(buf, static_cast<size_t>(n)));
  uint64_t id = c.id;
  while (true) {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second.closing) return;
    auto next = it->second.reader.Next();
    if (!next.ok()) {
      // Framing is lost: answer once and hang up; nothing after this byte can be trusted.
      SendError(id, 0, next.error());
      it->second.closing = true;
      return;
    }
    if (!*next) return;
    Dispatch(it->second, **next);
  }
}

void Agent::DropConn(uint64_t id) {
  // Commands started by this connection die with it; sessions survive (a reconnecting host may
  // resume them) but lose the output sink of a running command.
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    auto next = std::next(it);
    if (it->second.capture.conn_id == id) {
      KillTree(it->second.pid);
      it->second.capture.conn_id = 0;
    }
    it = next;
  }
  // A terminal's program dies with the connection that opened it: nobody can type into it again.
  for (auto& [pid, p] : ptys_) {
    if (p.conn_id == id) {
      KillPty(p);
      p.conn_id = 0;
    }
  }
  for (auto& [sid, s] : sessions_) {
    if (s.busy && s.capture.conn_id == id) s.capture.conn_id = 0;
    std::erase_if(s.queue, [&](const Session::Pending& p) { return p.conn_id == id; });
  }
  // Its file operations: queued ones are dropped, running ones' workers killed (one waiting at an
  // `ask` path is let go by the mount at once) and reaped as usual, their answers discarded.
  for (auto it = file_jobs_.begin(); it != file_jobs_.end();) {
    auto next = std::next(it);
    if (it->second.conn_id == id) {
      it->second.conn_id = 0;
      if (it->second.worker < 0) {
        file_jobs_.erase(it);
      } else {
        KillFileJob(it->second);
      }
    }
    it = next;
  }
  conns_.erase(id);
  StartFileJobs();  // dropped ones may have been holding others back
}

void Agent::Dispatch(Conn& c, const proto::Frame& f) {
  uint64_t cid = c.id;
  if (!c.hello_done) {
    if (f.type != proto::MsgType::kHello) {
      SendError(cid, f.request_id, Error(ErrorCode::kFailedPrecondition, "Hello expected first"));
      c.closing = true;
      return;
    }
    auto h = proto::DecodeHello(f.payload);
    if (!h.ok() || h->min_version > proto::kVersion || h->max_version < proto::kVersion) {
      SendError(cid, f.request_id,
                Error(ErrorCode::kFailedPrecondition, "no common protocol version"));
      c.closing = true;
      return;
    }
    c.hello_done = true;
    proto::Hello mine;
    mine.software = "agentfense-agent 0.1";
    mine.has_bash = has_bash_;
    mine.has_pty = true;
    mine.has_files = true;
    Send(cid, proto::Encode(f.request_id, mine));
    return;
  }
  switch (f.type) {
    case proto::MsgType::kExec: {
      auto m = proto::DecodeExec(f.payload);
      if (!m.ok()) return SendError(cid, f.request_id, m.error());
      return StartExec(cid, f.request_id, std::move(*m));
    }
    case proto::MsgType::kSessionOpen: {
      auto m = proto::DecodeSessionOpen(f.payload);
      if (!m.ok()) return SendError(cid, f.request_id, m.error());
      return OpenSession(cid, f.request_id, *m);
    }
    case proto::MsgType::kSessionExec: {
      auto m = proto::DecodeSessionExec(f.payload);
      if (!m.ok()) return SendError(cid, f.request_id, m.error());
      return SessionExec(cid, f.request_id, std::move(*m));
    }
    case proto::MsgType::kSessionClose: {
      auto m = proto::DecodeSessionClose(f.payload);
      if (!m.ok()) return SendError(cid, f.request_id, m.error());
      return CloseSession(cid, f.request_id, m->session_id);
    }
    case proto::MsgType::kCancel:
      return Cancel(cid, f.request_id);
    case proto::MsgType::kPtyOpen: {
      auto m = proto::DecodePtyOpen(f.payload);
      if (!m.ok()) return SendError(cid, f.request_id, m.error());
      return OpenPty(cid, f.request_id, *m);
    }
    case proto::MsgType::kPtyInput: {
      // A malformed frame gets an Error (ending that call on the host); input for a terminal that
      // already ended is dropped silently (it races with the Exit on the way).
      auto m = proto::DecodePtyInput(f.payload);
      if (!m.ok()) return SendError(cid, f.request_id, m.error());
      return PtyInput(cid, f.request_id, m->data);
    }
    case proto::MsgType::kPtyResize: {
      auto m = proto::DecodePtyResize(f.payload);
      if (!m.ok()) return SendError(cid, f.request_id, m.error());
      return PtyResize(cid, f.request_id, *m);
    }
    case proto::MsgType::kFileOp: {
      auto m = proto::DecodeFileOp(f.payload);
      if (!m.ok()) return SendError(cid, f.request_id, m.error());
      return FileOperation(cid, f.request_id, std::move(*m));
    }
    default:
      return SendError(cid, f.request_id,
                       Error(ErrorCode::kInvalidArgument, "unexpected message type from host"));
  }
}

Result<std::string> Agent::Workdir(const std::string& requested) const {
  std::string dir = requested.empty()     ? options_.workspace
                    : requested[0] == '/' ? requested
                                          : options_.workspace + "/" + requested;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kInvalidArgument, "workdir is not a directory: " + dir);
  }
  return dir;
}

// --- one-shot exec ----------------------------------------------------------------------------

void Agent::StartExec(uint64_t conn_id, uint64_t request_id, proto::Exec req) {
  auto workdir = Workdir(req.workdir);
  if (!workdir.ok()) return SendError(conn_id, request_id, workdir.error());
  const std::string& dir = *workdir;
  std::vector<std::string> env = BaseEnv();
  for (const auto& kv : req.env) {
    const std::string prefix = kv.first + "=";
    std::erase_if(env,
                  [&](const std::string& e) { return e.compare(0, prefix.size(), prefix) == 0; });
    env.push_back(prefix + kv.second);
  }
  std::vector<std::string> argv;
  if (!req.shell_command.empty()) {
    argv = {"/bin/sh", "-c", req.shell_command};
  } else {
    argv = req.argv;
    std::string exe = ResolveExecutable(argv[0], env);
    if (!exe.empty()) argv[0] = exe;
  }
  auto in = MakePipe();
  auto out = MakePipe();
  auto err = MakePipe();
  if (!in.ok() || !out.ok() || !err.ok()) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kResourceExhausted, "cannot create pipes"));
  }
  Job job;
  job.oom_before = OomKillCount();
  job.start = Clock::now();
  auto pid = Spawn(argv, env, dir, in->first.get(), out->second.get(), err->second.get());
  if (!pid.ok()) return SendError(conn_id, request_id, pid.error());
  job.pid = *pid;
  job.capture = Capture{conn_id, request_id, req.output_cap, {0, 0}, false};
  job.out = std::move(out->first);
  job.err = std::move(err->first);
  SetNonBlock(job.out.get());
  SetNonBlock(job.err.get());
  if (!req.stdin_data.empty()) {
    job.in = std::move(in->second);
    SetNonBlock(job.in.get());
    job.stdin_data = std::move(req.stdin_data);
  }
  if (req.timeout_ms > 0) job.deadline = job.start + milliseconds(req.timeout_ms);
  jobs_.emplace(next_job_id_++, std::move(job));
}

void Agent::EmitOutput(Capture& cap, proto::Stream stream, const char* data, size_t n) {
  int idx = stream == proto::Stream::kStdout ? 0 : 1;
  uint64_t room = cap.cap > cap.kept[idx] ? cap.cap - cap.kept[idx] : 0;
  if (n > room) cap.truncated = true;
  size_t keep = static_cast<size_t>(std::min<uint64_t>(n, room));
  cap.kept[idx] += keep;
  if (keep == 0 || cap.conn_id == 0) return;
  for (size_t off = 0; off < keep; off += proto::kMaxOutputChunk) {
    proto::Output o{stream, std::string(data + off, std::min(proto::kMaxOutputChunk, keep - off))};
    Send(cap.conn_id, proto::Encode(cap.request_id, o));
  }
}

void Agent::PumpJobOutput(Job& job, int which) {
  UniqueFd& fd = which == 0 ? job.out : job.err;
  if (!fd) return;
  char buf[65536];
  // A bounded number of reads per wake-up keeps one chatty command from starving the others.
  for (int i = 0; i < 16; ++i) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // EAGAIN
    if (n == 0) {
      fd.Reset();
      return;
    }
    EmitOutput(job.capture, which == 0 ? proto::Stream::kStdout : proto::Stream::kStderr, buf,
               static_cast<size_t>(n));
  }
}

void Agent::FinishJob(std::map<uint64_t, Job>::iterator it) {
  Job& job = it->second;
  // Background processes the command left behind belong to it: the reference runtime ran each
  // command in a fresh sandbox whose end killed them, so we do the same to its process group.
  ::kill(-job.pid, SIGKILL);
  // Everything the command wrote before it exited is already in the pipes. On a loaded machine
  // this loop may first run after the drain window has passed, so collect what is buffered now,
  // or the exit would go out ahead of output that was produced (bounded: a writer outside the
  // process group cannot keep us here).
  for (int which : {0, 1}) {
    for (int round = 0; round < 64 && (which == 0 ? job.out : job.err); ++round) {
      UniqueFd& fd = which == 0 ? job.out : job.err;
      int avail = 0;
      if (::ioctl(fd.get(), FIONREAD, &avail) != 0 || avail <= 0) break;
      PumpJobOutput(job, which);
    }
  }
  proto::Exit e = ExitFromStatus(job.status, job.start);
  e.timed_out = job.timed_out;
  e.truncated = job.capture.truncated;
  e.oom = e.signal == SIGKILL && OomKillCount() > job.oom_before;
  // A timed-out command may have left daemons outside its process group (setsid): the timeout
  // promises the whole tree dies, so kill what belongs to no live command or session (before the
  // result goes out, so the caller never sees them alive).
  if (job.timed_out) SweepStrays();
  Send(job.capture.conn_id, proto::Encode(job.capture.request_id, e));
  jobs_.erase(it);
}

void Agent::Cancel(uint64_t conn_id, uint64_t request_id) {
  for (auto& [id, job] : jobs_) {
    if (job.capture.conn_id == conn_id && job.capture.request_id == request_id && !job.exited) {
      KillTree(job.pid);
    }
  }
  if (Pty* p = FindPty(conn_id, request_id); p != nullptr) KillPty(*p);  // Exit follows reaping
  // A file operation: a queued one is dropped; a running one is killed and answers with an error.
  for (auto it = file_jobs_.begin(); it != file_jobs_.end(); ++it) {
    FileJob& f = it->second;
    if (f.conn_id != conn_id || f.request_id != request_id) continue;
    if (f.worker < 0) {
      SendError(conn_id, request_id, Error(ErrorCode::kCancelled, "file operation cancelled"));
      file_jobs_.erase(it);
      StartFileJobs();
    } else {
      KillFileJob(f);
    }
    break;
  }
  for (auto& [id, s] : sessions_) {
    if (s.busy && s.capture.conn_id == conn_id && s.capture.request_id == request_id) {
      s.deadline = Clock::now();  // handled like a timeout: interrupt, keep the session
    }
    // A command still waiting its turn is simply dropped.
    std::erase_if(s.queue, [&](const Session::Pending& p) {
      return p.conn_id == conn_id && p.request_id == request_id;
    });
  }
}

void Agent::ReapChildren() {
  signalfd_siginfo si;
  while (::read(signal_fd_.get(), &si, sizeof(si)) == sizeof(si)) {
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) stop_ = true;
  }
  while (true) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto& [id, job] : jobs_) {
      if (job.pid == pid && !job.exited) {
        job.exited = true;
        job.status = status;
        job.drain_until = Clock::now() + kDrainAfterExit;
      }
    }
    for (auto& [id, s] : sessions_) {
      if (s.pid == pid && !s.closed) SessionShellDied(s, status);
    }
    if (auto w = file_workers_.find(pid); w != file_workers_.end()) w->second.exited = true;
    for (auto& [id, p] : ptys_) {
      if (p.pid == pid && !p.exited) {
        p.exited = true;
        p.status = status;
        p.drain_until = Clock::now() + kDrainAfterExit;
        // Whatever the program left in its terminal session goes with it (as for exec), which
        // also closes the last slave descriptors so that the master reports EIO once drained.
        KillPty(p);
      }
    }
    // Anything else is an orphan that PID 1 inherited: reaped, nothing more to do.
  }
}

void Agent::CheckTimers() {
  auto now = Clock::now();
  bool sweep = false;
  for (auto& [id, job] : jobs_) {
    if (job.exited) continue;
    if (job.deadline && now >= *job.deadline && !job.timed_out) {
      job.timed_out = true;
      ::kill(-job.pid, SIGTERM);
      job.kill_at = now + kTermGrace;
    }
    if (job.kill_at && now >= *job.kill_at) {
      job.kill_at.reset();
      KillTree(job.pid);
      sweep = true;
    }
  }
  if (sweep) SweepStrays();
  for (auto& [id, s] : sessions_) {
    if (s.closed || !s.busy) continue;
    if (s.deadline && now >= *s.deadline && !s.timed_out) StopSessionCommand(s, now);
    if (s.closed) continue;
    if (s.sweep_at && now >= *s.sweep_at) SweepStoppedSession(s, now);
    if (s.closed) continue;
    if (s.hard_deadline && now >= *s.hard_deadline) {
      s.hard_deadline.reset();
      KillSession(s);  // reported as closed in SessionShellDied via ReapChildren
    }
  }
}

}  // namespace agentfense::runtime::agent
