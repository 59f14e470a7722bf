// CodebaseFiles: the on-disk file trees of codebases (SPEC §4).
//
// Layout under the root (created 0700):
//   <root>/<codebase_id>/...   one tree per codebase (ids validated: cb_ + 16 hex)
//   <root>/.staging/           upload temp files and trees being deleted; never inside a codebase,
//                              so no name we use can collide with (or be seen as) an agent's file
//
// Every path inside a codebase is reached fd-relative from the codebase directory with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), or a
// component-by-component openat(O_NOFOLLOW) walk where openat2 is missing. A symlink anywhere in a
// path is refused; listing reports links as entries and never traverses them; downloads open
// regular files only.
//
// Usage accounting: the operations that change a tree return a UsageDelta (bytes, files) for the
// caller to apply to the codebase record (MetadataStore::AddCodebaseUsage). Landing and deleting
// are serialised per CodebaseFiles so concurrent deltas add up exactly. Changes made behind the
// store's back (a sandbox sync) are reconciled with ComputeUsage.
//
// Thread-safety: all methods may be called concurrently. An UploadWriter or ArchiveWriter must not
// outlive the CodebaseFiles that created it; one writer is used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "store/md5.h"
#include "store/safe_open.h"

namespace agentfense::store {

struct CodebaseFilesOptions {
  std::string root;  // created (0700) if missing; an existing root is chmod-ed to 0700
  // Unset: probe the kernel. Tests force kWalk to exercise the fallback.
  std::optional<ResolveMode> resolve_mode;
  // Anonymous O_TMPFILE temp files where the filesystem supports them (nothing is left behind even
  // on SIGKILL); false forces named temp files in .staging (swept at the next Open).
  bool use_o_tmpfile = true;
  // fdatasync each upload before it lands, so that even after a power cut a path holds the old
  // file or the whole new one. A process crash is safe either way (the rename is atomic). Off by
  // default, like the metadata's synchronous=NORMAL: measured on the dev VM's ext4, 1,000 uploads
  // of 1 KB take 3.2 s with it and 0.17 s without.
  bool sync_uploads = false;
  int64_t max_file_bytes = 0;        // 0 = unlimited; larger uploads are kResourceExhausted
  size_t max_list_entries = 100000;  // List() beyond this is kResourceExhausted
  // Archive uploads: more entries than this is kResourceExhausted; so is more content in all than
  // max_archive_bytes (0 = unlimited). Each file also obeys max_file_bytes.
  int64_t max_archive_entries = 1000000;
  int64_t max_archive_bytes = 0;
};

struct UsageDelta {
  int64_t bytes = 0;
  int64_t files = 0;
};

struct UploadResult {
  std::string path;     // canonical relative path ("src/app.py")
  int64_t size = 0;     // bytes received
  std::string md5_hex;  // MD5 of the bytes received (WIRE.md UploadResult.checksum)
  UsageDelta delta;     // to apply to the codebase record
};

struct FileEntry {
  std::string path;  // relative to the codebase root ("src/app.py")
  std::string name;  // last component
  bool is_dir = false;
  bool is_symlink = false;  // listed, never followed
  int64_t size = 0;         // 0 for directories
  int64_t mtime_ns = 0;
  uint32_t mode = 0;  // st_mode (type and permission bits)
};

class CodebaseFiles;

// The permission bits a stored file gets for a requested `mode`: rwx bits only (setuid, setgid and
// sticky are stripped), owner read+write always added (the store must be able to read and replace
// its files); 0 means 0644.
mode_t StoredFileMode(mode_t mode);

// An upload in progress: bytes go to an unnamed (or hidden staging) temp file as they arrive, the
// MD5 is computed on the way, and Commit() makes the file appear at its path in one rename.
// Destroying an uncommitted writer (client disconnect, error, crash) leaves nothing behind.
class UploadWriter {
 public:
  ~UploadWriter();
  UploadWriter(const UploadWriter&) = delete;
  UploadWriter& operator=(const UploadWriter&) = delete;

  // Appends a chunk. kResourceExhausted past max_file_bytes; disk errors as they come (ENOSPC).
  Status Write(std::string_view data);
  // Lands the file atomically at its path: parents are created (never through a symlink), the
  // mode is applied, an existing file (or link) at the path is replaced, a directory is not
  // (kFailedPrecondition). After Commit (ok or not) the writer is finished.
  Result<UploadResult> Commit();
  // Discards the upload. Idempotent.
  void Abort();

  int64_t bytes_written() const { return size_; }
  const std::string& path() const { return rel_path_; }

 private:
  friend class CodebaseFiles;
  UploadWriter(CodebaseFiles* owner, std::string codebase_id, std::string rel_path, mode_t mode,
               UniqueFd fd, std::string temp_name);

  CodebaseFiles* owner_;
  std::string codebase_id_;
  std::string rel_path_;
  mode_t mode_;
  UniqueFd fd_;
  std::string temp_name_;  // name in .staging, or "" for an O_TMPFILE
  Md5 md5_;
  int64_t size_ = 0;
  bool finished_ = false;
};

// A regular file opened for streaming download.
class FileReader {
 public:
  // Reads up to `n` bytes; 0 at end of file.
  Result<size_t> Read(void* buf, size_t n);
  int64_t size() const { return size_; }
  uint32_t mode() const { return mode_; }
  int64_t mtime_ns() const { return mtime_ns_; }
  int fd() const { return fd_.get(); }  // borrowed, e.g. for sendfile

 private:
  friend class CodebaseFiles;
  FileReader(UniqueFd fd, int64_t size, uint32_t mode, int64_t mtime_ns)
      : fd_(std::move(fd)), size_(size), mode_(mode), mtime_ns_(mtime_ns) {}
  UniqueFd fd_;
  int64_t size_;
  uint32_t mode_;
  int64_t mtime_ns_;
};

// What an archive upload did.
struct ArchiveResult {
  int64_t files = 0;        // regular files written (hard links are stored as copies)
  int64_t directories = 0;  // directory entries in the archive
  int64_t symlinks = 0;     // symbolic links stored (as links, never followed by the store)
  int64_t bytes = 0;        // content bytes written
  UsageDelta delta;         // to apply to the codebase record
  // Codebase paths that appeared or were replaced where the archive met the existing tree (a new
  // subtree is one path), for cache invalidation; at most kMaxChangedPaths of them.
  std::vector<std::string> changed;
  bool changed_truncated = false;
};

// An archive (tar) upload in progress. Entries are extracted as the bytes arrive, into a private
// tree in .staging that no sandbox can see; Commit() then publishes that tree into the codebase
// (one rename per new subtree or replaced file, each atomic). An archive that is incomplete,
// malformed or refused leaves the codebase untouched: destroying an uncommitted writer removes
// the staged tree.
//
// Names are validated with ValidateRelativePath (absolute names and ".." are refused; a leading
// "./" is dropped); every file is created fd-relative under the staged tree with O_NOFOLLOW and
// O_EXCL, through parents reached without following symlinks. Symlinks are stored as links when
// their target, resolved from the link's directory, stays inside the tree; hard links become
// copies of a file stored earlier by the same archive; devices, FIFOs and other types are
// refused. An entry may not replace a directory (with a file or a link), and nothing is ever
// written through a symlink, so a link cannot redirect a later entry.
class ArchiveWriter {
 public:
  static constexpr size_t kMaxChangedPaths = 10000;

  ~ArchiveWriter();
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;

  // Feeds the next bytes of the archive (any split works). The first error is final: the staged
  // tree is removed and later calls fail.
  Status Write(std::string_view data);
  // Checks that the archive was complete (its end marker arrived) and publishes it. After Commit
  // (ok or not) the writer is finished.
  Result<ArchiveResult> Commit();
  // Discards everything staged. Idempotent.
  void Abort();

  int64_t bytes_received() const { return received_; }

 private:
  friend class CodebaseFiles;
  class Extractor;
  ArchiveWriter(CodebaseFiles* owner, std::string codebase_id, std::string stage_name,
                UniqueFd stage_fd);
  Status Publish(ArchiveResult& result);

  CodebaseFiles* owner_;
  std::string codebase_id_;
  std::string stage_name_;  // directory in .staging holding the extracted tree
  std::unique_ptr<Extractor> extractor_;
  int64_t received_ = 0;
  bool finished_ = false;
};

class CodebaseFiles {
 public:
  static Result<std::unique_ptr<CodebaseFiles>> Open(CodebaseFilesOptions options);

  CodebaseFiles(const CodebaseFiles&) = delete;
  CodebaseFiles& operator=(const CodebaseFiles&) = delete;

  // Creates the empty tree of a codebase. kAlreadyExists if present.
  Status CreateCodebase(std::string_view codebase_id);
  // Removes the whole tree: it is first renamed into .staging (so it vanishes at once), then
  // removed without following links. kNotFound if absent.
  Status DeleteCodebase(std::string_view codebase_id);
  bool CodebaseExists(std::string_view codebase_id) const;
  // An O_PATH|O_DIRECTORY fd of the codebase root, for the filesystem layer and supervisors.
  Result<UniqueFd> OpenCodebaseDir(std::string_view codebase_id) const;
  // The host path of the codebase root (for bind mounts). The id is validated; the path is only
  // as trustworthy as the root, which the operator configured.
  Result<std::string> CodebasePath(std::string_view codebase_id) const;

  // Starts an upload of `rel_path` (validated: relative, no '.'/'..'/empty segments, no NUL or
  // backslash, no trailing '/'). `total_size_hint` (< 0 = unknown) is only checked against
  // max_file_bytes. `mode`: permission bits to keep; setuid/setgid/sticky are stripped, owner
  // read+write are always added (the store must be able to read and replace its files), 0 means
  // 0644.
  Result<std::unique_ptr<UploadWriter>> BeginUpload(std::string_view codebase_id,
                                                    std::string_view rel_path,
                                                    int64_t total_size_hint, mode_t mode);

  // Starts an archive upload into the codebase (see ArchiveWriter).
  Result<std::unique_ptr<ArchiveWriter>> BeginArchive(std::string_view codebase_id);

  // Opens a regular file for reading. A symlink anywhere on the path (or as the file), a
  // directory, FIFO, socket or device is refused without being opened for reading (no blocking,
  // no device side effects).
  Result<FileReader> OpenForDownload(std::string_view codebase_id, std::string_view rel_path);

  // Lists `rel_path` ("" = root): its entries, or the whole subtree when `recursive`, sorted by
  // path. A non-directory at `rel_path` lists as itself; a symlink on or at `rel_path` is
  // kInvalidArgument. Symlinks inside are entries, never traversed; FIFOs are stat-ed, never
  // opened. More than max_list_entries entries is kResourceExhausted.
  Result<std::vector<FileEntry>> List(std::string_view codebase_id, std::string_view rel_path,
                                      bool recursive);

  // Deletes a file, link or empty directory (kFailedPrecondition if not empty), or with
  // `recursive` a whole subdirectory. Never follows a link. Returns the usage change.
  Result<UsageDelta> Delete(std::string_view codebase_id, std::string_view rel_path,
                            bool recursive);

  // Walks the tree and counts (for reconciliation after out-of-band changes).
  Result<Usage> ComputeUsage(std::string_view codebase_id);

  ResolveMode resolve_mode() const { return resolve_; }
  const std::string& root() const { return options_.root; }

 private:
  friend class UploadWriter;
  friend class ArchiveWriter;
  CodebaseFiles(CodebaseFilesOptions options, UniqueFd root, UniqueFd staging, ResolveMode resolve)
      : options_(std::move(options)),
        root_fd_(std::move(root)),
        staging_fd_(std::move(staging)),
        resolve_(resolve) {}

  Status SweepStaging();
  Result<std::string> NewStagingName(std::string_view prefix);
  Result<UploadResult> Land(UploadWriter& w);

  const CodebaseFilesOptions options_;
  const UniqueFd root_fd_;     // O_PATH of the root
  const UniqueFd staging_fd_;  // O_PATH of <root>/.staging
  const ResolveMode resolve_;
  // Serialises the stat-then-replace of Land and Delete so that usage deltas are exact. Leaf lock.
  std::mutex tree_mu_;
};

}  // namespace agentfense::store
