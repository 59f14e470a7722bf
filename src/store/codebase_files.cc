#include "store/codebase_files.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>

#include "base/ids.h"
#include "base/path.h"

namespace agentfense::store {
namespace {

constexpr char kStagingDir[] = ".staging";
// Named temp files older than this are leftovers of a crashed process (a live upload keeps
// touching its file's mtime with every chunk).
constexpr int64_t kStaleStagingSeconds = 3600;

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

FileEntry EntryFromStat(std::string path, std::string name, const struct stat& st) {
  FileEntry e;
  e.path = std::move(path);
  e.name = std::move(name);
  e.is_dir = S_ISDIR(st.st_mode);
  e.is_symlink = S_ISLNK(st.st_mode);
  e.size = e.is_dir ? 0 : static_cast<int64_t>(st.st_size);
  e.mtime_ns = MtimeNs(st);
  e.mode = st.st_mode;
  return e;
}

Result<std::string> ValidateFilePath(std::string_view rel_path) {
  if (!rel_path.empty() && rel_path.back() == '/') {
    return Error(ErrorCode::kInvalidArgument, "file path must not end with '/'");
  }
  return ValidateRelativePath(rel_path, /*allow_empty=*/false);
}

}  // namespace

// --- opening -------------------------------------------------------------------------------

Result<std::unique_ptr<CodebaseFiles>> CodebaseFiles::Open(CodebaseFilesOptions options) {
  if (options.root.empty()) return Error(ErrorCode::kInvalidArgument, "codebase root is empty");
  std::error_code ec;
  std::filesystem::create_directories(options.root, ec);
  if (ec) {
    return Error(ErrorCode::kInternal, "creating " + options.root + ": " + ec.message(),
                 ec.value());
  }
  // The root itself is operator configuration, so following a symlink to it is allowed.
  int raw = ::open(options.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (raw < 0) return Error::FromErrno(errno, "opening codebase root " + options.root);
  UniqueFd root(raw);
  struct stat st;
  if (::fstat(root.get(), &st) != 0) return Error::FromErrno(errno, "fstat root");
  // 0700: other local users must not reach codebase content, nor plant or swap anything in it
  // (SECURITY-NOTES §4.7).
  if ((st.st_mode & 07777) != 0700 && ::fchmod(root.get(), 0700) != 0) {
    return Error::FromErrno(errno, "chmod 0700 " + options.root);
  }
  if (::mkdirat(root.get(), kStagingDir, 0700) != 0 && errno != EEXIST) {
    return Error::FromErrno(errno, "mkdir .staging");
  }
  raw = ::openat(root.get(), kStagingDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) return Error::FromErrno(errno, "opening .staging");
  UniqueFd staging(raw);
  ResolveMode resolve = options.resolve_mode.value_or(ProbeResolveMode());
  std::unique_ptr<CodebaseFiles> files(
      new CodebaseFiles(std::move(options), std::move(root), std::move(staging), resolve));
  AF_RETURN_IF_ERROR(files->SweepStaging());
  return files;
}

Status CodebaseFiles::SweepStaging() {
  int raw = ::openat(staging_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (raw < 0) return Error::FromErrno(errno, "opening .staging");
  AF_ASSIGN_OR_RETURN(std::vector<std::string> names, ReadDirNames(UniqueFd(raw)));
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  for (const std::string& n : names) {
    struct stat st;
    if (::fstatat(staging_fd_.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    bool trash = n.rfind("trash-", 0) == 0;  // a deletion interrupted by a crash
    if (!trash && now - st.st_mtim.tv_sec < kStaleStagingSeconds) continue;
    AF_RETURN_IF_ERROR(RemoveTree(staging_fd_.get(), n));
  }
  return OkStatus();
}

Result<std::string> CodebaseFiles::NewStagingName(std::string_view prefix) {
  AF_ASSIGN_OR_RETURN(std::string hex, RandomHex(12));
  return std::string(prefix) + hex;
}

// --- codebases -----------------------------------------------------------------------------

Status CodebaseFiles::CreateCodebase(std::string_view codebase_id) {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(codebase_id));
  std::string id(codebase_id);
  if (::mkdirat(root_fd_.get(), id.c_str(), 0755) != 0) {
    if (errno == EEXIST) return Error(ErrorCode::kAlreadyExists, "codebase " + id + " exists");
    return Error::FromErrno(errno, "mkdir codebase " + id);
  }
  return OkStatus();
}

Result<UniqueFd> CodebaseFiles::OpenCodebaseDir(std::string_view codebase_id) const {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(codebase_id));
  std::string id(codebase_id);
  int fd = ::openat(root_fd_.get(), id.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Error(ErrorCode::kNotFound, "codebase " + id + " not found");
    return Error::FromErrno(errno, "opening codebase " + id);
  }
  return UniqueFd(fd);
}

bool CodebaseFiles::CodebaseExists(std::string_view codebase_id) const {
  return OpenCodebaseDir(codebase_id).ok();
}

Result<std::string> CodebaseFiles::CodebasePath(std::string_view codebase_id) const {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(codebase_id));
  return options_.root + "/" + std::string(codebase_id);
}

Status CodebaseFiles::DeleteCodebase(std::string_view codebase_id) {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(codebase_id));
  std::string id(codebase_id);
  AF_ASSIGN_OR_RETURN(std::string trash, NewStagingName("trash-"));
  {
    std::lock_guard lock(tree_mu_);
    if (::renameat(root_fd_.get(), id.c_str(), staging_fd_.get(), trash.c_str()) != 0) {
      if (errno == ENOENT) return Error(ErrorCode::kNotFound, "codebase " + id + " not found");
      return Error::FromErrno(errno, "moving codebase " + id + " to .staging");
    }
  }
  return RemoveTree(staging_fd_.get(), trash);
}

// --- download ------------------------------------------------------------------------------

Result<size_t> FileReader::Read(void* buf, size_t n) {
  while (true) {
    ssize_t got = ::read(fd_.get(), buf, n);
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) return Error::FromErrno(errno, "read");
  }
}

Result<FileReader> CodebaseFiles::OpenForDownload(std::string_view codebase_id,
                                                  std::string_view rel_path) {
  AF_ASSIGN_OR_RETURN(std::string rel, ValidateFilePath(rel_path));
  AF_ASSIGN_OR_RETURN(UniqueFd cb, OpenCodebaseDir(codebase_id));
  // O_PATH first: it opens nothing (a FIFO does not block, a device is not touched), and fstat
  // tells us what the path really is before any real open.
  AF_ASSIGN_OR_RETURN(UniqueFd path_fd, OpenBeneath(cb.get(), rel, O_PATH, 0, resolve_));
  struct stat st;
  if (::fstat(path_fd.get(), &st) != 0) return Error::FromErrno(errno, "fstat");
  if (S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kFailedPrecondition, "'" + rel + "' is a directory");
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kFailedPrecondition, "'" + rel + "' is not a regular file");
  }
  // Re-open exactly that inode for reading through its /proc magic link (a link we construct,
  // not one found in the tree). Without /proc, open the path again and check it is the same.
  char proc_path[64];
  (void)std::snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", path_fd.get());
  int fd = ::open(proc_path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  UniqueFd file;
  if (fd >= 0) {
    file.Reset(fd);
  } else {
    AF_ASSIGN_OR_RETURN(file,
                        OpenBeneath(cb.get(), rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, resolve_));
  }
  struct stat st2;
  if (::fstat(file.get(), &st2) != 0) return Error::FromErrno(errno, "fstat");
  if (!S_ISREG(st2.st_mode) || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
    return Error(ErrorCode::kAborted, "'" + rel + "' changed while being opened");
  }
  return FileReader(std::move(file), st2.st_size, st2.st_mode, MtimeNs(st2));
}

// --- listing and usage ---------------------------------------------------------------------

Result<std::vector<FileEntry>> CodebaseFiles::List(std::string_view codebase_id,
                                                   std::string_view rel_path, bool recursive) {
  AF_ASSIGN_OR_RETURN(std::string rel, ValidateRelativePath(rel_path, /*allow_empty=*/true));
  AF_ASSIGN_OR_RETURN(UniqueFd cb, OpenCodebaseDir(codebase_id));
  std::vector<FileEntry> out;
  if (!rel.empty()) {
    AF_ASSIGN_OR_RETURN(UniqueFd target, OpenBeneath(cb.get(), rel, O_PATH, 0, resolve_));
    struct stat st;
    if (::fstat(target.get(), &st) != 0) return Error::FromErrno(errno, "fstat");
    if (!S_ISDIR(st.st_mode)) {
      out.push_back(EntryFromStat(rel, SplitRelativePath(rel).second, st));
      return out;
    }
  }
  // Breadth-first over relative paths, each directory reopened from the codebase root with the
  // no-symlink resolver: constant fd use whatever the depth, and nothing cached between steps.
  std::deque<std::string> pending{rel};
  while (!pending.empty()) {
    std::string dir = std::move(pending.front());
    pending.pop_front();
    auto dir_fd = OpenBeneath(cb.get(), dir, O_RDONLY | O_DIRECTORY, 0, resolve_);
    if (!dir_fd.ok()) {
      if (!dir.empty() && dir != rel && dir_fd.error().code() == ErrorCode::kNotFound) {
        continue;  // removed while we listed
      }
      return std::move(dir_fd).error();
    }
    int raw = ::fcntl(dir_fd->get(), F_DUPFD_CLOEXEC, 0);
    if (raw < 0) return Error::FromErrno(errno, "dup");
    AF_ASSIGN_OR_RETURN(std::vector<std::string> names, ReadDirNames(UniqueFd(raw)));
    for (std::string& name : names) {
      struct stat st;
      // fstatat never opens: a FIFO cannot block us, a symlink is described, not followed.
      if (::fstatat(dir_fd->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (out.size() >= options_.max_list_entries) {
        return Error(ErrorCode::kResourceExhausted,
                     "more than " + std::to_string(options_.max_list_entries) +
                         " entries; list a subdirectory or without recursion");
      }
      std::string path = dir;
      if (!path.empty()) path += '/';
      path += name;
      if (recursive && S_ISDIR(st.st_mode)) pending.push_back(path);
      out.push_back(EntryFromStat(std::move(path), std::move(name), st));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
  return out;
}

Result<Usage> CodebaseFiles::ComputeUsage(std::string_view codebase_id) {
  AF_ASSIGN_OR_RETURN(UniqueFd cb, OpenCodebaseDir(codebase_id));
  return CountTree(cb.get());
}

// --- delete --------------------------------------------------------------------------------

Result<UsageDelta> CodebaseFiles::Delete(std::string_view codebase_id, std::string_view rel_path,
                                         bool recursive) {
  AF_ASSIGN_OR_RETURN(std::string rel, ValidateRelativePath(rel_path, /*allow_empty=*/false));
  AF_ASSIGN_OR_RETURN(UniqueFd cb, OpenCodebaseDir(codebase_id));
  auto [parent_rel, name] = SplitRelativePath(rel);
  AF_ASSIGN_OR_RETURN(UniqueFd parent,
                      OpenBeneath(cb.get(), parent_rel, O_PATH | O_DIRECTORY, 0, resolve_));
  std::string trash;
  {
    std::lock_guard lock(tree_mu_);
    struct stat st;
    if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ResolveError(errno, "fstatat", rel);
    }
    if (!S_ISDIR(st.st_mode)) {
      if (::unlinkat(parent.get(), name.c_str(), 0) != 0) return ResolveError(errno, "unlink", rel);
      return UsageDelta{S_ISREG(st.st_mode) ? -static_cast<int64_t>(st.st_size) : 0, -1};
    }
    if (!recursive) {
      if (::unlinkat(parent.get(), name.c_str(), AT_REMOVEDIR) != 0) {
        if (errno == ENOTEMPTY || errno == EEXIST) {
          return Error(ErrorCode::kFailedPrecondition, "directory '" + rel + "' is not empty");
        }
        return ResolveError(errno, "rmdir", rel);
      }
      return UsageDelta{};
    }
    // The subtree leaves the codebase in one rename; counting and removal then happen in
    // .staging, where nothing else writes, without holding the lock.
    AF_ASSIGN_OR_RETURN(trash, NewStagingName("trash-"));
    if (::renameat(parent.get(), name.c_str(), staging_fd_.get(), trash.c_str()) != 0) {
      return ResolveError(errno, "rename", rel);
    }
  }
  Usage removed;
  AF_RETURN_IF_ERROR(RemoveTree(staging_fd_.get(), trash, &removed));
  return UsageDelta{-removed.bytes, -removed.files};
}

}  // namespace agentfense::store
