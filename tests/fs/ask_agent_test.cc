// The sandbox agent's file operations on an `ask` mount (docs/ARCHITECTURE.md, "the agent"): each
// runs in a child of its own, so operations held for a person never stall the agent's loop; the
// number in flight is bounded with a clear error past it; a closed connection kills its held
// operations' children, which the mount lets go at once. The agent runs here as a plain process
// on a real mount (the sandboxed path, through the server and MCP, is tests/py/test_server_ask.py).
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "fs_test_util.h"
#include "runtime/agent_client.h"
#include "runtime/agent_protocol.h"

namespace agentfense::fs::testing {
namespace {

namespace proto = runtime::proto;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Running children and waiting operations the agent accepts (src/runtime/agent/files.cc).
constexpr size_t kRunning = 64;
constexpr size_t kInFlight = 256;

class Agent {
 public:
  explicit Agent(const std::string& workspace) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(sv[1], 3);
      ::execl(AF_AGENT_PATH, AF_AGENT_PATH, "--fd", "3", "--workspace", workspace.c_str(),
              nullptr);
      ::_exit(127);
    }
    ::close(sv[1]);
    fd_.Reset(sv[0]);
    Send(*proto::Encode(0, proto::Hello{}));
    EXPECT_EQ(Next(0).type, proto::MsgType::kHello);
  }
  ~Agent() {
    fd_.Reset();
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void Send(const std::string& frame) {
    ASSERT_EQ(::send(fd_.get(), frame.data(), frame.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(frame.size()));
  }
  void Read(uint64_t id, const std::string& path) {
    proto::FileOp op;
    op.op = proto::FileOpKind::kRead;
    op.path = path;
    op.limit = 4096;
    Send(*proto::Encode(id, op));
  }
  // The next frame answering `id` (others are kept for later), or a kInternal-typed frame after
  // 10 s.
  proto::Frame Next(uint64_t id) {
    auto until = steady_clock::now() + std::chrono::seconds(10);
    while (steady_clock::now() < until) {
      for (auto it = got_.begin(); it != got_.end(); ++it) {
        if (it->first == id) {
          proto::Frame f = it->second;
          got_.erase(it);
          return f;
        }
      }
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) break;
      reader_.Append(std::string_view(buf, static_cast<size_t>(n)));
      while (true) {
        auto f = reader_.Next();
        if (!f.ok() || !*f) break;
        got_.emplace(f->value().request_id, **f);
      }
    }
    ADD_FAILURE() << "no answer to request " << id;
    return proto::Frame{};
  }
  // Closes our end and waits for the agent to exit: true when it did within `limit`.
  bool CloseAndWait(milliseconds limit) {
    fd_.Reset();
    auto until = steady_clock::now() + limit;
    while (steady_clock::now() < until) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd fd_;
  proto::FrameReader reader_;
  std::multimap<uint64_t, proto::Frame> got_;
};

std::vector<AccessRequest> WaitPending(MountedFs& m, size_t n) {
  auto until = steady_clock::now() + std::chrono::seconds(10);
  while (steady_clock::now() < until) {
    auto p = m.fs().PendingAsks();
    if (p.size() >= n) return p;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return m.fs().PendingAsks();
}

TEST(AskAgent, HeldFileOperationsStallNothingAreBoundedAndDieWithTheConnection) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"**/*=write", "/held/**=ask@10"}), FsOptions{});
  ASSERT_TRUE(m);
  ASSERT_EQ(::mkdir(m->src("held").c_str(), 0755), 0);
  for (size_t i = 0; i < kInFlight; ++i) WriteFile(m->src("held/" + std::to_string(i)), "x");
  WriteFile(m->src("free"), "free\n");
  Agent a(m->mnt());

  // One held read, and the loop goes on: a command, a read and a write of other files.
  a.Read(1, "held/0");
  auto held = WaitPending(*m, 1);
  ASSERT_EQ(held.size(), 1u);
  // A person deciding sees what waits: the file operation, not the agent's command line.
  EXPECT_EQ(held[0].command, "file tool: read held/0");
  proto::Exec e;
  e.shell_command = "echo alive";
  auto t0 = steady_clock::now();
  a.Send(*proto::Encode(2, e));
  a.Read(3, "free");
  proto::FileOp w;
  w.op = proto::FileOpKind::kWrite;
  w.path = "new";
  w.data = "n";
  w.flags = proto::kFileWriteTruncate;
  a.Send(*proto::Encode(4, w));
  proto::Frame out = a.Next(2);
  ASSERT_EQ(out.type, proto::MsgType::kOutput);
  EXPECT_EQ(proto::DecodeOutput(out.payload)->data, "alive\n");
  EXPECT_EQ(a.Next(2).type, proto::MsgType::kExit);
  proto::Frame free = a.Next(3);
  ASSERT_EQ(free.type, proto::MsgType::kFileResult);
  EXPECT_EQ(proto::DecodeFileResult(free.payload)->data, "free\n");
  EXPECT_EQ(a.Next(4).type, proto::MsgType::kFileResult);
  EXPECT_LT(steady_clock::now() - t0, std::chrono::seconds(3));

  // Allowed: the held read answers with the content.
  ASSERT_TRUE(m->fs().AnswerAsk(held[0].id, {policy::Level::kRead, "test", ""}).ok());
  proto::Frame r1 = a.Next(1);
  ASSERT_EQ(r1.type, proto::MsgType::kFileResult);
  EXPECT_EQ(proto::DecodeFileResult(r1.payload)->data, "x");

  // Fill it: 64 children held, 192 queued behind them, the next one refused at once.
  for (size_t i = 0; i < kInFlight; ++i) a.Read(100 + i, "held/" + std::to_string(i));
  a.Read(100 + kInFlight, "free");
  proto::Frame refused = a.Next(100 + kInFlight);
  ASSERT_EQ(refused.type, proto::MsgType::kError);
  auto err = proto::DecodeError(refused.payload);
  EXPECT_EQ(err->code, static_cast<uint32_t>(ErrorCode::kResourceExhausted));
  EXPECT_NE(err->message.find("too many file operations"), std::string::npos) << err->message;
  held = WaitPending(*m, kRunning);
  EXPECT_EQ(held.size(), kRunning);
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(m->fs().PendingAsks().size(), kRunning) << "the rest wait in the agent's queue";

  // Closing the connection kills the held children (the mount lets them go), drops the queue,
  // and the agent exits with nothing left behind.
  ASSERT_TRUE(a.CloseAndWait(std::chrono::seconds(5)));
  EXPECT_TRUE(WaitPending(*m, 0).empty());
  auto until = steady_clock::now() + std::chrono::seconds(5);
  while (!m->fs().PendingAsks().empty() && steady_clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(m->fs().PendingAsks().empty());
  for (const auto& h : held) {
    until = steady_clock::now() + std::chrono::seconds(5);
    while (::kill(h.pid, 0) == 0 && steady_clock::now() < until) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    EXPECT_NE(::kill(h.pid, 0), 0) << "file operation child " << h.pid << " outlived the agent";
  }
}

// A caller that stops waiting (its deadline) cancels: the held operation's child is killed, the
// mount lets it go, and neither a worker nor a waiter stays behind until the ask times out.
TEST(AskAgent, AFileOperationGivenUpOnIsCancelledInTheSandbox) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"**/*=write", "/held=ask@10"}), FsOptions{});
  ASSERT_TRUE(m);
  WriteFile(m->src("held"), "x");
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd ours(sv[0]);
  UniqueFd theirs(sv[1]);
  const std::string mnt = m->mnt();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(theirs.get(), 3);
    ::execl(AF_AGENT_PATH, AF_AGENT_PATH, "--fd", "3", "--workspace", mnt.c_str(), nullptr);
    ::_exit(127);
  }
  theirs.Reset();
  {
    auto client = runtime::AgentClient::Create(std::move(ours));
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    proto::FileOp op;
    op.op = proto::FileOpKind::kRead;
    op.path = "held";
    op.limit = 4096;
    auto r = (*client)->FileOp(op, milliseconds(300));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
    auto until = steady_clock::now() + std::chrono::seconds(5);
    while (!m->fs().PendingAsks().empty() && steady_clock::now() < until) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    EXPECT_TRUE(m->fs().PendingAsks().empty()) << "the given-up read still waits at the mount";
    // The connection is still usable: the next operation answers.
    op.path = "nothing-here";
    auto next = (*client)->FileOp(op, std::chrono::seconds(5));
    ASSERT_FALSE(next.ok());
    EXPECT_EQ(next.error().sys_errno(), ENOENT);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace
}  // namespace agentfense::fs::testing
