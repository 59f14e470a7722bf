#include "supervisor/relay.h"

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/log.h"
#include "base/worker_threads.h"
#include "runtime/agent_protocol.h"

namespace agentfense::supervisor {
namespace {

namespace proto = runtime::proto;

class Connection {
 public:
  Connection(UniqueFd fd, std::shared_ptr<RuntimeInstance> rt)
      : fd_(std::move(fd)), rt_(std::move(rt)) {}

  void Run() {
    proto::FrameReader reader;
    char buf[64 * 1024];
    while (true) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      reader.Append(std::string_view(buf, static_cast<size_t>(n)));
      bool bad = false;
      while (true) {
        auto frame = reader.Next();
        if (!frame.ok()) {
          AF_LOG_WARN("relay: dropping connection: {}", frame.error().ToString());
          bad = true;
          break;
        }
        if (!frame->has_value()) break;
        Dispatch(**frame);
      }
      if (bad) break;
    }
    // The server went away: whatever it started on this connection is abandoned, so kill it.
    {
      std::lock_guard lock(mu_);
      for (auto& [id, flag] : cancel_) flag->store(true);
    }
    workers_.JoinAll();
  }

 private:
  // Writes one whole frame; serialized so frames of concurrent commands never interleave.
  void Send(Result<std::string> frame) {
    if (!frame.ok()) return;
    std::lock_guard lock(write_mu_);
    const std::string& bytes = *frame;
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_.get(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // peer gone; Run() notices on its next recv
      off += static_cast<size_t>(n);
    }
  }

  void SendError(uint64_t id, const Error& e) {
    proto::ErrorMsg m;
    m.code = static_cast<uint32_t>(e.code());
    m.message = e.message();
    // AgentClient prefixes "agent: "; do not stack it when relaying an agent's error.
    if (m.message.rfind("agent: ", 0) == 0) m.message.erase(0, 7);
    m.sys_errno = e.sys_errno();
    Send(proto::Encode(id, m));
  }

  void SendExit(uint64_t id, const runtime::ExecResult& r) {
    proto::Exit e;
    e.exit_code = r.exit_code;
    e.signal = r.signal;
    e.duration_us = r.duration_us;
    e.timed_out = r.timed_out;
    e.truncated = r.truncated;
    e.oom = r.oom;
    Send(proto::Encode(id, e));
  }

  std::shared_ptr<std::atomic<bool>> Track(uint64_t id) {
    auto flag = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard lock(mu_);
    cancel_[id] = flag;
    return flag;
  }
  void Untrack(uint64_t id) {
    std::lock_guard lock(mu_);
    cancel_.erase(id);
  }

  // Runs `call` on a worker thread with output streamed back as it comes.
  template <typename Call>
  void Spawn(uint64_t id, Call call) {
    auto flag = Track(id);
    workers_.Spawn([this, id, flag, call = std::move(call)]() {
      runtime::CallOptions options;
      options.cancel = flag.get();
      auto on_output = [this, id](proto::Stream stream, std::string_view data) {
        proto::Output out;
        out.stream = stream;
        out.data = std::string(data);
        Send(proto::Encode(id, out));
      };
      Result<runtime::ExecResult> r = call(on_output, options);
      Untrack(id);
      if (r.ok()) {
        SendExit(id, *r);
      } else {
        SendError(id, r.error());
      }
    });
  }

  // Runs a file operation on a worker thread: it waits on the agent, and the reading thread must
  // keep serving other requests meanwhile. One request, one answer: no output, no cancel.
  void SpawnFileOp(uint64_t id, proto::FileOp op) {
    workers_.Spawn([this, id, op = std::move(op)]() {
      auto r = rt_->FileOp(op);
      if (r.ok()) {
        Send(proto::Encode(id, *r));
      } else {
        SendError(id, r.error());
      }
    });
  }

  // Relays a terminal's output and end until it exits; a Cancel (or this connection closing)
  // kills it. Input and resizes are written by Dispatch directly (PtyCall allows that).
  void SpawnPty(uint64_t id, const std::shared_ptr<runtime::PtyCall>& pty) {
    auto flag = Track(id);
    {
      std::lock_guard lock(mu_);
      ptys_[id] = pty;
    }
    workers_.Spawn([this, id, flag, pty]() {
      auto on_output = [this, id](proto::Stream stream, std::string_view data) {
        Send(proto::Encode(id, proto::Output{stream, std::string(data)}));
      };
      bool killed = false;
      std::optional<std::chrono::steady_clock::time_point> give_up;
      while (true) {
        if (flag->load() && !killed) {
          killed = true;
          (void)pty->Kill();
          give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        }
        auto r = pty->Poll(on_output, std::chrono::milliseconds(100));
        if (!r.ok()) {
          SendError(id, r.error());
          break;
        }
        if (*r) {
          SendExit(id, **r);
          break;
        }
        if (give_up && std::chrono::steady_clock::now() > *give_up) {
          SendError(id, Error(ErrorCode::kDeadlineExceeded, "the terminal did not end"));
          break;
        }
      }
      {
        std::lock_guard lock(mu_);
        ptys_.erase(id);
      }
      Untrack(id);
    });
  }

  void Dispatch(const proto::Frame& f) {
    const uint64_t id = f.request_id;
    switch (f.type) {
      case proto::MsgType::kHello: {
        proto::Hello h;
        h.software = "agentfense-supervisor";
        // Relayed below; an agent without terminals or file operations answers kUnimplemented.
        h.has_pty = true;
        h.has_files = true;
        Send(proto::Encode(id, h));
        return;
      }
      case proto::MsgType::kExec: {
        auto req = proto::DecodeExec(f.payload);
        if (!req.ok()) return SendError(id, req.error());
        Spawn(id, [this, r = std::move(*req)](auto& out, auto& opt) {
          return rt_->Exec(r, out, opt);
        });
        return;
      }
      case proto::MsgType::kSessionExec: {
        auto req = proto::DecodeSessionExec(f.payload);
        if (!req.ok()) return SendError(id, req.error());
        Spawn(id, [this, r = std::move(*req)](auto& out, auto& opt) {
          return rt_->SessionExec(r, out, opt);
        });
        return;
      }
      case proto::MsgType::kSessionOpen: {
        auto req = proto::DecodeSessionOpen(f.payload);
        if (!req.ok()) return SendError(id, req.error());
        auto opened = rt_->OpenSession(*req);
        if (!opened.ok()) return SendError(id, opened.error());
        Send(proto::Encode(id, proto::SessionOpened{*opened}));
        return;
      }
      case proto::MsgType::kSessionClose: {
        auto req = proto::DecodeSessionClose(f.payload);
        if (!req.ok()) return SendError(id, req.error());
        auto st = rt_->CloseSession(req->session_id);
        if (!st.ok()) return SendError(id, st.error());
        Send(proto::Encode(id, proto::Ok{}));
        return;
      }
      case proto::MsgType::kPtyOpen: {
        auto req = proto::DecodePtyOpen(f.payload);
        if (!req.ok()) return SendError(id, req.error());
        auto pty = rt_->OpenPty(*req);
        if (!pty.ok()) return SendError(id, pty.error());
        Send(proto::Encode(id, proto::PtyOpened{}));
        SpawnPty(id, std::shared_ptr<runtime::PtyCall>(std::move(*pty)));
        return;
      }
      case proto::MsgType::kPtyInput:
      case proto::MsgType::kPtyResize: {
        std::shared_ptr<runtime::PtyCall> pty;
        {
          std::lock_guard lock(mu_);
          if (auto it = ptys_.find(id); it != ptys_.end()) pty = it->second;
        }
        if (!pty) return;  // raced with the program's exit: dropped, as the agent does
        if (f.type == proto::MsgType::kPtyInput) {
          auto in = proto::DecodePtyInput(f.payload);
          if (!in.ok()) return SendError(id, in.error());
          (void)pty->Write(in->data);
        } else {
          auto rs = proto::DecodePtyResize(f.payload);
          if (!rs.ok()) return SendError(id, rs.error());
          (void)pty->Resize(rs->rows, rs->cols);
        }
        return;
      }
      case proto::MsgType::kFileOp: {
        auto req = proto::DecodeFileOp(f.payload);
        if (!req.ok()) return SendError(id, req.error());
        SpawnFileOp(id, std::move(*req));
        return;
      }
      case proto::MsgType::kCancel: {
        std::lock_guard lock(mu_);
        if (auto it = cancel_.find(id); it != cancel_.end()) it->second->store(true);
        return;
      }
      default:
        SendError(id, Error(ErrorCode::kInvalidArgument, "unexpected message type"));
    }
  }

  UniqueFd fd_;
  const std::shared_ptr<RuntimeInstance> rt_;
  std::mutex write_mu_;  // whole frames; never held while taking mu_
  std::mutex mu_;        // guards cancel_ and ptys_
  std::map<uint64_t, std::shared_ptr<std::atomic<bool>>> cancel_;
  std::map<uint64_t, std::shared_ptr<runtime::PtyCall>> ptys_;  // open terminals, by request id
  WorkerThreads workers_;  // touched only by the Run() thread
};

}  // namespace

void ServeAgentConnection(UniqueFd conn, std::shared_ptr<RuntimeInstance> runtime) {
  Connection(std::move(conn), std::move(runtime)).Run();
}

}  // namespace agentfense::supervisor
