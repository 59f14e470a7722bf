// The inode table: the filesystem's view of every host object the kernel currently remembers.
//
// Each Inode is keyed by (st_dev, st_ino) and carries
//   * how to reach the host object again: a kernel file handle (HostHandle) plus an entry in a
//     bounded LRU cache of O_PATH fds, so a 100k-file tree never needs 100k fds (limit: 20,000);
//   * where it sits in the workspace: (parent, name) links, so the workspace path used for policy
//     decisions is computed by walking parents under one lock. A rename updates one link and every
//     descendant's path changes with it, atomically (SECURITY-NOTES §2.1 d).
// Objects are never reached by re-resolving a host path string.
//
// Thread-safety: every public method is safe to call concurrently.
// Lock order: mu_ (tree links, map, reference counts) before cache_mu_ (fd LRU). Never the reverse.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "fs/host_handle.h"

namespace agentfense::fs {

class InodeTable;

struct Inode {
  Inode(dev_t d, ino_t i, mode_t t, HostHandle h) : dev(d), ino(i), type(t), handle(std::move(h)) {}

  bool is_dir() const { return S_ISDIR(type); }
  bool is_reg() const { return S_ISREG(type); }
  bool is_symlink() const { return S_ISLNK(type); }

  const dev_t dev;
  const ino_t ino;            // also the st_ino shown to the agent in delta mode (stable copy-up)
  const mode_t type;          // S_IFMT bits only; a host object never changes type
  // The backing object. Fixed, except in delta mode where a copy-up switches it from the source
  // object to its copy in the delta (SwitchBacking). Written under mu_ and cache_mu_ both.
  HostHandle handle;          // empty when the filesystem cannot export handles: fd is pinned
  bool upper = false;         // the backing object is in the delta's upper tree

  // Last (mtime, size) seen at open, to decide keep_cache (page cache still valid) on the next open.
  std::atomic<int64_t> open_mtime_ns{-1};
  std::atomic<int64_t> open_size{-1};
  // Open file handles that can write (delta mode: a commit moves an upper file into the source
  // only when nobody can still write to it through the mount).
  std::atomic<int> open_writers{0};
  // The backing object's st_nlink when last seen (lookup, getattr, open, setattr). A regular file
  // seen with more than one link is decided over all its names (LinkIndex).
  std::atomic<nlink_t> nlink_seen{1};
  // The decision for this inode under the current policy and names, packed by PermFs with the
  // table epoch it was computed at (valid while InodeTable::epoch() is unchanged): the data path
  // (READ/WRITE) re-checks every request with one atomic load.
  mutable std::atomic<uint64_t> verdict{0};
  // Kernel-checked opens (PermFs::kernel_checks): true while the kernel holds attributes we sent
  // for this inode that have not been invalidated since. A GETATTR without a file handle for such
  // an inode is the kernel re-validating after it refused an access by the permission bits
  // (fuse_permission), which is how those refusals reach the audit log.
  std::atomic<bool> attrs_current{false};

 private:
  friend class InodeTable;
  // Guarded by InodeTable::mu_.
  Inode* parent = nullptr;  // nullptr only for the root
  std::string name;
  // Further names of a multiply-linked non-directory (hard links). Decisions take the most
  // restrictive level over all known names, so an alias can never grant more than its siblings.
  std::vector<std::pair<Inode*, std::string>> aliases;
  // A second key in by_key_ (the copy-up's object) mapping to this inode. Either key's entry
  // may since belong to another inode: an entry is this inode's only while it points here.
  bool has_alt_key = false;
  std::pair<dev_t, ino_t> alt_key{};
  uint64_t nlookup = 0;     // kernel references (lookup count)
  uint64_t child_refs = 0;  // names of other inodes that point at this one as parent
  // Guarded by InodeTable::cache_mu_.
  std::shared_ptr<UniqueFd> fd;  // O_PATH fd, in the LRU unless pinned
  bool pinned = false;
  bool in_lru = false;
  std::list<Inode*>::iterator lru_pos;
  // A descriptor for data requests when opens carry no handle of ours (IoFd), its access mode
  // (O_RDONLY, O_WRONLY or O_RDWR) and its place in the I/O LRU. Guarded by cache_mu_.
  std::shared_ptr<UniqueFd> io;
  int io_mode = O_RDONLY;
  bool in_io_lru = false;
  std::list<Inode*>::iterator io_lru_pos;
  uint64_t backing_gen = 0;  // bumped by SwitchBacking: a descriptor opened before is not cached
};

// One name of a known inode, for cache invalidation (SetPolicy / InvalidatePath).
struct KnownName {
  uint64_t nodeid = 0;
  uint64_t parent_nodeid = 0;  // 0 for the root
  std::string name;
  std::string path;
  bool is_dir = false;
  // The inode's backing object (the same for every name of one inode; names of one inode are
  // adjacent in a Snapshot), for decisions over hard-link names.
  bool is_reg = false;
  bool upper = false;
  dev_t dev = 0;
  ino_t ino = 0;
  nlink_t nlink = 1;
};

// The names of an inode and the object that backs it now.
struct InodeNames {
  std::vector<std::string> paths;  // primary first, then hard-link aliases; "" = detached
  dev_t dev = 0;                   // backing object (after a copy-up: the upper copy)
  ino_t ino = 0;
  bool upper = false;
};

class InodeTable {
 public:
  // `root_fd` is an O_PATH (or directory) fd of the source root; it stays pinned and doubles as the
  // mount fd for open_by_handle_at. `fd_cache_capacity` bounds the O_PATH fds kept for other inodes.
  // `io_cache_capacity` bounds the descriptors kept for data requests (IoFd).
  static Result<std::unique_ptr<InodeTable>> Create(UniqueFd root_fd, size_t fd_cache_capacity,
                                                    size_t io_cache_capacity = 1024);
  // Delta mode: objects of the upper tree (docs/DELTA.md) are reached through this directory fd
  // (a real fd on the upper filesystem, used as open_by_handle_at's mount fd). Call once, before
  // the mount serves.
  void SetUpperRoot(int upper_root_fd);
  ~InodeTable();
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  Inode* root() const { return root_; }
  // FUSE node ids: the root is FUSE_ROOT_ID (1); every other inode is its own address, valid until
  // the kernel forgets it (the kernel never sends a node id after its final forget).
  uint64_t NodeId(const Inode* inode) const {
    return inode == root_ ? 1 : reinterpret_cast<uint64_t>(inode);
  }
  Inode* FromNodeId(uint64_t nodeid) const {
    return nodeid == 1 ? root_ : reinterpret_cast<Inode*>(nodeid);
  }
  int root_fd() const { return root_fd_.get(); }

  // Records one kernel reference to the object behind `fd` (an O_PATH|O_NOFOLLOW fd just opened at
  // `name` in `parent`, with `st` its fstat). Finds or creates the inode, (re)links the name, and
  // takes ownership of `fd` for the cache.
  // `upper`: the object is in the delta's upper tree.
  Result<Inode*> AddLookup(Inode* parent, std::string_view name, UniqueFd fd, const struct stat& st,
                           bool upper = false);

  // Delta mode: the inode's backing becomes the object behind `fd` (an O_PATH fd, `st` its stat),
  // keeping the inode (FUSE node id, st_ino) as it is. Later lookups of that object find it.
  void SwitchBacking(Inode* inode, UniqueFd fd, const struct stat& st, bool upper);
  // The inode currently known for host object (dev, ino), with one extra reference the caller
  // drops with Forget(inode, 1); nullptr when unknown.
  Inode* Find(dev_t dev, ino_t ino);
  // What the table knows of host object (dev, ino) without taking a reference: the st_ino its
  // inode shows and whether it is backed by the upper tree; nullopt when unknown.
  struct KnownInode {
    ino_t ino;
    bool upper;
  };
  std::optional<KnownInode> Known(dev_t dev, ino_t ino) const;
  // Every inode backed by the upper tree, each with one extra reference (drop with Forget).
  std::vector<Inode*> PinUpperInodes();
  // Every inode but the root, each with one extra reference (drop with Forget).
  std::vector<Inode*> PinAllInodes();
  bool IsUpper(const Inode* inode) const;

  // Drops `n` kernel references; frees the inode (and any parent that only it kept) at zero.
  void Forget(Inode* inode, uint64_t n);

  // The primary workspace path of the inode; NamesOf: every name (hard-link aliases too) and the
  // backing object.
  std::string PathOf(const Inode* inode) const;
  InodeNames NamesOf(const Inode* inode) const;

  // Bumped whenever a decision cached for an inode (Inode::verdict) may have become stale: a name
  // added, moved or removed, a backing switched, and (by PermFs) a policy or link-index change.
  // Read it *before* reading the names a decision is computed from.
  uint64_t epoch() const { return epoch_.load(); }
  void BumpEpoch() { epoch_.fetch_add(1); }
  // Path of the child `name` of `parent` (need not exist).
  std::string ChildPath(const Inode* parent, std::string_view name) const;

  // After a successful host rename: the object (dev, ino) moved from (old_parent, old_name) to
  // (new_parent, new_name). No-op when the table does not know the object.
  void Moved(dev_t dev, ino_t ino, Inode* old_parent, std::string_view old_name, Inode* new_parent,
             std::string_view new_name);
  // After a successful host unlink/rmdir (or a rename over it): the name is gone.
  void NameRemoved(dev_t dev, ino_t ino, Inode* parent, std::string_view name);

  // The O_PATH fd of the inode, from the cache or reopened from its handle. The returned reference
  // keeps the fd open even if the cache evicts it meanwhile.
  Result<std::shared_ptr<UniqueFd>> PathFd(Inode* inode);

  // A new fd for I/O on the inode with `flags` (O_RDONLY/O_WRONLY/O_RDWR, O_TRUNC, O_APPEND,
  // O_DIRECTORY...). Opens exactly the inode (by handle, or by reopening its O_PATH fd through
  // /proc/self/fd), never a name: see docs/FILESYSTEM.md "handle model".
  Result<UniqueFd> OpenIo(Inode* inode, int flags);

  // A descriptor of the inode's current backing object for READ/WRITE/... requests that come
  // without a handle of ours (opens decided by the kernel: PermFs::kernel_open), readable, or
  // writable when `write`; kept per inode in a bounded LRU. Opened like OpenIo (exactly the
  // inode, never a name). A backing switch (copy-up) or DropIo drops it; in-flight users keep
  // their reference.
  Result<std::shared_ptr<UniqueFd>> IoFd(Inode* inode, bool write);
  // Makes `fd` (opened with access mode `mode`) the inode's I/O descriptor (a file just created).
  void SetIo(Inode* inode, std::shared_ptr<UniqueFd> fd, int mode);
  // Drops every cached I/O descriptor (a delta commit or discard moved or removed upper objects).
  void DropAllIo();
  // Marks the attributes the kernel holds for these node ids stale (they were just invalidated);
  // node ids the table no longer knows are skipped.
  void MarkAttrsStale(const std::vector<uint64_t>& nodeids);

  // Every name of every known inode (snapshot), for invalidation.
  std::vector<KnownName> Snapshot() const;

  size_t size() const;
  size_t cached_fds() const;

 private:
  InodeTable(UniqueFd root_fd, size_t capacity, size_t io_capacity);
  std::string PathOfLocked(const Inode* inode) const;
  std::pair<dev_t, ino_t> BackingKeyLocked(const Inode* inode) const;  // requires mu_
  void LinkName(Inode* inode, Inode* parent, std::string_view name);  // requires mu_
  void MaybeFree(Inode* inode);                                          // requires mu_
  void CachePut(Inode* inode, std::shared_ptr<UniqueFd> fd);             // requires cache_mu_
  void CacheDrop(Inode* inode);                                          // requires cache_mu_
  void IoPut(Inode* inode, std::shared_ptr<UniqueFd> fd, int mode);       // requires cache_mu_
  void IoDrop(Inode* inode);                                             // requires cache_mu_
  // Without CAP_DAC_READ_SEARCH (a rootless daemon): the O_PATH fd of `inode`, found again by
  // walking its workspace path from the root it lives under, and kept only when it is the object
  // `handle` names. ESTALE when it moved or went away behind the table's back.
  Result<UniqueFd> Reresolve(Inode* inode, const HostHandle& handle, bool upper);

  UniqueFd root_fd_;
  int root_mount_id_ = -1;
  int upper_root_fd_ = -1;  // not owned (the DeltaStore's)
  int upper_mount_id_ = -2;
  bool handles_open_ = true;  // open_by_handle_at is allowed (root); else Reresolve
  Inode* root_ = nullptr;
  const size_t capacity_;

  // (st_dev, st_ino) of the host object. Hashed, not ordered: a cold walk looks up every entry
  // once, and a tree search over 100k inodes showed in profiles; nothing iterates in order.
  struct KeyHash {
    size_t operator()(const std::pair<dev_t, ino_t>& k) const noexcept {
      return static_cast<size_t>((static_cast<uint64_t>(k.second) * 0x9E3779B97F4A7C15ULL) ^ k.first);
    }
  };
  mutable std::mutex mu_;  // before cache_mu_
  std::unordered_map<std::pair<dev_t, ino_t>, Inode*, KeyHash> by_key_;
  std::unordered_set<Inode*> all_;  // owns every inode but the root (by_key_ may have replaced some)

  mutable std::mutex cache_mu_;
  std::list<Inode*> lru_;  // front = most recently used
  std::list<Inode*> io_lru_;  // I/O descriptors (IoFd), front = most recently used
  const size_t io_capacity_;

  std::atomic<uint64_t> epoch_{1};
};

}  // namespace agentfense::fs
