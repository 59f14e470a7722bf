// DeltaStore: the host side of a sandbox's copy-on-write delta (docs/DELTA.md).
//
// On disk, <delta_dir> holds
//   upper/          the objects the sandbox created or modified, at their workspace paths;
//   deleted.journal the source paths the sandbox removed, as an append-only, fsync'd journal of
//                   length-prefixed records (compacted on open);
//   checkpoints/    named checkpoints (docs/CHECKPOINTS.md): per name an upper/ whose directories
//                   are copies and every other object a hard link of the upper object it was, plus
//                   a copy of the journal. An upper object shared with a checkpoint ("frozen") is
//                   replaced by a private copy before it changes (Unshare), so a checkpoint never
//                   changes after it was taken.
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
#include <string_view>
#include <unordered_map>
#include <utility>
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

// Hash of a host object's (st_dev, st_ino).
struct DevInoHash {
  size_t operator()(const std::pair<dev_t, ino_t>& k) const noexcept {
    return static_cast<size_t>((static_cast<uint64_t>(k.second) * 0x9E3779B97F4A7C15ULL) ^ k.first);
  }
};

// A checkpoint name: 1 to 64 bytes of [A-Za-z0-9._-], starting with a letter or digit (so never
// ".", "..", a path, or one of the store's own temporary names). kInvalidArgument otherwise.
Status ValidateCheckpointName(std::string_view name);
inline constexpr size_t kMaxCheckpointName = 64;

// An upper regular file open for writing through the mount (its writer would change a checkpoint
// that shared it): copied, never linked or moved.
using BusyFn = std::function<bool(const struct stat&)>;

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

  // --- quota (bytes = sizes of upper regular files, inodes = upper objects; both plus what the
  // checkpoints hold beyond upper/) ---
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
                      const BusyFn& busy = nullptr);
  // Empties the delta; returns the number of changes dropped.
  Result<int64_t> Discard(int lower_root);

  // --- checkpoints (delta_checkpoints.cc; docs/CHECKPOINTS.md; callers hold their exclusive lock
  // for every one but Frozen/CheckpointLinks, which only take mu_) ---
  // Takes checkpoint `name` of the delta as it is: kAlreadyExists when the name is taken,
  // kResourceExhausted past `max_count` checkpoints or when its own objects would pass the quota.
  Result<CheckpointInfo> CreateCheckpoint(const std::string& name, size_t max_count,
                                          const BusyFn& busy);
  // Every checkpoint, oldest first.
  Result<std::vector<CheckpointInfo>> ListCheckpoints() const;
  Status DeleteCheckpoint(const std::string& name);
  // Makes upper/ and the deletion records exactly those of checkpoint `name` (objects it still
  // shares with upper/ stay; the rest is removed, then linked or created from the checkpoint).
  // Fills `touched` with the workspace paths whose object may have changed. A crash half-way is
  // completed when the delta is opened next.
  Result<CheckpointInfo> RestoreCheckpoint(const std::string& name,
                                           std::vector<std::string>* touched);
  // What changes between the workspace as checkpoint `from` shows it and as `to` (another
  // checkpoint, or "" = the delta now) shows it, both over the source as it is (`lower_root`).
  Result<std::vector<Change>> DiffCheckpoints(const std::string& from, const std::string& to,
                                              int lower_root);
  // The upper object (dev, ino) is shared with a checkpoint: it must be Unshare()d before it
  // changes in any way (content, mode, times, xattrs, a new hard link).
  bool Frozen(dev_t dev, ino_t ino) const;
  // Some checkpoint exists (cheap: frozen objects only exist then).
  bool has_checkpoints() const {
    std::lock_guard lock(mu_);
    return !frozen_.empty();
  }
  // How many names the checkpoints hold of that object (not shown to the agent as links).
  nlink_t CheckpointLinks(dev_t dev, ino_t ino) const;
  // Replaces the frozen upper object `name` of `upper_dir` (`st` its stat) by a private copy with
  // the same content (none when `empty`), owner, mode, times and user xattrs, atomically (rename
  // over the name), and returns the copy's O_PATH fd. Charges the quota like a copy-up.
  Result<UniqueFd> Unshare(int upper_dir, const std::string& name, const struct stat& st,
                           bool empty);

 private:
  DeltaStore() = default;
  Status LoadJournal();
  Status AppendJournal(char op, const std::string& path);
  Status Rewrite();
  void Rescan();
  // Checkpoints: opens checkpoints/, removes what an interrupted create or delete left, finishes
  // an interrupted restore and counts what every checkpoint holds (frozen_, ckpt_dirs_).
  Status OpenCheckpoints();
  Status FinishRestore(const std::string& name, std::vector<std::string>* touched);
  Result<UniqueFd> OpenCheckpoint(const std::string& name) const;

  std::string dir_;
  UniqueFd dir_fd_;
  UniqueFd upper_;
  UniqueFd journal_;
  UniqueFd checkpoints_;  // <dir>/checkpoints
  mutable std::mutex mu_;              // deleted_, journal_, counters, frozen_, ckpt_dirs_
  std::set<std::string> deleted_;      // workspace paths
  int64_t bytes_ = 0;
  int64_t inodes_ = 0;
  uint64_t quota_bytes_ = 0;
  uint64_t quota_inodes_ = 0;
  uid_t owner_uid_ = 0;
  gid_t owner_gid_ = 0;
  std::mutex write_mu_;  // serializes quota-checked writes (check + write + charge)

  // Every non-directory object the checkpoints hold, by (dev, ino): its size (regular files) and
  // how many names the checkpoints give it. An upper object found here is frozen. Together with
  // ckpt_dirs_ (directories of all checkpoints) it is what the quota counts beyond upper/.
  struct Held {
    int64_t size = 0;
    nlink_t names = 0;
  };
  using HeldMap = std::unordered_map<std::pair<dev_t, ino_t>, Held, DevInoHash>;
  HeldMap frozen_;
  int64_t ckpt_dirs_ = 0;
};

}  // namespace agentfense::fs
