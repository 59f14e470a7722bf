// Checkpoints of a delta (docs/CHECKPOINTS.md): named snapshots of upper/ and of the deletion
// records that cost no copy of unchanged data.
//
//   <delta_dir>/checkpoints/<name>/upper/           directories copied (mode, owner, times, user
//                                                   xattrs), every other object a hard link of
//                                                   the upper object it was
//   <delta_dir>/checkpoints/<name>/deleted.journal  the deletion records, compacted
//   <delta_dir>/checkpoints/<name>/meta             "key value" lines: name, time, counts
//   <delta_dir>/checkpoints/.new-<name>/            a checkpoint being taken (renamed into place)
//   <delta_dir>/checkpoints/.del-<name>/            a checkpoint being deleted
//   <delta_dir>/restore.pending                     the name of a checkpoint being restored
//
// An upper object that a checkpoint links is *frozen*: before anything changes it (content,
// mode, times, xattrs, a new hard link) PermFs replaces it with a private copy (Unshare), so a
// checkpoint never changes after it was taken. Two exceptions are copied instead of linked when
// the checkpoint is taken: a regular file open for writing through the mount (its writer would
// change the checkpoint), and an object the agent gave several names (hard links) in upper/ (a
// frozen object has exactly one upper name, so unsharing it never has to find others).
//
// Every host operation is fd-relative on directories of ours: names come from getdents (one
// component each), objects are opened with O_NOFOLLOW, links made without following, so no
// symlink the agent planted is ever followed and nothing outside the delta is touched.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <sstream>

#include "base/log.h"
#include "base/path.h"
#include "fs/delta.h"
#include "fs/delta_internal.h"
#include "fs/host_handle.h"

namespace agentfense::fs {

using internal::CopyData;
using internal::CopyUserXattrs;
using internal::Entry;
using internal::RemoveContents;
using internal::TempName;
using internal::Walk;

namespace {

constexpr const char* kCheckpointsDir = "checkpoints";
constexpr const char* kUpper = "upper";
constexpr const char* kJournal = "deleted.journal";
constexpr const char* kMeta = "meta";
constexpr const char* kNewPrefix = ".new-";
constexpr const char* kDelPrefix = ".del-";
constexpr const char* kRestorePending = "restore.pending";
constexpr int kMaxDepth = 4096;

using Key = std::pair<dev_t, ino_t>;
Key KeyOf(const struct stat& st) { return {st.st_dev, st.st_ino}; }

int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

Error Errno(int e, const std::string& what) { return Error::FromErrno(e, what); }

// The entries of directory `dir` (borrowed) with their lstat, sorted by name.
Result<std::vector<std::pair<std::string, struct stat>>> List(int dir) {
  int fd = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "open directory");
  DIR* dp = ::fdopendir(fd);
  if (dp == nullptr) {
    int e = errno;
    ::close(fd);
    return Errno(e, "fdopendir");
  }
  std::vector<std::pair<std::string, struct stat>> out;
  while (dirent* de = ::readdir(dp)) {
    if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
    struct stat st;
    if (::fstatat(::dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    out.emplace_back(de->d_name, st);
  }
  ::closedir(dp);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

Result<UniqueFd> OpenDir(int dir, const std::string& name) {
  UniqueFd fd(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Errno(errno, "open directory " + name);
  return fd;
}

// Mode, owner, user xattrs (exactly: extra ones removed) and times of directory `from` onto `to`.
// Times last: creating entries in `to` changed its mtime.
void CopyDirMeta(int from, int to, const struct stat& st) {
  (void)::fchown(to, st.st_uid, st.st_gid);
  (void)::fchmod(to, st.st_mode & 07777);
  const std::string dst = ProcFdPath(to);
  ssize_t len = ::listxattr(dst.c_str(), nullptr, 0);
  if (len > 0) {
    std::vector<char> names(static_cast<size_t>(len) + 1);
    len = ::listxattr(dst.c_str(), names.data(), names.size());
    const std::string src = ProcFdPath(from);
    for (ssize_t i = 0; i < len;) {
      const char* n = names.data() + i;
      i += static_cast<ssize_t>(std::strlen(n)) + 1;
      if (std::strncmp(n, "user.", 5) == 0 && ::getxattr(src.c_str(), n, nullptr, 0) < 0) {
        (void)::removexattr(dst.c_str(), n);
      }
    }
  }
  CopyUserXattrs(from, to);
  struct timespec tv[2] = {st.st_atim, st.st_mtim};
  (void)::futimens(to, tv);
}

// A private copy of the non-directory `src_name` of `src_dir` (`st` its lstat, checked again) as
// `dst_name` in `dst_dir`: same content (none when `empty`), owner, mode, times and user xattrs.
// Regular files appear complete (O_TMPFILE, then linked). Returns the copy's O_PATH fd.
Result<UniqueFd> CopyObject(int src_dir, const std::string& src_name, const struct stat& st,
                            int dst_dir, const std::string& dst_name, bool empty) {
  struct timespec tv[2] = {st.st_atim, st.st_mtim};
  if (S_ISREG(st.st_mode)) {
    UniqueFd in(::openat(src_dir, src_name.c_str(),
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat ist;
    if (!in || ::fstat(in.get(), &ist) != 0) return Errno(errno, "open " + src_name);
    if (KeyOf(ist) != KeyOf(st)) return Error(ErrorCode::kAborted, src_name + " changed", ESTALE);
    UniqueFd tmp(::openat(dst_dir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!tmp) return Errno(errno, "O_TMPFILE");
    if (!empty) AF_RETURN_IF_ERROR(CopyData(in.get(), tmp.get()));
    (void)::fchown(tmp.get(), st.st_uid, st.st_gid);
    (void)::fchmod(tmp.get(), st.st_mode & 07777);
    CopyUserXattrs(in.get(), tmp.get());
    if (!empty) (void)::futimens(tmp.get(), tv);
    if (::linkat(tmp.get(), "", dst_dir, dst_name.c_str(), AT_EMPTY_PATH) != 0) {
      return Errno(errno, "link the copy of " + src_name);
    }
    // The exact object made above, whatever happens to the name meanwhile.
    UniqueFd fd(::open(ProcFdPath(tmp.get()).c_str(), O_PATH | O_CLOEXEC));
    if (!fd) return Errno(errno, "reopen the copy of " + src_name);
    return fd;
  }
  if (S_ISLNK(st.st_mode)) {
    char buf[PATH_MAX + 1];
    ssize_t len = ::readlinkat(src_dir, src_name.c_str(), buf, sizeof(buf) - 1);
    if (len < 0) return Errno(errno, "readlink " + src_name);
    buf[len] = '\0';
    if (::symlinkat(buf, dst_dir, dst_name.c_str()) != 0) return Errno(errno, "symlink");
  } else if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
    if (::mknodat(dst_dir, dst_name.c_str(), st.st_mode & (S_IFMT | 0777), 0) != 0) {
      return Errno(errno, "mknod");
    }
  } else {
    return Error(ErrorCode::kPermissionDenied, "device nodes are never copied", EPERM);
  }
  UniqueFd fd(::openat(dst_dir, dst_name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Errno(errno, "open the copy of " + src_name);
  (void)::fchownat(fd.get(), "", st.st_uid, st.st_gid, AT_EMPTY_PATH);
  if (!S_ISLNK(st.st_mode)) (void)::chmod(ProcFdPath(fd.get()).c_str(), st.st_mode & 07777);
  (void)::utimensat(dst_dir, dst_name.c_str(), tv, AT_SYMLINK_NOFOLLOW);
  return fd;
}

// Removes `name` of `dir` (a directory with everything beneath it), never following a link.
void RemoveEntry(int dir, const std::string& name, const struct stat& st) {
  if (S_ISDIR(st.st_mode)) {
    if (auto sub = OpenDir(dir, name); sub.ok()) RemoveContents(sub->get());
    (void)::unlinkat(dir, name.c_str(), AT_REMOVEDIR);
  } else {
    (void)::unlinkat(dir, name.c_str(), 0);
  }
}

Status WriteFileAt(int dir, const std::string& name, const std::string& data, bool sync) {
  UniqueFd fd(::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                       0600));
  if (!fd) return Errno(errno, "create " + name);
  if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
    return Errno(errno, "write " + name);
  }
  if (sync && ::fsync(fd.get()) != 0) return Errno(errno, "fsync " + name);
  return OkStatus();
}

Result<std::string> ReadFileAt(int dir, const std::string& name) {
  UniqueFd fd(::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Errno(errno, "open " + name);
  return internal::ReadAll(fd.get(), name);
}

std::string EncodeMeta(const CheckpointInfo& i, bool shared_names) {
  std::ostringstream o;
  o << "name " << i.name << "\ncreated_ns " << i.created_ns << "\nfiles " << i.files << "\ndirs "
    << i.dirs << "\nbytes " << i.bytes << "\ndeletions " << i.deletions << "\nshared_names "
    << (shared_names ? 1 : 0) << "\n";
  return o.str();
}

// Unknown keys are skipped (later versions may add some).
CheckpointInfo DecodeMeta(const std::string& text, bool* shared_names) {
  CheckpointInfo i;
  std::istringstream in(text);
  std::string key;
  while (in >> key) {
    if (key == "name") {
      in >> i.name;
    } else {
      int64_t v = 0;
      in >> v;
      if (key == "created_ns") i.created_ns = v;
      if (key == "files") i.files = v;
      if (key == "dirs") i.dirs = v;
      if (key == "bytes") i.bytes = v;
      if (key == "deletions") i.deletions = v;
      if (key == "shared_names" && shared_names != nullptr) *shared_names = v != 0;
    }
  }
  return i;
}

// Taking a checkpoint: a copy of upper/'s directory tree whose other objects are links.
struct Cloner {
  const BusyFn* busy = nullptr;
  const std::function<bool(const Key&)>* frozen = nullptr;
  std::unordered_map<Key, UniqueFd, DevInoHash> copies;  // agent-linked object → its copy
  std::vector<std::pair<Key, int64_t>> linked;                  // one per name made (key, size)
  CheckpointInfo info;
  int64_t copied_bytes = 0;
  int64_t copied_objects = 0;
  bool shared_names = false;

  Status Dir(int src, int dst, int depth) {
    if (depth > kMaxDepth) return Error(ErrorCode::kFailedPrecondition, "the delta is too deep");
    AF_ASSIGN_OR_RETURN(auto entries, List(src));
    for (const auto& [name, st] : entries) {
      if (S_ISDIR(st.st_mode)) {
        if (::mkdirat(dst, name.c_str(), 0700) != 0) return Errno(errno, "mkdir " + name);
        AF_ASSIGN_OR_RETURN(UniqueFd s, OpenDir(src, name));
        AF_ASSIGN_OR_RETURN(UniqueFd d, OpenDir(dst, name));
        AF_RETURN_IF_ERROR(Dir(s.get(), d.get(), depth + 1));
        CopyDirMeta(s.get(), d.get(), st);
        info.dirs++;
        continue;
      }
      AF_RETURN_IF_ERROR(Object(src, dst, name, st));
      info.files++;
      if (S_ISREG(st.st_mode)) info.bytes += st.st_size;
    }
    return OkStatus();
  }

  Status Object(int src, int dst, const std::string& name, const struct stat& st) {
    const Key key = KeyOf(st);
    const bool writing = S_ISREG(st.st_mode) && *busy && (*busy)(st);
    if (!writing && (st.st_nlink == 1 || (*frozen)(key))) {
      if (::linkat(src, name.c_str(), dst, name.c_str(), 0) != 0) {
        return Errno(errno, "link " + name);
      }
      linked.emplace_back(key, S_ISREG(st.st_mode) ? st.st_size : 0);
      return OkStatus();
    }
    if (!writing) {
      // Several names in upper/: one copy, linked under each of them.
      shared_names = true;
      if (auto it = copies.find(key); it != copies.end()) {
        if (::linkat(AT_FDCWD, ProcFdPath(it->second.get()).c_str(), dst, name.c_str(),
                     AT_SYMLINK_FOLLOW) != 0) {
          return Errno(errno, "link " + name);
        }
        struct stat cst;
        if (::fstat(it->second.get(), &cst) == 0) {
          linked.emplace_back(KeyOf(cst), S_ISREG(cst.st_mode) ? cst.st_size : 0);
        }
        return OkStatus();
      }
    }
    AF_ASSIGN_OR_RETURN(UniqueFd copy, CopyObject(src, name, st, dst, name, false));
    struct stat cst;
    if (::fstat(copy.get(), &cst) != 0) return Errno(errno, "stat the copy of " + name);
    linked.emplace_back(KeyOf(cst), S_ISREG(cst.st_mode) ? cst.st_size : 0);
    copied_objects++;
    if (S_ISREG(cst.st_mode)) copied_bytes += cst.st_size;
    if (!writing) copies.emplace(key, std::move(copy));
    return OkStatus();
  }
};

// Restoring: upper/ made equal to a checkpoint's tree, keeping what they already share.
struct Syncer {
  // Objects with several names in the checkpoint (agent hard links): count, and the private copy
  // made for them in upper/.
  std::unordered_map<Key, int, DevInoHash> names;
  std::unordered_map<Key, UniqueFd, DevInoHash> copies;
  std::vector<std::string>* touched = nullptr;

  bool Multi(const struct stat& st) const {
    auto it = names.find(KeyOf(st));
    return it != names.end() && it->second > 1;
  }

  Status Create(int ckpt, int upper, const std::string& path, const std::string& name,
                const struct stat& st, int depth) {
    if (S_ISDIR(st.st_mode)) {
      if (::mkdirat(upper, name.c_str(), 0700) != 0) return Errno(errno, "mkdir " + path);
      AF_ASSIGN_OR_RETURN(UniqueFd c, OpenDir(ckpt, name));
      AF_ASSIGN_OR_RETURN(UniqueFd u, OpenDir(upper, name));
      AF_RETURN_IF_ERROR(Dir(c.get(), u.get(), path, depth + 1));
      CopyDirMeta(c.get(), u.get(), st);
      return OkStatus();
    }
    if (!Multi(st)) {
      if (::linkat(ckpt, name.c_str(), upper, name.c_str(), 0) != 0) {
        return Errno(errno, "link " + path);
      }
      return OkStatus();
    }
    if (auto it = copies.find(KeyOf(st)); it != copies.end()) {
      // The copy's magic link names exactly that object (no capability needed, nothing resolved).
      if (::linkat(AT_FDCWD, ProcFdPath(it->second.get()).c_str(), upper, name.c_str(),
                   AT_SYMLINK_FOLLOW) != 0) {
        return Errno(errno, "link " + path);
      }
      return OkStatus();
    }
    AF_ASSIGN_OR_RETURN(UniqueFd copy, CopyObject(ckpt, name, st, upper, name, false));
    copies.emplace(KeyOf(st), std::move(copy));
    return OkStatus();
  }

  Status Dir(int ckpt, int upper, const std::string& path, int depth) {
    if (depth > kMaxDepth) return Error(ErrorCode::kFailedPrecondition, "the checkpoint is too deep");
    AF_ASSIGN_OR_RETURN(auto want, List(ckpt));
    AF_ASSIGN_OR_RETURN(auto have, List(upper));
    std::set<std::string> wanted;
    for (const auto& [name, st] : want) wanted.insert(name);
    std::map<std::string, struct stat> had(have.begin(), have.end());
    for (const auto& [name, st] : have) {
      if (wanted.count(name) != 0) continue;
      RemoveEntry(upper, name, st);
      touched->push_back(JoinWorkspacePath(path, name));
    }
    for (const auto& [name, cst] : want) {
      const std::string child = JoinWorkspacePath(path, name);
      auto it = had.find(name);
      if (it != had.end()) {
        const struct stat& ust = it->second;
        if (S_ISDIR(cst.st_mode) && S_ISDIR(ust.st_mode)) {
          AF_ASSIGN_OR_RETURN(UniqueFd c, OpenDir(ckpt, name));
          AF_ASSIGN_OR_RETURN(UniqueFd u, OpenDir(upper, name));
          AF_RETURN_IF_ERROR(Dir(c.get(), u.get(), child, depth + 1));
          CopyDirMeta(c.get(), u.get(), cst);
          continue;
        }
        if (!S_ISDIR(cst.st_mode) && KeyOf(cst) == KeyOf(ust) && !Multi(cst)) continue;  // shared
        RemoveEntry(upper, name, ust);
      }
      touched->push_back(child);
      AF_RETURN_IF_ERROR(Create(ckpt, upper, child, name, cst, depth));
    }
    return OkStatus();
  }
};

// One state of the workspace for a diff: an upper tree and deletion records.
struct State {
  UniqueFd root;  // the upper tree (borrowed data: ours)
  std::map<std::string, struct stat> upper;
  std::set<std::string> deleted;

  bool Hidden(const std::string& path) const {
    for (std::string p = path; p != "/"; p = ParentPath(p)) {
      if (deleted.count(p) != 0) return true;
    }
    return false;
  }
};

struct Seen {
  struct stat st;
  int root = -1;  // the tree it is in (upper of a state, or the source)
};

std::optional<Seen> ViewOf(const State& s, const std::string& path, int lower_root) {
  if (auto it = s.upper.find(path); it != s.upper.end()) return Seen{it->second, s.root.get()};
  if (s.Hidden(path)) return std::nullopt;
  auto fd = OpenBeneath(lower_root, path, O_PATH | O_NOFOLLOW);
  struct stat st;
  if (!fd.ok() || ::fstat(fd->get(), &st) != 0) return std::nullopt;
  return Seen{st, lower_root};
}

std::string LinkTarget(int root, const std::string& path) {
  auto fd = OpenBeneath(root, path, O_PATH | O_NOFOLLOW);
  if (!fd.ok()) return {};
  char buf[PATH_MAX + 1];
  ssize_t len = ::readlinkat(fd->get(), "", buf, sizeof(buf) - 1);
  return len < 0 ? std::string() : std::string(buf, static_cast<size_t>(len));
}

// Whether the object the workspace shows at `path` differs between two states. Decided like
// rsync's quick check: type, mode, owner, size and mtime (symlinks: their target); contents are
// not read. Directories differ only by type, mode and owner (their entries are compared apart).
bool Differs(const Seen& a, const Seen& b, const std::string& path) {
  if (KeyOf(a.st) == KeyOf(b.st)) return false;
  if ((a.st.st_mode & S_IFMT) != (b.st.st_mode & S_IFMT)) return true;
  if ((a.st.st_mode & 07777) != (b.st.st_mode & 07777) || a.st.st_uid != b.st.st_uid ||
      a.st.st_gid != b.st.st_gid) {
    return true;
  }
  if (S_ISDIR(a.st.st_mode)) return false;
  if (S_ISLNK(a.st.st_mode)) return LinkTarget(a.root, path) != LinkTarget(b.root, path);
  return a.st.st_size != b.st.st_size || a.st.st_mtim.tv_sec != b.st.st_mtim.tv_sec ||
         a.st.st_mtim.tv_nsec != b.st.st_mtim.tv_nsec;
}

}  // namespace

Status ValidateCheckpointName(std::string_view name) {
  auto bad = [](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "checkpoint name: " + why);
  };
  if (name.empty()) return bad("must not be empty");
  if (name.size() > kMaxCheckpointName) {
    return bad("longer than " + std::to_string(kMaxCheckpointName) + " bytes");
  }
  for (char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '.' && c != '_' && c != '-') {
      return bad("only letters, digits, '.', '_' and '-' are allowed");
    }
  }
  const char c = name[0];
  if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
    return bad("must start with a letter or a digit");
  }
  return OkStatus();
}

Status DeltaStore::OpenCheckpoints() {
  if (::mkdirat(dir_fd_.get(), kCheckpointsDir, 0700) != 0 && errno != EEXIST) {
    return Errno(errno, "mkdir " + dir_ + "/checkpoints");
  }
  AF_ASSIGN_OR_RETURN(checkpoints_, OpenDir(dir_fd_.get(), kCheckpointsDir));
  AF_ASSIGN_OR_RETURN(auto entries, List(checkpoints_.get()));
  HeldMap held;
  int64_t dirs = 0;
  for (const auto& [name, st] : entries) {
    if (name.rfind(kNewPrefix, 0) == 0 || name.rfind(kDelPrefix, 0) == 0) {
      RemoveEntry(checkpoints_.get(), name, st);  // an interrupted create or delete
      continue;
    }
    if (!S_ISDIR(st.st_mode) || !ValidateCheckpointName(name).ok()) continue;
    auto up = OpenBeneath(checkpoints_.get(), "/" + name + "/" + kUpper, O_RDONLY | O_DIRECTORY);
    if (!up.ok()) continue;
    std::vector<Entry> all;
    Walk(up->get(), "/", &all);
    dirs++;
    for (const auto& e : all) {
      if (S_ISDIR(e.st.st_mode)) {
        dirs++;
        continue;
      }
      Held& h = held[KeyOf(e.st)];
      h.names++;
      if (S_ISREG(e.st.st_mode)) h.size = e.st.st_size;
    }
  }
  {
    std::lock_guard lock(mu_);
    frozen_ = std::move(held);
    ckpt_dirs_ = dirs;
  }
  auto pending = ReadFileAt(dir_fd_.get(), kRestorePending);
  if (pending.ok()) {
    std::string name = *pending;
    while (!name.empty() && name.back() == '\n') name.pop_back();
    AF_LOG_INFO("delta {}: completing the interrupted restore of checkpoint {}", dir_, name);
    std::vector<std::string> touched;
    AF_RETURN_IF_ERROR(FinishRestore(name, &touched));
  }
  return OkStatus();
}

Result<UniqueFd> DeltaStore::OpenCheckpoint(const std::string& name) const {
  AF_RETURN_IF_ERROR(ValidateCheckpointName(name));
  UniqueFd fd(::openat(checkpoints_.get(), name.c_str(),
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return Error(ErrorCode::kNotFound, "no checkpoint named " + name);
    return Errno(errno, "open checkpoint " + name);
  }
  return fd;
}

bool DeltaStore::Frozen(dev_t dev, ino_t ino) const {
  std::lock_guard lock(mu_);
  return frozen_.count({dev, ino}) != 0;
}

nlink_t DeltaStore::CheckpointLinks(dev_t dev, ino_t ino) const {
  std::lock_guard lock(mu_);
  auto it = frozen_.find({dev, ino});
  return it == frozen_.end() ? 0 : it->second.names;
}

Result<CheckpointInfo> DeltaStore::CreateCheckpoint(const std::string& name, size_t max_count,
                                                    const BusyFn& busy) {
  AF_RETURN_IF_ERROR(ValidateCheckpointName(name));
  AF_ASSIGN_OR_RETURN(auto entries, List(checkpoints_.get()));
  size_t count = 0;
  for (const auto& [n, st] : entries) {
    if (n == name) return Error(ErrorCode::kAlreadyExists, "a checkpoint named " + name + " exists");
    if (n[0] != '.') count++;
  }
  if (count >= max_count) {
    return Error(ErrorCode::kResourceExhausted,
                 "this sandbox already has " + std::to_string(count) +
                     " checkpoints (the most it may keep); delete some first");
  }
  const std::string tmp = kNewPrefix + name;
  struct stat dir_st{};
  dir_st.st_mode = S_IFDIR;
  auto cleanup = [&] { RemoveEntry(checkpoints_.get(), tmp, dir_st); };
  cleanup();  // left by a create that failed to clean up
  if (::mkdirat(checkpoints_.get(), tmp.c_str(), 0700) != 0) return Errno(errno, "mkdir " + tmp);
  Cloner c;
  std::function<bool(const Key&)> frozen = [this](const Key& k) {
    std::lock_guard lock(mu_);
    return frozen_.count(k) != 0;
  };
  c.busy = &busy;
  c.frozen = &frozen;
  c.info.name = name;
  c.info.created_ns = NowNs();
  std::set<std::string> deleted;
  {
    std::lock_guard lock(mu_);
    deleted = deleted_;
  }
  c.info.deletions = static_cast<int64_t>(deleted.size());
  Status built = [&]() -> Status {
    AF_ASSIGN_OR_RETURN(UniqueFd dir, OpenDir(checkpoints_.get(), tmp));
    if (::mkdirat(dir.get(), kUpper, 0700) != 0) return Errno(errno, "mkdir upper");
    AF_ASSIGN_OR_RETURN(UniqueFd up, OpenDir(dir.get(), kUpper));
    AF_RETURN_IF_ERROR(c.Dir(upper_.get(), up.get(), 0));
    struct stat rst;
    if (::fstat(upper_.get(), &rst) == 0) CopyDirMeta(upper_.get(), up.get(), rst);
    AF_RETURN_IF_ERROR(WriteFileAt(dir.get(), kJournal, internal::EncodeJournal(deleted), false));
    AF_RETURN_IF_ERROR(WriteFileAt(dir.get(), kMeta, EncodeMeta(c.info, c.shared_names), false));
    std::lock_guard lock(mu_);
    const int64_t more_inodes = c.info.dirs + 1 + c.copied_objects;
    if ((quota_inodes_ > 0 && static_cast<uint64_t>(inodes_ + more_inodes) > quota_inodes_) ||
        (quota_bytes_ > 0 && static_cast<uint64_t>(bytes_ + c.copied_bytes) > quota_bytes_)) {
      return Error(ErrorCode::kResourceExhausted,
                   "the checkpoint's own objects would pass the delta quota");
    }
    return OkStatus();
  }();
  if (!built.ok()) {
    cleanup();
    return std::move(built).error().With("taking checkpoint " + name);
  }
  if (::renameat(checkpoints_.get(), tmp.c_str(), checkpoints_.get(), name.c_str()) != 0) {
    int e = errno;
    cleanup();
    if (e == EEXIST || e == ENOTEMPTY) {
      return Error(ErrorCode::kAlreadyExists, "a checkpoint named " + name + " exists");
    }
    return Errno(e, "rename checkpoint " + name);
  }
  (void)::fsync(checkpoints_.get());
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, size] : c.linked) {
      Held& h = frozen_[key];
      h.names++;
      h.size = size;
    }
    ckpt_dirs_ += c.info.dirs + 1;
  }
  Rescan();
  return c.info;
}

Result<std::vector<CheckpointInfo>> DeltaStore::ListCheckpoints() const {
  AF_ASSIGN_OR_RETURN(auto entries, List(checkpoints_.get()));
  std::vector<CheckpointInfo> out;
  for (const auto& [name, st] : entries) {
    if (!S_ISDIR(st.st_mode) || !ValidateCheckpointName(name).ok()) continue;
    auto dir = OpenDir(checkpoints_.get(), name);
    if (!dir.ok()) continue;
    auto meta = ReadFileAt(dir->get(), kMeta);
    if (!meta.ok()) continue;
    CheckpointInfo info = DecodeMeta(*meta, nullptr);
    info.name = name;
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) {
    return a.created_ns != b.created_ns ? a.created_ns < b.created_ns : a.name < b.name;
  });
  return out;
}

Status DeltaStore::DeleteCheckpoint(const std::string& name) {
  AF_ASSIGN_OR_RETURN(UniqueFd dir, OpenCheckpoint(name));
  dir.Reset();
  // Renamed away first: a crash half-way leaves a name that the next open removes.
  const std::string gone = kDelPrefix + name;
  if (::renameat(checkpoints_.get(), name.c_str(), checkpoints_.get(), gone.c_str()) != 0) {
    return Errno(errno, "rename checkpoint " + name);
  }
  std::vector<Entry> all;
  int64_t dirs = 1;
  if (auto up = OpenBeneath(checkpoints_.get(), "/" + gone + "/" + kUpper, O_RDONLY | O_DIRECTORY);
      up.ok()) {
    Walk(up->get(), "/", &all);
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& e : all) {
      if (S_ISDIR(e.st.st_mode)) {
        dirs++;
        continue;
      }
      auto it = frozen_.find(KeyOf(e.st));
      if (it != frozen_.end() && --it->second.names == 0) frozen_.erase(it);
    }
    ckpt_dirs_ = std::max<int64_t>(0, ckpt_dirs_ - dirs);
  }
  struct stat dir_st{};
  dir_st.st_mode = S_IFDIR;
  RemoveEntry(checkpoints_.get(), gone, dir_st);
  Rescan();
  return OkStatus();
}

Result<CheckpointInfo> DeltaStore::RestoreCheckpoint(const std::string& name,
                                                     std::vector<std::string>* touched) {
  AF_ASSIGN_OR_RETURN(UniqueFd dir, OpenCheckpoint(name));
  // Recorded (and flushed) before upper/ changes: a crash half-way is completed at the next open.
  AF_RETURN_IF_ERROR(WriteFileAt(dir_fd_.get(), kRestorePending, name + "\n", true));
  AF_RETURN_IF_ERROR(FinishRestore(name, touched));
  AF_ASSIGN_OR_RETURN(std::string meta, ReadFileAt(dir.get(), kMeta));
  CheckpointInfo info = DecodeMeta(meta, nullptr);
  info.name = name;
  return info;
}

Status DeltaStore::FinishRestore(const std::string& name, std::vector<std::string>* touched) {
  AF_ASSIGN_OR_RETURN(UniqueFd dir, OpenCheckpoint(name));
  AF_ASSIGN_OR_RETURN(UniqueFd up, OpenDir(dir.get(), kUpper));
  AF_ASSIGN_OR_RETURN(std::string journal, ReadFileAt(dir.get(), kJournal));
  bool shared_names = true;  // unknown: look
  if (auto meta = ReadFileAt(dir.get(), kMeta); meta.ok()) DecodeMeta(*meta, &shared_names);
  Syncer s;
  s.touched = touched;
  if (shared_names) {
    std::vector<Entry> all;
    Walk(up.get(), "/", &all);
    for (const auto& e : all) {
      if (!S_ISDIR(e.st.st_mode)) s.names[KeyOf(e.st)]++;
    }
  }
  AF_RETURN_IF_ERROR(s.Dir(up.get(), upper_.get(), "/", 0));
  struct stat rst;
  if (::fstat(up.get(), &rst) == 0) CopyDirMeta(up.get(), upper_.get(), rst);
  std::set<std::string> want;
  internal::ParseJournal(journal, &want);
  {
    std::lock_guard lock(mu_);
    std::set_symmetric_difference(deleted_.begin(), deleted_.end(), want.begin(), want.end(),
                                  std::back_inserter(*touched));
    deleted_ = std::move(want);
    AF_RETURN_IF_ERROR(Rewrite());
  }
  if (::unlinkat(dir_fd_.get(), kRestorePending, 0) != 0 && errno != ENOENT) {
    return Errno(errno, "remove restore.pending");
  }
  Rescan();
  return OkStatus();
}

Result<std::vector<Change>> DeltaStore::DiffCheckpoints(const std::string& from,
                                                       const std::string& to, int lower_root) {
  auto load = [&](const std::string& name, State* s) -> Status {
    std::vector<Entry> all;
    if (name.empty()) {
      s->root.Reset(::fcntl(upper_.get(), F_DUPFD_CLOEXEC, 3));
      if (!s->root) return Errno(errno, "dup");
      std::lock_guard lock(mu_);
      s->deleted = deleted_;
    } else {
      AF_ASSIGN_OR_RETURN(UniqueFd dir, OpenCheckpoint(name));
      AF_ASSIGN_OR_RETURN(s->root, OpenDir(dir.get(), kUpper));
      AF_ASSIGN_OR_RETURN(std::string journal, ReadFileAt(dir.get(), kJournal));
      internal::ParseJournal(journal, &s->deleted);
    }
    Walk(s->root.get(), "/", &all);
    for (auto& e : all) s->upper.emplace(std::move(e.path), e.st);
    return OkStatus();
  };
  State a, b;
  AF_RETURN_IF_ERROR(load(from, &a));
  AF_RETURN_IF_ERROR(load(to, &b));
  std::set<std::string> paths;
  for (const State* s : {&a, &b}) {
    for (const auto& [p, st] : s->upper) paths.insert(p);
    paths.insert(s->deleted.begin(), s->deleted.end());
  }
  std::vector<Change> out;
  for (const auto& p : paths) {
    auto va = ViewOf(a, p, lower_root);
    auto vb = ViewOf(b, p, lower_root);
    if (!va && !vb) continue;
    Change c;
    c.path = p;
    if (!va) {
      c.kind = ChangeKind::kAdded;
    } else if (!vb) {
      c.kind = ChangeKind::kDeleted;
    } else if (Differs(*va, *vb, p)) {
      c.kind = ChangeKind::kModified;
    } else {
      continue;
    }
    const struct stat& st = vb ? vb->st : va->st;
    c.is_dir = S_ISDIR(st.st_mode);
    c.size = vb && S_ISREG(st.st_mode) ? st.st_size : 0;
    out.push_back(std::move(c));
  }
  return out;
}

Result<UniqueFd> DeltaStore::Unshare(int upper_dir, const std::string& name, const struct stat& st,
                                     bool empty) {
  struct stat cur;
  if (::fstatat(upper_dir, name.c_str(), &cur, AT_SYMLINK_NOFOLLOW) != 0 || KeyOf(cur) != KeyOf(st)) {
    return Error(ErrorCode::kAborted, "the delta object " + name + " changed", ESTALE);
  }
  if (int e = ChargeInodes(1)) return Errno(e, "delta inode quota");
  const int64_t size = S_ISREG(st.st_mode) && !empty ? st.st_size : 0;
  if (int e = ChargeBytes(size)) {
    AddUsage(0, -1);
    return Errno(e, "delta byte quota");
  }
  const std::string tmp = TempName();
  auto copy = CopyObject(upper_dir, name, st, upper_dir, tmp, empty);
  if (!copy.ok()) {
    AddUsage(-size, -1);
    return copy;
  }
  // rename replaces the name atomically: a reader sees the old object or the copy, never neither.
  if (::renameat(upper_dir, tmp.c_str(), upper_dir, name.c_str()) != 0) {
    int e = errno;
    (void)::unlinkat(upper_dir, tmp.c_str(), 0);
    AddUsage(-size, -1);
    return Errno(e, "rename the copy over " + name);
  }
  return copy;
}

}  // namespace agentfense::fs
