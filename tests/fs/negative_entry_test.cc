// Negative entries (docs/FILESYSTEM.md, "Negative entries"): names answered ENOENT are cached by
// the kernel, hidden ones exactly like absent ones, and every change the kernel did not make
// itself drops them: a policy change for hidden names, InvalidatePath for a source change, and
// the delta's discard and checkpoint restore for names removed through the mount. Each trigger
// has its case, on a plain and on a delta-backed mount.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <string>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

uint64_t Lookups(PermFs& fs) {
  for (const auto& [kind, n] : fs.RequestCounts()) {
    if (kind == "lookup") return n;
  }
  return 0;
}

int StatErr(const std::string& p) {
  struct stat st;
  return Err(::stat(p.c_str(), &st));
}

class NegativeEntry : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { AF_REQUIRE_FUSE(); }
  std::unique_ptr<MountedFs> Mount(policy::Policy p) {
    FsOptions o;
    if (GetParam()) o.delta_dir = dir_ / "delta";
    ::mkdir((dir_ / "src").c_str(), 0755);
    return MountedFs::StartOn(dir_ / "src", std::move(p), o);
  }
  TempDir dir_;
};

TEST_P(NegativeEntry, HiddenAndAbsentNamesCostOneLookupEachAndAnUpgradeShowsTheHiddenOne) {
  auto m = Mount(MakePolicy({"**=read", "/secret=none@10", "/vault/**=none@10"}));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("secret"), "S");
  ::mkdir(m->src("vault").c_str(), 0755);
  WriteFile(m->src("vault/key"), "K");
  const uint64_t before = Lookups(m->fs());
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(StatErr(m->mnt("secret")), ENOENT);
    ASSERT_EQ(StatErr(m->mnt("absent")), ENOENT);
    ASSERT_EQ(StatErr(m->mnt("vault/key")), ENOENT);
  }
  // Hidden and absent alike: one request each, then the kernel answers (SECURITY-NOTES I2: the
  // same cost, so timing tells them apart no better than before).
  EXPECT_EQ(Lookups(m->fs()) - before, 3u);
  EXPECT_GE(m->audit().Count("lookup"), 2u);  // the first probe of each hidden name is audited
  m->fs().SetPolicy(MakePolicy({"**=read", "/vault/**=none@10"}));
  EXPECT_EQ(ReadFile(m->mnt("secret")).value_or(""), "S");
  EXPECT_EQ(StatErr(m->mnt("vault/key")), ENOENT);
  m->fs().SetPolicy(MakePolicy({"**=read"}));
  EXPECT_EQ(ReadFile(m->mnt("vault/key")).value_or(""), "K");
  EXPECT_EQ(StatErr(m->mnt("absent")), ENOENT);
}

TEST_P(NegativeEntry, NamesTheAgentCreatesAppearAndHiddenOnesStayRefused) {
  auto m = Mount(MakePolicy({"**=write", "/out/.env*=none@10"}));
  ASSERT_NE(m, nullptr);
  ::mkdir(m->src("out").c_str(), 0755);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(StatErr(m->mnt("new.txt")), ENOENT);
    ASSERT_EQ(StatErr(m->mnt("out/.env")), ENOENT);
  }
  WriteFile(m->mnt("new.txt"), "n");  // the kernel replaces its negative dentry itself
  EXPECT_EQ(ReadFile(m->mnt("new.txt")).value_or(""), "n");
  // A cached absent hidden name is no way around the rule.
  EXPECT_EQ(Err(::open(m->mnt("out/.env").c_str(), O_WRONLY | O_CREAT, 0644)), EACCES);
  EXPECT_EQ(Err(::mkdir(m->mnt("out/.env").c_str(), 0755)), EACCES);
  EXPECT_EQ(Err(::rename(m->mnt("new.txt").c_str(), m->mnt("out/.env").c_str())), EACCES);
  EXPECT_EQ(StatErr(m->mnt("out/.env")), ENOENT);
  EXPECT_FALSE(Listed(m->mnt("out"), ".env"));
  // Removed through the mount, then back the same way: never a stale answer.
  ASSERT_EQ(::unlink(m->mnt("new.txt").c_str()), 0);
  EXPECT_EQ(StatErr(m->mnt("new.txt")), ENOENT);
  WriteFile(m->mnt("new.txt"), "again");
  EXPECT_EQ(ReadFile(m->mnt("new.txt")).value_or(""), "again");
}

TEST_P(NegativeEntry, ASourceChangeOutsideTheMountIsSeenOnceAnnounced) {
  auto m = Mount(MakePolicy({"**=read"}));
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(StatErr(m->mnt("later.txt")), ENOENT);
  ASSERT_EQ(StatErr(m->mnt("d")), ENOENT);
  WriteFile(m->src("later.txt"), "L");
  ::mkdir(m->src("d").c_str(), 0755);
  WriteFile(m->src("d/f"), "F");
  // As for attributes and listings (docs/FILESYSTEM.md): a change made outside is announced.
  EXPECT_EQ(StatErr(m->mnt("later.txt")), ENOENT);
  ASSERT_TRUE(m->fs().InvalidatePath("/later.txt").ok());
  EXPECT_EQ(ReadFile(m->mnt("later.txt")).value_or(""), "L");
  // Announcing a path beneath a name cached as absent drops that name too.
  ASSERT_TRUE(m->fs().InvalidatePath("/d/f").ok());
  EXPECT_EQ(ReadFile(m->mnt("d/f")).value_or(""), "F");
}

TEST_P(NegativeEntry, NamesCachedBeneathARenamedDirectoryFollowItsNewName) {
  auto m = Mount(MakePolicy({"**=write"}));
  ASSERT_NE(m, nullptr);
  ::mkdir(m->src("a").c_str(), 0755);
  ASSERT_EQ(StatErr(m->mnt("a/x")), ENOENT);
  ASSERT_EQ(::rename(m->mnt("a").c_str(), m->mnt("b").c_str()), 0);
  const uint64_t before = Lookups(m->fs());
  ASSERT_EQ(StatErr(m->mnt("b/x")), ENOENT);
  EXPECT_EQ(Lookups(m->fs()), before);  // the kernel moved the cached entry along
  // The announced change at the new name reaches the entry cached under the old one.
  const std::string b = GetParam() ? dir_ / "delta/upper/b" : m->src("b");
  WriteFile(b + "/x", "X");
  ASSERT_TRUE(m->fs().InvalidatePath("/b/x").ok());
  EXPECT_EQ(ReadFile(m->mnt("b/x")).value_or(""), "X");
}

INSTANTIATE_TEST_SUITE_P(PlainAndDelta, NegativeEntry, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "Delta" : "Plain"; });

// The delta's own changes of the merged view: names removed through the mount, cached as absent
// once looked up again (or never looked up), come back with a discard or a restore.
TEST(NegativeEntryDelta, DiscardAndRestoreBringBackNamesRemovedThroughTheMount) {
  AF_REQUIRE_FUSE();
  TempDir dir;
  const std::string src = dir / "src";
  ::mkdir(src.c_str(), 0755);
  ::mkdir((src + "/d").c_str(), 0755);
  WriteFile(src + "/a", "a");
  WriteFile(src + "/d/b", "b");
  FsOptions o;
  o.delta_dir = dir / "delta";
  auto m = MountedFs::StartOn(src, MakePolicy({"**=write"}), o);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(::unlink(m->mnt("a").c_str()), 0);
  ASSERT_EQ(::unlink(m->mnt("d/b").c_str()), 0);
  ASSERT_EQ(::rmdir(m->mnt("d").c_str()), 0);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(StatErr(m->mnt("a")), ENOENT);
    ASSERT_EQ(StatErr(m->mnt("d")), ENOENT);
  }
  ASSERT_TRUE(m->fs().DiscardDelta().ok());
  EXPECT_EQ(ReadFile(m->mnt("a")).value_or(""), "a");
  EXPECT_EQ(ReadFile(m->mnt("d/b")).value_or(""), "b");

  ASSERT_TRUE(m->fs().CreateCheckpoint("c1").ok());
  ASSERT_EQ(::unlink(m->mnt("a").c_str()), 0);
  ASSERT_EQ(::unlink(m->mnt("d/b").c_str()), 0);
  ASSERT_EQ(StatErr(m->mnt("a")), ENOENT);
  ASSERT_EQ(StatErr(m->mnt("d/b")), ENOENT);
  ASSERT_TRUE(m->fs().RestoreCheckpoint("c1").ok());
  EXPECT_EQ(ReadFile(m->mnt("a")).value_or(""), "a");
  EXPECT_EQ(ReadFile(m->mnt("d/b")).value_or(""), "b");
  // Removed and never looked up again: the kernel expires an unlinked name's dentry itself
  // (nothing of ours records it, so distinct names removed cost no memory).
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(::unlink(m->mnt("a").c_str()), 0);
    ASSERT_TRUE(m->fs().RestoreCheckpoint("c1").ok());
    EXPECT_EQ(ReadFile(m->mnt("a")).value_or(""), "a");
  }
}

}  // namespace
}  // namespace agentfense::fs::testing
