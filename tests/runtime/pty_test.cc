// PTY sessions through the agent: a real terminal allocated inside the sandbox (bwrap), driven like
// a user would (typed bytes, resizes, Ctrl-C), plus the agent's handling of terminals when the
// host goes away and of hostile PTY frames (agent run directly).
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <regex>
#include <thread>

#include "runtime_test_env.h"

namespace agentfense::runtime::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Types into a PtyCall and reads what the terminal shows.
class Terminal {
 public:
  explicit Terminal(std::unique_ptr<PtyCall> call) : call_(std::move(call)) {}
  PtyCall& call() { return *call_; }
  void Type(const std::string& s) { ASSERT_TRUE(call_->Write(s).ok()); }
  // Pumps output until `re` matches the text received since the last match; returns the match.
  std::smatch WaitFor(const std::string& re, milliseconds timeout = milliseconds(15000)) {
    std::regex rx(re);
    auto deadline = Clock::now() + timeout;
    while (true) {
      std::smatch m;
      if (std::regex_search(screen_.cbegin() + static_cast<long>(seen_), screen_.cend(), m, rx)) {
        seen_ = static_cast<size_t>(m[0].second - screen_.cbegin());
        last_ = m;
        return last_;
      }
      if (Clock::now() > deadline || exit_) {
        ADD_FAILURE() << "no match for /" << re << "/ in terminal output:\n" << screen_;
        return {};
      }
      Pump(milliseconds(100));
    }
  }
  // Runs a command line and returns its exit status (the typed line is echoed by the terminal;
  // the status marker is built so that only the command's output can match it).
  int Run(const std::string& line, std::string* output = nullptr) {
    size_t from = screen_.size();
    Type(line + "; echo \"@@\"\"S:$?@@\"\r");
    auto m = WaitFor("@@S:([0-9]+)@@");
    if (m.empty()) return -1;
    if (output != nullptr) {
      // Without the terminal control sequences (bracketed paste on/off around each prompt) and
      // carriage returns: lines end in "\n".
      *output = std::regex_replace(screen_.substr(from, seen_ - from),
                                   std::regex("\x1b\\[[?0-9;]*[a-zA-Z]|\r"), "");
    }
    return std::stoi(m[1].str());
  }
  // Waits for the program's exit.
  std::optional<ExecResult> WaitExit(milliseconds timeout = milliseconds(15000)) {
    auto deadline = Clock::now() + timeout;
    while (!exit_ && Clock::now() < deadline) Pump(milliseconds(100));
    return exit_;
  }
  const std::string& screen() const { return screen_; }

 private:
  void Pump(milliseconds wait) {
    if (exit_) return;
    auto r = call_->Poll([&](proto::Stream, std::string_view d) { screen_.append(d); }, wait);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    if (*r) exit_ = *r;
  }
  std::unique_ptr<PtyCall> call_;
  std::string screen_;
  size_t seen_ = 0;
  std::smatch last_;
  std::optional<ExecResult> exit_;
};

class BwrapPty : public ::testing::Test {
 protected:
  void SetUp() override {
    AF_REQUIRE_BWRAP();
    auto sb = BwrapSandbox::Start(DefaultSpec(ws_.path()));
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    sb_ = std::move(*sb);
  }
  std::unique_ptr<Terminal> Open(uint16_t rows = 24, uint16_t cols = 80) {
    proto::PtyOpen o;
    o.rows = rows;
    o.cols = cols;
    auto call = sb_->agent()->OpenPty(o);
    EXPECT_TRUE(call.ok()) << call.error().ToString();
    if (!call.ok()) return nullptr;
    return std::make_unique<Terminal>(std::move(*call));
  }
  std::string Exec(const std::string& cmd) {
    auto r = sb_->Exec(Shell(cmd));
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? r->stdout_data : "";
  }
  TempWorkspace ws_;
  std::unique_ptr<BwrapSandbox> sb_;
};

TEST_F(BwrapPty, RealTerminalWithSizeAndResize) {
  auto t = Open(33, 101);
  ASSERT_TRUE(t);
  std::string out;
  EXPECT_EQ(t->Run("tty", &out), 0);
  EXPECT_TRUE(std::regex_search(out, std::regex("\n/dev/pts/[0-9]+\n"))) << out;
  EXPECT_EQ(t->Run("stty size", &out), 0);
  EXPECT_NE(out.find("\n33 101\n"), std::string::npos) << out;
  // The shell is in /workspace and is interactive (job control on: `set -o` shows monitor on).
  EXPECT_EQ(t->Run("pwd; case $- in *i*m*|*m*i*) echo I\"\"M;; esac", &out), 0);
  EXPECT_NE(out.find("\n/workspace\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nIM\n"), std::string::npos) << out;
  // A resize reaches the terminal (and the foreground job gets SIGWINCH).
  ASSERT_TRUE(t->call().Resize(40, 120).ok());
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(t->Run("stty size", &out), 0);
  EXPECT_NE(out.find("\n40 120\n"), std::string::npos) << out;
  t->Type("trap 'echo GOT\"\"WINCH' WINCH; sleep 1 & wait\r");
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_TRUE(t->call().Resize(41, 121).ok());
  t->WaitFor("GOTWINCH");
}

TEST_F(BwrapPty, JobControl) {
  auto t = Open();
  ASSERT_TRUE(t);
  std::string out;
  ASSERT_EQ(t->Run("sleep 100 & echo \"P\"\"ID=$!\"", &out), 0);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("PID=([0-9]+)"))) << out;
  std::string pid = m[1].str();
  // The background job has its own process group (job control), in the terminal's session.
  EXPECT_EQ(t->Run("test \"$(ps -o pgid= -p " + pid + " | tr -d ' ')\" = " + pid), 0)
      << t->screen();
  EXPECT_EQ(t->Run("jobs", &out), 0);
  EXPECT_NE(out.find("sleep 100"), std::string::npos) << out;
  EXPECT_EQ(t->Run("kill %1"), 0);
  EXPECT_EQ(t->Run("wait " + pid + " 2>/dev/null; kill -0 " + pid + " 2>/dev/null"), 1);
  // fg / Ctrl-Z: a stopped job can be brought back.
  t->Type("sleep 30\r");
  std::this_thread::sleep_for(milliseconds(500));
  t->Type("\x1a");  // Ctrl-Z
  t->WaitFor("Stopped");
  EXPECT_EQ(t->Run("jobs -s | grep -c sleep"), 0);
  EXPECT_EQ(t->Run("kill %1"), 0);
}

TEST_F(BwrapPty, CtrlCInterruptsTheForegroundCommandNotTheShell) {
  auto t = Open();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->Run("X=kept"), 0);
  auto start = Clock::now();
  t->Type("sleep 60\r");
  std::this_thread::sleep_for(milliseconds(500));
  t->Type("\x03");
  std::this_thread::sleep_for(milliseconds(300));  // ^C flushes what is queued behind it
  std::string out;
  EXPECT_EQ(t->Run("echo \"$X\"", &out), 0);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
  EXPECT_NE(out.find("\nkept\n"), std::string::npos) << out;
  // The interrupted command's status was 130 (128 + SIGINT).
  t->Type("sleep 60\r");
  std::this_thread::sleep_for(milliseconds(500));
  t->Type("\x03");
  std::this_thread::sleep_for(milliseconds(300));  // ^C flushes what is queued behind it
  t->Type("echo \"@@\"\"C:$?@@\"\r");
  t->WaitFor("@@C:130@@");
}

TEST_F(BwrapPty, ExitCodePropagates) {
  auto t = Open();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->Run("true"), 0);
  t->Type("exit 7\r");
  auto e = t->WaitExit();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->exit_code, 7);
  EXPECT_EQ(e->signal, 0);
  // The call is over: further polls refuse.
  EXPECT_FALSE(t->call().Poll(nullptr, milliseconds(0)).ok());
}

TEST_F(BwrapPty, ArgvProgramAndEnv) {
  proto::PtyOpen o;
  o.argv = {"sh", "-c", "echo \"term=$TERM v=$V\"; test -t 0 && test -t 1 && test -t 2; exit $?"};
  o.env = {{"V", "1"}, {"TERM", "vt100"}};
  auto call = sb_->agent()->OpenPty(o);
  ASSERT_TRUE(call.ok()) << call.error().ToString();
  Terminal t(std::move(*call));
  t.WaitFor("term=vt100 v=1");
  auto e = t.WaitExit();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->exit_code, 0);  // stdin, stdout and stderr are the terminal
  o.argv = {"/no/such/program"};
  call = sb_->agent()->OpenPty(o);
  ASSERT_TRUE(call.ok());
  Terminal t2(std::move(*call));
  e = t2.WaitExit();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->exit_code, 127);
  o.argv.clear();
  o.workdir = "/no/such/dir";
  auto bad = sb_->agent()->OpenPty(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(BwrapPty, ProcessesGoneWhenTheClientLeaves) {
  std::string pids;
  {
    auto t = Open();
    ASSERT_TRUE(t);
    std::string out;
    // A background job (own process group), a nohup'ed one, and a foreground command running.
    ASSERT_EQ(t->Run("sleep 1001 & nohup sleep 1002 >/dev/null 2>&1 & echo \"P\"\"S=$! $$\"", &out),
              0);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, std::regex("PS=([0-9]+) ([0-9]+)"))) << out;
    pids = m[1].str() + " " + m[2].str();
    t->Type("sleep 1003\r");
    std::this_thread::sleep_for(milliseconds(300));
    EXPECT_NE(Exec("ps -eo args"), "");
    EXPECT_NE(Exec("ps -eo args").find("sleep 1003"), std::string::npos);
  }  // the client drops the terminal without the shell exiting
  std::string left;
  for (int i = 0; i < 50; ++i) {
    left = Exec("ps -eo args | grep '^sleep 100[123]' || true");
    if (left.empty()) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(left, "");
  EXPECT_EQ(Exec("for p in " + pids + "; do kill -0 $p 2>/dev/null && echo alive $p; done; true"),
            "");
}

TEST_F(BwrapPty, TimedOutExecSweepSparesTerminals) {
  auto t = Open();
  ASSERT_TRUE(t);
  ASSERT_EQ(t->Run("sleep 1000 & true"), 0);
  // A timed-out exec makes the agent kill every process that belongs to no live command: the
  // terminal's shell and its background job are live and must survive.
  auto r = sb_->Exec(Shell("setsid sleep 500 & sleep 30", 300));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  std::string out;
  EXPECT_EQ(t->Run("jobs -r | grep -c 'sleep 1000'", &out), 0) << out;
  EXPECT_EQ(Exec("ps -eo args | grep -c '^sleep 500' || true"), "0\n");
}

TEST_F(BwrapPty, TerminalIsTheSandboxesOwnAndTiocstiIsRefused) {
  auto t = Open();
  ASSERT_TRUE(t);
  std::string out;
  // The terminal belongs to the sandbox's private devpts instance, not the host's /dev/pts.
  struct stat host_pts {};
  ASSERT_EQ(::stat("/dev/pts", &host_pts), 0);
  ASSERT_EQ(t->Run("stat -L -c \"D\"\"EV=%d\" \"$(tty)\"", &out), 0);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("DEV=([0-9]+)"))) << out;
  EXPECT_NE(std::stoull(m[1].str()), static_cast<unsigned long long>(host_pts.st_dev));
  // Every descriptor of the shell is the sandbox terminal or its own files.
  ASSERT_EQ(t->Run("ls -l /proc/$$/fd | grep -- '->' | grep -v /dev/pts/ | grep -c . ", &out), 1)
      << out;
  // TIOCSTI (push bytes into a terminal's input) is refused outright, even on its own terminal.
  ASSERT_EQ(t->Run("python3 -c 'import fcntl,termios; fcntl.ioctl(0, termios.TIOCSTI, b\"x\")' "
                   "2>&1 | grep -c 'Operation not permitted'",
                   &out),
            0)
      << out;
  EXPECT_EQ(t->Run("test ! -e /dev/tty0 && test ! -e /dev/console"), 0);
}

// --- without a sandbox: the agent's bookkeeping ----------------------------------------------

// A raw connection to a listening agent: frames in, frames out, no client library in the way.
class RawConn {
 public:
  explicit RawConn(const std::string& path) {
    fd_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    for (int i = 0; i < 200; ++i) {
      if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) break;
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  void Send(const Result<std::string>& frame) {
    ASSERT_TRUE(frame.ok());
    ASSERT_EQ(::send(fd_.get(), frame->data(), frame->size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(frame->size()));
  }
  // Next frame, or nullopt after `timeout` without one.
  std::optional<proto::Frame> Next(milliseconds timeout = milliseconds(5000)) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      auto f = reader_.Next();
      if (!f.ok()) return std::nullopt;
      if (*f) return std::move(**f);
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) return std::nullopt;
      reader_.Append(std::string_view(buf, static_cast<size_t>(n)));
    }
  }
  void Close() { fd_.Reset(); }

 private:
  UniqueFd fd_;
  proto::FrameReader reader_;
};

struct ListeningAgent {
  explicit ListeningAgent(const std::string& dir) : sock(dir + "/agent.sock") {
    std::string agent = AgentPath();
    pid = ::fork();
    if (pid == 0) {
      ::execl(agent.c_str(), agent.c_str(), "--listen", sock.c_str(), "--workspace", dir.c_str(),
              nullptr);
      ::_exit(127);
    }
  }
  ~ListeningAgent() {
    ::kill(pid, SIGTERM);
    int status;
    ::waitpid(pid, &status, 0);
  }
  std::string sock;
  pid_t pid;
};

TEST(AgentPty, DroppedConnectionKillsItsTerminalOnly) {
  TempWorkspace ws;
  ListeningAgent agent(ws.path());
  auto other = AgentClient::Connect(agent.sock);
  ASSERT_TRUE(other.ok()) << other.error().ToString();
  EXPECT_TRUE((*other)->agent_hello().has_pty);
  RawConn c(agent.sock);
  c.Send(proto::Encode(0, proto::Hello{}));
  auto hello = c.Next();
  ASSERT_TRUE(hello && hello->type == proto::MsgType::kHello);
  ASSERT_TRUE(proto::DecodeHello(hello->payload)->has_pty);
  proto::PtyOpen o;
  o.argv = {"/bin/sh", "-c", "sleep 1000 & echo PS=$! $$; wait"};
  c.Send(proto::Encode(5, o));
  auto opened = c.Next();
  ASSERT_TRUE(opened);
  ASSERT_EQ(opened->type, proto::MsgType::kPtyOpened) << opened->payload;
  std::string out;
  std::smatch m;
  while (!std::regex_search(out, m, std::regex("PS=([0-9]+) ([0-9]+)\r\n"))) {
    auto f = c.Next();
    ASSERT_TRUE(f) << out;
    ASSERT_EQ(f->type, proto::MsgType::kOutput);
    EXPECT_EQ(f->request_id, 5u);
    out += proto::DecodeOutput(f->payload)->data;
  }
  pid_t bg = std::stoi(m[1].str()), sh = std::stoi(m[2].str());
  ASSERT_EQ(::kill(bg, 0), 0);
  ASSERT_EQ(::kill(sh, 0), 0);
  c.Close();  // the host goes away without a word
  for (int i = 0; i < 100 && (::kill(bg, 0) == 0 || ::kill(sh, 0) == 0); ++i) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_NE(::kill(bg, 0), 0);
  EXPECT_NE(::kill(sh, 0), 0);
  // The agent and the other connection carry on.
  auto r = (*other)->Exec(Shell("echo fine"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "fine\n");
}

TEST(AgentPty, HostileFramesGetCleanAnswers) {
  TempWorkspace ws;
  ListeningAgent agent(ws.path());
  RawConn c(agent.sock);
  c.Send(proto::Encode(0, proto::Hello{}));
  ASSERT_TRUE(c.Next());
  // Input and resizes for terminals that do not exist are dropped without an answer.
  c.Send(proto::Encode(999, proto::PtyInput{"rm -rf /\r"}));
  c.Send(proto::Encode(999, proto::PtyResize{10, 10}));
  EXPECT_FALSE(c.Next(milliseconds(300)));
  // A resize to 0x0 (hand-made: the encoder refuses it) gets an Error for that id only.
  std::string zero = *proto::Encode(7, proto::PtyResize{1, 1});
  // Payload: two U64 fields (6-byte TLV header + 8 bytes each); zero the low bytes of both.
  zero[proto::kHeaderSize + 6] = 0;
  zero[proto::kHeaderSize + 14 + 6] = 0;
  c.Send(zero);
  auto err = c.Next();
  ASSERT_TRUE(err);
  EXPECT_EQ(err->type, proto::MsgType::kError);
  EXPECT_EQ(err->request_id, 7u);
  // A PtyOpen without a size, and a message only the agent may send.
  std::string nosize = *proto::Encode(8, proto::PtyOpened{});
  nosize[6] = static_cast<char>(proto::MsgType::kPtyOpen);
  c.Send(nosize);
  auto e8 = c.Next();
  ASSERT_TRUE(e8);
  EXPECT_EQ(e8->type, proto::MsgType::kError);
  EXPECT_EQ(e8->request_id, 8u);
  c.Send(proto::Encode(8, proto::PtyOpened{}));
  e8 = c.Next();
  ASSERT_TRUE(e8);
  EXPECT_EQ(e8->type, proto::MsgType::kError);
  // A program that does not exist: the terminal opens, the program ends with 127.
  proto::PtyOpen o;
  o.argv = {"/no/such/program"};
  c.Send(proto::Encode(10, o));
  auto opened = c.Next();
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->type, proto::MsgType::kPtyOpened);
  // The same request id again while it is open is refused; the first one is unaffected.
  o.argv = {"/bin/sh", "-c", "sleep 1; exit 3"};
  c.Send(proto::Encode(9, o));
  c.Send(proto::Encode(9, o));
  int opened9 = 0, refused9 = 0;
  std::map<uint64_t, int> exits;
  for (int i = 0; i < 20 && exits.size() < 2; ++i) {
    auto f = c.Next();
    ASSERT_TRUE(f);
    if (f->type == proto::MsgType::kPtyOpened && f->request_id == 9) ++opened9;
    if (f->type == proto::MsgType::kError && f->request_id == 9) ++refused9;
    if (f->type == proto::MsgType::kExit) {
      exits[f->request_id] = proto::DecodeExit(f->payload)->exit_code;
    }
  }
  EXPECT_EQ(opened9, 1);
  EXPECT_EQ(refused9, 1);
  EXPECT_EQ(exits[10], 127);
  EXPECT_EQ(exits[9], 3);
}

TEST(AgentPty, InputFloodKeepsTheAgentHealthy) {
  TempWorkspace ws;
  DirectAgent a(ws.path());
  proto::PtyOpen o;
  o.argv = {"/bin/sh", "-c", "sleep 3"};  // never reads its input
  auto call = a.client().OpenPty(o);
  ASSERT_TRUE(call.ok()) << call.error().ToString();
  // 4 MiB typed into a program that does not read: the agent buffers a bounded amount and stays
  // responsive to other requests.
  std::string flood(4 << 20, 'y');
  ASSERT_TRUE((*call)->Write(flood).ok());
  auto start = Clock::now();
  auto r = a.client().Exec(Shell("echo alive"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "alive\n");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  // A second open with the same request id is impossible through the client, and a terminal of
  // absurd size is refused before it is sent.
  proto::PtyOpen huge;
  huge.rows = 0;
  auto bad = a.client().OpenPty(huge);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE((*call)->Kill().ok());
  std::optional<ExecResult> e;
  for (int i = 0; i < 100 && !e; ++i) {
    auto p = (*call)->Poll(nullptr, milliseconds(100));
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    e = *p;
  }
  ASSERT_TRUE(e);
  EXPECT_EQ(e->signal, SIGKILL);
}

}  // namespace
}  // namespace agentfense::runtime::testing
