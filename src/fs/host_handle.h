// Kernel file handles (name_to_handle_at(2) / open_by_handle_at(2)): the way the filesystem reaches
// a host object again without holding an fd for it and without re-resolving any path string.
//
// Why handles: the process fd limit on our hosts is 20,000 (hard, cannot be raised) while served
// trees hold 100k+ files, so "one O_PATH fd per inode" (libfuse passthrough_hp) fails with EMFILE.
// A handle names one inode (with its generation), so it survives renames of the object and of its
// ancestors and can never be redirected by a symlink swap. open_by_handle_at needs
// CAP_DAC_READ_SEARCH; the daemon runs as root.
#pragma once

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace agentfense::fs {

// The opaque bytes of one `struct file_handle` (header included) plus the mount id it belongs to.
class HostHandle {
 public:
  HostHandle() = default;

  // Handle of the object `fd` refers to (any kind of fd, O_PATH included; a symlink's own O_PATH fd
  // gives the symlink's handle). Errors: EOPNOTSUPP when the filesystem cannot export handles.
  static Result<HostHandle> Of(int fd);

  bool empty() const { return bytes_.empty(); }
  int mount_id() const { return mount_id_; }
  bool operator==(const HostHandle& o) const { return bytes_ == o.bytes_; }

  // open_by_handle_at(mount_fd, handle, flags | O_CLOEXEC). `mount_fd` is any fd on the same mount.
  // ESTALE when the object no longer exists.
  Result<UniqueFd> Open(int mount_fd, int flags) const;

 private:
  std::string bytes_;
  int mount_id_ = -1;
};

// "/proc/self/fd/N": reopening this magic link opens exactly the object behind fd N (no name
// resolution in the tree), which is how O_PATH fds are turned into I/O fds when no handle exists.
std::string ProcFdPath(int fd);

}  // namespace agentfense::fs
