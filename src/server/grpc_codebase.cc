#include <atomic>

#include "server/grpc_call.h"
#include "server/grpc_services.h"

namespace agentfense::server {

namespace {

using service::CallContext;

// UploadFiles and UploadArchive: each message read is handed to the executor (disk writes never
// run on a gRPC thread); the next read starts only when that chunk is on disk, which bounds memory
// to one message and gives the client natural back-pressure. `Stream` is the service's driver of
// the message stream (UploadStream, ArchiveStream).
template <typename Chunk, typename Response, typename Stream>
class UploadCall final : public grpc::ServerReadReactor<Chunk> {
 public:
  UploadCall(const TransportDeps& deps, grpc::CallbackServerContext* ctx, Response* resp,
             const char* method)
      : deps_(deps), ctx_(ctx), resp_(resp), method_(method), cc_(MakeGrpcCallContext(deps, ctx)),
        stream_(deps.codebases, cc_), start_(std::chrono::steady_clock::now()) {
    if (!GrpcAuthorized(ctx, deps.auth_token)) {
      Complete(UnauthenticatedError());
      return;
    }
    this->StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    deps_.executor->Submit([this, ok] {
      if (ok) {
        Status consumed = stream_.Consume(chunk_);
        if (!consumed.ok()) {
          Complete(consumed);
          return;
        }
        this->StartRead(&chunk_);
        return;
      }
      // The read side ended: a clean half-close from the client, or a broken call. Only the
      // former may land the upload.
      if (cc_.IsCancelled() || ctx_->IsCancelled()) {
        Complete(Error(ErrorCode::kCancelled, "upload cancelled by the client"));
        return;
      }
      auto result = stream_.Finish();
      if (!result.ok()) {
        Complete(std::move(result).error());
        return;
      }
      *resp_ = std::move(result).value();
      Complete(OkStatus());
    });
  }
  void OnCancel() override { cc_.cancelled->store(true); }
  void OnDone() override { delete this; }

 private:
  // Runs on the executor (or in the constructor, before anything was received): a failed upload
  // is discarded here, so that removing a half-received archive never blocks a gRPC thread in
  // OnDone.
  void Complete(const Status& status) {
    if (!status.ok()) stream_.Abort();
    RecordGrpc(deps_, method_, status, start_);
    this->Finish(status.ok() ? grpc::Status::OK : ToGrpcStatus(status.error()));
  }

  const TransportDeps& deps_;
  grpc::CallbackServerContext* ctx_;
  Response* resp_;
  const char* method_;
  CallContext cc_;
  Stream stream_;
  Chunk chunk_;
  std::chrono::steady_clock::time_point start_;
};

// DownloadFile: the executor reads one 64 KiB chunk, gRPC writes it, and only then is the next
// chunk read: at most one chunk in memory per call.
class DownloadCall final : public grpc::ServerWriteReactor<v1::FileChunk> {
 public:
  DownloadCall(const TransportDeps& deps, grpc::CallbackServerContext* ctx,
               const v1::DownloadFileRequest* req)
      : deps_(deps),
        cc_(MakeGrpcCallContext(deps, ctx)),
        start_(std::chrono::steady_clock::now()) {
    if (!GrpcAuthorized(ctx, deps.auth_token)) {
      Complete(UnauthenticatedError());
      return;
    }
    deps_.executor->Submit([this, req] {
      auto source = deps_.codebases->OpenDownload(cc_, *req);
      if (!source.ok()) {
        Complete(std::move(source).error());
        return;
      }
      source_ = std::move(source).value();
      ReadNext();
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Complete(Error(ErrorCode::kCancelled, "download cancelled by the client"));
      return;
    }
    deps_.executor->Submit([this] { ReadNext(); });
  }
  void OnCancel() override { cc_.cancelled->store(true); }
  void OnDone() override { delete this; }

 private:
  void ReadNext() {
    Result<bool> more = source_->Next(&chunk_);
    if (!more.ok()) {
      Complete(std::move(more).error());
    } else if (!*more) {
      Complete(OkStatus());
    } else {
      StartWrite(&chunk_);
    }
  }
  void Complete(const Status& status) {
    RecordGrpc(deps_, "DownloadFile", status, start_);
    Finish(status.ok() ? grpc::Status::OK : ToGrpcStatus(status.error()));
  }

  const TransportDeps& deps_;
  CallContext cc_;
  std::unique_ptr<service::DownloadSource> source_;
  v1::FileChunk chunk_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

grpc::ServerUnaryReactor* CodebaseGrpcService::CreateCodebase(
    grpc::CallbackServerContext* ctx, const v1::CreateCodebaseRequest* req, v1::Codebase* resp) {
  return RunUnary(deps_, ctx, "CreateCodebase", req, resp,
                  [s = deps_.codebases](const CallContext& cc, const auto& r) {
                    return s->CreateCodebase(cc, r);
                  });
}

grpc::ServerUnaryReactor* CodebaseGrpcService::GetCodebase(grpc::CallbackServerContext* ctx,
                                                           const v1::GetCodebaseRequest* req,
                                                           v1::Codebase* resp) {
  return RunUnary(deps_, ctx, "GetCodebase", req, resp,
                  [s = deps_.codebases](const CallContext& cc, const auto& r) {
                    return s->GetCodebase(cc, r);
                  });
}

grpc::ServerUnaryReactor* CodebaseGrpcService::ListCodebases(
    grpc::CallbackServerContext* ctx, const v1::ListCodebasesRequest* req,
    v1::ListCodebasesResponse* resp) {
  return RunUnary(deps_, ctx, "ListCodebases", req, resp,
                  [s = deps_.codebases](const CallContext& cc, const auto& r) {
                    return s->ListCodebases(cc, r);
                  });
}

grpc::ServerUnaryReactor* CodebaseGrpcService::DeleteCodebase(
    grpc::CallbackServerContext* ctx, const v1::DeleteCodebaseRequest* req, v1::Empty* resp) {
  return RunUnary(deps_, ctx, "DeleteCodebase", req, resp,
                  [s = deps_.codebases](const CallContext& cc, const auto& r) {
                    return s->DeleteCodebase(cc, r);
                  });
}

grpc::ServerReadReactor<v1::UploadChunk>* CodebaseGrpcService::UploadFiles(
    grpc::CallbackServerContext* ctx, v1::UploadResult* resp) {
  return new UploadCall<v1::UploadChunk, v1::UploadResult, service::UploadStream>(
      deps_, ctx, resp, "UploadFiles");
}

grpc::ServerReadReactor<v1::ArchiveChunk>* CodebaseGrpcService::UploadArchive(
    grpc::CallbackServerContext* ctx, v1::UploadArchiveResult* resp) {
  return new UploadCall<v1::ArchiveChunk, v1::UploadArchiveResult, service::ArchiveStream>(
      deps_, ctx, resp, "UploadArchive");
}

grpc::ServerWriteReactor<v1::FileChunk>* CodebaseGrpcService::DownloadFile(
    grpc::CallbackServerContext* ctx, const v1::DownloadFileRequest* req) {
  return new DownloadCall(deps_, ctx, req);
}

grpc::ServerUnaryReactor* CodebaseGrpcService::ListFiles(grpc::CallbackServerContext* ctx,
                                                         const v1::ListFilesRequest* req,
                                                         v1::ListFilesResponse* resp) {
  return RunUnary(deps_, ctx, "ListFiles", req, resp,
                  [s = deps_.codebases](const CallContext& cc, const auto& r) {
                    return s->ListFiles(cc, r);
                  });
}

// The REST twin is DELETE /v1/codebases/{id}/files/{path}; the message has no `recursive`, so
// gRPC deletes a file, a link or an empty directory only.
grpc::ServerUnaryReactor* CodebaseGrpcService::DeleteFile(grpc::CallbackServerContext* ctx,
                                                          const v1::DeleteFileRequest* req,
                                                          v1::Empty* resp) {
  return RunUnary(deps_, ctx, "DeleteFile", req, resp,
                  [s = deps_.codebases](const CallContext& cc, const auto& r) {
                    return s->DeleteFile(cc, r.codebase_id(), r.file_path(), /*recursive=*/false);
                  });
}

}  // namespace agentfense::server
