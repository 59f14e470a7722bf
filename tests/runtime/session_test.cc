// SPEC §6 sessions in a real bwrap sandbox.
#include <signal.h>

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

TEST_F(Session, TimeoutInBuiltinLoopKeepsSession) {
  Run("export KEEP=1");
  auto start = std::chrono::steady_clock::now();
  auto r = Run("while :; do :; done; touch /tmp/leak", 300);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 137);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(Run("echo $KEEP; ls /tmp/leak 2>&1 >/dev/null | wc -l").stdout_data, "1\n1\n");
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
  // Background jobs exec `sleep` when the scheduler gets to them (late on a loaded machine).
  std::string running;
  for (int i = 0; i < 100 && running != "3\n"; ++i) {
    if (i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    running = sb_->Exec(Shell("ps -eo comm | grep -c '^sleep'"))->stdout_data;
  }
  EXPECT_EQ(running, "3\n");
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

// Command lines whose every part after a long `sleep` leaves a trace (/tmp/leak.*) if it runs.
const std::vector<std::string>& StoppableLines(bool bash) {
  static const std::vector<std::string> common = {
      "sleep 30; touch /tmp/leak.list",
      "true && sleep 30 && true; touch /tmp/leak.and",
      "sleep 30 || touch /tmp/leak.or; touch /tmp/leak.or2",
      "for i in 1 2 3; do sleep 30; touch /tmp/leak.for$i; done; touch /tmp/leak.for",
      "while :; do sleep 30; touch /tmp/leak.while; done",
      "{ sleep 30; touch /tmp/leak.group; }; touch /tmp/leak.group2",
      "(sleep 30; touch /tmp/leak.sub); touch /tmp/leak.sub2",
      "if sleep 30; then touch /tmp/leak.if; else touch /tmp/leak.else; fi",
      "x=$(sleep 30); touch /tmp/leak.cmdsub",
      "sleep 30 | cat; touch /tmp/leak.pipe",
      "while :; do :; done; touch /tmp/leak.builtin",
  };
  // bash unwinds shell functions too (sh: see docs/RUNTIMES.md).
  static const std::vector<std::string> with_functions = [] {
    auto v = common;
    v.push_back("f() { sleep 30; touch /tmp/leak.f; }; f; touch /tmp/leak.f2");
    v.push_back(
        "g() { for i in 1 2; do sleep 30; done; touch /tmp/leak.g; }; h() { g || true; "
        "touch /tmp/leak.h; }; h && touch /tmp/leak.h2; touch /tmp/leak.h3");
    return v;
  }();
  return bash ? with_functions : common;
}

class StopSession : public Session {
 protected:
  // Runs `cmd`, cancelling it after `after_ms`; expects kCancelled. Returns how long it took.
  std::chrono::milliseconds Cancelled(const std::string& cmd, int after_ms = 300) {
    std::atomic<bool> cancel{false};
    std::thread t([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(after_ms));
      cancel = true;
    });
    proto::SessionExec e;
    e.session_id = id_;
    e.command = cmd;
    e.timeout_ms = 60000;
    e.output_cap = 1 << 20;
    CallOptions o;
    o.cancel = &cancel;
    auto start = std::chrono::steady_clock::now();
    auto r = sb_->SessionExec(e, nullptr, o);
    t.join();
    EXPECT_FALSE(r.ok()) << cmd;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), ErrorCode::kCancelled) << cmd;
    }
    // The next command queues behind the stop: it runs once the shell is back.
    auto back = Run("echo back");
    EXPECT_EQ(back.stdout_data, "back\n") << cmd;
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
  }
  void UseShell(const std::string& shell) {
    proto::SessionOpen o;
    o.shell = shell;
    auto id = sb_->OpenSession(o);
    ASSERT_TRUE(id.ok()) << id.error().ToString();
    id_ = *id;
  }
  // No part of any stopped line ran, nothing it started is alive, and the state is intact.
  void ExpectNothingLeaked() {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a late part would show now
    EXPECT_EQ(Run("ls /tmp | grep leak; echo $KEEP $(pwd)").stdout_data, "yes /tmp/w\n");
    EXPECT_EQ(sb_->Exec(Shell("ps -eo comm | grep -c '^sleep' || true"))->stdout_data, "0\n");
  }
  void CheckCancel(bool bash) {
    Run("export KEEP=yes; mkdir -p /tmp/w && cd /tmp/w");
    for (const auto& line : StoppableLines(bash)) {
      auto took = Cancelled(line);
      EXPECT_LT(took, std::chrono::milliseconds(2000)) << line;
    }
    ExpectNothingLeaked();
  }
  void CheckTimeout(bool bash) {
    Run("export KEEP=yes; mkdir -p /tmp/w && cd /tmp/w");
    for (const auto& line : StoppableLines(bash)) {
      auto start = std::chrono::steady_clock::now();
      auto r = Run(line, 300);
      EXPECT_TRUE(r.timed_out) << line;
      EXPECT_EQ(r.exit_code, 137) << line;
      EXPECT_EQ(r.signal, SIGKILL) << line;
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000)) << line;
      EXPECT_EQ(Run("echo next").stdout_data, "next\n") << line;
    }
    ExpectNothingLeaked();
  }
};

TEST_F(StopSession, CancelStopsTheWholeCommandLine) { CheckCancel(true); }
TEST_F(StopSession, TimeoutStopsTheWholeCommandLine) { CheckTimeout(true); }
TEST_F(StopSession, ShCancelStopsTheWholeCommandLine) {
  UseShell("/bin/sh");
  CheckCancel(false);
}
TEST_F(StopSession, ShTimeoutStopsTheWholeCommandLine) {
  UseShell("/bin/sh");
  CheckTimeout(false);
}

// busybox ash (the shell of the busybox Docker image), run as /tmp/ash -> busybox.
TEST_F(StopSession, BusyboxAshStopsTheWholeCommandLine) {
  auto link = sb_->Exec(Shell("ln -s \"$(command -v busybox)\" /tmp/ash && /tmp/ash -c 'echo $0'"));
  ASSERT_TRUE(link.ok()) << link.error().ToString();
  ASSERT_EQ(link->exit_code, 0) << "busybox is needed in the sandbox for this test: "
                                << link->stderr_data;
  UseShell("/tmp/ash");
  EXPECT_EQ(Run("readlink /proc/$$/exe").stdout_data.find("busybox") != std::string::npos, true);
  CheckCancel(false);
  CheckTimeout(false);
}

TEST_F(StopSession, StateSurvivesAStop) {
  Run("cd /tmp; export EXP=e; PLAIN=p; declare -a ARR=(a b); f() { echo fn; }; alias al='echo al'");
  Cancelled("cd /; export EXP=changed; sleep 30; export EXP=leak");
  // What ran before the stop point stays done (as in a terminal); nothing after it ran.
  EXPECT_EQ(Run("pwd; echo $EXP $PLAIN ${ARR[1]}; f; al").stdout_data, "/\nchanged p b\nfn\nal\n");
  auto r = Run("sleep 30; echo never", 200);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.stdout_data, "");
  EXPECT_EQ(Run("echo $EXP").stdout_data, "changed\n");
}

TEST_F(StopSession, ACommandCannotDisableTheStopForLaterOnes) {
  Run("mkdir -p /tmp/w; cd /tmp/w; export KEEP=yes");
  // Tamper with everything the driver arms, in one command...
  Run("trap - DEBUG; set +o functrace; trap 'echo hijacked' USR1; trap '' INT TERM HUP");
  // ...the next command is still stopped whole.
  Cancelled("f() { sleep 30; touch /tmp/leak.a; }; f; touch /tmp/leak.b");
  Run("trap '' USR1");
  auto r = Run("sleep 30; touch /tmp/leak.c", 300);
  EXPECT_TRUE(r.timed_out);
  ExpectNothingLeaked();
}

TEST_F(StopSession, ACommandIgnoringSignalsIsStillStoppedPromptly) {
  Run("mkdir -p /tmp/w; cd /tmp/w; export KEEP=yes");
  // Ignoring the usual interrupt signals changes nothing.
  EXPECT_LT(Cancelled("trap '' INT TERM HUP QUIT; sleep 30; touch /tmp/leak.i"),
            std::chrono::milliseconds(2000));
  ExpectNothingLeaked();
  // A command that ignores the driver's own stop signal cannot go on either: its processes are
  // killed and, since its shell can no longer be interrupted, the session is closed promptly.
  auto start = std::chrono::steady_clock::now();
  auto r = Run("trap '' USR1; sleep 30; sleep 30; touch /tmp/leak.u", 300);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  auto next = Try("echo x");
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(sb_->Exec(Shell("ls /tmp | grep -c leak; ps -eo comm | grep -c '^sleep' || true"))
                ->stdout_data,
            "0\n0\n");
}

TEST_F(StopSession, StopRightAfterSendingKeepsTheSessionInSync) {
  // A stop that lands while the shell is still reading or decoding the command must neither end
  // the driver loop nor leave part of the command text behind to be run as a later command.
  for (const char* shell : {"/bin/bash", "/bin/sh"}) {
    UseShell(shell);
    Run("mkdir -p /tmp/w; cd /tmp/w; export KEEP=yes");
    std::string big(100000, '#');  // several pipe writes: the reader blocks mid-command
    for (int after : {0, 1, 3, 10}) {
      Cancelled("sleep 30; touch /tmp/leak.early\n" + big + "\ntouch /tmp/leak.tail", after);
      Cancelled("touch /tmp/ran; sleep 30; touch /tmp/leak.late", after);
      EXPECT_EQ(Run("echo $KEEP").stdout_data, "yes\n") << shell << " after " << after;
    }
    Run("rm -f /tmp/ran");
    ExpectNothingLeaked();
  }
}

TEST_F(StopSession, ShCommandTextIsExact) {
  UseShell("/bin/sh");
  // The sh framing escapes backslashes and newlines: what the shell runs is the text as sent.
  auto r = Run("printf '%s|' 'a\\nb' 'c\\\\d' '\\c' '%b'; echo\n  echo '  lead and trail  '  \n"
               "cat <<'EOF'\n\\t tab \\\\ \\0101\nEOF");
  EXPECT_EQ(r.stdout_data, "a\\nb|c\\\\d|\\c|%b|\n  lead and trail  \n\\t tab \\\\ \\0101\n");
  std::string cmd = "cat <<'EOF' | wc -c\n" + std::string(200000, '\\') + "\nEOF";
  EXPECT_EQ(Run(cmd).stdout_data, "200001\n");
}

TEST_F(StopSession, NoDebugTrapCostUntilAStop) {
  // The DEBUG trap that unwinds a stopped command is only installed by the stop: a builtin loop
  // costs no more than in a plain bash (~50 µs per simple command otherwise: seconds here).
  auto start = std::chrono::steady_clock::now();
  auto r = Run("for ((i=0;i<100000;i++)); do x=$i; done; trap -p DEBUG; echo $x");
  EXPECT_EQ(r.stdout_data, "99999\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  Run("sleep 30", 200);
  EXPECT_EQ(Run("trap -p DEBUG; echo clean").stdout_data, "clean\n");
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
