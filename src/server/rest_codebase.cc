// REST routes of CodebaseService (WIRE.md) and the file-transfer extensions.
#include <fmt/format.h>
#include <httplib.h>

#include "sandbox/v1/codebase.pb.h"
#include "server/json_codec.h"
#include "server/rest_call.h"
#include "server/rest_server.h"
#include "service/validation.h"

namespace agentfense::server {

namespace v1 = ::sandbox::v1;
using httplib::ContentReader;
using httplib::Request;
using httplib::Response;

namespace {

template <typename M>
Result<std::string> Json(Result<M> r) {
  if (!r.ok()) return std::move(r).error();
  return MessageToJson(r.value());
}

// The Content-Length of an upload, -1 when absent.
Result<int64_t> AnnouncedLength(RestCall& call) {
  const Request& req = call.request();
  if (!req.has_header("Content-Length")) return int64_t{-1};
  try {
    return static_cast<int64_t>(std::stoll(req.get_header_value("Content-Length")));
  } catch (...) {
    return Error(ErrorCode::kInvalidArgument, "malformed Content-Length");
  }
}

// Streams the request body into `sink` (an UploadSink or ArchiveSink) as it arrives, never whole
// in memory, then finishes it.
template <typename Sink>
Result<std::string> StreamBody(RestCall& call, const ContentReader& reader, Sink& sink) {
  if (HasBody(call.request())) {
    Status written;
    bool ok = reader([&](const char* data, size_t n) {
      written = sink.Write(std::string_view(data, n));
      return written.ok();
    });
    if (!written.ok()) {
      call.response().set_header("Connection", "close");
      if (written.error().code() == ErrorCode::kResourceExhausted) call.set_http_override(413);
      return written.error();
    }
    if (!ok) {
      call.response().set_header("Connection", "close");
      return Error(ErrorCode::kCancelled, "upload body ended early");
    }
  }
  return Json(sink.Finish());
}

// PUT /v1/codebases/{codebase_id}/files/{path}: the body is the file, streamed to disk as it
// arrives (never whole in memory) and landed atomically when complete.
Result<std::string> PutFile(RestCall& call, const ContentReader& reader) {
  const TransportDeps& deps = call.deps();
  AF_ASSIGN_OR_RETURN(mode_t mode, service::ParseFileMode(call.Query("mode"), 0));
  v1::UploadChunk::Metadata meta;
  meta.set_codebase_id(call.Param(1));
  meta.set_file_path(call.Param(2));
  AF_ASSIGN_OR_RETURN(int64_t announced, AnnouncedLength(call));
  if (announced >= 0) meta.set_total_size(announced);
  if (deps.max_upload_bytes > 0 && announced > 0 &&
      static_cast<uint64_t>(announced) > deps.max_upload_bytes) {
    call.set_http_override(413);
    call.response().set_header("Connection", "close");
    return Error(ErrorCode::kResourceExhausted, "file larger than the upload limit");
  }
  auto sink = deps.codebases->BeginUpload(call.context(), meta, mode);
  if (!sink.ok()) {
    call.response().set_header("Connection", "close");  // the body stays unread
    return std::move(sink).error();
  }
  return StreamBody(call, reader, **sink);
}

// PUT /v1/codebases/{codebase_id}/archive: the body is a tar archive, extracted as it arrives and
// published when complete (CodebaseService::BeginArchive). A body shorter than its Content-Length
// is refused, as is one cut before the archive's end marker.
Result<std::string> PutArchive(RestCall& call, const ContentReader& reader) {
  AF_ASSIGN_OR_RETURN(int64_t announced, AnnouncedLength(call));
  auto sink = call.deps().codebases->BeginArchive(call.context(), call.Param(1),
                                                  announced > 0 ? announced : 0);
  if (!sink.ok()) {
    call.response().set_header("Connection", "close");
    return std::move(sink).error();
  }
  return StreamBody(call, reader, **sink);
}

// GET /v1/codebases/{codebase_id}/files/{path}: streamed from an open fd (64 KiB at a time,
// positional reads so that Range requests work); never whole in memory.
void GetFile(const TransportDeps& deps, const Request& req, Response& res) {
  RestCall call(deps, req, res, "/v1/codebases/{id}/files/{path}:get");
  v1::DownloadFileRequest m;
  m.set_codebase_id(call.Param(1));
  m.set_file_path(call.Param(2));
  auto source = deps.codebases->OpenDownload(call.context(), m);
  if (!source.ok()) {
    call.ReplyError(source.error());
    return;
  }
  std::shared_ptr<service::DownloadSource> src = std::move(source).value();
  res.status = 200;
  res.set_header("X-File-Mode", fmt::format("{:04o}", src->mode() & 07777));
  res.set_content_provider(
      static_cast<size_t>(src->size()), "application/octet-stream",
      [src](size_t offset, size_t length, httplib::DataSink& sink) {
        std::string buf(std::min(length, service::kDownloadChunkBytes), '\0');
        auto n = src->ReadAt(buf.data(), buf.size(), static_cast<int64_t>(offset));
        if (!n.ok() || *n == 0) return false;  // the file shrank under us: abort the response
        return sink.write(buf.data(), *n);
      });
  call.Record(ErrorCode::kOk);
}

}  // namespace

void RestServer::RegisterCodebaseRoutes() {
  const TransportDeps& d = deps_;
  svr_->Post("/v1/codebases", [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/codebases:post", [&](RestCall& call) -> Result<std::string> {
      v1::CreateCodebaseRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      return Json(d.codebases->CreateCodebase(call.context(), m));
    });
  });
  svr_->Get("/v1/codebases", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/codebases:get", [&](RestCall& call) -> Result<std::string> {
      v1::ListCodebasesRequest m;
      m.set_owner_id(call.Query("owner_id", "ownerId"));
      AF_ASSIGN_OR_RETURN(int32_t size, call.QueryInt("page_size", "pageSize"));
      m.set_page_size(size);
      m.set_page_token(call.Query("page_token", "pageToken"));
      return Json(d.codebases->ListCodebases(call.context(), m));
    });
  });
  svr_->Get(R"(/v1/codebases/([^/]+))", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/codebases/{id}:get", [&](RestCall& call) -> Result<std::string> {
      v1::GetCodebaseRequest m;
      m.set_codebase_id(call.Param(1));
      return Json(d.codebases->GetCodebase(call.context(), m));
    });
  });
  svr_->Delete(R"(/v1/codebases/([^/]+))",
               [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/codebases/{id}:delete", [&](RestCall& call) -> Result<std::string> {
      v1::DeleteCodebaseRequest m;
      AF_RETURN_IF_ERROR(call.ReadJson(&rd, &m));
      m.set_codebase_id(call.Param(1));
      AF_ASSIGN_OR_RETURN(bool force, call.QueryBool("force"));
      return Json(d.codebases->DeleteCodebase(call.context(), m, force));
    });
  });
  svr_->Get(R"(/v1/codebases/([^/]+)/files)", [&d](const Request& req, Response& res) {
    ServeJson(d, req, res, "/v1/codebases/{id}/files:get",
              [&](RestCall& call) -> Result<std::string> {
      v1::ListFilesRequest m;
      m.set_codebase_id(call.Param(1));
      m.set_path(call.Query("path"));
      AF_ASSIGN_OR_RETURN(bool recursive, call.QueryBool("recursive"));
      m.set_recursive(recursive);
      return Json(d.codebases->ListFiles(call.context(), m));
    });
  });
  svr_->Put(R"(/v1/codebases/([^/]+)/files/(.+))",
            [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/codebases/{id}/files/{path}:put",
              [&](RestCall& call) { return PutFile(call, rd); });
  });
  svr_->Put(R"(/v1/codebases/([^/]+)/archive)",
            [&d](const Request& req, Response& res, const ContentReader& rd) {
    ServeJson(d, req, res, "/v1/codebases/{id}/archive:put",
              [&](RestCall& call) { return PutArchive(call, rd); });
  });
  svr_->Get(R"(/v1/codebases/([^/]+)/files/(.+))",
            [&d](const Request& req, Response& res) { GetFile(d, req, res); });
  svr_->Delete(R"(/v1/codebases/([^/]+)/files/(.+))",
               [&d](const Request& req, Response& res, const ContentReader&) {
    ServeJson(d, req, res, "/v1/codebases/{id}/files/{path}:delete",
              [&](RestCall& call) -> Result<std::string> {
      if (HasBody(req)) {
        call.response().set_header("Connection", "close");
        return Error(ErrorCode::kInvalidArgument, "this route takes no request body");
      }
      AF_ASSIGN_OR_RETURN(bool recursive, call.QueryBool("recursive"));
      return Json(
          d.codebases->DeleteFile(call.context(), call.Param(1), call.Param(2), recursive));
    });
  });
}

}  // namespace agentfense::server
