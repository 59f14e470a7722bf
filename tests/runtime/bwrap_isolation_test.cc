// What a command sees from inside a bwrap sandbox, checked from inside and from the host.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "net/netns.h"
#include "runtime_test_env.h"

namespace agentfense::runtime::testing {
namespace {

class BwrapIsolation : public ::testing::Test {
 protected:
  void Start(bool network = false, int netns_fd = -1) {
    SandboxSpec s = DefaultSpec(ws_.path());
    s.network = network;
    s.netns_fd = netns_fd;
    auto sb = BwrapSandbox::Start(s);
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    sb_ = std::move(*sb);
  }
  void SetUp() override {
    AF_REQUIRE_BWRAP();
    Start();
  }
  ExecResult Run(const std::string& cmd) {
    auto r = sb_->Exec(Shell(cmd));
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : ExecResult{};
  }
  TempWorkspace ws_;
  std::unique_ptr<BwrapSandbox> sb_;
};

TEST_F(BwrapIsolation, UnprivilegedIdentity) {
  EXPECT_EQ(Run("id -u").stdout_data, "1000\n");
  EXPECT_EQ(Run("id -un").stdout_data, "sandbox\n");
  auto status =
      Run("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status").stdout_data;
  EXPECT_NE(status.find("CapEff:\t0000000000000000"), std::string::npos) << status;
  EXPECT_NE(status.find("CapPrm:\t0000000000000000"), std::string::npos) << status;
  EXPECT_NE(status.find("CapBnd:\t0000000000000000"), std::string::npos) << status;
  EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos) << status;
  EXPECT_NE(status.find("Seccomp:\t2"), std::string::npos) << status;
  // Commands, not the agent, are the OOM killer's choice.
  EXPECT_EQ(Run("cat /proc/self/oom_score_adj").stdout_data, "500\n");
}

TEST_F(BwrapIsolation, HostUidIsUnprivileged) {
  // From the host: every process of the sandbox runs as the unprivileged host uid.
  auto r = Run("sleep 2 & echo $!");
  ASSERT_NE(sb_->pid(), -1);
  std::ifstream in("/proc/" + std::to_string(sb_->pid()) + "/status");
  std::string line, uid_line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) uid_line = line;
  }
  const std::string u = std::to_string(HostUid());
  EXPECT_EQ(uid_line, "Uid:\t" + u + "\t" + u + "\t" + u + "\t" + u);
  EXPECT_NE(HostUid(), 65534u);
  // And files the sandbox creates belong to it on the host.
  Run("touch /workspace/made-inside");
  struct stat st;
  ASSERT_EQ(::stat((ws_.path() + "/made-inside").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, HostUid());
}

TEST_F(BwrapIsolation, PrivilegedOperationsFail) {
  EXPECT_NE(Run("mknod /tmp/null c 1 3").exit_code, 0);
  EXPECT_NE(Run("mount -t tmpfs none /tmp").exit_code, 0);
  EXPECT_NE(Run("unshare -U true").exit_code, 0);
  EXPECT_NE(Run("unshare -Ur true").exit_code, 0);
  EXPECT_NE(Run("chroot / true").exit_code, 0);
  // /proc/1 (the agent) is not dumpable: commands cannot open its fds (the control socket).
  auto r = Run("ls /proc/1/fd 2>&1; cat /proc/1/environ 2>&1");
  EXPECT_NE(r.stdout_data.find("Permission denied"), std::string::npos) << r.stdout_data;
}

TEST_F(BwrapIsolation, HostPathsAbsent) {
  for (const char* p : {"/root", "/home", "/var", "/etc/shadow", "/etc/ssh", "/srv", "/opt",
                        "/work", "/sys/fs/cgroup", "/etc/resolv.conf"}) {
    auto r = Run(std::string("test -e ") + p);
    EXPECT_NE(r.exit_code, 0) << p << " is visible";
  }
  // The password database holds only the sandbox's own entries.
  auto passwd = Run("cat /etc/passwd").stdout_data;
  EXPECT_NE(passwd.find("sandbox:x:1000:1000"), std::string::npos);
  EXPECT_EQ(passwd.find("daemon"), std::string::npos);
  // System directories are read-only.
  EXPECT_NE(Run("touch /usr/x").exit_code, 0);
  EXPECT_NE(Run("touch /etc/x").exit_code, 0);
}

TEST_F(BwrapIsolation, WorkspaceIsTheGivenDir) {
  std::ofstream(ws_.path() + "/from-host") << "hello";
  EXPECT_EQ(Run("cat /workspace/from-host").stdout_data, "hello");
  Run("echo back > /workspace/from-inside");
  std::ifstream in(ws_.path() + "/from-inside");
  std::string s;
  std::getline(in, s);
  EXPECT_EQ(s, "back");
}

TEST_F(BwrapIsolation, PrivateTmpWithSizeCap) {
  EXPECT_EQ(Run("ls -A /tmp | wc -l").stdout_data, "0\n");
  auto r = Run("head -c 100000000 /dev/zero > /tmp/big; echo rc=$?");
  EXPECT_NE(r.stdout_data.find("rc=1"), std::string::npos) << r.stdout_data << r.stderr_data;
  Run("rm -f /tmp/big");
}

TEST_F(BwrapIsolation, NoNetworkByDefault) {
  auto r = Run("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '");
  EXPECT_EQ(r.stdout_data, "lo\n");
}

TEST_F(BwrapIsolation, NetworkIsNeverTheHostsNamespace) {
  // Network on without the namespace the supervisor prepares is refused outright.
  SandboxSpec s = DefaultSpec(ws_.path());
  s.network = true;
  auto refused = BwrapSandbox::Start(s);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().ToString().find("never the host's"), std::string::npos);
  // With one, the sandbox is in it (not the host's: only its lo), with the generated resolv.conf
  // and the name service files. The egress filter itself is tested through the supervisor
  // (tests/py/test_sandbox_network.py, tests/security/test_network.py).
  auto netns = net::CreateNetns();
  ASSERT_TRUE(netns.ok()) << netns.error().ToString();
  sb_.reset();
  Start(/*network=*/true, netns->get());
  struct stat want {}, got {};
  ASSERT_EQ(::fstat(netns->get(), &want), 0);
  ASSERT_EQ(::stat(("/proc/" + std::to_string(sb_->pid()) + "/ns/net").c_str(), &got), 0);
  EXPECT_EQ(got.st_ino, want.st_ino);
  auto r = Run("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort");
  EXPECT_EQ(r.stdout_data, "lo\n");
  EXPECT_EQ(Run("cat /etc/resolv.conf").stdout_data, "nameserver 10.0.2.3\n");
  EXPECT_EQ(Run("test -r /etc/nsswitch.conf").exit_code, 0);
}

TEST_F(BwrapIsolation, OwnPidNamespaceWithAgentAsInit) {
  auto r = Run("cat /proc/1/cmdline | tr '\\0' ' '");
  EXPECT_EQ(r.stdout_data.rfind("/run/agentfense/agent --fd 3", 0), 0u) << r.stdout_data;
  EXPECT_EQ(Run("hostname").stdout_data, "sandbox\n");
}

TEST_F(BwrapIsolation, OnlyStandardFdsInCommands) {
  auto r = Run("ls /proc/self/fd | sort -n | tr '\\n' ' '");
  EXPECT_EQ(r.stdout_data, "0 1 2 3 ");  // 3 is ls's own directory fd
}

}  // namespace
}  // namespace agentfense::runtime::testing
