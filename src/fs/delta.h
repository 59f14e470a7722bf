// DeltaStore: the host side of a sandbox's copy-on-write delta (docs/DELTA.md).
//
// On disk, <delta_dir> holds
//   upper/          the objects the sandbox created or modified, at their workspace paths;
//   deleted.journal the source paths the sandbox removed, as an append-only, fsync'd journal of
//                   length-prefixed records (compacted on open).
// Deletions live out of band: nothing in upper/ is a marker, so no name the agent can create, see
// or find in the source (".wh.x", anything) means anything special.
//
// Every host path walk here is fd-relative through openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS):
// a symlink anywhere in a walked path is an error, never followed, in upper/ and in the source.
// Thread-safety: the deleted set and the usage counters have their own lock; callers (PermFs)
// serialize structural changes against Commit/Discard with their own reader/writer lock.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "fs/changes.h"
#include "policy/policy.h"

namespace agentfense::fs {

// openat2(root, path relative to root, flags, RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|NO_MAGICLINKS).
// `path` is a workspace path ("/a/b"; "/" = the root itself). With O_PATH|O_NOFOLLOW a trailing
// symlink is opened as itself.
Result<UniqueFd> OpenBeneath(int root_fd, const std::string& path, int flags, mode_t mode = 0);

class DeltaStore {
 public:
  static Result<std::unique_ptr<DeltaStore>> Open(const std::string& dir, uint64_t quota_bytes,
                                                  uint64_t quota_inodes);
  ~DeltaStore();

  int upper_root() const { return upper_.get(); }
  // Owner given to directories it creates without a source counterpart (FsOptions::new_owner_uid).
  // Objects a commit creates in the source keep the owner of their upper object. Call before use.
  void SetOwner(uid_t uid, gid_t gid) {
    owner_uid_ = uid;
    owner_gid_ = gid;
  }

  // --- out-of-band deletions (lower objects hidden by the delta) ---
  bool IsDeleted(const std::string& path) const;
  bool HasDeletions() const {
    std::lock_guard lock(mu_);
    return !deleted_.empty();
  }
  Status MarkDeleted(const std::string& path);
  Status Undelete(const std::string& path);

  // --- upper tree ---
  // The upper object at `path` (O_PATH|O_NOFOLLOW unless `flags` says otherwise). Absent
  // (ENOENT/ENOTDIR/ELOOP) is reported as kNotFound.
  Result<UniqueFd> OpenUpper(const std::string& path, int flags) const;
  // The upper directory at `dir_path`, created (with the modes of the matching source
  // directories) when missing. Charges the inode quota for each directory created.
  Result<UniqueFd> EnsureUpperDir(const std::string& dir_path, int lower_root);
  // Copies the lower object `lower` (an O_PATH fd, `st` its stat) to upper `name` in `upper_dir`.
  // Regular files: FICLONE, else copy_file_range; without data when `empty`. Appears atomically
  // (O_TMPFILE + linkat). Returns the new upper object's O_PATH fd.
  Result<UniqueFd> CopyUp(int lower, const struct stat& st, int upper_dir, const std::string& name,
                          bool empty);

  // --- quota (bytes = sizes of upper regular files, inodes = upper objects) ---
  // 0, or ENOSPC when `inodes` more objects would pass the limit; charges on success.
  int ChargeInodes(int64_t inodes);
  // Largest file end allowed for a file now `cur_size` long (INT64_MAX without byte quota).
  int64_t MaxEnd(int64_t cur_size) const;
  void AddUsage(int64_t bytes, int64_t inodes);
  // Charges `bytes` (a size growth): ENOSPC when over the byte quota, nothing charged then.
  int ChargeBytes(int64_t bytes);
  std::mutex& write_mu() { return write_mu_; }
  bool has_byte_quota() const { return quota_bytes_ > 0; }

  // --- changes API (callers hold their exclusive lock) ---
  Result<ChangeSet> Changes(int lower_root);
  // Syncs into the source (SPEC §7; docs/DELTA.md "commit"). `level` re-checks the policy at
  // commit time. Applied entries are removed from the delta; failed ones stay pending.
  // `busy(st)`: the upper regular file `st` is open for writing through the mount. It is then
  // copied into the source and stays in the delta (its writer keeps writing there). Otherwise a
  // file with one link on the same filesystem is moved into the source (no copy). Null = never.
  CommitReport Commit(int lower_root,
                      const std::function<policy::Level(const std::string&, bool)>& level,
                      const std::function<bool(const struct stat&)>& busy = nullptr);
  // Empties the delta; returns the number of changes dropped.
  Result<int64_t> Discard(int lower_root);

 private:
  DeltaStore() = default;
  Status LoadJournal();
  Status AppendJournal(char op, const std::string& path);
  Status Rewrite();
  void Rescan();

  std::string dir_;
  UniqueFd dir_fd_;
  UniqueFd upper_;
  UniqueFd journal_;
  mutable std::mutex mu_;              // deleted_, journal_, counters
  std::set<std::string> deleted_;      // workspace paths
  int64_t bytes_ = 0;
  int64_t inodes_ = 0;
  uint64_t quota_bytes_ = 0;
  uint64_t quota_inodes_ = 0;
  uid_t owner_uid_ = 0;
  gid_t owner_gid_ = 0;
  std::mutex write_mu_;  // serializes quota-checked writes (check + write + charge)
};

}  // namespace agentfense::fs
