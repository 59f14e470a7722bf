// Mount: RAII owner of one mounted PermFs and the thread(s) serving it.
//
// Start() mounts (as root: mount(2) directly; otherwise through libfuse's setuid fusermount3) and
// serves on background thread(s). A mount serves one host identity (MountAccess): the kernel itself
// refuses every other caller, and the daemon checks every request's caller again. The destructor (or Unmount()) stops serving, closes /dev/fuse and detaches the mount,
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

// Who a mount serves (SPEC §5, host side: a mount serves its sandbox only).
struct MountAccess {
  // The one identity served: a sandbox's host uid/gid, or the user who ran `agentfense mount`.
  // Without `allow_other` the kernel refuses every process whose uids and gids are not exactly
  // these (fuse(4): user_id/group_id), root's included, before a request is even sent; the daemon
  // refuses any other uid again (FsOptions::caller_uid) and audits it.
  uid_t uid = 0;
  gid_t gid = 0;
  // The kernel passes every local user's requests to the daemon. With `everyone` unset the daemon
  // still serves only `uid` (and root): the Docker runtime needs this, because dockerd and runc
  // (root) stat and bind the mount point.
  bool allow_other = false;
  // `agentfense mount --allow-other`: serve every local user; the kernel enforces the host's
  // permission bits for them (default_permissions) on top of the policy.
  bool everyone = false;

  // The calling process's own identity (an `agentfense mount`, the tests).
  static MountAccess Self();
};

class Mount {
 public:
  // `mountpoint` must be an existing empty directory. As root the mount is made directly with
  // the kernel options `access` asks for; otherwise through fusermount3, which can only serve the
  // caller itself (and others only where /etc/fuse.conf has user_allow_other).
  static Result<std::unique_ptr<Mount>> Start(const std::string& source,
                                              const std::string& mountpoint,
                                              policy::Policy policy, FsOptions options,
                                              const MountAccess& access);
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

  // Our own mount(2), root only; /dev/fuse is then handed to libfuse as "/dev/fd/N".
  Status MountDirect(const MountAccess& access);
  // fuse_session_unmount + destroy (closes /dev/fuse), then detaches a direct mount.
  void DetachSession();

  std::unique_ptr<PermFs> fs_;
  std::string mountpoint_;
  bool direct_ = false;  // mounted by MountDirect: Unmount() detaches it itself
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

// What an ordinary user needs to mount through fusermount3, checked before trying so that the
// error names the cause and the fix: /dev/fuse present and open to them, fusermount3 installed
// setuid root, a mount point they may write, and for `allow_other` the user_allow_other line of
// `etc`/fuse.conf.
Status CheckUnprivilegedFuse(const std::string& mountpoint, bool allow_other,
                             const std::string& etc = "/etc");

// Detaches the mount at `mountpoint` (lazily): umount2(MNT_DETACH) as root, else through
// fusermount3 -u -z, which lets a user detach only what they mounted (its words in the error).
Status DetachMount(const std::string& mountpoint);

// If `mountpoint` is a FUSE mount left behind by a dead daemon (or any FUSE mount when `force`),
// detaches it (umount2 MNT_DETACH). OK when nothing was mounted there.
Status CleanupStaleMount(const std::string& mountpoint, bool force = false);

}  // namespace agentfense::fs
