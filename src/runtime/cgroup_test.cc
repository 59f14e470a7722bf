#include "runtime/cgroup.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "runtime/systemd_scope.h"

namespace agentfense::runtime {
namespace {

class TempTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/af-cgroup-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Touch(const std::string& rel, const std::string& content = "") {
    std::filesystem::create_directories(std::filesystem::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << content;
  }
  CgroupOptions Options() {
    CgroupOptions o;
    o.root = root_ + "/sys";
    o.self_cgroup_file = root_ + "/self_cgroup";
    return o;
  }
  std::string root_;
};

TEST_F(TempTree, V2Layout) {
  Touch("sys/cgroup.controllers", "cpu memory pids");
  CgroupLimits lim{512 << 20, 100, 1500, 2048};
  auto l = ResolveCgroupLayout("sb_00000000000000b1", Options(), lim);
  ASSERT_TRUE(l.ok()) << l.error().ToString();
  EXPECT_EQ(l->version, CgroupVersion::kV2);
  ASSERT_EQ(l->dirs.size(), 1u);
  EXPECT_EQ(l->dirs[0], root_ + "/sys/agentfense/sb_00000000000000b1");
  EXPECT_EQ(l->memory_dir, l->dirs[0]);
  EXPECT_EQ(l->kill_dir, l->dirs[0]);
  ASSERT_EQ(l->subtree_control.size(), 2u);
  EXPECT_EQ(l->subtree_control[0], root_ + "/sys/cgroup.subtree_control");
  EXPECT_EQ(l->subtree_control[1], root_ + "/sys/agentfense/cgroup.subtree_control");
  EXPECT_EQ(l->controllers, "+memory +pids +cpu");

  auto w = PlanCgroupLimits(*l, lim);
  std::map<std::string, std::string> m;
  for (const auto& x : w) m[x.path.substr(x.path.rfind('/') + 1)] = x.value;
  EXPECT_EQ(m["memory.max"], std::to_string(512 << 20));
  EXPECT_EQ(m["memory.swap.max"], "0");
  EXPECT_EQ(m["pids.max"], "100");
  EXPECT_EQ(m["cpu.max"], "150000 100000");
  EXPECT_EQ(m["cpu.weight"], std::to_string(1 + (2046 * 9999) / 262142));
}

TEST_F(TempTree, V2EnablesOnlyTheControllersTheLimitsNeed) {
  // A hierarchy without controllers (the v2 one of a hybrid host) still serves a sandbox without
  // limits: nothing to enable, and cgroup.kill works there.
  Touch("sys/cgroup.controllers", "");
  auto none = ResolveCgroupLayout("sb_00000000000000b1", Options(), {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->subtree_control.empty());
  EXPECT_TRUE(none->controllers.empty());
  CgroupLimits pids_only;
  pids_only.pids_max = 10;
  auto pids = ResolveCgroupLayout("sb_00000000000000b1", Options(), pids_only);
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(pids->controllers, "+pids");
}

TEST_F(TempTree, V1LayoutNestsUnderOwnCgroup) {
  Touch("sys/memory/cgroup.procs");
  Touch("sys/pids/cgroup.procs");
  Touch("sys/cpu/cgroup.procs");
  Touch("sys/freezer/cgroup.procs");
  Touch("self_cgroup",
        "9:name=systemd:/\n8:pids:/\n6:freezer:/f\n4:memory:/process_api/abc\n"
        "1:cpu,cpuacct:/x\n0::/\n");
  auto l = ResolveCgroupLayout("sb_00000000000000b2", Options());
  ASSERT_TRUE(l.ok()) << l.error().ToString();
  EXPECT_EQ(l->version, CgroupVersion::kV1);
  ASSERT_EQ(l->dirs.size(), 4u);
  EXPECT_EQ(l->dirs[0], root_ + "/sys/memory/process_api/abc/agentfense/sb_00000000000000b2");
  EXPECT_EQ(l->dirs[1], root_ + "/sys/pids/agentfense/sb_00000000000000b2");
  EXPECT_EQ(l->dirs[2], root_ + "/sys/cpu/x/agentfense/sb_00000000000000b2");
  EXPECT_EQ(l->dirs[3], root_ + "/sys/freezer/f/agentfense/sb_00000000000000b2");
  EXPECT_EQ(l->memory_dir, l->dirs[0]);
  EXPECT_EQ(l->kill_dir, l->dirs[3]);  // killed through the freezer

  CgroupLimits lim{1 << 30, 64, 500, 512};
  auto w = PlanCgroupLimits(*l, lim);
  ASSERT_GE(w.size(), 6u);
  EXPECT_EQ(w[0].path, l->dirs[0] + "/memory.limit_in_bytes");
  EXPECT_EQ(w[1].path, l->dirs[0] + "/memory.memsw.limit_in_bytes");  // after the limit
  EXPECT_TRUE(w[1].optional);
  std::map<std::string, std::string> m;
  for (const auto& x : w) m[x.path.substr(x.path.rfind('/') + 1)] = x.value;
  EXPECT_EQ(m["pids.max"], "64");
  EXPECT_EQ(m["cpu.cfs_quota_us"], "50000");
  EXPECT_EQ(m["cpu.cfs_period_us"], "100000");
  EXPECT_EQ(m["cpu.shares"], "512");
}

TEST_F(TempTree, NoLimitsNoWrites) {
  Touch("sys/cgroup.controllers");
  auto l = ResolveCgroupLayout("sb_00000000000000b0", Options());
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(PlanCgroupLimits(*l, CgroupLimits{}).empty());
}

TEST_F(TempTree, MissingHierarchyIsAClearError) {
  Touch("sys/memory/cgroup.procs");
  auto l = ResolveCgroupLayout("sb_00000000000000b0", Options());
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(l.error().message().find("pids"), std::string::npos);
  // Without the freezer a v1 sandbox could only be killed by chasing PIDs: refused.
  Touch("sys/pids/cgroup.procs");
  Touch("sys/cpu/cgroup.procs");
  l = ResolveCgroupLayout("sb_00000000000000b0", Options());
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().message().find("freezer"), std::string::npos) << l.error().ToString();
}

TEST_F(TempTree, DriverFollowsWhetherSystemdIsPid1) {
  CgroupOptions o = Options();
  o.systemd_marker = root_ + "/run-systemd-system";
  EXPECT_EQ(ResolveCgroupDriver(o), CgroupDriver::kCgroupfs);
  Touch("run-systemd-system/.keep");
  EXPECT_EQ(ResolveCgroupDriver(o), CgroupDriver::kSystemd);
  o.driver = CgroupDriver::kCgroupfs;  // configured explicitly: the marker is not consulted
  EXPECT_EQ(ResolveCgroupDriver(o), CgroupDriver::kCgroupfs);
}

TEST_F(TempTree, RefusesBadIds) {
  Touch("sys/cgroup.controllers");
  EXPECT_FALSE(ResolveCgroupLayout("../x", Options()).ok());
  EXPECT_FALSE(ResolveCgroupLayout("", Options()).ok());
  EXPECT_FALSE(ResolveCgroupLayout("a/b", Options()).ok());
}

std::map<std::string, UnitProperty> ByName(const std::vector<UnitProperty>& props) {
  std::map<std::string, UnitProperty> m;
  for (const auto& p : props) m[p.name] = p;
  return m;
}

TEST(SystemdScope, PropertiesPerCgroupVersion) {
  EXPECT_EQ(ScopeUnitName("sb_1"), "agentfense-sb_1.scope");
  CgroupLimits lim{256 << 20, 64, 1500, 2048};
  auto v2 = ByName(PlanScopeProperties("sb_1", lim, CgroupVersion::kV2));
  EXPECT_TRUE(v2["Delegate"].flag);
  EXPECT_EQ(v2["Delegate"].type, 'b');
  EXPECT_EQ(v2["CollectMode"].text, "inactive-or-failed");
  EXPECT_EQ(v2["KillSignal"].type, 'i');
  EXPECT_EQ(v2["KillSignal"].number, 9u);
  EXPECT_EQ(v2["MemoryMax"].number, 256u << 20);
  EXPECT_EQ(v2["MemorySwapMax"].number, 0u);
  EXPECT_EQ(v2.count("MemorySwapMax"), 1u);
  EXPECT_EQ(v2["TasksMax"].number, 64u);
  EXPECT_EQ(v2["CPUQuotaPerSecUSec"].number, 1'500'000u);
  EXPECT_EQ(v2["CPUWeight"].number, CpuWeightFromShares(2048));
  EXPECT_EQ(v2.count("CPUShares"), 0u);
  auto v1 = ByName(PlanScopeProperties("sb_1", lim, CgroupVersion::kV1));
  EXPECT_EQ(v1["MemoryLimit"].number, 256u << 20);
  EXPECT_EQ(v1.count("MemoryMax"), 0u);
  EXPECT_EQ(v1["CPUShares"].number, 2048u);
  EXPECT_EQ(v1.count("CPUWeight"), 0u);
  // No limits: no limit properties, and the scope is still delegated.
  auto bare = ByName(PlanScopeProperties("sb_1", {}, CgroupVersion::kV2));
  EXPECT_EQ(bare.size(), 4u);
  EXPECT_TRUE(bare["Delegate"].flag);
}

TEST(CgroupOom, ParsesCounters) {
  EXPECT_EQ(ParseOomKillCount("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3u);
  EXPECT_EQ(ParseOomKillCount("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n"), 2u);
  EXPECT_EQ(ParseOomKillCount("garbage"), 0u);
}

}  // namespace
}  // namespace agentfense::runtime
