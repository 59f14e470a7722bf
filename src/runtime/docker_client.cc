#include "runtime/docker_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <utility>

#include "base/log.h"
#include "base/shared_library.h"

namespace agentfense::runtime {
namespace {

using Json = nlohmann::json;

// libcurl, loaded on first use (base/shared_library.h): a supervisor of a bwrap sandbox never
// talks to Docker, and linking libcurl cost each one 1.1 MiB. The pointers' types come from
// <curl/curl.h>, so every call below is checked against the library's own declarations (all but
// the values of curl_easy_setopt's variadic tail, which GCC's curl macro checked before: each is
// the long, pointer or callback its option takes).
struct CurlApi {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_perform) easy_perform;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
};

// Loaded and initialized once per process, then read-only. curl_global_init is not safe to race
// with other threads' curl use; libcurl wants it called once before any handle exists, which
// the function-local static's initialization guarantees.
Result<const CurlApi*> LoadCurl() {
  static const Result<CurlApi> api = []() -> Result<CurlApi> {
    constexpr const char* kLib = "libcurl.so.4";
    AF_ASSIGN_OR_RETURN(void* lib, LoadSharedLibrary(kLib));
    CurlApi c{};
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "curl_global_init", &c.global_init));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "curl_easy_init", &c.easy_init));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "curl_easy_setopt", &c.easy_setopt));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "curl_easy_perform", &c.easy_perform));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "curl_easy_getinfo", &c.easy_getinfo));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "curl_easy_cleanup", &c.easy_cleanup));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "curl_easy_strerror", &c.easy_strerror));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "curl_slist_append", &c.slist_append));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "curl_slist_free_all", &c.slist_free_all));
    if (CURLcode rc = c.global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
      return Error(ErrorCode::kInternal, std::string("curl_global_init: ") + c.easy_strerror(rc));
    }
    return c;
  }();
  if (!api.ok()) return api.error();
  return &*api;
}

struct CurlEasyDeleter {
  const CurlApi* api;
  void operator()(CURL* c) const { api->easy_cleanup(c); }
};
struct CurlSlistDeleter {
  const CurlApi* api;
  void operator()(curl_slist* l) const { api->slist_free_all(l); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// Response accumulator for the write callback: stops the transfer once over the cap.
struct Sink {
  std::string data;
  std::size_t cap = 0;
  bool overflow = false;
};

size_t WriteToSink(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* sink = static_cast<Sink*>(userdata);
  const size_t n = size * nmemb;
  if (sink->data.size() + n > sink->cap) {
    sink->overflow = true;
    return 0;  // makes curl fail the transfer with CURLE_WRITE_ERROR
  }
  sink->data.append(ptr, n);
  return n;
}

std::string Escape(std::string_view s) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::string JsonString(const Json& j, std::string_view key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

int64_t JsonInt(const Json& j, std::string_view key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return 0;
  return it->get<int64_t>();
}

bool JsonBool(const Json& j, std::string_view key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

Result<DockerEndpoint> ParseDockerHost(std::string_view host) {
  constexpr std::string_view kUnix = "unix://";
  constexpr std::string_view kTcp = "tcp://";
  if (host.starts_with(kUnix)) {
    std::string_view path = host.substr(kUnix.size());
    if (path.empty() || path.front() != '/' || path.size() > 107 ||
        path.find('\0') != std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument,
                   "docker host \"" + std::string(host) + "\": expected unix:///absolute/path");
    }
    return DockerEndpoint{std::string(path), "http://docker"};
  }
  if (host.starts_with(kTcp)) {
    std::string_view hostport = host.substr(kTcp.size());
    while (!hostport.empty() && hostport.back() == '/') hostport.remove_suffix(1);
    const bool ok = !hostport.empty() && std::all_of(hostport.begin(), hostport.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
             c == '[' || c == ']';
    });
    if (!ok) {
      return Error(ErrorCode::kInvalidArgument,
                   "docker host \"" + std::string(host) + "\": expected tcp://host:port");
    }
    return DockerEndpoint{"", "http://" + std::string(hostport)};
  }
  return Error(ErrorCode::kInvalidArgument,
               "docker host \"" + std::string(host) + "\": only unix:// and tcp:// are supported");
}

Result<std::pair<int, int>> ParseApiVersion(std::string_view v) {
  auto dot = v.find('.');
  auto parse = [](std::string_view s, int* out) {
    if (s.empty() || s.size() > 4) return false;
    int n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + (c - '0');
    }
    *out = n;
    return true;
  };
  int major = 0;
  int minor = 0;
  if (dot == std::string_view::npos || !parse(v.substr(0, dot), &major) ||
      !parse(v.substr(dot + 1), &minor)) {
    return Error(ErrorCode::kInvalidArgument, "bad Docker API version \"" + std::string(v) + "\"");
  }
  return std::pair{major, minor};
}

Result<std::string> NegotiateApiVersion(std::string_view server_api, std::string_view server_min) {
  AF_ASSIGN_OR_RETURN(auto server, ParseApiVersion(server_api));
  AF_ASSIGN_OR_RETURN(auto ours_min, ParseApiVersion(kMinDockerApi));
  AF_ASSIGN_OR_RETURN(auto ours_max, ParseApiVersion(kMaxDockerApi));
  if (server < ours_min) {
    return Error(ErrorCode::kFailedPrecondition,
                 "docker daemon API " + std::string(server_api) + " is older than the " +
                     std::string(kMinDockerApi) + " AgentFense needs");
  }
  auto chosen = std::min(server, ours_max);
  if (!server_min.empty()) {
    AF_ASSIGN_OR_RETURN(auto smin, ParseApiVersion(server_min));
    if (chosen < smin) {
      return Error(ErrorCode::kFailedPrecondition,
                   "docker daemon requires API >= " + std::string(server_min) +
                       ", AgentFense speaks at most " + std::string(kMaxDockerApi));
    }
  }
  return std::to_string(chosen.first) + "." + std::to_string(chosen.second);
}

Error HttpStatusToError(long status, std::string_view body, std::string_view what) {
  std::string message;
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) message = JsonString(j, "message");
  if (message.empty()) {
    message = std::string(body.substr(0, 200));
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
      message.pop_back();
    }
  }
  if (message.empty()) message = "HTTP " + std::to_string(status);
  ErrorCode code;
  switch (status) {
    case 400:
      code = ErrorCode::kInvalidArgument;
      break;
    case 401:
    case 403:
      code = ErrorCode::kPermissionDenied;
      break;
    case 404:
      code = ErrorCode::kNotFound;
      break;
    case 409:
      code = message.find("already in use") != std::string::npos ? ErrorCode::kAlreadyExists
                                                                 : ErrorCode::kFailedPrecondition;
      break;
    case 500:
      code = ErrorCode::kInternal;
      break;
    case 503:
      code = ErrorCode::kUnavailable;
      break;
    default:
      code = ErrorCode::kUnknown;
      break;
  }
  return Error(code, message).With(std::string(what));
}

Status ValidateContainerRef(std::string_view ref) {
  const bool ok =
      !ref.empty() && ref.size() <= 128 && std::isalnum(static_cast<unsigned char>(ref.front())) &&
      std::all_of(ref.begin(), ref.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
      });
  if (!ok) {
    return Error(ErrorCode::kInvalidArgument,
                 "bad container id or name \"" + std::string(ref.substr(0, 140)) + "\"");
  }
  return OkStatus();
}

Status ValidateImageRef(std::string_view ref) {
  const bool ok = !ref.empty() && ref.size() <= 255 && ref.find("..") == std::string_view::npos &&
                  std::isalnum(static_cast<unsigned char>(ref.front())) &&
                  std::all_of(ref.begin(), ref.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
                           c == '-' || c == '/' || c == ':' || c == '@';
                  });
  if (!ok) {
    return Error(ErrorCode::kInvalidArgument,
                 "bad image reference \"" + std::string(ref.substr(0, 260)) + "\"");
  }
  return OkStatus();
}

Status DemuxDockerStream(std::string_view raw, std::size_t max_bytes, ContainerLogs* out) {
  constexpr std::size_t kHeader = 8;
  while (!raw.empty()) {
    if (raw.size() < kHeader) {
      return Error(ErrorCode::kDataLoss, "docker stream: truncated frame header");
    }
    const auto* h = reinterpret_cast<const unsigned char*>(raw.data());
    const unsigned stream = h[0];
    const std::size_t size = (std::size_t{h[4]} << 24) | (std::size_t{h[5]} << 16) |
                             (std::size_t{h[6]} << 8) | std::size_t{h[7]};
    if (stream > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0) {
      return Error(ErrorCode::kDataLoss, "docker stream: bad frame header");
    }
    raw.remove_prefix(kHeader);
    if (raw.size() < size) return Error(ErrorCode::kDataLoss, "docker stream: truncated frame");
    std::string& dest = stream == 2 ? out->stderr_data : out->stdout_data;
    const std::size_t room = max_bytes > dest.size() ? max_bytes - dest.size() : 0;
    dest.append(raw.substr(0, std::min(room, size)));
    raw.remove_prefix(size);
  }
  return OkStatus();
}

Result<ContainerInfo> ParseContainerInfo(const Json& j) {
  if (!j.is_object()) return Error(ErrorCode::kInternal, "container JSON is not an object");
  ContainerInfo info;
  info.id = JsonString(j, "Id");
  if (info.id.empty()) return Error(ErrorCode::kInternal, "container JSON without Id");
  // Inspect has "Name": "/x"; list has "Names": ["/x"].
  info.name = JsonString(j, "Name");
  if (auto names = j.find("Names"); info.name.empty() && names != j.end() && names->is_array() &&
                                    !names->empty() && names->front().is_string()) {
    info.name = names->front().get<std::string>();
  }
  if (!info.name.empty() && info.name.front() == '/') info.name.erase(0, 1);
  // Inspect: Config.Image is what was asked for; list: Image.
  if (auto cfg = j.find("Config"); cfg != j.end() && cfg->is_object()) {
    info.image = JsonString(*cfg, "Image");
    info.user = JsonString(*cfg, "User");
    if (auto labels = cfg->find("Labels"); labels != cfg->end() && labels->is_object()) {
      for (const auto& [k, v] : labels->items()) {
        if (v.is_string()) info.labels[k] = v.get<std::string>();
      }
    }
  }
  if (info.image.empty()) info.image = JsonString(j, "Image");
  if (auto labels = j.find("Labels"); labels != j.end() && labels->is_object()) {
    for (const auto& [k, v] : labels->items()) {
      if (v.is_string()) info.labels[k] = v.get<std::string>();
    }
  }
  if (auto state = j.find("State"); state != j.end()) {
    if (state->is_object()) {  // inspect
      info.status = JsonString(*state, "Status");
      info.running = JsonBool(*state, "Running");
      info.oom_killed = JsonBool(*state, "OOMKilled");
      info.exit_code = JsonInt(*state, "ExitCode");
      info.pid = JsonInt(*state, "Pid");
      info.error = JsonString(*state, "Error");
    } else if (state->is_string()) {  // list
      info.status = state->get<std::string>();
      info.running = info.status == "running";
    }
  }
  if (auto hc = j.find("HostConfig"); hc != j.end() && hc->is_object()) {
    info.cgroup_parent = JsonString(*hc, "CgroupParent");
  }
  return info;
}

// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<DockerClient>> DockerClient::Connect(DockerClientOptions options) {
  if (auto curl = LoadCurl(); !curl.ok()) return std::move(curl).error();
  AF_ASSIGN_OR_RETURN(DockerEndpoint ep, ParseDockerHost(options.host));
  std::unique_ptr<DockerClient> client(new DockerClient(std::move(options)));
  client->socket_path_ = std::move(ep.socket_path);
  client->base_url_ = std::move(ep.base_url);

  // /version is unversioned: it is how we learn which version to use.
  AF_ASSIGN_OR_RETURN(Response r, client->Call("GET", "/version", nullptr, std::nullopt, false));
  if (r.status != 200) return HttpStatusToError(r.status, r.body, "GET /version");
  Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_object()) {
    return Error(ErrorCode::kUnavailable,
                 "docker daemon at " + client->options_.host + " answered /version with non-JSON");
  }
  client->version_.server_version = JsonString(j, "Version");
  client->version_.api_version = JsonString(j, "ApiVersion");
  client->version_.min_api_version = JsonString(j, "MinAPIVersion");
  client->version_.os = JsonString(j, "Os");
  client->version_.arch = JsonString(j, "Arch");
  if (!client->options_.api_version.empty()) {
    AF_RETURN_IF_ERROR(ParseApiVersion(client->options_.api_version));
    client->api_version_ = client->options_.api_version;
  } else {
    AF_ASSIGN_OR_RETURN(
        client->api_version_,
        NegotiateApiVersion(client->version_.api_version, client->version_.min_api_version));
  }
  AF_LOG_DEBUG("docker: {} (API {}, using {})", client->version_.server_version,
               client->version_.api_version, client->api_version_);
  return client;
}

Result<DockerClient::Response> DockerClient::Call(std::string_view method, std::string_view path,
                                                  const Json* body,
                                                  std::optional<std::chrono::milliseconds> timeout,
                                                  bool versioned) const {
  const std::string what = std::string(method) + " " + std::string(path);
  AF_ASSIGN_OR_RETURN(const CurlApi* api, LoadCurl());
  CurlEasy curl(api->easy_init(), CurlEasyDeleter{api});
  if (!curl) return Error(ErrorCode::kInternal, "curl_easy_init failed").With(what);

  std::string url = base_url_;
  if (versioned) url += "/v" + api_version_;
  url += path;
  std::string payload;
  if (body != nullptr) payload = body->dump();

  CurlSlist headers(nullptr, CurlSlistDeleter{api});
  auto add_header = [&headers, api](const char* h) {
    curl_slist* l = api->slist_append(headers.get(), h);
    if (l != nullptr) {
      // curl_slist_append returned the (possibly new) head of the list the old head is part of.
      (void)headers.release();  // NOLINT(bugprone-unused-return-value): owned via `l` now
      headers.reset(l);
    }
  };
  // Without this curl sends "Expect: 100-continue" for bodies over 1 KiB and waits up to a second
  // for an answer dockerd never sends.
  add_header("Expect:");
  if (body != nullptr) add_header("Content-Type: application/json");

  Sink sink;
  sink.cap = options_.max_response_bytes;
  const long total_ms = static_cast<long>(timeout.value_or(options_.request_timeout).count());
  CURL* c = curl.get();
  bool ok = api->easy_setopt(c, CURLOPT_URL, url.c_str()) == CURLE_OK &&
            api->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK &&
            api->easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
            api->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
            api->easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                             static_cast<long>(options_.connect_timeout.count())) == CURLE_OK &&
            api->easy_setopt(c, CURLOPT_TIMEOUT_MS, total_ms) == CURLE_OK &&
            api->easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteToSink) == CURLE_OK &&
            api->easy_setopt(c, CURLOPT_WRITEDATA, &sink) == CURLE_OK &&
            api->easy_setopt(c, CURLOPT_HTTPHEADER, headers.get()) == CURLE_OK &&
            api->easy_setopt(c, CURLOPT_CUSTOMREQUEST, std::string(method).c_str()) == CURLE_OK;
  if (ok && !socket_path_.empty()) {
    ok = api->easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str()) == CURLE_OK;
  }
  if (ok && method == "POST") {
    ok = api->easy_setopt(c, CURLOPT_POST, 1L) == CURLE_OK &&
         api->easy_setopt(c, CURLOPT_POSTFIELDS, payload.c_str()) == CURLE_OK &&
         api->easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size())) == CURLE_OK;
  }
  if (!ok) return Error(ErrorCode::kInternal, "curl_easy_setopt failed").With(what);

  const CURLcode rc = api->easy_perform(c);
  if (rc != CURLE_OK) {
    if (sink.overflow) {
      return Error(ErrorCode::kResourceExhausted,
                   "docker response larger than " + std::to_string(sink.cap) + " bytes")
          .With(what);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      return Error(ErrorCode::kDeadlineExceeded, "docker daemon at " + options_.host +
                                                     " did not answer within " +
                                                     std::to_string(total_ms) + " ms")
          .With(what);
    }
    return Error(ErrorCode::kUnavailable, "docker daemon not reachable at " + options_.host + " (" +
                                              api->easy_strerror(rc) + ")")
        .With(what);
  }
  Response r;
  api->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  r.body = std::move(sink.data);
  return r;
}

Result<Json> DockerClient::CallJson(std::string_view method, std::string_view path,
                                    const Json* body,
                                    std::optional<std::chrono::milliseconds> timeout) const {
  const std::string what = std::string(method) + " " + std::string(path);
  AF_ASSIGN_OR_RETURN(Response r, Call(method, path, body, timeout));
  if (r.status < 200 || r.status >= 300) return HttpStatusToError(r.status, r.body, what);
  if (r.body.empty()) return Json();
  if (!JsonNestingWithin(r.body, options_.max_json_depth)) {
    return Error(ErrorCode::kResourceExhausted, "docker response nested too deeply").With(what);
  }
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_discarded()) return Error(ErrorCode::kInternal, "docker sent invalid JSON").With(what);
  return j;
}

Status DockerClient::Ping() const {
  AF_ASSIGN_OR_RETURN(Response r, Call("GET", "/_ping"));
  if (r.status != 200) return HttpStatusToError(r.status, r.body, "GET /_ping");
  return OkStatus();
}

Result<Json> DockerClient::InspectImage(std::string_view image) const {
  AF_RETURN_IF_ERROR(ValidateImageRef(image));
  auto j = CallJson("GET", "/images/" + std::string(image) + "/json");
  if (!j.ok() && j.error().code() == ErrorCode::kNotFound) {
    return Error(ErrorCode::kNotFound,
                 "image \"" + std::string(image) +
                     "\" not found in the local docker daemon (images are never pulled)");
  }
  return j;
}

Result<std::string> DockerClient::CreateContainer(std::string_view name, const Json& body) const {
  AF_RETURN_IF_ERROR(ValidateContainerRef(name));
  AF_ASSIGN_OR_RETURN(Json j, CallJson("POST", "/containers/create?name=" + Escape(name), &body));
  std::string id = JsonString(j, "Id");
  if (id.empty()) return Error(ErrorCode::kInternal, "container create answered without an Id");
  return id;
}

Status DockerClient::StartContainer(std::string_view id) const {
  AF_RETURN_IF_ERROR(ValidateContainerRef(id));
  const std::string path = "/containers/" + std::string(id) + "/start";
  AF_ASSIGN_OR_RETURN(Response r, Call("POST", path));
  if (r.status == 204 || r.status == 304) return OkStatus();
  return HttpStatusToError(r.status, r.body, "POST " + path);
}

Status DockerClient::StopContainer(std::string_view id, std::chrono::seconds grace) const {
  AF_RETURN_IF_ERROR(ValidateContainerRef(id));
  const std::string path =
      "/containers/" + std::string(id) + "/stop?t=" + std::to_string(grace.count());
  // The daemon waits `grace` before SIGKILL; allow for that on top of the usual bound.
  AF_ASSIGN_OR_RETURN(Response r, Call("POST", path, nullptr, options_.request_timeout + grace));
  if (r.status == 204 || r.status == 304) return OkStatus();
  return HttpStatusToError(r.status, r.body, "POST " + path);
}

Status DockerClient::KillContainer(std::string_view id, std::string_view signal) const {
  AF_RETURN_IF_ERROR(ValidateContainerRef(id));
  const std::string path = "/containers/" + std::string(id) + "/kill?signal=" + Escape(signal);
  AF_ASSIGN_OR_RETURN(Response r, Call("POST", path));
  if (r.status == 204) return OkStatus();
  return HttpStatusToError(r.status, r.body, "POST " + path);
}

Status DockerClient::RemoveContainer(std::string_view id, bool force) const {
  AF_RETURN_IF_ERROR(ValidateContainerRef(id));
  const std::string path = "/containers/" + std::string(id) + "?v=1&force=" + (force ? "1" : "0");
  AF_ASSIGN_OR_RETURN(Response r, Call("DELETE", path));
  if (r.status == 204) return OkStatus();
  return HttpStatusToError(r.status, r.body, "DELETE " + path);
}

Result<ContainerInfo> DockerClient::InspectContainer(std::string_view id) const {
  AF_RETURN_IF_ERROR(ValidateContainerRef(id));
  AF_ASSIGN_OR_RETURN(Json j, CallJson("GET", "/containers/" + std::string(id) + "/json"));
  return ParseContainerInfo(j);
}

Result<std::vector<ContainerInfo>> DockerClient::ListContainers(
    const std::vector<std::string>& labels, bool all) const {
  Json filters = Json::object();
  if (!labels.empty()) filters["label"] = labels;
  std::string path = std::string("/containers/json?all=") + (all ? "1" : "0");
  if (!labels.empty()) path += "&filters=" + Escape(filters.dump());
  AF_ASSIGN_OR_RETURN(Json j, CallJson("GET", path));
  if (!j.is_array()) return Error(ErrorCode::kInternal, "container list is not an array");
  std::vector<ContainerInfo> out;
  out.reserve(j.size());
  for (const Json& entry : j) {
    AF_ASSIGN_OR_RETURN(ContainerInfo info, ParseContainerInfo(entry));
    out.push_back(std::move(info));
  }
  return out;
}

Result<int64_t> DockerClient::WaitContainer(std::string_view id,
                                            std::chrono::milliseconds timeout) const {
  AF_RETURN_IF_ERROR(ValidateContainerRef(id));
  AF_ASSIGN_OR_RETURN(
      Json j, CallJson("POST", "/containers/" + std::string(id) + "/wait?condition=not-running",
                       nullptr, timeout));
  if (auto err = j.find("Error"); err != j.end() && err->is_object()) {
    std::string msg = JsonString(*err, "Message");
    if (!msg.empty()) return Error(ErrorCode::kInternal, "waiting for container: " + msg);
  }
  return JsonInt(j, "StatusCode");
}

Result<ContainerLogs> DockerClient::Logs(std::string_view id, std::size_t max_bytes) const {
  AF_RETURN_IF_ERROR(ValidateContainerRef(id));
  const std::string path = "/containers/" + std::string(id) + "/logs?stdout=1&stderr=1";
  AF_ASSIGN_OR_RETURN(Response r, Call("GET", path));
  if (r.status != 200) return HttpStatusToError(r.status, r.body, "GET " + path);
  ContainerLogs logs;
  AF_RETURN_IF_ERROR(DemuxDockerStream(r.body, max_bytes, &logs));
  return logs;
}

}  // namespace agentfense::runtime
