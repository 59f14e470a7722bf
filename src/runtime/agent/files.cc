// File operations of the agent (proto::FileOp): the MCP file tools act through these, inside the
// sandbox, as its identity, on the same mount its commands use. The permission filesystem decides
// every access exactly as it does for `cat` or `ls`: a hidden path is ENOENT, a `view` file lists
// but does not open. Nothing here checks the policy itself.
//
// They never run in the agent's loop: the mount may hold an open at an `ask` path until a person
// answers (up to the sandbox's ask timeout), and the sandbox's other requests (commands, sessions,
// other file operations) must go on meanwhile. File workers carry them out: processes forked from
// the agent, each running one operation at a time, fed over a socketpair in the agent protocol's
// own frames; kept while busy, they exit after kFileWorkerIdle without work. Processes, not
// threads: the agent stays single-threaded, so Spawn's children may keep using any call between
// fork and exec; a worker can be killed (the mount lets a killed waiter go at once) where a
// thread blocked in open(2) could not be; and it inherits everything the sandbox applies to the
// agent (uid, rlimits, seccomp, non-dumpable). Long-lived rather than one per operation: a fork
// per operation cost 0.3-0.5 ms, and 1.4 ms for a 256 KiB read (copy-on-write faults, pipe
// turns) on a busy machine. Answers leave in completion order; operations that conflict (one
// path, one of them a write or an edit) run in arrival order.
//
// Within the child every call is still bounded (one frame of data, a capped walk) and never waits
// on anything a command controls: files are opened O_NONBLOCK (a FIFO would otherwise block it
// forever) and only regular files are read or written, so a device or FIFO reached through a
// symlink is refused, never touched.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/path.h"
#include "runtime/agent/agent.h"

namespace agentfense::runtime::agent {
namespace {

// A frame holds at most kMaxPayload; a listing stops (truncated) before its entries need more.
constexpr size_t kListBudget = proto::kMaxPayload - 64 * 1024;

// Workers at most (operations running at once), and operations waiting for one beyond them: 256
// in all, the host's own bounds (calls in flight per MCP stdio connection, `ask` accesses waiting
// per sandbox). While 64 operations wait for people the next ones queue; commands and sessions
// are never held.
constexpr size_t kMaxFileWorkers = 64;
constexpr size_t kMaxFileJobsWaiting = 192;

bool Mutates(const proto::FileOp& op) {
  return op.op == proto::FileOpKind::kWrite || op.op == proto::FileOpKind::kEdit;
}

// Two operations on one path, one of them a write or an edit: they run in arrival order, as they
// did when the loop ran them inline (concurrent callers on the host have no order between them
// anyway; one caller waits for each answer, as the MCP tools do).
bool Conflict(const proto::FileOp& a, const proto::FileOp& b) {
  return a.path == b.path && (Mutates(a) || Mutates(b));
}

proto::FileType TypeOf(mode_t mode) {
  if (S_ISREG(mode)) return proto::FileType::kFile;
  if (S_ISDIR(mode)) return proto::FileType::kDirectory;
  if (S_ISLNK(mode)) return proto::FileType::kSymlink;
  return proto::FileType::kOther;
}

proto::FileEntry EntryOf(std::string path, const struct stat& st) {
  proto::FileEntry e;
  e.path = std::move(path);
  e.type = TypeOf(st.st_mode);
  e.size = static_cast<uint64_t>(st.st_size);
  e.mode = st.st_mode & 07777;
  e.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return e;
}

// The errno meaning is what the caller reports ("EACCES: permission denied"), so the Error keeps
// it and names the workspace path, never a host path.
Error SysError(int e, const std::string& path) {
  return Error::FromErrno(e, path.empty() ? "/workspace" : "/workspace/" + path);
}

class FileOps {
 public:
  explicit FileOps(const std::string& workspace) : workspace_(workspace) {}

  Result<proto::FileResult> Run(const proto::FileOp& op) {
    // The host validated the path already; a path that escapes the workspace lexically is refused
    // here too (defence in depth), while symlinks are followed as a command would follow them.
    auto normalized = NormalizeWorkspacePath(op.path);
    if (!normalized.ok() || *normalized != "/" + op.path) {
      if (!(op.path.empty() && normalized.ok() && *normalized == "/")) {
        return Error(ErrorCode::kInvalidArgument, "file operation on a non-canonical path");
      }
    }
    switch (op.op) {
      case proto::FileOpKind::kStat:
        return Stat(op.path);
      case proto::FileOpKind::kRead:
        return Read(op);
      case proto::FileOpKind::kWrite:
        return Write(op);
      case proto::FileOpKind::kList:
        return List(op);
      case proto::FileOpKind::kEdit:
        return Edit(op);
    }
    return Error(ErrorCode::kInvalidArgument, "unknown file operation");
  }

 private:
  std::string Host(const std::string& rel) const {
    return rel.empty() ? workspace_ : workspace_ + "/" + rel;
  }

  Result<UniqueFd> Open(const std::string& rel, int flags, mode_t mode = 0) const {
    int fd = ::open(Host(rel).c_str(), flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode);
    if (fd < 0) return SysError(errno, rel);
    return UniqueFd(fd);
  }

  // A regular file opened with `flags`; anything else is refused before a byte moves.
  Result<std::pair<UniqueFd, struct stat>> OpenRegular(const std::string& rel, int flags,
                                                       mode_t mode = 0) const {
    AF_ASSIGN_OR_RETURN(UniqueFd fd, Open(rel, flags, mode));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return SysError(errno, rel);
    if (S_ISDIR(st.st_mode)) return SysError(EISDIR, rel);
    if (!S_ISREG(st.st_mode)) {
      return Error(ErrorCode::kInvalidArgument, "/workspace/" + rel + " is not a regular file",
                   EINVAL);
    }
    // Back to blocking: reads and writes of a regular file on the mount are answered by the
    // filesystem, and EAGAIN has no meaning for them.
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    return std::make_pair(std::move(fd), st);
  }

  Result<proto::FileResult> Stat(const std::string& rel) const {
    struct stat st {};
    if (::stat(Host(rel).c_str(), &st) != 0) return SysError(errno, rel);
    proto::FileResult r;
    r.stat = EntryOf(rel, st);
    return r;
  }

  Result<proto::FileResult> Read(const proto::FileOp& op) const {
    AF_ASSIGN_OR_RETURN(auto opened, OpenRegular(op.path, O_RDONLY));
    auto& [fd, st] = opened;
    proto::FileResult r;
    r.data.resize(op.limit);
    size_t got = 0;
    while (got < op.limit) {
      ssize_t n = ::pread(fd.get(), r.data.data() + got, op.limit - got,
                          static_cast<off_t>(op.offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return SysError(errno, op.path);
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    r.data.resize(got);
    r.eof = got < op.limit || op.offset + got >= static_cast<uint64_t>(st.st_size);
    r.stat = EntryOf(op.path, st);
    return r;
  }

  Status MakeParents(const std::string& rel) const {
    for (size_t slash = rel.find('/'); slash != std::string::npos;
         slash = rel.find('/', slash + 1)) {
      std::string dir = Host(rel.substr(0, slash));
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return SysError(errno, rel.substr(0, slash));
    }
    return OkStatus();
  }

  Result<proto::FileResult> Write(const proto::FileOp& op) const {
    if (op.path.empty()) return SysError(EISDIR, op.path);
    if (op.flags & proto::kFileWriteMakeParents) AF_RETURN_IF_ERROR(MakeParents(op.path));
    int flags = O_WRONLY | O_CREAT;
    if (op.flags & proto::kFileWriteTruncate) flags |= O_TRUNC;
    AF_ASSIGN_OR_RETURN(auto opened, OpenRegular(op.path, flags, 0644));
    auto& [fd, st] = opened;
    AF_RETURN_IF_ERROR(WriteAt(fd.get(), op.path, op.data, op.offset));
    if (::fstat(fd.get(), &st) != 0) return SysError(errno, op.path);
    proto::FileResult r;
    r.count = op.data.size();
    r.stat = EntryOf(op.path, st);
    return r;
  }

  static Status WriteAt(int fd, const std::string& rel, std::string_view data, uint64_t offset) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                           static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return SysError(errno, rel);
      done += static_cast<size_t>(n);
    }
    return OkStatus();
  }

  Result<proto::FileResult> Edit(const proto::FileOp& op) const {
    // O_RDWR: a file the sandbox may only read fails here (EACCES), before anything is read.
    AF_ASSIGN_OR_RETURN(auto opened, OpenRegular(op.path, O_RDWR));
    auto& [fd, st] = opened;
    if (static_cast<uint64_t>(st.st_size) > proto::kMaxEditFileBytes) {
      return Error(ErrorCode::kFailedPrecondition,
                   "/workspace/" + op.path + " is larger than the 16 MiB an edit handles", EFBIG);
    }
    std::string text;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return SysError(errno, op.path);
      if (n == 0) break;
      if (text.size() + static_cast<size_t>(n) > proto::kMaxEditFileBytes) {
        return Error(ErrorCode::kFailedPrecondition,
                     "/workspace/" + op.path + " grew beyond the 16 MiB an edit handles", EFBIG);
      }
      text.append(buf, static_cast<size_t>(n));
    }
    std::vector<size_t> at;
    for (size_t pos = text.find(op.data); pos != std::string::npos;
         pos = text.find(op.data, pos + op.data.size())) {
      at.push_back(pos);
    }
    if (at.empty()) {
      return Error(ErrorCode::kFailedPrecondition,
                   "the text to replace does not occur in /workspace/" + op.path);
    }
    if (at.size() > 1 && !(op.flags & proto::kFileEditAll)) {
      return Error(ErrorCode::kFailedPrecondition,
                   "the text to replace occurs " + std::to_string(at.size()) +
                       " times in /workspace/" + op.path +
                       "; include more context to make it unique, or replace all");
    }
    std::string out;
    out.reserve(text.size() + at.size() * op.replacement.size());
    size_t prev = 0;
    for (size_t pos : at) {
      out.append(text, prev, pos - prev);
      out += op.replacement;
      prev = pos + op.data.size();
    }
    out.append(text, prev, std::string::npos);
    // In place (no temporary file and rename): the policy may allow writing this path and no
    // other name beside it, and a command's `sed -i`-like rewrite could not do better anyway.
    AF_RETURN_IF_ERROR(WriteAt(fd.get(), op.path, out, 0));
    if (out.size() < text.size() && ::ftruncate(fd.get(), static_cast<off_t>(out.size())) != 0) {
      return SysError(errno, op.path);
    }
    if (::fstat(fd.get(), &st) != 0) return SysError(errno, op.path);
    proto::FileResult r;
    r.count = at.size();
    r.stat = EntryOf(op.path, st);
    return r;
  }

  // Depth-first, names sorted within each directory, symlinks reported and never followed, each
  // directory opened relative to its parent's descriptor.
  Result<proto::FileResult> List(const proto::FileOp& op) const {
    AF_ASSIGN_OR_RETURN(UniqueFd root, Open(op.path, O_RDONLY | O_DIRECTORY));
    proto::FileResult r;
    struct stat st {};
    if (::fstat(root.get(), &st) != 0) return SysError(errno, op.path);
    r.stat = EntryOf(op.path, st);
    size_t budget = kListBudget;
    Walk(root.get(), "", 1, op, r, budget);
    return r;
  }

  void Walk(int dirfd, const std::string& prefix, uint32_t level, const proto::FileOp& op,
            proto::FileResult& r, size_t& budget) const {
    int dup = ::dup(dirfd);
    if (dup < 0) return;
    DIR* dir = ::fdopendir(dup);
    if (dir == nullptr) {
      ::close(dup);
      return;
    }
    std::vector<std::string> names;
    while (dirent* de = ::readdir(dir)) {
      std::string_view n = de->d_name;
      if (n == "." || n == "..") continue;
      names.emplace_back(n);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (r.truncated) return;
      struct stat st {};
      // An entry that vanished (or is hidden by a policy change) since readdir is skipped.
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      std::string path = JoinRelativePath(prefix, name);
      size_t cost = path.size() + 32;
      if (r.entries.size() >= op.limit || cost > budget) {
        r.truncated = true;
        return;
      }
      budget -= cost;
      r.entries.push_back(EntryOf(path, st));
      if (S_ISDIR(st.st_mode) && level < op.depth) {
        int sub = ::openat(dirfd, name.c_str(),
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (sub < 0) continue;  // listable but not enterable: its entry is all we show
        UniqueFd owned(sub);
        Walk(owned.get(), path, level + 1, op, r, budget);
      }
    }
  }

  const std::string& workspace_;
};

// What a worker shows as its command line while it runs `op` ("file tool: read src/a.c"), cut to
// the argument area and NUL-padded (its last byte stays NUL, so the kernel reads no further).
void ShowOperation(const AgentOptions& o, const proto::FileOp& op) {
  if (o.title_area == nullptr || o.title_size < 2) return;
  static constexpr const char* kNames[] = {"?", "stat", "read", "write", "list", "edit"};
  const uint8_t k = static_cast<uint8_t>(op.op);
  std::string text = std::string("file tool: ") + kNames[k <= proto::kMaxFileOpKind ? k : 0] +
                     " " + (op.path.empty() ? "." : op.path);
  const size_t n = std::min(text.size(), o.title_size - 1);
  std::memcpy(o.title_area, text.data(), n);
  std::memset(o.title_area + n, 0, o.title_size - n);
}

// A file worker's life: read one FileOp frame, carry it out, write its answer, until the agent
// closes the socket (or kills it).
[[noreturn]] void FileWorkerMain(int sock, const AgentOptions& options) {
  proto::FrameReader reader;
  char buf[65536];
  for (;;) {
    auto next = reader.Next();
    if (!next.ok()) ::_exit(1);
    if (!*next) {
      ssize_t n = ::read(sock, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(0);
      reader.Append(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    const proto::Frame& f = **next;
    auto op = proto::DecodeFileOp(f.payload);
    if (op.ok()) ShowOperation(options, *op);
    Result<proto::FileResult> result =
        op.ok() ? FileOps(options.workspace).Run(*op) : Result<proto::FileResult>(op.error());
    Result<std::string> frame = result.ok() ? proto::Encode(f.request_id, *result)
                                            : ErrorFrame(f.request_id, result.error());
    if (!frame.ok()) frame = ErrorFrame(f.request_id, frame.error());
    if (!frame.ok()) ::_exit(1);
    for (size_t off = 0; off < frame->size();) {
      ssize_t n = ::write(sock, frame->data() + off, frame->size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(1);
      off += static_cast<size_t>(n);
    }
  }
}

}  // namespace

void Agent::FileOperation(uint64_t conn_id, uint64_t request_id, proto::FileOp op) {
  if (file_jobs_.size() >= kMaxFileWorkers + kMaxFileJobsWaiting) {
    return SendError(conn_id, request_id,
                     Error(ErrorCode::kResourceExhausted,
                           "too many file operations in flight in this sandbox (" +
                               std::to_string(file_jobs_.size()) +
                               "); retry once some have answered"));
  }
  FileJob job;
  job.conn_id = conn_id;
  job.request_id = request_id;
  job.op = std::move(op);
  file_jobs_.emplace(next_file_job_id_++, std::move(job));
  StartFileJobs();
}

Result<FileWorker*> Agent::IdleFileWorker() {
  for (auto& [pid, w] : file_workers_) {
    if (w.job == 0 && !w.exited && w.sock) return &w;
  }
  if (file_workers_.size() >= kMaxFileWorkers) return nullptr;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Error(ErrorCode::kResourceExhausted,
                 std::string("cannot start a file worker: socketpair: ") + std::strerror(errno),
                 errno);
  }
  UniqueFd ours(sv[0]);
  UniqueFd theirs(sv[1]);
  pid_t pid = ::fork();
  if (pid < 0) {
    // EAGAIN: the sandbox's process limit (pids cgroup, RLIMIT_NPROC) is reached.
    return Error(ErrorCode::kResourceExhausted,
                 std::string("cannot start a file worker: fork: ") + std::strerror(errno), errno);
  }
  if (pid == 0) {
    // The worker keeps only its socket (and 0-2): a copy of a connection or of a command's stdin
    // pipe held while it waits at an `ask` path would keep them from closing.
    int fd = theirs.get();
    if (fd < 3) fd = ::fcntl(fd, F_DUPFD, 3);
    if (fd > 3) ::syscall(SYS_close_range, 3, fd - 1, 0);
    ::syscall(SYS_close_range, fd + 1, ~0U, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the agent gone (tests run it as a plain process)
    FileWorkerMain(fd, options_);
  }
  ::fcntl(ours.get(), F_SETFL, ::fcntl(ours.get(), F_GETFL) | O_NONBLOCK);
  FileWorker& w = file_workers_[pid];
  w.pid = pid;
  w.sock = std::move(ours);
  return &w;
}

void Agent::StartFileJobs() {
  for (auto it = file_jobs_.begin(); it != file_jobs_.end();) {
    auto next = std::next(it);
    FileJob& job = it->second;
    bool held = job.worker >= 0;  // running already
    for (auto e = file_jobs_.begin(); !held && e != it; ++e) held = Conflict(e->second.op, job.op);
    if (!held) {
      auto worker = IdleFileWorker();
      if (worker.ok() && *worker == nullptr) return;  // all busy: the rest waits its turn
      auto frame = proto::Encode(job.request_id, job.op);
      if (worker.ok() && frame.ok()) {
        FileWorker& w = **worker;
        w.out = std::move(*frame);
        w.out_off = 0;
        FlushFileWorker(w);
        w.job = it->first;
        job.worker = w.pid;
      } else {
        SendError(job.conn_id, job.request_id, worker.ok() ? frame.error() : worker.error());
        file_jobs_.erase(it);
      }
    }
    it = next;
  }
}

void Agent::FlushFileWorker(FileWorker& w) {
  // Non-blocking: a worker a command stopped (SIGSTOP, same uid) stalls its own operation only.
  while (w.sock && w.out_off < w.out.size()) {
    ssize_t n = ::send(w.sock.get(), w.out.data() + w.out_off, w.out.size() - w.out_off,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      ::kill(w.pid, SIGKILL);  // gone: TendFileWorkers fails its operation once reaped
      w.sock.Reset();
      break;
    }
    w.out_off += static_cast<size_t>(n);
  }
  w.out.clear();
  w.out_off = 0;
}

void Agent::PumpFileWorker(FileWorker& w) {
  char buf[65536];
  for (int i = 0; i < 32 && w.sock; ++i) {
    ssize_t n = ::recv(w.sock.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      w.sock.Reset();  // it died or was killed: TendFileWorkers ends its operation once reaped
      return;
    }
    w.in.append(buf, static_cast<size_t>(n));
    if (w.in.size() < proto::kHeaderSize) continue;
    auto header = proto::DecodeHeader(std::string_view(w.in).substr(0, proto::kHeaderSize));
    if (!header.ok() || w.job == 0) {
      ::kill(w.pid, SIGKILL);  // not one of our answers: nothing more from it is trusted
      w.sock.Reset();
      return;
    }
    size_t whole = proto::kHeaderSize + header->payload_len;
    if (w.in.size() > whole) {
      ::kill(w.pid, SIGKILL);  // one operation, one answer
      w.sock.Reset();
      return;
    }
    if (w.in.size() == whole) {
      FinishFileJob(w, std::move(w.in));
      w.in.clear();
      return;
    }
  }
}

void Agent::FinishFileJob(FileWorker& w, std::string frame) {
  auto it = file_jobs_.find(w.job);
  w.job = 0;
  w.idle_since = Clock::now();
  if (it == file_jobs_.end()) return;
  FileJob& job = it->second;
  if (job.conn_id != 0) {
    auto header = proto::DecodeHeader(std::string_view(frame).substr(
        0, std::min(frame.size(), proto::kHeaderSize)));
    if (header.ok() && header->request_id == job.request_id) {
      Send(job.conn_id, std::move(frame));
    } else {
      SendError(job.conn_id, job.request_id,
                Error(ErrorCode::kUnavailable, "the file operation was stopped before it answered"));
    }
  }
  file_jobs_.erase(it);
  StartFileJobs();
}

void Agent::KillFileJob(FileJob& job) {
  auto w = file_workers_.find(job.worker);
  if (w != file_workers_.end() && !w->second.exited) ::kill(job.worker, SIGKILL);
}

void Agent::TendFileWorkers() {
  auto now = Clock::now();
  for (auto it = file_workers_.begin(); it != file_workers_.end();) {
    auto next = std::next(it);
    FileWorker& w = it->second;
    if (w.exited) {
      if (w.sock) PumpFileWorker(w);  // an answer written just before it died still counts
      if (w.job != 0) FinishFileJob(w, "");
      file_workers_.erase(it);
      StartFileJobs();  // a slot is free
    } else if (w.job == 0 && w.sock && now - w.idle_since >= kFileWorkerIdle) {
      w.sock.Reset();  // EOF: it exits, and is reaped as any child
    }
    it = next;
  }
}

}  // namespace agentfense::runtime::agent
