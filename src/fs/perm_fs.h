// PermFs: the permission filesystem. A libfuse3 low-level filesystem that shows a host directory
// (the codebase) with the policy of SPEC §3.5 enforced on every operation, host objects reached
// through handles (inode_table.h), kernel caches used with long timeouts and explicit invalidation.
//
// Ownership and threads: one PermFs per mount (never one mount shared by two policies). Handlers run
// on libfuse worker threads; SetPolicy/InvalidatePath run on any *other* thread (never inside a
// request handler: a notification sent from a handler can deadlock the session, see
// fuse_lowlevel.h). The instance is reached from callbacks through fuse_req_userdata: no globals.
#pragma once

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/result.h"
#include "fs/approvals.h"
#include "fs/busy_poll.h"
#include "fs/changes.h"
#include "fs/delta.h"
#include "fs/inode_table.h"
#include "fs/link_index.h"
#include "policy/policy.h"

namespace agentfense::fs {

// One denied operation, for the audit log (SPEC §3.7).
struct AuditEvent {
  std::string path;        // workspace path the decision was about
  std::string_view op;     // "lookup", "open", "create", "rename", "setattr", ...
  int rule = -1;           // index of the deciding rule in the policy, -1 = default none
  pid_t pid = 0;           // the calling process (host pid namespace of the daemon)
  int error = 0;           // errno returned to the caller
  uid_t uid = 0;           // the caller's host uid
};
// Called synchronously on the request thread: must be thread-safe and quick (queue, don't block).
using AuditSink = std::function<void(const AuditEvent&)>;

struct FsOptions {
  // Kernel cache lifetimes. Long on purpose: correctness under rule and source changes comes from
  // explicit invalidation (SetPolicy, InvalidatePath), never from short timeouts.
  double entry_timeout_s = 86400;
  double attr_timeout_s = 86400;
  // Names found absent are cached by the kernel this long (negative dentries; 0 = never): every
  // change the kernel does not make itself is announced (InvalidatePath), as for the two above.
  // Hidden (`none`) names are cached alike (same cost as absent ones); SetPolicy drops them.
  double negative_timeout_s = 86400;
  size_t fd_cache_capacity = 4096;  // O_PATH fds kept open (process limit here: 20,000)
  // false: answer every xattr request with ENOSYS once, so the kernel stops asking (faster `ls -l`,
  // no user.* xattrs). true: user.* xattrs work; other namespaces read as absent.
  bool xattrs = true;
  // Worker threads; 1 = single-threaded loop. Both are safe (the multi-threaded crash is fixed, see
  // docs/FILESYSTEM.md); 1 stays the default because it measured faster on 2 vCPUs (warm find and
  // ls -lR: thread hand-offs cost more than they overlap for a serial caller).
  int threads = 1;
  // After answering a request, a worker keeps reading /dev/fuse for this long (µs) before it
  // sleeps in poll(), so that a caller issuing requests back to back (cp -r, tar x, rm -rf) does
  // not pay two wake-ups per request: 0 = always sleep (the default). Costs up to this much CPU
  // time after the last request of a burst, none while the mount is idle; on a loaded host that
  // CPU is taken from everything else (docs/PERFORMANCE.md, "What one request costs").
  int busy_poll_us = kDefaultBusyPollUs;  // 0 to kMaxBusyPollUs (fs/busy_poll.h)
  AuditSink audit;
  // The only caller served (SPEC §5, host side): a request from any other uid is refused with
  // EACCES and audited (op "caller"). uid 0 is served too: the kernel sends page writeback as
  // root, and without allow_other it refuses root processes itself (MountAccess). Unset = every
  // caller (an --allow-other mount; the kernel then enforces the host's permission bits).
  std::optional<uid_t> caller_uid;
  gid_t caller_gid = 0;  // with caller_uid: the group the kernel lets through with it
  // The kernel lets every local user reach the mount (allow_other, the Docker runtime's mount)
  // and only the daemon's caller check keeps them out: with kernel-checked opens, objects are
  // then shown without group and other permission bits, so the kernel refuses them too.
  bool others_reach_mount = false;
  // Opens decided by the kernel (docs/FILESYSTEM.md, "Opens without a round trip"): when the
  // mount serves one unprivileged identity (caller_uid set and not 0), the mount is made with
  // default_permissions, every object is shown as that identity's with the permission bits its
  // level allows (view: none, read: no write bits), and OPEN and RELEASE stop reaching the daemon
  // (FUSE no_open). Reads, writes and every name operation are still decided here, by the policy
  // in force. false: every open is a request (always the case for root and everyone mounts).
  bool kernel_open = true;
  size_t io_fd_cache_capacity = 1024;  // descriptors kept for data requests without a handle
  // Whether READDIRPLUS returns a listed file with its attributes (a host lookup and a kernel
  // inode each, so that a later stat or open costs no LOOKUP) or bare (name and type: what find
  // needs). kAdaptive follows the walker: attributes while most files listed bare are then
  // looked up (docs/FILESYSTEM.md, "Listings that follow their use"). Directories always come
  // with attributes. kAlways/kNever fix the choice (tests, measurements).
  enum class ListingAttrs { kAdaptive, kAlways, kNever };
  ListingAttrs listing_attrs = ListingAttrs::kAdaptive;
  // Copy-on-write delta (docs/DELTA.md): non-empty = every write lands in this directory
  // (created 0700 if missing), the source is never modified by the mount; the changes reach it
  // only through CommitDelta. Empty = writes go straight to the source.
  std::string delta_dir;
  uint64_t delta_quota_bytes = 0;   // 0 = unlimited; past it writes fail with ENOSPC
  uint64_t delta_quota_inodes = 0;  // 0 = unlimited
  // Host owner of every object the sandbox creates: files, directories, symlinks and FIFOs made
  // through the mount, the delta's upper objects, and what a commit lands in the source. -1 (the
  // default) = the uid/gid of the source root directory, so a tree owned by a user stays that
  // user's; never silently the daemon's (root). A new object in a setgid directory keeps the
  // group it inherits, as natively.
  uid_t new_owner_uid = static_cast<uid_t>(-1);
  gid_t new_owner_gid = static_cast<gid_t>(-1);
  // Hard links (LinkIndex): a link made outside the mount is noticed by its link count; the tree
  // is then walked again at most this often, and the file is treated conservatively meanwhile.
  std::chrono::milliseconds link_rescan_interval{1000};
  // Checkpoints of the delta (docs/CHECKPOINTS.md) this sandbox may keep at once.
  size_t max_checkpoints = 100;
  // `ask` paths (docs/PERMISSIONS.md): how long an access waits for a decision (0 = the default,
  // kDefaultAskTimeout), and who hears of every access held and of how it ended.
  std::chrono::milliseconds ask_timeout{0};
  AskSink ask_events;
};

class PermFs {
 public:
  // `source` must be an existing directory; it is opened once (O_RDONLY|O_DIRECTORY) and never
  // re-resolved.
  static Result<std::unique_ptr<PermFs>> Create(const std::string& source, policy::Policy policy,
                                                FsOptions options);
  ~PermFs();
  PermFs(const PermFs&) = delete;
  PermFs& operator=(const PermFs&) = delete;

  // The callbacks; userdata passed to fuse_session_new must be this PermFs.
  static const fuse_lowlevel_ops& Ops();

  // Set by the mount once the session exists; needed for invalidation notifications. Detaching
  // (nullptr) waits for notifications in flight: after it returns none touches the session.
  void AttachSession(fuse_session* session) {
    std::unique_lock lock(session_mu_);
    session_ = session;
  }

  // Replaces the policy atomically. Before returning, every kernel cache entry that could now be
  // stale (dentries, attributes, directory listings, file pages) is invalidated, so the very next
  // syscall sees the new rule. Call from a non-request thread.
  void SetPolicy(policy::Policy policy);
  std::shared_ptr<const policy::Policy> policy() const;
  // Whether SetPolicy(policy) would enforce what it says: kFailedPrecondition for an `ask` rule on
  // a mount whose opens the kernel decides (it cannot hold an open; SetPolicy would refuse those
  // paths instead). Callers that take rules from people check first, so the rules are refused
  // with a reason rather than stored and silently enforced as `none`.
  Status CheckPolicy(const policy::Policy& policy) const;

  // The source changed outside the mount (upload, delta sync): drops cached entries, attributes,
  // listings and pages at and beneath `workspace_path` ("/" = everything). Non-request thread.
  Status InvalidatePath(std::string_view workspace_path);

  // The delta's changes API (kFailedPrecondition without a delta). Non-request threads only:
  // Commit and Discard invalidate kernel caches before they return.
  bool has_delta() const { return delta_ != nullptr; }
  Result<ChangeSet> DeltaChanges();
  Result<CommitReport> CommitDelta();
  Result<int64_t> DiscardDelta();

  // Checkpoints of the delta (docs/CHECKPOINTS.md; kFailedPrecondition without a delta).
  // Non-request threads only. Restore invalidates the kernel caches before it returns: the very
  // next syscall of the sandbox sees the checkpoint's workspace.
  Result<CheckpointInfo> CreateCheckpoint(const std::string& name);
  Result<std::vector<CheckpointInfo>> ListCheckpoints();
  Result<CheckpointInfo> RestoreCheckpoint(const std::string& name);
  // From checkpoint `name` to checkpoint `against` ("" = the workspace now).
  Result<std::vector<Change>> DiffCheckpoint(const std::string& name, const std::string& against);
  Status DeleteCheckpoint(const std::string& name);

  // Accesses to `ask` paths waiting for a decision (approvals.h). Answer re-runs or denies one;
  // StopAsks denies all of them (EACCES) and refuses new ones: a stopping mount calls it while
  // it still serves requests.
  std::vector<AccessRequest> PendingAsks() const { return asks_->Pending(); }
  Status AnswerAsk(const std::string& id, const AskAnswer& answer) {
    return asks_->Answer(id, answer);
  }
  void StopAsks() { asks_->Stop(); }

  InodeTable& table() { return *table_; }
  const FsOptions& options() const { return options_; }
  // True when the mount must be made with default_permissions (FsOptions::kernel_open applies).
  bool kernel_checks() const { return kernel_checks_; }

  // Number of inodes the kernel currently references (for tests and diagnostics).
  size_t known_inodes() const { return table_->size(); }
  // The hard-link index of the source (or the delta's upper tree): size and walk cost.
  LinkIndex::Stats link_index_stats(bool upper = false) const { return Links(upper).stats(); }

  // Requests served since the mount, by kind ("lookup", "open", ...), for /metrics.
  std::vector<std::pair<std::string, uint64_t>> RequestCounts() const;
  static constexpr size_t kRequestKinds = 40;
  void CountRequest(size_t kind) {
    if (kind < kRequestKinds) requests_[kind].fetch_add(1, std::memory_order_relaxed);
  }
  // False (and audited) when the request comes from a uid this mount does not serve.
  bool ServesCaller(fuse_req_t req) const;

 private:
  // Runs a held request's handler again, with the same arguments (AskBroker::Resume).
  using Retry = AskBroker::Resume;
  struct Verdict {
    policy::Level level = policy::Level::kNone;
    int rule = -1;
  };
  class DirListing;

  PermFs(std::unique_ptr<InodeTable> table, policy::Policy policy, FsOptions options);

  // Delta mode (perm_fs_delta.cc). The object visible at a workspace path: the upper one, else
  // the source one unless the delta deleted it (or an ancestor).
  struct Visible {
    UniqueFd fd;  // O_PATH|O_NOFOLLOW
    struct stat st;
    bool upper = false;
  };
  // With `parent` and `name`, one side is resolved one component relative to the parent's own
  // descriptor (O_NOFOLLOW), as the plain mode does: the upper object when the parent is an upper
  // directory, the source object when it is a source directory. The other side, and lookups
  // without a parent, resolve `path` beneath the tree's root (OpenBeneath: in pieces when it is
  // longer than PATH_MAX, so a deep working directory works as natively).
  int Resolve(const std::string& path, Visible* v, Inode* parent = nullptr,
              const char* name = nullptr) const;
  // Resolve's source side: one component relative to `source_parent` (a source directory) when
  // given, else `path` beneath the tree's root.
  int ResolveLower(const std::string& path, Visible* v, Inode* source_parent,
                   const char* name) const;
  bool LowerVisible(const std::string& path) const;
  // 0 when the merged directory has no entry at all (hidden ones count), else ENOTEMPTY/errno.
  int MergedEmpty(const std::string& dir_path) const;
  // Makes the inode's backing object an upper one (copy-up; `empty`: without data).
  int CopyUpInode(Inode* n, bool empty);
  // Copy-up of the lower object at `path` (fd/st), switching a known inode to the copy.
  int CopyUpPath(const std::string& path, int lower_fd, const struct stat& st, bool empty);
  // A lookup found `v`, the upper twin of a directory (created when a child was made in it):
  // the inode known by the source directory at `path` moves to the twin, keeping its node id and
  // st_ino, as a copy-up does. No-op when the twin is known already or the source has no inode.
  void AdoptUpperTwin(const std::string& path, Inode* parent, const char* name, const Visible& v);
  // Copy-up of a whole merged directory tree; every source object beneath gets a deletion record.
  int CopyUpTree(const std::string& path);
  // The upper directory to create `name` (at `path`) in, in `parent`, after checking the merged
  // name is free.
  int PrepareCreate(const std::string& path, UniqueFd* dir_fd, Inode* parent, const char* name);
  int DeltaLoadDir(const policy::Policy& p, const std::string& dir_path, DirListing* d);
  void DeltaUnlink(fuse_req_t req, const policy::Policy& p, Inode* dir, const char* name,
                   bool is_rmdir, const Retry& retry);
  void DeltaRename(fuse_req_t req, const policy::Policy& p, Inode* odir, const char* name,
                   Inode* ndir, const char* newname, unsigned int flags, const Retry& retry);
  void DeltaLink(fuse_req_t req, const policy::Policy& p, Inode* n, Inode* ndir,
                 const char* newname);
  // After a commit or discard: inodes whose upper object is gone are rebased on the source.
  void RebaseUpper();
  // After a restore: every inode at or beneath one of `touched` (workspace paths) is rebased on
  // the object the merged view shows there now (when it is of the same type).
  void RebaseTouched(const std::vector<std::string>& touched);
  // An upper regular file still open for writing through the mount (commit and checkpoints copy
  // it rather than move or link it).
  bool UpperBusy(const struct stat& st);
  // A frozen upper object (shared with a checkpoint) is replaced by a private copy for inode `n`.
  int UnshareInode(Inode* n, const struct stat& st, bool empty);
  // st_nlink as the sandbox sees it: the names the checkpoints hold of an upper object are not
  // its links.
  void HideCheckpointLinks(struct stat* st) const;
  std::shared_lock<std::shared_mutex> DeltaShared() const {
    return delta_ ? std::shared_lock(delta_mu_) : std::shared_lock<std::shared_mutex>();
  }

  // Decisions. An empty path (detached inode) is `none`.
  Verdict Decide(const policy::Policy& p, const std::string& path, bool is_dir) const;
  // The decision for an inode: the most restrictive over all its names, the ones the kernel
  // looked up and, for a regular file with several links, every name the link index knows in its
  // tree (hidden ones included). `p` must be the current policy (the caller holds policy_mu_
  // shared): the result is cached in the inode until the table epoch moves.
  Verdict DecideInode(const policy::Policy& p, const Inode* inode) const;
  // The same, uncached, for any policy. `*vouched` becomes false when the link index could not
  // vouch for the names (the result is then the conservative one and must not be cached).
  Verdict DecideNames(const policy::Policy& p, const InodeNames& names, bool is_dir, bool is_reg,
                      nlink_t nlink, bool* vouched) const;
  // The most restrictive decision over the names the link index knows for the regular file
  // (dev, ino) of the source or upper tree, whose link count is `nlink` (> 1). While the index
  // disagrees with `nlink`: Conservative(p), and *vouched = false.
  Verdict LinkVerdict(const policy::Policy& p, dev_t dev, ino_t ino, nlink_t nlink, bool upper,
                      bool* vouched) const;
  // The most restrictive level `p` can give anything: the uniform level of the whole tree, else
  // `none`.
  static policy::Level Conservative(const policy::Policy& p);
  // How many names of that file the sandbox sees (its presented st_nlink): the names the index
  // knows in the tree, minus (delta mode) those the delta removed or shadows. 1 when unknown.
  nlink_t VisibleLinks(dev_t dev, ino_t ino, nlink_t nlink, bool upper) const;
  // Records the link count just seen for a regular file's backing object; true when it changed
  // since the last time (its names may have too: cached decisions are dropped).
  bool NoteNlink(Inode* n, nlink_t nlink);
  // DecideInode, except that a hard-linked file about to be refused `need` is stat'ed again first:
  // a link removed outside the mount may have lifted what hid it.
  Verdict DecideFresh(const policy::Policy& p, Inode* n, policy::Level need);
  LinkIndex& Links(bool upper) const { return upper ? *upper_links_ : *source_links_; }
  // Revocation (SPEC §3.7): a request on an open file handle (read, write, lseek) is judged by the
  // policy in force now, not by the one its open was judged by. 0 or EACCES (audited). `fh`: the
  // handle, for what an `ask` decision granted it (HandleGrant).
  int CheckHandle(fuse_req_t req, const Inode* n, std::string_view op, policy::Level need,
                  uint64_t fh) const;
  // Reports a denial to the audit sink and returns `err`.
  int Deny(fuse_req_t req, const std::string& path, std::string_view op, const Verdict& v,
           int err) const;
  // After a policy change: held accesses the new rules decide are re-run (AskBroker::Reconsider).
  void ReconsiderAsks(const policy::Policy& p);
  // Check's answer for a request it handed to the broker: the handler must not reply.
  static constexpr int kHeld = -1;
  // 0 when `v` reaches `need`; else ENOENT for `none` (hidden = absent), EACCES otherwise (or
  // `denied` when set), audited. At `ask` (docs/PERMISSIONS.md): 0 when the broker granted this
  // request `need` on `path`; else, given a `retry`, the request is held until a decision and
  // kHeld returned (the handler returns without replying; `retry` runs it again once allowed).
  int Check(fuse_req_t req, const std::string& path, std::string_view op, const Verdict& v,
            policy::Level need, const Retry* retry = nullptr, int denied = 0) const;
  // fuse_reply_err, except for kHeld (the broker answers that request later).
  static void ReplyErr(fuse_req_t req, int err) {
    if (err != kHeld) fuse_reply_err(req, err);
  }
  // Open file handles that an `ask` decision opened, with the level granted: requests on the
  // handle (fallocate, ftruncate) are judged by it rather than asking again.
  void GrantHandle(uint64_t fh, policy::Level level);
  policy::Level HandleGrant(uint64_t fh) const;
  void DropHandle(uint64_t fh);

  // Presents host attributes: directories whose subtree may hide entries get a constant st_size
  // and st_nlink so hidden children leave no trace; a hard-linked file shows the number of names
  // the sandbox sees (VisibleLinks), never one that counts a hidden name. `upper`: the object is
  // in the delta's upper tree. With kernel_checks_, the owner is the served identity and the
  // permission bits are those `level` allows (the kernel enforces them on open).
  void Present(const policy::Policy& p, const std::string& path, struct stat* st, bool upper,
               policy::Level level) const;
  // Sends the attributes of `n` to the kernel from now on (attrs_current), for the audit of the
  // kernel's own refusals.
  void SentAttrs(Inode* n) const {
    if (kernel_checks_) n->attrs_current.store(true, std::memory_order_relaxed);
  }
  // The host descriptor of an open file handle, or -1 when the open had none of ours (opens
  // decided by the kernel): then IoFd serves the request.
  int HandleFd(const fuse_file_info* fi) const {
    return fi != nullptr && !kernel_open_ ? static_cast<int>(fi->fh) : -1;
  }
  // The descriptor a data request uses: the open's own (borrowed: RELEASE cannot overtake the
  // request), else the inode's I/O descriptor (`write`: writable), held by `hold` until the host
  // call is done.
  struct DataDescriptor {
    int fd = -1;
    std::shared_ptr<UniqueFd> hold;
  };
  Result<DataDescriptor> DataFd(Inode* n, const fuse_file_info* fi, bool write);
  // Before a change (WRITE, FALLOCATE) that comes without a handle of ours (kernel-decided opens):
  // holds the delta lock shared in `dlock` until the reply (a commit or discard moves upper
  // objects only while no change is in flight) and copies a source object up first, as OPEN for
  // writing does otherwise. 0 or an errno.
  int PrepareChange(Inode* n, const fuse_file_info* fi,
                    std::shared_lock<std::shared_mutex>* dlock);
  // Looks up `name` in `parent` on the host and, if visible, fills `e` (one kernel reference).
  // Why a lookup answered ENOENT: the name is not there, or the policy hides it (`none`).
  enum class Missing { kNo, kAbsent, kHidden };
  int DoLookup(fuse_req_t req, const policy::Policy& p, Inode* parent, const char* name,
               fuse_entry_param* e, bool audit, Missing* missing = nullptr);
  // Negative dentries (docs/FILESYSTEM.md, "Negative entries"): the names the kernel may hold as
  // absent with a long timeout are remembered so that InvalidatePath (and, for hidden ones,
  // SetPolicy) can drop them. NoteAbsent records `path` in directory `parent` (false: the set is
  // full, do not let the kernel cache it).
  bool NoteAbsent(fuse_ino_t parent, const std::string& path, bool hidden);
  // A name created through the mount is no longer absent (the kernel replaced its dentry); a
  // removed directory takes the absent names beneath it along (`beneath`).
  void ForgetAbsent(const std::string& path, bool beneath);
  // After a successful unlink or rmdir of `path`: nothing is recorded (the kernel expires an
  // unlinked name's dentry itself, fuse_entry_unlinked), but a removed directory's dentries went
  // with it, so the absent names recorded beneath it are dropped.
  void NoteRemoved(const std::string& path, bool is_dir);
  // After a rename through the mount: the kernel moved the dentries beneath the old name, the
  // absent ones included, so their records follow (InvalidatePath matches by path).
  void MovedAbsent(const std::string& old_path, const std::string& new_path, bool exchange);
  // Drops those names from the kernel's cache (a negative dentry goes, a positive one created
  // meanwhile too: it is simply looked up again). With session_mu_ held, from a non-request thread.
  // (workspace path, parent node id, hidden by the policy)
  using AbsentName = std::tuple<std::string, fuse_ino_t, bool>;
  static void InvalidateAbsent(fuse_session* se, const std::vector<AbsentName>& names);
  // The records strictly beneath `path` (absent_mu_ held): they sort from "path/" to "path0".
  std::pair<std::set<AbsentName>::iterator, std::set<AbsentName>::iterator> AbsentBeneath(
      const std::string& path);

  void FillEntry(const policy::Policy& p, Inode* node, const std::string& path,
                 const struct stat& st, bool upper, policy::Level level,
                 fuse_entry_param* e) const;
  // Opens the new name `name` in `parent` (just created by us), hands it to the tree's owner
  // (FsOptions::new_owner_uid), gives it `mode` when the thread could not drop the daemon's umask
  // (internal::NoDaemonUmask), and registers it. `mode` = kKeepMode: the mode is right as it is
  // (symlinks); kLinked: not a new object but a new name of an existing one (link), left alone.
  static constexpr mode_t kKeepMode = static_cast<mode_t>(-1);
  static constexpr mode_t kLinked = static_cast<mode_t>(-2);
  int RegisterNew(const policy::Policy& p, Inode* parent, const char* name, int io_fd,
                  fuse_entry_param* e, int dir_fd = -1, bool upper = false,
                  mode_t mode = kKeepMode);

  // Handlers (perm_fs.cc).
  void Init(fuse_conn_info* conn);
  void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
  void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets);
  void Getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Readlink(fuse_req_t req, fuse_ino_t ino);
  void Access(fuse_req_t req, fuse_ino_t ino, int mask);
  void Statfs(fuse_req_t req, fuse_ino_t ino);
  // Directories and names (perm_fs_dir.cc).
  void Opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus);
  void Releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  // Readdir helpers; run under the DirListing's lock and return an errno (0 = ok), never reply.
  int LoadDir(const policy::Policy& p, Inode* n, DirListing* d);
  // The directories a plain READDIR stats its regular entries in (HiddenLink), opened once.
  struct LinkProbe {
    std::string path;                        // the directory's workspace path
    std::shared_ptr<UniqueFd> dir[2];        // [0] source side, [1] upper side (delta)
  };
  // True when the regular file `name` of `dir` (`upper`: of its upper side) is a hard link that
  // is `none` over its names.
  bool HiddenLink(const policy::Policy& p, Inode* dir, const std::string& name, bool upper,
                  LinkProbe* probe);
  int FillDir(fuse_req_t req, const policy::Policy& p, Inode* n, DirListing* d, off_t off, bool plus,
              std::vector<char>& buf, size_t* pos);
  void Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
  void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
  void Symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name);
  void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir);
  void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags);
  void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);
  // Files, attributes, xattrs (perm_fs_file.cc).
  void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi);
  void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void WriteBuf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi);
  void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                 fuse_file_info* fi);
  void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi);
  void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid, fuse_file_info* fi);
  void Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags);
  void Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  void Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  void Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name);


  std::unique_ptr<InodeTable> table_;
  FsOptions options_;
  // FsOptions::new_owner_uid/gid resolved at Create; daemon_gid_ = the group the kernel gives a
  // new object we create (outside setgid directories).
  uid_t owner_uid_ = 0;
  gid_t owner_gid_ = 0;
  gid_t daemon_gid_ = 0;
  // Held shared by SetPolicy/InvalidatePath for all their notifications, exclusively by
  // AttachSession. Taken with no other lock of ours held.
  std::shared_mutex session_mu_;
  fuse_session* session_ = nullptr;  // guarded by session_mu_

  // Handlers that decide and reply hold policy_mu_ shared from the decision until after the reply;
  // SetPolicy swaps under the exclusive lock. So once SetPolicy has swapped, no reply based on the
  // old policy can still reach the kernel after the invalidation that follows. Leaf lock: nothing
  // else is acquired while waiting for it exclusively.
  mutable std::shared_mutex policy_mu_;
  std::shared_ptr<const policy::Policy> policy_;
  // Bumped on every policy or source change: directory snapshots made before are rebuilt.
  std::atomic<uint64_t> generation_{1};
  std::array<std::atomic<uint64_t>, kRequestKinds> requests_{};

  // Delta mode only. Request handlers that read or change the delta hold delta_mu_ shared (after
  // policy_mu_); commit and discard hold it exclusively, never while waiting for policy_mu_ and
  // never while notifying the kernel.
  std::unique_ptr<DeltaStore> delta_;
  mutable std::shared_mutex delta_mu_;
  std::mutex unshare_mu_;  // one unshare at a time (under delta_mu_ shared, before table locks)

  // Accesses to `ask` paths held for a decision. Created with the PermFs, never null.
  std::unique_ptr<AskBroker> asks_;
  mutable std::mutex handle_grants_mu_;  // leaf lock
  std::unordered_map<uint64_t, policy::Level> handle_grants_;

  // Every name of the multiply-linked regular files of the source and (delta mode) of the upper
  // tree, built on first need. Leaf locks of their own.
  std::unique_ptr<LinkIndex> source_links_;
  std::unique_ptr<LinkIndex> upper_links_;

  // Absent names the kernel may cache (NoteAbsent). Leaf lock.
  // At most kMaxAbsent (past it, a lookup answered ENOENT is not cached); pruned by the creations,
  // rmdirs and InvalidatePath calls that follow.
  static constexpr size_t kMaxAbsent = 16384;
  std::mutex absent_mu_;
  std::set<AbsentName> absent_;

  // Listings being read, by directory node id (PermFs::Readdir). Bounded: a reader that stops
  // before the end (`ls | head`) leaves its listing behind until it is evicted.
  static constexpr size_t kMaxListings = 4096;
  std::mutex listings_mu_;  // leaf lock
  std::unordered_map<fuse_ino_t, std::shared_ptr<DirListing>> listings_;
  // FsOptions::ListingAttrs::kAdaptive: files listed bare since the last decision, how many
  // LOOKUPs of files came after (a walker that stats or opens what it lists), and the choice.
  // Only a heuristic of cost: any choice lists the same names and decides every lookup alike.
  bool ListingWithAttributes();
  static constexpr uint64_t kListingWindow = 32;  // files listed bare between two decisions
  static constexpr uint64_t kProbeEvery = 16;     // with attributes, every 16th listing is bare
  std::atomic<uint64_t> bare_listed_{0};
  std::atomic<uint64_t> bare_used_{0};
  std::mutex listing_use_mu_;  // leaf lock, over the two below
  uint64_t listings_loaded_ = 0;
  bool listing_attrs_ = true;
  bool listing_decided_ = false;
  // The kernel handles opendir/releasedir itself once opendir answers ENOSYS (Init).
  bool zero_message_opendir_ = false;
  // The mount has default_permissions and objects are presented with policy-derived permission
  // bits, owned by the served identity (FsOptions::kernel_open; fixed at Create).
  bool kernel_checks_ = false;
  // ...and the kernel opens files without asking (first OPEN answered ENOSYS): file handles are
  // never ours (fixed in Init, before any request).
  bool kernel_open_ = false;
};

}  // namespace agentfense::fs
