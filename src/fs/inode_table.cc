#include "fs/inode_table.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <tuple>

#include "base/log.h"
#include "base/path.h"

namespace agentfense::fs {
namespace {

// A path walk longer than this means the parent links form a cycle (only possible after host-side
// renames the table has not seen); such an inode gets the empty path, which decides as `none`.
constexpr int kMaxDepth = 2048;

}  // namespace

Result<std::unique_ptr<InodeTable>> InodeTable::Create(UniqueFd root_fd, size_t fd_cache_capacity,
                                                       size_t io_cache_capacity) {
  struct stat st;
  if (::fstat(root_fd.get(), &st) != 0) return Error::FromErrno(errno, "fstat source root");
  if (!S_ISDIR(st.st_mode)) return Error(ErrorCode::kInvalidArgument, "source is not a directory");
  auto handle = HostHandle::Of(root_fd.get());
  std::unique_ptr<InodeTable> t(
      new InodeTable(std::move(root_fd), fd_cache_capacity, io_cache_capacity));
  t->root_mount_id_ = handle.ok() ? handle->mount_id() : -1;
  t->root_ = new Inode(st.st_dev, st.st_ino, S_IFDIR, HostHandle());
  t->root_->pinned = true;
  t->root_->fd = std::make_shared<UniqueFd>(::fcntl(t->root_fd_.get(), F_DUPFD_CLOEXEC, 3));
  if (!t->root_->fd->valid()) return Error::FromErrno(errno, "dup source root fd");
  t->by_key_[{st.st_dev, st.st_ino}] = t->root_;
  // open_by_handle_at needs CAP_DAC_READ_SEARCH: a daemon without it (rootless) reaches evicted
  // objects again by name instead (Reresolve).
  if (handle.ok()) {
    auto reopened = handle->Open(t->root_fd_.get(), O_PATH);
    t->handles_open_ = reopened.ok() || reopened.error().sys_errno() != EPERM;
  }
  return t;
}

InodeTable::InodeTable(UniqueFd root_fd, size_t capacity, size_t io_capacity)
    : root_fd_(std::move(root_fd)),
      capacity_(std::max<size_t>(capacity, 16)),
      io_capacity_(std::max<size_t>(io_capacity, 16)) {}

InodeTable::~InodeTable() {
  for (Inode* n : all_) delete n;
  delete root_;
}

void InodeTable::SetUpperRoot(int upper_root_fd) {
  upper_root_fd_ = upper_root_fd;
  auto h = HostHandle::Of(upper_root_fd);
  upper_mount_id_ = h.ok() ? h->mount_id() : -2;
}

Result<Inode*> InodeTable::AddLookup(Inode* parent, std::string_view name, UniqueFd fd,
                                     const struct stat& st, bool upper) {
  const std::pair<dev_t, ino_t> key{st.st_dev, st.st_ino};
  const mode_t type = st.st_mode & S_IFMT;
  auto compatible = [&](const Inode* n) { return n->type == type; };

  // One name_to_handle_at per lookup, outside the lock. Objects on another mount (a mount point
  // inside the source) or on a filesystem without export support get no handle: their fd is
  // pinned instead, which also keeps their inode number from being recycled.
  auto h = HostHandle::Of(fd.get());
  const bool usable = h.ok() && h->mount_id() == (upper ? upper_mount_id_ : root_mount_id_);

  std::unique_lock lock(mu_);
  auto it = by_key_.find(key);
  Inode* node = nullptr;
  // The same (dev, ino) may be a recycled inode number whose old object the kernel still
  // references (unlinked but open); the handle carries the generation and tells them apart.
  if (it != by_key_.end() && compatible(it->second) && it->second->upper == upper &&
      (it->second->handle.empty() || (usable && it->second->handle == *h))) {
    node = it->second;
  } else {
    node = new Inode(st.st_dev, st.st_ino, type, usable ? std::move(*h) : HostHandle());
    node->upper = upper;
    all_.insert(node);
    if (it != by_key_.end()) {
      it->second = node;  // the old inode keeps its other key, if any (MaybeFree compares)
    } else {
      by_key_.emplace(key, node);
    }
  }

  if (node != root_) LinkName(node, parent, name);
  node->nlookup++;
  // A regular file's link count changed (a link made or removed): its names may have too.
  if (node->is_reg() && node->nlink_seen.exchange(st.st_nlink) != st.st_nlink) BumpEpoch();
  lock.unlock();

  std::lock_guard cache_lock(cache_mu_);
  if (!node->fd) {
    if (node->handle.empty()) node->pinned = true;
    CachePut(node, std::make_shared<UniqueFd>(std::move(fd)));
  } else if (node->in_lru) {
    lru_.splice(lru_.begin(), lru_, node->lru_pos);
  }
  return node;
}

void InodeTable::LinkName(Inode* node, Inode* parent, std::string_view name) {
  if (node->parent == parent && node->name == name) return;
  if (node->parent == nullptr) {
    node->parent = parent;
    node->name = std::string(name);
    parent->child_refs++;
    return;
  }
  if (node->is_dir()) {
    // A directory has exactly one name: a different one means it was moved on the host.
    Inode* old = node->parent;
    node->parent = parent;
    node->name = std::string(name);
    parent->child_refs++;
    old->child_refs--;
    MaybeFree(old);
    BumpEpoch();
    return;
  }
  for (auto& [p, n] : node->aliases) {
    if (p == parent && n == name) return;
  }
  node->aliases.emplace_back(parent, std::string(name));
  parent->child_refs++;
  BumpEpoch();
}

void InodeTable::Forget(Inode* inode, uint64_t n) {
  if (inode == root_) return;
  std::lock_guard lock(mu_);
  inode->nlookup -= std::min(n, inode->nlookup);
  MaybeFree(inode);
}

void InodeTable::MaybeFree(Inode* first) {
  std::vector<Inode*> work{first};
  while (!work.empty()) {
    Inode* n = work.back();
    work.pop_back();
    if (n == root_ || n->nlookup > 0 || n->child_refs > 0) continue;
    // Both keys, each only if its entry is still this inode's: an entry taken over by another
    // inode is that one's, and one left pointing here would be a dangling pointer.
    if (auto it = by_key_.find({n->dev, n->ino}); it != by_key_.end() && it->second == n) {
      by_key_.erase(it);
    }
    if (n->has_alt_key) {
      auto it = by_key_.find(n->alt_key);
      if (it != by_key_.end() && it->second == n) by_key_.erase(it);
    }
    all_.erase(n);
    if (n->parent != nullptr) {
      n->parent->child_refs--;
      work.push_back(n->parent);
    }
    for (auto& [p, name] : n->aliases) {
      p->child_refs--;
      work.push_back(p);
    }
    {
      std::lock_guard cache_lock(cache_mu_);
      CacheDrop(n);
      IoDrop(n);
    }
    delete n;
  }
}

std::string InodeTable::PathOfLocked(const Inode* inode) const {
  if (inode == root_) return "/";
  std::vector<const std::string*> parts;
  const Inode* n = inode;
  for (; n != nullptr && n != root_; n = n->parent) {
    if (parts.size() > kMaxDepth) return "";
    parts.push_back(&n->name);
  }
  if (n == nullptr) return "";
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    out += '/';
    out += **it;
  }
  return out;
}

std::string InodeTable::PathOf(const Inode* inode) const {
  std::lock_guard lock(mu_);
  return PathOfLocked(inode);
}

InodeNames InodeTable::NamesOf(const Inode* inode) const {
  std::lock_guard lock(mu_);
  InodeNames out;
  out.paths.push_back(PathOfLocked(inode));
  for (const auto& [p, name] : inode->aliases) {
    std::string dir = PathOfLocked(p);
    out.paths.push_back(dir.empty() ? std::string() : JoinWorkspacePath(dir, name));
  }
  std::tie(out.dev, out.ino) = BackingKeyLocked(inode);
  out.upper = inode->upper;
  return out;
}

std::pair<dev_t, ino_t> InodeTable::BackingKeyLocked(const Inode* inode) const {
  // Written under mu_ and cache_mu_ both (SwitchBacking): mu_ suffices to read it.
  return inode->has_alt_key ? inode->alt_key : std::make_pair(inode->dev, inode->ino);
}

std::string InodeTable::ChildPath(const Inode* parent, std::string_view name) const {
  std::string dir = PathOf(parent);
  if (dir.empty()) return "";
  if (dir.size() > 1) dir += '/';
  dir += name;
  return dir;
}

void InodeTable::Moved(dev_t dev, ino_t ino, Inode* old_parent, std::string_view old_name,
                       Inode* new_parent, std::string_view new_name) {
  std::lock_guard lock(mu_);
  auto it = by_key_.find({dev, ino});
  if (it == by_key_.end()) return;
  Inode* n = it->second;
  if (n->parent == old_parent && n->name == old_name) {
    n->parent = new_parent;
    n->name = std::string(new_name);
  } else {
    bool found = false;
    for (auto& [p, name] : n->aliases) {
      if (p == old_parent && name == old_name) {
        p = new_parent;
        name = std::string(new_name);
        found = true;
        break;
      }
    }
    if (!found) return;
  }
  new_parent->child_refs++;
  old_parent->child_refs--;
  MaybeFree(old_parent);
  BumpEpoch();
}

void InodeTable::NameRemoved(dev_t dev, ino_t ino, Inode* parent, std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = by_key_.find({dev, ino});
  if (it == by_key_.end()) return;
  Inode* n = it->second;
  for (auto a = n->aliases.begin(); a != n->aliases.end(); ++a) {
    if (a->first == parent && a->second == name) {
      n->aliases.erase(a);
      parent->child_refs--;
      MaybeFree(parent);
      BumpEpoch();
      return;
    }
  }
  if (n->parent == parent && n->name == name && !n->aliases.empty()) {
    // Promote a surviving hard-link name to primary.
    n->parent = n->aliases.front().first;
    n->name = std::move(n->aliases.front().second);
    n->aliases.erase(n->aliases.begin());
    parent->child_refs--;
    MaybeFree(parent);
    BumpEpoch();
  }
  // The last name of an object stays as it was: an unlinked-but-open file keeps being decided
  // by the path it had, which was `write` (unlink needs write).
}

void InodeTable::CachePut(Inode* node, std::shared_ptr<UniqueFd> fd) {
  node->fd = std::move(fd);
  if (node->pinned) return;
  lru_.push_front(node);
  node->lru_pos = lru_.begin();
  node->in_lru = true;
  while (lru_.size() > capacity_) {
    Inode* victim = lru_.back();
    lru_.pop_back();
    victim->in_lru = false;
    victim->fd.reset();  // closes now, or when the last in-flight user drops its reference
  }
}

void InodeTable::CacheDrop(Inode* node) {
  if (node->in_lru) {
    lru_.erase(node->lru_pos);
    node->in_lru = false;
  }
  node->fd.reset();
}

Result<std::shared_ptr<UniqueFd>> InodeTable::PathFd(Inode* node) {
  HostHandle handle;
  bool upper;
  {
    std::lock_guard lock(cache_mu_);
    if (node->fd) {
      if (node->in_lru) lru_.splice(lru_.begin(), lru_, node->lru_pos);
      return node->fd;
    }
    handle = node->handle;
    upper = node->upper;
  }
  if (handle.empty()) return Error::FromErrno(ESTALE, "inode without handle lost its fd");
  AF_ASSIGN_OR_RETURN(UniqueFd fd, handles_open_
                                       ? handle.Open(upper ? upper_root_fd_ : root_fd_.get(), O_PATH)
                                       : Reresolve(node, handle, upper));
  std::lock_guard lock(cache_mu_);
  if (node->fd) return node->fd;  // another thread won the race; ours closes here
  if (!(node->handle == handle)) return std::make_shared<UniqueFd>(std::move(fd));  // switched
  CachePut(node, std::make_shared<UniqueFd>(std::move(fd)));
  return node->fd;
}

Result<UniqueFd> InodeTable::OpenIo(Inode* node, int flags) {
  flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_PATH);
  if (node->is_symlink()) return Error::FromErrno(ELOOP, "I/O open of a symlink");
  HostHandle handle;
  bool upper;
  {
    std::lock_guard lock(cache_mu_);
    handle = node->handle;
    upper = node->upper;
  }
  if (!handle.empty() && handles_open_) {
    return handle.Open(upper ? upper_root_fd_ : root_fd_.get(), flags);
  }
  AF_ASSIGN_OR_RETURN(auto pfd, PathFd(node));
  int fd = ::open(ProcFdPath(pfd->get()).c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno(errno, "reopen /proc/self/fd");
  return UniqueFd(fd);
}

void InodeTable::IoPut(Inode* node, std::shared_ptr<UniqueFd> fd, int mode) {
  IoDrop(node);
  node->io = std::move(fd);
  node->io_mode = mode;
  io_lru_.push_front(node);
  node->io_lru_pos = io_lru_.begin();
  node->in_io_lru = true;
  while (io_lru_.size() > io_capacity_) {
    Inode* victim = io_lru_.back();
    io_lru_.pop_back();
    victim->in_io_lru = false;
    victim->io.reset();  // closes now, or when the last in-flight user drops its reference
  }
}

void InodeTable::IoDrop(Inode* node) {
  if (node->in_io_lru) {
    io_lru_.erase(node->io_lru_pos);
    node->in_io_lru = false;
  }
  node->io.reset();
}

Result<std::shared_ptr<UniqueFd>> InodeTable::IoFd(Inode* node, bool write) {
  auto fits = [write](int mode) { return write ? mode != O_RDONLY : mode != O_WRONLY; };
  uint64_t gen;
  {
    std::lock_guard lock(cache_mu_);
    if (node->io && fits(node->io_mode)) {
      io_lru_.splice(io_lru_.begin(), io_lru_, node->io_lru_pos);
      return node->io;
    }
    gen = node->backing_gen;
  }
  // Read-write when writing, so that the same descriptor serves the reads that follow; a
  // rootless daemon may only be able to write (a file of its own with mode 0200).
  int mode = write ? O_RDWR : O_RDONLY;
  auto fd = OpenIo(node, mode);
  if (!fd.ok() && write && fd.error().sys_errno() == EACCES) {
    mode = O_WRONLY;
    fd = OpenIo(node, mode);
  }
  if (!fd.ok()) return std::move(fd).error();
  auto shared = std::make_shared<UniqueFd>(std::move(*fd));
  std::lock_guard lock(cache_mu_);
  if (node->io && fits(node->io_mode)) return node->io;  // another thread won the race
  // Switched to another object (copy-up) while we opened: serve this request, cache nothing.
  if (node->backing_gen != gen) return shared;
  IoPut(node, shared, mode);
  return shared;
}

void InodeTable::SetIo(Inode* node, std::shared_ptr<UniqueFd> fd, int mode) {
  std::lock_guard lock(cache_mu_);
  IoPut(node, std::move(fd), mode);
}

void InodeTable::DropAllIo() {
  std::lock_guard lock(cache_mu_);
  for (Inode* n : io_lru_) {
    n->in_io_lru = false;
    n->io.reset();
  }
  io_lru_.clear();
}

void InodeTable::MarkAttrsStale(const std::vector<uint64_t>& nodeids) {
  std::lock_guard lock(mu_);
  for (uint64_t id : nodeids) {
    Inode* n = FromNodeId(id);
    if (n == root_ || all_.count(n) != 0) n->attrs_current.store(false, std::memory_order_relaxed);
  }
}

Result<UniqueFd> InodeTable::Reresolve(Inode* node, const HostHandle& handle, bool upper) {
  const std::string path = PathOf(node);
  if (path.empty()) return Error::FromErrno(ESTALE, "detached inode lost its fd");
  // One component at a time from the tree's root, never following a symlink; the object found
  // must be the very one the handle names (inode and generation), or it is gone (ESTALE).
  UniqueFd cur(::fcntl(upper ? upper_root_fd_ : root_fd_.get(), F_DUPFD_CLOEXEC, 3));
  if (!cur) return Error::FromErrno(errno, "dup root fd");
  size_t pos = 1;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    const std::string comp = path.substr(pos, slash == std::string::npos ? slash : slash - pos);
    const bool last = slash == std::string::npos;
    UniqueFd next(::openat(cur.get(), comp.c_str(),
                           O_PATH | O_NOFOLLOW | O_CLOEXEC | (last ? 0 : O_DIRECTORY)));
    if (!next) return Error::FromErrno(errno == ENOENT || errno == ENOTDIR ? ESTALE : errno,
                                       "reopening " + path + " by name");
    cur = std::move(next);
    pos = last ? path.size() : slash + 1;
  }
  auto found = HostHandle::Of(cur.get());
  if (!found.ok() || !(*found == handle)) {
    return Error::FromErrno(ESTALE, path + " is no longer the object it was");
  }
  return cur;
}

void InodeTable::SwitchBacking(Inode* node, UniqueFd fd, const struct stat& st, bool upper) {
  auto h = HostHandle::Of(fd.get());
  const bool usable = h.ok() && h->mount_id() == (upper ? upper_mount_id_ : root_mount_id_);
  std::lock_guard lock(mu_);
  if (node->has_alt_key) {
    auto it = by_key_.find(node->alt_key);
    if (it != by_key_.end() && it->second == node) by_key_.erase(it);
    node->has_alt_key = false;
  }
  const std::pair<dev_t, ino_t> key{st.st_dev, st.st_ino};
  if (key != std::make_pair(node->dev, node->ino)) {
    by_key_[key] = node;
    node->has_alt_key = true;
    node->alt_key = key;
  }
  std::lock_guard cache_lock(cache_mu_);
  node->handle = usable ? std::move(*h) : HostHandle();
  node->upper = upper;
  node->nlink_seen = st.st_nlink;
  CacheDrop(node);
  IoDrop(node);
  node->backing_gen++;
  node->pinned = node == root_ || node->handle.empty();
  CachePut(node, std::make_shared<UniqueFd>(std::move(fd)));
  BumpEpoch();  // another object, maybe with other names: decide afresh
}

Inode* InodeTable::Find(dev_t dev, ino_t ino) {
  std::lock_guard lock(mu_);
  auto it = by_key_.find({dev, ino});
  if (it == by_key_.end()) return nullptr;
  it->second->nlookup++;
  return it->second;
}

std::optional<InodeTable::KnownInode> InodeTable::Known(dev_t dev, ino_t ino) const {
  std::lock_guard lock(mu_);
  auto it = by_key_.find({dev, ino});
  if (it == by_key_.end()) return std::nullopt;
  return KnownInode{it->second->ino, it->second->upper};  // upper: mu_ suffices to read it
}

std::vector<Inode*> InodeTable::PinUpperInodes() {
  std::lock_guard lock(mu_);
  std::vector<Inode*> out;
  for (Inode* n : all_) {
    bool up;
    {
      std::lock_guard cache_lock(cache_mu_);
      up = n->upper;
    }
    if (!up) continue;
    n->nlookup++;
    out.push_back(n);
  }
  return out;
}

std::vector<Inode*> InodeTable::PinAllInodes() {
  std::lock_guard lock(mu_);
  std::vector<Inode*> out;
  out.reserve(all_.size());
  for (Inode* n : all_) {
    n->nlookup++;
    out.push_back(n);
  }
  return out;
}

bool InodeTable::IsUpper(const Inode* inode) const {
  std::lock_guard lock(cache_mu_);
  return inode->upper;
}

std::vector<KnownName> InodeTable::Snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<KnownName> out;
  out.reserve(all_.size() + 1);
  out.push_back({1, 0, "", "/", true});
  for (const Inode* n : all_) {
    if (n->parent == nullptr) continue;
    KnownName k;
    k.nodeid = NodeId(n);
    k.is_dir = n->is_dir();
    k.is_reg = n->is_reg();
    k.upper = n->upper;
    std::tie(k.dev, k.ino) = BackingKeyLocked(n);
    k.nlink = n->nlink_seen.load();
    k.parent_nodeid = NodeId(n->parent);
    k.name = n->name;
    k.path = PathOfLocked(n);
    out.push_back(k);
    for (const auto& [p, name] : n->aliases) {
      k.parent_nodeid = NodeId(p);
      k.name = name;
      k.path = JoinWorkspacePath(PathOfLocked(p), name);
      out.push_back(k);
    }
  }
  return out;
}

size_t InodeTable::size() const {
  std::lock_guard lock(mu_);
  return all_.size() + 1;
}

size_t InodeTable::cached_fds() const {
  std::lock_guard lock(cache_mu_);
  return lru_.size();
}

}  // namespace agentfense::fs
