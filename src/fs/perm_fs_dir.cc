// Directories and names: listing, mkdir/mknod/symlink, unlink/rmdir, rename, link.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "base/path.h"
#include "fs/perm_fs.h"
#include "fs/perm_fs_internal.h"

namespace agentfense::fs {

using policy::Level;
using policy::Policy;


namespace {

bool IsDotOrDotDot(const char* n) {
  return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

}  // namespace

// Directories are listed without handles. The visibility of a directory is checked here and again
// in every READDIR, because once opendir has answered ENOSYS the kernel opens directories without
// asking (FUSE_CAP_NO_OPENDIR_SUPPORT) and never sends RELEASEDIR: `find` and `ls -R` then cost no
// round trip per directory beyond the listing itself, which the kernel caches (FOPEN_CACHE_DIR is
// its default for handle-less directories) until a change or a policy update invalidates it.
void PermFs::Opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  if (int err = Check(req, table_->PathOf(n), "opendir", DecideInode(*policy_, n), Level::kView)) {
    return (void)fuse_reply_err(req, err);
  }
  if (zero_message_opendir_) return (void)fuse_reply_err(req, ENOSYS);  // "ok, and stop asking"
  fi->fh = 0;
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

void PermFs::Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  auto delta_lock = DeltaShared();
  // A directory hidden after it was opened (a cwd inside it, an open fd) lists nothing.
  if (int err = Check(req, table_->PathOf(n), "readdir", DecideInode(*policy_, n), Level::kView)) {
    return (void)fuse_reply_err(req, err);
  }
  std::shared_ptr<DirListing> d;
  {
    std::lock_guard llock(listings_mu_);
    auto [it, added] = listings_.try_emplace(ino);
    if (added) {
      it->second = std::make_shared<DirListing>();
      if (listings_.size() > kMaxListings) {  // evict an abandoned one; readers keep theirs alive
        auto victim = listings_.begin();
        if (victim == it) ++victim;
        listings_.erase(victim);
      }
    }
    d = it->second;
  }
  std::vector<char> buf(size);
  size_t pos = 0;
  int err;
  {
    std::lock_guard dlock(d->mu);
    err = FillDir(req, *policy_, n, d.get(), off, plus, buf, &pos);
  }
  // An empty reply is the end of the directory: the kernel now holds the complete listing.
  if (err != 0 || pos == 0) {
    std::lock_guard llock(listings_mu_);
    auto it = listings_.find(ino);
    if (it != listings_.end() && it->second == d) listings_.erase(it);
  }
  if (err != 0) return (void)fuse_reply_err(req, err);
  fuse_reply_buf(req, buf.data(), pos);
}

int PermFs::LoadDir(const Policy& p, Inode* n, DirListing* d) {
  d->entries.clear();
  d->generation = generation_.load();
  std::string dir_path = table_->PathOf(n);
  if (dir_path.empty()) return ENOENT;
  if (delta_) return DeltaLoadDir(p, dir_path, d);
  auto io = table_->OpenIo(n, O_RDONLY | O_DIRECTORY);
  if (!io.ok()) return io.error().ToErrno();
  DIR* dp = ::fdopendir(io->get());
  if (dp == nullptr) return errno;
  (void)io->Release();  // now owned by dp
  const std::string prefix = dir_path == "/" ? "/" : dir_path + "/";
  while (dirent* de = ::readdir(dp)) {
    if (IsDotOrDotDot(de->d_name)) {
      d->entries.push_back({de->d_name, de->d_ino, DT_DIR});
      continue;
    }
    unsigned char type = de->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (::fstatat(::dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      type = IFTODT(st.st_mode);
    }
    if (Decide(p, prefix + de->d_name, type == DT_DIR).level == Level::kNone) continue;
    d->entries.push_back({de->d_name, de->d_ino, type});
  }
  ::closedir(dp);
  return 0;
}

int PermFs::FillDir(fuse_req_t req, const Policy& p, Inode* n, DirListing* d, off_t off, bool plus,
                    std::vector<char>& buf, size_t* pos) {
  if (off == 0 || d->generation != generation_.load()) {
    if (int err = LoadDir(p, n, d)) return err;
    d->with_attrs = ListingWithAttributes();
  }
  const size_t size = buf.size();
  LinkProbe probe;  // opened on the first plain regular entry
  for (size_t i = static_cast<size_t>(off); i < d->entries.size(); ++i) {
    const auto& ent = d->entries[i];
    const off_t next = static_cast<off_t>(i + 1);
    size_t used;
    if (plus) {
      fuse_entry_param e;
      std::memset(&e, 0, sizeof(e));
      bool looked_up = false;
      bool bare = false;
      if (IsDotOrDotDot(ent.name.c_str())) {
        e.attr.st_ino = ent.ino;
        e.attr.st_mode = DTTOIF(ent.type);
      } else if (!d->with_attrs && ent.type != DT_DIR) {
        // Bare: node id 0 tells the kernel "no entry to cache" (not ENOENT); a stat or open of
        // it will be a LOOKUP, decided like every lookup. Left out like a plain entry when it
        // is a hard link that is `none` over its names.
        if (ent.type == DT_REG && HiddenLink(p, n, ent.name, ent.upper, &probe)) continue;
        e.attr.st_ino = ent.ino;
        e.attr.st_mode = DTTOIF(ent.type);
        bare = true;
      } else {
        // A full lookup: the entry comes back with attributes, and the kernel takes a reference.
        if (DoLookup(req, p, n, ent.name.c_str(), &e, /*audit=*/false) != 0) continue;
        looked_up = true;
      }
      used = fuse_add_direntry_plus(req, buf.data() + *pos, size - *pos, ent.name.c_str(), &e,
                                    next);
      if (used > size - *pos) {
        if (looked_up) table_->Forget(table_->FromNodeId(e.ino), 1);
        break;
      }
      if (bare) bare_listed_.fetch_add(1, std::memory_order_relaxed);
    } else {
      // Plain entries are not looked up (READDIRPLUS ones are, and DoLookup decides a hard link
      // over all its names): a regular file is stat'ed here, so a hard link of a hidden file is
      // not listed either. Only here: a cold READDIRPLUS walk pays no extra syscall per entry.
      if (ent.type == DT_REG && HiddenLink(p, n, ent.name, ent.upper, &probe)) continue;
      struct stat st;
      std::memset(&st, 0, sizeof(st));
      st.st_ino = ent.ino;
      st.st_mode = DTTOIF(ent.type);
      used = fuse_add_direntry(req, buf.data() + *pos, size - *pos, ent.name.c_str(), &st, next);
      if (used > size - *pos) break;
      if (ent.type != DT_DIR) bare_listed_.fetch_add(1, std::memory_order_relaxed);
    }
    *pos += used;
  }
  return 0;
}

bool PermFs::ListingWithAttributes() {
  switch (options_.listing_attrs) {
    case FsOptions::ListingAttrs::kAlways:
      return true;
    case FsOptions::ListingAttrs::kNever:
      return false;
    case FsOptions::ListingAttrs::kAdaptive:
      break;
  }
  // A file listed with attributes costs a host lookup and a kernel inode whether or not it is
  // used; one listed bare costs a LOOKUP round trip if it is used. About the same each, so the
  // choice follows the share of bare-listed files looked up since: more than half (stat, ls -l,
  // grep -r, git status) → attributes; fewer (find -name) → bare. Decided per cold listing, over
  // the last kListingWindow bare files (halved at each decision, so old walks fade).
  std::lock_guard lock(listing_use_mu_);
  const uint64_t listed = bare_listed_.load(std::memory_order_relaxed);
  if (listed >= kListingWindow) {
    const uint64_t used = bare_used_.load(std::memory_order_relaxed);
    listing_attrs_ = used * 2 >= listed;
    listing_decided_ = true;
    bare_listed_.fetch_sub(listed / 2, std::memory_order_relaxed);
    bare_used_.fetch_sub(used / 2, std::memory_order_relaxed);  // only ever grows meanwhile
  }
  // Listed with attributes, nothing is ever looked up: every kProbeEvery-th listing is bare (every
  // 4th before the first decision), to see whether the walker still uses what it lists.
  const uint64_t every = listing_decided_ ? kProbeEvery : 4;
  return listing_attrs_ && listings_loaded_++ % every != 0;
}

bool PermFs::HiddenLink(const Policy& p, Inode* dir, const std::string& name, bool upper,
                        LinkProbe* probe) {
  std::shared_ptr<UniqueFd>& fd = probe->dir[upper ? 1 : 0];
  if (probe->path.empty()) probe->path = table_->PathOf(dir);
  if (!fd) {
    if (!delta_) {
      if (auto pfd = table_->PathFd(dir); pfd.ok()) fd = std::move(*pfd);
    } else if (auto opened = upper ? delta_->OpenUpper(probe->path, O_PATH | O_DIRECTORY)
                                   : OpenBeneath(table_->root_fd(), probe->path,
                                                 O_PATH | O_DIRECTORY);
               opened.ok()) {
      fd = std::make_shared<UniqueFd>(std::move(*opened));
    }
    if (!fd) return true;  // the directory is gone: list nothing unproven
  }
  struct stat st;
  if (::fstatat(fd->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
  if (!S_ISREG(st.st_mode) || st.st_nlink <= 1) return false;
  bool vouched = true;
  const std::string path = JoinWorkspacePath(probe->path, name);
  return Decide(p, path, false).level == Level::kNone ||
         LinkVerdict(p, st.st_dev, st.st_ino, st.st_nlink, upper, &vouched).level ==
             Level::kNone;
}

void PermFs::Releasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* /*fi*/) {
  fuse_reply_err(req, 0);  // only without zero-message opendir; there is no handle to free
}

void PermFs::Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* /*fi*/) {
  auto io = table_->OpenIo(table_->FromNodeId(ino), O_RDONLY | O_DIRECTORY);
  if (!io.ok()) return (void)fuse_reply_err(req, io.error().ToErrno());
  int r = datasync ? ::fdatasync(io->get()) : ::fsync(io->get());
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

void PermFs::Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Inode* dir = table_->FromNodeId(parent);
  std::shared_lock lock(policy_mu_);
  const Policy& p = *policy_;
  std::string path = table_->ChildPath(dir, name);
  Verdict v = Decide(p, path, true);
  // A name that would be `none` gets EACCES whether or not it exists (no existence oracle).
  const Retry retry = [this, parent, nm = std::string(name), mode](fuse_req_t r) {
    Mkdir(r, parent, nm.c_str(), mode);
  };
  if (int err = Check(req, path, "mkdir", v, Level::kWrite, &retry, EACCES)) {
    return ReplyErr(req, err);
  }
  auto dlock = DeltaShared();
  UniqueFd dfd;
  if (int err = PrepareCreate(path, &dfd, dir, name)) return (void)fuse_reply_err(req, err);
  auto pfd = table_->PathFd(dir);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  const int at = delta_ ? dfd.get() : (*pfd)->get();
  const mode_t want = mode & 07777 & ~internal::kStrippedModeBits;
  const bool exact = internal::NoDaemonUmask();
  if (::mkdirat(at, name, want) != 0) {
    if (delta_) delta_->AddUsage(0, -1);
    return (void)fuse_reply_err(req, errno);
  }
  fuse_entry_param e;
  if (int err = RegisterNew(p, dir, name, -1, &e, delta_ ? at : -1, delta_ != nullptr,
                            exact ? kKeepMode : want)) {
    return (void)fuse_reply_err(req, err);
  }
  fuse_reply_entry(req, &e);
}

void PermFs::Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Inode* dir = table_->FromNodeId(parent);
  std::shared_lock lock(policy_mu_);
  const Policy& p = *policy_;
  std::string path = table_->ChildPath(dir, name);
  Verdict v = Decide(p, path, false);
  const Retry retry = [this, parent, nm = std::string(name), mode, rdev](fuse_req_t r) {
    Mknod(r, parent, nm.c_str(), mode, rdev);
  };
  if (int err = Check(req, path, "mknod", v, Level::kWrite, &retry, EACCES)) {
    return ReplyErr(req, err);
  }
  const mode_t type = mode & S_IFMT;
  if (type != S_IFIFO && type != S_IFSOCK && type != S_IFREG) {
    // Device nodes never: the daemon is root and would create real ones on the host.
    return (void)fuse_reply_err(req, Deny(req, path, "mknod", v, EPERM));
  }
  auto dlock = DeltaShared();
  UniqueFd dfd;
  if (int err = PrepareCreate(path, &dfd, dir, name)) return (void)fuse_reply_err(req, err);
  auto pfd = table_->PathFd(dir);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  const int at = delta_ ? dfd.get() : (*pfd)->get();
  const mode_t want = mode & 07777 & ~internal::kStrippedModeBits;
  const bool exact = internal::NoDaemonUmask();
  if (::mknodat(at, name, type | want, 0) != 0) {
    if (delta_) delta_->AddUsage(0, -1);
    return (void)fuse_reply_err(req, errno);
  }
  fuse_entry_param e;
  if (int err = RegisterNew(p, dir, name, -1, &e, delta_ ? at : -1, delta_ != nullptr,
                            exact ? kKeepMode : want)) {
    return (void)fuse_reply_err(req, err);
  }
  fuse_reply_entry(req, &e);
}

void PermFs::Symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Inode* dir = table_->FromNodeId(parent);
  std::shared_lock lock(policy_mu_);
  const Policy& p = *policy_;
  std::string path = table_->ChildPath(dir, name);
  Verdict v = Decide(p, path, false);
  const Retry retry = [this, tgt = std::string(target), parent, nm = std::string(name)](
                          fuse_req_t r) { Symlink(r, tgt.c_str(), parent, nm.c_str()); };
  if (int err = Check(req, path, "symlink", v, Level::kWrite, &retry, EACCES)) {
    return ReplyErr(req, err);
  }
  auto dlock = DeltaShared();
  UniqueFd dfd;
  if (int err = PrepareCreate(path, &dfd, dir, name)) return (void)fuse_reply_err(req, err);
  auto pfd = table_->PathFd(dir);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  const int at = delta_ ? dfd.get() : (*pfd)->get();
  // The target is stored as data; the daemon never resolves it.
  if (::symlinkat(target, at, name) != 0) {
    if (delta_) delta_->AddUsage(0, -1);
    return (void)fuse_reply_err(req, errno);
  }
  fuse_entry_param e;
  if (int err = RegisterNew(p, dir, name, -1, &e, delta_ ? at : -1, delta_ != nullptr)) {
    return (void)fuse_reply_err(req, err);
  }
  fuse_reply_entry(req, &e);
}

void PermFs::Unlink(fuse_req_t req, fuse_ino_t parent, const char* name, bool is_rmdir) {
  Inode* dir = table_->FromNodeId(parent);
  std::shared_lock lock(policy_mu_);
  const Policy& p = *policy_;
  const char* op = is_rmdir ? "rmdir" : "unlink";
  const Retry retry = [this, parent, nm = std::string(name), is_rmdir](fuse_req_t r) {
    Unlink(r, parent, nm.c_str(), is_rmdir);
  };
  if (delta_) {
    auto dlock = DeltaShared();
    return DeltaUnlink(req, p, dir, name, is_rmdir, retry);
  }
  std::string path = table_->ChildPath(dir, name);
  auto pfd = table_->PathFd(dir);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  struct stat st;
  // The kernel holds the parent's lock for the whole unlink, so no other operation through the
  // mount can change what `name` refers to between this fstatat and the unlinkat.
  if (::fstatat((*pfd)->get(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  Verdict v = Decide(p, path, S_ISDIR(st.st_mode));
  if (int err = Check(req, path, op, v, Level::kWrite, &retry)) return ReplyErr(req, err);
  // rmdir of a directory that still holds hidden entries fails with ENOTEMPTY on the host, as
  // SPEC §3.5 requires; nothing is ever removed recursively on the agent's behalf.
  if (::unlinkat((*pfd)->get(), name, is_rmdir ? AT_REMOVEDIR : 0) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    source_links_->Unlinked(st.st_dev, st.st_ino, st.st_nlink - 1, path);
  }
  table_->NameRemoved(st.st_dev, st.st_ino, dir, name);
  NoteRemoved(path, S_ISDIR(st.st_mode));
  fuse_reply_err(req, 0);
}

void PermFs::Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                    const char* newname, unsigned int flags) {
  if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
    return (void)fuse_reply_err(req, EINVAL);  // RENAME_WHITEOUT creates a device node
  }
  const bool exchange = flags & RENAME_EXCHANGE;
  Inode* odir = table_->FromNodeId(parent);
  Inode* ndir = table_->FromNodeId(newparent);
  std::shared_lock lock(policy_mu_);
  const Policy& p = *policy_;
  const Retry retry = [this, parent, nm = std::string(name), newparent,
                       nn = std::string(newname), flags](fuse_req_t r) {
    Rename(r, parent, nm.c_str(), newparent, nn.c_str(), flags);
  };
  if (delta_) {
    auto dlock = DeltaShared();
    return DeltaRename(req, p, odir, name, ndir, newname, flags, retry);
  }
  std::string old_path = table_->ChildPath(odir, name);
  std::string new_path = table_->ChildPath(ndir, newname);
  auto opfd = table_->PathFd(odir);
  auto npfd = table_->PathFd(ndir);
  if (!opfd.ok()) return (void)fuse_reply_err(req, opfd.error().ToErrno());
  if (!npfd.ok()) return (void)fuse_reply_err(req, npfd.error().ToErrno());
  struct stat ost, nst;
  if (::fstatat((*opfd)->get(), name, &ost, AT_SYMLINK_NOFOLLOW) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  const bool old_dir = S_ISDIR(ost.st_mode);
  Verdict ov = Decide(p, old_path, old_dir);
  if (int err = Check(req, old_path, "rename", ov, Level::kWrite, &retry)) return ReplyErr(req, err);

  bool target_exists = ::fstatat((*npfd)->get(), newname, &nst, AT_SYMLINK_NOFOLLOW) == 0;
  Verdict tv{};  // the existing target object at its own place
  if (target_exists) {
    tv = Decide(p, new_path, S_ISDIR(nst.st_mode));
    if (tv.level == Level::kNone) {
      // Invisible target: for EXCHANGE it does not exist; otherwise it is a create at a `none` name.
      return (void)fuse_reply_err(
          req, Deny(req, new_path, "rename", tv, exchange ? ENOENT : EACCES));
    }
    if (int err = Check(req, new_path, "rename", tv, Level::kWrite, &retry, EACCES)) {
      return ReplyErr(req, err);
    }
  } else if (exchange) {
    return (void)fuse_reply_err(req, ENOENT);
  }
  // The moved object at its new place.
  Verdict mv = Decide(p, new_path, old_dir);
  if (int err = Check(req, new_path, "rename", mv, Level::kWrite, &retry, EACCES)) {
    return ReplyErr(req, err);
  }
  if (exchange) {
    Verdict back = Decide(p, old_path, S_ISDIR(nst.st_mode));
    if (int err = Check(req, old_path, "rename", back, Level::kWrite, &retry, EACCES)) {
      return ReplyErr(req, err);
    }
  }
  // The directory rule: a directory moves only if everything beneath it is `write` both where it
  // is and where it goes; otherwise EXDEV and mv(1) falls back to copying file by file, each file
  // checked on its own (SECURITY-NOTES §2.1 c).
  auto subtree_writable = [&](const std::string& a, const std::string& b) {
    auto ua = p.UniformLevelBeneath(a);
    auto ub = p.UniformLevelBeneath(b);
    return ua && ub && *ua == Level::kWrite && *ub == Level::kWrite;
  };
  if (old_dir && !subtree_writable(old_path, new_path)) {
    return (void)fuse_reply_err(req, Deny(req, old_path, "rename", ov, EXDEV));
  }
  if (exchange && S_ISDIR(nst.st_mode) && !subtree_writable(new_path, old_path)) {
    return (void)fuse_reply_err(req, Deny(req, new_path, "rename", tv, EXDEV));
  }
  if (::renameat2((*opfd)->get(), name, (*npfd)->get(), newname, flags) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  const bool replaced = target_exists && !exchange &&
                        !(ost.st_dev == nst.st_dev && ost.st_ino == nst.st_ino);
  if (replaced && S_ISREG(nst.st_mode) && nst.st_nlink > 1) {
    source_links_->Unlinked(nst.st_dev, nst.st_ino, nst.st_nlink - 1, new_path);
  }
  source_links_->Renamed(old_path, new_path, exchange);
  if (exchange) {
    // Objects are found by (dev, ino), so the two moves do not interfere.
    table_->Moved(ost.st_dev, ost.st_ino, odir, name, ndir, newname);
    table_->Moved(nst.st_dev, nst.st_ino, ndir, newname, odir, name);
  } else {
    if (replaced) table_->NameRemoved(nst.st_dev, nst.st_ino, ndir, newname);
    table_->Moved(ost.st_dev, ost.st_ino, odir, name, ndir, newname);
  }
  MovedAbsent(old_path, new_path, exchange);
  fuse_reply_err(req, 0);
}

void PermFs::Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Inode* n = table_->FromNodeId(ino);
  Inode* ndir = table_->FromNodeId(newparent);
  std::shared_lock lock(policy_mu_);
  const Policy& p = *policy_;
  std::string old_path = table_->PathOf(n);
  std::string new_path = table_->ChildPath(ndir, newname);
  // Write on both ends: a second name must never grant more than the first (SECURITY-NOTES §2.1 b).
  const Retry retry = [this, ino, newparent, nn = std::string(newname)](fuse_req_t r) {
    Link(r, ino, newparent, nn.c_str());
  };
  if (int err = Check(req, old_path, "link", DecideInode(p, n), Level::kWrite, &retry)) {
    return ReplyErr(req, err);
  }
  Verdict nv = Decide(p, new_path, false);
  if (int err = Check(req, new_path, "link", nv, Level::kWrite, &retry, EACCES)) {
    return ReplyErr(req, err);
  }
  if (n->is_dir()) return (void)fuse_reply_err(req, EPERM);
  if (delta_) {
    auto dlock = DeltaShared();
    return DeltaLink(req, p, n, ndir, newname);
  }
  auto pfd = table_->PathFd(n);
  auto npfd = table_->PathFd(ndir);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  if (!npfd.ok()) return (void)fuse_reply_err(req, npfd.error().ToErrno());
  // AT_EMPTY_PATH links exactly the object behind the fd (needs CAP_DAC_READ_SEARCH: root).
  if (::linkat((*pfd)->get(), "", (*npfd)->get(), newname, AT_EMPTY_PATH) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  struct stat st;
  if (::fstat((*pfd)->get(), &st) == 0) {
    source_links_->Linked(st.st_dev, st.st_ino, st.st_nlink, old_path, new_path);
  }
  fuse_entry_param e;
  if (int err = RegisterNew(p, ndir, newname, -1, &e, -1, false, kLinked)) {
    return (void)fuse_reply_err(req, err);
  }
  fuse_reply_entry(req, &e);
}

}  // namespace agentfense::fs
