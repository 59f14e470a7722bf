// Mount: RAII owner of one mounted PermFs and the thread(s) serving it.
//
// Start() mounts (as root: mount(2) directly, options nosuid,nodev,allow_other, never
// default_permissions: the daemon checks every operation itself) and serves on background
// thread(s). The destructor (or Unmount()) stops serving, closes /dev/fuse and detaches the mount,
// in that order (mount.cc says why). A process that dies without unmounting leaves a dead FUSE
// mount ("Transport endpoint is not connected"); CleanupStaleMount() removes it on the next start.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/result.h"
#include "base/unique_fd.h"
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

  // Stops serving (each worker finishes the request in hand; none reads another), then closes
  // /dev/fuse, which makes the kernel fail every request still queued or sent later with
  // ENOTCONN/ECONNABORTED, then detaches the mount (MNT_DETACH). Files still open on the mount stop
  // working. Returns once no thread touches the session or the PermFs any more: fs() may then be
  // destroyed. Waits only for handlers already running, never for the kernel or other processes.
  // Idempotent; may race with SetPolicy/InvalidatePath on other threads, not with ~Mount.
  void Unmount();
  // Blocks until serving ends: Unmount(), `umount` from outside, or a fatal /dev/fuse error.
  void Wait();

 private:
  Mount() = default;
  void Serve();  // runs on loop_: options().threads workers (one of them on loop_ itself)
  void Work();   // one worker: reads and answers requests until Stop() or the connection ends
  void Stop();   // asks every worker to return; any thread, idempotent

  std::unique_ptr<PermFs> fs_;
  std::string mountpoint_;
  fuse_session* session_ = nullptr;  // owned; destroyed only after loop_ is joined
  int dev_fd_ = -1;                  // /dev/fuse, owned by session_ (O_NONBLOCK, set in Start)
  UniqueFd wake_;                    // eventfd, readable once Stop() ran: wakes idle workers
  std::atomic<bool> stop_{false};
  std::thread loop_;
  std::mutex unmount_mu_;  // serialises Unmount(); held while joining (never taken by workers)
  std::mutex mu_;          // leaf
  std::condition_variable cv_;
  bool loop_done_ = false;  // guarded by mu_
};

// True when `path` is the mount point of a FUSE filesystem (per /proc/self/mountinfo).
bool IsFuseMountPoint(const std::string& path);

// If `mountpoint` is a FUSE mount left behind by a dead daemon (or any FUSE mount when `force`),
// detaches it (umount2 MNT_DETACH). OK when nothing was mounted there.
Status CleanupStaleMount(const std::string& mountpoint, bool force = false);

}  // namespace agentfense::fs
