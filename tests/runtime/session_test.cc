// SPEC §6 sessions in a real bwrap sandbox.
#include <atomic>
#include <sstream>
#include <thread>

#include "runtime_test_env.h"

namespace agentfense::runtime::testing {
namespace {

class Session : public ::testing::Test {
 protected:
  void SetUp() override {
    AF_REQUIRE_BWRAP();
    auto sb = BwrapSandbox::Start(DefaultSpec(ws_.path()));
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    sb_ = std::move(*sb);
    auto id = sb_->OpenSession({});
    ASSERT_TRUE(id.ok()) << id.error().ToString();
    id_ = *id;
  }
  Result<ExecResult> Try(const std::string& cmd, uint32_t timeout_ms = 20000) {
    proto::SessionExec e;
    e.session_id = id_;
    e.command = cmd;
    e.timeout_ms = timeout_ms;
    e.output_cap = 16 << 20;
    return sb_->SessionExec(e);
  }
  ExecResult Run(const std::string& cmd, uint32_t timeout_ms = 20000) {
    auto r = Try(cmd, timeout_ms);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : ExecResult{};
  }
  TempWorkspace ws_;
  std::unique_ptr<BwrapSandbox> sb_;
  uint64_t id_ = 0;
};

TEST_F(Session, UsesBash) { EXPECT_EQ(Run("echo $BASH_VERSION | cut -c1").stdout_data, "5\n"); }

TEST_F(Session, StatePersists) {
  Run("mkdir -p /tmp/d && cd /tmp/d");
  EXPECT_EQ(Run("pwd").stdout_data, "/tmp/d\n");
  Run("export FOO=bar; LOCALVAR=x");
  EXPECT_EQ(Run("echo $FOO-$LOCALVAR; sh -c 'echo $FOO'").stdout_data, "bar-x\nbar\n");
  Run("greet() { echo hi \"$1\"; }");
  EXPECT_EQ(Run("greet you").stdout_data, "hi you\n");
  Run("alias ll='echo aliased'");
  EXPECT_EQ(Run("ll").stdout_data, "aliased\n");
}

TEST_F(Session, BackgroundJobsPersist) {
  Run("sleep 300 & echo $! > /tmp/bgpid");
  auto r = Run("kill -0 $(cat /tmp/bgpid) && echo alive; jobs | wc -l");
  EXPECT_EQ(r.stdout_data, "alive\n1\n");
  // Output of a background job written later does not corrupt other commands' results.
  Run("(sleep 0.3; echo late) &");
  EXPECT_EQ(Run("echo now").stdout_data, "now\n");
}

TEST_F(Session, SeparateStreamsAndExitCodes) {
  auto r = Run("echo out; echo err >&2; false");
  EXPECT_EQ(r.stdout_data, "out\n");
  EXPECT_EQ(r.stderr_data, "err\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(Run("(exit 42)").exit_code, 42);
  EXPECT_EQ(Run("true").exit_code, 0);
  EXPECT_EQ(Run("sh -c 'kill -9 $$'").exit_code, 137);
}

TEST_F(Session, OutputCannotForgeResults) {
  // Things that would break marker-based protocols.
  auto r = Run("printf '0\\0'; printf '\\0\\0__END__ 0\\n'; echo; echo done");
  EXPECT_EQ(r.stdout_data, std::string("0\0\0\0__END__ 0\n\ndone\n", 20));
  EXPECT_EQ(r.exit_code, 0);
  r = Run("echo 7 >&61; echo x 2>/dev/null >&60; exit_code=3; (exit 5)");
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(Run("echo next").stdout_data, "next\n");
}

TEST_F(Session, RobustToSyntax) {
  EXPECT_EQ(Run("# just a comment").exit_code, 0);
  EXPECT_EQ(Run("echo a # trailing comment\n# another\necho b").stdout_data, "a\nb\n");
  EXPECT_EQ(Run("cat <<'EOF'\nline $1\n  two\nEOF").stdout_data, "line $1\n  two\n");
  EXPECT_EQ(Run("for i in 1 2; do\n  echo $i\ndone\nif true; then\n echo yes\nfi").stdout_data,
            "1\n2\nyes\n");
  auto bad = Run("if then fi (");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_FALSE(bad.stderr_data.empty());
  EXPECT_EQ(Run("echo ok").stdout_data, "ok\n");
  EXPECT_EQ(Run("echo trailing > /tmp/bgout &").exit_code, 0);
  EXPECT_EQ(Run("wait; cat /tmp/bgout; echo 'single \" quote'").stdout_data,
            "trailing\nsingle \" quote\n");
}

TEST_F(Session, StdinReadersGetEof) {
  auto r = Run("cat; read x; echo read=$?; head -c 10", 5000);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.stdout_data, "read=1\n");
  EXPECT_EQ(Run("echo after").stdout_data, "after\n");
}

TEST_F(Session, TimeoutInterruptsForegroundOnly) {
  Run("sleep 300 & echo $! > /tmp/bg");
  Run("export KEEP=1; cd /tmp");
  auto start = std::chrono::steady_clock::now();
  auto r = Run("sleep 1000", 300);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // The session is usable, its state intact, its earlier background job alive.
  auto after = Run("echo $KEEP $(pwd); kill -0 $(cat /tmp/bg) && echo bg-alive");
  EXPECT_EQ(after.stdout_data, "1 /tmp\nbg-alive\n");
  EXPECT_FALSE(after.timed_out);
  // A pipeline with grandchildren is interrupted too.
  r = Run("sh -c 'sleep 1000 | cat' | cat", 300);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(Run("echo fine").stdout_data, "fine\n");
}

TEST_F(Session, TimeoutInBuiltinLoopClosesSession) {
  auto r = Run("while :; do :; done", 300);
  EXPECT_TRUE(r.timed_out);
  auto next = Try("echo x");
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(Session, ExitClosesSessionWithClearError) {
  auto r = Run("echo bye; exit 4");
  EXPECT_EQ(r.stdout_data, "bye\n");
  EXPECT_EQ(r.exit_code, 4);
  auto next = Try("echo x");
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(next.error().message().find("closed"), std::string::npos);
  // Other sessions are unaffected.
  auto other = sb_->OpenSession({});
  ASSERT_TRUE(other.ok());
  proto::SessionExec e;
  e.session_id = *other;
  e.command = "echo other";
  e.timeout_ms = 5000;
  e.output_cap = 1024;
  EXPECT_EQ(sb_->SessionExec(e)->stdout_data, "other\n");
}

TEST_F(Session, CommandsAreSerialized) {
  std::vector<std::thread> ts;
  std::vector<std::string> outs(4);
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      auto r = Try("echo start" + std::to_string(i) + " >> /tmp/log; sleep 0.2; echo end" +
                   std::to_string(i) + " >> /tmp/log");
      if (r.ok()) outs[i] = "ok";
    });
  }
  for (auto& t : ts) t.join();
  auto log = Run("cat /tmp/log").stdout_data;
  // Every start is immediately followed by its own end.
  std::istringstream in(log);
  std::string a, b;
  int pairs = 0;
  while (std::getline(in, a) && std::getline(in, b)) {
    EXPECT_EQ(a.substr(5), b.substr(3)) << log;
    ++pairs;
  }
  EXPECT_EQ(pairs, 4);
}

TEST_F(Session, CloseKillsWholeTree) {
  Run("sleep 500 & (sleep 600 &) ; sleep 700 &");
  EXPECT_EQ(sb_->Exec(Shell("ps -eo comm | grep -c '^sleep'"))->stdout_data, "3\n");
  ASSERT_TRUE(sb_->CloseSession(id_).ok());
  auto r = sb_->Exec(Shell("ps -eo comm | grep -c '^sleep' || true"));
  EXPECT_EQ(r->stdout_data, "0\n");
  auto gone = Try("echo x");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
}

TEST_F(Session, LargeCommandAndOutput) {
  std::string cmd = "cat <<'EOF' | wc -c\n" + std::string(200000, 'y') + "\nEOF";
  EXPECT_EQ(Run(cmd).stdout_data, "200001\n");
  proto::SessionExec e;
  e.session_id = id_;
  e.command = "head -c 5000000 /dev/zero";
  e.timeout_ms = 20000;
  e.output_cap = 1000;
  auto r = sb_->SessionExec(e);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->stdout_data.size(), 1000u);
  EXPECT_EQ(Run("echo small").stdout_data, "small\n");
}

TEST_F(Session, CancelInterruptsAndSessionSurvives) {
  Run("export KEEP=yes");
  std::atomic<bool> cancel{false};
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  proto::SessionExec e;
  e.session_id = id_;
  e.command = "sleep 1000";
  e.timeout_ms = 60000;
  e.output_cap = 100;
  CallOptions o;
  o.cancel = &cancel;
  auto r = sb_->SessionExec(e, nullptr, o);
  t.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCancelled);
  EXPECT_EQ(Run("echo $KEEP").stdout_data, "yes\n");
  EXPECT_EQ(sb_->Exec(Shell("ps -eo comm | grep -c '^sleep' || true"))->stdout_data, "0\n");
}

TEST_F(Session, ChattyBackgroundJobDoesNotStallTheSession) {
  Run("yes > /dev/stdout &");
  for (int i = 0; i < 5; ++i) {
    proto::SessionExec e;
    e.session_id = id_;
    e.command = "echo ping >&2";
    e.timeout_ms = 10000;
    e.output_cap = 1 << 20;
    auto r = sb_->SessionExec(e);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->stderr_data, "ping\n");
  }
  Run("kill %1");
}

TEST_F(Session, BadShellIsRefused) {
  proto::SessionOpen o;
  o.shell = "/usr/bin/python3";
  auto r = sb_->OpenSession(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  o.shell = "/no/such/bash";
  r = sb_->OpenSession(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

TEST_F(Session, ShFallback) {
  proto::SessionOpen o;
  o.shell = "/bin/sh";
  auto id = sb_->OpenSession(o);
  ASSERT_TRUE(id.ok());
  id_ = *id;
  Run("cd /tmp; X=5; f() { echo f$X; }");
  EXPECT_EQ(Run("pwd; f").stdout_data, "/tmp\nf5\n");
  EXPECT_EQ(Run("exit 9").exit_code, 9);
  EXPECT_FALSE(Try("true").ok());
}

}  // namespace
}  // namespace agentfense::runtime::testing
