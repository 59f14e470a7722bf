// LinkIndex: every name of every multiply-linked regular file of one tree (the source, or the
// delta's upper tree). A hard link is one object under several names; it is decided by the most
// restrictive of *all* its names in the tree, hidden ones included (docs/FILESYSTEM.md, "Hard
// links"), so the index must know names the kernel never looked up: with `/secrets/**` none and
// `/public/key` a second name of `/secrets/key`, only the index knows `/secrets/key` exists.
//
// Built lazily, by one fd-relative walk of the tree (openat O_NOFOLLOW, getdents, fstatat; no path
// string is resolved), the first time a caller asks about a file with st_nlink > 1: a tree without
// hard links never pays for it. Changes made through the mount keep it exact (Linked, Unlinked,
// Renamed); Invalidate drops it when the tree changed outside (uploads, commits). A link made
// outside while mounted shows as a link count the index does not expect: the tree is walked again,
// at most once per rescan interval, and until the index agrees Names() answers "unknown" and the
// caller treats the file as conservatively as the policy allows.
//
// Thread-safety: every method. One mutex, a leaf lock, held for the whole walk.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace agentfense::fs {

class LinkIndex {
 public:
  // `root_fd`: the tree's root directory (borrowed; a real or O_PATH fd, open while this lives).
  // `changed`: called (without the lock) after every change of what Names() would answer.
  // `rescan_interval`: the least time between two walks caused by a disagreeing link count.
  LinkIndex(int root_fd, std::function<void()> changed,
            std::chrono::milliseconds rescan_interval = std::chrono::milliseconds(1000));

  // The names (workspace paths, "/a/b") in the tree of the regular file (dev, ino), whose link
  // count is `nlink` now (callers ask only when nlink > 1). nullopt when the index cannot vouch
  // for them: it disagrees with `nlink` (a link made or removed outside the mount) and was walked
  // less than the rescan interval ago, or the walk failed. Walks the tree the first time.
  std::optional<std::vector<std::string>> Names(dev_t dev, ino_t ino, nlink_t nlink);

  // Changes made through the mount, applied exactly (no walk). No-ops before the first walk.
  // `nlink_after` is the object's link count after the change.
  void Linked(dev_t dev, ino_t ino, nlink_t nlink_after, const std::string& existing,
              const std::string& added);
  void Unlinked(dev_t dev, ino_t ino, nlink_t nlink_after, const std::string& removed);
  // A rename of `from` to `to` (file or directory: every name beneath moves); with `exchange` the
  // names beneath `to` move to `from` as well.
  void Renamed(const std::string& from, const std::string& to, bool exchange);
  // The tree changed outside the mount: walked again on next use.
  void Invalidate();

  struct Stats {
    bool built = false;
    size_t files = 0;    // multiply-linked regular files
    size_t names = 0;    // their names
    size_t walked = 0;   // entries visited by the last walk
    double walk_seconds = 0;
    size_t walks = 0;
    size_t bytes = 0;    // approximate heap held by the index
  };
  Stats stats() const;

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    bool operator==(const Key& o) const { return dev == o.dev && ino == o.ino; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept {
      return static_cast<size_t>((static_cast<uint64_t>(k.ino) * 0x9E3779B97F4A7C15ULL) ^ k.dev);
    }
  };
  struct Entry {
    nlink_t nlink = 0;  // st_nlink when last seen (names outside the tree count here, not below)
    std::vector<std::string> paths;
  };

  bool WalkLocked();  // requires mu_; false when the tree could not be read
  void Changed();

  const int root_fd_;
  const std::function<void()> changed_;
  const std::chrono::milliseconds rescan_interval_;
  mutable std::mutex mu_;
  bool built_ = false;
  bool complete_ = false;  // the last walk read every directory (else no answer is vouched for)
  std::chrono::steady_clock::time_point last_walk_{};
  std::unordered_map<Key, Entry, KeyHash> entries_;
  size_t walked_ = 0;
  size_t walks_ = 0;
  double walk_seconds_ = 0;
};

}  // namespace agentfense::fs
