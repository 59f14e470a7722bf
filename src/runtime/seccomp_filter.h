// The seccomp filter every sandboxed process runs under: "attack surface reduction" against the
// kernel (SECURITY-NOTES §2.2 f). Everything is allowed except the listed system calls, which fail
// with EPERM (clone3 with ENOSYS, so that libc falls back to clone, whose flags we can inspect).
// Non-native ABIs (i386 through int 0x80, x32 through the 0x40000000 bit) are refused with EPERM.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace agentfense::runtime {

// The names of the system calls denied outright (for docs, logs and tests).
const std::vector<std::string>& DeniedSyscalls();

// Builds the filter and returns a sealed memfd holding the BPF program, positioned at offset 0,
// ready for `bwrap --seccomp FD`. The fd is O_CLOEXEC: the launcher dup2()s it into the child.
Result<UniqueFd> BuildSeccompProgramFd();

// Loads the same filter into the calling thread (sets no_new_privs first). For tests, and for a
// runtime that has no bwrap to do it.
Status LoadSeccompFilterForThisThread();

}  // namespace agentfense::runtime
