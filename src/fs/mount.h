// Mount: RAII owner of one mounted PermFs and the thread(s) serving it.
//
// Start() mounts (as root: mount(2) directly, options nosuid,nodev,allow_other, never
// default_permissions: the daemon checks every operation itself) and starts the session loop on a
// background thread. The destructor (or Unmount()) lazily unmounts and joins. A process that dies
// without unmounting leaves a dead FUSE mount ("Transport endpoint is not connected");
// CleanupStaleMount() removes it on the next start.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/result.h"
#include "fs/perm_fs.h"
#include "policy/policy.h"

namespace agentfense::fs {

class Mount {
 public:
  // `mountpoint` must be an existing empty directory. `allow_other` lets the sandbox's uid (an
  // unprivileged uid in a user namespace) use the mount; it is needed for every real sandbox.
  static Result<std::unique_ptr<Mount>> Start(const std::string& source,
                                              const std::string& mountpoint,
                                              policy::Policy policy, FsOptions options,
                                              bool allow_other = true);
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  PermFs& fs() { return *fs_; }
  const std::string& mountpoint() const { return mountpoint_; }

  // Unmounts (lazily: open files keep working until closed) and waits for the loop to end.
  // Idempotent.
  void Unmount();
  // Blocks until the session ends (e.g. `umount` from outside).
  void Wait();

 private:
  Mount() = default;
  void Serve();

  std::unique_ptr<PermFs> fs_;
  std::string mountpoint_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  std::thread loop_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool loop_done_ = false;  // guarded by mu_
};

// True when `path` is the mount point of a FUSE filesystem (per /proc/self/mountinfo).
bool IsFuseMountPoint(const std::string& path);

// If `mountpoint` is a FUSE mount left behind by a dead daemon (or any FUSE mount when `force`),
// detaches it (umount2 MNT_DETACH). OK when nothing was mounted there.
Status CleanupStaleMount(const std::string& mountpoint, bool force = false);

}  // namespace agentfense::fs
