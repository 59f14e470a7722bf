#include "fs/perm_fs.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "base/log.h"
#include "base/path.h"
#include "fs/perm_fs_internal.h"

namespace agentfense::fs {

using policy::Level;
using policy::Policy;

Result<std::unique_ptr<PermFs>> PermFs::Create(const std::string& source, Policy policy,
                                               FsOptions options) {
  // A real (not O_PATH) fd: open_by_handle_at refuses O_PATH fds as its mount fd (EBADF).
  int fd = ::open(source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno(errno, "open source " + source);
  struct stat root_st;
  if (::fstat(fd, &root_st) != 0) {
    int err = errno;
    ::close(fd);
    return Error::FromErrno(err, "fstat source " + source);
  }
  if (options.new_owner_uid == static_cast<uid_t>(-1)) options.new_owner_uid = root_st.st_uid;
  if (options.new_owner_gid == static_cast<gid_t>(-1)) options.new_owner_gid = root_st.st_gid;
  AF_ASSIGN_OR_RETURN(auto table, InodeTable::Create(UniqueFd(fd), options.fd_cache_capacity,
                                                     options.io_fd_cache_capacity));
  std::unique_ptr<DeltaStore> delta;
  if (!options.delta_dir.empty()) {
    auto d = DeltaStore::Open(options.delta_dir, options.delta_quota_bytes,
                              options.delta_quota_inodes);
    if (!d.ok()) return std::move(d).error().With("opening the delta");
    delta = std::move(*d);
    delta->SetOwner(options.new_owner_uid, options.new_owner_gid);
    table->SetUpperRoot(delta->upper_root());
  }
  std::unique_ptr<PermFs> fs(new PermFs(std::move(table), std::move(policy), std::move(options)));
  fs->delta_ = std::move(delta);
  InodeTable* t = fs->table_.get();
  auto bump = [t] { t->BumpEpoch(); };  // the index changed: cached decisions are recomputed
  const auto rescan = fs->options_.link_rescan_interval;
  fs->source_links_ = std::make_unique<LinkIndex>(t->root_fd(), bump, rescan);
  fs->upper_links_ = std::make_unique<LinkIndex>(
      fs->delta_ ? fs->delta_->upper_root() : t->root_fd(), bump, rescan);
  return fs;
}

namespace {

// Opens decided by the kernel cannot hold an access for a decision (the kernel refuses or opens
// on its own): a mount whose policy asks at start keeps every open a request.
bool HasAskRule(const Policy& p) {
  for (const policy::Rule& r : p.rules()) {
    if (r.level == Level::kAsk) return true;
  }
  return false;
}

}  // namespace

PermFs::PermFs(std::unique_ptr<InodeTable> table, Policy policy, FsOptions options)
    : table_(std::move(table)),
      options_(std::move(options)),
      owner_uid_(options_.new_owner_uid),
      owner_gid_(options_.new_owner_gid),
      daemon_gid_(::getegid()),
      policy_(std::make_shared<const Policy>(std::move(policy))),
      asks_(std::make_unique<AskBroker>(options_.ask_timeout, options_.ask_events)),
      kernel_checks_(options_.kernel_open && options_.caller_uid.has_value() &&
                     *options_.caller_uid != 0 && !HasAskRule(*policy_)) {}

PermFs::~PermFs() = default;

std::shared_ptr<const Policy> PermFs::policy() const {
  std::shared_lock lock(policy_mu_);
  return policy_;
}

PermFs::Verdict PermFs::Decide(const Policy& p, const std::string& path, bool is_dir) const {
  if (path.empty()) return {};
  policy::Decision d = p.Decide(path, is_dir);
  return {d.level, d.rule};
}

namespace {

// Inode::verdict: table epoch (40 bits) | rule + 1 (16 bits) | level (8 bits). 0 = nothing cached.
constexpr int kEpochShift = 24;
constexpr uint64_t kEpochMask = (uint64_t{1} << 40) - 1;
constexpr int kMaxCachedRule = 0xfffe;

}  // namespace

PermFs::Verdict PermFs::DecideInode(const Policy& p, const Inode* inode) const {
  // The epoch is read before the names and the link count: a change that lands meanwhile bumps
  // it after itself, so what is stored below is then already stale and never served.
  const uint64_t epoch = table_->epoch() & kEpochMask;
  const uint64_t cached = inode->verdict.load(std::memory_order_acquire);
  if (cached != 0 && (cached >> kEpochShift) == epoch) {
    return {static_cast<Level>(cached & 0xff), static_cast<int>((cached >> 8) & 0xffff) - 1};
  }
  bool vouched = true;
  Verdict v = DecideNames(p, table_->NamesOf(inode), inode->is_dir(), inode->is_reg(),
                          inode->nlink_seen.load(), &vouched);
  if (vouched && v.rule <= kMaxCachedRule) {
    inode->verdict.store((epoch << kEpochShift) | (static_cast<uint64_t>(v.rule + 1) << 8) |
                             static_cast<uint64_t>(v.level),
                         std::memory_order_release);
  }
  return v;
}

PermFs::Verdict PermFs::DecideNames(const Policy& p, const InodeNames& names, bool is_dir,
                                    bool is_reg, nlink_t nlink, bool* vouched) const {
  Verdict best = Decide(p, names.paths[0], is_dir);
  for (size_t i = 1; i < names.paths.size() && best.level != Level::kNone; ++i) {
    Verdict v = Decide(p, names.paths[i], is_dir);
    if (v.level < best.level) best = v;
  }
  if (is_reg && nlink > 1 && best.level != Level::kNone) {
    Verdict v = LinkVerdict(p, names.dev, names.ino, nlink, names.upper, vouched);
    if (v.level < best.level) best = v;
  }
  return best;
}

bool PermFs::ServesCaller(fuse_req_t req) const {
  if (!options_.caller_uid) return true;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (ctx == nullptr || ctx->uid == *options_.caller_uid || ctx->uid == 0) return true;
  (void)Deny(req, "", "caller", Verdict{}, EACCES);
  return false;
}

PermFs::Verdict PermFs::LinkVerdict(const Policy& p, dev_t dev, ino_t ino, nlink_t nlink,
                                    bool upper, bool* vouched) const {
  auto names = Links(upper).Names(dev, ino, nlink);
  if (!names) {
    *vouched = false;
    return {Conservative(p), -1};
  }
  Verdict best{Level::kWrite, -1};  // no name in the tree (all outside it): the caller's decide
  for (size_t i = 0; i < names->size() && best.level != Level::kNone; ++i) {
    Verdict v = Decide(p, (*names)[i], false);
    if (i == 0 || v.level < best.level) best = v;
  }
  return best;
}

Level PermFs::Conservative(const Policy& p) {
  std::optional<Level> all = p.UniformLevelBeneath("/");
  return all ? *all : Level::kNone;
}

nlink_t PermFs::VisibleLinks(dev_t dev, ino_t ino, nlink_t nlink, bool upper) const {
  auto names = Links(upper).Names(dev, ino, nlink);
  if (!names) return 1;
  nlink_t n = 0;
  if (!delta_ || upper) {
    n = names->size();
  } else {
    // A source name the delta deleted, or shadows with an object of its own, is not this file's.
    for (const auto& path : *names) {
      n += LowerVisible(path) && !delta_->OpenUpper(path, O_PATH | O_NOFOLLOW).ok();
    }
  }
  return std::max<nlink_t>(n, 1);
}

bool PermFs::NoteNlink(Inode* n, nlink_t nlink) {
  if (!n->is_reg() || n->nlink_seen.exchange(nlink) == nlink) return false;
  table_->BumpEpoch();
  return true;
}

PermFs::Verdict PermFs::DecideFresh(const Policy& p, Inode* n, Level need) {
  Verdict v = DecideInode(p, n);
  if (v.level >= need || !n->is_reg() || n->nlink_seen.load() <= 1) return v;
  struct stat st;
  auto pfd = table_->PathFd(n);
  if (pfd.ok() && ::fstat((*pfd)->get(), &st) == 0 && NoteNlink(n, st.st_nlink)) {
    v = DecideInode(p, n);
  }
  return v;
}

int PermFs::CheckHandle(fuse_req_t req, const Inode* n, std::string_view op, Level need,
                        uint64_t fh) const {
  Verdict v = DecideInode(*policy_, n);
  if (v.level >= need) return 0;
  // At `ask`, a handle an approval opened keeps what it was granted (it never asks again); once
  // the policy takes the path below `ask`, the grant goes with it.
  if (v.level == Level::kAsk && HandleGrant(fh) >= need) return 0;
  // EACCES even for `none`: the descriptor exists; only names can be absent.
  return Deny(req, table_->PathOf(n), op, v, EACCES);
}

int PermFs::Deny(fuse_req_t req, const std::string& path, std::string_view op, const Verdict& v,
                 int err) const {
  if (options_.audit) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    AuditEvent ev{path, op, v.rule, ctx != nullptr ? ctx->pid : 0, err,
                  ctx != nullptr ? ctx->uid : 0};
    try {
      options_.audit(ev);
    } catch (...) {
      AF_LOG_WARN("audit sink threw; event for {} dropped", path);
    }
  }
  return err;
}

int PermFs::Check(fuse_req_t req, const std::string& path, std::string_view op, const Verdict& v,
                  Level need, const Retry* retry, int denied) const {
  if (v.level >= need) return 0;
  if (v.level == Level::kAsk) {
    // `ask` is one more outcome of this check: granted (a decision re-running this request),
    // held until a decision, or, when nobody can wait for one, denied like `view`.
    if (asks_->GrantFor(req, path) >= need) return 0;
    if (retry != nullptr && *retry) {
      AccessRequest r;
      r.path = path;
      r.op = std::string(op);
      r.need = need;
      if (const fuse_ctx* ctx = fuse_req_ctx(req); ctx != nullptr) {
        r.pid = ctx->pid;
        r.uid = ctx->uid;
      }
      if (asks_->Hold(req, std::move(r), *retry)) return kHeld;
    }
  }
  if (denied == 0) denied = v.level == Level::kNone ? ENOENT : EACCES;
  return Deny(req, path, op, v, denied);
}

void PermFs::GrantHandle(uint64_t fh, Level level) {
  std::lock_guard lock(handle_grants_mu_);
  handle_grants_[fh] = level;
}

Level PermFs::HandleGrant(uint64_t fh) const {
  std::lock_guard lock(handle_grants_mu_);
  auto it = handle_grants_.find(fh);
  return it == handle_grants_.end() ? Level::kNone : it->second;
}

void PermFs::DropHandle(uint64_t fh) {
  std::lock_guard lock(handle_grants_mu_);
  handle_grants_.erase(fh);
}

void PermFs::Present(const Policy& p, const std::string& path, struct stat* st, bool upper,
                     Level level) const {
  if (kernel_checks_) {
    // The kernel decides opens from these bits (default_permissions), for the one identity it
    // lets through, shown as the owner: no bit for `view`, no write bit for `read`, the host's
    // bits for `write` (so a file the agent made read-only behaves as natively). Directories and
    // symlinks keep theirs: every visible directory may be listed and entered, and what may be
    // created, removed or renamed in it is decided per name by the daemon (the kernel must pass
    // those requests on for their refusals to be audited).
    st->st_uid = options_.caller_uid.value_or(0);  // set: kernel_checks_ requires it
    st->st_gid = options_.caller_gid;
    if (!S_ISDIR(st->st_mode) && !S_ISLNK(st->st_mode)) {
      const mode_t keep = level >= Level::kWrite  ? mode_t{07777}
                          : level == Level::kRead ? mode_t{07555}
                                                  : mode_t{07000};
      st->st_mode &= S_IFMT | keep;
    }
    if (options_.others_reach_mount) st->st_mode &= ~mode_t{077};
  }
  if (S_ISREG(st->st_mode) && st->st_nlink > 1) {
    st->st_nlink = VisibleLinks(st->st_dev, st->st_ino, st->st_nlink, upper);
    return;
  }
  if (!S_ISDIR(st->st_mode)) return;
  std::optional<Level> beneath = path.empty() ? std::nullopt : p.UniformLevelBeneath(path);
  if (beneath && *beneath != Level::kNone) return;  // nothing beneath is hidden: true values
  // The subtree may hide entries: st_nlink (2 + subdirectories) and st_size (grows with names)
  // would count them. 1 is the conventional "link count unknown" for directories (btrfs, many
  // FUSE filesystems); find(1) then simply skips its leaf optimisation.
  st->st_nlink = 1;
  st->st_size = 4096;
  st->st_blocks = 8;
}

void PermFs::FillEntry(const Policy& p, Inode* node, const std::string& path,
                       const struct stat& st, bool upper, Level level,
                       fuse_entry_param* e) const {
  std::memset(e, 0, sizeof(*e));
  e->ino = table_->NodeId(node);
  e->attr = st;
  Present(p, path, &e->attr, upper, level);
  HideCheckpointLinks(&e->attr);
  SentAttrs(node);
  if (delta_) e->attr.st_ino = node->ino;  // unchanged by a copy-up
  e->attr_timeout = options_.attr_timeout_s;
  e->entry_timeout = options_.entry_timeout_s;
}

int PermFs::DoLookup(fuse_req_t req, const Policy& p, Inode* parent, const char* name,
                     fuse_entry_param* e, bool audit, Missing* missing) {
  if (std::strlen(name) > NAME_MAX) return ENAMETOOLONG;
  if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) return ENOENT;
  std::string path = table_->ChildPath(parent, name);
  if (path.empty()) return ENOENT;
  UniqueFd fd;
  struct stat st;
  bool upper = false;
  if (delta_) {
    Visible v;
    if (int err = Resolve(path, &v, parent, name)) {
      if (missing != nullptr && err == ENOENT) *missing = Missing::kAbsent;
      return err;
    }
    if (v.upper && S_ISDIR(v.st.st_mode)) AdoptUpperTwin(path, parent, name, v);
    fd = std::move(v.fd);
    st = v.st;
    upper = v.upper;
  } else {
    auto pfd = table_->PathFd(parent);
    if (!pfd.ok()) return pfd.error().ToErrno();
    fd.Reset(::openat((*pfd)->get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      if (missing != nullptr && errno == ENOENT) *missing = Missing::kAbsent;
      return errno;
    }
    if (::fstat(fd.get(), &st) != 0) return errno;
  }
  Verdict v = Decide(p, path, S_ISDIR(st.st_mode));
  if (v.level != Level::kNone && S_ISREG(st.st_mode) && st.st_nlink > 1) {
    // A hard link is as hidden as its most hidden name, wherever that name is.
    bool vouched = true;
    Verdict lv = LinkVerdict(p, st.st_dev, st.st_ino, st.st_nlink, upper, &vouched);
    if (lv.level < v.level) v = lv;
  }
  if (v.level == Level::kNone) {
    // Hidden = absent: same errno as a name that does not exist.
    if (missing != nullptr) *missing = Missing::kHidden;
    return audit ? Deny(req, path, "lookup", v, ENOENT) : ENOENT;
  }
  auto node = table_->AddLookup(parent, name, std::move(fd), st, upper);
  if (!node.ok()) return node.error().ToErrno();
  FillEntry(p, *node, path, st, upper, v.level, e);
  return 0;
}

int PermFs::RegisterNew(const Policy& p, Inode* parent, const char* name, int io_fd,
                        fuse_entry_param* e, int dir_fd, bool upper, mode_t mode) {
  std::shared_ptr<UniqueFd> pfd;
  if (dir_fd < 0) {
    auto r = table_->PathFd(parent);
    if (!r.ok()) return r.error().ToErrno();
    pfd = std::move(*r);
    dir_fd = pfd->get();
  }
  UniqueFd fd;
  if (io_fd >= 0) {
    // The exact object we created, not whatever the name points at by now.
    fd.Reset(::open(ProcFdPath(io_fd).c_str(), O_PATH | O_CLOEXEC));
  } else {
    fd.Reset(::openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!fd) return errno;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errno;
  // The daemon (root) created it: hand it to the tree's owner. Both ids are only changed when
  // they differ (no syscall when the daemon already is the owner, e.g. a root-owned tree), and a
  // group inherited from a setgid directory (any group but the daemon's) is kept, as natively.
  const bool linked = mode == kLinked;
  const uid_t uid = linked || st.st_uid == owner_uid_ ? static_cast<uid_t>(-1) : owner_uid_;
  const gid_t gid = (linked || st.st_gid == owner_gid_ || st.st_gid != daemon_gid_)
                        ? static_cast<gid_t>(-1)
                        : owner_gid_;
  if (uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) {
    // On the O_PATH fd of exactly this object; a symlink's own owner (AT_EMPTY_PATH never follows).
    if (::fchownat(fd.get(), "", uid, gid, AT_EMPTY_PATH) != 0) return errno;
    if (::fstat(fd.get(), &st) != 0) return errno;
  }
  if (mode != kKeepMode && !linked && !S_ISLNK(st.st_mode) && (st.st_mode & 07777) != mode) {
    // Only when the worker kept the daemon's umask (internal::NoDaemonUmask failed).
    if (::chmod(ProcFdPath(fd.get()).c_str(), mode) != 0) return errno;
    if (::fstat(fd.get(), &st) != 0) return errno;
  }
  std::string path = table_->ChildPath(parent, name);
  ForgetAbsent(path, /*beneath=*/false);
  auto node = table_->AddLookup(parent, name, std::move(fd), st, upper);
  if (!node.ok()) return node.error().ToErrno();
  // A new object is `write` (its name was decided so); a new name of an existing file is as
  // restrictive as its most restrictive name.
  const Level level = linked ? DecideInode(p, *node).level : Level::kWrite;
  FillEntry(p, *node, path, st, upper, level, e);
  return 0;
}

void PermFs::Init(fuse_conn_info* conn) {
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  // O_TRUNC arrives inside OPEN (checked there as a write intent) instead of a separate SETATTR.
  // Not when opens do not reach us: the truncation then comes as a SETATTR, decided as a write.
  if (!kernel_checks_) want(FUSE_CAP_ATOMIC_O_TRUNC);
  // Opens decided by the kernel from the permission bits (default_permissions, set at mount):
  // the first permitted OPEN answers ENOSYS, which the kernel takes as "success, and stop
  // sending OPEN and RELEASE" (FUSE no_open). Never on a kernel that cannot: opens then stay
  // requests, checked here as well as by the kernel.
  kernel_open_ = kernel_checks_ && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
  want(FUSE_CAP_SPLICE_WRITE);
  want(FUSE_CAP_SPLICE_MOVE);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  want(FUSE_CAP_CACHE_SYMLINKS);  // readlink needs `read`; the cache is dropped on every change
  want(FUSE_CAP_PARALLEL_DIROPS);
  // Not a `want` flag: when the kernel can, opendir answers ENOSYS and the kernel stops sending
  // OPENDIR and RELEASEDIR (two round trips per directory walked).
  zero_message_opendir_ = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  // Never: writeback cache (writes acknowledged before we see them), POSIX ACLs (they force
  // default_permissions), EXPORT_SUPPORT, locks (kept local to the kernel). Nor AUTO_INVAL_DATA
  // (a libfuse default): it makes the kernel revalidate attributes on every read() of a cached
  // file, which cost 45 % of warm big-read throughput (docs/PERFORMANCE.md), and buys nothing
  // here: pages are dropped explicitly on every change we make or are told of (notify_inval_inode
  // with the pages), and a file changed on the host between opens loses keep_cache at its next
  // open (KeepCache).
  // Nor DONT_MASK: the kernel applies the caller's umask to new objects' modes before the request
  // reaches us (internal::NoDaemonUmask relies on that).
  if (kernel_checks_) conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_POSIX_ACL | FUSE_CAP_EXPORT_SUPPORT |
                  FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS | FUSE_CAP_SPLICE_READ |
                  FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_DONT_MASK);
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  conn->time_gran = 1;
}

void PermFs::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  // Read before deciding: an InvalidatePath that starts meanwhile bumps it before it collects the
  // absent names to drop, so a name recorded too late for it is never cached (below).
  const uint64_t generation = generation_.load();
  std::shared_lock lock(policy_mu_);
  auto dlock = DeltaShared();
  fuse_entry_param e;
  Missing missing = Missing::kNo;
  Inode* dir = table_->FromNodeId(parent);
  int err = DoLookup(req, *policy_, dir, name, &e, /*audit=*/true, &missing);
  if (err == ENOENT && missing != Missing::kNo && options_.negative_timeout_s > 0) {
    // The kernel may remember the answer (a negative dentry: node id 0 with a timeout). A hidden
    // name is cached like an absent one, so that the two cost the same (SECURITY-NOTES I2); its
    // record lets SetPolicy drop it, so an upgrade shows it at once.
    std::string path = table_->ChildPath(dir, name);
    if (!path.empty() &&
        NoteAbsent(parent, path, missing == Missing::kHidden) &&
        generation_.load() == generation) {
      std::memset(&e, 0, sizeof(e));
      e.entry_timeout = options_.negative_timeout_s;
      fuse_reply_entry(req, &e);
      return;
    }
  }
  if (err != 0) {
    fuse_reply_err(req, err);
  } else {
    // A file looked up: used after a bare listing, or at least wanted (ListingWithAttributes).
    if (!S_ISDIR(e.attr.st_mode)) bare_used_.fetch_add(1, std::memory_order_relaxed);
    fuse_reply_entry(req, &e);
  }
}

bool PermFs::NoteAbsent(fuse_ino_t parent, const std::string& path, bool hidden) {
  std::lock_guard lock(absent_mu_);
  if (absent_.size() >= kMaxAbsent) return false;
  absent_.emplace(path, parent, hidden);
  return true;
}

void PermFs::InvalidateAbsent(fuse_session* se, const std::vector<AbsentName>& names) {
  for (const auto& [path, dir, hidden] : names) {
    const std::string name = BaseName(path);
    fuse_lowlevel_notify_inval_entry(se, dir, name.c_str(), name.size());
  }
}

std::pair<std::set<PermFs::AbsentName>::iterator, std::set<PermFs::AbsentName>::iterator>
PermFs::AbsentBeneath(const std::string& path) {
  // Paths beneath `path` sort between "path/" and "path0" ('0' follows '/').
  const std::string lo = path == "/" ? "/" : path + "/";
  const std::string hi = path == "/" ? "0" : path + "0";
  return {absent_.lower_bound({lo, 0, false}), absent_.lower_bound({hi, 0, false})};
}

void PermFs::NoteRemoved(const std::string& path, bool is_dir) {
  if (!path.empty() && is_dir) ForgetAbsent(path, /*beneath=*/true);
}

void PermFs::MovedAbsent(const std::string& old_path, const std::string& new_path,
                         bool exchange) {
  std::lock_guard lock(absent_mu_);
  if (absent_.empty()) return;
  // The records strictly beneath `from` (the name itself is a positive dentry: it was renamed).
  auto take = [this](const std::string& from) {
    auto [first, last] = AbsentBeneath(from);
    std::vector<AbsentName> out(first, last);
    absent_.erase(first, last);
    return out;
  };
  auto moved = take(old_path);
  // A replaced target took its entries with it; an exchanged one moves to the old name.
  auto back = take(new_path);
  auto put = [this](const std::vector<AbsentName>& recs, const std::string& from,
                    const std::string& to) {
    for (const auto& [path, dir, hidden] : recs) {
      absent_.emplace(to + path.substr(from.size()), dir, hidden);
    }
  };
  put(moved, old_path, new_path);
  if (exchange) put(back, new_path, old_path);
}

void PermFs::ForgetAbsent(const std::string& path, bool beneath) {
  std::lock_guard lock(absent_mu_);
  if (absent_.empty()) return;
  auto it = absent_.lower_bound({path, 0, false});
  while (it != absent_.end() && std::get<0>(*it) == path) it = absent_.erase(it);
  if (!beneath) return;
  auto [first, last] = AbsentBeneath(path);
  absent_.erase(first, last);
}

void PermFs::Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  table_->Forget(table_->FromNodeId(ino), nlookup);
  fuse_reply_none(req);
}

void PermFs::ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) {
    table_->Forget(table_->FromNodeId(forgets[i].ino), forgets[i].nlookup);
  }
  fuse_reply_none(req);
}

void PermFs::Getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  const Policy& p = *policy_;
  std::string path = table_->PathOf(n);
  Verdict v = DecideFresh(p, n, Level::kView);
  if (int err = Check(req, path, "getattr", v, Level::kView)) return (void)fuse_reply_err(req, err);
  if (kernel_checks_ && fi == nullptr && !n->is_dir() && !n->is_symlink() &&
      v.level < Level::kWrite && n->attrs_current.load(std::memory_order_relaxed)) {
    // The kernel asks for attributes it still holds only when it has refused an access by them:
    // fuse_permission re-validates once before answering EACCES. That refusal (an open for
    // reading of a `view` file, for writing of a `read` one, an exec) is the policy's: audited
    // here, since the open itself never reaches us. (docs/FILESYSTEM.md says what else can send
    // it: a statx forced to sync.)
    (void)Deny(req, path, "open", v, EACCES);
  }
  struct stat st;
  // In delta mode an fh may still be the source object a copy-up has since replaced.
  if (const int hfd = HandleFd(fi); hfd >= 0 && n->is_reg() && !delta_) {
    if (::fstat(hfd, &st) != 0) return (void)fuse_reply_err(req, errno);
  } else {
    auto pfd = table_->PathFd(n);
    if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
    if (::fstat((*pfd)->get(), &st) != 0) return (void)fuse_reply_err(req, errno);
  }
  if (NoteNlink(n, st.st_nlink)) {
    // A link made or removed outside the mount since we last looked: decide over its names again.
    if (int err = Check(req, path, "getattr", DecideInode(p, n), Level::kView)) {
      return (void)fuse_reply_err(req, err);
    }
  }
  std::shared_lock<std::shared_mutex> dlock;
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) dlock = DeltaShared();  // VisibleLinks reads it
  Present(p, path, &st, table_->IsUpper(n), DecideInode(p, n).level);
  HideCheckpointLinks(&st);
  if (delta_) st.st_ino = n->ino;
  SentAttrs(n);
  fuse_reply_attr(req, &st, options_.attr_timeout_s);
}

void PermFs::Readlink(fuse_req_t req, fuse_ino_t ino) {
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  std::string path = table_->PathOf(n);
  const Retry retry = [this, ino](fuse_req_t r) { Readlink(r, ino); };
  if (int err = Check(req, path, "readlink", DecideInode(*policy_, n), Level::kRead, &retry)) {
    return ReplyErr(req, err);
  }
  auto pfd = table_->PathFd(n);
  if (!pfd.ok()) return (void)fuse_reply_err(req, pfd.error().ToErrno());
  char buf[PATH_MAX + 1];
  ssize_t len = ::readlinkat((*pfd)->get(), "", buf, sizeof(buf));
  if (len < 0) return (void)fuse_reply_err(req, errno);
  if (static_cast<size_t>(len) >= sizeof(buf)) return (void)fuse_reply_err(req, ENAMETOOLONG);
  buf[len] = '\0';
  fuse_reply_readlink(req, buf);
}

void PermFs::Access(fuse_req_t req, fuse_ino_t ino, int mask) {
  Inode* n = table_->FromNodeId(ino);
  std::shared_lock lock(policy_mu_);
  std::string path = table_->PathOf(n);
  Verdict v = DecideInode(*policy_, n);
  // Answered from levels, not mode bits (SPEC §3.5). For directories `read` = `view`: list, enter.
  Level need = Level::kView;
  if (mask & W_OK) {
    need = Level::kWrite;
  } else if ((mask & (R_OK | X_OK)) && !n->is_dir()) {
    need = Level::kRead;
  }
  // access(2) never waits: at `ask` it answers as if the access were granted, and the operation
  // that follows asks (a program that tests before it opens still reaches the prompt).
  if (v.level == Level::kAsk) need = Level::kAsk;
  if (int err = Check(req, path, "access", v, need)) return (void)fuse_reply_err(req, err);
  if ((mask & X_OK) && !n->is_dir()) {
    // Like root natively: executable only when some x bit is set.
    auto pfd = table_->PathFd(n);
    struct stat st;
    if (!pfd.ok() || ::fstat((*pfd)->get(), &st) != 0) return (void)fuse_reply_err(req, EACCES);
    if ((st.st_mode & 0111) == 0) return (void)fuse_reply_err(req, EACCES);
  }
  fuse_reply_err(req, 0);
}

void PermFs::Statfs(fuse_req_t req, fuse_ino_t /*ino*/) {
  struct statvfs sv;
  if (::fstatvfs(table_->root_fd(), &sv) != 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_statfs(req, &sv);
}

Status PermFs::CheckPolicy(const Policy& policy) const {
  if (kernel_checks_ && HasAskRule(policy)) {
    return Error(ErrorCode::kFailedPrecondition,
                 "this sandbox cannot ask: it started without an `ask` rule, so the kernel decides "
                 "its opens and cannot hold one for a decision; create the sandbox with an `ask` "
                 "rule (one matching nothing is enough, e.g. /.ask/**=ask) to add `ask` rules "
                 "later");
  }
  return OkStatus();
}

void PermFs::SetPolicy(Policy policy) {
  auto fresh = std::make_shared<const Policy>(std::move(policy));
  std::shared_ptr<const Policy> old;
  {
    std::unique_lock lock(policy_mu_);
    old = std::exchange(policy_, fresh);
    generation_++;
    // Every cached decision is stale: from here on each request on an open file (READ, WRITE)
    // is judged by the new policy, and handlers hold policy_mu_ shared until their reply.
    table_->BumpEpoch();
  }
  ReconsiderAsks(*fresh);
  std::shared_lock session_lock(session_mu_);
  fuse_session* se = session_;
  if (se == nullptr) return;
  // Names the kernel holds as absent because the old policy hid them (Lookup recorded them
  // before replying, under policy_mu_): any of them may be visible now. Absent ones stay absent.
  std::vector<AbsentName> hidden;
  {
    std::lock_guard absent_lock(absent_mu_);
    for (auto it = absent_.begin(); it != absent_.end();) {
      if (!std::get<2>(*it)) {
        ++it;
        continue;
      }
      hidden.push_back(*it);
      it = absent_.erase(it);
    }
  }
  InvalidateAbsent(se, hidden);
  // Every directory: its listing, size and link count may change. Every other inode whose level
  // changed: its dentries (visibility), attributes and cached pages, mapped ones included (the
  // kernel unmaps them: the next access faults into a READ, which is judged anew). An inode is
  // decided over all its names (its hard links' too), so a rule on a name the kernel never saw
  // reaches it. The names of one inode are adjacent in the snapshot.
  std::vector<KnownName> known = table_->Snapshot();
  std::vector<std::pair<size_t, size_t>> stale;  // [i, j) name ranges of inodes to invalidate
  std::vector<bool> changed_range;
  for (size_t i = 0, j = 0; i < known.size(); i = j) {
    const KnownName& k = known[i];
    InodeNames names;
    names.dev = k.dev;
    names.ino = k.ino;
    names.upper = k.upper;
    for (j = i; j < known.size() && known[j].nodeid == k.nodeid; ++j) {
      names.paths.push_back(known[j].path);
    }
    bool vouched = true;
    const bool changed =
        DecideNames(*old, names, k.is_dir, k.is_reg, k.nlink, &vouched).level !=
        DecideNames(*fresh, names, k.is_dir, k.is_reg, k.nlink, &vouched).level;
    if (!changed && !k.is_dir) continue;
    stale.emplace_back(i, j);
    changed_range.push_back(changed);
  }
  if (kernel_checks_) {
    std::vector<uint64_t> ids;
    ids.reserve(stale.size());
    for (auto [i, j] : stale) ids.push_back(known[i].nodeid);
    table_->MarkAttrsStale(ids);
  }
  for (size_t r = 0; r < stale.size(); ++r) {
    auto [i, j] = stale[r];
    for (size_t x = i; changed_range[r] && x < j; ++x) {
      if (known[x].parent_nodeid == 0) continue;
      fuse_lowlevel_notify_inval_entry(se, known[x].parent_nodeid, known[x].name.c_str(),
                                       known[x].name.size());
    }
    fuse_lowlevel_notify_inval_inode(se, known[i].nodeid, 0, 0);
  }
}

void PermFs::ReconsiderAsks(const Policy& p) {
  // Held accesses the new rules decide by themselves (a remembered decision, an edited rule) are
  // re-run: the policy answers them now, not a person.
  asks_->Reconsider([&p](const AccessRequest& r) {
    Level level = Level::kAsk;
    for (bool is_dir : {false, true}) {
      Level l = p.Decide(r.path, is_dir).level;
      if (l != Level::kAsk) level = l;
    }
    return level;
  });
}

Status PermFs::InvalidatePath(std::string_view workspace_path) {
  AF_ASSIGN_OR_RETURN(std::string target, NormalizeWorkspacePath(workspace_path));
  generation_++;
  // The source changed outside the mount: its hard links may have too (walked again on need).
  source_links_->Invalidate();
  table_->BumpEpoch();
  std::shared_lock session_lock(session_mu_);
  fuse_session* se = session_;
  if (se == nullptr) return OkStatus();
  const std::string parent = ParentPath(target);  // a string: ParentPath returns one
  // Names cached as absent at, beneath or above the target (a name created at /a/b/c makes an
  // absent /a or /a/b wrong too). Taken after the generation moved (Lookup).
  std::vector<AbsentName> absent;
  {
    std::lock_guard lock(absent_mu_);
    for (auto it = absent_.begin(); it != absent_.end();) {
      const std::string& a = std::get<0>(*it);
      if (!PathIsWithin(a, target) && !PathIsWithin(target, a)) {
        ++it;
        continue;
      }
      absent.push_back(*it);
      it = absent_.erase(it);
    }
  }
  InvalidateAbsent(se, absent);
  std::vector<KnownName> known = table_->Snapshot();
  auto is_beneath = [&](const KnownName& k) { return PathIsWithin(k.path, target); };
  if (kernel_checks_) {
    std::vector<uint64_t> ids;
    for (const KnownName& k : known) {
      if (is_beneath(k) || (k.is_dir && k.path == parent)) ids.push_back(k.nodeid);
    }
    table_->MarkAttrsStale(ids);
  }
  for (const KnownName& k : known) {
    bool beneath = is_beneath(k);
    if (beneath) {
      if (k.parent_nodeid != 0) {
        fuse_lowlevel_notify_inval_entry(se, k.parent_nodeid, k.name.c_str(), k.name.size());
      }
      fuse_lowlevel_notify_inval_inode(se, k.nodeid, 0, 0);
    } else if (k.is_dir && k.path == parent) {
      fuse_lowlevel_notify_inval_inode(se, k.nodeid, 0, 0);  // its listing
    }
  }
  return OkStatus();
}

}  // namespace agentfense::fs
