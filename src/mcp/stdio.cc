#include "mcp/stdio.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <string>

#include "base/worker_threads.h"

namespace agentfense::mcp {
namespace {

// Whole lines to the output, one writer at a time; the first failure (EPIPE: the client closed
// its end) marks the output broken for good.
class LineWriter {
 public:
  explicit LineWriter(int fd) : fd_(fd) {}
  void Write(const std::string& message) {
    std::lock_guard lock(mu_);
    // The message, then its newline: no copy of a message that may hold a whole file.
    for (std::string_view rest : {std::string_view(message), std::string_view("\n")}) {
      while (!rest.empty() && !broken_) {
        ssize_t n = ::write(fd_, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          broken_ = true;
          return;
        }
        rest.remove_prefix(static_cast<size_t>(n));
      }
    }
  }
  bool broken() const {
    std::lock_guard lock(mu_);
    return broken_;
  }

 private:
  const int fd_;
  mutable std::mutex mu_;  // guards broken_ and the descriptor's byte stream; leaf lock
  bool broken_ = false;
};

class Connection {
 public:
  Connection(const Server& server, Workspace& workspace, int out_fd, const StdioOptions& options)
      : server_(server), workspace_(workspace), out_(out_fd), options_(options) {}

  ~Connection() {
    in_flight_.CancelAll();
    workers_.JoinAll();
  }

  bool broken() const { return out_.broken(); }

  void OnLine(std::string_view line) {
    jsonrpc::Decoded d = jsonrpc::Decode(line, options_.max_message_bytes);
    if (!d.message) {
      out_.Write(jsonrpc::EncodeError(d.error.id, d.error.code, d.error.message));
      return;
    }
    jsonrpc::Message& m = *d.message;
    if (m.kind == jsonrpc::Message::Kind::kRequest && m.method == "tools/call") {
      return StartCall(std::move(m));
    }
    Reply r = server_.Handle(m, Context(nullptr));
    if (r.message) out_.Write(*r.message);
  }

  void OnOverlong() {
    out_.Write(jsonrpc::EncodeError(
        std::nullopt, jsonrpc::kInvalidRequest,
        "message exceeds the limit of " + std::to_string(options_.max_message_bytes) + " bytes"));
  }

 private:
  RequestContext Context(const std::atomic<bool>* cancel) {
    RequestContext ctx;
    ctx.workspace = &workspace_;
    ctx.session = &session_;
    ctx.session_mu = &session_mu_;
    ctx.in_flight = &in_flight_;
    ctx.cancel = cancel;
    ctx.notify = [this](const std::string& message) { out_.Write(message); };
    return ctx;
  }

  void StartCall(jsonrpc::Message m) {
    if (in_flight_.size() >= options_.max_calls_in_flight) {
      out_.Write(jsonrpc::EncodeError(m.id, jsonrpc::kInternalError,
                                      "too many tool calls in flight (" +
                                          std::to_string(options_.max_calls_in_flight) +
                                          "); retry when some have ended"));
      return;
    }
    if (!m.id) return;  // only requests reach here; a notification has no call to start
    const std::string key = m.id->Key();
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    if (!in_flight_.Add(key, cancel)) {
      out_.Write(jsonrpc::EncodeError(m.id, jsonrpc::kInvalidRequest,
                                      "a request with this id is already in flight"));
      return;
    }
    workers_.Spawn([this, m = std::move(m), key, cancel] {
      Reply r = server_.Handle(m, Context(cancel.get()));
      in_flight_.Remove(key);
      if (r.message && !cancel->load()) out_.Write(*r.message);
    });
  }

  const Server& server_;
  Workspace& workspace_;
  LineWriter out_;
  const StdioOptions options_;
  std::mutex session_mu_;  // guards session_ (through RequestContext::session_mu)
  LegacySession session_;
  InFlight in_flight_;
  WorkerThreads workers_;  // touched by the reading thread only
};

}  // namespace

Status ServeStdio(const Server& server, Workspace& workspace, int in_fd, int out_fd,
                  const std::atomic<bool>* stop, const StdioOptions& options) {
  // A reply may hold a whole file: with the default 64 KiB pipe it would cross in 16 rounds of
  // write, wake the reader, read. 1 MiB is what an unprivileged process may ask for
  // (/proc/sys/fs/pipe-max-size); on anything but a pipe the call fails and changes nothing.
  for (int fd : {in_fd, out_fd}) (void)::fcntl(fd, F_SETPIPE_SZ, 1 << 20);
  Connection conn(server, workspace, out_fd, options);
  std::string buf;
  bool discarding = false;  // inside an over-long line: drop until its newline
  char chunk[65536];
  while (!conn.broken() && (stop == nullptr || !stop->load())) {
    pollfd p{in_fd, POLLIN, 0};
    int n = ::poll(&p, 1, 200);
    if (n < 0 && errno != EINTR) return Error::FromErrno(errno, "poll stdin");
    if (n <= 0) continue;
    ssize_t got = ::read(in_fd, chunk, sizeof(chunk));
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got < 0) return Error::FromErrno(errno, "read stdin");
    if (got == 0) break;  // the client closed our input: the session is over
    std::string_view data(chunk, static_cast<size_t>(got));
    while (!data.empty()) {
      size_t nl = data.find('\n');
      std::string_view piece = data.substr(0, nl);
      if (discarding) {
        if (nl != std::string_view::npos) {
          discarding = false;
          conn.OnOverlong();
        }
      } else if (buf.size() + piece.size() > options.max_message_bytes) {
        buf.clear();
        if (nl == std::string_view::npos) {
          discarding = true;
        } else {
          conn.OnOverlong();
        }
      } else {
        buf.append(piece);
        if (nl != std::string_view::npos) {
          if (!buf.empty() && buf.back() == '\r') buf.pop_back();
          // Blank lines are not messages; some clients send them as keep-alives.
          if (buf.find_first_not_of(" \t") != std::string::npos) conn.OnLine(buf);
          buf.clear();
        }
      }
      if (nl == std::string_view::npos) break;
      data.remove_prefix(nl + 1);
    }
  }
  return OkStatus();
}

}  // namespace agentfense::mcp
