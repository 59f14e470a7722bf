#include "runtime/agent_client.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

namespace agentfense::runtime {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Error Broken() { return Error(ErrorCode::kUnavailable, "connection to the sandbox agent lost"); }

Error FromAgent(const proto::Frame& f) {
  auto e = proto::DecodeError(f.payload);
  if (!e.ok()) return Error(ErrorCode::kInternal, "undecodable error from agent");
  // The agent runs inside the sandbox: its code is untrusted input, not a valid enum by assumption.
  ErrorCode code = e->code >= 1 && e->code <= 16 ? static_cast<ErrorCode>(e->code)
                                                  : ErrorCode::kInternal;
  return Error(code, "agent: " + e->message, e->sys_errno);
}

// Reads one whole frame synchronously (used only for the Hello exchange, before the reader thread).
Result<proto::Frame> ReadFrameBlocking(int fd, Clock::time_point deadline) {
  proto::FrameReader reader;
  char buf[4096];
  while (true) {
    AF_ASSIGN_OR_RETURN(auto frame, reader.Next());
    if (frame) return std::move(*frame);
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Error(ErrorCode::kUnavailable, "sandbox agent did not answer in time");
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno != EINTR) return Error::FromErrno(errno, "poll agent socket");
    if (r <= 0) continue;
    // One byte-exact read at a time would be slow; reading more is safe because the agent sends
    // nothing else until it has our next request.
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno(errno, "recv from agent");
    if (n == 0) return Broken();
    reader.Append(std::string_view(buf, static_cast<size_t>(n)));
  }
}

}  // namespace

AgentClient::AgentClient(UniqueFd socket) : fd_(std::move(socket)) {}

Result<std::unique_ptr<AgentClient>> AgentClient::Create(UniqueFd socket,
                                                         milliseconds hello_timeout) {
  std::unique_ptr<AgentClient> c(new AgentClient(std::move(socket)));
  proto::Hello mine;
  mine.software = "agentfense-host 0.1";
  AF_ASSIGN_OR_RETURN(std::string frame, proto::Encode(0, mine));
  AF_RETURN_IF_ERROR(c->Send(frame));
  AF_ASSIGN_OR_RETURN(proto::Frame reply,
                      ReadFrameBlocking(c->fd_.get(), Clock::now() + hello_timeout));
  if (reply.type == proto::MsgType::kError) return FromAgent(reply);
  if (reply.type != proto::MsgType::kHello) {
    return Error(ErrorCode::kFailedPrecondition, "sandbox agent did not greet");
  }
  AF_ASSIGN_OR_RETURN(c->hello_, proto::DecodeHello(reply.payload));
  if (c->hello_.min_version > proto::kVersion || c->hello_.max_version < proto::kVersion) {
    return Error(ErrorCode::kFailedPrecondition, "sandbox agent speaks another protocol version");
  }
  c->reader_ = std::thread([raw = c.get()] { raw->ReaderLoop(); });
  return c;
}

Result<std::unique_ptr<AgentClient>> AgentClient::Connect(const std::string& path,
                                                          milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Error(ErrorCode::kInvalidArgument, "agent socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  auto deadline = Clock::now() + timeout;
  while (true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Error::FromErrno(errno, "socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      return Create(std::move(fd), std::max(left, milliseconds(1000)));
    }
    int err = errno;
    if ((err != ENOENT && err != ECONNREFUSED && err != EAGAIN) || Clock::now() >= deadline) {
      return std::move(Error::FromErrno(err, "connect to sandbox agent").With(path));
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
}

AgentClient::~AgentClient() {
  // Terminals still open lose their client first (each waits for a PtyCall call in progress).
  std::map<uint64_t, std::shared_ptr<internal::PtyLink>> links;
  {
    std::lock_guard lock(calls_mu_);
    links.swap(pty_links_);
  }
  for (auto& [id, link] : links) {
    std::lock_guard lock(link->mu);
    link->client = nullptr;
  }
  Shutdown();  // wakes the reader and tells the agent this connection is gone
  if (reader_.joinable()) reader_.join();
}

void AgentClient::Shutdown() {
  // The reader sees recv() return 0, marks every call broken and ends; the destructor joins it.
  if (fd_) ::shutdown(fd_.get(), SHUT_RDWR);
}

void SharedAgentClient::Set(std::unique_ptr<AgentClient> client) {
  std::lock_guard lock(mu_);
  client_ = std::move(client);
}

std::shared_ptr<AgentClient> SharedAgentClient::Get() const {
  std::lock_guard lock(mu_);
  return client_;
}

void SharedAgentClient::Close() {
  std::shared_ptr<AgentClient> client;
  {
    std::lock_guard lock(mu_);
    client.swap(client_);
  }
  if (client) client->Shutdown();
}

Status AgentClient::Send(const std::string& frame) {
  std::lock_guard lock(write_mu_);
  size_t off = 0;
  while (off < frame.size()) {
    ssize_t n = ::send(fd_.get(), frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Broken();
    off += static_cast<size_t>(n);
  }
  return OkStatus();
}

std::shared_ptr<AgentClient::Call> AgentClient::Register(uint64_t id, int notify_fd) {
  auto call = std::make_shared<Call>();
  call->notify_fd = notify_fd;
  std::lock_guard lock(calls_mu_);
  if (!alive_) call->broken = true;
  calls_[id] = call;
  return call;
}

void AgentClient::Unregister(uint64_t id) {
  std::lock_guard lock(calls_mu_);
  calls_.erase(id);
}

void AgentClient::ReaderLoop() {
  proto::FrameReader reader;
  std::string buf(64 * 1024, '\0');
  while (true) {
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reader.Append(std::string_view(buf.data(), static_cast<size_t>(n)));
    bool bad = false;
    while (true) {
      auto next = reader.Next();
      if (!next.ok()) {
        bad = true;  // framing lost: nothing after this can be trusted
        break;
      }
      if (!*next) break;
      proto::Frame frame = std::move(**next);
      std::shared_ptr<Call> call;
      {
        std::lock_guard lock(calls_mu_);
        auto it = calls_.find(frame.request_id);
        if (it != calls_.end()) call = it->second;
      }
      if (!call) continue;  // a late frame of a call that already gave up
      std::lock_guard lock(call->mu);
      call->frames.push_back(std::move(frame));
      call->cv.notify_one();
      if (call->notify_fd >= 0) {
        uint64_t one = 1;
        (void)!::write(call->notify_fd, &one, sizeof(one));
      }
    }
    if (bad) break;
  }
  std::lock_guard lock(calls_mu_);
  alive_ = false;
  for (auto& [id, call] : calls_) {
    std::lock_guard call_lock(call->mu);
    call->broken = true;
    call->cv.notify_one();
    if (call->notify_fd >= 0) {
      uint64_t one = 1;
      (void)!::write(call->notify_fd, &one, sizeof(one));
    }
  }
}

Result<std::optional<proto::Frame>> AgentClient::Wait(Call& call, milliseconds max_wait) {
  std::unique_lock lock(call.mu);
  call.cv.wait_for(lock, max_wait, [&] { return !call.frames.empty() || call.broken; });
  if (!call.frames.empty()) {
    proto::Frame f = std::move(call.frames.front());
    call.frames.pop_front();
    return std::optional<proto::Frame>(std::move(f));
  }
  if (call.broken) return Broken();
  return std::optional<proto::Frame>();
}

Result<ExecResult> AgentClient::Collect(uint64_t id, Call& call, uint32_t timeout_ms,
                                        const OutputCallback& on_output,
                                        const CallOptions& options) {
  ExecResult result;
  std::optional<Clock::time_point> give_up;
  if (timeout_ms > 0) give_up = Clock::now() + milliseconds(timeout_ms) + options.agent_grace;
  while (true) {
    if (options.cancel != nullptr && options.cancel->load()) {
      if (auto f = proto::Encode(id, proto::Cancel{}); f.ok()) (void)Send(*f);
      return Error(ErrorCode::kCancelled, "command cancelled");
    }
    if (give_up && Clock::now() > *give_up) {
      if (auto f = proto::Encode(id, proto::Cancel{}); f.ok()) (void)Send(*f);
      return Error(ErrorCode::kDeadlineExceeded,
                   "sandbox agent did not finish the command in time");
    }
    AF_ASSIGN_OR_RETURN(auto frame, Wait(call, milliseconds(50)));
    if (!frame) continue;
    switch (frame->type) {
      case proto::MsgType::kOutput: {
        AF_ASSIGN_OR_RETURN(proto::Output out, proto::DecodeOutput(frame->payload));
        if (on_output) {
          on_output(out.stream, out.data);
        } else if (out.stream == proto::Stream::kStdout) {
          result.stdout_data += out.data;
        } else {
          result.stderr_data += out.data;
        }
        break;
      }
      case proto::MsgType::kExit: {
        AF_ASSIGN_OR_RETURN(proto::Exit e, proto::DecodeExit(frame->payload));
        result.exit_code = e.exit_code;
        result.signal = e.signal;
        result.duration_us = e.duration_us;
        result.timed_out = e.timed_out;
        result.truncated = e.truncated;
        result.oom = e.oom;
        return result;
      }
      case proto::MsgType::kError:
        return FromAgent(*frame);
      default:
        return Error(ErrorCode::kInternal, "unexpected message from agent");
    }
  }
}

Result<ExecResult> AgentClient::Exec(const proto::Exec& request, const OutputCallback& on_output,
                                     const CallOptions& options) {
  uint64_t id = NextId();
  AF_ASSIGN_OR_RETURN(std::string frame, proto::Encode(id, request));
  auto call = Register(id);
  auto result = [&]() -> Result<ExecResult> {
    AF_RETURN_IF_ERROR(Send(frame));
    return Collect(id, *call, request.timeout_ms, on_output, options);
  }();
  Unregister(id);
  return result;
}

Result<ExecResult> AgentClient::SessionExec(const proto::SessionExec& request,
                                            const OutputCallback& on_output,
                                            const CallOptions& options) {
  uint64_t id = NextId();
  AF_ASSIGN_OR_RETURN(std::string frame, proto::Encode(id, request));
  auto call = Register(id);
  auto result = [&]() -> Result<ExecResult> {
    AF_RETURN_IF_ERROR(Send(frame));
    // A session command may wait behind another one on the same session: allow for that in the
    // client-side guard by not bounding it here beyond the caller's own timeout + grace.
    return Collect(id, *call, request.timeout_ms, on_output, options);
  }();
  Unregister(id);
  return result;
}

Result<proto::Frame> AgentClient::Request(const std::string& frame, uint64_t id,
                                          proto::MsgType expected, milliseconds timeout,
                                          const char* what) {
  auto call = Register(id);
  auto result = [&]() -> Result<proto::Frame> {
    AF_RETURN_IF_ERROR(Send(frame));
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      AF_ASSIGN_OR_RETURN(auto f, Wait(*call, milliseconds(100)));
      if (!f) continue;
      if (f->type == proto::MsgType::kError) return FromAgent(*f);
      if (f->type != expected) return Error(ErrorCode::kInternal, "unexpected message from agent");
      return std::move(*f);
    }
    // Given up: the agent drops the request (a file operation held at an `ask` path would
    // otherwise keep its worker, and its place in the queue, until the ask times out).
    if (auto f = proto::Encode(id, proto::Cancel{}); f.ok()) (void)Send(*f);
    return Error(ErrorCode::kDeadlineExceeded,
                 std::string("sandbox agent did not ") + what + " in time");
  }();
  Unregister(id);
  return result;
}

Result<uint64_t> AgentClient::OpenSession(const proto::SessionOpen& request) {
  uint64_t id = NextId();
  AF_ASSIGN_OR_RETURN(std::string frame, proto::Encode(id, request));
  AF_ASSIGN_OR_RETURN(proto::Frame reply, Request(frame, id, proto::MsgType::kSessionOpened,
                                                  std::chrono::seconds(30), "open the session"));
  AF_ASSIGN_OR_RETURN(auto opened, proto::DecodeSessionOpened(reply.payload));
  return opened.session_id;
}

Status AgentClient::CloseSession(uint64_t session_id) {
  uint64_t id = NextId();
  AF_ASSIGN_OR_RETURN(std::string frame, proto::Encode(id, proto::SessionClose{session_id}));
  AF_RETURN_IF_ERROR(Request(frame, id, proto::MsgType::kOk, std::chrono::seconds(30),
                             "close the session"));
  return OkStatus();
}

Result<proto::FileResult> AgentClient::FileOp(const proto::FileOp& request, milliseconds timeout) {
  if (!hello_.has_files) {
    return Error(ErrorCode::kUnimplemented,
                 "the sandbox agent does not support file operations (it predates them; restart "
                 "the sandbox)");
  }
  uint64_t id = NextId();
  AF_ASSIGN_OR_RETURN(std::string frame, proto::Encode(id, request));
  AF_ASSIGN_OR_RETURN(proto::Frame reply, Request(frame, id, proto::MsgType::kFileResult, timeout,
                                                  "answer a file operation"));
  return proto::DecodeFileResult(reply.payload);
}

Result<std::unique_ptr<PtyCall>> AgentClient::OpenPty(const proto::PtyOpen& request,
                                                      milliseconds timeout) {
  if (!hello_.has_pty) {
    return Error(ErrorCode::kUnimplemented,
                 "the sandbox agent does not support terminals (it predates PTY sessions)");
  }
  uint64_t id = NextId();
  AF_ASSIGN_OR_RETURN(std::string frame, proto::Encode(id, request));
  UniqueFd notify(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!notify) return Error::FromErrno(errno, "eventfd");
  std::unique_ptr<PtyCall> pty(new PtyCall());
  pty->link_ = std::make_shared<internal::PtyLink>();
  pty->link_->client = this;
  pty->id_ = id;
  pty->call_ = Register(id, notify.get());
  pty->notify_ = std::move(notify);
  {
    std::lock_guard lock(calls_mu_);
    pty_links_[id] = pty->link_;
  }
  // From here on ~PtyCall unregisters and, unless the program is known to be gone, kills it.
  AF_RETURN_IF_ERROR(Send(frame));
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    AF_ASSIGN_OR_RETURN(auto f, Wait(*pty->call_, milliseconds(100)));
    if (!f) continue;
    if (f->type == proto::MsgType::kError) {
      pty->done_ = true;  // refused: nothing runs
      return FromAgent(*f);
    }
    if (f->type != proto::MsgType::kPtyOpened) {
      return Error(ErrorCode::kInternal, "unexpected message from agent");
    }
    AF_RETURN_IF_ERROR(proto::DecodePtyOpened(f->payload));
    return pty;
  }
  return Error(ErrorCode::kDeadlineExceeded, "sandbox agent did not open the terminal in time");
}

PtyCall::~PtyCall() {
  {
    std::lock_guard lock(link_->mu);
    if (AgentClient* c = link_->client; c != nullptr) {
      if (!done_ && c->alive()) {
        if (auto f = proto::Encode(id_, proto::Cancel{}); f.ok()) (void)c->Send(*f);
      }
      c->Unregister(id_);
      std::lock_guard calls_lock(c->calls_mu_);
      c->pty_links_.erase(id_);
      link_->client = nullptr;
    }
  }
  // The reader thread may still hold the call: stop it from poking the eventfd before we close it.
  std::lock_guard lock(call_->mu);
  call_->notify_fd = -1;
}

Status PtyCall::SendFrame(const Result<std::string>& frame) {
  if (!frame.ok()) return frame.error();
  std::lock_guard lock(link_->mu);
  if (link_->client == nullptr) return Broken();
  return link_->client->Send(*frame);
}

Status PtyCall::Write(std::string_view bytes) {
  while (!bytes.empty()) {
    size_t n = std::min(bytes.size(), proto::kMaxPtyInput);
    AF_RETURN_IF_ERROR(
        SendFrame(proto::Encode(id_, proto::PtyInput{std::string(bytes.substr(0, n))})));
    bytes.remove_prefix(n);
  }
  return OkStatus();
}

Status PtyCall::Resize(uint16_t rows, uint16_t cols) {
  return SendFrame(proto::Encode(id_, proto::PtyResize{rows, cols}));
}

Status PtyCall::Kill() { return SendFrame(proto::Encode(id_, proto::Cancel{})); }

Result<std::optional<ExecResult>> PtyCall::Poll(const OutputCallback& on_output,
                                                milliseconds max_wait) {
  if (done_) return Error(ErrorCode::kFailedPrecondition, "the terminal's program already ended");
  // Drain the wake-up counter first: a frame queued after this read pokes it again.
  uint64_t count;
  (void)!::read(notify_.get(), &count, sizeof(count));
  auto wait = max_wait;
  while (true) {
    // Wait needs only the call (kept alive by call_), never the client.
    AF_ASSIGN_OR_RETURN(auto f, AgentClient::Wait(*call_, wait));
    if (!f) return std::optional<ExecResult>();
    wait = milliseconds(0);  // hand out everything already queued, then return
    switch (f->type) {
      case proto::MsgType::kOutput: {
        AF_ASSIGN_OR_RETURN(proto::Output out, proto::DecodeOutput(f->payload));
        if (on_output) on_output(out.stream, out.data);
        break;
      }
      case proto::MsgType::kExit: {
        AF_ASSIGN_OR_RETURN(proto::Exit e, proto::DecodeExit(f->payload));
        done_ = true;
        ExecResult r;
        r.exit_code = e.exit_code;
        r.signal = e.signal;
        r.duration_us = e.duration_us;
        return std::optional<ExecResult>(r);
      }
      case proto::MsgType::kError:
        done_ = true;  // the agent gave up on this terminal (e.g. a malformed frame of ours)
        return FromAgent(*f);
      default:
        return Error(ErrorCode::kInternal, "unexpected message from agent");
    }
  }
}

}  // namespace agentfense::runtime
