#include "runtime/seccomp_filter.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

namespace agentfense::runtime {
namespace {

// Namespace-creating flags of clone(2)/unshare(2). CLONE_NEWTIME is absent from older headers.
constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
                                        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, 0x00000080};

struct CtxDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

Error SeccompError(int rc, const std::string& what) {
  // libseccomp returns -errno.
  return Error::FromErrno(-rc, "seccomp: " + what);
}

Result<Ctx> Build() {
  Ctx ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return Error(ErrorCode::kInternal, "seccomp_init failed");
  // Syscalls of another ABI than the native one (x32 on x86_64 shares the arch token but sets bit
  // 0x40000000; libseccomp treats it as a foreign ABI too) are refused: a filter written for
  // x86_64 numbers says nothing about them.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM));
  if (rc != 0) return SeccompError(rc, "set bad-arch action");
  const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
  for (const auto& name : DeniedSyscalls()) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    rc = seccomp_rule_add(ctx.get(), deny, nr, 0);
    if (rc != 0) return SeccompError(rc, "deny " + name);
  }
  // clone3 passes its flags in memory that a filter cannot read: make it look absent.
  rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc != 0) return SeccompError(rc, "clone3");
  // clone and unshare: allowed, except with a namespace flag (a new user namespace would give
  // back every capability within it).
  for (uint64_t flag : kNamespaceFlags) {
    // (scmp_arg_cmp spelled out: the SCMP_A0 macro is a C compound literal.)
    scmp_arg_cmp has_flag{0, SCMP_CMP_MASKED_EQ, flag, flag};
    rc = seccomp_rule_add_array(ctx.get(), deny, SCMP_SYS(unshare), 1, &has_flag);
    if (rc != 0) return SeccompError(rc, "unshare");
    rc = seccomp_rule_add_array(ctx.get(), deny, SCMP_SYS(clone), 1, &has_flag);
    if (rc != 0) return SeccompError(rc, "clone");
  }
  // TIOCSTI pushes bytes into a terminal's input queue, TIOCLINUX does similar things on a
  // console. The request argument is compared on its low 32 bits only: the kernel ignores the
  // high bits, so a plain 64-bit compare is bypassed by setting them (CVE-2019-10063).
  for (unsigned long req :
       {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    scmp_arg_cmp is_req{1, SCMP_CMP_MASKED_EQ, 0xffffffffu, req};
    rc = seccomp_rule_add_array(ctx.get(), deny, SCMP_SYS(ioctl), 1, &is_req);
    if (rc != 0) return SeccompError(rc, "ioctl");
  }
  return ctx;
}

}  // namespace

const std::vector<std::string>& DeniedSyscalls() {
  static const std::vector<std::string> kDenied = {
      // mounting, old and new API (CVE-2021-41133: the new API was forgotten elsewhere)
      "mount",
      "umount",
      "umount2",
      "pivot_root",
      "fsopen",
      "fsmount",
      "fsconfig",
      "fspick",
      "open_tree",
      "move_mount",
      "mount_setattr",
      // other processes' memory and state
      "ptrace",
      "process_vm_readv",
      "process_vm_writev",
      "kcmp",
      "pidfd_getfd",
      // kernel attack surface with a long CVE history
      "bpf",
      "perf_event_open",
      "userfaultfd",
      "io_uring_setup",
      "io_uring_enter",
      "io_uring_register",
      "keyctl",
      "add_key",
      "request_key",
      // namespaces (clone/unshare with namespace flags are filtered by argument)
      "setns",
      // the host kernel and machine
      "kexec_load",
      "kexec_file_load",
      "init_module",
      "finit_module",
      "delete_module",
      "reboot",
      "swapon",
      "swapoff",
      "syslog",
      "acct",
      "quotactl",
      "iopl",
      "ioperm",
      "settimeofday",
      "clock_settime",
      "clock_adjtime",
      "adjtimex",
      "lookup_dcookie",
      "vhangup",
      "nfsservctl",
      // file handles bypass path permissions (the Docker "shocker" read primitive)
      "open_by_handle_at",
      "name_to_handle_at",
      // personality(READ_IMPLIES_EXEC...) and uselib are old-ABI leftovers
      "uselib",
  };
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
