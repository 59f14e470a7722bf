#include "runtime/seccomp_filter.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace agentfense::runtime {
namespace {

// Runs `probe` in a forked child under the filter; returns the errno it reports (0 = success).
// The child is single-purpose and only uses raw syscalls after fork.
int ErrnoUnderFilter(long (*probe)()) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    int result = 1000;
    if (LoadSeccompFilterForThisThread().ok()) {
      errno = 0;
      long r = probe();
      result = r < 0 ? errno : 0;
    }
    (void)!::write(fds[1], &result, sizeof(result));
    ::_exit(0);
  }
  ::close(fds[1]);
  int result = -1;
  EXPECT_EQ(::read(fds[0], &result, sizeof(result)), static_cast<ssize_t>(sizeof(result)));
  ::close(fds[0]);
  int status;
  ::waitpid(pid, &status, 0);
  return result;
}

TEST(Seccomp, AllowsOrdinaryCalls) {
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_getpid); }), 0);
  // clone without namespace flags (fork) still works.
  EXPECT_EQ(ErrnoUnderFilter([]() -> long {
              long r = ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
              if (r == 0) ::_exit(0);
              return r;
            }),
            0);
  // ioctl with an unrelated request is not blocked (ENOTTY on a pipe-less fd is fine).
  EXPECT_NE(ErrnoUnderFilter([]() -> long { return ::ioctl(-1, FIONREAD, nullptr); }), EPERM);
}

TEST(Seccomp, DeniesMountAndNewMountApi) {
  EXPECT_EQ(ErrnoUnderFilter([]() -> long {
              return ::mount("none", "/nonexistent-agentfense-probe", "tmpfs", 0, nullptr);
            }),
            EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_fsopen, "tmpfs", 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_open_tree, -100, "/", 0); }),
            EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_move_mount, -1, "", -1, "", 0); }),
            EPERM);
}

TEST(Seccomp, DeniesNamespacesAndClone3) {
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::unshare(CLONE_NEWUSER); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::unshare(CLONE_NEWNS | CLONE_FILES); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_setns, 0, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter(
                []() -> long { return ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0); }),
            EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_clone3, nullptr, 0); }), ENOSYS);
  // unshare without namespace flags is harmless and allowed.
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::unshare(CLONE_FILES); }), 0);
}

TEST(Seccomp, DeniesKernelAttackSurface) {
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_bpf, 0, nullptr, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_userfaultfd, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_io_uring_setup, 1, nullptr); }),
            EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_keyctl, 0, 0, 0, 0, 0); }), EPERM);
  EXPECT_EQ(
      ErrnoUnderFilter([]() -> long { return ::syscall(SYS_perf_event_open, 0, 0, 0, 0, 0); }),
      EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_ptrace, 0, 0, 0, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_open_by_handle_at, 0, 0, 0); }),
            EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_init_module, 0, 0, 0); }), EPERM);
}

TEST(Seccomp, DeniesTiocstiEvenWithHighBitsSet) {
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_ioctl, 0, TIOCSTI, "x"); }),
            EPERM);
  EXPECT_EQ(ErrnoUnderFilter(
                []() -> long { return ::syscall(SYS_ioctl, 0, (1UL << 32) | TIOCSTI, "x"); }),
            EPERM);
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(SYS_ioctl, 0, TIOCLINUX, "x"); }),
            EPERM);
}

TEST(Seccomp, DeniesX32Abi) {
  constexpr long kX32Bit = 0x40000000;
  EXPECT_EQ(ErrnoUnderFilter([]() -> long { return ::syscall(kX32Bit | SYS_getpid); }), EPERM);
}

TEST(Seccomp, ProgramFdIsSealedAndNonEmpty) {
  auto fd = BuildSeccompProgramFd();
  ASSERT_TRUE(fd.ok()) << fd.error().ToString();
  off_t size = ::lseek(fd->get(), 0, SEEK_END);
  EXPECT_GT(size, 64);
  EXPECT_EQ(size % 8, 0);  // sock_filter entries
  EXPECT_EQ(::write(fd->get(), "x", 1), -1);
}

}  // namespace
}  // namespace agentfense::runtime
