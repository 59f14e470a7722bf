#include "server/rest_call.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "server/json_codec.h"
#include "server/metrics.h"
#include "server/status_map.h"

namespace agentfense::server {

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool IsChunked(const httplib::Request& req) {
  return Lower(req.get_header_value("Transfer-Encoding")).find("chunked") != std::string::npos;
}

// Content-Length as announced; -1 when absent or malformed.
int64_t ContentLength(const httplib::Request& req) {
  if (!req.has_header("Content-Length")) return -1;
  std::string v = req.get_header_value("Content-Length");
  int64_t n = -1;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 0) return -1;
  return n;
}

}  // namespace

bool HasBody(const httplib::Request& req) {
  return IsChunked(req) || ContentLength(req) > 0;
}

RestCall::RestCall(const TransportDeps& deps, const httplib::Request& req, httplib::Response& res,
                   const char* route)
    : deps_(deps), req_(req), res_(res), route_(route), start_(std::chrono::steady_clock::now()) {
  cc_.transport = "rest";
  cc_.server_stopping = deps.stopping;
  cc_.peer = req.remote_addr + ":" + std::to_string(req.remote_port);
}

Status RestCall::ReadJson(const httplib::ContentReader* reader, google::protobuf::Message* msg) {
  AF_ASSIGN_OR_RETURN(std::string body, ReadBody(reader, deps_.max_body_bytes,
                                                 /*allow_cli_form=*/true));
  return JsonToMessage(body, msg);
}

Result<std::string> RestCall::ReadBody(const httplib::ContentReader* reader, uint64_t cap,
                                       bool allow_cli_form) {
  // A Content-Type other than JSON is refused even with an empty body: browsers send
  // text/plain and form encodings cross-origin without a preflight (CSRF).
  //
  // One exception keeps the README's `curl -d '{...}'` examples working as written: curl labels
  // -d bodies application/x-www-form-urlencoded. Such a body is accepted when it is a JSON
  // object and the request carries none of the headers every browser adds to a cross-site
  // request (Origin on POST/PUT/DELETE, Sec-Fetch-*, Referer): a browser-made request never
  // passes, a command-line client does.
  bool form_from_cli = false;
  if (req_.has_header("Content-Type")) {
    std::string type = Lower(req_.get_header_value("Content-Type"));
    if (size_t semi = type.find(';'); semi != std::string::npos) type.resize(semi);
    while (!type.empty() && type.back() == ' ') type.pop_back();
    form_from_cli = allow_cli_form && type == "application/x-www-form-urlencoded" &&
                    !req_.has_header("Origin") && !req_.has_header("Sec-Fetch-Site") &&
                    !req_.has_header("Sec-Fetch-Mode") && !req_.has_header("Referer");
    if (type != "application/json" && !form_from_cli) {
      http_override_ = 415;
      res_.set_header("Connection", "close");  // the body, if any, is left unread
      return Error(ErrorCode::kInvalidArgument, "Content-Type must be application/json");
    }
  }
  if (!HasBody(req_)) return std::string();
  if (!req_.has_header("Content-Type")) {
    http_override_ = 415;
    res_.set_header("Connection", "close");
    return Error(ErrorCode::kInvalidArgument, "Content-Type must be application/json");
  }
  int64_t announced = ContentLength(req_);
  if (announced > 0 && static_cast<uint64_t>(announced) > cap) {
    http_override_ = 413;
    res_.set_header("Connection", "close");
    return Error(ErrorCode::kResourceExhausted,
                 "request body larger than the limit of " + std::to_string(cap) + " bytes");
  }
  if (reader == nullptr) {
    return Error(ErrorCode::kInvalidArgument, "this route takes no request body");
  }
  std::string body;
  bool too_big = false;
  bool ok = (*reader)([&](const char* data, size_t n) {
    if (body.size() + n > cap) {
      too_big = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_big) {
    http_override_ = 413;
    res_.set_header("Connection", "close");
    return Error(ErrorCode::kResourceExhausted,
                 "request body larger than the limit of " + std::to_string(cap) + " bytes");
  }
  if (!ok) {
    res_.set_header("Connection", "close");
    return Error(ErrorCode::kInvalidArgument, "could not read the request body");
  }
  if (form_from_cli) {
    size_t first = body.find_first_not_of(" \t\r\n");
    if (first == std::string::npos || body[first] != '{') {
      http_override_ = 415;
      return Error(ErrorCode::kInvalidArgument, "Content-Type must be application/json");
    }
  }
  return body;
}

std::string RestCall::Query(const char* snake, const char* camel) const {
  if (req_.has_param(snake)) return req_.get_param_value(snake);
  if (camel != nullptr && req_.has_param(camel)) return req_.get_param_value(camel);
  return "";
}

Result<int32_t> RestCall::QueryInt(const char* snake, const char* camel) const {
  std::string v = Query(snake, camel);
  if (v.empty()) return 0;
  int32_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return Error(ErrorCode::kInvalidArgument, std::string(snake) + " must be an integer");
  }
  return n;
}

Result<bool> RestCall::QueryBool(const char* name) const {
  std::string v = Lower(Query(name));
  if (v.empty() || v == "false" || v == "0") return false;
  if (v == "true" || v == "1") return true;
  return Error(ErrorCode::kInvalidArgument, std::string(name) + " must be true or false");
}

void RestCall::Record(ErrorCode code) {
  if (recorded_ || deps_.metrics == nullptr) return;
  recorded_ = true;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  deps_.metrics->RecordRequest("rest", route_, GrpcCodeName(static_cast<int>(code)), secs);
}

void RestCall::ReplyError(const Error& error) {
  res_.status = http_override_ != 0 ? http_override_ : HttpStatusForCode(error.code());
  res_.set_content(ErrorJson(error.code(), ClientMessage(error)), "application/json");
  Record(error.code());
}

void RestCall::Reply(const Result<std::string>& json) {
  if (!json.ok()) {
    ReplyError(json.error());
    return;
  }
  res_.status = 200;
  res_.set_content(json.value(), "application/json");
  Record(ErrorCode::kOk);
}

void ServeJson(const TransportDeps& deps, const httplib::Request& req, httplib::Response& res,
               const char* route, const std::function<Result<std::string>(RestCall&)>& fn) {
  RestCall call(deps, req, res, route);
  call.Reply(fn(call));
}

}  // namespace agentfense::server
