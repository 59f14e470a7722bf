#include "store/safe_open.h"

#include <dirent.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

#include "base/path.h"

namespace agentfense::store {
namespace {

constexpr uint64_t kResolveFlags = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

// glibc 2.36 has no openat2() wrapper.
int SysOpenat2(int dirfd, const char* path, int flags, mode_t mode) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags);
  // The kernel rejects a non-zero mode without O_CREAT/O_TMPFILE (EINVAL).
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = kResolveFlags;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
}

Result<UniqueFd> OpenBeneathWalk(int root_fd, std::string_view rel, int flags, mode_t mode);

Result<UniqueFd> OpenBeneathOpenat2(int root_fd, std::string_view rel, int flags, mode_t mode) {
  std::string path = rel.empty() ? std::string(".") : std::string(rel);
  flags |= O_CLOEXEC | O_NOFOLLOW;
  for (int attempt = 0;; ++attempt) {
    int fd = SysOpenat2(root_fd, path.c_str(), flags, mode);
    if (fd >= 0) {
      UniqueFd out(fd);
      // With O_PATH|O_NOFOLLOW, openat2 returns a final symlink itself even under
      // RESOLVE_NO_SYMLINKS (openat2(2)); we refuse it as everywhere else.
      if (flags & O_PATH) {
        struct stat st;
        if (::fstat(out.get(), &st) != 0) return Error::FromErrno(errno, "fstat");
        if (S_ISLNK(st.st_mode)) return ResolveError(ELOOP, "openat2", rel);
      }
      return out;
    }
    // EAGAIN: a concurrent rename raced the resolution (openat2(2)); retrying is the documented
    // answer. Bounded so that a hostile renamer cannot spin us forever.
    if ((errno == EAGAIN || errno == EINTR) && attempt < 16) continue;
    // ENOTDIR does not say whether the culprit is a symlink (O_DIRECTORY|O_NOFOLLOW on a link)
    // or a file; the walk, equally safe, tells them apart so that both modes report alike.
    if (errno == ENOTDIR) return OpenBeneathWalk(root_fd, rel, flags, mode);
    return ResolveError(errno, "openat2", rel);
  }
}

Result<UniqueFd> OpenBeneathWalk(int root_fd, std::string_view rel, int flags, mode_t mode) {
  std::vector<std::string_view> parts = SplitPath(rel);
  if (parts.empty()) {
    int fd = ::openat(root_fd, ".", flags | O_CLOEXEC, mode);
    if (fd < 0) return ResolveError(errno, "openat", rel);
    return UniqueFd(fd);
  }
  UniqueFd cur;  // invalid while we are still at root_fd (borrowed)
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    std::string comp(parts[i]);
    int base = cur.valid() ? cur.get() : root_fd;
    int fd = ::openat(base, comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      struct stat st;
      // O_PATH|O_NOFOLLOW|O_DIRECTORY on a symlink fails with ENOTDIR; report it as openat2 would.
      if (err == ENOTDIR && ::fstatat(base, comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        err = ELOOP;
      }
      return ResolveError(err, "openat", rel);
    }
    cur.Reset(fd);
  }
  std::string last(parts.back());
  int base = cur.valid() ? cur.get() : root_fd;
  int fd = ::openat(base, last.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    int err = errno;
    struct stat st;
    if (err == ENOTDIR && ::fstatat(base, last.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode)) {
      err = ELOOP;
    }
    return ResolveError(err, "openat", rel);
  }
  UniqueFd out(fd);
  // O_PATH|O_NOFOLLOW opens a final symlink itself instead of failing; openat2 with
  // RESOLVE_NO_SYMLINKS refuses it, and so do we.
  if (flags & O_PATH) {
    struct stat st;
    if (::fstat(out.get(), &st) != 0) return Error::FromErrno(errno, "fstat");
    if (S_ISLNK(st.st_mode)) return ResolveError(ELOOP, "openat", rel);
  }
  return out;
}

}  // namespace

Error ResolveError(int err, std::string_view what, std::string_view rel) {
  std::string where = "'" + std::string(rel) + "'";
  switch (err) {
    case ELOOP:
      return Error(ErrorCode::kInvalidArgument,
                   "path " + where + " is or passes through a symbolic link", err);
    case EXDEV:  // RESOLVE_BENEATH: the path would leave the tree
      return Error(ErrorCode::kInvalidArgument, "path " + where + " escapes the codebase", err);
    case ENOTDIR:
      return Error(ErrorCode::kFailedPrecondition,
                   "path " + where + " passes through something that is not a directory", err);
    case ENOENT:
      return Error(ErrorCode::kNotFound, "path " + where + " does not exist", err);
    default:
      return Error::FromErrno(err, std::string(what) + " " + where);
  }
}

ResolveMode ProbeResolveMode() {
  // "." beneath "/": relative on purpose (RESOLVE_BENEATH rejects absolute paths with EXDEV) and
  // independent of the working directory.
  int root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return ResolveMode::kWalk;
  UniqueFd root_fd(root);
  int fd = SysOpenat2(root_fd.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd >= 0) {
    ::close(fd);
    return ResolveMode::kOpenat2;
  }
  // ENOSYS: kernel < 5.6. EPERM: a seccomp filter (container runtimes) that denies it.
  return (errno == ENOSYS || errno == EPERM) ? ResolveMode::kWalk : ResolveMode::kOpenat2;
}

Result<UniqueFd> OpenBeneath(int root_fd, std::string_view rel, int flags, mode_t mode,
                             ResolveMode resolve) {
  if (resolve == ResolveMode::kOpenat2) {
    auto r = OpenBeneathOpenat2(root_fd, rel, flags, mode);
    // A kernel that lost openat2 between the probe and now (seccomp applied later): fall back.
    if (r.ok() || r.error().sys_errno() != ENOSYS) return r;
  }
  return OpenBeneathWalk(root_fd, rel, flags, mode);
}

Result<UniqueFd> MakeDirsBeneath(int root_fd, std::string_view rel_dir) {
  UniqueFd cur;
  {
    int fd = ::openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Error::FromErrno(errno, "openat .");
    cur.Reset(fd);
  }
  std::string walked;
  for (std::string_view part : SplitPath(rel_dir)) {
    std::string comp(part);
    if (!walked.empty()) walked += '/';
    walked += comp;
    for (int attempt = 0;; ++attempt) {
      int fd = ::openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) {
        cur.Reset(fd);
        break;
      }
      int err = errno;
      if (err == ENOENT && attempt < 4) {
        // mkdirat never follows a symlink in the final component: an existing link gives EEXIST,
        // and the next openat(O_NOFOLLOW|O_DIRECTORY) then refuses it.
        if (::mkdirat(cur.get(), comp.c_str(), 0755) != 0 && errno != EEXIST) {
          return Error::FromErrno(errno, "mkdirat '" + walked + "'");
        }
        continue;
      }
      struct stat st;
      if (err == ENOTDIR && ::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) return ResolveError(ELOOP, "openat", walked);
        return Error(ErrorCode::kFailedPrecondition,
                     "'" + walked + "' exists and is not a directory", ENOTDIR);
      }
      return ResolveError(err, "openat", walked);
    }
  }
  return cur;
}

namespace {

// Depth-first traversal of everything beneath the directory `start`, without recursion and with
// at most three fds open: the current directory, a dup for readdir, and the parent while climbing
// back with "..". The climb is checked against the (st_dev, st_ino) recorded on the way down, so a
// concurrent rename cannot walk us out of the tree. With `remove`, entries are unlinked and
// emptied subdirectories removed on the way back up; `start` itself is left (empty).
Status Traverse(UniqueFd start, bool remove, Usage* usage) {
  struct Frame {
    std::string name;
    dev_t dev;
    ino_t ino;
    std::vector<std::string> subdirs;
    bool scanned = false;
  };
  struct stat st;
  if (::fstat(start.get(), &st) != 0) return Error::FromErrno(errno, "fstat");
  UniqueFd cur = std::move(start);
  std::vector<Frame> stack;
  stack.push_back(Frame{"", st.st_dev, st.st_ino, {}, false});
  int rescans = 0;
  constexpr int kMaxRescans = 1000;  // a concurrent writer refilling directories forever

  while (true) {
    Frame& top = stack.back();
    if (!top.scanned) {
      int dup_fd = ::fcntl(cur.get(), F_DUPFD_CLOEXEC, 0);
      if (dup_fd < 0) return Error::FromErrno(errno, "dup");
      DIR* dir = ::fdopendir(dup_fd);
      if (dir == nullptr) {
        ::close(dup_fd);
        return Error::FromErrno(errno, "fdopendir");
      }
      ::rewinddir(dir);  // the dup shares its offset with cur, which may have been read before
      Status failed = OkStatus();
      while (true) {
        errno = 0;
        struct dirent* de = ::readdir(dir);  // NOLINT(concurrency-mt-unsafe): DIR is ours alone
        if (de == nullptr) {
          if (errno != 0) failed = Error::FromErrno(errno, "readdir");
          break;
        }
        std::string_view n = de->d_name;
        if (n == "." || n == "..") continue;
        struct stat est {};
        bool have_stat = false;
        if (de->d_type == DT_UNKNOWN || (usage && de->d_type == DT_REG)) {
          if (::fstatat(cur.get(), de->d_name, &est, AT_SYMLINK_NOFOLLOW) != 0) continue;
          have_stat = true;
        }
        bool is_dir = have_stat ? S_ISDIR(est.st_mode) : de->d_type == DT_DIR;
        if (is_dir) {
          top.subdirs.emplace_back(n);
          continue;
        }
        if (remove && ::unlinkat(cur.get(), de->d_name, 0) != 0) {
          if (errno == EISDIR) {
            top.subdirs.emplace_back(n);  // became a directory since readdir
          } else if (errno != ENOENT) {
            failed = Error::FromErrno(errno, "unlinkat " + std::string(n));
            break;
          }
          continue;
        }
        if (usage) {
          ++usage->files;
          if (have_stat && S_ISREG(est.st_mode)) usage->bytes += est.st_size;
        }
      }
      ::closedir(dir);
      AF_RETURN_IF_ERROR(failed);
      top.scanned = true;
    }
    if (!top.subdirs.empty()) {
      std::string child = std::move(top.subdirs.back());
      top.subdirs.pop_back();
      int fd = ::openat(cur.get(), child.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        if (errno == ENOENT) continue;
        if (errno == ENOTDIR || errno == ELOOP) {  // swapped for a file or a link meanwhile
          if (remove && ::unlinkat(cur.get(), child.c_str(), 0) != 0 && errno != ENOENT) {
            return Error::FromErrno(errno, "unlinkat " + child);
          }
          continue;
        }
        return Error::FromErrno(errno, "openat " + child);
      }
      UniqueFd next(fd);
      if (::fstat(next.get(), &st) != 0) return Error::FromErrno(errno, "fstat");
      stack.push_back(Frame{std::move(child), st.st_dev, st.st_ino, {}, false});
      cur = std::move(next);
      continue;
    }
    if (stack.size() == 1) return OkStatus();
    int up_fd = ::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (up_fd < 0) return Error::FromErrno(errno, "openat ..");
    UniqueFd up(up_fd);
    if (::fstat(up.get(), &st) != 0) return Error::FromErrno(errno, "fstat");
    const Frame& parent = stack[stack.size() - 2];
    if (st.st_dev != parent.dev || st.st_ino != parent.ino) {
      return Error(ErrorCode::kAborted, "tree moved during traversal");
    }
    if (remove && ::unlinkat(up.get(), top.name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      if (errno != ENOTEMPTY || ++rescans > kMaxRescans) {
        return Error::FromErrno(errno, "rmdir " + top.name);
      }
      top.scanned = false;  // entries appeared (or readdir skipped some): scan again
      continue;
    }
    stack.pop_back();
    cur = std::move(up);
  }
}

}  // namespace

Result<std::vector<std::string>> ReadDirNames(UniqueFd fd) {
  DIR* dir = ::fdopendir(fd.get());
  if (dir == nullptr) return Error::FromErrno(errno, "fdopendir");
  (void)fd.Release();  // now owned by `dir`
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    struct dirent* de = ::readdir(dir);  // NOLINT(concurrency-mt-unsafe): DIR is ours alone
    if (de == nullptr) {
      int err = errno;
      ::closedir(dir);
      if (err != 0) return Error::FromErrno(err, "readdir");
      return names;
    }
    std::string_view n = de->d_name;
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
}

Result<Usage> CountTree(int dir_fd) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno(errno, "openat .");
  Usage usage;
  AF_RETURN_IF_ERROR(Traverse(UniqueFd(fd), /*remove=*/false, &usage));
  return usage;
}

Status RemoveTree(int parent_fd, const std::string& name, Usage* removed) {
  for (int attempt = 0;; ++attempt) {
    int fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return OkStatus();
      if (errno == ENOTDIR || errno == ELOOP) {  // not a directory after all: one unlink
        struct stat st;
        bool have = ::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (::unlinkat(parent_fd, name.c_str(), 0) != 0) {
          if (errno == ENOENT) return OkStatus();
          return Error::FromErrno(errno, "unlinkat " + name);
        }
        if (removed) {
          ++removed->files;
          if (have && S_ISREG(st.st_mode)) removed->bytes += st.st_size;
        }
        return OkStatus();
      }
      return Error::FromErrno(errno, "openat " + name);
    }
    AF_RETURN_IF_ERROR(Traverse(UniqueFd(fd), /*remove=*/true, removed));
    if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) {
      return OkStatus();
    }
    if (errno != ENOTEMPTY || attempt >= 100) return Error::FromErrno(errno, "rmdir " + name);
  }
}

}  // namespace agentfense::store
