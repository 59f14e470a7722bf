// Exec through a real bwrap sandbox: exit codes, signals, streams, stdin, env, workdir, timeouts,
// output caps, binary output.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>
#include <vector>

#include "runtime_test_env.h"

namespace agentfense::runtime::testing {
namespace {

class BwrapExec : public ::testing::Test {
 protected:
  void SetUp() override {
    AF_REQUIRE_BWRAP();
    auto sb = BwrapSandbox::Start(DefaultSpec(ws_.path()));
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    sb_ = std::move(*sb);
  }
  ExecResult Run(const std::string& cmd, uint32_t timeout_ms = 20000) {
    auto r = sb_->Exec(Shell(cmd, timeout_ms));
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : ExecResult{};
  }
  TempWorkspace ws_;
  std::unique_ptr<BwrapSandbox> sb_;
};

TEST_F(BwrapExec, ExitCodesAndSignals) {
  EXPECT_EQ(Run("true").exit_code, 0);
  EXPECT_EQ(Run("exit 3").exit_code, 3);
  auto k = Run("kill -9 $$");
  EXPECT_EQ(k.exit_code, 137);
  EXPECT_EQ(k.signal, SIGKILL);
  auto t = Run("kill -TERM $$");
  EXPECT_EQ(t.exit_code, 128 + SIGTERM);
  EXPECT_EQ(Run("no-such-command-xyz").exit_code, 127);
}

TEST_F(BwrapExec, ArgvFormAndPathLookup) {
  proto::Exec e;
  e.argv = {"printf", "%s|%s", "a b", "$HOME"};
  e.timeout_ms = 10000;
  e.output_cap = 1 << 20;
  auto r = sb_->Exec(e);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->stdout_data, "a b|$HOME");  // no shell: no expansion
  e.argv = {"/no/such/binary"};
  r = sb_->Exec(e);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
}

TEST_F(BwrapExec, StreamsSeparateAndOrdered) {
  auto r = Run("for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done");
  EXPECT_EQ(r.stdout_data, "out1\nout2\nout3\nout4\nout5\n");
  EXPECT_EQ(r.stderr_data, "err1\nerr2\nerr3\nerr4\nerr5\n");
}

TEST_F(BwrapExec, StreamingCallbackGetsTypedChunks) {
  std::string out, err;
  int chunks = 0;
  auto r = sb_->Exec(Shell("echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c"),
                     [&](proto::Stream s, std::string_view d) {
                       ++chunks;
                       (s == proto::Stream::kStdout ? out : err) += d;
                     });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(out, "a\nc\n");
  EXPECT_EQ(err, "b\n");
  EXPECT_GE(chunks, 3);
  EXPECT_TRUE(r->stdout_data.empty());
}

TEST_F(BwrapExec, Stdin) {
  proto::Exec e = Shell("tr a-z A-Z; echo; wc -c");
  e.stdin_data = "hello";
  auto r = sb_->Exec(e);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "HELLO\n0\n");
  // Without stdin a reader gets EOF at once instead of hanging.
  auto c = Run("cat; echo done", 5000);
  EXPECT_EQ(c.stdout_data, "done\n");
  EXPECT_FALSE(c.timed_out);
  // Large stdin (well over a pipe buffer).
  e = Shell("wc -c");
  e.stdin_data.assign(600 * 1024, 'x');
  r = sb_->Exec(e);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, std::to_string(600 * 1024) + "\n");
}

TEST_F(BwrapExec, EnvIsCleanAndRequestEnvApplies) {
  ::setenv("AF_CANARY_SECRET", "leaked", 1);
  proto::Exec e = Shell("env");
  e.env = {{"MY_VAR", "v1"}, {"PATH", "/usr/bin:/bin"}};
  auto r = sb_->Exec(e);
  ::unsetenv("AF_CANARY_SECRET");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data.find("AF_CANARY_SECRET"), std::string::npos);
  EXPECT_EQ(r->stdout_data.find("leaked"), std::string::npos);
  EXPECT_NE(r->stdout_data.find("MY_VAR=v1\n"), std::string::npos);
  EXPECT_NE(r->stdout_data.find("PATH=/usr/bin:/bin\n"), std::string::npos);
  EXPECT_NE(r->stdout_data.find("HOME=/tmp\n"), std::string::npos);
  // The agent's own environment (set by bwrap) is not inherited either: LANG comes from the base.
  EXPECT_EQ(r->stdout_data.find("LD_"), std::string::npos);
}

TEST_F(BwrapExec, Workdir) {
  ASSERT_EQ(::mkdir((ws_.path() + "/sub").c_str(), 0777), 0);
  EXPECT_EQ(Run("pwd").stdout_data, "/workspace\n");
  proto::Exec e = Shell("pwd");
  e.workdir = "sub";
  auto r = sb_->Exec(e);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "/workspace/sub\n");
  e.workdir = "/tmp";
  EXPECT_EQ(sb_->Exec(e)->stdout_data, "/tmp\n");
  e.workdir = "/nonexistent";
  auto bad = sb_->Exec(e);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(BwrapExec, TimeoutKillsGrandchildren) {
  auto start = std::chrono::steady_clock::now();
  auto r = Run("sh -c 'sleep 1000 & sleep 1000' & sleep 1000", 500);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(took, std::chrono::seconds(5));
  auto ps = Run("ps -eo pid,comm | grep -c sleep || true");
  EXPECT_EQ(ps.stdout_data, "0\n") << Run("ps -ef").stdout_data;
}

TEST_F(BwrapExec, TimeoutKillsCommandIgnoringSigterm) {
  auto start = std::chrono::steady_clock::now();
  auto r = Run("trap '' TERM; while :; do sleep 0.05; done", 300);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 137);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(BwrapExec, TimeoutKillsEscapedDaemon) {
  // setsid leaves the command's process group; the agent's sweep still finds it.
  auto r = Run("setsid sh -c 'sleep 1000' >/dev/null 2>&1 < /dev/null & sleep 1000", 300);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(Run("ps -eo comm | grep -c '^sleep' || true").stdout_data, "0\n");
}

TEST_F(BwrapExec, ClosedStdoutStillRunningIsTimedOut) {
  auto r = Run("exec >&- 2>&-; sleep 1000", 400);
  EXPECT_TRUE(r.timed_out);
}

TEST_F(BwrapExec, BackgroundChildHoldingPipesDoesNotHang) {
  auto start = std::chrono::steady_clock::now();
  auto r = Run("sleep 1000 & echo started", 10000);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_data, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(BwrapExec, HugeOutputIsTruncatedAndBounded) {
  proto::Exec e = Shell("head -c 209715200 /dev/zero; echo tail >&2", 60000);
  e.output_cap = 1 << 20;
  auto r = sb_->Exec(e);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->stdout_data.size(), 1u << 20);
  EXPECT_EQ(r->stderr_data, "tail\n");
  // The agent (bwrap's child on the host) never held the output: its peak RSS stays small.
  std::ifstream children("/proc/" + std::to_string(sb_->pid()) + "/task/" +
                         std::to_string(sb_->pid()) + "/children");
  int agent_pid = 0;
  children >> agent_pid;
  ASSERT_GT(agent_pid, 0);
  std::ifstream status("/proc/" + std::to_string(agent_pid) + "/status");
  std::string line;
  long hwm_kb = -1;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) hwm_kb = std::stol(line.substr(6));
  }
  EXPECT_GT(hwm_kb, 0);
  RecordProperty("agent_peak_rss_kb", std::to_string(hwm_kb));
  EXPECT_LT(hwm_kb, 32 * 1024) << "agent peak RSS " << hwm_kb << " kB";
}

TEST_F(BwrapExec, BinaryOutputIsExact) {
  auto r = Run("printf '\\000\\001\\377abc\\000'");
  EXPECT_EQ(r.stdout_data, std::string("\0\1\377abc\0", 7));
}

TEST_F(BwrapExec, ConcurrentExecs) {
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&, i] {
      auto r = sb_->Exec(Shell("sleep 0.3; echo " + std::to_string(i)));
      if (r.ok() && r->stdout_data == std::to_string(i) + "\n") ++ok;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 8);
}

// Stop while other threads are inside calls (the supervisor's relay workers when a sandbox is
// stopped under commands): the calls fail, nothing is freed under them (this freed the agent
// client; run under scripts/sanitize), and calls after the stop are refused.
TEST_F(BwrapExec, StopUnderCallsFailsThem) {
  auto session = sb_->OpenSession({});
  ASSERT_TRUE(session.ok()) << session.error().ToString();
  std::vector<std::thread> ts;
  std::vector<Result<ExecResult>> results(4, Error(ErrorCode::kInternal, "not run"));
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&, i] { results[i] = sb_->Exec(Shell("sleep 20")); });
  }
  ts.emplace_back([&] {
    proto::SessionExec e;
    e.session_id = *session;
    e.command = "sleep 20";
    results[3] = sb_->SessionExec(e);
  });
  std::atomic<bool> stopped{false};
  std::thread prober([&] {  // the supervisor's status requests ask while it stops
    while (!stopped) (void)sb_->running();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(sb_->Stop().ok());
  stopped = true;
  prober.join();
  for (auto& t : ts) t.join();
  for (const auto& r : results) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().ToString();
  }
  EXPECT_FALSE(sb_->running());
  EXPECT_EQ(sb_->agent(), nullptr);
  auto after = sb_->Exec(Shell("true"));
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(BwrapExec, CancelKillsCommand) {
  std::atomic<bool> cancel{false};
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  CallOptions o;
  o.cancel = &cancel;
  auto r = sb_->Exec(Shell("sleep 1000"), nullptr, o);
  t.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCancelled);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(Run("ps -eo comm | grep -c '^sleep' || true").stdout_data, "0\n");
}

TEST_F(BwrapExec, OversizedRequestIsAClearError) {
  proto::Exec e = Shell("true");
  e.stdin_data.assign(2 << 20, 'x');
  auto r = sb_->Exec(e);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(Run("echo still-alive").stdout_data, "still-alive\n");
}

}  // namespace
}  // namespace agentfense::runtime::testing
