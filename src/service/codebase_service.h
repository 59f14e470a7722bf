// CodebaseService: the semantics of sandbox.v1.CodebaseService (WIRE.md) plus our file
// extensions (DeleteFile, per-file upload with a mode), on the real store. Both transports call
// these functions; nothing here knows gRPC or HTTP.
//
// Thread-safety: every method may be called concurrently. UploadSink and DownloadSource are used by
// one thread at a time and must not outlive the service.
//
// Errors: kInvalidArgument (missing/malformed id, name, owner, path, mode, a data chunk before the
// metadata, a size that disagrees with total_size), kNotFound (unknown codebase or file),
// kFailedPrecondition (deleting a codebase in use without force, uploading over a directory),
// kResourceExhausted (file larger than the configured cap, archive with too many entries),
// kCancelled (client went away). Archive uploads add the refusals of store::ArchiveWriter.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"
#include "sandbox/v1/codebase.pb.h"
#include "sandbox/v1/common.pb.h"
#include "service/sandbox_api.h"
#include "store/codebase_files.h"
#include "store/metadata_store.h"

namespace agentfense::service {

inline constexpr size_t kDownloadChunkBytes = 64 * 1024;  // WIRE.md: DownloadFile chunk size

// An upload in progress: bytes are streamed to a temp file (never buffered whole) and land
// atomically at Finish. Destroying an unfinished sink discards the upload.
class UploadSink {
 public:
  UploadSink(store::MetadataStore* metadata, std::unique_ptr<store::UploadWriter> writer,
             std::string codebase_id, int64_t expected_size)
      : metadata_(metadata),
        writer_(std::move(writer)),
        codebase_id_(std::move(codebase_id)),
        expected_size_(expected_size) {}

  Status Write(std::string_view data);
  // Lands the file and updates the codebase's size and file_count.
  Result<v1::UploadResult> Finish();
  // Told about the landed file (running sandboxes drop their caches of it); may be null.
  void set_registry(SandboxRegistry* registry) { registry_ = registry; }
  int64_t bytes_written() const { return writer_->bytes_written(); }

 private:
  store::MetadataStore* metadata_;
  std::unique_ptr<store::UploadWriter> writer_;
  std::string codebase_id_;
  int64_t expected_size_;  // metadata.total_size; <= 0 means "not announced"
  SandboxRegistry* registry_ = nullptr;
};

// Drives an UploadSink from the UploadFiles message stream: the first chunk must be `metadata`,
// every later one `data`.
class UploadStream {
 public:
  explicit UploadStream(class CodebaseService* service, CallContext ctx)
      : service_(service), ctx_(std::move(ctx)) {}
  Status Consume(const v1::UploadChunk& chunk);
  Result<v1::UploadResult> Finish();
  // Discards what was received so far, on the calling thread. Idempotent.
  void Abort() { sink_.reset(); }

 private:
  CodebaseService* service_;
  CallContext ctx_;
  std::unique_ptr<UploadSink> sink_;
};

// An archive upload in progress (UploadArchive, PUT /v1/codebases/{id}/archive): the tar bytes
// are extracted as they arrive into a staging tree and published at Finish (store::ArchiveWriter).
// Destroying an unfinished sink discards everything staged.
class ArchiveSink {
 public:
  ArchiveSink(store::MetadataStore* metadata, SandboxRegistry* registry,
              std::unique_ptr<store::ArchiveWriter> writer, std::string codebase_id,
              int64_t expected_size)
      : metadata_(metadata),
        registry_(registry),
        writer_(std::move(writer)),
        codebase_id_(std::move(codebase_id)),
        expected_size_(expected_size) {}

  Status Write(std::string_view data);
  // Publishes the archive and updates the codebase's size and file_count.
  Result<v1::UploadArchiveResult> Finish();
  int64_t bytes_received() const { return writer_->bytes_received(); }

 private:
  store::MetadataStore* metadata_;
  SandboxRegistry* registry_;
  std::unique_ptr<store::ArchiveWriter> writer_;
  std::string codebase_id_;
  int64_t expected_size_;  // metadata.total_size / Content-Length; <= 0 means "not announced"
};

// Drives an ArchiveSink from the UploadArchive message stream: the first message must be
// `metadata`, every later one `data`.
class ArchiveStream {
 public:
  ArchiveStream(class CodebaseService* service, CallContext ctx)
      : service_(service), ctx_(std::move(ctx)) {}
  Status Consume(const v1::ArchiveChunk& chunk);
  Result<v1::UploadArchiveResult> Finish();
  // Discards what was staged so far, on the calling thread (removing a big half-received tree
  // takes time: the transports call this from their executor, not from a gRPC thread).
  void Abort() { sink_.reset(); }

 private:
  CodebaseService* service_;
  CallContext ctx_;
  std::unique_ptr<ArchiveSink> sink_;
};

// A file being downloaded, in chunks of at most kDownloadChunkBytes.
class DownloadSource {
 public:
  explicit DownloadSource(store::FileReader reader) : reader_(std::move(reader)) {}
  // Fills `chunk` with the next bytes; false at end of file.
  Result<bool> Next(v1::FileChunk* chunk);
  // Reads up to n bytes into buf; 0 at end of file.
  Result<size_t> Read(char* buf, size_t n) { return reader_.Read(buf, n); }
  // Positional read (HTTP range requests); 0 at or past end of file.
  Result<size_t> ReadAt(char* buf, size_t n, int64_t offset);
  int64_t size() const { return reader_.size(); }
  uint32_t mode() const { return reader_.mode(); }

 private:
  store::FileReader reader_;
};

struct CodebaseServiceOptions {
  int64_t max_upload_bytes = 0;  // 0 = unlimited (the store's own cap still applies)
};

class CodebaseService {
 public:
  // `metadata` and `files` are borrowed and outlive the service.
  CodebaseService(store::MetadataStore* metadata, store::CodebaseFiles* files,
                  CodebaseServiceOptions options = {})
      : metadata_(metadata), files_(files), options_(options) {}

  // Installs who answers "is this codebase in use" (the sandbox manager). Call before serving;
  // without one, no codebase counts as in use (the store still refuses to delete a codebase that
  // sandbox records reference).
  void set_registry(SandboxRegistry* registry) { registry_ = registry; }

  Result<v1::Codebase> CreateCodebase(const CallContext& ctx, const v1::CreateCodebaseRequest& req);
  Result<v1::Codebase> GetCodebase(const CallContext& ctx, const v1::GetCodebaseRequest& req);
  Result<v1::ListCodebasesResponse> ListCodebases(const CallContext& ctx,
                                                  const v1::ListCodebasesRequest& req);
  // `force` (REST ?force=true) first destroys the sandboxes that use the codebase.
  Result<v1::Empty> DeleteCodebase(const CallContext& ctx, const v1::DeleteCodebaseRequest& req,
                                   bool force = false);

  // Starts an upload of one file. `mode` 0 keeps the store default (0644).
  Result<std::unique_ptr<UploadSink>> BeginUpload(const CallContext& ctx,
                                                  const v1::UploadChunk::Metadata& meta,
                                                  mode_t mode = 0);
  // Starts an archive upload into an existing codebase. `total_size` (<= 0 = unknown) is the
  // number of archive bytes the client announced.
  Result<std::unique_ptr<ArchiveSink>> BeginArchive(const CallContext& ctx,
                                                    const std::string& codebase_id,
                                                    int64_t total_size);
  Result<std::unique_ptr<DownloadSource>> OpenDownload(const CallContext& ctx,
                                                       const v1::DownloadFileRequest& req);
  Result<v1::ListFilesResponse> ListFiles(const CallContext& ctx, const v1::ListFilesRequest& req);
  // Deletes a file, link or empty directory (or with `recursive` a directory tree).
  Result<v1::Empty> DeleteFile(const CallContext& ctx, const std::string& codebase_id,
                               const std::string& file_path, bool recursive);

 private:
  // kNotFound unless the codebase exists in the metadata (validates the id first).
  Status RequireCodebase(const std::string& codebase_id);

  store::MetadataStore* metadata_;
  store::CodebaseFiles* files_;
  SandboxRegistry* registry_ = nullptr;
  const CodebaseServiceOptions options_;
};

}  // namespace agentfense::service
