// Policy changes at run time (SPEC §3.7): after SetPolicy returns, the very next syscall sees the
// new rule, despite day-long kernel cache timeouts. Also InvalidatePath for source changes.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include <cerrno>
#include <ctime>
#include <string>
#include <vector>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

constexpr char kCanary[] = "CANARY-7f3a9-policy";

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
  // And back up: visible again immediately (SetPolicy drops the hidden name cached as absent).
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

// Revocation: once SetPolicy returns, a descriptor opened before reads, writes and faults in
// pages only as far as the new policy allows, cached pages included; an upgrade keeps it working.
TEST(PolicyChange, OpenDescriptorsFollowTheNewPolicy) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  std::string big(1 << 20, 'x');
  std::memcpy(big.data(), kCanary, sizeof(kCanary) - 1);
  WriteFile(m->src("f"), big);
  WriteFile(m->src("g"), kCanary);
  WriteFile(m->src("w"), "w");
  int fd = ::open(m->mnt("f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  int gfd = ::open(m->mnt("g").c_str(), O_RDONLY);
  ASSERT_GE(gfd, 0);
  int wfd = ::open(m->mnt("w").c_str(), O_WRONLY);
  ASSERT_GE(wfd, 0);
  char buf[4096];
  ASSERT_EQ(::pread(fd, buf, sizeof(buf), 0), static_cast<ssize_t>(sizeof(buf)));  // cached now
  ASSERT_EQ(::pread(gfd, buf, sizeof(buf), 0), static_cast<ssize_t>(sizeof(kCanary) - 1));
  void* map = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  ASSERT_EQ(std::memcmp(map, kCanary, sizeof(kCanary) - 1), 0);  // mapped and faulted in

  m->fs().SetPolicy(MakePolicy({"**/*=read", "/f=none@10", "/g=view@10"}));
  // The offset already cached, a fresh one, both through `none` and `view`: refused.
  EXPECT_EQ(Err(::pread(fd, buf, sizeof(buf), 0)), EACCES);
  EXPECT_EQ(Err(::pread(fd, buf, sizeof(buf), 512 << 10)), EACCES);
  EXPECT_EQ(Err(::pread(gfd, buf, sizeof(buf), 0)), EACCES);
  // Writable before, `read` now.
  EXPECT_EQ(Err(::pwrite(wfd, "W", 1, 0)), EACCES);
  EXPECT_EQ(ReadFile(m->src("w")).value_or(""), "w");
  // The mapped page was dropped with the cache: touching it faults into a READ, refused, SIGBUS
  // (caught in the child, which exits 42: a sanitizer's own SIGBUS report would exit otherwise).
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    struct sigaction sa {};
    sa.sa_handler = [](int) { ::_exit(42); };
    ::sigaction(SIGBUS, &sa, nullptr);
    volatile char c = *static_cast<volatile char*>(map);
    (void)c;
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 42) << "status " << status;
  EXPECT_GE(m->audit().Count("read"), 3u);
  EXPECT_GE(m->audit().Count("write"), 1u);

  // An upgrade: the same descriptors work again.
  m->fs().SetPolicy(PresetPolicy("full-access"));
  EXPECT_EQ(::pread(fd, buf, sizeof(kCanary) - 1, 0), static_cast<ssize_t>(sizeof(kCanary) - 1));
  EXPECT_EQ(std::memcmp(buf, kCanary, sizeof(kCanary) - 1), 0);
  EXPECT_EQ(::pwrite(wfd, "W", 1, 0), 1);
  ::munmap(map, 4096);
  ::close(fd);
  ::close(gfd);
  ::close(wfd);
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
