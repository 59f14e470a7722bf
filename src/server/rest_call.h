// Per-request plumbing of the REST transport: reading a bounded JSON body into a message, query
// parameters, error bodies and metrics. Internal to server/ (rest_*.cc).
#pragma once

#include <httplib.h>

#include <google/protobuf/message.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "base/result.h"
#include "server/transport_deps.h"

namespace agentfense::server {

class RestCall {
 public:
  RestCall(const TransportDeps& deps, const httplib::Request& req, httplib::Response& res,
           const char* route);

  // Reads the JSON body (if any) into `msg`. Refuses a non-JSON Content-Type (415), a body over
  // max_body_bytes (413) and nesting deeper than 64 (400). `reader` may be null for routes that
  // take no body (a body sent anyway is refused the same way).
  Status ReadJson(const httplib::ContentReader* reader, google::protobuf::Message* msg);
  // The raw body under the same guards (Content-Type, at most `cap` bytes); "" when there is
  // none. `allow_cli_form`: accept curl's form-labelled JSON object as ReadJson does.
  Result<std::string> ReadBody(const httplib::ContentReader* reader, uint64_t cap,
                               bool allow_cli_form);

  // The value of query parameter `snake` or its lowerCamelCase twin `camel`; "" if absent.
  std::string Query(const char* snake, const char* camel = nullptr) const;
  Result<int32_t> QueryInt(const char* snake, const char* camel) const;
  Result<bool> QueryBool(const char* name) const;
  // Path capture `i` of the route's regex.
  std::string Param(size_t i) const { return req_.matches[static_cast<int>(i)].str(); }

  // Sends a JSON body with status 200 or the error (with `http_override` when set).
  void Reply(const Result<std::string>& json);
  void ReplyError(const Error& error);
  // The HTTP status to use instead of the gRPC-derived one for the next error (413, 415).
  void set_http_override(int status) { http_override_ = status; }
  int http_override() const { return http_override_; }
  // Records the outcome in the metrics (done by Reply; streamed routes call it themselves).
  void Record(ErrorCode code);

  const service::CallContext& context() const { return cc_; }
  const httplib::Request& request() const { return req_; }
  httplib::Response& response() { return res_; }
  const TransportDeps& deps() const { return deps_; }

 private:
  const TransportDeps& deps_;
  const httplib::Request& req_;
  httplib::Response& res_;
  const char* route_;
  service::CallContext cc_;
  int http_override_ = 0;
  bool recorded_ = false;
  std::chrono::steady_clock::time_point start_;
};

// Hands whole chunks (NDJSON lines of exec:stream, SSE events of the MCP endpoint) from the
// thread producing them (an executor thread) to the httplib thread writing the response.
// Bounded: a slow reader slows the producer down, never grows memory.
struct StreamBridge {
  static constexpr size_t kMaxQueued = 16;
  std::mutex mu;  // leaf lock
  std::condition_variable cv;
  std::deque<std::string> lines;
  bool done = false;
  bool consumer_gone = false;
  Status final;

  // Blocks while the queue is full. False once the reader is gone or the call is cancelled
  // (server shutdown sets a flag without notifying: hence the timed wait).
  bool Push(std::string line, const service::CallContext& cc) {
    std::unique_lock lock(mu);
    while (lines.size() >= kMaxQueued && !consumer_gone && !cc.IsCancelled()) {
      cv.wait_for(lock, std::chrono::milliseconds(100));
    }
    if (consumer_gone || cc.IsCancelled()) return false;
    lines.push_back(std::move(line));
    cv.notify_all();
    return true;
  }
  // Waits for the next chunk; nullopt once the producer has finished and every chunk was taken
  // (`final`, set once before `done`, may then be read without the lock).
  std::optional<std::string> Next() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return !lines.empty() || done; });
    if (lines.empty()) return std::nullopt;
    std::string chunk = std::move(lines.front());
    lines.pop_front();
    cv.notify_all();
    return chunk;
  }
  void Finish(Status status) {
    std::lock_guard lock(mu);
    done = true;
    final = std::move(status);
    cv.notify_all();
  }
  void Abandon() {
    std::lock_guard lock(mu);
    consumer_gone = true;
    cv.notify_all();
  }
};

// Runs `fn(RestCall&) -> Result<std::string>` and replies with its JSON or error.
void ServeJson(const TransportDeps& deps, const httplib::Request& req, httplib::Response& res,
               const char* route, const std::function<Result<std::string>(RestCall&)>& fn);

// True when the request announces a body (Content-Length > 0 or chunked).
bool HasBody(const httplib::Request& req);

}  // namespace agentfense::server
