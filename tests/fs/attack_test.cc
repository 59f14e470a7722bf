// Attacks of SECURITY-NOTES §2.1 through a real mount. Every hidden file holds a canary that must
// never appear anywhere in the mount.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

constexpr char kCanary[] = "CANARY-e41b7-hidden";

TEST(Attack, SymlinkToHiddenFileAndOutOfTreeIsNeverFollowedByTheDaemon) {
  AF_REQUIRE_FUSE();
  TempDir outside;
  WriteFile(outside / "target", "outside");
  struct stat before;
  ASSERT_EQ(::stat((outside / "target").c_str(), &before), 0);
  auto m = MountedFs::Start(MakePolicy({"**/*=write", "/secret=none@10"}));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("secret"), kCanary);
  ASSERT_EQ(::symlink((outside / "target").c_str(), m->src("out").c_str()), 0);
  // A link made inside the mount to the hidden file resolves through the mount: ENOENT.
  ASSERT_EQ(::symlink("secret", m->mnt("link").c_str()), 0);
  EXPECT_EQ(Err(::open(m->mnt("link").c_str(), O_RDONLY)), ENOENT);
  // Operations on a source symlink pointing out of the tree act on the link, never the target.
  EXPECT_EQ(Err(::lchown(m->mnt("out").c_str(), 1, 1)), EPERM);
  struct timespec ts[2] = {{1, 0}, {1, 0}};
  EXPECT_EQ(Err(::utimensat(AT_FDCWD, m->mnt("out").c_str(), ts, AT_SYMLINK_NOFOLLOW)), 0);
  EXPECT_EQ(Err(::lsetxattr(m->mnt("out").c_str(), "user.x", "1", 1, 0)), EPERM);
  EXPECT_EQ(Err(::rename(m->mnt("out").c_str(), m->mnt("out2").c_str())), 0);
  struct stat after, link;
  ASSERT_EQ(::stat((outside / "target").c_str(), &after), 0);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_uid, before.st_uid);
  ASSERT_EQ(::lstat(m->src("out2").c_str(), &link), 0);
  EXPECT_TRUE(S_ISLNK(link.st_mode));
  EXPECT_EQ(link.st_mtim.tv_sec, 1);
  EXPECT_FALSE(TreeContains(m->mnt(), kCanary));
}

TEST(Attack, RenameOfHiddenFilesAncestorIsRefused) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"**/*=write", "**/secrets/**=none@100"}));
  ASSERT_NE(m, nullptr);
  ::mkdir(m->src("proj").c_str(), 0755);
  ::mkdir(m->src("proj/secrets").c_str(), 0755);
  WriteFile(m->src("proj/secrets/k"), kCanary);
  WriteFile(m->src("proj/code.py"), "print()");
  EXPECT_EQ(Err(::rename(m->mnt("proj").c_str(), m->mnt("moved").c_str())), EXDEV);
  // An exchange moves both trees: the hidden subtree's ancestor refuses it on either side.
  ::mkdir(m->src("other").c_str(), 0755);
  for (auto [a, b] : {std::pair{"proj", "other"}, std::pair{"other", "proj"}}) {
    EXPECT_EQ(Err(::renameat2(AT_FDCWD, m->mnt(a).c_str(), AT_FDCWD, m->mnt(b).c_str(), RENAME_EXCHANGE)),
              EXDEV)
        << a << " <-> " << b;
  }
  EXPECT_EQ(Err(::rename(m->mnt("proj/secrets").c_str(), m->mnt("proj/s2").c_str())), ENOENT);
  // rmdir of a directory holding only hidden entries: ENOTEMPTY, and nothing is removed.
  ::mkdir(m->src("only").c_str(), 0755);
  ::mkdir(m->src("only/secrets").c_str(), 0755);
  EXPECT_EQ(Err(::rmdir(m->mnt("only").c_str())), ENOTEMPTY);
  struct stat st;
  EXPECT_EQ(::stat(m->src("proj/secrets/k").c_str(), &st), 0);
  EXPECT_FALSE(TreeContains(m->mnt(), kCanary));
}

TEST(Attack, RenameOfDirectoryHoldingReadOnlyFilesIsExdev) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"**/*=write", "/d/ro.txt=read@10"}));
  ASSERT_NE(m, nullptr);
  ::mkdir(m->src("d").c_str(), 0755);
  WriteFile(m->src("d/ro.txt"), "ro");
  EXPECT_EQ(Err(::rename(m->mnt("d").c_str(), m->mnt("e").c_str())), EXDEV);
  EXPECT_EQ(Err(::rmdir(m->mnt("d").c_str())), ENOTEMPTY);
  EXPECT_EQ(Err(::unlink(m->mnt("d/ro.txt").c_str())), EACCES);
}

TEST(Attack, HardLinkOfReadOnlyFileIntoWriteArea) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"**/*=read", "/w/**=write@10"}));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("r.txt"), "original");
  ::mkdir(m->src("w").c_str(), 0755);
  EXPECT_EQ(Err(::link(m->mnt("r.txt").c_str(), m->mnt("w/alias").c_str())), EACCES);
  EXPECT_EQ(Err(::open(m->mnt("w/alias").c_str(), O_WRONLY)), ENOENT);
  EXPECT_EQ(ReadFile(m->src("r.txt")).value_or(""), "original");
  // A pre-existing cross-level hard link in the source: the most restrictive name wins.
  ASSERT_EQ(::link(m->src("r.txt").c_str(), m->src("w/prelinked").c_str()), 0);
  ASSERT_EQ(ReadFile(m->mnt("r.txt")).value_or(""), "original");  // learn the read name
  EXPECT_EQ(Err(::open(m->mnt("w/prelinked").c_str(), O_WRONLY)), EACCES);
  EXPECT_EQ(ReadFile(m->src("r.txt")).value_or(""), "original");
}

TEST(Attack, ReopenThroughProcSelfFdAndTruncationTricks) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("read-only"));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("r"), "keep me");
  int opath = ::open(m->mnt("r").c_str(), O_PATH);
  ASSERT_GE(opath, 0);
  std::string proc = "/proc/self/fd/" + std::to_string(opath);
  EXPECT_EQ(Err(::open(proc.c_str(), O_WRONLY)), EACCES);
  EXPECT_EQ(Err(::open(proc.c_str(), O_RDWR)), EACCES);
  EXPECT_EQ(Err(::open(proc.c_str(), O_RDONLY | O_TRUNC)), EACCES);
  ::close(opath);
  EXPECT_EQ(Err(::open(m->mnt("r").c_str(), O_RDONLY | O_TRUNC)), EACCES);
  EXPECT_EQ(Err(::open(m->mnt("r").c_str(), O_WRONLY | O_APPEND)), EACCES);
  EXPECT_EQ(Err(::truncate(m->mnt("r").c_str(), 0)), EACCES);
  int fd = ::open(m->mnt("r").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_NE(::ftruncate(fd, 0), 0);
  EXPECT_NE(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4), 0);
  void* w = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  EXPECT_EQ(w, MAP_FAILED);
  void* pv = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ASSERT_NE(pv, MAP_FAILED);
  std::memcpy(pv, "XXXX", 4);
  ::munmap(pv, 4096);
  EXPECT_EQ(Err(::fchmod(fd, 0777)), EACCES);
  EXPECT_EQ(Err(::fsetxattr(fd, "user.a", "1", 1, 0)), EACCES);
  EXPECT_EQ(Err(::fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0)), EPERM);
  ::close(fd);
  EXPECT_EQ(ReadFile(m->src("r")).value_or(""), "keep me");
  EXPECT_EQ(ReadFile(m->mnt("r")).value_or(""), "keep me");
}

TEST(Attack, CreatingANameThatMatchesANoneRuleFailsTheSameWayExistingOrNot) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"**/*=write", "**/.env*=none@100"}));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src(".env"), kCanary);
  WriteFile(m->src("ok"), "ok");
  for (const char* name : {".env", ".env.local"}) {  // exists / does not exist
    SCOPED_TRACE(name);
    std::string p = m->mnt(name);
    EXPECT_EQ(Err(::open(p.c_str(), O_WRONLY | O_CREAT, 0644)), EACCES);
    EXPECT_EQ(Err(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644)), EACCES);
    EXPECT_EQ(Err(::mkdir(p.c_str(), 0755)), EACCES);
    EXPECT_EQ(Err(::symlink("x", p.c_str())), EACCES);
    EXPECT_EQ(Err(::mkfifo(p.c_str(), 0600)), EACCES);
    EXPECT_EQ(Err(::link(m->mnt("ok").c_str(), p.c_str())), EACCES);
    EXPECT_EQ(Err(::rename(m->mnt("ok").c_str(), p.c_str())), EACCES);
    struct stat st;
    EXPECT_EQ(Err(::stat(p.c_str(), &st)), ENOENT);
    EXPECT_EQ(Err(::unlink(p.c_str())), ENOENT);
  }
  EXPECT_EQ(ReadFile(m->src(".env")).value_or(""), kCanary);
  EXPECT_FALSE(TreeContains(m->mnt(), kCanary));
  // Device nodes are never created, even at write names.
  EXPECT_EQ(Err(::mknod(m->mnt("dev").c_str(), S_IFCHR | 0600, makedev(1, 3))), EPERM);
  // setuid/setgid bits are stripped on chmod and create.
  ASSERT_EQ(::chmod(m->mnt("ok").c_str(), 06755), 0);
  struct stat st;
  ASSERT_EQ(::stat(m->src("ok").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  int fd = ::open(m->mnt("suid").c_str(), O_WRONLY | O_CREAT, 04755);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_EQ(::stat(m->src("suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & (S_ISUID | S_ISGID), 0u);
  // ioctl is refused.
  fd = ::open(m->mnt("ok").c_str(), O_RDONLY);
  int flags = 0;
  EXPECT_NE(::ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
  ::close(fd);
}

TEST(Attack, HiddenEntriesLeaveNoTraceInDirectoryMetadata) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"**/*=read", "**/*.key=none@10"}));
  ASSERT_NE(m, nullptr);
  ::mkdir(m->src("a").c_str(), 0755);
  ::mkdir(m->src("b").c_str(), 0755);
  WriteFile(m->src("a/x"), "x");
  WriteFile(m->src("b/x"), "x");
  for (int i = 0; i < 300; ++i) {
    WriteFile(m->src("a/hidden-name-" + std::to_string(i) + ".key"), kCanary);
    ::mkdir(m->src("a/d" + std::to_string(i) + ".key").c_str(), 0755);
  }
  struct stat sa, sb;
  ASSERT_EQ(::stat(m->mnt("a").c_str(), &sa), 0);
  ASSERT_EQ(::stat(m->mnt("b").c_str(), &sb), 0);
  EXPECT_EQ(sa.st_size, sb.st_size);
  EXPECT_EQ(sa.st_nlink, sb.st_nlink);
  EXPECT_EQ(sa.st_blocks, sb.st_blocks);
  EXPECT_FALSE(TreeContains(m->mnt(), kCanary));
  EXPECT_FALSE(TreeContains(m->mnt(), "hidden-name"));
  char buf[64];
  EXPECT_EQ(Err(::getxattr(m->mnt("a/hidden-name-1.key").c_str(), "user.x", buf, sizeof(buf))), ENOENT);
}

TEST(Attack, RenameRaceAgainstLookup) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"**/*=write", "**/*.hid=none@10"}));
  ASSERT_NE(m, nullptr);
  ::mkdir(m->src("w").c_str(), 0755);
  WriteFile(m->src("w/a.txt"), "PUBLIC");
  WriteFile(m->src("w/c.hid"), kCanary);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread renamer([&] {
    for (int i = 0; i < 3000; ++i) {
      if (::rename(m->mnt("w/a.txt").c_str(), m->mnt("w/b.txt").c_str()) != 0) bad++;
      if (::rename(m->mnt("w/b.txt").c_str(), m->mnt("w/a.txt").c_str()) != 0) bad++;
      // Moving onto the hidden name is refused every time.
      if (::rename(m->mnt("w/a.txt").c_str(), m->mnt("w/c.hid").c_str()) == 0) bad += 1000;
    }
    stop = true;
  });
  int reads = 0;
  while (!stop) {
    for (const char* n : {"w/a.txt", "w/b.txt", "w/c.hid"}) {
      auto c = ReadFile(m->mnt(n));
      if (c) {
        ++reads;
        if (*c != "PUBLIC") bad += 1000;
      } else if (errno != ENOENT) {
        bad += 1000;
      }
    }
  }
  renamer.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads, 0);
  EXPECT_EQ(ReadFile(m->src("w/c.hid")).value_or(""), kCanary);
  EXPECT_FALSE(TreeContains(m->mnt(), kCanary));
}

}  // namespace
}  // namespace agentfense::fs::testing
