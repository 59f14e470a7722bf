// File operations of the agent (proto::FileOp): the MCP file tools act through these, inside the
// sandbox, as its identity, on the same mount its commands use. The permission filesystem decides
// every access exactly as it does for `cat` or `ls`: a hidden path is ENOENT, a `view` file lists
// but does not open. Nothing here checks the policy itself.
//
// They run synchronously in the agent's loop. That is safe because every call is bounded (one
// frame of data, a capped walk) and never waits on anything a command controls: files are opened
// O_NONBLOCK (a FIFO would otherwise block the loop forever) and only regular files are read or
// written, so a device or FIFO reached through a symlink is refused, never touched.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "base/path.h"
#include "runtime/agent/agent.h"

namespace agentfense::runtime::agent {
namespace {

// A frame holds at most kMaxPayload; a listing stops (truncated) before its entries need more.
constexpr size_t kListBudget = proto::kMaxPayload - 64 * 1024;

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

}  // namespace

void Agent::FileOperation(uint64_t conn_id, uint64_t request_id, const proto::FileOp& op) {
  auto result = FileOps(options_.workspace).Run(op);
  if (!result.ok()) return SendError(conn_id, request_id, result.error());
  Send(conn_id, proto::Encode(request_id, *result));
}

}  // namespace agentfense::runtime::agent
