// Reaching files beneath a directory fd without ever following a symlink, and removing trees
// without following links or running out of fds. Everything the codebase store does on disk goes
// through here: a stored path is data chosen by a client or an agent, never a path the host
// resolves on our behalf (SECURITY-NOTES §2.1(a), §2.3).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace agentfense::store {

enum class ResolveMode {
  kOpenat2,  // openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
  kWalk,     // component by component openat(O_NOFOLLOW): for kernels without openat2 (< 5.6)
};

// kOpenat2 when the running kernel supports it (probed once with a harmless call), else kWalk.
// openat2 refused by a seccomp filter (ENOSYS or EPERM) also selects kWalk.
ResolveMode ProbeResolveMode();

// Opens `rel` beneath `root_fd`. `rel` must be a canonical relative path (base/path.h
// ValidateRelativePath; "" means the root itself). No component may be a symlink, the final one
// included (kInvalidArgument, errno ELOOP), whatever `flags` say; O_CLOEXEC and O_NOFOLLOW are
// always added. `mode` is used only with O_CREAT/O_TMPFILE. Both modes give the same results.
Result<UniqueFd> OpenBeneath(int root_fd, std::string_view rel, int flags, mode_t mode,
                             ResolveMode resolve);

// Returns an O_PATH fd of directory `rel_dir` beneath `root_fd`, creating missing directories
// (mode 0755 before umask) one component at a time. A component that is a symlink is
// kInvalidArgument (ELOOP); one that exists but is not a directory is kFailedPrecondition.
Result<UniqueFd> MakeDirsBeneath(int root_fd, std::string_view rel_dir);

// What a tree holds, as the codebase record counts it.
struct Usage {
  int64_t bytes = 0;  // sum of st_size of regular files
  int64_t files = 0;  // every non-directory entry (regular files, symlinks, fifos...)
};

// Counts everything beneath directory `dir_fd` (borrowed) without following links, depth-first
// with the same fd and recursion bounds as RemoveTree. No depth limit (no PATH_MAX either: every
// step is relative to the directory fd).
Result<Usage> CountTree(int dir_fd);

// Removes directory `name` (a single component) of `parent_fd` and everything beneath it. Never
// follows a symlink (links are unlinked as entries), never recurses (an explicit stack of names),
// and holds at most three fds at a time whatever the depth: it climbs back with "..", checking
// (st_dev, st_ino) against the directory it descended from, and stops with kAborted if the tree
// was moved under it. A missing `name` is OK (someone removed it first).
// If `removed` is given, it receives what was removed (counted as CountTree would).
Status RemoveTree(int parent_fd, const std::string& name, Usage* removed = nullptr);

// The names in directory `fd` (consumed: an O_RDONLY directory fd), "." and ".." excluded, in
// readdir order.
Result<std::vector<std::string>> ReadDirNames(UniqueFd fd);

// The error for a failed open/resolve, with the symlink case spelled out.
Error ResolveError(int err, std::string_view what, std::string_view rel);

}  // namespace agentfense::store
