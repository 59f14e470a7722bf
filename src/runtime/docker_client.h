// A small Docker Engine API client: HTTP/1.1 over dockerd's Unix socket (or plain tcp://) with
// libcurl, JSON with nlohmann-json. The product never shells out to the docker CLI.
//
// Every call is bounded: a connect timeout, a total timeout (per call, overridable), a cap on the
// response size and on JSON nesting. Errors are values with codes a caller can act on:
//   dockerd not running / socket absent   kUnavailable "docker daemon not reachable at unix:///…"
//   no such container / image             kNotFound (the message names it)
//   name already in use                   kAlreadyExists
//   call took too long                    kDeadlineExceeded
//   response over the cap                 kResourceExhausted
//   daemon's API too old                  kFailedPrecondition
//
// Thread-safety: a DockerClient is immutable after Connect; every call uses its own curl handle, so
// calls may run concurrently from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json_depth.h"
#include "base/result.h"

namespace agentfense::runtime {

inline constexpr std::string_view kDefaultDockerHost = "unix:///var/run/docker.sock";

// The API versions this client speaks. 1.30 (Docker 17.06) has everything we use: Mounts with bind
// propagation, NanoCpus, PidsLimit, wait conditions. Newer daemons are asked for kMaxDockerApi so a
// future daemon's changed defaults cannot surprise us.
inline constexpr std::string_view kMinDockerApi = "1.30";
inline constexpr std::string_view kMaxDockerApi = "1.43";

struct DockerClientOptions {
  // "unix:///path/to/docker.sock" or "tcp://host:port" (plain HTTP: only for a trusted network).
  std::string host = std::string(kDefaultDockerHost);
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{30000};
  std::size_t max_response_bytes = 16u << 20;
  int max_json_depth = 64;
  // Empty: negotiate with GET /version. Otherwise used as is (e.g. "1.41").
  std::string api_version;
};

struct DockerVersion {
  std::string server_version;  // "20.10.24+dfsg1"
  std::string api_version;     // the daemon's newest, "1.41"
  std::string min_api_version;
  std::string os;
  std::string arch;
};

struct ContainerInfo {
  std::string id;
  std::string name;  // without the leading '/'
  std::string image;
  std::string user;  // Config.User ("uid:gid"), inspect only
  std::map<std::string, std::string> labels;
  std::string status;  // created | running | paused | restarting | removing | exited | dead
  bool running = false;
  bool oom_killed = false;
  int64_t exit_code = 0;
  int64_t pid = 0;  // host pid of the container's init while running
  std::string error;
  std::string cgroup_parent;  // HostConfig.CgroupParent ("" = daemon default)
};

struct ContainerLogs {
  std::string stdout_data;
  std::string stderr_data;
};

class DockerClient {
 public:
  // Validates `options.host`, asks the daemon for /version and settles the API version.
  // kUnavailable when the daemon cannot be reached; kFailedPrecondition when its API is too old.
  static Result<std::unique_ptr<DockerClient>> Connect(DockerClientOptions options);

  const DockerVersion& version() const { return version_; }
  const std::string& api_version() const { return api_version_; }
  const std::string& host() const { return options_.host; }

  // GET /_ping: Ok when the daemon answers.
  Status Ping() const;

  // Image metadata; kNotFound "image \"x\" not found" when it is not present locally (no pulls).
  Result<nlohmann::json> InspectImage(std::string_view image) const;

  // POST /containers/create?name=…; returns the new container's id.
  Result<std::string> CreateContainer(std::string_view name, const nlohmann::json& body) const;
  // Start/stop treat "already started/stopped" (HTTP 304) as success.
  Status StartContainer(std::string_view id) const;
  Status StopContainer(std::string_view id, std::chrono::seconds grace) const;
  Status KillContainer(std::string_view id, std::string_view signal = "SIGKILL") const;
  // force: kill first if running. A missing container is kNotFound.
  Status RemoveContainer(std::string_view id, bool force) const;
  Result<ContainerInfo> InspectContainer(std::string_view id) const;
  // Containers (all states when `all`) carrying every "key=value" (or "key") label given.
  Result<std::vector<ContainerInfo>> ListContainers(const std::vector<std::string>& labels,
                                                    bool all) const;
  // Blocks until the container is not running (condition "not-running"); returns its exit code.
  Result<int64_t> WaitContainer(std::string_view id, std::chrono::milliseconds timeout) const;
  // stdout and stderr of a container created without a TTY, each capped at `max_bytes`.
  Result<ContainerLogs> Logs(std::string_view id, std::size_t max_bytes = 1u << 20) const;

  // The raw call behind the typed ones, for the few endpoints not wrapped above. `path` starts
  // with '/' and is relative to the negotiated version prefix; `body` null means none.
  struct Response {
    long status = 0;
    std::string body;
  };
  Result<Response> Call(std::string_view method, std::string_view path,
                        const nlohmann::json* body = nullptr,
                        std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                        bool versioned = true) const;

 private:
  explicit DockerClient(DockerClientOptions options) : options_(std::move(options)) {}
  // Call + HTTP status check + JSON parse of the body (null when the body is empty).
  Result<nlohmann::json> CallJson(
      std::string_view method, std::string_view path, const nlohmann::json* body = nullptr,
      std::optional<std::chrono::milliseconds> timeout = std::nullopt) const;

  DockerClientOptions options_;
  std::string socket_path_;  // for unix:// hosts
  std::string base_url_;     // "http://docker" or "http://host:port"
  std::string api_version_;
  DockerVersion version_;
};

// --- Pure helpers, exposed for unit tests ---

struct DockerEndpoint {
  std::string socket_path;  // empty for tcp
  std::string base_url;
};
// "unix:///var/run/docker.sock" → {"/var/run/docker.sock", "http://docker"};
// "tcp://127.0.0.1:2375" → {"", "http://127.0.0.1:2375"}. Anything else is kInvalidArgument.
Result<DockerEndpoint> ParseDockerHost(std::string_view host);

// "1.41" → {1, 41}; kInvalidArgument when malformed.
Result<std::pair<int, int>> ParseApiVersion(std::string_view v);
// The version to use against a daemon whose newest is `server_api` and oldest `server_min`
// (may be empty). kFailedPrecondition when the ranges do not meet.
Result<std::string> NegotiateApiVersion(std::string_view server_api, std::string_view server_min);

// Maps a non-2xx HTTP answer of dockerd to an Error: the daemon's {"message": …} is the message.
Error HttpStatusToError(long status, std::string_view body, std::string_view what);

// Container ids and names: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}. Image references: the characters
// Docker allows ([A-Za-z0-9._/:@-]), at most 255 bytes, no "..". Checked before they enter a URL.
Status ValidateContainerRef(std::string_view ref);
Status ValidateImageRef(std::string_view ref);

// Splits dockerd's multiplexed stdout/stderr stream (8-byte headers: stream, 0, 0, 0, size BE32).
// Bytes beyond `max_bytes` per stream are dropped. kDataLoss on a malformed or truncated frame.
Status DemuxDockerStream(std::string_view raw, std::size_t max_bytes, ContainerLogs* out);

// Parses GET /containers/{id}/json (or one entry of /containers/json) into ContainerInfo.
Result<ContainerInfo> ParseContainerInfo(const nlohmann::json& j);

}  // namespace agentfense::runtime
