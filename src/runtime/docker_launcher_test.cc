// Unit tests of the Docker launcher's host-side helpers (no daemon needed).
#include "runtime/docker_launcher.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace agentfense::runtime {
namespace {

constexpr std::string_view kMountinfo =
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "42 27 254:0 /var/lib/docker /var/lib/docker rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "50 27 0:40 / /srv/mnt rw master:3 - tmpfs tmpfs rw\n"
    "51 50 0:41 / /srv/mnt/priv rw - tmpfs tmpfs rw\n"
    "60 27 0:42 / /with\\040space rw shared:7 - tmpfs tmpfs rw\n"
    "61 27 0:43 / /stack rw - tmpfs tmpfs rw\n"
    "62 61 0:44 / /stack rw shared:9 - tmpfs tmpfs rw\n"
    "garbage line\n";

TEST(DockerLauncher, MountPropagatesAt) {
  EXPECT_FALSE(MountPropagatesAt(kMountinfo, "/tmp/x"));             // on private "/"
  EXPECT_TRUE(MountPropagatesAt(kMountinfo, "/var/lib/docker/a"));   // shared
  EXPECT_FALSE(MountPropagatesAt(kMountinfo, "/var/lib/dockerx"));   // prefix is not a parent
  EXPECT_TRUE(MountPropagatesAt(kMountinfo, "/srv/mnt/sbx"));        // slave
  EXPECT_FALSE(MountPropagatesAt(kMountinfo, "/srv/mnt/priv/sbx"));  // private child mount
  EXPECT_TRUE(MountPropagatesAt(kMountinfo, "/with space/ws"));      // octal escapes decoded
  EXPECT_TRUE(MountPropagatesAt(kMountinfo, "/stack/ws"));           // the top of a stack counts
  EXPECT_FALSE(MountPropagatesAt("", "/x"));
}

TEST(DockerLauncher, RemoveTreeAtDoesNotFollowSymlinks) {
  char tmpl[] = "/tmp/af-rmtree-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  const std::string outside = root + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  std::ofstream(outside + "/precious") << "keep";
  const std::string tree = root + "/tree";
  ASSERT_EQ(::mkdir(tree.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((tree + "/a").c_str(), 0755), 0);
  std::ofstream(tree + "/a/f") << "x";
  ASSERT_EQ(::symlink(outside.c_str(), (tree + "/link").c_str()), 0);
  ASSERT_EQ(::symlink((outside + "/precious").c_str(), (tree + "/a/flink").c_str()), 0);
  ASSERT_EQ(::mkfifo((tree + "/fifo").c_str(), 0600), 0);

  auto dir = OpenAt(AT_FDCWD, root.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(RemoveTreeAt(dir->get(), "tree").ok());
  struct stat st;
  EXPECT_NE(::lstat(tree.c_str(), &st), 0);
  EXPECT_EQ(::stat((outside + "/precious").c_str(), &st), 0);
  // Missing is fine; too deep is an error, not a stack overflow.
  EXPECT_TRUE(RemoveTreeAt(dir->get(), "tree").ok());
  std::string deep = root + "/deep";
  ASSERT_EQ(::mkdir(deep.c_str(), 0755), 0);
  std::string p = deep;
  for (int i = 0; i < 5; ++i) {
    p += "/d";
    ASSERT_EQ(::mkdir(p.c_str(), 0755), 0);
  }
  EXPECT_FALSE(RemoveTreeAt(dir->get(), "deep", 3).ok());
  EXPECT_TRUE(RemoveTreeAt(dir->get(), "deep").ok());
  EXPECT_TRUE(RemoveTreeAt(dir->get(), "outside").ok());
  ASSERT_EQ(::rmdir(root.c_str()), 0);
}

TEST(DockerLauncher, CreateValidatesConfig) {
  DockerLauncherConfig cfg;
  cfg.client.host = "unix:///nonexistent/docker.sock";
  cfg.agent_path = "relative/agent";
  EXPECT_EQ(DockerLauncher::Create(cfg).error().code(), ErrorCode::kInvalidArgument);
  cfg.agent_path = "/nonexistent/agentfense-agent";
  EXPECT_EQ(DockerLauncher::Create(cfg).error().code(), ErrorCode::kFailedPrecondition);
  cfg.agent_path = "/bin/sh";
  cfg.instance = "has-dash";
  EXPECT_EQ(DockerLauncher::Create(cfg).error().code(), ErrorCode::kInvalidArgument);
  cfg.instance = "ok";
  cfg.run_root = "/tmp/af-launcher-unit-" + std::to_string(::getpid());
  auto l = DockerLauncher::Create(cfg);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code(), ErrorCode::kUnavailable);  // the daemon, checked last
  ::rmdir(cfg.run_root.c_str());
}

}  // namespace
}  // namespace agentfense::runtime
