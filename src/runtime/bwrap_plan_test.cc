#include "runtime/bwrap_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace agentfense::runtime {
namespace {

HostLayout DebianLayout() {
  HostLayout h;
  using E = HostLayout::Entry;
  h.entries["/usr"] = {E::kDir, ""};
  h.entries["/bin"] = {E::kSymlink, "usr/bin"};
  h.entries["/sbin"] = {E::kSymlink, "usr/sbin"};
  h.entries["/lib"] = {E::kSymlink, "usr/lib"};
  h.entries["/lib64"] = {E::kSymlink, "usr/lib64"};
  h.entries["/lib32"] = {E::kAbsent, ""};
  h.entries["/etc/ld.so.cache"] = {E::kFile, ""};
  h.entries["/etc/resolv.conf"] = {E::kFile, ""};
  h.entries["/etc/ssl"] = {E::kDir, ""};
  return h;
}

SandboxSpec Spec() {
  SandboxSpec s;
  s.id = "sb_00000000000000b1";
  s.workspace_dir = "/srv/ws";
  s.agent_path = "/opt/af/agentfense-agent";
  s.tmp_size_bytes = 1 << 20;
  s.host_uid = s.host_gid = 524300;
  return s;
}

// Index of the first occurrence of the sequence `seq` in argv, or -1.
int Find(const std::vector<std::string>& argv, std::vector<std::string> seq) {
  auto it = std::search(argv.begin(), argv.end(), seq.begin(), seq.end());
  return it == argv.end() ? -1 : static_cast<int>(it - argv.begin());
}

TEST(BwrapPlan, IsolationFlags) {
  auto p = BuildBwrapPlan(Spec(), DebianLayout());
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  const auto& a = p->argv;
  EXPECT_EQ(a[0], "/usr/bin/bwrap");
  for (const char* f : {"--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                        "--unshare-cgroup", "--unshare-net", "--disable-userns", "--new-session",
                        "--die-with-parent", "--as-pid-1", "--clearenv"}) {
    EXPECT_GE(Find(a, {f}), 0) << f;
  }
  EXPECT_GE(Find(a, {"--cap-drop", "ALL"}), 0);
  EXPECT_GE(Find(a, {"--uid", "1000", "--gid", "1000"}), 0);
  EXPECT_GE(Find(a, {"--seccomp", "4"}), 0);
  EXPECT_GE(Find(a, {"--size", "1048576", "--perms", "1777", "--tmpfs", "/tmp"}), 0);
  EXPECT_GE(Find(a, {"--bind", "/srv/ws", "/workspace"}), 0);
  EXPECT_GE(Find(a, {"--proc", "/proc", "--dev", "/dev"}), 0);
  // The root tmpfs is frozen after every mount is in place.
  int ro = Find(a, {"--remount-ro", "/"});
  EXPECT_GT(ro, Find(a, {"--bind", "/srv/ws", "/workspace"}));
  EXPECT_LT(ro, Find(a, {"--"}));
}

TEST(BwrapPlan, CommandComesAfterDoubleDashAndLast) {
  auto p = BuildBwrapPlan(Spec(), DebianLayout());
  ASSERT_TRUE(p.ok());
  const auto& a = p->argv;
  int dd = Find(a, {"--"});
  ASSERT_GE(dd, 0);
  EXPECT_EQ(a[dd + 1], kAgentPathInside);
  EXPECT_EQ(Find(a, {"--fd", "3"}), dd + 2);
  // Nothing after the agent's own arguments, and "--" appears once.
  EXPECT_EQ(std::count(a.begin(), a.end(), "--"), 1);
}

TEST(BwrapPlan, SystemDirsFollowHostLayout) {
  auto p = BuildBwrapPlan(Spec(), DebianLayout());
  ASSERT_TRUE(p.ok());
  const auto& a = p->argv;
  EXPECT_GE(Find(a, {"--ro-bind", "/usr", "/usr"}), 0);
  EXPECT_GE(Find(a, {"--symlink", "usr/bin", "/bin"}), 0);
  EXPECT_GE(Find(a, {"--symlink", "usr/lib64", "/lib64"}), 0);
  EXPECT_EQ(Find(a, {"/lib32"}), -1);  // absent on the host
  EXPECT_GE(Find(a, {"--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"}), 0);
  // Host paths that must never be exposed.
  for (const char* p2 : {"/root", "/home", "/var", "/etc/shadow", "/etc", "/run", "/sys"}) {
    EXPECT_EQ(Find(a, {p2}), -1) << p2;
  }
  HostLayout merged_usr_off = DebianLayout();
  merged_usr_off.entries["/bin"] = {HostLayout::Entry::kDir, ""};
  auto p2 = BuildBwrapPlan(Spec(), merged_usr_off);
  ASSERT_TRUE(p2.ok());
  EXPECT_GE(Find(p2->argv, {"--ro-bind", "/bin", "/bin"}), 0);
}

TEST(BwrapPlan, NetworkOnlyWhenAsked) {
  auto off = BuildBwrapPlan(Spec(), DebianLayout());
  ASSERT_TRUE(off.ok());
  EXPECT_GE(Find(off->argv, {"--unshare-net"}), 0);
  EXPECT_EQ(Find(off->argv, {"/etc/resolv.conf"}), -1);
  EXPECT_EQ(Find(off->argv, {"/etc/ssl"}), -1);
  SandboxSpec s = Spec();
  s.network = true;
  // Never the host's namespace: network on without a prepared namespace is refused.
  auto refused = BuildBwrapPlan(s, DebianLayout());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("never the host's"), std::string::npos);
  s.netns_fd = 42;
  auto on = BuildBwrapPlan(s, DebianLayout());
  ASSERT_TRUE(on.ok());
  EXPECT_EQ(Find(on->argv, {"--unshare-net"}), -1);
  // resolv.conf names the supervisor's resolver, not whatever the host uses.
  EXPECT_EQ(Find(on->argv, {"--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"}), -1);
  EXPECT_GE(Find(on->argv, {"--file", std::to_string(kResolvFd), "/etc/resolv.conf"}), 0);
  EXPECT_EQ(on->file_fds.at(kResolvFd), "nameserver 10.0.2.3\n");
  EXPECT_GE(Find(on->argv, {"--ro-bind-try", "/etc/ssl", "/etc/ssl"}), 0);
  s.resolver = "10.0.2.3; rm";
  EXPECT_FALSE(BuildBwrapPlan(s, DebianLayout()).ok());
}

TEST(BwrapPlan, GeneratedIdentityFiles) {
  SandboxSpec s = Spec();
  s.uid = 1234;
  s.gid = 4321;
  auto p = BuildBwrapPlan(s, DebianLayout());
  ASSERT_TRUE(p.ok());
  EXPECT_NE(p->file_fds.at(kPasswdFd).find("sandbox:x:1234:4321:"), std::string::npos);
  EXPECT_NE(p->file_fds.at(kGroupFd).find("sandbox:x:4321:"), std::string::npos);
  EXPECT_GE(Find(p->argv, {"--file", std::to_string(kPasswdFd), "/etc/passwd"}), 0);
  EXPECT_GE(Find(p->argv, {"--file", std::to_string(kGroupFd), "/etc/group"}), 0);
}

TEST(BwrapPlan, AStagedWorkspaceIsBoundFromTheStageNeverFromItsHostPath) {
  SandboxSpec s = Spec();
  s.stage_workspace = true;
  auto p = BuildBwrapPlan(s, DebianLayout());
  ASSERT_TRUE(p.ok());
  EXPECT_GE(Find(p->argv, {"--bind", kWorkspaceStage, "/workspace"}), 0);
  EXPECT_EQ(Find(p->argv, {"/srv/ws"}), -1);
}

TEST(BwrapPlan, WorkspaceLikeAnOptionStaysAnArgument) {
  // A workspace path that looks like an option is still the SRC operand of --bind.
  SandboxSpec s = Spec();
  s.workspace_dir = "/--dev-bind";
  auto p = BuildBwrapPlan(s, DebianLayout());
  ASSERT_TRUE(p.ok());
  EXPECT_GE(Find(p->argv, {"--bind", "/--dev-bind", "/workspace"}), 0);
}

TEST(BwrapPlan, RefusesBadSpecs) {
  auto refuse = [](auto mutate) {
    SandboxSpec s = Spec();
    mutate(s);
    return !BuildBwrapPlan(s, DebianLayout()).ok();
  };
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.host_uid = 0; }));
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.host_gid = 0; }));
  // The host's nobody is shared with everything else: never a sandbox's identity.
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.host_uid = 65534; }));
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.host_gid = 65534; }));
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.uid = 0; }));
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.id = "../x"; }));
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.workspace_dir = "relative"; }));
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.workspace_dir = "/a/../etc"; }));
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.agent_path = ""; }));
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.hostname = "a b"; }));
  EXPECT_TRUE(refuse([](SandboxSpec& s) { s.tmp_size_bytes = 0; }));
  HostLayout no_usr;
  EXPECT_FALSE(BuildBwrapPlan(Spec(), no_usr).ok());
}

}  // namespace
}  // namespace agentfense::runtime
