// The openat2 → walk fallback under a kernel that says ENOSYS: a forked child installs a seccomp
// filter making openat2 fail with ENOSYS (as on Linux < 5.6 or under a container's default
// profile) and checks that probing and resolving still behave.
#include "store/safe_open.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "store/test_util.h"

namespace agentfense::store {
namespace {

// The seccomp filter of this test is written for x86-64: elsewhere the test does not exist (rather
// than skip at run time, which would look like a missing capability).
#if defined(__x86_64__)
bool DenyOpenat2WithEnosys() {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])),
                            filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

TEST(SafeOpen, FallsBackToTheWalkWhenOpenat2IsMissing) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.Sub("root/a/b"));
  std::ofstream(dir.Sub("root/a/b/f")) << "data";
  ASSERT_EQ(symlink("/etc", dir.Sub("root/a/link").c_str()), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Only async-signal-safe-ish, allocation-light work: exit codes tell the parent what failed.
    if (!DenyOpenat2WithEnosys()) _exit(10);
    if (ProbeResolveMode() != ResolveMode::kWalk) _exit(11);
    int root = open(dir.Sub("root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) _exit(12);
    // Asked for openat2, gets ENOSYS at run time, must still resolve through the walk.
    auto ok = OpenBeneath(root, "a/b/f", O_RDONLY, 0, ResolveMode::kOpenat2);
    if (!ok.ok()) _exit(13);
    auto link = OpenBeneath(root, "a/link/passwd", O_RDONLY, 0, ResolveMode::kOpenat2);
    if (link.ok() || link.error().sys_errno() != ELOOP) _exit(14);
    auto final_link = OpenBeneath(root, "a/link", O_PATH, 0, ResolveMode::kOpenat2);
    if (final_link.ok()) _exit(15);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child step failed (see exit code in the test)";
}
#endif  // __x86_64__

TEST(SafeOpen, BothModesAgreeOnEveryKindOfPath) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.Sub("root/d/e"));
  std::ofstream(dir.Sub("root/d/f")) << "x";
  ASSERT_EQ(symlink("e", dir.Sub("root/d/rel").c_str()), 0);
  ASSERT_EQ(symlink("/", dir.Sub("root/abs").c_str()), 0);
  ASSERT_EQ(mkfifo(dir.Sub("root/fifo").c_str(), 0600), 0);
  int raw = open(dir.Sub("root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  UniqueFd root(raw);
  struct Case {
    const char* path;
    int flags;
  } cases[] = {{"", O_PATH | O_DIRECTORY},
               {"d", O_PATH | O_DIRECTORY},
               {"d/f", O_RDONLY},
               {"d/f", O_PATH},
               {"d/rel", O_PATH},
               {"d/rel/x", O_RDONLY},
               {"abs", O_PATH | O_DIRECTORY},
               {"abs/etc", O_PATH},
               {"d/f/x", O_PATH},
               {"missing/x", O_PATH},
               {"fifo", O_PATH},
               {"d/e", O_RDONLY},
               {"d/f", O_PATH | O_DIRECTORY}};
  for (const Case& c : cases) {
    auto a = OpenBeneath(root.get(), c.path, c.flags, 0, ResolveMode::kOpenat2);
    auto b = OpenBeneath(root.get(), c.path, c.flags, 0, ResolveMode::kWalk);
    ASSERT_EQ(a.ok(), b.ok()) << c.path;
    if (!a.ok()) {
      EXPECT_EQ(a.error().code(), b.error().code())
          << c.path << ": " << a.error().ToString() << " vs " << b.error().ToString();
      EXPECT_EQ(a.error().sys_errno(), b.error().sys_errno()) << c.path;
    }
  }
}

TEST(SafeOpen, MakeDirsRefusesLinksAndFiles) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.Sub("root"));
  std::ofstream(dir.Sub("root/file")) << "x";
  ASSERT_EQ(symlink(dir.Sub("outside").c_str(), dir.Sub("root/link").c_str()), 0);
  std::filesystem::create_directories(dir.Sub("outside"));
  int raw = open(dir.Sub("root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  UniqueFd root(raw);
  EXPECT_TRUE(MakeDirsBeneath(root.get(), "a/b/c").ok());
  EXPECT_TRUE(std::filesystem::is_directory(dir.Sub("root/a/b/c")));
  EXPECT_TRUE(MakeDirsBeneath(root.get(), "a/b/c").ok());  // idempotent
  auto via_link = MakeDirsBeneath(root.get(), "link/x");
  ASSERT_FALSE(via_link.ok());
  EXPECT_EQ(via_link.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("outside/x")));
  auto via_file = MakeDirsBeneath(root.get(), "file/x");
  ASSERT_FALSE(via_file.ok());
  EXPECT_EQ(via_file.error().code(), ErrorCode::kFailedPrecondition);
}

TEST(SafeOpen, RemoveTreeUnlinksLinksAndCountsWhatItRemoved) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.Sub("t/a/b"));
  std::filesystem::create_directories(dir.Sub("keep"));
  std::ofstream(dir.Sub("keep/precious")) << "keep me";
  std::ofstream(dir.Sub("t/a/b/f")) << "12345";
  std::ofstream(dir.Sub("t/g")) << "12";
  ASSERT_EQ(symlink(dir.Sub("keep").c_str(), dir.Sub("t/a/link").c_str()), 0);
  ASSERT_EQ(mkfifo(dir.Sub("t/a/fifo").c_str(), 0600), 0);
  int raw = open(dir.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  UniqueFd parent(raw);
  int t = openat(parent.get(), "t", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(t, 0);
  auto count = CountTree(t);
  close(t);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->files, 4);
  EXPECT_EQ(count->bytes, 7);
  Usage removed;
  ASSERT_TRUE(RemoveTree(parent.get(), "t", &removed).ok());
  EXPECT_EQ(removed.files, 4);
  EXPECT_EQ(removed.bytes, 7);
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("t")));
  EXPECT_TRUE(std::filesystem::exists(dir.Sub("keep/precious")));
  EXPECT_TRUE(RemoveTree(parent.get(), "t").ok());  // already gone: fine
  ASSERT_EQ(symlink(dir.Sub("keep").c_str(), dir.Sub("l").c_str()), 0);
  ASSERT_TRUE(RemoveTree(parent.get(), "l").ok());  // a link named as the tree: unlinked only
  EXPECT_TRUE(std::filesystem::exists(dir.Sub("keep/precious")));
}

}  // namespace
}  // namespace agentfense::store
