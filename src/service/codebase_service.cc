#include "service/codebase_service.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>

#include "base/ids.h"
#include "base/log.h"
#include "service/convert.h"
#include "service/validation.h"

namespace agentfense::service {

// ---- announced sizes (UploadSink, ArchiveSink) -------------------------------------------------

namespace {

// A client that announced `expected` bytes (> 0) may not send more...
Status CheckNotBeyond(int64_t expected, int64_t received, size_t more, const char* what) {
  if (expected > 0 && received + static_cast<int64_t>(more) > expected) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("{} exceeds the announced total_size of {} bytes", what, expected));
  }
  return OkStatus();
}

// ...nor less: a short stream (the client gave up half-way) must not land as if it were whole.
Status CheckComplete(int64_t expected, int64_t received, const char* what) {
  if (expected > 0 && received != expected) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("received {} {} bytes but total_size announced {}", received, what,
                             expected));
  }
  return OkStatus();
}

}  // namespace

// ---- UploadSink -------------------------------------------------------------------------------

Status UploadSink::Write(std::string_view data) {
  Status st = CheckNotBeyond(expected_size_, writer_->bytes_written(), data.size(), "upload");
  if (!st.ok()) {
    writer_->Abort();
    return st;
  }
  return writer_->Write(data);
}

Result<v1::UploadResult> UploadSink::Finish() {
  if (Status st = CheckComplete(expected_size_, writer_->bytes_written(), "file"); !st.ok()) {
    writer_->Abort();
    return st.error();
  }
  AF_ASSIGN_OR_RETURN(store::UploadResult landed, writer_->Commit());
  Status usage =
      metadata_->AddCodebaseUsage(codebase_id_, landed.delta.bytes, landed.delta.files, NowNs());
  if (!usage.ok()) {
    // The file is in place; only the counters are stale. Report it, do not undo the upload.
    AF_LOG_WARN("codebase {}: usage update failed after upload of {}: {}", codebase_id_,
                landed.path, usage.error().ToString());
  }
  if (registry_ != nullptr) registry_->CodebaseFileChanged(codebase_id_, landed.path);
  v1::UploadResult out;
  out.set_codebase_id(codebase_id_);
  out.set_file_path(landed.path);
  out.set_size(landed.size);
  out.set_checksum(landed.md5_hex);
  return out;
}

// ---- UploadStream -----------------------------------------------------------------------------

Status UploadStream::Consume(const v1::UploadChunk& chunk) {
  switch (chunk.content_case()) {
    case v1::UploadChunk::kMetadata: {
      if (sink_) {
        return Error(ErrorCode::kInvalidArgument, "metadata sent twice in one upload stream");
      }
      // The mode extension (0 = default) is checked like REST's ?mode=.
      const uint32_t mode = chunk.metadata().mode();
      if (mode > 07777) {
        return Error(ErrorCode::kInvalidArgument, "mode is larger than 07777");
      }
      AF_ASSIGN_OR_RETURN(sink_,
                          service_->BeginUpload(ctx_, chunk.metadata(), static_cast<mode_t>(mode)));
      return OkStatus();
    }
    case v1::UploadChunk::kData:
      if (!sink_) {
        return Error(ErrorCode::kInvalidArgument, "the first upload message must be metadata");
      }
      return sink_->Write(chunk.data());
    case v1::UploadChunk::CONTENT_NOT_SET:
      return Error(ErrorCode::kInvalidArgument, "upload message carries neither metadata nor data");
  }
  return Error(ErrorCode::kInvalidArgument, "unknown upload message");
}

Result<v1::UploadResult> UploadStream::Finish() {
  if (!sink_) return Error(ErrorCode::kInvalidArgument, "upload stream carried no metadata");
  return sink_->Finish();
}

// ---- ArchiveSink ------------------------------------------------------------------------------

Status ArchiveSink::Write(std::string_view data) {
  Status st = CheckNotBeyond(expected_size_, writer_->bytes_received(), data.size(), "archive");
  if (!st.ok()) {
    writer_->Abort();
    return st;
  }
  return writer_->Write(data);
}

Result<v1::UploadArchiveResult> ArchiveSink::Finish() {
  if (Status st = CheckComplete(expected_size_, writer_->bytes_received(), "archive"); !st.ok()) {
    writer_->Abort();
    return st.error();
  }
  AF_ASSIGN_OR_RETURN(store::ArchiveResult landed, writer_->Commit());
  Status usage =
      metadata_->AddCodebaseUsage(codebase_id_, landed.delta.bytes, landed.delta.files, NowNs());
  if (!usage.ok()) {
    AF_LOG_WARN("codebase {}: usage update failed after an archive upload: {}", codebase_id_,
                usage.error().ToString());
  }
  if (registry_ != nullptr) {
    for (const std::string& path : landed.changed) registry_->CodebaseFileChanged(codebase_id_, path);
  }
  if (landed.changed_truncated) {
    AF_LOG_WARN("codebase {}: archive changed more than {} existing paths; running sandboxes were "
                "told about the first ones only",
                codebase_id_, store::ArchiveWriter::kMaxChangedPaths);
  }
  AF_LOG_INFO("codebase {}: archive of {} files, {} bytes published", codebase_id_, landed.files,
              landed.bytes);
  v1::UploadArchiveResult out;
  out.set_codebase_id(codebase_id_);
  out.set_files(landed.files);
  out.set_directories(landed.directories);
  out.set_symlinks(landed.symlinks);
  out.set_bytes(landed.bytes);
  auto rec = metadata_->GetCodebase(codebase_id_);
  if (rec.ok()) *out.mutable_codebase() = CodebaseToProto(*rec);
  return out;
}

// ---- ArchiveStream ----------------------------------------------------------------------------

Status ArchiveStream::Consume(const v1::ArchiveChunk& chunk) {
  switch (chunk.content_case()) {
    case v1::ArchiveChunk::kMetadata: {
      if (sink_) return Error(ErrorCode::kInvalidArgument, "metadata sent twice in one archive");
      AF_ASSIGN_OR_RETURN(sink_, service_->BeginArchive(ctx_, chunk.metadata().codebase_id(),
                                                        chunk.metadata().total_size()));
      return OkStatus();
    }
    case v1::ArchiveChunk::kData:
      if (!sink_) {
        return Error(ErrorCode::kInvalidArgument, "the first archive message must be metadata");
      }
      return sink_->Write(chunk.data());
    case v1::ArchiveChunk::CONTENT_NOT_SET:
      return Error(ErrorCode::kInvalidArgument, "archive message carries neither metadata nor data");
  }
  return Error(ErrorCode::kInvalidArgument, "unknown archive message");
}

Result<v1::UploadArchiveResult> ArchiveStream::Finish() {
  if (!sink_) return Error(ErrorCode::kInvalidArgument, "archive stream carried no metadata");
  return sink_->Finish();
}

// ---- DownloadSource ---------------------------------------------------------------------------

Result<bool> DownloadSource::Next(v1::FileChunk* chunk) {
  std::string* data = chunk->mutable_data();
  data->resize(kDownloadChunkBytes);
  AF_ASSIGN_OR_RETURN(size_t n, reader_.Read(data->data(), data->size()));
  data->resize(n);
  return n > 0;
}

Result<size_t> DownloadSource::ReadAt(char* buf, size_t n, int64_t offset) {
  while (true) {
    ssize_t got = ::pread(reader_.fd(), buf, n, offset);
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) return Error::FromErrno(errno, "pread");
  }
}

// ---- CodebaseService --------------------------------------------------------------------------

Status CodebaseService::RequireCodebase(const std::string& codebase_id) {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(codebase_id));
  auto rec = metadata_->GetCodebase(codebase_id);
  if (!rec.ok()) return std::move(rec).error();
  return OkStatus();
}

Result<v1::Codebase> CodebaseService::CreateCodebase(const CallContext& /*ctx*/,
                                                     const v1::CreateCodebaseRequest& req) {
  AF_RETURN_IF_ERROR(ValidateName("name", req.name()));
  AF_RETURN_IF_ERROR(ValidateName("owner_id", req.owner_id()));
  store::CodebaseRecord rec;
  AF_ASSIGN_OR_RETURN(rec.id, NewCodebaseId());
  rec.name = req.name();
  rec.owner_id = req.owner_id();
  rec.created_at_ns = NowNs();
  rec.updated_at_ns = rec.created_at_ns;
  // The tree first: a metadata row must never name a codebase without files on disk.
  AF_RETURN_IF_ERROR(files_->CreateCodebase(rec.id));
  Status created = metadata_->CreateCodebase(rec);
  if (!created.ok()) {
    Status undo = files_->DeleteCodebase(rec.id);
    if (!undo.ok()) {
      AF_LOG_WARN("codebase {}: could not remove the tree after a failed create: {}", rec.id,
                  undo.error().ToString());
    }
    return std::move(created).error();
  }
  AF_LOG_INFO("codebase {} created (owner {})", rec.id, rec.owner_id);
  return CodebaseToProto(rec);
}

Result<v1::Codebase> CodebaseService::GetCodebase(const CallContext& /*ctx*/,
                                                  const v1::GetCodebaseRequest& req) {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(req.codebase_id()));
  AF_ASSIGN_OR_RETURN(store::CodebaseRecord rec, metadata_->GetCodebase(req.codebase_id()));
  return CodebaseToProto(rec);
}

Result<v1::ListCodebasesResponse> CodebaseService::ListCodebases(
    const CallContext& /*ctx*/, const v1::ListCodebasesRequest& req) {
  if (req.owner_id().size() > kMaxNameBytes) {
    return Error(ErrorCode::kInvalidArgument, "owner_id is too long");
  }
  if (req.page_size() < 0) return Error(ErrorCode::kInvalidArgument, "page_size is negative");
  store::PageRequest page;
  page.page_size = req.page_size();
  page.page_token = req.page_token();
  AF_ASSIGN_OR_RETURN(store::Page<store::CodebaseRecord> result,
                      metadata_->ListCodebases(req.owner_id(), page));
  v1::ListCodebasesResponse out;
  for (const auto& rec : result.items) *out.add_codebases() = CodebaseToProto(rec);
  out.set_next_page_token(result.next_page_token);
  return out;
}

Result<v1::Empty> CodebaseService::DeleteCodebase(const CallContext& ctx,
                                                  const v1::DeleteCodebaseRequest& req,
                                                  bool force) {
  AF_RETURN_IF_ERROR(RequireCodebase(req.codebase_id()));
  if (registry_ != nullptr) {
    AF_ASSIGN_OR_RETURN(bool in_use, registry_->IsCodebaseInUse(req.codebase_id()));
    if (in_use) {
      if (!force) {
        return Error(ErrorCode::kFailedPrecondition,
                     "codebase is in use by a sandbox; destroy the sandbox first or force the "
                     "delete");
      }
      AF_ASSIGN_OR_RETURN(int64_t destroyed,
                          registry_->DestroySandboxesOfCodebase(ctx, req.codebase_id()));
      AF_LOG_INFO("codebase {}: forced delete destroyed {} sandbox(es)", req.codebase_id(),
                  destroyed);
    }
  }
  // The row first (it refuses while sandbox records still reference the codebase), then the tree.
  AF_RETURN_IF_ERROR(metadata_->DeleteCodebase(req.codebase_id()));
  Status removed = files_->DeleteCodebase(req.codebase_id());
  if (!removed.ok() && removed.error().code() != ErrorCode::kNotFound) {
    AF_LOG_WARN("codebase {}: record deleted but the tree was not removed: {}", req.codebase_id(),
                removed.error().ToString());
  }
  AF_LOG_INFO("codebase {} deleted", req.codebase_id());
  return v1::Empty();
}

Result<std::unique_ptr<UploadSink>> CodebaseService::BeginUpload(
    const CallContext& /*ctx*/, const v1::UploadChunk::Metadata& meta, mode_t mode) {
  AF_RETURN_IF_ERROR(RequireCodebase(meta.codebase_id()));
  AF_ASSIGN_OR_RETURN(std::string path, ValidateFilePath("file_path", meta.file_path(), false));
  if (meta.total_size() < 0) return Error(ErrorCode::kInvalidArgument, "total_size is negative");
  if (options_.max_upload_bytes > 0 && meta.total_size() > options_.max_upload_bytes) {
    return Error(ErrorCode::kResourceExhausted,
                 fmt::format("file is larger than the upload limit of {} bytes",
                             options_.max_upload_bytes));
  }
  AF_ASSIGN_OR_RETURN(
      std::unique_ptr<store::UploadWriter> writer,
      files_->BeginUpload(meta.codebase_id(), path,
                          meta.total_size() > 0 ? meta.total_size() : -1, mode));
  auto sink = std::make_unique<UploadSink>(metadata_, std::move(writer), meta.codebase_id(),
                                           meta.total_size());
  sink->set_registry(registry_);
  return sink;
}

Result<std::unique_ptr<ArchiveSink>> CodebaseService::BeginArchive(const CallContext& /*ctx*/,
                                                                   const std::string& codebase_id,
                                                                   int64_t total_size) {
  AF_RETURN_IF_ERROR(RequireCodebase(codebase_id));
  if (total_size < 0) return Error(ErrorCode::kInvalidArgument, "total_size is negative");
  AF_ASSIGN_OR_RETURN(std::unique_ptr<store::ArchiveWriter> writer,
                      files_->BeginArchive(codebase_id));
  return std::make_unique<ArchiveSink>(metadata_, registry_, std::move(writer), codebase_id,
                                       total_size);
}

Result<std::unique_ptr<DownloadSource>> CodebaseService::OpenDownload(
    const CallContext& /*ctx*/, const v1::DownloadFileRequest& req) {
  AF_RETURN_IF_ERROR(RequireCodebase(req.codebase_id()));
  AF_ASSIGN_OR_RETURN(std::string path, ValidateFilePath("file_path", req.file_path(), false));
  AF_ASSIGN_OR_RETURN(store::FileReader reader, files_->OpenForDownload(req.codebase_id(), path));
  return std::make_unique<DownloadSource>(std::move(reader));
}

Result<v1::ListFilesResponse> CodebaseService::ListFiles(const CallContext& /*ctx*/,
                                                         const v1::ListFilesRequest& req) {
  AF_RETURN_IF_ERROR(RequireCodebase(req.codebase_id()));
  // "/" and "." are common spellings of the root in clients; anything else absolute is refused.
  std::string_view raw = req.path();
  if (raw == "/" || raw == ".") raw = "";
  AF_ASSIGN_OR_RETURN(std::string path, ValidateFilePath("path", raw, true));
  AF_ASSIGN_OR_RETURN(std::vector<store::FileEntry> entries,
                      files_->List(req.codebase_id(), path, req.recursive()));
  v1::ListFilesResponse out;
  for (const auto& e : entries) *out.add_files() = FileInfoToProto(e);
  return out;
}

Result<v1::Empty> CodebaseService::DeleteFile(const CallContext& /*ctx*/,
                                              const std::string& codebase_id,
                                              const std::string& file_path, bool recursive) {
  AF_RETURN_IF_ERROR(RequireCodebase(codebase_id));
  AF_ASSIGN_OR_RETURN(std::string path, ValidateFilePath("file_path", file_path, false));
  AF_ASSIGN_OR_RETURN(store::UsageDelta delta, files_->Delete(codebase_id, path, recursive));
  Status usage = metadata_->AddCodebaseUsage(codebase_id, delta.bytes, delta.files, NowNs());
  if (!usage.ok()) {
    AF_LOG_WARN("codebase {}: usage update failed after delete of {}: {}", codebase_id, path,
                usage.error().ToString());
  }
  if (registry_ != nullptr) registry_->CodebaseFileChanged(codebase_id, path);
  return v1::Empty();
}

}  // namespace agentfense::service
