// A sandbox's processes die through its cgroup: cgroup.kill on v2, the freezer on v1. Both paths
// run for real here: v1 on the host's hierarchies, v2 on the controller-less v2 hierarchy a hybrid
// host mounts at /sys/fs/cgroup/unified (cgroup.kill needs no controller). Where PID 1 is systemd
// the host path goes through a transient scope (cgroup.h). The processes are the ones a PID walk
// loses to: a fork bomb, processes that re-fork themselves so their PID never stays, setsid
// daemons and double forks that left their parent. (A PID walk of 50 rounds also won against
// these at this scale, in a trial: the tests prove the cgroup paths kill everything, not that a
// walk must lose.)
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "capability.h"
#include "runtime_test_env.h"

namespace agentfense::runtime::testing {
namespace {

using Clock = std::chrono::steady_clock;

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Options that make Cgroup use `version` on this host; empty `why` when there is such a path.
struct KillPath {
  CgroupOptions options;
  std::string why_not;
};

KillPath PathFor(CgroupVersion version) {
  KillPath p;
  const bool root_is_v2 = Exists(p.options.root + "/cgroup.controllers");
  if (version == CgroupVersion::kV1) {
    if (root_is_v2) p.why_not = "no cgroup v1 hierarchy on this host (unified only)";
    return p;
  }
  if (root_is_v2) return p;
  if (Exists("/sys/fs/cgroup/unified/cgroup.controllers")) {
    p.options.root = "/sys/fs/cgroup/unified";
    p.options.driver = CgroupDriver::kCgroupfs;
    return p;
  }
  p.why_not = "no cgroup v2 hierarchy on this host (neither /sys/fs/cgroup nor its unified/)";
  return p;
}

std::string VersionName(const ::testing::TestParamInfo<CgroupVersion>& info) {
  return info.param == CgroupVersion::kV2 ? "V2" : "V1";
}

// Live (not zombie) processes of `uid` on the host.
int LiveProcessesOf(uid_t uid) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::ifstream in(e.path() / "status");
    std::string line, state;
    bool mine = false;
    while (std::getline(in, line)) {
      if (line.rfind("State:", 0) == 0) state = line;
      if (line.rfind("Uid:", 0) == 0) {
        mine = std::stoul(line.substr(5)) == uid;  // the real uid
      }
    }
    if (mine && state.find("Z (zombie)") == std::string::npos) ++n;
  }
  return n;
}

// What a PID walk chases: processes that fork a copy and exit (their PID never stays), a fork
// bomb, setsid daemons and double forks. bash, not sh: bash retries a fork that fails at the limit,
// so the bomb keeps pressing against it (dash gives up and the bomb collapses).
constexpr const char* kStorm = R"SH(
exec 2>/dev/null
setsid sh -c 'sleep 1000 & exec sleep 1001' &
( ( sleep 1002 & ) & )
sh -c 'trap "" TERM HUP INT; exec sleep 1003' &
hop() { ( hop ) & }
hop; hop; hop
bomb() { bomb | bomb & }
bomb
wait
)SH";

class CgroupKill : public ::testing::TestWithParam<CgroupVersion> {
 protected:
  void SetUp() override {
    AF_REQUIRE_CAPABILITY(::geteuid() == 0, "cgroup tests need root");
    path_ = PathFor(GetParam());
    AF_REQUIRE_CAPABILITY(path_.why_not.empty(), path_.why_not);
  }
  KillPath path_;
};

TEST_P(CgroupKill, ForkBombAndEscapeesDieAndNothingIsLeft) {
  const std::string id = UniqueId();
  auto cg = Cgroup::Create(id, {}, path_.options);
  ASSERT_TRUE(cg.ok()) << cg.error().ToString();
  // A uid of its own with RLIMIT_NPROC bounds the bomb without a pids controller (the v2
  // hierarchy here has none), and lets the test count survivors anywhere on the host. One per
  // case: dead processes count against the limit until reaped, by the host's init here.
  const uid_t uid = 3'000'000 + static_cast<uid_t>(::getpid() % 100'000) * 2 +
                    (GetParam() == CgroupVersion::kV2 ? 1 : 0);
  auto go = MakePipe();
  ASSERT_TRUE(go.ok());
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    go->second.Reset();
    char b;
    if (::read(go->first.get(), &b, 1) != 1) ::_exit(126);
    rlimit nproc{96, 96};
    if (::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 ||
        ::setrlimit(RLIMIT_NPROC, &nproc) != 0 || ::setresuid(uid, uid, uid) != 0) {
      ::_exit(125);
    }
    ::execl("/bin/bash", "bash", "-c", kStorm, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  go->first.Reset();
  Status adopted = (*cg)->Adopt(child);
  ASSERT_TRUE(adopted.ok()) << adopted.error().ToString();
  ASSERT_EQ(::write(go->second.get(), "g", 1), 1);
  if ((*cg)->driver() == CgroupDriver::kSystemd) {
    EXPECT_NE((*cg)->layout().memory_dir.find("/" + ScopeUnitName(id)), std::string::npos)
        << (*cg)->layout().memory_dir;
  }
  // scripts/systemd-container-test says which driver the host path must have taken there.
  if (const char* want = std::getenv("AF_EXPECT_CGROUP_DRIVER");
      want != nullptr && path_.options.driver == CgroupDriver::kAuto) {
    EXPECT_EQ((*cg)->driver() == CgroupDriver::kSystemd ? "systemd" : "cgroupfs",
              std::string(want));
  }
  // Until the bomb presses against its limit.
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while ((*cg)->Pids().size() < 48 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE((*cg)->Pids().size(), 48u);
  EXPECT_GE(LiveProcessesOf(uid), 24);  // (counted again: the bomb churns)

  auto t0 = Clock::now();
  Status killed = (*cg)->Kill();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_TRUE(killed.ok()) << killed.error().ToString();
  RecordProperty("kill_ms", static_cast<int>(ms));
  EXPECT_TRUE((*cg)->Pids().empty());
  int status = 0;
  pid_t reaped = 0;
  deadline = Clock::now() + std::chrono::seconds(5);
  while ((reaped = ::waitpid(child, &status, WNOHANG)) == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(reaped, child) << "the storm's shell survived the kill";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // The setsid daemons and double forks too. A killed task leaves its cgroup early in exit(),
  // before it is a zombie: for an instant it is out of the group yet still listed as running,
  // so allow the exits in flight a moment (it can no longer run user code).
  int left = LiveProcessesOf(uid);
  for (int i = 0; i < 100 && left != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    left = LiveProcessesOf(uid);
  }
  EXPECT_EQ(left, 0);

  std::vector<std::string> dirs = (*cg)->layout().dirs;
  ASSERT_FALSE(dirs.empty());
  Status removed = (*cg)->Remove();
  EXPECT_TRUE(removed.ok()) << removed.error().ToString();
  for (const auto& d : dirs) EXPECT_FALSE(Exists(d)) << d;
}

TEST_P(CgroupKill, StoppedSandboxLeavesNoProcessAndNoCgroup) {
  AF_REQUIRE_BWRAP();
  TempWorkspace ws;
  SandboxSpec spec = DefaultSpec(ws.path());
  spec.cgroup = path_.options;
  spec.require_cgroup = true;
  auto sb = BwrapSandbox::Start(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  ASSERT_NE((*sb)->cgroup(), nullptr);
  auto session = (*sb)->OpenSession({});
  ASSERT_TRUE(session.ok()) << session.error().ToString();
  proto::SessionExec e;
  e.session_id = *session;
  e.command =
      "sleep 1000 & setsid sleep 1001 & ( ( sleep 1002 & ) & ); "
      "hop() { ( hop ) & }; hop; hop; echo ok";
  e.timeout_ms = 5000;
  e.output_cap = 100;
  auto r = (*sb)->SessionExec(e);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->stdout_data, "ok\n");
  const std::vector<int> before = (*sb)->cgroup()->Pids();
  EXPECT_GE(before.size(), 6u);  // bwrap, agent, shell, the sleeps, the hoppers
  const std::vector<std::string> dirs = (*sb)->cgroup()->layout().dirs;
  Status stopped = (*sb)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.error().ToString();
  for (int pid : before) {
    EXPECT_TRUE(::kill(pid, 0) != 0 && errno == ESRCH) << "pid " << pid << " survived";
  }
  for (const auto& d : dirs) EXPECT_FALSE(Exists(d)) << d;
}

INSTANTIATE_TEST_SUITE_P(Paths, CgroupKill,
                         ::testing::Values(CgroupVersion::kV1, CgroupVersion::kV2), VersionName);

}  // namespace
}  // namespace agentfense::runtime::testing
