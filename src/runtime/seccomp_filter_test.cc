#include "runtime/seccomp_filter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace agentfense::runtime {
namespace {

// The BPF program exactly as bwrap receives it (BuildSeccompProgramFd), built once: loading it
// with prctl costs a child microseconds where building it with libseccomp costs milliseconds.
const std::vector<sock_filter>& Program() {
  static const std::vector<sock_filter> program = [] {
    std::vector<sock_filter> p;
    auto fd = BuildSeccompProgramFd();
    if (!fd.ok()) return p;
    sock_filter insn;
    while (::read(fd->get(), &insn, sizeof(insn)) == static_cast<ssize_t>(sizeof(insn))) {
      p.push_back(insn);
    }
    return p;
  }();
  return program;
}

bool LoadProgram() {
  const auto& p = Program();
  if (p.empty()) return false;
  sock_fprog prog{static_cast<unsigned short>(p.size()), const_cast<sock_filter*>(p.data())};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

// Runs `probe` in a forked child under the filter; returns the errno it reports (0 = success).
// The child leaves the test's session first, so that a call the filter failed to stop (vhangup)
// cannot reach the terminal of whoever runs the tests. `via_libseccomp`: load it with
// LoadSeccompFilterForThisThread instead of the exported program.
int ErrnoUnderFilter(const std::function<long()>& probe, bool via_libseccomp = false) {
  Program();  // built before the fork
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ::setsid();
    int result = 1000;
    if (via_libseccomp ? LoadSeccompFilterForThisThread().ok() : LoadProgram()) {
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

long Sys(long nr, long a = -1, long b = -1, long c = -1, long d = -1, long e = -1) {
  return ::syscall(nr, a, b, c, d, e, -1);
}

TEST(Seccomp, AllowsOrdinaryCalls) {
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_getpid); }), 0);
  // The same filter loaded in process (no bwrap) behaves the same.
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_getpid); }, true), 0);
  EXPECT_EQ(ErrnoUnderFilter([] { return Sys(SYS_acct); }, true), EPERM);
  // clone without namespace flags (fork) still works.
  EXPECT_EQ(ErrnoUnderFilter([] {
              long r = ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
              if (r == 0) ::_exit(0);
              return r;
            }),
            0);
  // Threads: glibc tries clone3, gets ENOSYS and falls back to clone with CLONE_THREAD.
  EXPECT_EQ(ErrnoUnderFilter([] {
              int v = 0;
              std::thread t([&v] { v = 1; });
              t.join();
              return v == 1 ? 0L : -1L;
            }),
            0);
  // A little of everything a runtime does: files, pipes, polling, memory, time, randomness.
  EXPECT_EQ(ErrnoUnderFilter([] {
              char buf[16];
              int p[2];
              struct utsname u;
              struct timespec ts;
              if (::pipe2(p, O_CLOEXEC) != 0 || ::write(p[1], "x", 1) != 1) return -1L;
              int ep = ::epoll_create1(EPOLL_CLOEXEC);
              int ev = ::eventfd(0, EFD_CLOEXEC);
              int tf = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
              int mf = ::memfd_create("probe", MFD_CLOEXEC);
              void* m = mf >= 0 && ::ftruncate(mf, 4096) == 0
                            ? ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mf, 0)
                            : MAP_FAILED;
              struct statx sx;
              bool ok = ep >= 0 && ev >= 0 && tf >= 0 && mf >= 0 && m != MAP_FAILED &&
                        ::uname(&u) == 0 && ::clock_gettime(CLOCK_REALTIME, &ts) == 0 &&
                        ::getrandom(buf, sizeof(buf), 0) == sizeof(buf) &&
                        ::statx(AT_FDCWD, "/", 0, STATX_BASIC_STATS, &sx) == 0 &&
                        ::read(p[0], buf, 1) == 1;
              return ok ? 0L : -1L;
            }),
            0);
  // ioctl with an unrelated request is not blocked (EBADF on fd -1 is fine).
  EXPECT_EQ(ErrnoUnderFilter([] { return ::ioctl(-1, FIONREAD, nullptr); }), EBADF);
  // personality: the query and the plain Linux personality.
  EXPECT_EQ(ErrnoUnderFilter([] { return Sys(SYS_personality, 0xffffffffL, 0, 0, 0, 0); }), 0);
  EXPECT_EQ(ErrnoUnderFilter([] { return Sys(SYS_personality, PER_LINUX, 0, 0, 0, 0); }), 0);
}

TEST(Seccomp, SocketFamiliesAreAllowListed) {
  auto sock = [](long family, long type, long protocol) {
    return ErrnoUnderFilter([=] { return ::syscall(SYS_socket, family, type, protocol); });
  };
  EXPECT_EQ(sock(AF_UNIX, SOCK_STREAM, 0), 0);
  EXPECT_EQ(sock(AF_INET, SOCK_DGRAM, 0), 0);
  EXPECT_EQ(sock(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
  EXPECT_EQ(sock(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), 0);
  // The kernel reads an int: high bits are ignored by both the kernel and the filter.
  EXPECT_EQ(sock((1L << 32) | AF_INET, SOCK_DGRAM, 0), 0);
  for (long family : {AF_PACKET, AF_ALG, AF_VSOCK, AF_KEY, AF_RDS, AF_TIPC, AF_BLUETOOTH}) {
    EXPECT_EQ(sock(family, SOCK_DGRAM, 0), EPERM) << "family " << family;
  }
  EXPECT_EQ(sock(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER), EPERM);
  EXPECT_EQ(sock(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT), EPERM);
  int sv[2];
  EXPECT_EQ(ErrnoUnderFilter([&sv] { return ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv); }), 0);
  EXPECT_EQ(ErrnoUnderFilter([&sv] { return ::socketpair(AF_TIPC, SOCK_STREAM, 0, sv); }), EPERM);
}

TEST(Seccomp, UnlistedSyscallsFailWithEperm) {
  // Not on Docker's list at all, or only for a capability a sandbox does not have.
  for (long nr : {SYS_acct, SYS_lookup_dcookie, SYS_kcmp, SYS_vhangup, SYS_swapon, SYS_chroot,
                  SYS_sethostname, SYS_unshare, SYS_quotactl, SYS_get_mempolicy,
                  SYS_name_to_handle_at, SYS_adjtimex, SYS_modify_ldt, SYS_uselib}) {
    EXPECT_EQ(ErrnoUnderFilter([nr] { return Sys(nr); }), EPERM) << "syscall " << nr;
  }
  // Numbers no kernel has assigned yet: the future is denied too, with EPERM, not ENOSYS.
  for (long nr : {500L, 1000L, 0x3fffffffL}) {
    EXPECT_EQ(ErrnoUnderFilter([nr] { return Sys(nr); }), EPERM) << "syscall " << nr;
  }
  // unshare even without a namespace flag: Docker allows it only with CAP_SYS_ADMIN.
  EXPECT_EQ(ErrnoUnderFilter([] { return ::unshare(CLONE_FILES); }), EPERM);
  // personality values beyond Docker's: no ASLR switch-off, no READ_IMPLIES_EXEC.
  EXPECT_EQ(ErrnoUnderFilter([] { return Sys(SYS_personality, ADDR_NO_RANDOMIZE, 0, 0, 0, 0); }),
            EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return Sys(SYS_personality, READ_IMPLIES_EXEC, 0, 0, 0, 0); }),
            EPERM);
}

TEST(Seccomp, EveryDeniedNameFails) {
  for (const auto& name : DeniedSyscalls()) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr < 0) continue;  // not on this architecture
    EXPECT_EQ(ErrnoUnderFilter([nr] { return Sys(nr); }), EPERM) << name;
  }
}

TEST(Seccomp, DeniedNamesNeverOnTheAllowList) {
  std::set<std::string> allowed(AllowedSyscalls().begin(), AllowedSyscalls().end());
  allowed.insert(FilteredSyscalls().begin(), FilteredSyscalls().end());
  EXPECT_EQ(allowed.size(), AllowedSyscalls().size() + FilteredSyscalls().size()) << "duplicates";
  for (const auto& name : DeniedSyscalls()) EXPECT_EQ(allowed.count(name), 0u) << name;
}

#if defined(__x86_64__)
TEST(Seccomp, EveryListedNameExistsOnX86_64) {
  // A misspelt name would be skipped silently by the builder (as a name of another
  // architecture is).
  for (const auto& name : AllowedSyscalls()) {
    EXPECT_GE(seccomp_syscall_resolve_name(name.c_str()), 0) << name;
  }
  for (const auto& name : FilteredSyscalls()) {
    EXPECT_GE(seccomp_syscall_resolve_name(name.c_str()), 0) << name;
  }
}
#endif

TEST(Seccomp, DeniesMountAndNewMountApi) {
  EXPECT_EQ(ErrnoUnderFilter([] {
              return ::mount("none", "/nonexistent-agentfense-probe", "tmpfs", 0, nullptr);
            }),
            EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_fsopen, "tmpfs", 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_open_tree, -100, "/", 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_move_mount, -1, "", -1, "", 0); }), EPERM);
}

TEST(Seccomp, DeniesNamespacesAndClone3) {
  EXPECT_EQ(ErrnoUnderFilter([] { return ::unshare(CLONE_NEWUSER); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::unshare(CLONE_NEWNS | CLONE_FILES); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_setns, 0, 0); }), EPERM);
  EXPECT_EQ(
      ErrnoUnderFilter([] { return ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0); }),
      EPERM);
  EXPECT_EQ(
      ErrnoUnderFilter([] { return ::syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0); }),
      EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_clone3, nullptr, 0); }), ENOSYS);
}

TEST(Seccomp, DeniesKernelAttackSurface) {
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_bpf, 0, nullptr, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_userfaultfd, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_io_uring_setup, 1, nullptr); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_keyctl, 0, 0, 0, 0, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_perf_event_open, 0, 0, 0, 0, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_ptrace, 0, 0, 0, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_open_by_handle_at, 0, 0, 0); }), EPERM);
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(SYS_init_module, 0, 0, 0); }), EPERM);
}

TEST(Seccomp, DeniesTiocstiEvenWithHighBitsSet) {
  auto ioctl_errno = [](unsigned long request) {
    return ErrnoUnderFilter([request] { return ::syscall(SYS_ioctl, -1, request, 0); });
  };
  for (unsigned long req :
       {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    EXPECT_EQ(ioctl_errno(req), EPERM) << req;
    EXPECT_EQ(ioctl_errno((1UL << 32) | req), EPERM) << req;
    EXPECT_EQ(ioctl_errno(0xffffffff00000000UL | req), EPERM) << req;
  }
  // Every other request passes, also its neighbours (the allow rules cut around exactly two
  // values) and a request sign-extended the way musl passes an int.
  for (unsigned long req :
       {0x5401UL, 0x5410UL, 0x5411UL, 0x5413UL, 0x5414UL, 0x5416UL, 0x5418UL, 0x541AUL, 0x541BUL,
        0x541DUL, 0x541EUL, 0x1412UL, 0x5412UL | 0x100000, 0xffffffff80045430UL, 0xffffffffUL}) {
    EXPECT_EQ(ioctl_errno(req), EBADF) << std::hex << req;
  }
}

TEST(Seccomp, DeniesX32Abi) {
  constexpr long kX32Bit = 0x40000000;
  EXPECT_EQ(ErrnoUnderFilter([] { return ::syscall(kX32Bit | SYS_getpid); }), EPERM);
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
