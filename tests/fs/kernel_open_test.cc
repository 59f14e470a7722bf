// Opens decided by the kernel (docs/FILESYSTEM.md, "Opens without a round trip"): a mount that
// serves one unprivileged identity is made with default_permissions, shows every object as that
// identity's with the permission bits its level allows, and answers the first OPEN with ENOSYS so
// that OPEN and RELEASE stop reaching the daemon. Each case is one risk of that design, attempted
// by the served identity (a thread that alone took it, so descriptors survive between steps).
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

constexpr uid_t kSandboxUid = 4242;
constexpr uid_t kOtherUid = 4343;

std::map<std::string, uint64_t> Counts(PermFs& fs) {
  std::map<std::string, uint64_t> out;
  for (const auto& [kind, n] : fs.RequestCounts()) out[kind] = n;
  return out;
}

int OpenErr(const std::string& p, int flags) {
  int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

int ReadAll(const std::string& p, std::string* out) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  int err = n < 0 ? errno : 0;
  if (n > 0) out->assign(buf, static_cast<size_t>(n));
  ::close(fd);
  return err;
}

// The events the audit sink saw for `path` with operation `op`.
size_t Audited(MountedFs& m, const std::string& op, const std::string& path) {
  std::lock_guard lock(m.audit().mu);
  size_t n = 0;
  for (const AuditEvent& e : m.audit().events) n += e.op == op && e.path == path;
  return n;
}

class KernelOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    AF_REQUIRE_FUSE();
    AF_REQUIRE_CAPABILITY(::geteuid() == 0, "needs root to serve and act as another user");
  }
  // A mount serving kSandboxUid alone: `/a.txt` read, `/v.txt` view, `/w/**` write,
  // `/x.sh` read and executable, `/hidden` none.
  std::unique_ptr<MountedFs> Mount(FsOptions options = {}, bool allow_other = false) {
    MountAccess access;
    access.uid = kSandboxUid;
    access.gid = kSandboxUid;
    access.allow_other = allow_other;
    auto m = MountedFs::Start(MakePolicy({"**=read", "/v.txt=view@10", "/w/**=write@10",
                                          "/hidden=none@10"}),
                              std::move(options), access);
    if (m == nullptr) return m;
    WriteFile(m->src("a.txt"), "read me\n", 0644);
    WriteFile(m->src("v.txt"), "VIEWCANARY\n", 0644);
    WriteFile(m->src("x.sh"), "#!/bin/sh\nexit 7\n", 0755);
    WriteFile(m->src("hidden"), "HIDDENCANARY\n", 0644);
    EXPECT_EQ(::mkdir(m->src("w").c_str(), 0755), 0);
    WriteFile(m->src("w/f.txt"), "writable\n", 0644);
    return m;
  }
};

TEST_F(KernelOpen, BitsFollowTheLevelsAndTheOwnerIsTheServedIdentity) {
  auto m = Mount();
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(m->fs().kernel_checks());
  struct stat st;
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::stat(m->mnt("v.txt").c_str(), &st)); }), 0);
  EXPECT_EQ(st.st_mode & 07777, 0u);  // view: no bit at all
  EXPECT_EQ(st.st_uid, kSandboxUid);
  EXPECT_EQ(st.st_gid, kSandboxUid);
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::stat(m->mnt("a.txt").c_str(), &st)); }), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);  // read: the host's 0644 without write bits
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::stat(m->mnt("x.sh").c_str(), &st)); }), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555u);
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::stat(m->mnt("w/f.txt").c_str(), &st)); }), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);  // write: the host's bits
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::stat(m->mnt("hidden").c_str(), &st)); }),
            ENOENT);
}

TEST_F(KernelOpen, ViewIsNeverOpenedAndEveryRefusalIsAudited) {
  auto m = Mount();
  ASSERT_NE(m, nullptr);
  // The refusals come from the kernel (the bits); the daemon learns of each one from the
  // re-validation that precedes EACCES, and audits it as "open".
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("v.txt"), O_RDONLY); }), EACCES);
  EXPECT_GE(Audited(*m, "open", "/v.txt"), 1u);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("a.txt"), O_WRONLY); }), EACCES);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("a.txt"), O_RDONLY | O_TRUNC); }),
            EACCES);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::truncate(m->mnt("a.txt").c_str(), 0)); }),
            EACCES);
  EXPECT_GE(Audited(*m, "open", "/a.txt"), 3u);
  EXPECT_EQ(ReadFile(m->src("a.txt")), "read me\n");
  // exec needs read: a view file is not executable whatever its host bits.
  WriteFile(m->src("v.txt"), "#!/bin/sh\nexit 0\n", 0755);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::access(m->mnt("v.txt").c_str(), X_OK)); }),
            EACCES);
  // What the level allows works, through the kernel alone after the first open.
  std::string got;
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return ReadAll(m->mnt("a.txt"), &got); }), 0);
  EXPECT_EQ(got, "read me\n");
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kSandboxUid, kSandboxUid, kSandboxUid) != 0 ||
        ::setresuid(kSandboxUid, kSandboxUid, kSandboxUid) != 0) {
      ::_exit(250);
    }
    std::string path = m->mnt("x.sh");
    char* argv[] = {path.data(), nullptr};
    ::execv(path.c_str(), argv);
    ::_exit(errno == 0 ? 251 : 100 + errno);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("w/f.txt"), O_RDWR); }), 0);
}

TEST_F(KernelOpen, OpensAndClosesCostNoRequest) {
  auto m = Mount();
  ASSERT_NE(m, nullptr);
  for (int i = 0; i < 30; ++i) WriteFile(m->src("w/g" + std::to_string(i)), "x");
  std::string got;
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return ReadAll(m->mnt("a.txt"), &got); }), 0);
  auto before = Counts(m->fs());
  ASSERT_EQ(RunAsThread(kSandboxUid,
                        [&] {
                          for (int round = 0; round < 3; ++round) {
                            for (int i = 0; i < 30; ++i) {
                              std::string s;
                              if (int e = ReadAll(m->mnt("w/g" + std::to_string(i)), &s)) return e;
                            }
                          }
                          return 0;
                        }),
            0);
  auto after = Counts(m->fs());
  EXPECT_EQ(after["open"] - before["open"], 0u);
  EXPECT_EQ(after["release"] - before["release"], 0u);
  EXPECT_EQ(after["read"] - before["read"], 30u);  // each file's pages once, then the cache
  EXPECT_LE(after["open"], 1u);  // the one answered ENOSYS
}

TEST_F(KernelOpen, AReopenThroughProcSelfFdIsDecidedAgain) {
  auto m = Mount();
  ASSERT_NE(m, nullptr);
  int fd = -1;
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] {
              fd = ::open(m->mnt("a.txt").c_str(), O_RDONLY | O_CLOEXEC);
              return fd < 0 ? errno : 0;
            }),
            0);
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(proc, O_RDWR); }), EACCES);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(proc, O_WRONLY | O_APPEND); }), EACCES);
  EXPECT_GE(Audited(*m, "open", "/a.txt"), 2u);  // SPEC §3.5: the refused reopens are audited
  ::close(fd);
}

// The kernel holds one set of bits per inode: a hard link must show those of its most
// restrictive name in the tree, whichever name it was looked up by.
TEST_F(KernelOpen, AHardLinkHasTheBitsOfItsMostRestrictiveName) {
  auto m = Mount();
  ASSERT_NE(m, nullptr);
  // Made on the host: /w/ro.txt (write) is /a.txt (read), /w/v.txt (write) is /v.txt (view).
  ASSERT_EQ(::link(m->src("a.txt").c_str(), m->src("w/ro.txt").c_str()), 0);
  ASSERT_EQ(::link(m->src("v.txt").c_str(), m->src("w/v.txt").c_str()), 0);
  struct stat st;
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::stat(m->mnt("w/ro.txt").c_str(), &st)); }),
            0);
  EXPECT_EQ(st.st_mode & 0222, 0u);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("w/ro.txt"), O_WRONLY); }), EACCES);
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::stat(m->mnt("w/v.txt").c_str(), &st)); }),
            0);
  EXPECT_EQ(st.st_mode & 07777, 0u);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("w/v.txt"), O_RDONLY); }), EACCES);
  EXPECT_GE(Audited(*m, "open", "/w/v.txt") + Audited(*m, "open", "/v.txt"), 1u);
  EXPECT_EQ(ReadFile(m->src("a.txt")), "read me\n");
}

TEST_F(KernelOpen, ADowngradeRevokesOpenDescriptorsAndTheBitsAtOnce) {
  auto m = Mount();
  ASSERT_NE(m, nullptr);
  int rfd = -1, wfd = -1;
  char c;
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] {
              rfd = ::open(m->mnt("a.txt").c_str(), O_RDONLY | O_CLOEXEC);
              wfd = ::open(m->mnt("w/f.txt").c_str(), O_WRONLY | O_CLOEXEC);
              if (rfd < 0 || wfd < 0) return errno;
              if (::pread(rfd, &c, 1, 0) != 1) return errno;  // its page is cached now
              return Err(::write(wfd, "1", 1));
            }),
            0);
  m->fs().SetPolicy(MakePolicy({"**=view", "/hidden=none@10"}));
  // The cached page was dropped and the next READ is refused; so is a WRITE on the descriptor
  // opened for writing; the bits changed for the next open.
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::pread(rfd, &c, 1, 0)); }), EACCES);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::write(wfd, "2", 1)); }), EACCES);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("a.txt"), O_RDONLY); }), EACCES);
  struct stat st;
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::stat(m->mnt("w/f.txt").c_str(), &st)); }), 0);
  EXPECT_EQ(st.st_mode & 0777, 0u);
  EXPECT_GE(Audited(*m, "read", "/a.txt"), 1u);
  EXPECT_GE(Audited(*m, "write", "/w/f.txt"), 1u);
  // A page mapped before faults into a refused READ (SIGBUS), in a child holding the mapping.
  m->fs().SetPolicy(MakePolicy({"**=read"}));
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kSandboxUid, kSandboxUid, kSandboxUid) != 0 ||
        ::setresuid(kSandboxUid, kSandboxUid, kSandboxUid) != 0) {
      ::_exit(250);
    }
    void* p = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, rfd, 0);
    if (p == MAP_FAILED || static_cast<volatile char*>(p)[0] != 'r') ::_exit(251);
    ::raise(SIGSTOP);
    ::signal(SIGBUS, SIG_DFL);  // the kernel's SIGBUS, not a sanitizer's report of it
    (void)static_cast<volatile char*>(p)[0];
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(status));
  m->fs().SetPolicy(MakePolicy({"**=view"}));
  ::kill(pid, SIGCONT);
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
  // An upgrade works at once, for the descriptors and for new opens.
  m->fs().SetPolicy(MakePolicy({"**=write"}));
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::pread(rfd, &c, 1, 0)); }), 0);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::write(wfd, "3", 1)); }), 0);
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("v.txt"), O_RDWR); }), 0);
  ::close(rfd);
  ::close(wfd);
  std::string got;
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return ReadAll(m->mnt("w/f.txt"), &got); }), 0);
  EXPECT_EQ(got, "13itable\n");
}

// Defence in depth: a caller the bits do not bind (root on the Docker runtime's allow_other
// mount) opens what it likes, but every READ and WRITE is still the daemon's to refuse.
TEST_F(KernelOpen, ACallerBypassingTheBitsStillReadsAndWritesNothing) {
  auto m = Mount({}, /*allow_other=*/true);
  ASSERT_NE(m, nullptr);
  std::string got;  // the first open (the one OPEN the daemon sees) switches the kernel over
  ASSERT_EQ(RunAs(kSandboxUid, [&] { return ReadAll(m->mnt("a.txt"), &got); }), 0);
  int fd = ::open(m->mnt("v.txt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << "root bypasses the bits (CAP_DAC_OVERRIDE): " << std::strerror(errno);
  char buf[64];
  EXPECT_EQ(Err(::read(fd, buf, sizeof(buf))), EACCES);
  ::close(fd);
  fd = ::open(m->mnt("a.txt").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(Err(::write(fd, "x", 1)), EACCES);
  ::close(fd);
  EXPECT_EQ(ReadFile(m->src("a.txt")), "read me\n");
  EXPECT_GE(Audited(*m, "read", "/v.txt"), 1u);
  EXPECT_GE(Audited(*m, "write", "/a.txt"), 1u);
}

// The Docker runtime's mount lets every local user through the kernel's own check (allow_other):
// they are refused by the bits, which show nothing to group and others there.
TEST_F(KernelOpen, OtherUsersAreRefusedByTheBitsOnAnAllowOtherMount) {
  auto m = Mount({}, /*allow_other=*/true);
  ASSERT_NE(m, nullptr);
  std::string got;
  ASSERT_EQ(RunAs(kSandboxUid, [&] { return ReadAll(m->mnt("a.txt"), &got); }), 0);
  EXPECT_EQ(RunAs(kOtherUid, [&] { return ReadAll(m->mnt("a.txt"), &got); }), EACCES);
  EXPECT_EQ(RunAs(kOtherUid, [&] { return OpenErr(m->mnt("w/new"), O_WRONLY | O_CREAT); }),
            EACCES);
  EXPECT_NE(::access(m->src("w/new").c_str(), F_OK), 0);
}

// `ask` holds an access until someone decides; the kernel cannot hold an open. A mount whose
// policy asks at start keeps every open a request (the asked file stays promptable); a rule made
// `ask` later on a mount whose opens the kernel decides fails closed: no bit, so refused.
TEST_F(KernelOpen, AskIsNeverOpenedByTheKernel) {
  MountAccess access;
  access.uid = kSandboxUid;
  access.gid = kSandboxUid;
  auto asking = MountedFs::Start(MakePolicy({"**=read", "/q.txt=ask@10"}), {}, access);
  ASSERT_NE(asking, nullptr);
  EXPECT_FALSE(asking->fs().kernel_checks());
  EXPECT_TRUE(asking->fs().CheckPolicy(MakePolicy({"**=read", "/a.txt=ask@10"})).ok());
  auto m = Mount();
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(m->fs().kernel_checks());
  // The supervisor refuses such rules with this reason (CheckPolicy); set anyway, they refuse.
  auto can = m->fs().CheckPolicy(MakePolicy({"**=read", "/a.txt=ask@10"}));
  ASSERT_FALSE(can.ok());
  EXPECT_EQ(can.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(m->fs().CheckPolicy(MakePolicy({"**=read", "/a.txt=none@10"})).ok());
  m->fs().SetPolicy(MakePolicy({"**=read", "/a.txt=ask@10"}));
  EXPECT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("a.txt"), O_RDONLY); }), EACCES);
}

// An ordinary login's soft limit of 1,024 descriptors is below what the descriptor caches hold:
// the mount raises it to the hard limit (and would shrink its caches below a low hard limit)
// instead of failing opens with EMFILE once the walk is large (rg over a kernel tree did).
TEST_F(KernelOpen, ALimitOf1024DescriptorsRunsNoWalkOut) {
  struct rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  struct rlimit low = {1024, old.rlim_max};  // the hard limit cannot be raised back here
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  int failed = -1;
  {
    auto m = Mount();
    if (m != nullptr) {
      for (int i = 0; i < 1500; ++i) WriteFile(m->src("w/n" + std::to_string(i)), "x");
      failed = RunAsThread(kSandboxUid, [&] {
        for (int i = 0; i < 1500; ++i) {
          std::string s;
          if (int e = ReadAll(m->mnt("w/n" + std::to_string(i)), &s)) return e;
        }
        return 0;
      });
    }
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_EQ(failed, 0) << std::strerror(failed);
}

TEST_F(KernelOpen, OnADeltaTheFirstWriteCopiesUpAndACommitNeverLetsLaterWritesIntoTheSource) {
  FsOptions options;
  TempDir delta;
  options.delta_dir = delta / "d";
  auto m = Mount(options);
  ASSERT_NE(m, nullptr);
  int fd = -1;
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] {
              fd = ::open(m->mnt("w/f.txt").c_str(), O_WRONLY | O_CLOEXEC);
              return fd < 0 ? errno : 0;
            }),
            0);
  ASSERT_EQ(m->fs().DeltaChanges()->changes.size(), 0u);  // an open changes nothing
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::pwrite(fd, "W", 1, 0)); }), 0);
  EXPECT_EQ(ReadFile(m->src("w/f.txt")), "writable\n");
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(ReadFile(m->src("w/f.txt")), "Writable\n");
  // The descriptor outlives the commit: what it writes next lands in the delta again.
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return Err(::pwrite(fd, "X", 1, 1)); }), 0);
  EXPECT_EQ(ReadFile(m->src("w/f.txt")), "Writable\n");
  std::string got;
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return ReadAll(m->mnt("w/f.txt"), &got); }), 0);
  EXPECT_EQ(got, "WXitable\n");
  auto changes = m->fs().DeltaChanges();
  ASSERT_TRUE(changes.ok());
  ASSERT_EQ(changes->changes.size(), 1u);
  EXPECT_EQ(changes->changes[0].path, "/w/f.txt");
  // O_TRUNC arrives as a SETATTR: decided (write) and copied up empty.
  ASSERT_EQ(RunAsThread(kSandboxUid, [&] { return OpenErr(m->mnt("w/f.txt"), O_WRONLY | O_TRUNC); }),
            0);
  EXPECT_EQ(ReadFile(m->src("w/f.txt")), "Writable\n");
  ::close(fd);
}

}  // namespace
}  // namespace agentfense::fs::testing
