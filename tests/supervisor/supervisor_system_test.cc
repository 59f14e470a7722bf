// The supervisor end to end: spawn it like the server does, exec through its relay socket with the
// unchanged AgentClient, change the policy at run time, stop it, and check nothing is left.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "capability.h"
#include "fs/mount.h"
#include "runtime/agent_client.h"
#include "supervisor/client.h"

namespace agentfense::supervisor {
namespace {

namespace stdfs = std::filesystem;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AF_REQUIRE_CAPABILITY(::geteuid() == 0 && ::access("/dev/fuse", R_OK | W_OK) == 0,
                          "needs root and /dev/fuse");
    char tmpl[] = "/tmp/af-sup-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    // Root's alone (mkdtemp's 0700): the sandbox gets its mount as a descriptor.
    src_ = root_ + "/src";
    mnt_ = root_ + "/mnt";
    run_ = root_ + "/run";
    stdfs::create_directories(src_ + "/src");
    stdfs::create_directories(src_ + "/secrets");
    stdfs::create_directories(src_ + "/output");
    stdfs::create_directories(mnt_);
    stdfs::create_directories(run_);
    ::chmod(run_.c_str(), 0700);
    std::ofstream(src_ + "/src/app.py") << "print('hi')\n";
    std::ofstream(src_ + "/secrets/key") << "CANARY-SECRET-42\n";
    std::ofstream(src_ + "/.env") << "CANARY-ENV-42\n";
    // The sandbox's own host identity reaches the source only through the mount's daemon, which
    // runs as root; the tree itself stays root-owned.
    spec_.sandbox_id = "sb_00000000000000a1";
    spec_.source_dir = src_;
    spec_.mountpoint = mnt_;
    spec_.run_dir = run_;
    spec_.agent_path = AF_AGENT_BIN;
    auto rules = policy::PresetRules("agent-safe");
    ASSERT_TRUE(rules.ok());
    spec_.rules = *rules;
  }

  void TearDown() override {
    if (root_.empty()) return;
    (void)SupervisorControl(run_).Stop(true, std::chrono::seconds(10));
    (void)fs::CleanupStaleMount(mnt_, true);
    std::error_code ec;
    stdfs::remove_all(root_, ec);
  }

  Result<runtime::ExecResult> Run(runtime::AgentClient& c, const std::string& cmd) {
    runtime::proto::Exec e;
    e.shell_command = cmd;
    e.timeout_ms = 10000;
    return c.Exec(e);
  }

  std::string root_, src_, mnt_, run_;
  SupervisorSpec spec_;
};

TEST_F(SupervisorTest, ExecThroughRelayEnforcesPolicyAndSurvivesPolicyChange) {
  auto spawned = SpawnSupervisor(spec_, AF_SUPERVISOR_BIN);
  ASSERT_TRUE(spawned.ok()) << spawned.error().ToString();
  SupervisorControl control(run_);
  auto status = control.Status();
  ASSERT_TRUE(status.ok()) << status.error().ToString();
  EXPECT_TRUE(status->runtime_alive);
  EXPECT_EQ(status->sandbox_id, spec_.sandbox_id);

  auto client = runtime::AgentClient::Connect(control.agent_socket());
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  auto& c = **client;

  auto r = Run(c, "cat /workspace/src/app.py; ls -a /workspace; cat /workspace/.env; "
                  "cat /workspace/secrets/key; echo done >&2");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_NE(r->stdout_data.find("print('hi')"), std::string::npos);
  EXPECT_EQ(r->stdout_data.find("CANARY"), std::string::npos);
  EXPECT_EQ(r->stderr_data.find("CANARY"), std::string::npos);
  EXPECT_EQ(r->stdout_data.find("secrets"), std::string::npos) << r->stdout_data;
  EXPECT_EQ(r->stdout_data.find(".env"), std::string::npos) << r->stdout_data;
  EXPECT_NE(r->stderr_data.find("done"), std::string::npos);

  // The control plane is out of reach: the supervisor's sockets and run dir do not exist inside.
  r = Run(c, "for p in " + run_ + "/control.sock " + run_ + "/agent.sock " + run_ +
                 "; do test -e $p && echo REACHABLE $p; done; echo checked");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "checked\n");

  // agent-safe: /output is writable, /src is not.
  r = Run(c, "echo out > /workspace/output/r.txt && echo ok; echo x > /workspace/src/app.py");
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->stdout_data.find("ok"), std::string::npos);
  EXPECT_NE(r->exit_code, 0);
  std::ifstream in(src_ + "/output/r.txt");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "out");

  // Hide /src at run time: the very next command must not see it.
  auto rules = spec_.rules;
  rules.push_back({"/src/**", policy::PatternType::kGlob, policy::Level::kNone, 1000});
  ASSERT_TRUE(control.SetPolicy(rules).ok());
  r = Run(c, "cat /workspace/src/app.py; ls /workspace");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data.find("print"), std::string::npos);
  EXPECT_EQ(r->stdout_data.find("src"), std::string::npos);

  // Bad rules are refused with the reason and leave the running policy alone.
  auto bad = control.SetPolicy({{"/a/../b", policy::PatternType::kGlob, policy::Level::kRead, 0}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);

  // Denials were audited.
  std::ifstream audit(run_ + "/audit.jsonl");
  std::string audit_text((std::istreambuf_iterator<char>(audit)), {});
  EXPECT_NE(audit_text.find("/src/app.py"), std::string::npos);

  client->reset();
  ASSERT_TRUE(control.Stop(false).ok());
  EXPECT_FALSE(fs::IsFuseMountPoint(mnt_));
  EXPECT_FALSE(control.Status().ok());
}

TEST_F(SupervisorTest, DeltaControlOpsChangesCommitDiscard) {
  spec_.delta_dir = root_ + "/delta";  // created 0700 by the supervisor
  auto full = policy::PresetRules("full-access");
  ASSERT_TRUE(full.ok());
  spec_.rules = *full;
  auto spawned = SpawnSupervisor(spec_, AF_SUPERVISOR_BIN);
  ASSERT_TRUE(spawned.ok()) << spawned.error().ToString();
  SupervisorControl control(run_);
  struct stat st;
  ASSERT_EQ(::stat(spec_.delta_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // The mount serves the sandbox's identity alone: not even root, the supervisor's owner.
  struct stat probe;
  EXPECT_NE(::stat((mnt_ + "/src").c_str(), &probe), 0);
  EXPECT_EQ(errno, EACCES);
  auto client = runtime::AgentClient::Connect(control.agent_socket());
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  // A name that is not UTF-8 is replaced in the JSON, no error.
  auto wrote = Run(**client,
                   "cd /workspace && echo \"print('changed')\" > src/app.py && echo new > new.txt &&"
                   " printf x > \"bad-$(printf '\\377')-name\" && rm .env");
  ASSERT_TRUE(wrote.ok()) << wrote.error().ToString();
  ASSERT_EQ(wrote->exit_code, 0) << wrote->stderr_data;
  EXPECT_TRUE(stdfs::exists(src_ + "/.env"));

  auto changes = control.Changes();
  ASSERT_TRUE(changes.ok()) << changes.error().ToString();
  ASSERT_EQ(changes->changes.size(), 4u);
  EXPECT_EQ(changes->changes[0].path, "/.env");
  EXPECT_EQ(changes->changes[0].kind, fs::ChangeKind::kDeleted);
  EXPECT_EQ(changes->changes[2].path, "/new.txt");
  EXPECT_EQ(changes->changes[2].kind, fs::ChangeKind::kAdded);
  EXPECT_EQ(changes->changes[2].size, 4);
  EXPECT_EQ(changes->changes[3].path, "/src/app.py");
  EXPECT_EQ(changes->changes[3].kind, fs::ChangeKind::kModified);
  EXPECT_EQ(changes->delta_bytes, 4 + 17 + 1);
  std::ifstream before(src_ + "/src/app.py");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(before), {}), "print('hi')\n");

  auto report = control.Commit();
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  EXPECT_EQ(report->applied.size(), 4u);
  EXPECT_TRUE(report->errors.empty());
  std::ifstream after(src_ + "/src/app.py");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(after), {}), "print('changed')\n");
  EXPECT_FALSE(stdfs::exists(src_ + "/.env"));

  ASSERT_EQ(Run(**client, "printf throwaway > /workspace/scratch")->exit_code, 0);
  auto discarded = control.Discard();
  ASSERT_TRUE(discarded.ok()) << discarded.error().ToString();
  EXPECT_EQ(*discarded, 1);
  EXPECT_EQ(Run(**client, "test -e /workspace/scratch")->exit_code, 1);
  EXPECT_FALSE(stdfs::exists(src_ + "/scratch"));
  auto empty = control.Changes();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->changes.empty());
}

TEST_F(SupervisorTest, DeltaOpsWithoutDeltaFailCleanly) {
  auto spawned = SpawnSupervisor(spec_, AF_SUPERVISOR_BIN);
  ASSERT_TRUE(spawned.ok()) << spawned.error().ToString();
  auto changes = SupervisorControl(run_).Changes();
  ASSERT_FALSE(changes.ok());
  EXPECT_EQ(changes.error().code(), ErrorCode::kFailedPrecondition);
}

// Stopping (or destroying) a sandbox while the server has commands and a session command running
// through the relay: the relay's worker threads were still inside the sandbox's agent client when
// the stop freed it, and the supervisor crashed (SIGSEGV, most rounds) before unmounting or
// removing its sockets; the server then waited 30 s for them and cleaned the mount up itself.
TEST_F(SupervisorTest, StopDuringCallsFailsThemAndTearsDownCleanly) {
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto spawned = SpawnSupervisor(spec_, AF_SUPERVISOR_BIN);
    ASSERT_TRUE(spawned.ok()) << spawned.error().ToString();
    SupervisorControl control(run_);
    auto client = runtime::AgentClient::Connect(control.agent_socket());
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    runtime::AgentClient& c = **client;
    auto session = c.OpenSession({});
    ASSERT_TRUE(session.ok()) << session.error().ToString();
    std::vector<std::thread> calls;
    std::vector<Result<runtime::ExecResult>> results(4, Error(ErrorCode::kInternal, "not run"));
    for (int i = 0; i < 3; ++i) {
      calls.emplace_back([&, i] {
        results[i] = Run(c, "touch /workspace/output/r" + std::to_string(i) + "; sleep 20");
      });
    }
    calls.emplace_back([&] {
      runtime::proto::SessionExec e;
      e.session_id = *session;
      e.command = "touch /workspace/output/s; sleep 20";
      e.timeout_ms = 30000;
      results[3] = c.SessionExec(e);
    });
    for (const char* f : {"r0", "r1", "r2", "s"}) {
      for (int i = 0; i < 200 && !stdfs::exists(src_ + "/output/" + f); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto stopped = control.Stop(/*destroy=*/round % 2 == 1, std::chrono::seconds(10));
    EXPECT_TRUE(stopped.ok()) << stopped.error().ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    EXPECT_FALSE(fs::IsFuseMountPoint(mnt_)) << "the supervisor did not unmount";
    for (auto& t : calls) t.join();
    for (const auto& r : results) {
      ASSERT_FALSE(r.ok()) << "a command outlived its sandbox";
      EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().ToString();
    }
    client->reset();
    if (::testing::Test::HasFailure()) break;
    (void)fs::CleanupStaleMount(mnt_, true);
    for (const char* f : {"r0", "r1", "r2", "s"}) stdfs::remove(src_ + "/output/" + f);
  }
}

TEST_F(SupervisorTest, ReportsStartFailureWithReason) {
  spec_.source_dir = root_ + "/missing";
  auto st = SpawnSupervisor(spec_, AF_SUPERVISOR_BIN, std::chrono::seconds(20));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("missing"), std::string::npos) << st.error().ToString();
  EXPECT_FALSE(fs::IsFuseMountPoint(mnt_));
}

TEST_F(SupervisorTest, SurvivesTheDeathOfItsClient) {
  auto spawned = SpawnSupervisor(spec_, AF_SUPERVISOR_BIN);
  ASSERT_TRUE(spawned.ok()) << spawned.error().ToString();
  SupervisorControl control(run_);
  {
    // A client that starts a long command and vanishes (as a killed server does): raw frames on
    // a raw socket, then close. The supervisor must kill the command and keep serving.
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    UniqueFd sock(fd);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = control.agent_socket();
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    runtime::proto::Exec e;
    e.shell_command = "touch /workspace/output/started; sleep 30; touch /workspace/output/finished";
    auto hello = runtime::proto::Encode(1, runtime::proto::Hello{});
    auto exec = runtime::proto::Encode(2, e);
    ASSERT_TRUE(hello.ok() && exec.ok());
    std::string bytes = *hello + *exec;
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
    for (int i = 0; i < 100 && !stdfs::exists(src_ + "/output/started"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(stdfs::exists(src_ + "/output/started"));
  }
  auto again = runtime::AgentClient::Connect(control.agent_socket());
  ASSERT_TRUE(again.ok());
  auto r = Run(**again, "echo alive");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "alive\n");
  // The abandoned command was killed, not left running: no process of it remains. The agent
  // kills it when it notices the closed connection, which may be just after our reconnect:
  // allowed a few seconds, never "forever".
  std::string left;
  for (int i = 0; i < 50; ++i) {
    r = Run(**again,
            "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"
            " | grep -c '^sleep 30' || true");
    ASSERT_TRUE(r.ok());
    left = r->stdout_data;
    if (left == "0\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(left, "0\n");
}

}  // namespace
}  // namespace agentfense::supervisor
