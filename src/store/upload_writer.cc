// Uploads: stream to a temp file in .staging, then land with one rename (CodebaseFiles::Land).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/ids.h"
#include "base/path.h"
#include "store/codebase_files.h"

namespace agentfense::store {

mode_t StoredFileMode(mode_t mode) {
  // Keep rwx bits only: a setuid/setgid file in the store would be a privilege waiting for
  // anyone who executes it outside a nosuid mount (SECURITY-NOTES §2.1(k)).
  mode_t keep = mode == 0 ? 0644 : (mode & 0777);
  return keep | S_IRUSR | S_IWUSR;
}

UploadWriter::UploadWriter(CodebaseFiles* owner, std::string codebase_id, std::string rel_path,
                           mode_t mode, UniqueFd fd, std::string temp_name)
    : owner_(owner),
      codebase_id_(std::move(codebase_id)),
      rel_path_(std::move(rel_path)),
      mode_(mode),
      fd_(std::move(fd)),
      temp_name_(std::move(temp_name)) {}

UploadWriter::~UploadWriter() { Abort(); }

void UploadWriter::Abort() {
  if (finished_) return;
  finished_ = true;
  fd_.Reset();  // an O_TMPFILE vanishes with its last fd
  if (!temp_name_.empty()) {
    // Nothing useful to do if this fails: the staging sweep removes it at the next start.
    (void)::unlinkat(owner_->staging_fd_.get(), temp_name_.c_str(), 0);
    temp_name_.clear();
  }
}

Status UploadWriter::Write(std::string_view data) {
  if (finished_) return Error(ErrorCode::kFailedPrecondition, "upload already finished");
  const int64_t max = owner_->options_.max_file_bytes;
  if (max > 0 && size_ + static_cast<int64_t>(data.size()) > max) {
    Abort();
    return Error(ErrorCode::kResourceExhausted,
                 "file larger than the limit of " + std::to_string(max) + " bytes");
  }
  md5_.Update(data);
  while (!data.empty()) {
    ssize_t n = ::write(fd_.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      Abort();
      return Error::FromErrno(err, "writing upload of '" + rel_path_ + "'");
    }
    size_ += n;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return OkStatus();
}

Result<UploadResult> UploadWriter::Commit() {
  if (finished_) return Error(ErrorCode::kFailedPrecondition, "upload already finished");
  auto result = owner_->Land(*this);
  Abort();  // releases the temp file; a landed file no longer has a staging name
  return result;
}

Result<std::unique_ptr<UploadWriter>> CodebaseFiles::BeginUpload(std::string_view codebase_id,
                                                                 std::string_view rel_path,
                                                                 int64_t total_size_hint,
                                                                 mode_t mode) {
  if (!rel_path.empty() && rel_path.back() == '/') {
    return Error(ErrorCode::kInvalidArgument, "file path must not end with '/'");
  }
  AF_ASSIGN_OR_RETURN(std::string rel, ValidateRelativePath(rel_path, /*allow_empty=*/false));
  AF_ASSIGN_OR_RETURN(UniqueFd cb, OpenCodebaseDir(codebase_id));  // fail early on a bad codebase
  if (options_.max_file_bytes > 0 && total_size_hint > options_.max_file_bytes) {
    return Error(
        ErrorCode::kResourceExhausted,
        "file larger than the limit of " + std::to_string(options_.max_file_bytes) + " bytes");
  }
  mode_t keep = StoredFileMode(mode);

  UniqueFd fd;
  std::string temp_name;
  if (options_.use_o_tmpfile) {
    int raw = ::openat(staging_fd_.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (raw >= 0) {
      fd.Reset(raw);
    } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
      return Error::FromErrno(errno, "creating upload temp file");
    }
  }
  if (!fd.valid()) {  // filesystem without O_TMPFILE, or disabled
    for (int attempt = 0; !fd.valid(); ++attempt) {
      AF_ASSIGN_OR_RETURN(temp_name, NewStagingName("up-"));
      int raw = ::openat(staging_fd_.get(), temp_name.c_str(),
                         O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (raw >= 0) {
        fd.Reset(raw);
      } else if (errno != EEXIST || attempt > 8) {
        return Error::FromErrno(errno, "creating upload temp file");
      }
    }
  }
  return std::unique_ptr<UploadWriter>(new UploadWriter(
      this, std::string(codebase_id), std::move(rel), keep, std::move(fd), std::move(temp_name)));
}

Result<UploadResult> CodebaseFiles::Land(UploadWriter& w) {
  // fchmod, not the open mode: the umask must not decide what an uploaded file's mode is.
  if (::fchmod(w.fd_.get(), w.mode_) != 0) return Error::FromErrno(errno, "fchmod upload");
  // Data reaches the disk before the name does: after a power cut the path shows either the old
  // file or the whole new one, never a torn or empty one.
  if (options_.sync_uploads && ::fdatasync(w.fd_.get()) != 0) {
    return Error::FromErrno(errno, "fdatasync upload");
  }
  AF_ASSIGN_OR_RETURN(UniqueFd cb, OpenCodebaseDir(w.codebase_id_));
  const std::string& rel = w.rel_path_;
  auto [parent_rel, name] = SplitRelativePath(rel);

  std::lock_guard lock(tree_mu_);
  auto parent = OpenBeneath(cb.get(), parent_rel, O_PATH | O_DIRECTORY, 0, resolve_);
  if (!parent.ok() && parent.error().code() == ErrorCode::kNotFound) {
    parent = MakeDirsBeneath(cb.get(), parent_rel);
  }
  if (!parent.ok()) return std::move(parent).error();
  struct stat old;
  bool existed = ::fstatat(parent->get(), name.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0;
  if (!existed && errno != ENOENT) return ResolveError(errno, "fstatat", rel);
  if (existed && S_ISDIR(old.st_mode)) {
    return Error(ErrorCode::kFailedPrecondition, "'" + rel + "' is a directory");
  }

  std::string staged = w.temp_name_;
  if (staged.empty()) {
    // Give the O_TMPFILE a name in .staging first: linkat cannot replace an existing file, and a
    // temp name inside the codebase would be visible to running sandboxes.
    AF_ASSIGN_OR_RETURN(staged, NewStagingName("up-"));
    if (::linkat(w.fd_.get(), "", staging_fd_.get(), staged.c_str(), AT_EMPTY_PATH) != 0) {
      // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH on older kernels; the /proc link does not.
      char proc_path[64];
      (void)std::snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", w.fd_.get());
      if (::linkat(AT_FDCWD, proc_path, staging_fd_.get(), staged.c_str(), AT_SYMLINK_FOLLOW) !=
          0) {
        return Error::FromErrno(errno, "linking upload temp file");
      }
    }
    w.temp_name_ = staged;  // from here on Abort() unlinks it
  }
  // rename(2) replaces atomically and never follows a symlink in the final component: readers see
  // the old file or the new one, and concurrent uploads of one path each land whole.
  if (::renameat(staging_fd_.get(), staged.c_str(), parent->get(), name.c_str()) != 0) {
    int err = errno;
    if (err == EISDIR || err == ENOTEMPTY || err == EEXIST) {
      return Error(ErrorCode::kFailedPrecondition, "'" + rel + "' is a directory", err);
    }
    return ResolveError(err, "rename", rel);
  }
  w.temp_name_.clear();
  UploadResult result;
  result.path = rel;
  result.size = w.size_;
  result.md5_hex = w.md5_.FinalHex();
  result.delta.bytes = w.size_ - ((existed && S_ISREG(old.st_mode)) ? old.st_size : 0);
  result.delta.files = existed ? 0 : 1;
  return result;
}

}  // namespace agentfense::store
