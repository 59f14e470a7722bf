// Policy changes at run time (SPEC §3.7): after SetPolicy returns, the very next syscall sees the
// new rule, despite day-long kernel cache timeouts. Also InvalidatePath for source changes.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string>
#include <vector>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

constexpr char kCanary[] = "CANARY-7f3a9-policy";

bool Listed(const std::string& dir, const std::string& name) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* de = ::readdir(d)) found = found || name == de->d_name;
  ::closedir(d);
  return found;
}

TEST(PolicyChange, DowngradeWhileCachedIsSeenByTheNextSyscall) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  ::mkdir(m->src("dir").c_str(), 0755);
  WriteFile(m->src("dir/secret.txt"), kCanary);
  WriteFile(m->src("dir/public.txt"), "public");
  // Warm every cache: dentry, attributes, listing, pages.
  for (int i = 0; i < 3; ++i) {
    struct stat st;
    ASSERT_EQ(::stat(m->mnt("dir/secret.txt").c_str(), &st), 0);
    ASSERT_EQ(ReadFile(m->mnt("dir/secret.txt")).value_or(""), kCanary);
    ASSERT_TRUE(Listed(m->mnt("dir"), "secret.txt"));
  }
  m->fs().SetPolicy(MakePolicy({"**/*=read", "/dir/secret.txt=none@10"}));
  struct stat st;
  EXPECT_EQ(Err(::stat(m->mnt("dir/secret.txt").c_str(), &st)), ENOENT);
  EXPECT_EQ(Err(::open(m->mnt("dir/secret.txt").c_str(), O_RDONLY)), ENOENT);
  EXPECT_FALSE(Listed(m->mnt("dir"), "secret.txt"));
  EXPECT_TRUE(Listed(m->mnt("dir"), "public.txt"));
  EXPECT_FALSE(TreeContains(m->mnt(), kCanary));
  // read-only now: writes refused at once.
  EXPECT_EQ(Err(::open(m->mnt("dir/public.txt").c_str(), O_WRONLY)), EACCES);
  EXPECT_EQ(Err(::unlink(m->mnt("dir/public.txt").c_str())), EACCES);
  // And back up: visible again immediately (no negative caching of hidden names).
  m->fs().SetPolicy(PresetPolicy("read-only"));
  EXPECT_EQ(ReadFile(m->mnt("dir/secret.txt")).value_or(""), kCanary);
}

TEST(PolicyChange, ReadToViewDropsCachedPages) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("read-only"));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("f"), kCanary);
  ASSERT_EQ(ReadFile(m->mnt("f")).value_or(""), kCanary);
  m->fs().SetPolicy(PresetPolicy("view-only"));
  struct stat st;
  EXPECT_EQ(Err(::stat(m->mnt("f").c_str(), &st)), 0);
  EXPECT_EQ(Err(::open(m->mnt("f").c_str(), O_RDONLY)), EACCES);
  EXPECT_FALSE(TreeContains(m->mnt(), kCanary));
}

TEST(PolicyChange, WhileOpenExistingFdKeepsAccessNewOpensDenied) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("f"), "abc");
  int fd = ::open(m->mnt("f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  m->fs().SetPolicy(MakePolicy({"**/*=read", "/f=none@10"}));
  // Every new lookup/open sees the new rule. An fd opened before the downgrade may keep its access
  // (POSIX/Landlock semantics) or lose it when the kernel revalidates attributes (the file is now
  // hidden); it never reads anything but the file's own bytes.
  char buf[8];
  ssize_t n = ::pread(fd, buf, sizeof(buf), 0);
  EXPECT_TRUE(n == -1 || (n == 3 && std::string(buf, 3) == "abc"));
  ::close(fd);
  EXPECT_EQ(Err(::open(m->mnt("f").c_str(), O_RDONLY)), ENOENT);
}

TEST(PolicyChange, DirectoryHiddenAfterDowngradeIncludingCwdLookups) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  ::mkdir(m->src("d").c_str(), 0755);
  ::mkdir(m->src("d/e").c_str(), 0755);
  WriteFile(m->src("d/e/k"), kCanary);
  ASSERT_EQ(ReadFile(m->mnt("d/e/k")).value_or(""), kCanary);
  int dfd = ::open(m->mnt("d/e").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  m->fs().SetPolicy(MakePolicy({"**/*=read", "/d/**=none@10"}));
  struct stat st;
  EXPECT_EQ(Err(::stat(m->mnt("d").c_str(), &st)), ENOENT);
  // Even relative to a directory fd opened before the change, names beneath are gone.
  EXPECT_EQ(Err(::openat(dfd, "k", O_RDONLY)), ENOENT);
  ::close(dfd);
  EXPECT_FALSE(TreeContains(m->mnt(), kCanary));
}

TEST(PolicyChange, InvalidatePathShowsSourceChanges) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("read-only"));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("f"), "old");
  ASSERT_EQ(ReadFile(m->mnt("f")).value_or(""), "old");
  ASSERT_FALSE(Listed(m->mnt(), "g"));
  WriteFile(m->src("f"), "new!");
  WriteFile(m->src("g"), "g");
  ASSERT_TRUE(m->fs().InvalidatePath("/").ok());
  EXPECT_EQ(ReadFile(m->mnt("f")).value_or(""), "new!");
  EXPECT_TRUE(Listed(m->mnt(), "g"));
}

// Without any invalidation: a file rewritten on the host between two opens (same size, new
// mtime) loses keep_cache at the next open, so its stale pages are not served. This is what
// stands in for FUSE_CAP_AUTO_INVAL_DATA, which we turn off (docs/FILESYSTEM.md).
TEST(PolicyChange, HostRewriteBetweenOpensIsReadAfresh) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("read-only"));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("f"), "old-content");
  for (int i = 0; i < 2; ++i) ASSERT_EQ(ReadFile(m->mnt("f")).value_or(""), "old-content");
  WriteFile(m->src("f"), "new-content");
  struct timespec later[2] = {{0, UTIME_OMIT}, {::time(nullptr) + 10, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, m->src("f").c_str(), later, 0), 0);
  EXPECT_EQ(ReadFile(m->mnt("f")).value_or(""), "new-content");
}

TEST(PolicyChange, AuditRecordsDenials) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"**/*=read", "/hidden=none@10"}));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("hidden"), kCanary);
  WriteFile(m->src("r"), "r");
  struct stat st;
  EXPECT_EQ(Err(::stat(m->mnt("hidden").c_str(), &st)), ENOENT);
  EXPECT_EQ(Err(::open(m->mnt("r").c_str(), O_WRONLY)), EACCES);
  std::lock_guard lock(m->audit().mu);
  bool saw_lookup = false, saw_open = false;
  for (const auto& e : m->audit().events) {
    if (e.op == "lookup" && e.path == "/hidden") {
      saw_lookup = true;
      EXPECT_EQ(e.rule, 1);
      EXPECT_EQ(e.pid, ::getpid());
    }
    if (e.op == "open" && e.path == "/r") {
      saw_open = true;
      EXPECT_EQ(e.rule, 0);
      EXPECT_EQ(e.error, EACCES);
    }
  }
  EXPECT_TRUE(saw_lookup);
  EXPECT_TRUE(saw_open);
}

}  // namespace
}  // namespace agentfense::fs::testing
