// What the mount leaves on the host (issue 17): who owns what the sandbox creates, with which
// modes, and deep working directories. Compared with a native directory where natively defined.
// Every case also runs delta-backed (fs_system_test_on_delta); those that look at the source then
// commit first.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

constexpr uid_t kOwnerUid = 12345;
constexpr gid_t kOwnerGid = 23456;

std::string Octal(mode_t m) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04o", m);
  return buf;
}

// Creates under `root`, in a child process with umask `mask` (the daemon, this process, keeps
// another umask: a mode that went through the daemon's would differ), every kind of object the
// agent can make, with several modes. Returns "name mode uid gid" per object, via lstat.
std::vector<std::string> CreateAsCaller(const std::string& root, mode_t mask) {
  const mode_t modes[] = {0620, 0777, 0644, 0751, 0600, 0666};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::umask(mask);
    for (mode_t mode : modes) {
      std::string m = Octal(mode);
      int fd = ::open((root + "/f" + m).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
      if (fd < 0) ::_exit(1);
      ::close(fd);
      if (::mkdir((root + "/d" + m).c_str(), mode) != 0) ::_exit(2);
      if (::mkfifo((root + "/p" + m).c_str(), mode) != 0) ::_exit(3);
      if (::mknod((root + "/n" + m).c_str(), S_IFREG | mode, 0) != 0) ::_exit(4);
    }
    if (::symlink("target", (root + "/s").c_str()) != 0) ::_exit(5);
    ::_exit(0);
  }
  int status = -1;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(status, 0) << "creating under " << root;
  std::vector<std::string> out;
  std::vector<std::string> names = {"s"};
  for (mode_t mode : modes) {
    for (const char* kind : {"f", "d", "p", "n"}) names.push_back(kind + Octal(mode));
  }
  for (const auto& n : names) {
    struct stat st;
    if (::lstat((root + "/" + n).c_str(), &st) != 0) {
      out.push_back(n + " missing");
      continue;
    }
    out.push_back(n + " " + Octal(st.st_mode & 07777) + " " + std::to_string(st.st_uid) + " " +
                  std::to_string(st.st_gid));
  }
  return out;
}

// Modes: exactly what the caller asked minus the caller's umask, as natively; never the daemon's.
TEST(HostSide, ModesAreTheCallersNotTheDaemons) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  const mode_t daemon_mask = ::umask(077);  // what a daemon umask would take away: everything
  for (mode_t mask : {0000, 0022, 0077, 0027}) {
    TempDir native;
    std::string sub = "u" + Octal(mask);
    ASSERT_EQ(::mkdir(m->mnt(sub).c_str(), 0755), 0);
    auto want = CreateAsCaller(native.path(), mask);
    auto got = CreateAsCaller(m->mnt(sub), mask);
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(want[i], got[i]) << "umask " << Octal(mask);
    if (mask == 0) {
      EXPECT_EQ(want[1], "f0620 0620 0 0");  // the pjdfstest open/02 case
    }
  }
  ::umask(daemon_mask);
}

// Ownership: what the sandbox creates belongs to the owner of the source tree (here a user, not
// the daemon's root), on the mount and, after a commit, in the source; a setgid directory's group
// is inherited as natively; links and renames never change an owner.
TEST(HostSide, CreatedObjectsBelongToTheTreesOwner) {
  AF_REQUIRE_FUSE();
  TempDir dir;
  std::string src = dir / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::chown(src.c_str(), kOwnerUid, kOwnerGid), 0);
  ASSERT_EQ(::mkdir((src + "/sg").c_str(), 0775), 0);
  ASSERT_EQ(::chown((src + "/sg").c_str(), kOwnerUid, 34567), 0);
  ASSERT_EQ(::chmod((src + "/sg").c_str(), 02775), 0);
  WriteFile(src + "/rootfile", "root's");  // owned by root, stays so
  auto m = MountedFs::StartOn(src, PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  WriteFile(m->mnt("file"), "data");
  ASSERT_EQ(::mkdir(m->mnt("dir").c_str(), 0750), 0);
  ASSERT_EQ(::mkdir(m->mnt("dir/deeper").c_str(), 0750), 0);
  WriteFile(m->mnt("dir/deeper/inner"), "inner");
  ASSERT_EQ(::symlink("file", m->mnt("link").c_str()), 0);
  ASSERT_EQ(::mkfifo(m->mnt("fifo").c_str(), 0600), 0);
  WriteFile(m->mnt("sg/inherits"), "g");
  ASSERT_EQ(::link(m->mnt("rootfile").c_str(), m->mnt("rootlink").c_str()), 0);
  WriteFile(m->mnt("two"), "two names");
  ASSERT_EQ(::link(m->mnt("two").c_str(), m->mnt("two2").c_str()), 0);
  struct stat st;
  ASSERT_EQ(::lstat(m->mnt("file").c_str(), &st), 0);  // what the agent sees is the host's
  EXPECT_EQ(st.st_uid, kOwnerUid);
  if (m->fs().has_delta()) {
    auto report = m->fs().CommitDelta();
    ASSERT_TRUE(report.ok());
    // FIFOs are never synced (docs/DELTA.md); everything else must have landed.
    for (const auto& e : report->errors) EXPECT_EQ(e.path, "/fifo") << e.message;
  }
  for (const char* name : {"file", "dir", "dir/deeper", "dir/deeper/inner", "link", "two",
                           "two2"}) {
    ASSERT_EQ(::lstat((src + "/" + name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_uid, kOwnerUid) << name;
    EXPECT_EQ(st.st_gid, kOwnerGid) << name;
  }
  if (!m->fs().has_delta()) {
    ASSERT_EQ(::lstat((src + "/fifo").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, kOwnerUid);
    EXPECT_EQ(st.st_gid, kOwnerGid);
  }
  ASSERT_EQ(::lstat((src + "/sg/inherits").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kOwnerUid);
  EXPECT_EQ(st.st_gid, 34567u);
  ASSERT_EQ(::lstat((src + "/rootfile").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  ASSERT_EQ(::lstat((src + "/dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST(HostSide, OwnerCanBeSetExplicitly) {
  AF_REQUIRE_FUSE();
  FsOptions opts;
  opts.new_owner_uid = 4242;
  opts.new_owner_gid = 4343;
  auto m = MountedFs::Start(PresetPolicy("full-access"), opts);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(::mkdir(m->mnt("d").c_str(), 0755), 0);
  WriteFile(m->mnt("d/f"), "x");
  struct stat st;
  ASSERT_EQ(::lstat(m->mnt("d/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4242u);
  EXPECT_EQ(st.st_gid, 4343u);
  ASSERT_EQ(::lstat(m->mnt("d").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4242u);
}

// A working directory deeper than PATH_MAX, reached with cd and relative names, works as
// natively: every syscall names a short path relative to it.
std::vector<std::string> DeepScript(const std::string& root) {
  std::vector<std::string> out;
  auto rec = [&](const std::string& label, long r) {
    out.push_back(label + " -> " + (r < 0 ? std::string(strerrorname_np(errno)) : "ok"));
  };
  int saved = ::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  rec("chdir root", ::chdir(root.c_str()));
  const std::string comp(200, 'd');
  for (int i = 0; i < 25; ++i) {  // 25 x 203 bytes: well past PATH_MAX (4096)
    std::string name = comp + std::to_string(100 + i);
    rec("mkdir", ::mkdir(name.c_str(), 0755));
    rec("chdir", ::chdir(name.c_str()));
  }
  int fd = ::open("f", O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  rec("create", fd);
  rec("write", ::write(fd, "deep", 4));
  char buf[16] = {};
  rec("pread", ::pread(fd, buf, sizeof(buf), 0));
  out.push_back(std::string("content ") + buf);
  ::close(fd);
  rec("rename", ::rename("f", "g"));
  struct stat st;
  rec("stat g", ::lstat("g", &st));
  out.push_back("size " + std::to_string(st.st_size) + " mode " + Octal(st.st_mode & 07777));
  rec("stat f", ::lstat("f", &st));
  rec("mkdir sub", ::mkdir("sub", 0700));
  rec("rename dir", ::rename("sub", "sub2"));
  rec("symlink", ::symlink("g", "s"));
  ssize_t n = ::readlink("s", buf, sizeof(buf) - 1);
  rec("readlink", n);
  out.push_back(std::string("target ") + std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
  rec("unlink g", ::unlink("g"));
  rec("unlink s", ::unlink("s"));
  rec("rmdir sub2", ::rmdir("sub2"));
  fd = ::open("keep", O_CREAT | O_WRONLY | O_CLOEXEC, 0640);
  rec("create keep", fd);
  rec("write keep", ::write(fd, "kept", 4));
  ::close(fd);
  rec("chdir ..", ::chdir(".."));
  rec("stat child", ::lstat((comp + "124/keep").c_str(), &st));
  rec("back", ::fchdir(saved));
  ::close(saved);
  return out;
}

TEST(HostSide, WorkingDirectoryDeeperThanPathMax) {
  AF_REQUIRE_FUSE();
  TempDir native;
  auto want = DeepScript(native.path());
  auto m = MountedFs::Start(PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  auto got = DeepScript(m->mnt());
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(want[i], got[i]) << "step " << i;
  if (m->fs().has_delta()) {
    auto report = m->fs().CommitDelta();
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->errors.empty()) << report->errors.front().path.size() << " bytes deep: "
                                        << report->errors.front().message;
  }
  // It is in the source, reached here fd-relative (its path is too long for one syscall).
  int cur = ::open(m->src().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  const std::string comp(200, 'd');
  for (int i = 0; i < 25 && cur >= 0; ++i) {
    int next = ::openat(cur, (comp + std::to_string(100 + i)).c_str(),
                        O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ::close(cur);
    cur = next;
  }
  ASSERT_GE(cur, 0);
  int fd = ::openat(cur, "keep", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  ::close(cur);
  ASSERT_GE(fd, 0);
  char buf[8] = {};
  EXPECT_EQ(::read(fd, buf, sizeof(buf)), 4);
  EXPECT_STREQ(buf, "kept");
  ::close(fd);
}

}  // namespace
}  // namespace agentfense::fs::testing
