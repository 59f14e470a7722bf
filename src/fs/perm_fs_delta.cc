// Delta mode of PermFs (docs/DELTA.md): the merged view (upper over source minus out-of-band
// deletions), copy-up, the name operations that change the delta, and the changes API.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <unordered_map>

#include "base/log.h"
#include "base/path.h"
#include "fs/perm_fs.h"
#include "fs/perm_fs_internal.h"

namespace agentfense::fs {

using policy::Level;
using policy::Policy;

namespace {

bool Dots(const char* n) { return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')); }

struct Name {
  std::string name;
  unsigned char type;
  ino_t ino;
};

// Names in the directory `fd` (consumed), without "." and "..".
std::vector<Name> ListNames(UniqueFd fd) {
  std::vector<Name> out;
  DIR* dp = ::fdopendir(fd.get());
  if (dp == nullptr) return out;
  (void)fd.Release();
  while (dirent* de = ::readdir(dp)) {
    if (Dots(de->d_name)) continue;
    unsigned char type = de->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (::fstatat(::dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      type = IFTODT(st.st_mode);
    }
    out.push_back({de->d_name, type, de->d_ino});
  }
  ::closedir(dp);
  return out;
}

}  // namespace

bool PermFs::LowerVisible(const std::string& path) const {
  if (!delta_->HasDeletions()) return true;
  // A deletion record on the path or any ancestor hides the source object (an ancestor's record
  // makes a recreated directory opaque).
  for (std::string p = path; p != "/"; p = ParentPath(p)) {
    if (delta_->IsDeleted(p)) return false;
  }
  return true;
}

int PermFs::Resolve(const std::string& path, Visible* v, Inode* parent, const char* name) const {
  const bool parent_upper = parent != nullptr && table_->IsUpper(parent);
  if (parent_upper) {
    // The parent's own descriptor is its upper directory: one component, relative to it.
    auto pfd = table_->PathFd(parent);
    if (!pfd.ok()) return pfd.error().ToErrno();
    UniqueFd fd(::openat((*pfd)->get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (fd) {
      if (::fstat(fd.get(), &v->st) != 0) return errno;
      v->fd = std::move(fd);
      v->upper = true;
      return 0;
    }
    if (errno != ENOENT) return errno;
  } else {
    auto up = delta_->OpenUpper(path, O_PATH | O_NOFOLLOW);
    if (up.ok()) {
      if (::fstat(up->get(), &v->st) != 0) return errno;
      v->fd = std::move(*up);
      v->upper = true;
      return 0;
    }
    if (up.error().code() != ErrorCode::kNotFound) return up.error().ToErrno();
  }
  return ResolveLower(path, v, parent_upper ? nullptr : parent, name);
}

int PermFs::ResolveLower(const std::string& path, Visible* v, Inode* source_parent,
                         const char* name) const {
  if (!LowerVisible(path)) return ENOENT;
  if (source_parent != nullptr) {
    auto pfd = table_->PathFd(source_parent);
    if (!pfd.ok()) return pfd.error().ToErrno();
    UniqueFd fd(::openat((*pfd)->get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return errno;
    if (::fstat(fd.get(), &v->st) != 0) return errno;
    v->fd = std::move(fd);
    v->upper = false;
    return 0;
  }
  auto low = OpenBeneath(table_->root_fd(), path, O_PATH | O_NOFOLLOW);
  if (!low.ok()) {
    int e = low.error().ToErrno();
    return (e == ENOTDIR || e == ELOOP || e == EXDEV) ? ENOENT : e;
  }
  if (::fstat(low->get(), &v->st) != 0) return errno;
  v->fd = std::move(*low);
  v->upper = false;
  return 0;
}

void PermFs::AdoptUpperTwin(const std::string& path, Inode* parent, const char* name,
                            const Visible& v) {
  if (table_->Known(v.st.st_dev, v.st.st_ino).has_value()) return;
  Visible low;
  const bool source_parent = parent != nullptr && !table_->IsUpper(parent);
  if (ResolveLower(path, &low, source_parent ? parent : nullptr, name) != 0 ||
      !S_ISDIR(low.st.st_mode)) {
    return;
  }
  Inode* n = table_->Find(low.st.st_dev, low.st.st_ino);
  if (n == nullptr) return;
  if (!table_->IsUpper(n) && n->is_dir()) {
    UniqueFd dup(::fcntl(v.fd.get(), F_DUPFD_CLOEXEC, 3));
    if (dup) table_->SwitchBacking(n, std::move(dup), v.st, true);
  }
  table_->Forget(n, 1);
}

int PermFs::MergedEmpty(const std::string& dir_path) const {
  if (auto up = delta_->OpenUpper(dir_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW); up.ok()) {
    if (!ListNames(std::move(*up)).empty()) return ENOTEMPTY;
  }
  if (!LowerVisible(dir_path)) return 0;
  auto low = OpenBeneath(table_->root_fd(), dir_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!low.ok()) return 0;
  // Every source entry counts unless deleted by this delta, hidden ones included: a directory
  // that holds entries the sandbox cannot see is not empty (SECURITY-NOTES §2.1 c).
  for (const auto& n : ListNames(std::move(*low))) {
    if (!delta_->IsDeleted(JoinWorkspacePath(dir_path, n.name))) return ENOTEMPTY;
  }
  return 0;
}

int PermFs::PrepareCreate(const std::string& path, UniqueFd* dir_fd, Inode* parent,
                          const char* name) {
  if (!delta_) return 0;
  if (path.empty()) return ENOENT;
  Visible v;
  int r = Resolve(path, &v, parent, name);
  if (r == 0) return EEXIST;
  if (r != ENOENT) return r;
  if (table_->IsUpper(parent)) {
    // The parent's own descriptor is its upper directory (as Resolve relies on): no walk from
    // the upper root, which costs one openat per component of the path.
    auto pfd = table_->PathFd(parent);
    if (!pfd.ok()) return pfd.error().ToErrno();
    UniqueFd dup(::fcntl((*pfd)->get(), F_DUPFD_CLOEXEC, 3));
    if (!dup) return errno;
    if (int e = delta_->ChargeInodes(1)) return e;
    *dir_fd = std::move(dup);
    return 0;
  }
  auto dir = delta_->EnsureUpperDir(ParentPath(path), table_->root_fd());
  if (!dir.ok()) return dir.error().ToErrno();
  if (int e = delta_->ChargeInodes(1)) return e;
  *dir_fd = std::move(*dir);
  return 0;
}

int PermFs::CopyUpPath(const std::string& path, int lower_fd, const struct stat& st, bool empty) {
  auto dir = delta_->EnsureUpperDir(ParentPath(path), table_->root_fd());
  if (!dir.ok()) return dir.error().ToErrno();
  const std::string name = BaseName(path);
  UniqueFd up;
  if (S_ISDIR(st.st_mode)) {
    auto d = delta_->EnsureUpperDir(path, table_->root_fd());
    if (!d.ok()) return d.error().ToErrno();
    up = std::move(*d);
  } else {
    up.Reset(::openat(dir->get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!up) {
      auto c = delta_->CopyUp(lower_fd, st, dir->get(), name, empty);
      if (!c.ok()) return c.error().ToErrno();
      up = std::move(*c);
    }
  }
  struct stat ust;
  if (::fstat(up.get(), &ust) != 0) return errno;
  if (Inode* n = table_->Find(st.st_dev, st.st_ino); n != nullptr) {
    if (!table_->IsUpper(n) && (n->type == (ust.st_mode & S_IFMT))) {
      UniqueFd dup(::fcntl(up.get(), F_DUPFD_CLOEXEC, 3));
      if (dup) table_->SwitchBacking(n, std::move(dup), ust, true);
    }
    table_->Forget(n, 1);
  }
  return 0;
}

int PermFs::CopyUpInode(Inode* n, bool empty) {
  if (n == table_->root()) return 0;  // the root is the upper root's merge point
  if (table_->IsUpper(n)) {
    // Already the delta's own, unless a checkpoint shares it (docs/CHECKPOINTS.md): then it is
    // copied now, before the change, so that the checkpoint never changes.
    if (n->is_dir() || !delta_->has_checkpoints()) return 0;
    std::lock_guard unshare(unshare_mu_);  // two opens for writing copy it once
    auto pfd = table_->PathFd(n);
    if (!pfd.ok()) return pfd.error().ToErrno();
    struct stat st;
    if (::fstat((*pfd)->get(), &st) != 0) return errno;
    if (!delta_->Frozen(st.st_dev, st.st_ino)) return 0;
    return UnshareInode(n, st, empty);
  }
  std::string path = table_->PathOf(n);
  if (path.empty()) return ESTALE;
  auto pfd = table_->PathFd(n);
  if (!pfd.ok()) return pfd.error().ToErrno();
  struct stat st;
  if (::fstat((*pfd)->get(), &st) != 0) return errno;
  // Only the object the path shows now may be copied up for this inode: a source file deleted
  // in the delta (still open somewhere) whose name was reused must not lend its change to the
  // new file.
  Visible v;
  if (Resolve(path, &v) != 0 || v.upper || v.st.st_dev != st.st_dev || v.st.st_ino != st.st_ino) {
    return ESTALE;
  }
  if (int err = CopyUpPath(path, (*pfd)->get(), st, empty)) return err;
  return table_->IsUpper(n) ? 0 : ESTALE;
}

int PermFs::UnshareInode(Inode* n, const struct stat& st, bool empty) {
  std::string path = table_->PathOf(n);
  if (path.empty()) return ESTALE;
  // Only while the path still shows this very object: an inode whose name went away (a restore
  // removed it, a rename replaced it) must not bring a copy of itself back under that name.
  Visible v;
  if (Resolve(path, &v) != 0 || !v.upper || v.st.st_dev != st.st_dev || v.st.st_ino != st.st_ino) {
    return ESTALE;
  }
  auto dir = delta_->OpenUpper(ParentPath(path), O_PATH | O_DIRECTORY);
  if (!dir.ok()) return dir.error().ToErrno();
  auto copy = delta_->Unshare(dir->get(), BaseName(path), st, empty);
  if (!copy.ok()) return copy.error().ToErrno();
  struct stat cst;
  if (::fstat(copy->get(), &cst) != 0) return errno;
  table_->SwitchBacking(n, std::move(*copy), cst, true);
  // The shared object lost its upper name (the checkpoints keep the others); the copy has one
  // link and is not indexed. Exact, no walk: an agent changing many checkpointed files pays none.
  if (S_ISREG(st.st_mode)) upper_links_->Unlinked(st.st_dev, st.st_ino, st.st_nlink - 1, path);
  return 0;
}

void PermFs::HideCheckpointLinks(struct stat* st) const {
  // Regular files show the names the link index knows in the upper tree (Present: VisibleLinks),
  // which never include a checkpoint's; symlinks, FIFOs and sockets are not indexed.
  if (!delta_ || S_ISDIR(st->st_mode) || S_ISREG(st->st_mode) || st->st_nlink <= 1 ||
      !delta_->has_checkpoints()) {
    return;
  }
  const nlink_t held = delta_->CheckpointLinks(st->st_dev, st->st_ino);
  st->st_nlink = held < st->st_nlink ? st->st_nlink - held : 1;
}

bool PermFs::UpperBusy(const struct stat& st) {
  // With kernel-checked opens no handle is ours and writers cannot be counted. Nor need they be:
  // every write holds delta_mu_ shared and copies up (or unshares from a checkpoint) first, and
  // a commit drops the I/O descriptors, so a later write to a moved or checkpointed file lands
  // in a fresh upper copy, never in the source or a checkpoint.
  if (kernel_open_) return false;
  Inode* n = table_->Find(st.st_dev, st.st_ino);
  if (n == nullptr) return false;
  const bool writing = n->open_writers.load() > 0;
  table_->Forget(n, 1);
  return writing;
}

int PermFs::CopyUpTree(const std::string& path) {
  Visible self;
  if (int err = Resolve(path, &self)) return err;
  if (!self.upper) {
    if (int err = CopyUpPath(path, self.fd.get(), self.st, false)) return err;
  } else if (auto d = delta_->EnsureUpperDir(path, table_->root_fd()); !d.ok()) {
    return d.error().ToErrno();
  }
  std::set<std::string> names;
  if (auto up = delta_->OpenUpper(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW); up.ok()) {
    for (auto& n : ListNames(std::move(*up))) names.insert(n.name);
  }
  if (LowerVisible(path)) {
    if (auto low = OpenBeneath(table_->root_fd(), path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        low.ok()) {
      for (auto& n : ListNames(std::move(*low))) names.insert(n.name);
    }
  }
  for (const auto& name : names) {
    const std::string child = JoinWorkspacePath(path, name);
    Visible v;
    if (Resolve(child, &v) != 0) continue;  // deleted by this delta
    if (S_ISDIR(v.st.st_mode)) {
      if (int err = CopyUpTree(child)) return err;
    } else if (!v.upper) {
      if (int err = CopyUpPath(child, v.fd.get(), v.st, false)) return err;
    }
  }
  // Every source object of the tree is now hidden behind its copy: recorded as deleted, so the
  // tree's old place shows nothing once the copy moves away (and a commit removes the originals).
  if (LowerVisible(path)) {
    if (auto low = OpenBeneath(table_->root_fd(), path, O_PATH | O_NOFOLLOW); low.ok()) {
      for (const auto& name : names) {
        const std::string child = JoinWorkspacePath(path, name);
        if (auto l = OpenBeneath(table_->root_fd(), child, O_PATH | O_NOFOLLOW); l.ok()) {
          if (auto s = delta_->MarkDeleted(child); !s.ok()) return s.error().ToErrno();
        }
      }
    }
  }
  return 0;
}

int PermFs::DeltaLoadDir(const Policy& p, const std::string& dir_path, DirListing* d) {
  std::set<std::string> seen;
  const std::string prefix = dir_path == "/" ? "/" : dir_path + "/";
  d->entries.push_back({".", 1, DT_DIR});
  d->entries.push_back({"..", 1, DT_DIR});
  // A copy-up keeps the inode number the agent saw (FillEntry: node->ino): listings show that
  // one too, so that d_ino and st_ino agree (ls -i, find, fts compare them). A copied-up file's
  // inode is known by its upper object; a directory that only gained an upper twin (a child was
  // created in it) by its source object, so those take the number the source listing gives.
  auto known_ino = [&](dev_t dev, ino_t ino, bool want_upper, ino_t* shown) {
    if (auto k = table_->Known(dev, ino); k.has_value() && k->upper == want_upper) *shown = k->ino;
  };
  std::unordered_map<std::string, size_t> merged_dirs;  // upper directories, by name: entry index
  auto add = [&](const Name& n, bool upper) {
    if (!seen.insert(n.name).second) return;
    if (Decide(p, prefix + n.name, n.type == DT_DIR).level == Level::kNone) return;
    d->entries.push_back({n.name, n.ino, n.type, upper});
    if (upper && n.type == DT_DIR) merged_dirs.emplace(n.name, d->entries.size() - 1);
  };
  if (auto up = delta_->OpenUpper(dir_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW); up.ok()) {
    struct stat ust;
    const bool have_dev = ::fstat(up->get(), &ust) == 0;
    for (auto& n : ListNames(std::move(*up))) {
      if (have_dev) known_ino(ust.st_dev, n.ino, /*want_upper=*/true, &n.ino);
      add(n, true);
    }
  }
  if (LowerVisible(dir_path)) {
    if (auto low = OpenBeneath(table_->root_fd(), dir_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        low.ok()) {
      struct stat lst;
      const bool have_dev = ::fstat(low->get(), &lst) == 0;
      const bool any_deleted = delta_->HasDeletions();
      for (auto& n : ListNames(std::move(*low))) {
        if (any_deleted && delta_->IsDeleted(prefix + n.name)) continue;
        if (auto it = merged_dirs.find(n.name); it != merged_dirs.end() && have_dev) {
          known_ino(lst.st_dev, n.ino, /*want_upper=*/false, &d->entries[it->second].ino);
        }
        add(n, false);
      }
    }
  }
  return 0;
}

void PermFs::DeltaUnlink(fuse_req_t req, const Policy& p, Inode* dir, const char* name,
                         bool is_rmdir, const Retry& retry) {
  const char* op = is_rmdir ? "rmdir" : "unlink";
  std::string path = table_->ChildPath(dir, name);
  if (path.empty()) return (void)fuse_reply_err(req, ENOENT);
  Visible v;
  if (int err = Resolve(path, &v, dir, name)) return (void)fuse_reply_err(req, err);
  const bool is_dir = S_ISDIR(v.st.st_mode);
  Verdict verdict = Decide(p, path, is_dir);
  if (int err = Check(req, path, op, verdict, Level::kWrite, &retry)) return ReplyErr(req, err);
  if (is_rmdir && !is_dir) return (void)fuse_reply_err(req, ENOTDIR);
  if (!is_rmdir && is_dir) return (void)fuse_reply_err(req, EISDIR);
  if (is_dir) {
    if (int err = MergedEmpty(path)) return (void)fuse_reply_err(req, err);
  }
  // A source object shown by Resolve is the lower one; an upper one may hide one.
  const bool has_lower =
      !v.upper ||
      (LowerVisible(path) && OpenBeneath(table_->root_fd(), path, O_PATH | O_NOFOLLOW).ok());
  if (v.upper) {
    // An upper parent's own descriptor is its upper directory; else walk to it.
    std::shared_ptr<UniqueFd> up;
    if (table_->IsUpper(dir)) {
      auto pfd = table_->PathFd(dir);
      if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
      up = std::move(*pfd);
    } else {
      auto walked = delta_->OpenUpper(ParentPath(path), O_PATH | O_DIRECTORY);
      if (!walked.ok()) return (void)fuse_reply_err(req, walked.error().ToErrno());
      up = std::make_shared<UniqueFd>(std::move(*walked));
    }
    if (::unlinkat(up->get(), name, is_dir ? AT_REMOVEDIR : 0) != 0) {
      return (void)fuse_reply_err(req, errno);
    }
    if (v.st.st_nlink <= 1 || is_dir) {
      delta_->AddUsage(S_ISREG(v.st.st_mode) ? -v.st.st_size : 0, -1);
    } else if (S_ISREG(v.st.st_mode)) {
      upper_links_->Unlinked(v.st.st_dev, v.st.st_ino, v.st.st_nlink - 1, path);
    }
  }
  if (has_lower) {
    if (auto s = delta_->MarkDeleted(path); !s.ok()) return (void)fuse_reply_err(req, s.error().ToErrno());
  }
  table_->NameRemoved(v.st.st_dev, v.st.st_ino, dir, name);
  NoteRemoved(path, is_dir);
  fuse_reply_err(req, 0);
}

void PermFs::DeltaRename(fuse_req_t req, const Policy& p, Inode* odir, const char* name,
                         Inode* ndir, const char* newname, unsigned int flags,
                         const Retry& retry) {
  const bool exchange = flags & RENAME_EXCHANGE;
  std::string old_path = table_->ChildPath(odir, name);
  std::string new_path = table_->ChildPath(ndir, newname);
  if (old_path.empty() || new_path.empty()) return (void)fuse_reply_err(req, ENOENT);
  Visible ov;
  if (int err = Resolve(old_path, &ov)) return (void)fuse_reply_err(req, err);
  const bool old_dir = S_ISDIR(ov.st.st_mode);
  Verdict ovd = Decide(p, old_path, old_dir);
  if (int err = Check(req, old_path, "rename", ovd, Level::kWrite, &retry)) return ReplyErr(req, err);
  Visible tv;
  int terr = Resolve(new_path, &tv);
  if (terr != 0 && terr != ENOENT) return (void)fuse_reply_err(req, terr);
  const bool target_exists = terr == 0;
  const bool new_dir = target_exists && S_ISDIR(tv.st.st_mode);
  Verdict tvd{};
  if (target_exists) {
    tvd = Decide(p, new_path, new_dir);
    if (tvd.level == Level::kNone) {
      return (void)fuse_reply_err(req, Deny(req, new_path, "rename", tvd, exchange ? ENOENT : EACCES));
    }
    if (int err = Check(req, new_path, "rename", tvd, Level::kWrite, &retry, EACCES)) {
      return ReplyErr(req, err);
    }
  } else if (exchange) {
    return (void)fuse_reply_err(req, ENOENT);
  }
  Verdict mv = Decide(p, new_path, old_dir);
  if (int err = Check(req, new_path, "rename", mv, Level::kWrite, &retry, EACCES)) {
    return ReplyErr(req, err);
  }
  if (exchange) {
    Verdict back = Decide(p, old_path, new_dir);
    if (int err = Check(req, old_path, "rename", back, Level::kWrite, &retry, EACCES)) {
      return ReplyErr(req, err);
    }
  }
  auto subtree_writable = [&](const std::string& a, const std::string& b) {
    auto ua = p.UniformLevelBeneath(a);
    auto ub = p.UniformLevelBeneath(b);
    return ua && ub && *ua == Level::kWrite && *ub == Level::kWrite;
  };
  if (old_dir && !subtree_writable(old_path, new_path)) {
    return (void)fuse_reply_err(req, Deny(req, old_path, "rename", ovd, EXDEV));
  }
  if (exchange && new_dir && !subtree_writable(new_path, old_path)) {
    return (void)fuse_reply_err(req, Deny(req, new_path, "rename", tvd, EXDEV));
  }
  if (target_exists && !exchange) {
    if (ov.st.st_dev == tv.st.st_dev && ov.st.st_ino == tv.st.st_ino) return (void)fuse_reply_err(req, 0);
    if (flags & RENAME_NOREPLACE) return (void)fuse_reply_err(req, EEXIST);
    if (old_dir && !new_dir) return (void)fuse_reply_err(req, ENOTDIR);
    if (!old_dir && new_dir) return (void)fuse_reply_err(req, EISDIR);
    if (new_dir) {
      if (int err = MergedEmpty(new_path)) return (void)fuse_reply_err(req, err);
    }
  }
  // Both ends in the upper tree: a source object is copied up first (a directory as a whole
  // tree), and its source original gets a deletion record once the copy has moved.
  auto has_lower = [&](const std::string& path) {
    return LowerVisible(path) && OpenBeneath(table_->root_fd(), path, O_PATH | O_NOFOLLOW).ok();
  };
  auto copy_up = [&](const std::string& path, const Visible& v, bool lower) {
    if (S_ISDIR(v.st.st_mode) && lower) return CopyUpTree(path);
    return v.upper ? 0 : CopyUpPath(path, v.fd.get(), v.st, false);
  };
  const bool old_has_lower = has_lower(old_path);
  if (int err = copy_up(old_path, ov, old_has_lower)) return (void)fuse_reply_err(req, err);
  // An exchange moves both objects: the target is copied up as well (a directory as a tree).
  const bool new_has_lower = exchange && has_lower(new_path);
  if (exchange) {
    if (int err = copy_up(new_path, tv, new_has_lower)) return (void)fuse_reply_err(req, err);
  }
  auto ofd = delta_->EnsureUpperDir(ParentPath(old_path), table_->root_fd());
  auto nfd = delta_->EnsureUpperDir(ParentPath(new_path), table_->root_fd());
  if (!ofd.ok()) return (void)fuse_reply_err(req, ofd.error().ToErrno());
  if (!nfd.ok()) return (void)fuse_reply_err(req, nfd.error().ToErrno());
  struct stat ust, nst;
  if (::fstatat(ofd->get(), name, &ust, AT_SYMLINK_NOFOLLOW) != 0) return (void)fuse_reply_err(req, errno);
  const bool upper_target = ::fstatat(nfd->get(), newname, &nst, AT_SYMLINK_NOFOLLOW) == 0;
  if (::renameat2(ofd->get(), name, nfd->get(), newname, flags) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  const bool upper_replaced = upper_target && !exchange &&
                              !(ust.st_dev == nst.st_dev && ust.st_ino == nst.st_ino);
  if (upper_replaced && (nst.st_nlink <= 1 || S_ISDIR(nst.st_mode))) {
    delta_->AddUsage(S_ISREG(nst.st_mode) ? -nst.st_size : 0, -1);
  } else if (upper_replaced && S_ISREG(nst.st_mode)) {
    upper_links_->Unlinked(nst.st_dev, nst.st_ino, nst.st_nlink - 1, new_path);
  }
  upper_links_->Renamed(old_path, new_path, exchange);
  // The source object under a moved-away name is deleted. After an exchange each name holds the
  // other, complete object: a record on each name that has a source object makes it opaque, so
  // nothing of its own source tree shows through (and a commit replaces it whole).
  for (const std::string* path : {old_has_lower ? &old_path : nullptr, new_has_lower ? &new_path : nullptr}) {
    if (path == nullptr) continue;
    if (auto s = delta_->MarkDeleted(*path); !s.ok()) return (void)fuse_reply_err(req, s.error().ToErrno());
  }
  if (exchange) {
    table_->Moved(ust.st_dev, ust.st_ino, odir, name, ndir, newname);
    table_->Moved(nst.st_dev, nst.st_ino, ndir, newname, odir, name);
  } else {
    if (target_exists) table_->NameRemoved(tv.st.st_dev, tv.st.st_ino, ndir, newname);
    if (upper_target) table_->NameRemoved(nst.st_dev, nst.st_ino, ndir, newname);
    table_->Moved(ust.st_dev, ust.st_ino, odir, name, ndir, newname);
  }
  MovedAbsent(old_path, new_path, exchange);
  fuse_reply_err(req, 0);
}

void PermFs::DeltaLink(fuse_req_t req, const Policy& p, Inode* n, Inode* ndir, const char* newname) {
  std::string new_path = table_->ChildPath(ndir, newname);
  if (new_path.empty()) return (void)fuse_reply_err(req, ENOENT);
  Visible v;
  if (Resolve(new_path, &v) == 0) return (void)fuse_reply_err(req, EEXIST);
  if (int err = CopyUpInode(n, false)) return (void)fuse_reply_err(req, err);
  auto nfd = delta_->EnsureUpperDir(ParentPath(new_path), table_->root_fd());
  if (!nfd.ok()) return (void)fuse_reply_err(req, nfd.error().ToErrno());
  auto pfd = table_->PathFd(n);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  if (::linkat((*pfd)->get(), "", nfd->get(), newname, AT_EMPTY_PATH) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  struct stat st;
  if (::fstat((*pfd)->get(), &st) == 0) {
    upper_links_->Linked(st.st_dev, st.st_ino, st.st_nlink, table_->PathOf(n), new_path);
  }
  fuse_entry_param e;
  if (int err = RegisterNew(p, ndir, newname, -1, &e, nfd->get(), true, kLinked)) {
    return (void)fuse_reply_err(req, err);
  }
  fuse_reply_entry(req, &e);
}

void PermFs::RebaseUpper() {
  for (Inode* n : table_->PinUpperInodes()) {
    std::string path = table_->PathOf(n);
    Visible v;
    if (!path.empty() && Resolve(path, &v) == 0 && !v.upper &&
        (v.st.st_mode & S_IFMT) == n->type) {
      table_->SwitchBacking(n, std::move(v.fd), v.st, false);
    }
    table_->Forget(n, 1);
  }
}

void PermFs::RebaseTouched(const std::vector<std::string>& touched) {
  if (touched.empty()) return;
  std::set<std::string> at(touched.begin(), touched.end());
  auto affected = [&at](const std::string& path) {
    for (std::string p = path; !p.empty(); p = p == "/" ? std::string() : ParentPath(p)) {
      if (at.count(p) != 0) return true;
    }
    return false;
  };
  for (Inode* n : table_->PinAllInodes()) {
    std::string path = table_->PathOf(n);
    Visible v;
    if (!path.empty() && affected(path) && Resolve(path, &v) == 0 &&
        (v.st.st_mode & S_IFMT) == n->type) {
      struct stat cur;
      auto pfd = table_->PathFd(n);
      const bool same = pfd.ok() && ::fstat((*pfd)->get(), &cur) == 0 &&
                        cur.st_dev == v.st.st_dev && cur.st_ino == v.st.st_ino;
      if (!same) table_->SwitchBacking(n, std::move(v.fd), v.st, v.upper);
    }
    table_->Forget(n, 1);
  }
}

Result<CheckpointInfo> PermFs::CreateCheckpoint(const std::string& name) {
  if (!delta_) return Error(ErrorCode::kFailedPrecondition, "this sandbox has no delta");
  std::unique_lock lock(delta_mu_);
  auto info = delta_->CreateCheckpoint(name, options_.max_checkpoints,
                                       [this](const struct stat& st) { return UpperBusy(st); });
  // Link counts of upper files changed behind the index: it is walked again on next use (a
  // disagreeing count would otherwise be treated conservatively until the rescan interval).
  upper_links_->Invalidate();
  return info;
}

Result<std::vector<CheckpointInfo>> PermFs::ListCheckpoints() {
  if (!delta_) return Error(ErrorCode::kFailedPrecondition, "this sandbox has no delta");
  std::shared_lock lock(delta_mu_);
  return delta_->ListCheckpoints();
}

Result<CheckpointInfo> PermFs::RestoreCheckpoint(const std::string& name) {
  if (!delta_) return Error(ErrorCode::kFailedPrecondition, "this sandbox has no delta");
  Result<CheckpointInfo> info = Error(ErrorCode::kInternal, "restore did not run");
  {
    std::unique_lock lock(delta_mu_);
    std::vector<std::string> touched;
    info = delta_->RestoreCheckpoint(name, &touched);
    // Also after a failure half-way: what did change must not be served from stale backings.
    RebaseTouched(touched);
    upper_links_->Invalidate();
    table_->DropAllIo();  // no write through a descriptor of an object the restore replaced
  }
  AF_RETURN_IF_ERROR(InvalidatePath("/"));
  return info;
}

Result<std::vector<Change>> PermFs::DiffCheckpoint(const std::string& name,
                                                   const std::string& against) {
  if (!delta_) return Error(ErrorCode::kFailedPrecondition, "this sandbox has no delta");
  std::unique_lock lock(delta_mu_);
  return delta_->DiffCheckpoints(name, against, table_->root_fd());
}

Status PermFs::DeleteCheckpoint(const std::string& name) {
  if (!delta_) return Error(ErrorCode::kFailedPrecondition, "this sandbox has no delta");
  std::unique_lock lock(delta_mu_);
  Status st = delta_->DeleteCheckpoint(name);
  upper_links_->Invalidate();
  return st;
}

Result<ChangeSet> PermFs::DeltaChanges() {
  if (!delta_) return Error(ErrorCode::kFailedPrecondition, "this sandbox has no delta");
  std::unique_lock lock(delta_mu_);
  return delta_->Changes(table_->root_fd());
}

Result<CommitReport> PermFs::CommitDelta() {
  if (!delta_) return Error(ErrorCode::kFailedPrecondition, "this sandbox has no delta");
  std::shared_ptr<const Policy> pol = policy();
  CommitReport report;
  {
    std::unique_lock lock(delta_mu_);
    auto level = [&](const std::string& path, bool is_dir) {
      return pol->Decide(path, is_dir).level;
    };
    // An upper file still open for writing is copied, not moved, and kept: its writer must keep
    // writing into the delta, never into the source.
    report = delta_->Commit(table_->root_fd(), level,
                            [this](const struct stat& st) { return UpperBusy(st); });
    upper_links_->Invalidate();  // files moved from upper into the source (InvalidatePath: source)
    table_->DropAllIo();  // never write through a descriptor of a file now in the source
    RebaseUpper();
  }
  AF_RETURN_IF_ERROR(InvalidatePath("/"));
  return report;
}

Result<int64_t> PermFs::DiscardDelta() {
  if (!delta_) return Error(ErrorCode::kFailedPrecondition, "this sandbox has no delta");
  Result<int64_t> n = 0;
  {
    std::unique_lock lock(delta_mu_);
    n = delta_->Discard(table_->root_fd());
    upper_links_->Invalidate();
    table_->DropAllIo();  // the discarded upper objects
    RebaseUpper();
  }
  AF_RETURN_IF_ERROR(InvalidatePath("/"));
  return n;
}

}  // namespace agentfense::fs
