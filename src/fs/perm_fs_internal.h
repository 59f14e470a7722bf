// Helpers shared by the perm_fs*.cc files. Not part of the layer's interface.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "fs/perm_fs.h"

#include "policy/policy.h"

namespace agentfense::fs {

// A directory's listing while the kernel reads it: a filtered snapshot of its entries, taken at
// offset 0 and whenever the policy or source generation changed, kept per directory inode (opendir
// has no handle: see PermFs::Opendir) until the kernel has read it to the end. Offsets handed to
// the kernel are indices into the filtered list, so neither offsets (host d_off values are name
// hashes) nor gaps reveal hidden names.
class PermFs::DirListing {
 public:
  struct Entry {
    std::string name;
    ino_t ino;
    unsigned char type;  // DT_*
    bool upper = false;  // delta mode: the object is in the upper tree
  };
  std::mutex mu;
  uint64_t generation = 0;  // 0 = not loaded yet
  bool with_attrs = true;   // READDIRPLUS: files with attributes (PermFs::ListingWithAttributes)
  std::vector<Entry> entries;
};

}  // namespace agentfense::fs

namespace agentfense::fs::internal {

// Bits never set on a host object on behalf of the agent (SECURITY-NOTES §2.1 k).
inline constexpr mode_t kStrippedModeBits = S_ISUID | S_ISGID;

// The level an open(2) with `flags` needs. O_TRUNC, O_APPEND and O_CREAT are write intents even
// with O_RDONLY (open(O_RDONLY|O_TRUNC) truncates on Linux).
inline policy::Level LevelForOpen(int flags) {
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND | O_CREAT)) != 0) {
    return policy::Level::kWrite;
  }
  return policy::Level::kRead;
}

// Makes the calling thread's umask 0, once per thread; false when it could not.
// The mode of a CREATE/MKDIR/MKNOD request already has the *caller's* umask applied by the kernel
// (we never ask for FUSE_CAP_DONT_MASK), so the daemon's own umask must not mask it a second time
// (pjdfstest open/02: 0620 asked, 0600 found under a daemon umask of 022). The umask belongs to
// the fs_struct all threads share; unshare(CLONE_FS) gives this worker its own copy, so clearing
// it touches no other thread of the process. Cheaper than an fchmod after every creation, and
// race-free: the object is born with its mode. Callers that get false fix the mode by chmod.
inline bool NoDaemonUmask() {
  thread_local const bool cleared = [] {
    if (::unshare(CLONE_FS) != 0) return false;
    ::umask(0);
    return true;
  }();
  return cleared;
}

// Only the user.* namespace is exposed; trusted.*, security.*, system.* are neither readable nor
// settable through the mount.
inline bool IsUserXattr(const char* name) { return std::strncmp(name, "user.", 5) == 0; }

}  // namespace agentfense::fs::internal
