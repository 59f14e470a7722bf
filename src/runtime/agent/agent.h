// agentfense-agent: the init process of a sandbox. A single-threaded poll loop serving the framed
// protocol of runtime/agent_protocol.h on one inherited socket (bwrap) or a listening socket
// (Docker). It forks commands in their own sessions, streams their output, enforces timeouts and
// output caps, keeps persistent shell sessions, hands file operations (which may wait for a
// person at an `ask` path) to worker processes and, as PID 1, reaps every orphan.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "runtime/agent_protocol.h"

namespace agentfense::runtime::agent {

using Clock = std::chrono::steady_clock;

struct AgentOptions {
  int serve_fd = -1;        // an inherited connected socket (exit when it closes)
  std::string listen_path;  // or a Unix socket to listen on (many connections)
  std::string workspace = "/workspace";
  std::string home = "/tmp";
  std::string user = "sandbox";
  // The process's argument area (argv[0] to the end of the last argument). A file worker writes
  // the operation it runs there, so that /proc/PID/cmdline, which an `ask` approval shows as the
  // command, names that operation instead of the agent's own command line. Null: left alone.
  char* title_area = nullptr;
  size_t title_size = 0;
};

struct Conn {
  uint64_t id = 0;
  UniqueFd fd;
  proto::FrameReader reader;
  std::string out;  // encoded frames not yet written
  size_t out_off = 0;
  bool hello_done = false;
  bool closing = false;  // protocol error or EOF: drop once `out` is flushed (or at once on EOF)
};

// Output capture shared by one-shot execs and session commands.
struct Capture {
  uint64_t conn_id = 0;
  uint64_t request_id = 0;
  uint64_t cap = 0;
  uint64_t kept[2] = {0, 0};
  bool truncated = false;
};

struct Job {
  pid_t pid = -1;
  Capture capture;
  UniqueFd out, err, in;  // our ends of the child's stdout, stderr, stdin pipes
  std::string stdin_data;
  size_t stdin_off = 0;
  Clock::time_point start;
  std::optional<Clock::time_point> deadline;
  std::optional<Clock::time_point> kill_at;      // SIGKILL after the SIGTERM grace
  std::optional<Clock::time_point> drain_until;  // after exit: stop waiting for pipe EOF then
  bool timed_out = false;
  bool exited = false;
  int status = 0;
  uint64_t oom_before = 0;
};

struct Session {
  uint64_t id = 0;
  pid_t pid = -1;  // the shell
  UniqueFd cmd_w, status_r, out, err;
  std::string cmd_buf;  // the command being written to the shell (non-blocking)
  size_t cmd_off = 0;
  std::string status_buf;
  bool bash = false;    // which driver framing the shell speaks
  bool closed = false;  // the shell exited (e.g. `exit`): later commands are refused
  int shell_status = 0;
  // The command being run, if any, and the ones waiting behind it.
  struct Pending {
    uint64_t conn_id;
    uint64_t request_id;
    proto::SessionExec req;
  };
  std::deque<Pending> queue;
  bool busy = false;
  Capture capture;
  Clock::time_point start;
  std::optional<Clock::time_point> deadline;
  std::optional<Clock::time_point> hard_deadline;  // shell did not come back after the kill
  std::optional<Clock::time_point> sweep_at;       // next re-kill while a stopped command unwinds
  bool timed_out = false;  // stopped: timeout or Cancel
  bool running = false;    // the driver armed the stop and runs the command ('+' received)
  uint64_t seq = 0;        // commands started, to tell them apart
  std::set<std::pair<pid_t, uint64_t>> before;  // descendants (pid, start time) at command start
  uint64_t oom_before = 0;
};

// A program on a pseudo-terminal allocated inside the sandbox (pty.cc). Named by the connection
// and request id of its PtyOpen.
struct Pty {
  uint64_t conn_id = 0;
  uint64_t request_id = 0;
  pid_t pid = -1;   // the program: leader of its own session, the terminal's controlling one
  UniqueFd master;  // our end; the slave exists only in the program's session
  std::string in;   // typed bytes not yet accepted by the terminal (bounded)
  Clock::time_point start;
  bool exited = false;  // reaped
  int status = 0;
  std::optional<Clock::time_point> drain_until;  // after exit: stop waiting for the last output
};

// A file operation (files.cc). The loop never touches the workspace itself: the mount may hold an
// open at an `ask` path until a person answers, so each operation is handed to a file worker, a
// process forked from the agent that runs one operation at a time and answers with one frame.
// Queued (worker -1) until a worker is free and no earlier operation it conflicts with is pending.
struct FileJob {
  uint64_t conn_id = 0;  // 0: the connection is gone, the answer is dropped
  uint64_t request_id = 0;
  proto::FileOp op;
  pid_t worker = -1;
};

// A file worker idle this long exits: a sandbox that stopped using file operations keeps no
// extra process (density), while a burst of them reuses warm workers.
inline constexpr std::chrono::seconds kFileWorkerIdle{30};

struct FileWorker {
  pid_t pid = -1;
  UniqueFd sock;    // our end of its socketpair: operations out, answers in
  std::string out;  // the operation's frame not yet written
  size_t out_off = 0;
  std::string in;   // answer bytes read so far
  uint64_t job = 0;  // the FileJob it runs; 0 when idle
  Clock::time_point idle_since;
  bool exited = false;
};

class Agent {
 public:
  explicit Agent(AgentOptions options);
  // Runs until the served connection closes (serve_fd mode) or forever (listen mode).
  Status Run();

 private:
  Status Setup();
  void Loop();
  void AcceptConn();
  void ReadConn(Conn& c);
  void FlushConn(Conn& c);
  void DropConn(uint64_t id);
  void Send(uint64_t conn_id, const Result<std::string>& frame);
  void SendError(uint64_t conn_id, uint64_t request_id, const Error& e);
  void Dispatch(Conn& c, const proto::Frame& frame);

  void StartExec(uint64_t conn_id, uint64_t request_id, proto::Exec req);
  void PumpJobOutput(Job& job, int which);
  void FinishJob(std::map<uint64_t, Job>::iterator it);
  void Cancel(uint64_t conn_id, uint64_t request_id);

  void OpenSession(uint64_t conn_id, uint64_t request_id, const proto::SessionOpen& req);
  void SessionExec(uint64_t conn_id, uint64_t request_id, proto::SessionExec req);
  void CloseSession(uint64_t conn_id, uint64_t request_id, uint64_t session_id);
  void StartNextSessionCommand(Session& s);
  void WriteSessionCommand(Session& s);
  void PumpSessionOutput(Session& s, int which, bool drain);
  void ReadSessionStatus(Session& s);
  void FinishSessionCommand(Session& s, int status);
  void SessionShellDied(Session& s, int status);
  void KillSession(Session& s);
  // Timeout or Cancel of the running command: stop the whole command line (sessions.cc).
  void StopSessionCommand(Session& s, Clock::time_point now);
  void SweepStoppedSession(Session& s, Clock::time_point now);

  void OpenPty(uint64_t conn_id, uint64_t request_id, const proto::PtyOpen& req);
  Pty* FindPty(uint64_t conn_id, uint64_t request_id);
  void PtyInput(uint64_t conn_id, uint64_t request_id, const std::string& data);
  void PtyResize(uint64_t conn_id, uint64_t request_id, const proto::PtyResize& req);
  void PumpPtyOutput(Pty& p, bool drain);
  void WritePtyInput(Pty& p);
  void FinishPty(std::map<uint64_t, Pty>::iterator it);
  // Kills the program, everything in its terminal session and its descendants.
  void KillPty(Pty& p);

  // A file operation on the workspace (files.cc): queued, then run by a file worker; answered
  // with FileResult or Error when it is done. Refused (RESOURCE_EXHAUSTED) beyond the cap.
  void FileOperation(uint64_t conn_id, uint64_t request_id, proto::FileOp op);
  // Hands the queued operations that may run now to idle (or new) workers.
  void StartFileJobs();
  Result<FileWorker*> IdleFileWorker();
  void FlushFileWorker(FileWorker& w);
  void PumpFileWorker(FileWorker& w);
  // Ends `w`'s operation with `frame` (its answer) or, when empty, an error; `w` is idle after.
  void FinishFileJob(FileWorker& w, std::string frame);
  // Workers that died or were killed fail their operation; long-idle ones are let go.
  void TendFileWorkers();
  // Kills the worker running `job` (it fails once reaped).
  void KillFileJob(FileJob& job);

  void ReapChildren();
  void CheckTimers();
  // Emits output bytes for a capture: forwards up to the cap, counts and drops the rest.
  void EmitOutput(Capture& cap, proto::Stream stream, const char* data, size_t n);
  bool Backlogged(uint64_t conn_id) const;
  std::vector<std::string> BaseEnv() const;
  // The directory a command starts in: the workspace, an absolute path, or one relative to the
  // workspace; it must be an existing directory (INVALID_ARGUMENT otherwise).
  Result<std::string> Workdir(const std::string& requested) const;
  // Kills the processes of the session ids not in use by a live job or session: double-forked
  // daemons that left their command's process group.
  void SweepStrays();

  AgentOptions options_;
  UniqueFd listen_fd_;
  UniqueFd signal_fd_;
  std::map<uint64_t, Conn> conns_;
  std::map<uint64_t, Job> jobs_;  // keyed by a local job id
  std::map<uint64_t, Session> sessions_;
  std::map<uint64_t, Pty> ptys_;  // keyed by a local id
  std::map<uint64_t, FileJob> file_jobs_;  // keyed by arrival: queued and running
  std::map<pid_t, FileWorker> file_workers_;
  uint64_t next_file_job_id_ = 1;
  uint64_t next_pty_id_ = 1;
  uint64_t next_conn_id_ = 1;
  uint64_t next_job_id_ = 1;
  uint64_t next_session_id_ = 1;
  bool has_bash_ = false;
  bool stop_ = false;
};

// Helpers shared by agent.cc, sessions.cc, pty.cc and files.cc.
// The Error frame answering `request_id` (the errno travels as its own field).
Result<std::string> ErrorFrame(uint64_t request_id, const Error& e);
// The Exit message for a reaped child's wait status: exit code (128+N when signal N killed it),
// signal and the time since `start`.
proto::Exit ExitFromStatus(int wait_status, Clock::time_point start);
// Whether `pid` has a handler installed for `sig` (SigCgt in /proc/PID/status): not ignored, not
// left at its default action.
bool CatchesSignal(pid_t pid, int sig);
// Descendants of `root` (not including it) as (pid, start time) pairs, read from /proc.
std::vector<std::pair<pid_t, uint64_t>> Descendants(pid_t root);
// SIGKILLs `root`'s process group and every descendant found in /proc.
void KillTree(pid_t root);
// The cumulative count of OOM kills in this process's memory cgroup, when visible (Docker); 0 else.
uint64_t OomKillCount();
// Forks `argv` with the given fds as 0/1/2 in a new session, environment `env` and cwd `dir`; every
// other fd is closed. `extra` fds are kept at the given numbers (sessions' control pipes). With
// `controlling_tty`, fd 0 (a terminal) becomes the new session's controlling terminal.
Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    const std::string& dir, int in_fd, int out_fd, int err_fd,
                    const std::vector<std::pair<int, int>>& extra = {},
                    bool controlling_tty = false);
// SIGKILLs every process whose session id is `sid` (a terminal's session: background jobs live in
// other process groups of it). Needs our own pid namespace to be meaningful; harmless otherwise.
void KillSessionMembers(pid_t sid);
// Finds an executable for argv[0] on PATH (from env), as execvp would.
std::string ResolveExecutable(const std::string& name, const std::vector<std::string>& env);

}  // namespace agentfense::runtime::agent
