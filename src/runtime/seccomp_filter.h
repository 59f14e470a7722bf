// The seccomp filter every bwrap-sandboxed process runs under: "attack surface reduction" against
// the kernel (SECURITY-NOTES §2.2 f). An allow-list anchored on Docker's default profile (moby
// profiles/seccomp/default.json): a system call Docker allows to every container may be on it, one
// Docker allows only with a capability (CAP_SYS_ADMIN, CAP_SYS_PTRACE, ...) is not, because a
// sandbox has none. Everything not on the list fails with EPERM, system call numbers the list has
// never heard of included. Where Docker filters arguments we do too (clone namespace flags,
// personality), and narrower where a sandbox needs less (socket families, ioctl TIOCSTI and
// TIOCLINUX). clone3 alone answers ENOSYS: libc then falls back to clone, whose flags a filter can
// read. Non-native ABIs (i386 through int 0x80, x32 through the 0x40000000 bit) fail with EPERM.
// docs/RUNTIMES.md has the model and the reasons for each departure from Docker's list.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace agentfense::runtime {

// The system calls allowed without conditions (names as libseccomp spells them; a name the
// native architecture does not have is ignored).
const std::vector<std::string>& AllowedSyscalls();

// The system calls allowed only when their arguments pass a check (clone, personality, socket,
// socketpair, ioctl); clone3 answers ENOSYS.
const std::vector<std::string>& FilteredSyscalls();

// System calls that must never be allowed: every deny the filter had before it became an
// allow-list, plus Docker's capability-gated calls. Not consulted by the filter (anything not
// allowed fails); kept so that docs and tests can name them and a test can prove that none of
// them ever lands on the allow-list.
const std::vector<std::string>& DeniedSyscalls();

// Builds the filter and returns a sealed memfd holding the BPF program, positioned at offset 0,
// ready for `bwrap --seccomp FD`. The fd is O_CLOEXEC: the launcher dup2()s it into the child.
Result<UniqueFd> BuildSeccompProgramFd();

// Loads the same filter into the calling thread (sets no_new_privs first). For tests, and for a
// runtime that has no bwrap to do it.
Status LoadSeccompFilterForThisThread();

}  // namespace agentfense::runtime
