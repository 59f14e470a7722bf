#include "runtime/seccomp_filter.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/personality.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>

namespace agentfense::runtime {
namespace {

// Namespace-creating flags of clone(2): CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER |
// NEWPID | NEWNET, Docker's mask. (CLONE_NEWTIME, 0x80, lies in clone's exit-signal byte and
// is only honoured by clone3 and unshare, which a sandbox cannot call.)
constexpr uint64_t kCloneNamespaceFlags = 0x7E020000;

// The only personality(2) values Docker lets through: PER_LINUX, PER_LINUX32, UNAME26, both, and
// the 0xffffffff query. Not ADDR_NO_RANDOMIZE or READ_IMPLIES_EXEC.
constexpr uint32_t kPersonalities[] = {PER_LINUX, PER_LINUX32, UNAME26,
                                       uint32_t{UNAME26} | uint32_t{PER_LINUX32}, 0xffffffffu};

// Socket families a sandbox may create. Docker refuses only AF_VSOCK; we keep what programs use
// (local, IPv4, IPv6, and netlink for the routing table and socket diagnostics that getaddrinfo,
// `ip` and `ss` read). The rest (AF_PACKET, AF_ALG, AF_RDS, AF_TIPC, AF_VSOCK, AF_KEY, AF_CAN,
// ...) is where socket-layer kernel bugs cluster, and creating one can autoload its module.
constexpr uint32_t kSocketFamilies[] = {AF_UNIX, AF_INET, AF_INET6};
constexpr uint32_t kNetlinkProtocols[] = {NETLINK_ROUTE, NETLINK_SOCK_DIAG};

// TIOCSTI pushes bytes into a terminal's input queue, TIOCLINUX does similar things on a console.
constexpr uint32_t kDeniedIoctls[] = {TIOCSTI, TIOCLINUX};

struct CtxDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

Error SeccompError(int rc, const std::string& what) {
  // libseccomp returns -errno.
  return Error::FromErrno(-rc, "seccomp: " + what);
}

// The low 32 bits of argument `arg` equal `value`. int and unsigned int arguments are compared
// this way because the kernel reads only those bits: a caller (musl passes ioctl requests as a
// sign-extended int) may set the high ones to anything.
scmp_arg_cmp Low32Is(unsigned arg, uint32_t value) {
  return scmp_arg_cmp{arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, value};
}

// Masked compares of a 32-bit value that together match exactly the values not in `denied`.
// libseccomp refuses a rule whose action equals the default one, so "allow ioctl except TIOCSTI"
// cannot be an allow plus a deny; it becomes a union of allows. Bits on which every denied value
// agrees: a value differing there is allowed (one compare per bit). The few values agreeing on
// all of them are listed one by one, the denied ones left out.
std::vector<scmp_arg_cmp> AllowAllLow32Except(unsigned arg, const std::vector<uint32_t>& denied) {
  uint32_t agree = 0xffffffffu;
  for (uint32_t d : denied) agree &= ~(d ^ denied[0]);
  const uint32_t common = denied[0] & agree;
  std::vector<scmp_arg_cmp> out;
  for (int bit = 0; bit < 32; ++bit) {
    uint32_t b = 1u << bit;
    if (agree & b) out.push_back(scmp_arg_cmp{arg, SCMP_CMP_MASKED_EQ, b, ~common & b});
  }
  const uint32_t free_bits = ~agree;
  // Submask enumeration of free_bits (3 bits for TIOCSTI/TIOCLINUX: 8 values).
  for (uint32_t s = free_bits;; s = (s - 1) & free_bits) {
    uint32_t v = common | s;
    if (std::find(denied.begin(), denied.end(), v) == denied.end()) out.push_back(Low32Is(arg, v));
    if (s == 0) break;
  }
  return out;
}

Status Allow(scmp_filter_ctx ctx, int nr, const std::string& name,
             const std::vector<scmp_arg_cmp>& conds = {}) {
  int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, static_cast<unsigned>(conds.size()),
                                  conds.empty() ? nullptr : conds.data());
  if (rc != 0) return SeccompError(rc, "allow " + name);
  return OkStatus();
}

Result<Ctx> Build() {
  // Default: EPERM, for every number the list does not name, future system calls included. (runc
  // answers ENOSYS above the highest known number so that a newer libc falls back; we prefer a
  // denial that cannot be mistaken for a missing kernel feature, and list the new variants libc
  // probes: clone3 below, fchmodat2, futex_wait...)
  Ctx ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)));
  if (!ctx) return Error(ErrorCode::kInternal, "seccomp_init failed");
  // Syscalls of another ABI than the native one (x32 on x86_64 shares the arch token but sets bit
  // 0x40000000; libseccomp treats it as a foreign ABI too) are refused: the list is written for
  // native numbers and says nothing about them.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM));
  if (rc != 0) return SeccompError(rc, "set bad-arch action");
  // A binary search over ~300 numbers instead of a linear scan: every system call of every
  // sandboxed process runs this program.
  rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
  if (rc != 0) return SeccompError(rc, "set optimize");
  for (const auto& name : AllowedSyscalls()) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr < 0) continue;  // not on this architecture (negative: unknown or a pseudo-syscall)
    AF_RETURN_IF_ERROR(Allow(ctx.get(), nr, name));
  }

  // clone without a namespace flag (fork, vfork, threads). Its flags are unsigned long but the
  // kernel keeps only the low 32 bits, and the mask has no high bit: nothing to smuggle there.
  AF_RETURN_IF_ERROR(Allow(ctx.get(), SCMP_SYS(clone), "clone",
                           {scmp_arg_cmp{0, SCMP_CMP_MASKED_EQ, kCloneNamespaceFlags, 0}}));
  // clone3 passes its flags in memory that a filter cannot read: make it look absent, so that
  // glibc (pthread_create, posix_spawn) falls back to clone. EPERM would make it fail instead.
  rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc != 0) return SeccompError(rc, "clone3");
  for (uint32_t p : kPersonalities) {
    AF_RETURN_IF_ERROR(Allow(ctx.get(), SCMP_SYS(personality), "personality", {Low32Is(0, p)}));
  }
  for (uint32_t family : kSocketFamilies) {
    AF_RETURN_IF_ERROR(Allow(ctx.get(), SCMP_SYS(socket), "socket", {Low32Is(0, family)}));
  }
  for (uint32_t protocol : kNetlinkProtocols) {
    AF_RETURN_IF_ERROR(Allow(ctx.get(), SCMP_SYS(socket), "socket",
                             {Low32Is(0, AF_NETLINK), Low32Is(2, protocol)}));
  }
  AF_RETURN_IF_ERROR(Allow(ctx.get(), SCMP_SYS(socketpair), "socketpair", {Low32Is(0, AF_UNIX)}));
  // ioctl: every request but TIOCSTI and TIOCLINUX, compared on the low 32 bits only: the kernel
  // ignores the high bits, so a 64-bit compare is bypassed by setting them (CVE-2019-10063).
  for (const scmp_arg_cmp& cond : AllowAllLow32Except(
           1, std::vector<uint32_t>(std::begin(kDeniedIoctls), std::end(kDeniedIoctls)))) {
    AF_RETURN_IF_ERROR(Allow(ctx.get(), SCMP_SYS(ioctl), "ioctl", {cond}));
  }
  return ctx;
}

}  // namespace

const std::vector<std::string>& AllowedSyscalls() {
  // Docker's unconditional list, 64-bit names only (the filter is native-only). Left out of it on
  // purpose: io_uring_setup/enter/register (a large, CVE-rich surface; newer Docker drops them
  // too), name_to_handle_at (pairs with the "shocker" open_by_handle_at), adjtimex and
  // clock_adjtime (the host clock's state), modify_ldt (x86 segment tables: CVEs, no modern user),
  // epoll_ctl_old/epoll_wait_old (never implemented), and ptrace, process_vm_readv and
  // process_vm_writev (Docker allows them from kernel 4.8; a sandbox has no business inspecting
  // processes). Added: cachestat, fchmodat2, map_shadow_stack, futex_wake/wait/requeue:
  // unprivileged variants of listed calls that libcs start to use (a libc that gets EPERM where
  // it probes for them does not fall back).
  static const std::vector<std::string> kAllowed = {
      // processes, threads, scheduling
      "arch_prctl", "execve", "execveat", "exit", "exit_group", "fork", "vfork", "wait4", "waitid",
      "getpid", "getppid", "gettid", "getpgid", "getpgrp", "setpgid", "getsid", "setsid",
      "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "prctl", "restart_syscall",
      "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "process_mrelease",
      "getpriority", "setpriority", "sched_getaffinity", "sched_getattr", "sched_getparam",
      "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
      "sched_rr_get_interval", "sched_setaffinity", "sched_setattr", "sched_setparam",
      "sched_setscheduler", "sched_yield", "ioprio_get", "ioprio_set", "getrlimit", "setrlimit",
      "prlimit64", "getrusage", "times", "getcpu", "membarrier", "capget", "capset", "seccomp",
      "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "get_thread_area",
      "set_thread_area",
      // credentials (no capability: they can only shuffle the ids the process already has)
      "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid",
      "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid",
      "setfsgid",
      // signals and timers
      "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
      "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sigaltstack", "signalfd",
      "signalfd4", "pause", "alarm", "getitimer", "setitimer", "clock_getres", "clock_gettime",
      "clock_nanosleep", "nanosleep", "gettimeofday", "time", "timer_create", "timer_delete",
      "timer_getoverrun", "timer_gettime", "timer_settime", "timerfd_create", "timerfd_gettime",
      "timerfd_settime",
      // memory
      "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "mlock", "mlock2",
      "mlockall", "munlock", "munlockall", "msync", "remap_file_pages", "memfd_create",
      "memfd_secret", "pkey_alloc", "pkey_free", "pkey_mprotect", "map_shadow_stack",
      // files and directories
      "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chmod", "fchmod",
      "fchmodat", "fchmodat2", "chown", "fchown", "fchownat", "lchown", "close", "close_range",
      "creat", "open", "openat", "openat2", "dup", "dup2", "dup3", "fcntl", "flock", "fallocate",
      "fadvise64", "readahead", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
      "truncate", "ftruncate", "getdents", "getdents64", "link", "linkat", "symlink", "symlinkat",
      "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "mknod",
      "mknodat", "readlink", "readlinkat", "stat", "lstat", "fstat", "newfstatat", "statx",
      "statfs", "fstatfs", "umask", "utime", "utimes", "utimensat", "futimesat", "lseek", "read",
      "write", "readv", "writev", "pread64", "pwrite64", "preadv", "preadv2", "pwritev", "pwritev2",
      "copy_file_range", "sendfile", "splice", "tee", "vmsplice", "pipe", "pipe2", "getxattr",
      "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "setxattr", "lsetxattr",
      "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1",
      "inotify_add_watch", "inotify_rm_watch", "fanotify_mark", "cachestat",
      // waiting: event loops, futexes, POSIX AIO
      "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
      "eventfd", "eventfd2", "poll", "ppoll", "select", "pselect6", "futex", "futex_waitv",
      "futex_wake", "futex_wait", "futex_requeue", "io_setup", "io_destroy", "io_submit",
      "io_cancel", "io_getevents", "io_pgetevents",
      // System V and POSIX IPC (the sandbox has its own IPC namespace)
      "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget",
      "semop", "semtimedop", "semctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
      "mq_notify", "mq_getsetattr",
      // sockets (socket and socketpair themselves are filtered by family)
      "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername", "getsockopt",
      "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
      // the machine, read-only
      "uname", "sysinfo", "getrandom"};
  return kAllowed;
}

const std::vector<std::string>& FilteredSyscalls() {
  static const std::vector<std::string> kFiltered = {"clone",  "clone3",     "personality",
                                                     "socket", "socketpair", "ioctl"};
  return kFiltered;
}

const std::vector<std::string>& DeniedSyscalls() {
  static const std::vector<std::string> kDenied = {
      // mounting, old and new API (CVE-2021-41133: the new API was forgotten elsewhere)
      "mount", "umount2", "pivot_root", "fsopen", "fsmount", "fsconfig", "fspick", "open_tree",
      "move_mount", "mount_setattr", "chroot",
      // other processes' memory and state
      "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd",
      // kernel attack surface with a long CVE history
      "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
      "io_uring_register", "keyctl", "add_key", "request_key", "fanotify_init", "modify_ldt",
      // namespaces (clone with a namespace flag is refused by argument)
      "setns", "unshare", "sethostname", "setdomainname",
      // the host kernel and machine
      "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
      "swapon", "swapoff", "syslog", "acct", "quotactl", "quotactl_fd", "iopl", "ioperm",
      "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "lookup_dcookie", "vhangup",
      "nfsservctl", "mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node",
      "migrate_pages", "move_pages",
      // file handles bypass path permissions (the Docker "shocker" read primitive)
      "open_by_handle_at", "name_to_handle_at",
      // old-ABI leftovers
      "uselib", "_sysctl", "ustat", "sysfs"};
  return kDenied;
}

Result<UniqueFd> BuildSeccompProgramFd() {
  AF_ASSIGN_OR_RETURN(Ctx ctx, Build());
  UniqueFd fd(::memfd_create("agentfense-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Error::FromErrno(errno, "memfd_create");
  int rc = seccomp_export_bpf(ctx.get(), fd.get());
  if (rc != 0) return SeccompError(rc, "export");
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) return Error::FromErrno(errno, "lseek");
  // Nobody may change the program between here and bwrap reading it.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) !=
      0) {
    return Error::FromErrno(errno, "seal seccomp memfd");
  }
  return fd;
}

Status LoadSeccompFilterForThisThread() {
  AF_ASSIGN_OR_RETURN(Ctx ctx, Build());
  int rc = seccomp_load(ctx.get());  // sets no_new_privs (SCMP_FLTATR_CTL_NNP defaults to on)
  if (rc != 0) return SeccompError(rc, "load");
  return OkStatus();
}

}  // namespace agentfense::runtime
