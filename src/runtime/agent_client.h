// Host-side client of agentfense-agent over one connected Unix stream socket. Both runtimes use it:
// bwrap hands the agent one end of a socketpair, Docker connects to a socket in a bound directory.
//
// One client multiplexes any number of concurrent calls from any number of threads over the single
// connection (request ids); a reader thread owned by the client routes incoming frames to the call
// that waits for them. Output callbacks run on the calling thread, never on the reader thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "base/result.h"
#include "base/unique_fd.h"
#include "runtime/agent_protocol.h"

namespace agentfense::runtime {

struct ExecResult {
  int exit_code = 0;  // exit status, or 128+signal
  int signal = 0;     // terminating signal, 0 if the command exited
  uint64_t duration_us = 0;
  bool timed_out = false;  // the agent killed the tree at the deadline (map to DEADLINE_EXCEEDED)
  bool truncated = false;  // output beyond output_cap was dropped (per stream)
  bool oom = false;        // the OOM killer fired (set by the launcher, which sees the cgroup)
  // Collected output, only when no OutputCallback was given (else it was streamed).
  std::string stdout_data;
  std::string stderr_data;
};

// Receives output as it is produced. Runs on the thread that called Exec / SessionExec.
using OutputCallback = std::function<void(proto::Stream stream, std::string_view data)>;

struct CallOptions {
  // Polled about every 50 ms; when it turns true the client sends Cancel (the agent kills the
  // command's tree) and the call returns kCancelled.
  const std::atomic<bool>* cancel = nullptr;
  // The agent enforces timeout_ms itself. If it has not answered timeout_ms + this much later, the
  // client gives up (kDeadlineExceeded) and cancels: a stuck agent never hangs a caller forever.
  std::chrono::milliseconds agent_grace{15000};
};

class PtyCall;
class AgentClient;

namespace internal {
// Ties a PtyCall to its client: ~AgentClient clears `client` (under `mu`), so a PtyCall that
// outlives its client fails cleanly (kUnavailable) instead of touching freed memory.
struct PtyLink {
  std::mutex mu;
  AgentClient* client = nullptr;
};
}  // namespace internal

class AgentClient {
 public:
  // Takes ownership of a connected stream socket, exchanges Hello and starts the reader thread.
  // Errors: kUnavailable if the agent does not answer within hello_timeout or the connection
  // breaks, kFailedPrecondition on a version mismatch.
  static Result<std::unique_ptr<AgentClient>> Create(
      UniqueFd socket, std::chrono::milliseconds hello_timeout = std::chrono::seconds(10));

  // Connects to the agent's listening socket at `path`, retrying until `timeout` (the agent of a
  // just-started container may not listen yet), then as Create.
  static Result<std::unique_ptr<AgentClient>> Connect(
      const std::string& path, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Shuts the connection down (the agent kills what this connection started) and joins the reader.
  ~AgentClient();
  AgentClient(const AgentClient&) = delete;
  AgentClient& operator=(const AgentClient&) = delete;

  // Runs a command. A timeout is a result (timed_out = true), not an error; errors are for requests
  // the agent refused (kInvalidArgument: bad workdir, empty command...) or a broken connection
  // (kUnavailable). Thread-safe.
  Result<ExecResult> Exec(const proto::Exec& request, const OutputCallback& on_output = nullptr,
                          const CallOptions& options = {});

  // Starts a persistent shell; returns its id. Thread-safe.
  Result<uint64_t> OpenSession(const proto::SessionOpen& request);

  // Runs `request.command` in the session. Commands on one session are serialized by the agent.
  // kFailedPrecondition "session closed" when the shell exited (e.g. the user ran `exit`);
  // kNotFound for an unknown id. Thread-safe.
  Result<ExecResult> SessionExec(const proto::SessionExec& request,
                                 const OutputCallback& on_output = nullptr,
                                 const CallOptions& options = {});

  // Kills the session's whole process tree. kNotFound for an unknown id. Thread-safe.
  Status CloseSession(uint64_t session_id);

  // Starts `request.argv` (default: an interactive shell) on a new terminal allocated inside the
  // sandbox, and returns once it runs. kUnimplemented when the agent predates PTY support;
  // kInvalidArgument for a bad workdir or size; kFailedPrecondition when the sandbox has no usable
  // /dev/ptmx.
  Result<std::unique_ptr<PtyCall>> OpenPty(
      const proto::PtyOpen& request, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // A file operation inside the sandbox, as its identity (proto::FileOp). Errors carry the errno
  // the operation failed with (sys_errno()); kUnimplemented when the agent predates file
  // operations. Thread-safe.
  Result<proto::FileResult> FileOp(const proto::FileOp& request,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Breaks the connection now, for every thread using this client: calls in flight and later
  // fail with kUnavailable, and the agent kills what the connection started. The object stays
  // valid for callers still inside a call. Thread-safe.
  void Shutdown();

  // False once the connection broke (agent died); every later call fails with kUnavailable.
  bool alive() const { return alive_.load(); }
  const proto::Hello& agent_hello() const { return hello_; }

 private:
  friend class PtyCall;
  struct Call {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<proto::Frame> frames;  // bounded by the agent's per-stream output cap
    bool broken = false;
    int notify_fd = -1;  // eventfd poked on every frame (PTY calls), owned by the PtyCall
  };

  explicit AgentClient(UniqueFd socket);
  Status Send(const std::string& frame);
  uint64_t NextId() { return next_id_.fetch_add(1); }
  std::shared_ptr<Call> Register(uint64_t id, int notify_fd = -1);
  void Unregister(uint64_t id);
  // Waits for the next frame of a call; nullopt on timeout. Error if the connection broke.
  static Result<std::optional<proto::Frame>> Wait(Call& call, std::chrono::milliseconds max_wait);
  // Sends `frame` (request `id`) and waits for its one answer of type `expected`; an Error frame
  // becomes the agent's error, silence kDeadlineExceeded "did not <what> in time".
  Result<proto::Frame> Request(const std::string& frame, uint64_t id, proto::MsgType expected,
                               std::chrono::milliseconds timeout, const char* what);
  Result<ExecResult> Collect(uint64_t id, Call& call, uint32_t timeout_ms,
                             const OutputCallback& on_output, const CallOptions& options);
  void ReaderLoop();

  UniqueFd fd_;
  proto::Hello hello_;
  std::atomic<bool> alive_{true};
  std::atomic<uint64_t> next_id_{1};
  std::mutex write_mu_;  // serializes whole frames on the socket; never held with calls_mu_
  std::mutex calls_mu_;  // guards calls_; taken before a Call::mu, never after
  std::map<uint64_t, std::shared_ptr<Call>> calls_;
  std::map<uint64_t, std::shared_ptr<internal::PtyLink>> pty_links_;  // guarded by calls_mu_
  std::thread reader_;
};

// A program on a terminal inside the sandbox (AgentClient::OpenPty). Poll is for one thread at a
// time; Write, Resize and Kill only send frames and may be called from any thread, also while
// another one polls. Once its AgentClient is destroyed every call fails with kUnavailable.
class PtyCall {
 public:
  // Kills the program's whole terminal session unless it already exited.
  ~PtyCall();
  PtyCall(const PtyCall&) = delete;
  PtyCall& operator=(const PtyCall&) = delete;

  // Bytes typed into the terminal (any size: sent in frames of at most kMaxPtyInput).
  Status Write(std::string_view bytes);
  // The window size changed: the program's foreground job gets SIGWINCH.
  Status Resize(uint16_t rows, uint16_t cols);
  // Hands the output that arrived to `on_output` (stream stdout), waiting up to max_wait for
  // some. Returns the result once the program exited (exit_code, signal as for Exec), nullopt while
  // it runs. Errors: the connection broke (kUnavailable) or the agent refused (its code).
  Result<std::optional<ExecResult>> Poll(const OutputCallback& on_output,
                                         std::chrono::milliseconds max_wait);
  // Readable when Poll has something to hand out: for a poll() loop over other fds too.
  int wait_fd() const { return notify_.get(); }
  // Kills the program and its terminal session now (the Exit still arrives through Poll).
  Status Kill();

 private:
  friend class AgentClient;
  PtyCall() = default;

  Status SendFrame(const Result<std::string>& frame);

  std::shared_ptr<internal::PtyLink> link_;
  uint64_t id_ = 0;
  std::shared_ptr<AgentClient::Call> call_;
  UniqueFd notify_;  // eventfd the reader thread pokes (under call_->mu) when a frame arrives
  std::atomic<bool> done_{false};  // the program ended (or was never started)
};

// A running sandbox's agent connection, shared by the threads that call into it (the supervisor's
// relay workers). Close() ends it for all of them at once, while a caller still inside a call
// keeps the client object alive until that call returns: the last holder frees it. Stopping a
// sandbox used to free its client under such calls (a use-after-free in the supervisor).
class SharedAgentClient {
 public:
  SharedAgentClient() = default;
  explicit SharedAgentClient(std::unique_ptr<AgentClient> client) : client_(std::move(client)) {}
  SharedAgentClient(const SharedAgentClient&) = delete;
  SharedAgentClient& operator=(const SharedAgentClient&) = delete;

  void Set(std::unique_ptr<AgentClient> client);
  // The client to call through; null once closed.
  std::shared_ptr<AgentClient> Get() const;
  // Shuts the connection down (AgentClient::Shutdown) and drops this reference. Idempotent.
  void Close();

 private:
  mutable std::mutex mu_;
  std::shared_ptr<AgentClient> client_;
};

}  // namespace agentfense::runtime
