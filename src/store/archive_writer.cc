// Archive uploads: extract a tar stream into a private staging tree, then publish it into the
// codebase (see ArchiveWriter in codebase_files.h).
#include <fcntl.h>
#include <stdio.h>  // renameat2 (glibc >= 2.28)
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>

#include "base/path.h"
#include "store/codebase_files.h"
#include "store/tar_reader.h"

namespace agentfense::store {
namespace {

Error EntryError(ErrorCode code, const std::string& name, const std::string& why) {
  return Error(code, "archive entry '" + name + "': " + why);
}

// An archived name in canonical form: tar writers commonly prefix "./" and end directory names
// with '/'; everything else is judged by the store's one path validator.
Result<std::string> EntryPath(const std::string& raw) {
  std::string_view name = raw;
  while (name.size() >= 2 && name.substr(0, 2) == "./") name.remove_prefix(2);
  while (name.size() > 1 && name.back() == '/') name.remove_suffix(1);
  if (name == "." || name.empty()) return std::string();  // the archive's root itself
  // An API path may start with '/' (the codebase root, as the reference's SDK writes it); an
  // archived name that does was made from an absolute host path: refused, as tar warns of it.
  if (name.front() == '/') {
    return EntryError(ErrorCode::kInvalidArgument, raw, "absolute name");
  }
  auto rel = ValidateRelativePath(name, /*allow_empty=*/false);
  if (!rel.ok()) {
    return EntryError(ErrorCode::kInvalidArgument, raw, rel.error().message());
  }
  return std::move(rel).value();
}

// Where a symlink at `link_rel` with `target` points, resolved lexically from the link's directory
// (the only way the kernel will ever resolve it: inside the sandbox, through our filesystem).
// Absolute targets and targets that climb above the root are refused: such a link means nothing
// inside a codebase except an attempt to reach the host.
Result<std::string> LinkDestination(const std::string& link_rel, const std::string& target) {
  if (target.empty()) return EntryError(ErrorCode::kInvalidArgument, link_rel, "empty link target");
  if (target[0] == '/') {
    return EntryError(ErrorCode::kInvalidArgument, link_rel,
                      "symbolic link to an absolute path ('" + target + "') is refused");
  }
  // `parts` views into `parent`: it must outlive them (a temporary would dangle).
  const std::string parent = SplitRelativePath(link_rel).first;
  std::vector<std::string_view> parts = SplitPath(parent);
  for (std::string_view seg : SplitPath(target)) {
    if (seg == ".") continue;
    if (seg == "..") {
      if (parts.empty()) {
        return EntryError(
            ErrorCode::kInvalidArgument, link_rel,
            "symbolic link pointing outside the codebase ('" + target + "') is refused");
      }
      parts.pop_back();
      continue;
    }
    parts.push_back(seg);
  }
  std::string joined;
  for (std::string_view p : parts) {
    if (!joined.empty()) joined += '/';
    joined += p;
  }
  auto rel = ValidateRelativePath(joined, /*allow_empty=*/true);
  if (!rel.ok()) return EntryError(ErrorCode::kInvalidArgument, link_rel, rel.error().message());
  return std::move(rel).value();
}

Status CopyFd(int from, int to, int64_t size) {
  int64_t left = size;
  while (left > 0) {
    ssize_t n =
        ::sendfile(to, from, nullptr, static_cast<size_t>(std::min<int64_t>(left, 1 << 30)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno(errno, "copying a hard-linked file");
    }
    if (n == 0) break;  // the source shrank: copy what there is
    left -= n;
  }
  return OkStatus();
}

}  // namespace

// Turns parsed entries into files of the staged tree. Counts what it stages so that Commit can
// compute the codebase's usage change without walking the tree again.
class ArchiveWriter::Extractor final : public TarReader::Handler {
 public:
  Extractor(const CodebaseFilesOptions& options, ResolveMode resolve, UniqueFd stage)
      : options_(options), resolve_(resolve), stage_(std::move(stage)) {}

  Status Feed(std::string_view data) { return reader_.Feed(data, *this); }
  Status Finish() const { return reader_.Finish(); }
  int stage_fd() const { return stage_.get(); }
  const Usage& staged() const { return staged_; }
  ArchiveResult& counts() { return counts_; }

  Status OnEntry(const TarEntry& e) override {
    if (options_.max_archive_entries > 0 && reader_.entries() > options_.max_archive_entries) {
      return Error(
          ErrorCode::kResourceExhausted,
          "archive has more than " + std::to_string(options_.max_archive_entries) + " entries");
    }
    AF_ASSIGN_OR_RETURN(std::string rel, EntryPath(e.name));
    if (rel.empty()) {
      if (e.type == TarEntryType::kDirectory) return OkStatus();
      return EntryError(ErrorCode::kInvalidArgument, e.name, "names the codebase root");
    }
    switch (e.type) {
      case TarEntryType::kDirectory: {
        auto dir = MakeDirsBeneath(stage_.get(), rel);
        if (!dir.ok()) return EntryError(dir.error().code(), e.name, dir.error().message());
        ++counts_.directories;
        return OkStatus();
      }
      case TarEntryType::kFile: {
        if (options_.max_file_bytes > 0 && e.size > options_.max_file_bytes) {
          return EntryError(ErrorCode::kResourceExhausted, e.name,
                            "file larger than the limit of " +
                                std::to_string(options_.max_file_bytes) + " bytes");
        }
        AF_ASSIGN_OR_RETURN(file_, CreateEntry(e.name, rel));
        file_name_ = e.name;
        file_mode_ = StoredFileMode(e.mode);
        file_size_ = 0;
        return OkStatus();
      }
      case TarEntryType::kHardLink:
        return HardLink(e, rel);
      case TarEntryType::kSymlink:
        return Symlink(e, rel);
      case TarEntryType::kCharDevice:
      case TarEntryType::kBlockDevice:
        return EntryError(ErrorCode::kInvalidArgument, e.name, "device nodes are refused");
      case TarEntryType::kFifo:
        return EntryError(ErrorCode::kInvalidArgument, e.name, "FIFOs are refused");
      case TarEntryType::kOther:
        break;
    }
    return EntryError(ErrorCode::kInvalidArgument, e.name,
                      std::string("unsupported tar entry type '") + e.typeflag + "'");
  }

  Status OnData(std::string_view data) override {
    if (!file_.valid()) return OkStatus();  // cannot happen: only files carry content
    if (options_.max_archive_bytes > 0 &&
        staged_.bytes + file_size_ + static_cast<int64_t>(data.size()) >
            options_.max_archive_bytes) {
      return Error(ErrorCode::kResourceExhausted, "archive content larger than the limit of " +
                                                      std::to_string(options_.max_archive_bytes) +
                                                      " bytes");
    }
    while (!data.empty()) {
      ssize_t n = ::write(file_.get(), data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error::FromErrno(errno, "writing archive entry '" + file_name_ + "'");
      }
      file_size_ += n;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return OkStatus();
  }

  Status OnEntryEnd() override {
    if (!file_.valid()) return OkStatus();
    // fchmod, not the open mode: the umask must not decide a stored file's mode.
    if (::fchmod(file_.get(), file_mode_) != 0) return Error::FromErrno(errno, "fchmod");
    file_.Reset();
    ++staged_.files;
    staged_.bytes += file_size_;
    ++counts_.files;
    counts_.bytes += file_size_;
    return OkStatus();
  }

 private:
  // The directory `parent_rel` of the staged tree (created if missing), as a borrowed O_PATH fd.
  // Consecutive entries of an archive mostly share a directory, so the last one is kept open:
  // only this writer changes the staged tree, and it never removes or replaces a directory, so
  // the kept fd still names `parent_rel` (saves a component-by-component walk per file).
  Result<int> ParentDir(const std::string& raw, const std::string& parent_rel) {
    if (!parent_fd_.valid() || parent_rel != parent_rel_) {
      parent_fd_.Reset();
      auto parent = MakeDirsBeneath(stage_.get(), parent_rel);
      if (!parent.ok()) return EntryError(parent.error().code(), raw, parent.error().message());
      parent_fd_ = std::move(parent).value();
      parent_rel_ = parent_rel;
    }
    return parent_fd_.get();
  }

  // Makes room for a new non-directory at `rel` in the staged tree and returns its parent (a
  // borrowed O_PATH fd) and name. Parents are created without following links; an earlier entry
  // of the same name is replaced (tar semantics: the last one wins) unless it is a directory.
  Result<std::pair<int, std::string>> PrepareEntry(const std::string& raw, const std::string& rel) {
    auto [parent_rel, name] = SplitRelativePath(rel);
    AF_ASSIGN_OR_RETURN(int parent, ParentDir(raw, parent_rel));
    struct stat old;
    if (::fstatat(parent, name.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(old.st_mode)) {
        return EntryError(ErrorCode::kFailedPrecondition, raw,
                          "would replace a directory of the same archive");
      }
      if (::unlinkat(parent, name.c_str(), 0) != 0) {
        return Error::FromErrno(errno, "replacing archive entry '" + raw + "'");
      }
      --staged_.files;
      if (S_ISREG(old.st_mode)) staged_.bytes -= old.st_size;
    } else if (errno != ENOENT) {
      return Error::FromErrno(errno, "fstatat archive entry '" + raw + "'");
    }
    return std::make_pair(parent, std::move(name));
  }

  Result<UniqueFd> CreateEntry(const std::string& raw, const std::string& rel) {
    AF_ASSIGN_OR_RETURN(auto where, PrepareEntry(raw, rel));
    // O_EXCL|O_NOFOLLOW: the name was just made free; should anything reappear there, we fail
    // rather than write through it.
    int fd = ::openat(where.first, where.second.c_str(),
                      O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Error::FromErrno(errno, "creating archive entry '" + raw + "'");
    return UniqueFd(fd);
  }

  Status HardLink(const TarEntry& e, const std::string& rel) {
    AF_ASSIGN_OR_RETURN(std::string source, EntryPath(e.linkname));
    if (source.empty()) {
      return EntryError(ErrorCode::kInvalidArgument, e.name, "hard link to the codebase root");
    }
    // Only a regular file this archive already stored: never a name outside the staged tree, never
    // through a link. The store keeps no hard links (a second name for one inode would let rules
    // that grade the names differently disagree), so the entry becomes a copy.
    auto src = OpenBeneath(stage_.get(), source, O_RDONLY | O_NONBLOCK, 0, resolve_);
    struct stat st {};
    if (!src.ok() || ::fstat(src->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return EntryError(ErrorCode::kInvalidArgument, e.name,
                        "hard link to '" + e.linkname +
                            "', which is not a regular file stored earlier by this archive");
    }
    AF_ASSIGN_OR_RETURN(UniqueFd out, CreateEntry(e.name, rel));
    AF_RETURN_IF_ERROR(CopyFd(src->get(), out.get(), st.st_size));
    if (::fchmod(out.get(), st.st_mode & 07777) != 0) return Error::FromErrno(errno, "fchmod");
    ++staged_.files;
    staged_.bytes += st.st_size;
    ++counts_.files;
    counts_.bytes += st.st_size;
    return OkStatus();
  }

  Status Symlink(const TarEntry& e, const std::string& rel) {
    AF_RETURN_IF_ERROR(LinkDestination(rel, e.linkname));
    AF_ASSIGN_OR_RETURN(auto where, PrepareEntry(e.name, rel));
    if (::symlinkat(e.linkname.c_str(), where.first, where.second.c_str()) != 0) {
      return Error::FromErrno(errno, "creating symbolic link '" + e.name + "'");
    }
    ++staged_.files;
    ++counts_.symlinks;
    return OkStatus();
  }

  const CodebaseFilesOptions& options_;
  const ResolveMode resolve_;
  UniqueFd stage_;  // the staged tree's root (O_RDONLY | O_DIRECTORY)
  TarReader reader_;
  UniqueFd parent_fd_;  // the last parent directory used (ParentDir)
  std::string parent_rel_;
  UniqueFd file_;  // the file being written, if any
  std::string file_name_;
  mode_t file_mode_ = 0;
  int64_t file_size_ = 0;
  Usage staged_;  // what the staged tree holds, counted as CountTree would
  ArchiveResult counts_;
};

ArchiveWriter::ArchiveWriter(CodebaseFiles* owner, std::string codebase_id, std::string stage_name,
                             UniqueFd stage_fd)
    : owner_(owner),
      codebase_id_(std::move(codebase_id)),
      stage_name_(std::move(stage_name)),
      extractor_(
          std::make_unique<Extractor>(owner->options_, owner->resolve_, std::move(stage_fd))) {}

ArchiveWriter::~ArchiveWriter() { Abort(); }

void ArchiveWriter::Abort() {
  if (finished_) return;
  finished_ = true;
  extractor_.reset();  // closes the file being written and the staged tree's fd
  // Nothing useful to do if this fails: the staging sweep removes leftovers at the next start.
  (void)RemoveTree(owner_->staging_fd_.get(), stage_name_);
}

Status ArchiveWriter::Write(std::string_view data) {
  if (finished_) return Error(ErrorCode::kFailedPrecondition, "archive upload already finished");
  received_ += static_cast<int64_t>(data.size());
  Status st = extractor_->Feed(data);
  if (!st.ok()) Abort();
  return st;
}

Result<ArchiveResult> ArchiveWriter::Commit() {
  if (finished_) return Error(ErrorCode::kFailedPrecondition, "archive upload already finished");
  ArchiveResult result;
  Status st = extractor_->Finish();
  if (st.ok()) st = Publish(result);
  Abort();  // removes what is left of the staged tree (emptied directories that were merged)
  if (!st.ok()) return st.error();
  return result;
}

// Moves the staged tree into the codebase under the store's tree lock, in two passes over the
// places where both trees have a directory of the same name: the first only checks that nothing
// conflicts (a file where the codebase has a directory, a directory where it has a file or a
// link), so a refused archive changes nothing; the second renames. A name the codebase lacks
// moves as a whole subtree in one rename, so a fresh codebase is published with one rename per
// top-level entry. Directories are reopened by path from both roots with the no-symlink resolver
// at every step (constant fds whatever the depth, nothing cached between steps).
Status ArchiveWriter::Publish(ArchiveResult& result) {
  result = std::move(extractor_->counts());
  const Usage staged = extractor_->staged();
  AF_ASSIGN_OR_RETURN(UniqueFd cb, owner_->OpenCodebaseDir(codebase_id_));
  const ResolveMode resolve = owner_->resolve_;
  Usage replaced;

  std::lock_guard lock(owner_->tree_mu_);
  for (bool apply : {false, true}) {
    std::deque<std::string> pending{""};
    while (!pending.empty()) {
      std::string dir = std::move(pending.front());
      pending.pop_front();
      AF_ASSIGN_OR_RETURN(UniqueFd sdir, OpenBeneath(extractor_->stage_fd(), dir,
                                                     O_RDONLY | O_DIRECTORY, 0, resolve));
      AF_ASSIGN_OR_RETURN(UniqueFd tdir,
                          OpenBeneath(cb.get(), dir, O_PATH | O_DIRECTORY, 0, resolve));
      int dup_fd = ::fcntl(sdir.get(), F_DUPFD_CLOEXEC, 0);
      if (dup_fd < 0) return Error::FromErrno(errno, "dup");
      AF_ASSIGN_OR_RETURN(std::vector<std::string> names, ReadDirNames(UniqueFd(dup_fd)));
      std::sort(names.begin(), names.end());
      for (const std::string& name : names) {
        const std::string rel = JoinRelativePath(dir, name);
        struct stat s, t;
        if (::fstatat(sdir.get(), name.c_str(), &s, AT_SYMLINK_NOFOLLOW) != 0) {
          return Error::FromErrno(errno, "fstatat staged '" + rel + "'");
        }
        bool exists = ::fstatat(tdir.get(), name.c_str(), &t, AT_SYMLINK_NOFOLLOW) == 0;
        if (!exists && errno != ENOENT) return ResolveError(errno, "fstatat", rel);
        if (exists && S_ISDIR(s.st_mode)) {
          if (!S_ISDIR(t.st_mode)) {
            return Error(ErrorCode::kFailedPrecondition,
                         "archive directory '" + rel + "' meets a " +
                             (S_ISLNK(t.st_mode) ? "symbolic link" : "file") +
                             " of that name in the codebase; nothing was changed");
          }
          pending.push_back(rel);  // merge the two directories
          continue;
        }
        if (exists && S_ISDIR(t.st_mode)) {
          return Error(ErrorCode::kFailedPrecondition,
                       "archive entry '" + rel +
                           "' would replace a directory of the codebase; nothing was changed");
        }
        if (!apply) continue;
        // rename(2) never follows a link in the last component and replaces atomically: readers
        // see the old file or the new one. NOREPLACE where nothing was there: should something
        // have appeared since the check (a sandbox's sync), fail instead of clobbering it.
        int rc = exists ? ::renameat(sdir.get(), name.c_str(), tdir.get(), name.c_str())
                        : ::renameat2(sdir.get(), name.c_str(), tdir.get(), name.c_str(),
                                      RENAME_NOREPLACE);
        if (rc != 0) {
          return Error::FromErrno(errno, "publishing '" + rel + "'")
              .With("codebase changed while the archive was published");
        }
        if (exists) {
          ++replaced.files;
          if (S_ISREG(t.st_mode)) replaced.bytes += t.st_size;
        }
        if (result.changed.size() < kMaxChangedPaths) {
          result.changed.push_back(rel);
        } else {
          result.changed_truncated = true;
        }
      }
    }
  }
  result.delta.bytes = staged.bytes - replaced.bytes;
  result.delta.files = staged.files - replaced.files;
  return OkStatus();
}

Result<std::unique_ptr<ArchiveWriter>> CodebaseFiles::BeginArchive(std::string_view codebase_id) {
  AF_ASSIGN_OR_RETURN(UniqueFd cb, OpenCodebaseDir(codebase_id));  // fail early on a bad codebase
  AF_ASSIGN_OR_RETURN(std::string name, NewStagingName("arc-"));
  if (::mkdirat(staging_fd_.get(), name.c_str(), 0700) != 0) {
    return Error::FromErrno(errno, "creating archive staging directory");
  }
  int fd =
      ::openat(staging_fd_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    (void)::unlinkat(staging_fd_.get(), name.c_str(), AT_REMOVEDIR);
    return Error::FromErrno(err, "opening archive staging directory");
  }
  return std::unique_ptr<ArchiveWriter>(
      new ArchiveWriter(this, std::string(codebase_id), std::move(name), UniqueFd(fd)));
}

}  // namespace agentfense::store
