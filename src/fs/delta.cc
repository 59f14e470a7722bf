#include "fs/delta.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>

#include "base/log.h"
#include "base/path.h"
#include "fs/delta_internal.h"
#include "fs/host_handle.h"

namespace agentfense::fs {
namespace {

constexpr const char* kUpperDir = "upper";
constexpr const char* kJournal = "deleted.journal";
constexpr const char* kJournalTmp = "deleted.journal.tmp";
constexpr uint32_t kMaxRecord = 1u << 20;

bool SameKind(mode_t a, mode_t b) { return S_ISDIR(a) == S_ISDIR(b); }

}  // namespace

namespace internal {

bool Absent(int e) { return e == ENOENT || e == ENOTDIR || e == ELOOP || e == EXDEV; }

size_t Depth(const std::string& p) { return static_cast<size_t>(std::count(p.begin(), p.end(), '/')); }

// Copies all of `in` to `out` (both positioned at 0): reflink, else copy_file_range, else
// read/write (different filesystems on old kernels).
Status CopyData(int in, int out) {
  if (::ioctl(out, FICLONE, in) == 0) return OkStatus();
  while (true) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
    if (n == 0) return OkStatus();
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) {
      return Error::FromErrno(errno, "copy_file_range");
    }
    break;
  }
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(in, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno(errno, "read");
    if (n == 0) return OkStatus();
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Error::FromErrno(errno, "write");
      off += w;
    }
  }
}

// Pre-order walk of the directory `dir` (an fd we own), no symlink followed, entries sorted by
// name so parents come before children and the order is stable.
void Walk(int dir, const std::string& path, std::vector<Entry>* out, int depth) {
  if (depth > 4096) return;
  int fd = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  DIR* dp = ::fdopendir(fd);
  if (dp == nullptr) {
    ::close(fd);
    return;
  }
  std::vector<std::string> names;
  while (dirent* de = ::readdir(dp)) {
    if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
    names.emplace_back(de->d_name);
  }
  std::sort(names.begin(), names.end());
  const int dfd = ::dirfd(dp);  // fd itself, now owned by dp
  for (const auto& n : names) {
    struct stat st;
    if (dfd < 0 || ::fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    std::string p = JoinWorkspacePath(path, n);
    out->push_back({p, st});
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub) Walk(sub.get(), p, out, depth + 1);
    }
  }
  ::closedir(dp);
}

void RemoveContents(int dir) {
  std::vector<Entry> all;
  Walk(dir, "/", &all);
  std::reverse(all.begin(), all.end());  // children before parents
  for (const auto& e : all) {
    std::string rel = e.path.substr(1);
    (void)::unlinkat(dir, rel.c_str(), S_ISDIR(e.st.st_mode) ? AT_REMOVEDIR : 0);
  }
}

// Copies the user.* extended attributes of `from` to `to` (both fds of regular files or dirs,
// O_PATH allowed: reached through /proc/self/fd). Other namespaces never move.
void CopyUserXattrs(int from, int to) {
  const std::string src = ProcFdPath(from), dst = ProcFdPath(to);
  ssize_t len = ::listxattr(src.c_str(), nullptr, 0);
  if (len <= 0) return;
  std::vector<char> names(static_cast<size_t>(len) + 1);
  len = ::listxattr(src.c_str(), names.data(), names.size());
  for (ssize_t i = 0; i < len;) {
    const char* n = names.data() + i;
    i += static_cast<ssize_t>(std::strlen(n)) + 1;
    if (std::strncmp(n, "user.", 5) != 0) continue;
    ssize_t vl = ::getxattr(src.c_str(), n, nullptr, 0);
    if (vl < 0) continue;
    std::vector<char> v(static_cast<size_t>(vl) + 1);
    vl = ::getxattr(src.c_str(), n, v.data(), v.size());
    if (vl >= 0) (void)::setxattr(dst.c_str(), n, v.data(), static_cast<size_t>(vl), 0);
  }
}

Result<std::string> ReadAll(int fd, const std::string& what) {
  std::string data;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno(errno, "read " + what);
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
  }
}

void ParseJournal(const std::string& data, std::set<std::string>* deleted) {
  size_t pos = 0;
  while (pos + 5 <= data.size()) {
    char op = data[pos];
    uint32_t len;
    std::memcpy(&len, data.data() + pos + 1, 4);
    if (len > kMaxRecord || pos + 5 + len > data.size()) break;  // torn tail of a crash
    std::string path = data.substr(pos + 5, len);
    pos += 5 + len;
    if (op == 'D') {
      deleted->insert(path);
    } else if (op == 'U') {
      deleted->erase(path);
    } else {
      break;
    }
  }
}

std::string EncodeJournal(const std::set<std::string>& deleted) {
  std::string out;
  for (const auto& p : deleted) {
    out += 'D';
    uint32_t len = static_cast<uint32_t>(p.size());
    out.append(reinterpret_cast<const char*>(&len), 4);
    out += p;
  }
  return out;
}

namespace {
std::atomic<uint64_t> g_tmp_counter{0};
}  // namespace

std::string TempName() {
  return ".agentfense-sync." + std::to_string(::getpid()) + "." +
         std::to_string(g_tmp_counter.fetch_add(1));
}

}  // namespace internal

using internal::Absent;
using internal::CopyData;
using internal::CopyUserXattrs;
using internal::Depth;
using internal::Entry;
using internal::RemoveContents;
using internal::TempName;
using internal::Walk;

namespace {

long OpenAt2(int dir_fd, const char* rel, int flags, mode_t mode) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return ::syscall(SYS_openat2, dir_fd, rel, &how, sizeof(how));
}

}  // namespace

Result<UniqueFd> OpenBeneath(int root_fd, const std::string& path, int flags, mode_t mode) {
  std::string_view rel = path.size() <= 1 ? std::string_view(".") : std::string_view(path).substr(1);
  // A path string the kernel takes is shorter than PATH_MAX, but a workspace can be deeper (a
  // deep working directory works natively: every syscall resolves relative to it). A longer path
  // is walked in pieces of whole components, each resolved beneath the directory the previous one
  // opened, with the same RESOLVE_* rules: nothing is followed, nothing escapes the root.
  constexpr size_t kPiece = PATH_MAX / 2;
  UniqueFd cur;
  int at = root_fd;
  while (rel.size() >= PATH_MAX) {
    size_t cut = rel.rfind('/', kPiece);
    if (cut == std::string_view::npos || cut == 0) {
      return Error::FromErrno(ENAMETOOLONG, "openat2 " + path);
    }
    std::string piece(rel.substr(0, cut));
    long fd = OpenAt2(at, piece.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
    if (fd < 0) return Error::FromErrno(errno, "openat2 " + path);
    cur.Reset(static_cast<int>(fd));
    at = cur.get();
    rel.remove_prefix(cut + 1);
  }
  std::string last(rel);
  long fd = OpenAt2(at, last.c_str(), flags, mode);
  if (fd < 0) return Error::FromErrno(errno, "openat2 " + path);
  return UniqueFd(static_cast<int>(fd));
}

Result<std::unique_ptr<DeltaStore>> DeltaStore::Open(const std::string& dir, uint64_t quota_bytes,
                                                     uint64_t quota_inodes) {
  std::unique_ptr<DeltaStore> d(new DeltaStore());
  d->dir_ = dir;
  d->quota_bytes_ = quota_bytes;
  d->quota_inodes_ = quota_inodes;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error::FromErrno(errno, "mkdir delta dir " + dir);
  }
  d->dir_fd_.Reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!d->dir_fd_) return Error::FromErrno(errno, "open delta dir " + dir);
  if (::mkdirat(d->dir_fd_.get(), kUpperDir, 0755) != 0 && errno != EEXIST) {
    return Error::FromErrno(errno, "mkdir " + dir + "/upper");
  }
  // A real directory fd: it is also the mount fd for open_by_handle_at of upper objects.
  d->upper_.Reset(::openat(d->dir_fd_.get(), kUpperDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!d->upper_) return Error::FromErrno(errno, "open " + dir + "/upper");
  AF_RETURN_IF_ERROR(d->LoadJournal());
  AF_RETURN_IF_ERROR(d->OpenCheckpoints());  // may finish a restore: journal rewritten after it
  AF_RETURN_IF_ERROR(d->Rewrite());
  d->Rescan();
  return d;
}

DeltaStore::~DeltaStore() = default;

Status DeltaStore::LoadJournal() {
  UniqueFd fd(::openat(dir_fd_.get(), kJournal, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return OkStatus();
    return Error::FromErrno(errno, "open delta journal");
  }
  AF_ASSIGN_OR_RETURN(std::string data, internal::ReadAll(fd.get(), "delta journal"));
  internal::ParseJournal(data, &deleted_);
  return OkStatus();
}

Status DeltaStore::AppendJournal(char op, const std::string& path) {
  std::string rec(1, op);
  uint32_t len = static_cast<uint32_t>(path.size());
  rec.append(reinterpret_cast<const char*>(&len), 4);
  rec += path;
  // One write(2) per record, in the kernel before the agent's unlink is answered: a supervisor
  // crash loses nothing. No fsync per record (an `rm -rf` of 10k files would cost 10k flushes);
  // like the data in upper/, durability against power loss comes with the next compaction.
  if (::write(journal_.get(), rec.data(), rec.size()) != static_cast<ssize_t>(rec.size())) {
    return Error::FromErrno(errno, "append delta journal");
  }
  return OkStatus();
}

// Compaction: the current set as 'D' records, written aside and renamed over the journal.
Status DeltaStore::Rewrite() {
  UniqueFd tmp(::openat(dir_fd_.get(), kJournalTmp,
                        O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!tmp) return Error::FromErrno(errno, "create delta journal");
  const std::string out = internal::EncodeJournal(deleted_);
  if (::write(tmp.get(), out.data(), out.size()) != static_cast<ssize_t>(out.size()) ||
      ::fsync(tmp.get()) != 0) {
    return Error::FromErrno(errno, "write delta journal");
  }
  if (::renameat(dir_fd_.get(), kJournalTmp, dir_fd_.get(), kJournal) != 0) {
    return Error::FromErrno(errno, "rename delta journal");
  }
  (void)::fsync(dir_fd_.get());
  journal_.Reset(::openat(dir_fd_.get(), kJournal, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC));
  if (!journal_) return Error::FromErrno(errno, "open delta journal");
  return OkStatus();
}

void DeltaStore::Rescan() {
  std::vector<Entry> all;
  Walk(upper_.get(), "/", &all);
  std::set<std::pair<dev_t, ino_t>> seen;
  int64_t bytes = 0, inodes = 0;
  for (const auto& e : all) {
    if (!seen.insert({e.st.st_dev, e.st.st_ino}).second) continue;
    inodes++;
    if (S_ISREG(e.st.st_mode)) bytes += e.st.st_size;
  }
  std::lock_guard lock(mu_);
  // What only the checkpoints still hold counts as well (quotas count checkpoints); what they
  // share with upper/ was counted once above.
  for (const auto& [key, held] : frozen_) {
    if (seen.count(key) != 0) continue;
    inodes++;
    bytes += held.size;
  }
  bytes_ = bytes;
  inodes_ = inodes + ckpt_dirs_;
}

bool DeltaStore::IsDeleted(const std::string& path) const {
  std::lock_guard lock(mu_);
  return deleted_.count(path) != 0;
}

Status DeltaStore::MarkDeleted(const std::string& path) {
  std::lock_guard lock(mu_);
  if (!deleted_.insert(path).second) return OkStatus();
  return AppendJournal('D', path);
}

Status DeltaStore::Undelete(const std::string& path) {
  std::lock_guard lock(mu_);
  if (deleted_.erase(path) == 0) return OkStatus();
  return AppendJournal('U', path);
}

Result<UniqueFd> DeltaStore::OpenUpper(const std::string& path, int flags) const {
  auto fd = OpenBeneath(upper_.get(), path, flags);
  if (!fd.ok() && Absent(fd.error().ToErrno())) {
    return Error(ErrorCode::kNotFound, "not in the delta: " + path, ENOENT);
  }
  return fd;
}

Result<UniqueFd> DeltaStore::EnsureUpperDir(const std::string& dir_path, int lower_root) {
  UniqueFd cur(::fcntl(upper_.get(), F_DUPFD_CLOEXEC, 3));
  if (!cur) return Error::FromErrno(errno, "dup");
  std::string prefix;
  size_t pos = 1;
  while (pos < dir_path.size()) {
    size_t end = dir_path.find('/', pos);
    if (end == std::string::npos) end = dir_path.size();
    std::string comp = dir_path.substr(pos, end - pos);
    pos = end + 1;
    if (comp.empty()) continue;
    prefix += "/" + comp;
    UniqueFd next(::openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) {
      if (errno != ENOENT) return Error::FromErrno(errno, "open upper " + prefix);
      mode_t mode = 0755;
      uid_t uid = owner_uid_;
      gid_t gid = owner_gid_;
      if (auto low = OpenBeneath(lower_root, prefix, O_PATH | O_NOFOLLOW); low.ok()) {
        struct stat st;
        if (::fstat(low->get(), &st) == 0 && S_ISDIR(st.st_mode)) {
          mode = st.st_mode & 07777;
          uid = st.st_uid;
          gid = st.st_gid;
        }
      }
      if (int e = ChargeInodes(1)) return Error::FromErrno(e, "delta inode quota");
      if (::mkdirat(cur.get(), comp.c_str(), mode) != 0 && errno != EEXIST) {
        int e = errno;
        AddUsage(0, -1);
        return Error::FromErrno(e, "mkdir upper " + prefix);
      }
      (void)::fchownat(cur.get(), comp.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
      (void)::fchmodat(cur.get(), comp.c_str(), mode, 0);  // mkdir applied the umask
      next.Reset(::openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next) return Error::FromErrno(errno, "open upper " + prefix);
    }
    cur = std::move(next);
  }
  return cur;
}

Result<UniqueFd> DeltaStore::CopyUp(int lower, const struct stat& st, int upper_dir,
                                    const std::string& name, bool empty) {
  const mode_t mode = st.st_mode & 07777;
  auto finish = [&](int at_fd, const char* at_name) -> Result<UniqueFd> {
    (void)::fchownat(at_fd, at_name, st.st_uid, st.st_gid,
                     at_name[0] ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH);
    struct timespec tv[2] = {st.st_atim, st.st_mtim};
    (void)::utimensat(at_fd, at_name, tv, AT_SYMLINK_NOFOLLOW);
    UniqueFd fd(::openat(upper_dir, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return Error::FromErrno(errno, "open copied-up " + name);
    return fd;
  };
  if (int e = ChargeInodes(1)) return Error::FromErrno(e, "delta inode quota");
  if (S_ISREG(st.st_mode)) {
    const int64_t size = empty ? 0 : st.st_size;
    if (int e = ChargeBytes(size)) {
      AddUsage(0, -1);
      return Error::FromErrno(e, "delta byte quota");
    }
    auto fail = [&](int e, const std::string& what) {
      AddUsage(-size, -1);
      return Error::FromErrno(e, what);
    };
    UniqueFd tmp(::openat(upper_dir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!tmp) return fail(errno, "O_TMPFILE in the delta");
    if (!empty) {
      UniqueFd in(::open(ProcFdPath(lower).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
      if (!in) return fail(errno, "open for copy-up");
      if (auto s = CopyData(in.get(), tmp.get()); !s.ok()) return fail(s.error().ToErrno(), "copy-up");
    }
    (void)::fchown(tmp.get(), st.st_uid, st.st_gid);
    (void)::fchmod(tmp.get(), mode);
    CopyUserXattrs(lower, tmp.get());
    struct timespec tv[2] = {st.st_atim, st.st_mtim};
    if (!empty) (void)::futimens(tmp.get(), tv);
    if (::linkat(tmp.get(), "", upper_dir, name.c_str(), AT_EMPTY_PATH) != 0) {
      return fail(errno, "link copied-up " + name);
    }
    UniqueFd fd(::openat(upper_dir, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return Error::FromErrno(errno, "open copied-up " + name);
    return fd;
  }
  int rc;
  if (S_ISLNK(st.st_mode)) {
    char buf[PATH_MAX + 1];
    ssize_t len = ::readlinkat(lower, "", buf, sizeof(buf) - 1);
    if (len < 0) rc = -1;
    else {
      buf[len] = '\0';
      rc = ::symlinkat(buf, upper_dir, name.c_str());
    }
  } else if (S_ISDIR(st.st_mode)) {
    rc = ::mkdirat(upper_dir, name.c_str(), mode);
    if (rc == 0) (void)::fchmodat(upper_dir, name.c_str(), mode, 0);
  } else if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
    rc = ::mknodat(upper_dir, name.c_str(), st.st_mode & (S_IFMT | 0777), 0);
    if (rc == 0) (void)::fchmodat(upper_dir, name.c_str(), mode, 0);
  } else {
    rc = -1;
    errno = EPERM;  // device nodes are never created on the agent's behalf
  }
  if (rc != 0) {
    int e = errno;
    AddUsage(0, -1);
    return Error::FromErrno(e, "copy-up " + name);
  }
  return finish(upper_dir, name.c_str());
}

int DeltaStore::ChargeInodes(int64_t inodes) {
  std::lock_guard lock(mu_);
  if (quota_inodes_ > 0 && inodes > 0 &&
      static_cast<uint64_t>(inodes_ + inodes) > quota_inodes_) {
    return ENOSPC;
  }
  inodes_ += inodes;
  return 0;
}

int DeltaStore::ChargeBytes(int64_t bytes) {
  std::lock_guard lock(mu_);
  if (quota_bytes_ > 0 && bytes > 0 && static_cast<uint64_t>(bytes_ + bytes) > quota_bytes_) {
    return ENOSPC;
  }
  bytes_ += bytes;
  return 0;
}

int64_t DeltaStore::MaxEnd(int64_t cur_size) const {
  std::lock_guard lock(mu_);
  if (quota_bytes_ == 0) return INT64_MAX;
  return cur_size + std::max<int64_t>(0, static_cast<int64_t>(quota_bytes_) - bytes_);
}

void DeltaStore::AddUsage(int64_t bytes, int64_t inodes) {
  std::lock_guard lock(mu_);
  bytes_ = std::max<int64_t>(0, bytes_ + bytes);
  inodes_ = std::max<int64_t>(0, inodes_ + inodes);
}

Result<ChangeSet> DeltaStore::Changes(int lower_root) {
  Rescan();
  std::vector<Entry> all;
  Walk(upper_.get(), "/", &all);
  ChangeSet set;
  std::set<std::string> in_upper;
  for (const auto& e : all) {
    in_upper.insert(e.path);
    struct stat lst;
    bool lower = false;
    if (auto l = OpenBeneath(lower_root, e.path, O_PATH | O_NOFOLLOW); l.ok()) {
      lower = ::fstat(l->get(), &lst) == 0;
    }
    const bool dir = S_ISDIR(e.st.st_mode);
    if (dir && lower && S_ISDIR(lst.st_mode)) continue;  // a container of changes, not a change
    Change c;
    c.path = e.path;
    c.kind = lower ? ChangeKind::kModified : ChangeKind::kAdded;
    c.is_dir = dir;
    c.size = dir ? 0 : e.st.st_size;
    set.changes.push_back(std::move(c));
  }
  std::set<std::string> deleted;
  {
    std::lock_guard lock(mu_);
    deleted = deleted_;
    set.delta_bytes = bytes_;
    set.delta_inodes = inodes_;
  }
  for (const auto& p : deleted) {
    if (in_upper.count(p)) continue;
    auto l = OpenBeneath(lower_root, p, O_PATH | O_NOFOLLOW);
    struct stat lst;
    if (!l.ok() || ::fstat(l->get(), &lst) != 0) continue;  // already gone from the source
    set.changes.push_back({p, ChangeKind::kDeleted, 0, S_ISDIR(lst.st_mode)});
  }
  std::sort(set.changes.begin(), set.changes.end(),
            [](const Change& a, const Change& b) { return a.path < b.path; });
  return set;
}

CommitReport DeltaStore::Commit(int lower_root,
                                const std::function<policy::Level(const std::string&, bool)>& level,
                                const BusyFn& busy) {
  CommitReport report;
  std::vector<Entry> upper;
  Walk(upper_.get(), "/", &upper);
  std::map<std::string, mode_t> upper_type;
  for (const auto& e : upper) upper_type[e.path] = e.st.st_mode;
  std::vector<std::string> deleted;
  {
    std::lock_guard lock(mu_);
    deleted.assign(deleted_.begin(), deleted_.end());
  }
  auto fail = [&](const std::string& path, const std::string& why) {
    report.errors.push_back({path, why});
  };
  auto errno_text = [](const Error& e) {
    int n = e.ToErrno();
    if (n == ELOOP || n == EXDEV) return std::string("a symlink in the source path (never followed)");
    return e.ToString();
  };

  // 1. Deletions, deepest first: a directory goes only once every entry this delta deleted in it
  //    is gone, and only if nothing else is left (rmdir, never a recursive removal).
  std::sort(deleted.begin(), deleted.end(), [](const std::string& a, const std::string& b) {
    size_t da = Depth(a), db = Depth(b);
    return da != db ? da > db : a > b;
  });
  for (const auto& p : deleted) {
    auto parent = OpenBeneath(lower_root, ParentPath(p), O_PATH | O_DIRECTORY);
    if (!parent.ok()) {
      if (parent.error().ToErrno() == ENOENT) {
        (void)Undelete(p);  // already gone
        continue;
      }
      fail(p, errno_text(parent.error()));
      continue;
    }
    const std::string name = BaseName(p);
    struct stat st;
    if (::fstatat(parent->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) (void)Undelete(p);
      else fail(p, std::string("stat: ") + std::strerror(errno));
      continue;
    }
    auto up = upper_type.find(p);
    if (up != upper_type.end() && SameKind(up->second, st.st_mode)) continue;  // replaced below
    const bool dir = S_ISDIR(st.st_mode);
    if (level(p, dir) != policy::Level::kWrite) {
      fail(p, "refused: the policy does not allow writing here");
      continue;
    }
    if (::unlinkat(parent->get(), name.c_str(), dir ? AT_REMOVEDIR : 0) != 0) {
      if (errno == ENOTEMPTY || errno == EEXIST) {
        fail(p, "directory not removed: the source holds entries this sandbox did not delete");
      } else {
        fail(p, std::string("remove: ") + std::strerror(errno));
      }
      continue;
    }
    report.applied.push_back({p, ChangeKind::kDeleted, 0, dir});
    (void)Undelete(p);
  }

  // 2. Upper entries, parents first. Each non-directory lands atomically (temp + rename).
  std::set<std::string> failed_dirs;
  std::vector<std::string> synced_dirs;
  for (const auto& e : upper) {
    const std::string& p = e.path;
    const bool dir = S_ISDIR(e.st.st_mode);
    if (failed_dirs.count(ParentPath(p))) {
      if (dir) failed_dirs.insert(p);
      fail(p, "not synced: its directory was not synced");
      continue;
    }
    auto refuse = [&](const std::string& why) {
      if (dir) failed_dirs.insert(p);
      fail(p, why);
    };
    if (!dir && !S_ISREG(e.st.st_mode) && !S_ISLNK(e.st.st_mode)) {
      refuse("not a regular file, directory or symlink: never synced");
      continue;
    }
    if (level(p, dir) != policy::Level::kWrite) {
      refuse("refused: the policy does not allow writing here");
      continue;
    }
    auto parent = OpenBeneath(lower_root, ParentPath(p), O_PATH | O_DIRECTORY);
    if (!parent.ok()) {
      refuse(errno_text(parent.error()));
      continue;
    }
    const std::string name = BaseName(p);
    struct stat lst;
    const bool lower = ::fstatat(parent->get(), name.c_str(), &lst, AT_SYMLINK_NOFOLLOW) == 0;
    const ChangeKind kind = lower ? ChangeKind::kModified : ChangeKind::kAdded;
    const mode_t mode = e.st.st_mode & 0777;  // setuid, setgid (and sticky) never reach the source
    if (dir) {
      if (lower && !S_ISDIR(lst.st_mode)) {
        refuse("a non-directory is in the way in the source");
        continue;
      }
      if (!lower) {
        if (::mkdirat(parent->get(), name.c_str(), mode) != 0) {
          refuse(std::string("mkdir: ") + std::strerror(errno));
          continue;
        }
        // The owner of the upper directory (the tree's owner, or the copied-up source owner),
        // never the daemon; then the mode, which mkdir masked with the umask.
        (void)::fchownat(parent->get(), name.c_str(), e.st.st_uid, e.st.st_gid,
                         AT_SYMLINK_NOFOLLOW);
        (void)::fchmodat(parent->get(), name.c_str(), mode, 0);
        report.applied.push_back({p, ChangeKind::kAdded, 0, true});
      }
      synced_dirs.push_back(p);
      (void)Undelete(p);
      continue;
    }
    if (lower && S_ISDIR(lst.st_mode)) {
      refuse("a directory is in the way in the source");
      continue;
    }
    // Same filesystem, one link, no writer: the upper file itself moves into place (atomic rename,
    // no copy, nothing left to clear). Mode first, with setuid/setgid stripped.
    const bool in_use = S_ISREG(e.st.st_mode) && busy && busy(e.st);
    if (S_ISREG(e.st.st_mode) && e.st.st_nlink == 1 && !in_use) {
      auto up = OpenBeneath(upper_.get(), ParentPath(p), O_PATH | O_DIRECTORY);
      struct stat cur;
      if (up.ok() && ::fstatat(up->get(), name.c_str(), &cur, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISREG(cur.st_mode) && cur.st_nlink == 1 && cur.st_dev == e.st.st_dev &&
          cur.st_ino == e.st.st_ino && ::fchmodat(up->get(), name.c_str(), mode, 0) == 0) {
        if (::renameat(up->get(), name.c_str(), parent->get(), name.c_str()) == 0) {
          report.applied.push_back({p, kind, e.st.st_size, false});
          (void)Undelete(p);
          continue;
        }
        if (errno != EXDEV) {
          refuse(std::string("rename into place: ") + std::strerror(errno));
          continue;
        }
      }
    }
    const std::string tmpname = TempName();
    bool linked = false;
    if (S_ISREG(e.st.st_mode)) {
      // O_NONBLOCK + a type re-check: whatever sits at the name now, a FIFO can never block us.
      auto in = OpenBeneath(upper_.get(), p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      struct stat ist;
      if (!in.ok() || ::fstat(in->get(), &ist) != 0 || !S_ISREG(ist.st_mode)) {
        refuse(in.ok() ? "not a regular file any more: never synced" : in.error().ToString());
        continue;
      }
      UniqueFd tmp(::openat(parent->get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
      if (!tmp) {
        tmp.Reset(::openat(parent->get(), tmpname.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        linked = tmp.valid();
      }
      if (!tmp) {
        refuse(std::string("create temp file: ") + std::strerror(errno));
        continue;
      }
      Status s = CopyData(in->get(), tmp.get());
      CopyUserXattrs(in->get(), tmp.get());
      struct timespec tv[2] = {e.st.st_atim, e.st.st_mtim};
      // The upper file's owner, not the daemon's (a rootless daemon owns both: a no-op).
      (void)::fchown(tmp.get(), e.st.st_uid, e.st.st_gid);
      if (s.ok() && (::fchmod(tmp.get(), mode) != 0 || ::futimens(tmp.get(), tv) != 0)) {
        s = Error::FromErrno(errno, "fchmod");
      }
      if (s.ok() && !linked) {
        if (::linkat(tmp.get(), "", parent->get(), tmpname.c_str(), AT_EMPTY_PATH) != 0) {
          s = Error::FromErrno(errno, "link temp file");
        } else {
          linked = true;
        }
      }
      if (!s.ok()) {
        if (linked) (void)::unlinkat(parent->get(), tmpname.c_str(), 0);
        refuse(s.error().ToString());
        continue;
      }
    } else {
      char buf[PATH_MAX + 1];
      auto l = OpenBeneath(upper_.get(), p, O_PATH | O_NOFOLLOW);
      ssize_t len = l.ok() ? ::readlinkat(l->get(), "", buf, sizeof(buf) - 1) : -1;
      if (len >= 0) buf[len] = '\0';
      if (len < 0 || ::symlinkat(buf, parent->get(), tmpname.c_str()) != 0) {
        refuse(std::string("symlink: ") + std::strerror(errno));
        continue;
      }
      (void)::fchownat(parent->get(), tmpname.c_str(), e.st.st_uid, e.st.st_gid,
                       AT_SYMLINK_NOFOLLOW);
    }
    // rename replaces a file or a symlink at `name` itself; it never follows it.
    if (::renameat(parent->get(), tmpname.c_str(), parent->get(), name.c_str()) != 0) {
      int err = errno;
      (void)::unlinkat(parent->get(), tmpname.c_str(), 0);
      refuse(std::string("rename into place: ") + std::strerror(err));
      continue;
    }
    report.applied.push_back({p, kind, e.st.st_size, false});
    (void)Undelete(p);
    if (in_use) continue;  // stays pending: later writes through the open fd land there
    // Cleared at once, so a commit killed half-way leaves only the rest pending.
    if (auto up = OpenBeneath(upper_.get(), ParentPath(p), O_PATH | O_DIRECTORY); up.ok()) {
      (void)::unlinkat(up->get(), name.c_str(), 0);
    }
  }
  // 3. Synced directories leave the delta once empty (deepest first); failed entries keep theirs.
  std::sort(synced_dirs.begin(), synced_dirs.end(), [](const std::string& a, const std::string& b) {
    return Depth(a) > Depth(b);
  });
  for (const auto& d : synced_dirs) {
    if (auto up = OpenBeneath(upper_.get(), ParentPath(d), O_PATH | O_DIRECTORY); up.ok()) {
      (void)::unlinkat(up->get(), BaseName(d).c_str(), AT_REMOVEDIR);
    }
  }
  {
    std::lock_guard lock(mu_);
    (void)Rewrite();
  }
  Rescan();
  std::sort(report.applied.begin(), report.applied.end(),
            [](const Change& a, const Change& b) { return a.path < b.path; });
  return report;
}

Result<int64_t> DeltaStore::Discard(int lower_root) {
  AF_ASSIGN_OR_RETURN(ChangeSet set, Changes(lower_root));
  RemoveContents(upper_.get());
  {
    std::lock_guard lock(mu_);
    deleted_.clear();
    AF_RETURN_IF_ERROR(Rewrite());
  }
  Rescan();
  return static_cast<int64_t>(set.changes.size());
}

}  // namespace agentfense::fs
