// Resource limits through the sandbox's cgroup (v1 here), OOM reporting, and cleanup: nothing
// (processes, cgroups, fds) outlives a sandbox.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "runtime_test_env.h"

namespace agentfense::runtime::testing {
namespace {

class BwrapLimits : public ::testing::Test {
 protected:
  void SetUp() override { AF_REQUIRE_BWRAP(); }
  std::unique_ptr<BwrapSandbox> Start(const CgroupLimits& limits) {
    SandboxSpec s = DefaultSpec(ws_.path());
    s.limits = limits;
    auto sb = BwrapSandbox::Start(s);
    EXPECT_TRUE(sb.ok()) << sb.error().ToString();
    return sb.ok() ? std::move(*sb) : nullptr;
  }
  TempWorkspace ws_;
};

bool PidAlive(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

TEST_F(BwrapLimits, CgroupHasTheLimitsAndTheSandbox) {
  CgroupLimits lim;
  lim.memory_bytes = 256 << 20;
  lim.pids_max = 64;
  lim.cpu_millis = 500;
  lim.cpu_shares = 512;
  auto sb = Start(lim);
  ASSERT_TRUE(sb);
  ASSERT_NE(sb->cgroup(), nullptr);
  const auto& l = sb->cgroup()->layout();
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    std::string s;
    std::getline(in, s);
    return s;
  };
  if (l.version == CgroupVersion::kV1) {
    EXPECT_EQ(read(l.dirs[0] + "/memory.limit_in_bytes"), std::to_string(256 << 20));
    EXPECT_EQ(read(l.dirs[1] + "/pids.max"), "64");
    EXPECT_EQ(read(l.dirs[2] + "/cpu.cfs_quota_us"), "50000");
    EXPECT_EQ(read(l.dirs[2] + "/cpu.shares"), "512");
  }
  // bwrap and the agent are inside.
  auto pids = sb->cgroup()->Pids();
  EXPECT_NE(std::find(pids.begin(), pids.end(), sb->pid()), pids.end());
  EXPECT_GE(pids.size(), 2u);
}

TEST_F(BwrapLimits, ForkBombIsContained) {
  CgroupLimits lim;
  lim.pids_max = 64;
  lim.memory_bytes = 512 << 20;
  auto sb = Start(lim);
  ASSERT_TRUE(sb);
  auto r = sb->Exec(Shell("bomb() { bomb | bomb & }; bomb; sleep 2", 3000));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  // The host is fine: we can still fork, and the sandbox still answers after the bomb is killed.
  auto ok = sb->Exec(Shell("echo alive", 20000));
  // The bomb may still be saturating pids.max right after the timeout; retry briefly.
  for (int i = 0; i < 20 && (!ok.ok() || ok->stdout_data != "alive\n"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ok = sb->Exec(Shell("echo alive", 20000));
  }
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->stdout_data, "alive\n");
  pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  ASSERT_GT(p, 0);
  int st;
  ::waitpid(p, &st, 0);
  EXPECT_LE(sb->cgroup()->Pids().size(), 64u);
}

TEST_F(BwrapLimits, MemoryHogIsKilledAndReportedAsOom) {
  CgroupLimits lim;
  lim.memory_bytes = 64 << 20;
  auto sb = Start(lim);
  ASSERT_TRUE(sb);
  // Python is not guaranteed; a shell string doubling in memory is.
  auto r = sb->Exec(
      Shell("x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while :; do x=$x$x; done", 30000));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 137);
  EXPECT_TRUE(r->oom);
  EXPECT_FALSE(r->timed_out);
  EXPECT_GE(sb->cgroup()->OomKills(), 1u);
  // The agent survived (it is not the OOM victim) and the sandbox works.
  auto ok = sb->Exec(Shell("echo alive"));
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->stdout_data, "alive\n");
  EXPECT_FALSE(ok->oom);
}

TEST_F(BwrapLimits, StopLeavesNothingBehind) {
  int fds_before = CountOpenFds();
  CgroupLimits lim;
  lim.pids_max = 100;
  auto sb = Start(lim);
  ASSERT_TRUE(sb);
  auto id = sb->OpenSession({});
  ASSERT_TRUE(id.ok());
  proto::SessionExec e;
  e.session_id = *id;
  e.command = "sleep 1000 & setsid sleep 1001 & echo ok";
  e.timeout_ms = 5000;
  e.output_cap = 100;
  ASSERT_TRUE(sb->SessionExec(e).ok());
  auto pids = sb->cgroup()->Pids();
  EXPECT_GE(pids.size(), 5u);  // bwrap, agent, shell, two sleeps
  std::vector<std::string> dirs = sb->cgroup()->layout().dirs;
  pid_t bwrap = sb->pid();
  ASSERT_TRUE(sb->Stop().ok());
  for (int pid : pids) EXPECT_FALSE(PidAlive(pid)) << pid;
  EXPECT_FALSE(PidAlive(bwrap));
  for (const auto& d : dirs) EXPECT_FALSE(std::filesystem::exists(d)) << d;
  sb.reset();
  EXPECT_EQ(CountOpenFds(), fds_before);
}

// A supervisor that crashed left its sandbox's cgroup behind, a process still in it. The next
// start of that sandbox used to fail with EEXIST when it had limits (and run with no cgroup at
// all when it had none): the group is now reclaimed, its leftovers killed, the limits applied.
TEST_F(BwrapLimits, CgroupLeftByADeadRunIsReclaimed) {
  SandboxSpec s = DefaultSpec(ws_.path());
  s.limits.pids_max = 64;
  // The cgroupfs driver's leftover (directories); a systemd scope left behind is
  // SystemdScope.ScopeLeftByADeadRunIsReclaimed.
  s.cgroup.driver = CgroupDriver::kCgroupfs;
  auto layout = ResolveCgroupLayout(s.id, s.cgroup);
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  pid_t leftover = ::fork();
  ASSERT_GE(leftover, 0);
  if (leftover == 0) {
    ::pause();
    ::_exit(0);
  }
  for (const auto& d : layout->dirs) {
    std::filesystem::create_directories(d);
    std::ofstream(d + "/cgroup.procs") << leftover << std::flush;
  }
  auto sb = BwrapSandbox::Start(s);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  ASSERT_NE((*sb)->cgroup(), nullptr);
  int status = 0;
  ASSERT_EQ(::waitpid(leftover, &status, 0), leftover);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  const std::string pids_dir = layout->dirs[layout->version == CgroupVersion::kV1 ? 1 : 0];
  std::ifstream max(pids_dir + "/pids.max");
  std::string value;
  std::getline(max, value);
  EXPECT_EQ(value, "64");
  auto inside = (*sb)->cgroup()->Pids();
  EXPECT_NE(std::find(inside.begin(), inside.end(), (*sb)->pid()), inside.end());
  ASSERT_TRUE((*sb)->Stop().ok());
  for (const auto& d : layout->dirs) EXPECT_FALSE(std::filesystem::exists(d)) << d;
}

// The systemd driver when systemd cannot be reached (a bus nobody listens on): with limits the
// start fails and says why; without, the sandbox runs without a cgroup, as when none can be made
// with cgroupfs.
TEST_F(BwrapLimits, UnreachableSystemdFailsOnlyASandboxThatNeedsLimits) {
  SandboxSpec s = DefaultSpec(ws_.path());
  s.cgroup.driver = CgroupDriver::kSystemd;
  s.cgroup.systemd_bus = "unix:path=" + ws_.path() + "/no-bus";
  s.limits.pids_max = 32;
  auto r = BwrapSandbox::Start(s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().ToString().find("systemd"), std::string::npos) << r.error().ToString();
  s = DefaultSpec(ws_.path());
  s.cgroup.driver = CgroupDriver::kSystemd;
  s.cgroup.systemd_bus = "unix:path=" + ws_.path() + "/no-bus";
  s.require_cgroup = false;  // (the tests' default asks for one)
  auto ok = BwrapSandbox::Start(s);
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ((*ok)->cgroup(), nullptr);
  auto e = (*ok)->Exec(Shell("echo alive"));
  ASSERT_TRUE(e.ok()) << e.error().ToString();
  EXPECT_EQ(e->stdout_data, "alive\n");
}

TEST_F(BwrapLimits, LauncherErrorsAreClear) {
  SandboxSpec s = DefaultSpec(ws_.path());
  s.bwrap_path = "/nonexistent/bwrap";
  auto r = BwrapSandbox::Start(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().ToString().find("bwrap"), std::string::npos);

  s = DefaultSpec("/nonexistent-workspace-dir");
  r = BwrapSandbox::Start(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);

  s = DefaultSpec(ws_.path());
  s.cgroup.root = "/nonexistent-cgroup-root";
  s.limits.pids_max = 10;
  r = BwrapSandbox::Start(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);

  // An agent binary the sandbox's uid cannot reach: bwrap fails, its words reach the error.
  TempWorkspace locked;
  ASSERT_EQ(::chown(locked.path().c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(locked.path().c_str(), 0700), 0);
  std::filesystem::copy_file(AgentPath(), locked.path() + "/agent");
  s = DefaultSpec(ws_.path());
  s.agent_path = locked.path() + "/agent";
  r = BwrapSandbox::Start(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().ToString().find("bwrap said"), std::string::npos) << r.error().ToString();
}

TEST_F(BwrapLimits, AWorkspaceBehindRootOnlyDirectoriesIsStillReached) {
  // The launcher stages the workspace in bwrap's own mount namespace: the sandbox's uid never
  // walks the host path, so its ancestors can be root's alone (the server's mount dirs are 0700).
  TempWorkspace locked;
  ASSERT_EQ(::chown(locked.path().c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(locked.path().c_str(), 0700), 0);
  const std::string inner = locked.path() + "/inner";
  ASSERT_EQ(::mkdir(inner.c_str(), 0700), 0);
  ASSERT_EQ(::chown(inner.c_str(), HostUid(), HostUid()), 0);
  auto r = BwrapSandbox::Start(DefaultSpec(inner));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  auto out = (*r)->Exec(Shell("echo hi > /workspace/f && cat /workspace/f"));
  ASSERT_TRUE(out.ok()) << out.error().ToString();
  EXPECT_EQ(out->stdout_data, "hi\n");
  // And the stage is bwrap's alone: nothing is mounted there on the host.
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mounts, line)) {
    EXPECT_EQ(line.find(std::string(" ") + kWorkspaceStage + " "), std::string::npos) << line;
  }
}

TEST_F(BwrapLimits, TheStageNamespaceReceivesNoMountOfTheHost) {
  // bwrap's outer process lives in the stage namespace for the sandbox's life. Were it a slave of
  // the host's, every mount the host makes later on a shared mount (each other sandbox's FUSE
  // mount, on systemd hosts) would be copied into it: N² mounts at N sandboxes. A shared mount of
  // our own stands for the host's shared root here.
  TempWorkspace dir;
  ASSERT_EQ(::mount("af-shared", dir.path().c_str(), "tmpfs", 0, "size=16k"), 0);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{dir.path()};
  ASSERT_EQ(::mount(nullptr, dir.path().c_str(), nullptr, MS_SHARED, nullptr), 0);
  TempWorkspace ws;
  auto r = BwrapSandbox::Start(DefaultSpec(ws.path()));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  // Made after the sandbox started, under the shared mount: it must not reach the stage.
  const std::string later = dir.path() + "/later";
  ASSERT_EQ(::mkdir(later.c_str(), 0700), 0);
  ASSERT_EQ(::mount("af-later", later.c_str(), "tmpfs", 0, "size=16k"), 0);
  bool copy_seen = false;
  std::ifstream mounts("/proc/" + std::to_string((*r)->pid()) + "/mountinfo");
  std::string line;
  while (std::getline(mounts, line)) {
    if (line.find(" " + dir.path() + " ") != std::string::npos) {
      copy_seen = true;  // the copy made at the start: private, propagating nothing
      EXPECT_EQ(line.find(" shared:"), std::string::npos) << line;
      EXPECT_EQ(line.find(" master:"), std::string::npos) << line;
    }
    EXPECT_EQ(line.find(" " + later + " "), std::string::npos) << line;
  }
  EXPECT_TRUE(copy_seen) << "the stage namespace (bwrap pid " << (*r)->pid() << ") was not read";
  ::umount2(later.c_str(), MNT_DETACH);
}

TEST_F(BwrapLimits, AgentDeathIsNoticed) {
  auto sb = Start({});
  ASSERT_TRUE(sb);
  ASSERT_TRUE(sb->running());
  // Kill bwrap from the host: the agent dies with it (die-with-parent) and calls fail cleanly.
  ::kill(sb->pid(), SIGKILL);
  for (int i = 0; i < 100 && sb->running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(sb->running());
  auto r = sb->Exec(Shell("true"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(sb->Stop().ok());
}

}  // namespace
}  // namespace agentfense::runtime::testing
