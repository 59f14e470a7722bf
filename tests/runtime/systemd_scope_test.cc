// The systemd cgroup driver, for real: these cases need systemd as PID 1 and fail anywhere else.
// They are not registered with ctest directly: scripts/systemd-container-test boots systemd as
// PID 1 in a container (the host's /usr, this build bound read-only) and runs them there, with the
// cgroup kill and limit suites of runtime_system_test (docs/RUNTIMES.md).
#include "runtime/systemd_scope.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "runtime_test_env.h"

namespace agentfense::runtime::testing {
namespace {

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// `systemctl show -p PROPERTY --value UNIT` (systemd's own view of the unit).
std::string UnitProperty(const std::string& unit, const std::string& property) {
  std::string cmd = "systemctl show -p " + property + " --value " + unit + " 2>/dev/null";
  std::FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return "?";
  char buf[256] = {};
  std::string out;
  while (std::fgets(buf, sizeof(buf), f) != nullptr) out += buf;
  ::pclose(f);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool UnifiedOnly() { return Exists("/sys/fs/cgroup/cgroup.controllers"); }

// The cgroup path of `pid` in the hierarchy systemd tracks units in: the v2 one when it is the only
// one mounted, else name=systemd. (The kernel lists every hierarchy in /proc/PID/cgroup, also
// those a container does not mount.)
std::string SystemdCgroupOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  const std::string key = UnifiedOnly() ? "0::" : ":name=systemd:";
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(key) != std::string::npos) return line.substr(line.find(key) + key.size());
  }
  return "";
}

class SystemdScope : public ::testing::Test {
 protected:
  void SetUp() override {
    AF_REQUIRE_BWRAP();
    // Not a capability to skip on: this binary exists to test the systemd driver.
    ASSERT_EQ(ResolveCgroupDriver({}), CgroupDriver::kSystemd)
        << "systemd is not PID 1 here: run scripts/systemd-container-test";
  }
  TempWorkspace ws_;
};

TEST_F(SystemdScope, SandboxRunsInItsDelegatedScopeWithItsLimitsAndLeavesNothing) {
  SandboxSpec spec = DefaultSpec(ws_.path());
  spec.limits.pids_max = 64;
  spec.limits.memory_bytes = 256 << 20;
  auto sb = BwrapSandbox::Start(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  const std::string unit = ScopeUnitName(spec.id);
  ASSERT_NE((*sb)->cgroup(), nullptr);
  EXPECT_EQ((*sb)->cgroup()->driver(), CgroupDriver::kSystemd);
  // bwrap (and so everything below it) sits in the scope, as systemd itself reports.
  const std::string path = SystemdCgroupOf((*sb)->pid());
  EXPECT_NE(path.find("/" + unit), std::string::npos) << path;
  EXPECT_EQ(UnitProperty(unit, "ActiveState"), "active");
  EXPECT_EQ(UnitProperty(unit, "Delegate"), "yes");
  EXPECT_EQ(UnitProperty(unit, "TasksMax"), "64");
  // And the kernel enforces them where the sandbox runs. (Not on a v2 hierarchy without
  // controllers, the unified-only run on a hybrid host: nothing there could enforce them.)
  const auto& layout = (*sb)->cgroup()->layout();
  if (layout.version == CgroupVersion::kV1) {
    EXPECT_EQ(ReadLine(layout.dirs[1] + "/pids.max"), "64");
    EXPECT_EQ(ReadLine(layout.memory_dir + "/memory.limit_in_bytes"), std::to_string(256 << 20));
  } else if (ReadLine("/sys/fs/cgroup/cgroup.controllers").find("pids") != std::string::npos) {
    EXPECT_EQ(ReadLine(layout.dirs[0] + "/pids.max"), "64");
    EXPECT_EQ(ReadLine(layout.memory_dir + "/memory.max"), std::to_string(256 << 20));
  }
  auto r = (*sb)->Exec(Shell("setsid sleep 1000 & ( ( sleep 1001 & ) & ); echo ok"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  const std::vector<int> pids = (*sb)->cgroup()->Pids();
  const std::vector<std::string> dirs = layout.dirs;
  Status st = (*sb)->Stop();
  EXPECT_TRUE(st.ok()) << st.error().ToString();
  for (int pid : pids) EXPECT_TRUE(::kill(pid, 0) != 0 && errno == ESRCH) << pid;
  for (const auto& d : dirs) EXPECT_FALSE(Exists(d)) << d;
  EXPECT_EQ(UnitProperty(unit, "LoadState"), "not-found");  // stopped and collected
}

// A supervisor that crashed left its scope, a process still in it. The next start of that
// sandbox stops it (its process killed) and makes the scope afresh.
TEST_F(SystemdScope, ScopeLeftByADeadRunIsReclaimed) {
  SandboxSpec spec = DefaultSpec(ws_.path());
  const std::string unit = ScopeUnitName(spec.id);
  pid_t leftover = ::fork();
  ASSERT_GE(leftover, 0);
  if (leftover == 0) {
    ::pause();
    ::_exit(0);
  }
  // No limits: the properties are the same for both cgroup versions.
  Status made =
      StartTransientScope(unit, leftover, PlanScopeProperties(spec.id, {}, CgroupVersion::kV2));
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  for (int i = 0; i < 500 && SystemdCgroupOf(leftover).find(unit) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_NE(SystemdCgroupOf(leftover).find(unit), std::string::npos);

  auto sb = BwrapSandbox::Start(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  int status = 0;
  ASSERT_EQ(::waitpid(leftover, &status, 0), leftover);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_NE(SystemdCgroupOf((*sb)->pid()).find("/" + unit), std::string::npos);
  EXPECT_TRUE((*sb)->Stop().ok());
  EXPECT_EQ(UnitProperty(unit, "LoadState"), "not-found");
}

}  // namespace
}  // namespace agentfense::runtime::testing
