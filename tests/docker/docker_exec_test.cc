// Inside a real Docker sandbox, through the agent: exec semantics, the isolation a command gets,
// and the resource limits (OOM, pids) holding while the host and the agent stay healthy.
#include <cstdlib>
#include <thread>
#include <vector>

#include "docker_test_env.h"

namespace agentfense::runtime::testing {
namespace {

using namespace std::chrono_literals;

class DockerExecTest : public DockerTest {
 protected:
  void SetUp() override {
    DockerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    id_ = NewId("exec");
    agent_ = StartSandbox(id_);
    ASSERT_NE(agent_, nullptr);
  }
  void TearDown() override {
    agent_.reset();
    DockerTest::TearDown();
  }
  ExecResult Run(const std::string& command) { return DockerTest::Run(*agent_, id_, command); }
  ExecResult Run(const proto::Exec& e) { return DockerTest::Run(*agent_, id_, e); }

  std::string id_;
  std::unique_ptr<AgentClient> agent_;
};

TEST_F(DockerExecTest, ExitCodesAndSignals) {
  EXPECT_EQ(Run("true").exit_code, 0);
  EXPECT_EQ(Run("exit 7").exit_code, 7);
  ExecResult killed = Run("kill -9 $$");
  EXPECT_EQ(killed.exit_code, 137);
  EXPECT_EQ(killed.signal, 9);
  ExecResult termed = Run("kill -TERM $$");
  EXPECT_EQ(termed.exit_code, 143);
  EXPECT_EQ(termed.signal, 15);
  ExecResult missing = Run("/no/such/binary");
  EXPECT_EQ(missing.exit_code, 127);
}

TEST_F(DockerExecTest, StdoutStderrSeparatedAndOrdered) {
  ExecResult r = Run("echo o1; echo e1 >&2; echo o2; echo e2 >&2; printf 'no-newline'");
  EXPECT_EQ(r.stdout_data, "o1\no2\nno-newline");
  EXPECT_EQ(r.stderr_data, "e1\ne2\n");
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(DockerExecTest, StdinIsFed) {
  proto::Exec e = Sh("tr a-z A-Z");
  e.stdin_data = "hello stdin\n";
  EXPECT_EQ(Run(e).stdout_data, "HELLO STDIN\n");
  // No stdin given: EOF at once, never the launcher's stdin.
  EXPECT_EQ(Run("cat; echo done").stdout_data, "done\n");
}

TEST_F(DockerExecTest, EnvironmentIsIsolated) {
  ::setenv("AF_LAUNCHER_CANARY", "host-secret", 1);
  proto::Exec e = Sh("env");
  e.env = {{"FOO", "bar baz"}};
  ExecResult r = Run(e);
  ::unsetenv("AF_LAUNCHER_CANARY");
  EXPECT_EQ(r.stdout_data.find("host-secret"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(r.stdout_data.find("AF_LAUNCHER_CANARY"), std::string::npos);
  EXPECT_NE(r.stdout_data.find("FOO=bar baz\n"), std::string::npos) << r.stdout_data;
  // Env of one exec does not leak into the next.
  EXPECT_EQ(Run("echo \"[$FOO]\"").stdout_data, "[]\n");
}

TEST_F(DockerExecTest, Workdir) {
  EXPECT_EQ(Run("pwd").stdout_data, "/workspace\n");
  proto::Exec e = Sh("pwd");
  e.workdir = "/tmp";
  EXPECT_EQ(Run(e).stdout_data, "/tmp\n");
}

TEST_F(DockerExecTest, TimeoutKillsGrandchildren) {
  proto::Exec e = Sh("sleep 301 & (sleep 302 &); sh -c 'sleep 303' & echo started; wait", 1000);
  auto start = std::chrono::steady_clock::now();
  ExecResult r = Run(e);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.stdout_data, "started\n");
  EXPECT_LT(took, 10s);
  // Nothing of the tree survives (ps lists every process of the container's pid namespace).
  std::string ps;
  for (int i = 0; i < 50; ++i) {
    ps = Run("ps -o args").stdout_data;
    if (ps.find("sleep 30") == std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(ps.find("sleep 30"), std::string::npos) << ps;
}

TEST_F(DockerExecTest, UnprivilegedUserNoCapsNoNewPrivs) {
  EXPECT_EQ(Run("id -u").stdout_data, std::to_string(HostUid()) + "\n");
  EXPECT_EQ(Run("id -g").stdout_data, std::to_string(HostUid()) + "\n");
  EXPECT_EQ(Run("grep CapEff /proc/self/status").stdout_data, "CapEff:\t0000000000000000\n");
  EXPECT_EQ(Run("grep CapPrm /proc/self/status").stdout_data, "CapPrm:\t0000000000000000\n");
  EXPECT_EQ(Run("grep NoNewPrivs /proc/self/status").stdout_data, "NoNewPrivs:\t1\n");
  EXPECT_NE(Run("mknod /tmp/mem c 1 1").exit_code, 0);
  EXPECT_NE(Run("mkdir -p /tmp/m && mount -t tmpfs none /tmp/m").exit_code, 0);
  // Seccomp (Docker's default profile) is on.
  EXPECT_EQ(Run("grep '^Seccomp:' /proc/self/status").stdout_data, "Seccomp:\t2\n");
}

TEST_F(DockerExecTest, FilesystemView) {
  // Read-only root, private writable /tmp (nosuid,nodev), nothing of the host's secrets.
  EXPECT_NE(Run("touch /etc/x").exit_code, 0);
  EXPECT_NE(Run("touch /usr/x").exit_code, 0);
  EXPECT_EQ(Run("touch /tmp/x && echo ok").stdout_data, "ok\n");
  std::string tmp = Run("grep ' /tmp ' /proc/mounts").stdout_data;
  EXPECT_NE(tmp.find("tmpfs"), std::string::npos) << tmp;
  EXPECT_NE(tmp.find("nosuid"), std::string::npos) << tmp;
  EXPECT_NE(tmp.find("nodev"), std::string::npos) << tmp;
  for (const char* p : {"/etc/shadow", "/var/run/docker.sock", "/run/docker.sock", "/home/root"}) {
    EXPECT_NE(Run(std::string("test -e ") + p).exit_code, 0) << p << " visible inside";
  }
  // Nothing of the host's filesystem beyond the binds: a file only the host has is absent.
  EXPECT_NE(Run("test -e /var/log/agentfense-dockerd.log || test -e " + workspace_).exit_code, 0);
  EXPECT_NE(Run("ls /root").exit_code, 0);  // the image's /root, 0700 root: not the sandbox's
  // The agent binary is read-only.
  EXPECT_NE(Run("echo x >> /.agentfense/agentfense-agent").exit_code, 0);
}

TEST_F(DockerExecTest, NetworkNoneByDefault) {
  EXPECT_EQ(Run("ls /sys/class/net").stdout_data, "lo\n");
  EXPECT_NE(Run("wget -T 2 -q -O- http://1.1.1.1/ 2>&1").exit_code, 0);
}

TEST_F(DockerExecTest, WorkspaceSharedWithHost) {
  { std::ofstream(workspace_ + "/from_host.txt") << "host data\n"; }
  EXPECT_EQ(Run("cat /workspace/from_host.txt").stdout_data, "host data\n");
  EXPECT_EQ(Run("echo sandbox data > /workspace/from_sandbox.txt").exit_code, 0);
  EXPECT_EQ(ReadFile(workspace_ + "/from_sandbox.txt"), "sandbox data\n");
  struct stat st;
  ASSERT_EQ(::stat((workspace_ + "/from_sandbox.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, HostUid());  // written as the sandbox user, not root
}

TEST_F(DockerExecTest, OutputIsBounded) {
  proto::Exec e = Sh("head -c 20000000 /dev/zero; echo tail >&2");
  e.output_cap = 1 << 20;
  ExecResult r = Run(e);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.truncated);
  EXPECT_LE(r.stdout_data.size(), size_t{1} << 20);
  EXPECT_EQ(r.stderr_data, "tail\n");
}

// Fixture with limits.
class DockerLimitsTest : public DockerTest {};

TEST_F(DockerLimitsTest, MemoryHogIsKilledAndReported) {
  const std::string id = NewId("oom");
  DockerSandboxSpec spec;
  DockerLimits limits;
  limits.memory_bytes = 64ll << 20;
  limits.pids_limit = 128;
  spec.limits = limits;
  auto agent = StartSandbox(id, spec);
  ASSERT_NE(agent, nullptr);
  ExecResult r =
      Run(*agent, id, Sh("x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo survived", 60000));
  EXPECT_EQ(r.exit_code, 137) << r.stdout_data << r.stderr_data;
  EXPECT_TRUE(r.oom);
  EXPECT_EQ(r.stdout_data.find("survived"), std::string::npos);
  // The sandbox (agent) survives its command's OOM and the next command is not flagged.
  ExecResult next = Run(*agent, id, "echo fine");
  EXPECT_EQ(next.stdout_data, "fine\n");
  EXPECT_FALSE(next.oom);
  auto count = launcher_->OomKillCount(id);
  ASSERT_TRUE(count.ok()) << count.error().ToString();
  EXPECT_GE(*count, 1u);
}

TEST_F(DockerLimitsTest, PidsLimitHoldsAForkBomb) {
  const std::string id = NewId("pids");
  DockerSandboxSpec spec;
  DockerLimits limits;
  limits.pids_limit = 48;
  limits.memory_bytes = 256ll << 20;
  spec.limits = limits;
  auto agent = StartSandbox(id, spec);
  ASSERT_NE(agent, nullptr);
  // A child shell spawns far more long-lived processes than the limit allows (ash gives up at the
  // first failed fork); then count them with built-ins only: at the limit nothing can fork, not
  // even ps.
  ExecResult r = Run(*agent, id,
                     Sh("sh -c 'i=0; while [ $i -lt 500 ]; do sleep 60 >/dev/null 2>&1 & "
                        "i=$((i+1)); done' 2>/dev/null; set -- /proc/[0-9]*; echo $#",
                        20000));
  ASSERT_EQ(r.exit_code, 0) << r.stderr_data;
  const int procs = std::atoi(r.stdout_data.c_str());
  EXPECT_GE(procs, 40) << "the limit was never reached";
  EXPECT_LE(procs, 48) << "more processes than pids_limit";
  // A classic recursive fork bomb, stopped by the timeout; the agent stays responsive.
  ExecResult bomb = Run(*agent, id, Sh("f() { f | f & }; f; sleep 30", 3000));
  EXPECT_TRUE(bomb.timed_out);
  std::string after;
  for (int i = 0; i < 50; ++i) {
    after = Run(*agent, id, "ps -o pid | wc -l").stdout_data;
    if (std::atoi(after.c_str()) <= 4) break;
    std::this_thread::sleep_for(100ms);
  }
  // Header + agent + sh + ps (+ wc): nothing of the bomb left.
  EXPECT_LE(std::atoi(after.c_str()), 5) << after;
}

TEST_F(DockerLimitsTest, CpuLimitsApplied) {
  const std::string id = NewId("cpu");
  DockerSandboxSpec spec;
  DockerLimits limits;
  limits.cpu_quota_us = 20000;
  limits.cpu_period_us = 100000;
  limits.cpu_shares = 256;
  spec.limits = limits;
  auto agent = StartSandbox(id, spec);
  ASSERT_NE(agent, nullptr);
  // cgroup v1 inside the container shows its own cpu cgroup at the root.
  ExecResult r = Run(*agent, id,
                     "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares "
                     "2>/dev/null || cat /sys/fs/cgroup/cpu.max");
  EXPECT_TRUE(r.stdout_data == "20000\n256\n" || r.stdout_data == "20000 100000\n")
      << r.stdout_data;
}

TEST_F(DockerTest, NetworkOnIsStillOnlyLo) {
  // The launcher never attaches a Docker network: with network on, the container's namespace
  // holds lo only until the supervisor prepares it (tests/net check the filter end to end).
  const std::string id = NewId("net");
  DockerSandboxSpec spec;
  spec.network = true;
  spec.sandbox_id = id;
  spec.workspace_dir = workspace_;
  Status st = launcher_->CreateSandbox(spec);
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  auto agent = launcher_->Start(id);
  ASSERT_TRUE(agent.ok()) << agent.error().ToString();
  ExecResult r = Run(**agent, id, "ls /sys/class/net");
  EXPECT_EQ(r.stdout_data, "lo\n");
}

TEST_F(DockerTest, NetworkRefusedWhenDisabled) {
  DockerLauncherConfig cfg = launcher_->config();
  cfg.enable_networking = false;
  auto l = DockerLauncher::Create(cfg);
  ASSERT_TRUE(l.ok());
  DockerSandboxSpec spec;
  spec.sandbox_id = NewId("nonet");
  spec.workspace_dir = workspace_;
  spec.network = true;
  EXPECT_EQ((*l)->CreateSandbox(spec).error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(DockerTest, DebianImageWithBash) {
  const std::string id = NewId("deb");
  DockerSandboxSpec spec;
  spec.image = kDebianImage;
  auto agent = StartSandbox(id, spec);
  ASSERT_NE(agent, nullptr);
  EXPECT_TRUE(agent->agent_hello().has_bash);
  proto::Exec e;
  e.argv = {"bash", "-c", "echo ${BASH_VERSINFO[0]}; id -un; ls --version | head -1"};
  ExecResult r = Run(*agent, id, e);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  // The sandbox's own identity has no name in the image's /etc/passwd: id prints the number.
  EXPECT_NE(r.stdout_data.find(std::to_string(HostUid()) + "\nls (GNU coreutils)"),
            std::string::npos)
      << r.stdout_data;
}

TEST_F(DockerTest, SessionsWorkThroughTheAgent) {
  const std::string id = NewId("sess");
  DockerSandboxSpec spec;
  spec.image = kDebianImage;
  auto agent = StartSandbox(id, spec);
  ASSERT_NE(agent, nullptr);
  auto session = agent->OpenSession({});
  ASSERT_TRUE(session.ok()) << session.error().ToString();
  proto::SessionExec cmd;
  cmd.session_id = *session;
  cmd.command = "cd /tmp && export AF_X=42 && f() { echo \"f:$1\"; }";
  auto r = agent->SessionExec(cmd);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 0);
  cmd.command = "pwd; echo $AF_X; f arg; echo err >&2; false";
  r = agent->SessionExec(cmd);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->stdout_data, "/tmp\n42\nf:arg\n");
  EXPECT_EQ(r->stderr_data, "err\n");
  EXPECT_EQ(r->exit_code, 1);
  EXPECT_TRUE(agent->CloseSession(*session).ok());
}

TEST_F(DockerTest, ConcurrentSandboxes) {
  constexpr int kCount = 4;
  std::vector<std::string> ids;
  for (int i = 0; i < kCount; ++i) ids.push_back(NewId("conc"));
  std::vector<std::thread> threads;
  std::vector<std::string> outputs(kCount);
  for (int i = 0; i < kCount; ++i) {
    threads.emplace_back([&, i] {
      DockerSandboxSpec spec;
      spec.sandbox_id = ids[i];
      spec.workspace_dir = workspace_;
      if (!launcher_->CreateSandbox(spec).ok()) return;
      auto agent = launcher_->Start(ids[i]);
      if (!agent.ok()) return;
      auto r = launcher_->Exec(**agent, ids[i], Sh("echo " + ids[i]));
      if (r.ok()) outputs[i] = r->stdout_data;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(outputs[i], ids[i] + "\n");
}

}  // namespace
}  // namespace agentfense::runtime::testing
