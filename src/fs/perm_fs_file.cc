// Files: open/create and the data path, attributes (setattr), extended attributes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "fs/perm_fs.h"
#include "fs/perm_fs_internal.h"

namespace agentfense::fs {

using policy::Level;
using policy::Policy;

namespace {

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// keep_cache only when the file is unchanged since the last open (mtime and size): the kernel's
// cached pages are then still the file's content. A host-side change drops them.
bool KeepCache(Inode* n, const struct stat& st) {
  const int64_t m = MtimeNs(st);
  const int64_t s = st.st_size;
  const bool same = n->open_mtime_ns.exchange(m) == m;
  const bool same_size = n->open_size.exchange(s) == s;
  return same && same_size;
}

// One buffer of `size` bytes, as FUSE_BUFVEC_INIT makes it (a C99 compound literal, not C++).
fuse_bufvec SingleBuf(size_t size) {
  fuse_bufvec v{};  // NOLINT(bugprone-invalid-enum-default-initialization): flags 0 = memory
  v.count = 1;
  v.buf[0].size = size;
  v.buf[0].fd = -1;
  return v;
}

}  // namespace

void PermFs::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  // Checked on every open, with the flags of this open: a reopen through /proc/self/fd/N with new
  // flags is a new OPEN and is judged afresh (SECURITY-NOTES §2.1 f, g).
  const Level need = internal::LevelForOpen(fi->flags);
  const Verdict v = DecideFresh(*policy_, n, need);
  const Retry retry = [this, ino, f = *fi](fuse_req_t r) mutable { Open(r, ino, &f); };
  if (int err = Check(req, table_->PathOf(n), "open", v, need, &retry)) return ReplyErr(req, err);
  if (n->is_dir()) return (void)fuse_reply_err(req, EISDIR);
  if (kernel_open_) {
    // The kernel checked this open against the permission bits we present, and so did we: from
    // now on it opens files without asking (no OPEN, no RELEASE). Data requests then come without
    // a handle of ours and use the inode's own descriptor (DataFd); in delta mode the copy-up
    // happens at the first change (WRITE, SETATTR, FALLOCATE) instead of here.
    return (void)fuse_reply_err(req, ENOSYS);
  }
  auto dlock = DeltaShared();
  int64_t trunc_from = -1;  // quota accounting of an O_TRUNC open
  if (delta_ && internal::LevelForOpen(fi->flags) == Level::kWrite) {
    if (int err = CopyUpInode(n, (fi->flags & O_TRUNC) != 0)) return (void)fuse_reply_err(req, err);
    if ((fi->flags & O_TRUNC) && n->is_reg()) {
      if (auto pfd = table_->PathFd(n); pfd.ok()) {
        struct stat st;
        if (::fstat((*pfd)->get(), &st) == 0) trunc_from = st.st_size;
      }
    }
  }
  auto io = table_->OpenIo(n, fi->flags & ~O_NOATIME);
  if (io.ok() && trunc_from > 0) delta_->AddUsage(-trunc_from, 0);
  if (!io.ok()) return (void)fuse_reply_err(req, io.error().ToErrno());
  struct stat st;
  const bool stat_ok = ::fstat(io->get(), &st) == 0;
  if (stat_ok && NoteNlink(n, st.st_nlink)) {
    // Its link count changed since we last looked (a link made outside the mount): judged again
    // over its names before the descriptor is handed out.
    if (int err = Check(req, table_->PathOf(n), "open", DecideInode(*policy_, n), need)) {
      return (void)fuse_reply_err(req, err);
    }
  }
  fi->keep_cache = stat_ok && KeepCache(n, st) ? 1 : 0;
  fi->fh = static_cast<uint64_t>(io->Release());
  if ((fi->flags & O_ACCMODE) != O_RDONLY) n->open_writers++;
  if (v.level == Level::kAsk) GrantHandle(fi->fh, need);  // opened by a decision
  if (fuse_reply_open(req, fi) != 0) {
    DropHandle(fi->fh);
    ::close(static_cast<int>(fi->fh));
    if ((fi->flags & O_ACCMODE) != O_RDONLY) n->open_writers--;
  }
}

void PermFs::Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                    fuse_file_info* fi) {
  Inode* dir = table_->FromNodeId(parent);
  std::shared_lock lock(policy_mu_);
  const Policy& p = *policy_;
  std::string path = table_->ChildPath(dir, name);
  Verdict v = Decide(p, path, false);
  // EACCES for any name below write, `none` included, existing or not (no existence oracle).
  const Retry retry = [this, parent, nm = std::string(name), mode, f = *fi](fuse_req_t r) mutable {
    Create(r, parent, nm.c_str(), mode, &f);
  };
  if (int err = Check(req, path, "create", v, Level::kWrite, &retry, EACCES)) {
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
  int flags = (fi->flags & ~(O_NOCTTY | O_NOATIME)) | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
  // Opens without handles: the new descriptor becomes the inode's I/O descriptor (read-write, so
  // it serves the reads that follow; O_APPEND positions come from the kernel with each WRITE).
  if (kernel_open_) flags = (flags & ~(O_ACCMODE | O_APPEND | O_TRUNC)) | O_RDWR;
  UniqueFd fd(::openat(at, name, flags, want));
  if (!fd) {
    if (delta_) delta_->AddUsage(0, -1);
    return (void)fuse_reply_err(req, errno);
  }
  fuse_entry_param e;
  if (int err = RegisterNew(p, dir, name, fd.get(), &e, delta_ ? at : -1, delta_ != nullptr,
                            exact ? kKeepMode : want)) {
    return (void)fuse_reply_err(req, err);
  }
  Inode* n = table_->FromNodeId(e.ino);
  if (kernel_open_) {
    // No handle (fh 0): the kernel would not send RELEASE for it once no_open is on.
    table_->SetIo(n, std::make_shared<UniqueFd>(std::move(fd)), O_RDWR);
    fi->fh = 0;
    fi->keep_cache = 1;
    fuse_reply_create(req, &e, fi);
    return;
  }
  struct stat st;
  fi->keep_cache = ::fstat(fd.get(), &st) == 0 && KeepCache(n, st) ? 1 : 0;
  fi->fh = static_cast<uint64_t>(fd.Release());
  if ((fi->flags & O_ACCMODE) != O_RDONLY) n->open_writers++;
  if (v.level == Level::kAsk) GrantHandle(fi->fh, Level::kWrite);
  if (fuse_reply_create(req, &e, fi) != 0) {
    DropHandle(fi->fh);
    ::close(static_cast<int>(fi->fh));
    if ((fi->flags & O_ACCMODE) != O_RDONLY) n->open_writers--;
  }
}

void PermFs::Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  // Held until the reply: once SetPolicy has swapped, no read judged by the old policy is answered.
  std::shared_lock lock(policy_mu_);
  Inode* n = table_->FromNodeId(ino);
  if (int err = CheckHandle(req, n, "read", Level::kRead, fi->fh)) {
    return (void)fuse_reply_err(req, err);
  }
  auto fd = DataFd(n, fi, /*write=*/false);
  if (!fd.ok()) return (void)fuse_reply_err(req, fd.error().ToErrno());
  // Spliced from the host fd to /dev/fuse when the kernel allows it: no user-space copy.
  fuse_bufvec buf = SingleBuf(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fd->fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

Result<PermFs::DataDescriptor> PermFs::DataFd(Inode* n, const fuse_file_info* fi, bool write) {
  if (const int fd = HandleFd(fi); fd >= 0) return DataDescriptor{fd, nullptr};
  AF_ASSIGN_OR_RETURN(auto io, table_->IoFd(n, write));
  const int fd = io->get();
  return DataDescriptor{fd, std::move(io)};
}

int PermFs::PrepareChange(Inode* n, const fuse_file_info* fi,
                          std::shared_lock<std::shared_mutex>* dlock) {
  if (HandleFd(fi) >= 0) return 0;  // the open copied up already
  *dlock = DeltaShared();
  return delta_ ? CopyUpInode(n, false) : 0;
}

void PermFs::WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off,
                      fuse_file_info* fi) {
  // The fd was opened for writing only after the open check; the kernel refuses WRITE on an fd
  // not open for writing before it reaches us. The policy may have changed since: judged again
  // (revocation), holding policy_mu_ until the reply.
  std::shared_lock lock(policy_mu_);
  Inode* n = table_->FromNodeId(ino);
  if (int err = CheckHandle(req, n, "write", Level::kWrite, fi->fh)) {
    return (void)fuse_reply_err(req, err);
  }
  std::shared_lock<std::shared_mutex> dlock;
  if (int err = PrepareChange(n, fi, &dlock)) return (void)fuse_reply_err(req, err);
  auto data = DataFd(n, fi, /*write=*/true);
  if (!data.ok()) return (void)fuse_reply_err(req, data.error().ToErrno());
  const int fd = data->fd;
  size_t len = fuse_buf_size(in);
  std::unique_lock<std::mutex> qlock;
  struct stat before;
  const bool quota = delta_ && delta_->has_byte_quota();
  if (quota) {
    // Byte quota: the write is cut at the limit (a short write, as a full disk does) or refused
    // with ENOSPC; nothing already written is touched.
    qlock = std::unique_lock(delta_->write_mu());
    if (::fstat(fd, &before) != 0) return (void)fuse_reply_err(req, errno);
    const int64_t max_end = delta_->MaxEnd(before.st_size);
    if (off + static_cast<int64_t>(len) > max_end) {
      if (off >= max_end) return (void)fuse_reply_err(req, ENOSPC);
      len = static_cast<size_t>(max_end - off);
    }
  }
  fuse_bufvec out = SingleBuf(len);
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = fd;
  out.buf[0].pos = off;
  ssize_t res = fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
  if (quota) {
    struct stat after;
    if (::fstat(fd, &after) == 0) delta_->AddUsage(after.st_size - before.st_size, 0);
  }
  if (res < 0) return (void)fuse_reply_err(req, static_cast<int>(-res));
  // O_SYNC/O_DSYNC of the caller's open: our descriptor has neither when the open was the kernel's.
  if (HandleFd(fi) < 0 && (fi->flags & O_DSYNC) != 0 && ::fdatasync(fd) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  fuse_reply_write(req, static_cast<size_t>(res));
}

void PermFs::Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  // Kernel-checked opens have no handle of ours (fh 0, the kernel's no_open default).
  if (HandleFd(fi) < 0) return (void)fuse_reply_err(req, 0);
  DropHandle(fi->fh);  // before the close: the number may be reused at once
  ::close(static_cast<int>(fi->fh));
  if ((fi->flags & O_ACCMODE) != O_RDONLY) table_->FromNodeId(ino)->open_writers--;
  fuse_reply_err(req, 0);
}

void PermFs::Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  // Any descriptor of the object syncs its data; without a handle, a read-only one will do.
  auto data = DataFd(table_->FromNodeId(ino), fi, /*write=*/false);
  if (!data.ok()) return (void)fuse_reply_err(req, data.error().ToErrno());
  int r = datasync ? ::fdatasync(data->fd) : ::fsync(data->fd);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

void PermFs::Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                       fuse_file_info* fi) {
  std::shared_lock lock(policy_mu_);  // until the reply, as READ and WRITE
  Inode* n = table_->FromNodeId(ino);
  if (int err = CheckHandle(req, n, "fallocate", Level::kWrite, fi->fh)) {
    return (void)fuse_reply_err(req, err);
  }
  std::shared_lock<std::shared_mutex> dlock;
  if (int err = PrepareChange(n, fi, &dlock)) return (void)fuse_reply_err(req, err);
  auto data = DataFd(n, fi, /*write=*/true);
  if (!data.ok()) return (void)fuse_reply_err(req, data.error().ToErrno());
  const int fd = data->fd;
  if (delta_ && delta_->has_byte_quota()) {
    std::lock_guard qlock(delta_->write_mu());
    struct stat before, after;
    if (::fstat(fd, &before) != 0) return (void)fuse_reply_err(req, errno);
    if (off + len > before.st_size && off + len > delta_->MaxEnd(before.st_size)) {
      return (void)fuse_reply_err(req, ENOSPC);
    }
    int r = ::fallocate(fd, mode, off, len);
    int e = errno;
    if (::fstat(fd, &after) == 0) delta_->AddUsage(after.st_size - before.st_size, 0);
    return (void)fuse_reply_err(req, r == 0 ? 0 : e);
  }
  int r = ::fallocate(fd, mode, off, len);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

void PermFs::Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
  // SEEK_DATA/SEEK_HOLE tell the file's layout: content, so `read` now.
  std::shared_lock lock(policy_mu_);
  Inode* n = table_->FromNodeId(ino);
  if (int err = CheckHandle(req, n, "lseek", Level::kRead, fi->fh)) {
    return (void)fuse_reply_err(req, err);
  }
  auto data = DataFd(n, fi, /*write=*/false);
  if (!data.ok()) return (void)fuse_reply_err(req, data.error().ToErrno());
  off_t r = ::lseek(data->fd, off, whence);
  if (r < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_lseek(req, r);
}

void PermFs::Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid,
                     fuse_file_info* fi) {
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  const Policy& p = *policy_;
  std::string path = table_->PathOf(n);
  Verdict v = DecideInode(p, n);
  if (int err = Check(req, path, "setattr", v, Level::kView)) return (void)fuse_reply_err(req, err);
  if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    return (void)fuse_reply_err(req, Deny(req, path, "chown", v, EPERM));
  }
  // Every other field (mode, size, times, ctime) is a write. ftruncate on a handle an `ask`
  // decision opened for writing does not ask again.
  if (v.level == Level::kAsk && fi != nullptr && HandleGrant(fi->fh) >= Level::kWrite) {
    v.level = Level::kWrite;
  }
  const Retry retry = [this, ino, a = *attr, valid, has_fi = fi != nullptr,
                       f = fi ? *fi : fuse_file_info{}](fuse_req_t r) mutable {
    Setattr(r, ino, &a, valid, has_fi ? &f : nullptr);
  };
  if (int err = Check(req, path, "setattr", v, Level::kWrite, &retry)) return ReplyErr(req, err);
  auto dlock = DeltaShared();
  if (delta_) {
    if (n == table_->root()) return (void)fuse_reply_err(req, EPERM);
    const bool to_zero = (valid & FUSE_SET_ATTR_SIZE) && attr->st_size == 0;
    if (int err = CopyUpInode(n, to_zero)) return (void)fuse_reply_err(req, err);
  }
  // In delta mode the fh may be the source object: everything goes through the (copied) inode.
  const bool have_fh = HandleFd(fi) >= 0 && n->is_reg() && !delta_;
  const int fh = have_fh ? HandleFd(fi) : -1;
  auto pfd = table_->PathFd(n);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());

  if (valid & FUSE_SET_ATTR_MODE) {
    const mode_t mode = attr->st_mode & 07777 & ~internal::kStrippedModeBits;
    int r;
    if (have_fh) {
      r = ::fchmod(fh, mode);
    } else if (n->is_symlink()) {
      r = -1;
      errno = EOPNOTSUPP;
    } else {
      // chmod on the magic link reaches exactly this object (fchmod refuses O_PATH fds).
      r = ::chmod(ProcFdPath((*pfd)->get()).c_str(), mode);
    }
    if (r != 0) return (void)fuse_reply_err(req, errno);
  }
  if (valid & FUSE_SET_ATTR_SIZE) {
    int r;
    if (have_fh) {
      r = ::ftruncate(fh, attr->st_size);
    } else {
      if (n->is_dir()) return (void)fuse_reply_err(req, EISDIR);
      if (!n->is_reg()) return (void)fuse_reply_err(req, EINVAL);
      auto io = table_->OpenIo(n, O_WRONLY);
      if (!io.ok()) return (void)fuse_reply_err(req, io.error().ToErrno());
      if (delta_) {
        std::lock_guard qlock(delta_->write_mu());
        struct stat before;
        if (::fstat(io->get(), &before) != 0) return (void)fuse_reply_err(req, errno);
        const int64_t grow = attr->st_size - before.st_size;
        if (grow > 0 && delta_->has_byte_quota() && attr->st_size > delta_->MaxEnd(before.st_size)) {
          return (void)fuse_reply_err(req, ENOSPC);
        }
        r = ::ftruncate(io->get(), attr->st_size);
        if (r == 0) delta_->AddUsage(grow, 0);
      } else {
        r = ::ftruncate(io->get(), attr->st_size);
      }
    }
    if (r != 0) return (void)fuse_reply_err(req, errno);
  }
  if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    struct timespec tv[2];
    tv[0].tv_sec = 0;
    tv[1].tv_sec = 0;
    tv[0].tv_nsec = UTIME_OMIT;
    tv[1].tv_nsec = UTIME_OMIT;
    if (valid & FUSE_SET_ATTR_ATIME_NOW) {
      tv[0].tv_nsec = UTIME_NOW;
    } else if (valid & FUSE_SET_ATTR_ATIME) {
      tv[0] = attr->st_atim;
    }
    if (valid & FUSE_SET_ATTR_MTIME_NOW) {
      tv[1].tv_nsec = UTIME_NOW;
    } else if (valid & FUSE_SET_ATTR_MTIME) {
      tv[1] = attr->st_mtim;
    }
    int r = have_fh ? ::futimens(fh, tv) : ::utimensat((*pfd)->get(), "", tv, AT_EMPTY_PATH);
    if (r != 0) return (void)fuse_reply_err(req, errno);
  }
  struct stat st;
  if (::fstat(have_fh ? fh : (*pfd)->get(), &st) != 0) return (void)fuse_reply_err(req, errno);
  Present(p, path, &st, table_->IsUpper(n), v.level);
  HideCheckpointLinks(&st);
  if (delta_) st.st_ino = n->ino;
  SentAttrs(n);
  fuse_reply_attr(req, &st, options_.attr_timeout_s);
}

// Extended attributes. Only user.* exists for the agent: other namespaces read as absent and
// cannot be set (trusted.overlay.*, security.capability would act on the host).
void PermFs::Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (!options_.xattrs) return (void)fuse_reply_err(req, ENOSYS);
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  std::string path = table_->PathOf(n);
  Verdict v = DecideInode(*policy_, n);
  if (int err = Check(req, path, "getxattr", v, Level::kView)) return (void)fuse_reply_err(req, err);
  // Answered without touching the host. Only user.* exists here, so every other namespace (POSIX
  // ACLs, SELinux labels, file capabilities) is "not supported": tools that probe them per file
  // (ls -l asks system.posix_acl_access and security.selinux for every entry) remember that per
  // device and stop asking, instead of paying a FUSE round trip per file that the kernel never
  // caches. The kernel reads a missing security.capability the same way on exec (no capabilities).
  if (!internal::IsUserXattr(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (n->is_symlink()) return (void)fuse_reply_err(req, ENODATA);
  const Retry retry = [this, ino, nm = std::string(name), size](fuse_req_t r) {
    Getxattr(r, ino, nm.c_str(), size);
  };
  if (int err = Check(req, path, "getxattr", v, Level::kRead, &retry)) return ReplyErr(req, err);
  auto pfd = table_->PathFd(n);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  std::string proc = ProcFdPath((*pfd)->get());
  std::vector<char> buf(size);
  ssize_t r = ::getxattr(proc.c_str(), name, size ? buf.data() : nullptr, size);
  if (r < 0) return (void)fuse_reply_err(req, errno);
  if (size == 0) return (void)fuse_reply_xattr(req, static_cast<size_t>(r));
  fuse_reply_buf(req, buf.data(), static_cast<size_t>(r));
}

void PermFs::Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  if (!options_.xattrs) return (void)fuse_reply_err(req, ENOSYS);
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  std::string path = table_->PathOf(n);
  Verdict v = DecideInode(*policy_, n);
  if (int err = Check(req, path, "listxattr", v, Level::kView)) return (void)fuse_reply_err(req, err);
  std::string names;  // NUL-separated user.* names
  if (v.level >= Level::kRead && !n->is_symlink()) {
    auto pfd = table_->PathFd(n);
    if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
    std::string proc = ProcFdPath((*pfd)->get());
    ssize_t len = ::listxattr(proc.c_str(), nullptr, 0);
    if (len < 0) return (void)fuse_reply_err(req, errno);
    std::vector<char> all(static_cast<size_t>(len) + 1);
    len = ::listxattr(proc.c_str(), all.data(), all.size());
    if (len < 0) return (void)fuse_reply_err(req, errno);
    for (size_t i = 0; i < static_cast<size_t>(len);) {
      const char* nm = all.data() + i;
      size_t l = std::strlen(nm);
      if (internal::IsUserXattr(nm)) names.append(nm, l + 1);
      i += l + 1;
    }
  }
  if (size == 0) return (void)fuse_reply_xattr(req, names.size());
  if (size < names.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, names.data(), names.size());
}

void PermFs::Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                      size_t size, int flags) {
  if (!options_.xattrs) return (void)fuse_reply_err(req, ENOSYS);
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  std::string path = table_->PathOf(n);
  Verdict v = DecideInode(*policy_, n);
  if (int err = Check(req, path, "setxattr", v, Level::kView)) return (void)fuse_reply_err(req, err);
  if (!internal::IsUserXattr(name)) return (void)fuse_reply_err(req, Deny(req, path, "setxattr", v, EPERM));
  const Retry retry = [this, ino, nm = std::string(name), val = std::string(value, size),
                       flags](fuse_req_t r) {
    Setxattr(r, ino, nm.c_str(), val.data(), val.size(), flags);
  };
  if (int err = Check(req, path, "setxattr", v, Level::kWrite, &retry)) return ReplyErr(req, err);
  if (n->is_symlink()) return (void)fuse_reply_err(req, EPERM);  // as the kernel does for user.*
  auto dlock = DeltaShared();
  if (delta_ && n != table_->root()) {
    if (int err = CopyUpInode(n, false)) return (void)fuse_reply_err(req, err);
  }
  if (delta_ && n == table_->root()) return (void)fuse_reply_err(req, EPERM);
  auto pfd = table_->PathFd(n);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  int r = ::setxattr(ProcFdPath((*pfd)->get()).c_str(), name, value, size, flags);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

void PermFs::Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  if (!options_.xattrs) return (void)fuse_reply_err(req, ENOSYS);
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  std::string path = table_->PathOf(n);
  Verdict v = DecideInode(*policy_, n);
  if (int err = Check(req, path, "removexattr", v, Level::kView)) return (void)fuse_reply_err(req, err);
  if (!internal::IsUserXattr(name)) {
    return (void)fuse_reply_err(req, Deny(req, path, "removexattr", v, EPERM));
  }
  const Retry retry = [this, ino, nm = std::string(name)](fuse_req_t r) {
    Removexattr(r, ino, nm.c_str());
  };
  if (int err = Check(req, path, "removexattr", v, Level::kWrite, &retry)) {
    return ReplyErr(req, err);
  }
  if (n->is_symlink()) return (void)fuse_reply_err(req, EPERM);
  auto dlock = DeltaShared();
  if (delta_ && n != table_->root()) {
    if (int err = CopyUpInode(n, false)) return (void)fuse_reply_err(req, err);
  }
  if (delta_ && n == table_->root()) return (void)fuse_reply_err(req, EPERM);
  auto pfd = table_->PathFd(n);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  int r = ::removexattr(ProcFdPath((*pfd)->get()).c_str(), name);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

}  // namespace agentfense::fs
