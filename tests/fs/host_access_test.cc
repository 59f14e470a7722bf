// A mount serves its sandbox only (SPEC §5, host side), as another local user would try it: every
// case runs the attempt in a child process that has dropped to another uid and gid.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

constexpr uid_t kSandboxUid = 4242;  // the identity a mount serves in these cases
constexpr uid_t kOtherUid = 4343;    // another local user

int StatErr(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? 0 : errno;
}
int ReadErr(const std::string& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) return errno;
  char buf[64];
  int err = ::read(fd, buf, sizeof(buf)) < 0 ? errno : 0;
  ::close(fd);
  return err;
}
int ListErr(const std::string& p) {
  DIR* d = ::opendir(p.c_str());
  if (d == nullptr) return errno;
  ::closedir(d);
  return 0;
}
int CreateErr(const std::string& p) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

class HostAccess : public ::testing::Test {
 protected:
  void SetUp() override {
    AF_REQUIRE_FUSE();
    AF_REQUIRE_CAPABILITY(::geteuid() == 0, "needs root to act as other users");
  }
  // A source with a world-readable file and a root-only one, everything writable by policy.
  std::unique_ptr<MountedFs> Mount(const MountAccess& access, FsOptions options = {}) {
    auto m = MountedFs::Start(MakePolicy({"**=write"}), std::move(options), access);
    if (m == nullptr) return m;
    WriteFile(m->src("open.txt"), "hello\n", 0644);
    WriteFile(m->src("private.txt"), "root only\n", 0600);
    ::mkdir(m->src("dir").c_str(), 0777);
    ::chmod(m->src("dir").c_str(), 0777);
    return m;
  }
};

TEST_F(HostAccess, TheKernelRefusesEveryOtherUserOfAnOwnerOnlyMount) {
  MountAccess access;
  access.uid = kSandboxUid;
  access.gid = kSandboxUid;
  auto m = Mount(access);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(RunAs(kSandboxUid, [&] { return ReadErr(m->mnt("open.txt")); }), 0);
  // Even the root-only file: the policy decides for the sandbox, not the host's bits.
  EXPECT_EQ(RunAs(kSandboxUid, [&] { return ReadErr(m->mnt("private.txt")); }), 0);
  EXPECT_EQ(RunAs(kSandboxUid, [&] { return CreateErr(m->mnt("dir/new")); }), 0);
  for (uid_t other : {kOtherUid, kSandboxUid + 1}) {
    EXPECT_EQ(RunAs(other, [&] { return StatErr(m->mnt()); }), EACCES);
    EXPECT_EQ(RunAs(other, [&] { return ListErr(m->mnt()); }), EACCES);
    EXPECT_EQ(RunAs(other, [&] { return StatErr(m->mnt("open.txt")); }), EACCES);
    EXPECT_EQ(RunAs(other, [&] { return ReadErr(m->mnt("open.txt")); }), EACCES);
    EXPECT_EQ(RunAs(other, [&] { return CreateErr(m->mnt("dir/theirs")); }), EACCES);
  }
  // Root too: the kernel serves exactly the one identity.
  EXPECT_EQ(StatErr(m->mnt("open.txt")), EACCES);
  // The sandbox's uid with a foreign gid is someone else as well.
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kOtherUid, kOtherUid, kOtherUid) != 0 ||
        ::setresuid(kSandboxUid, kSandboxUid, kSandboxUid) != 0) {
      ::_exit(250);
    }
    ::_exit(ReadErr(m->mnt("open.txt")));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), EACCES);
  // Nothing reached the daemon, so nothing was served and nothing created.
  EXPECT_NE(::access(m->src("dir/theirs").c_str(), F_OK), 0);
}

TEST_F(HostAccess, OnAnAllowOtherMountTheDaemonRefusesAndAuditsOtherCallers) {
  MountAccess access;
  access.uid = kSandboxUid;
  access.gid = kSandboxUid;
  access.allow_other = true;  // the Docker runtime's mount
  // Every open a request: this case is about the daemon's own check. With opens decided by the
  // kernel, other users are refused by the permission bits before anything reaches the daemon
  // (KernelOpen.OtherUsersAreRefusedByTheBitsOnAnAllowOtherMount).
  FsOptions options;
  options.kernel_open = false;
  auto m = Mount(access, std::move(options));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(RunAs(kSandboxUid, [&] { return ReadErr(m->mnt("open.txt")); }), 0);
  EXPECT_EQ(ReadErr(m->mnt("open.txt")), 0);  // root: dockerd and runc stat and bind it
  EXPECT_EQ(RunAs(kOtherUid, [&] { return StatErr(m->mnt("open.txt")); }), EACCES);
  EXPECT_EQ(RunAs(kOtherUid, [&] { return ReadErr(m->mnt("open.txt")); }), EACCES);
  EXPECT_EQ(RunAs(kOtherUid, [&] { return ListErr(m->mnt()); }), EACCES);
  EXPECT_EQ(RunAs(kOtherUid, [&] { return CreateErr(m->mnt("dir/theirs")); }), EACCES);
  EXPECT_NE(::access(m->src("dir/theirs").c_str(), F_OK), 0);
  std::lock_guard lock(m->audit().mu);
  bool seen = false;
  for (const AuditEvent& e : m->audit().events) {
    if (e.op == "caller") {
      EXPECT_EQ(e.uid, kOtherUid);
      EXPECT_EQ(e.error, EACCES);
      seen = true;
    }
    EXPECT_FALSE(e.op == "caller" && e.uid == kSandboxUid);
  }
  EXPECT_TRUE(seen) << "a refused caller must be audited";
}

TEST_F(HostAccess, AllowOtherForEveryoneEnforcesTheHostsPermissionBits) {
  MountAccess access = MountAccess::Self();
  access.everyone = true;  // agentfense mount --allow-other
  auto m = Mount(access);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(RunAs(kOtherUid, [&] { return ReadErr(m->mnt("open.txt")); }), 0);
  EXPECT_EQ(RunAs(kOtherUid, [&] { return ReadErr(m->mnt("private.txt")); }), EACCES);
  EXPECT_EQ(ReadErr(m->mnt("private.txt")), 0);  // its owner (root) still reads it
}

TEST(UnprivilegedFuse, AllowOtherNeedsUserAllowOtherInFuseConf) {
  TempDir etc;
  TempDir mnt;
  WriteFile(etc / "fuse.conf", "# user_allow_other\nmount_max = 1000\n");
  auto st = CheckUnprivilegedFuse(mnt.path(), /*allow_other=*/true, etc.path());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("user_allow_other"), std::string::npos);
  EXPECT_NE(st.error().message().find("sudo tee -a"), std::string::npos);
  EXPECT_TRUE(CheckUnprivilegedFuse(mnt.path(), /*allow_other=*/false, etc.path()).ok());
  WriteFile(etc / "fuse.conf", "  user_allow_other  \n");
  EXPECT_TRUE(CheckUnprivilegedFuse(mnt.path(), /*allow_other=*/true, etc.path()).ok());
}

}  // namespace
}  // namespace agentfense::fs::testing
