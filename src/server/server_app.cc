#include "server/server_app.h"

#include <sys/stat.h>

#include <cerrno>

#include "base/log.h"

namespace agentfense::server {

Status EnsurePrivateDir(const std::string& path, mode_t mode) {
  if (path.empty()) return Error(ErrorCode::kInvalidArgument, "empty directory path");
  std::string prefix;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    prefix = path.substr(0, pos);
    if (prefix.empty()) continue;
    // Directories we create on the way are ours alone: nobody else needs to pass (sandboxes get
    // their mounts as descriptors, SPEC §5 host side).
    if (::mkdir(prefix.c_str(), pos == std::string::npos ? mode : 0700) != 0 && errno != EEXIST) {
      return Error::FromErrno(errno, "mkdir " + prefix);
    }
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Error::FromErrno(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kFailedPrecondition, path + " is not a directory");
  }
  if ((st.st_mode & 07777) != mode && ::chmod(path.c_str(), mode) != 0) {
    return Error::FromErrno(errno, "chmod " + path);
  }
  return OkStatus();
}

namespace {

std::string ParentDir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

service::SandboxApiOptions SandboxOptionsFrom(const Config& c) {
  service::SandboxApiOptions o;
  o.mount_path = c.storage.mount_path;
  o.runtime = c.runtime.type == RuntimeKind::kDocker ? "docker" : "bwrap";
  o.bwrap_path = c.runtime.bwrap_path;
  o.default_timeout = c.runtime.default_timeout;
  o.max_timeout = c.runtime.max_timeout;
  o.max_output_bytes = c.runtime.max_output_bytes;
  o.docker_host = c.runtime.docker.host;
  o.docker_default_image = c.runtime.docker.default_image;
  o.docker_enable_networking = c.runtime.docker.enable_networking;
  o.network_dns_servers = c.network.dns_servers;
  o.network_public_cidrs = c.network.public_cidrs;
  o.default_expiration = c.sandbox.default_expiration;
  o.max_per_user = c.sandbox.max_per_user;
  o.cleanup_interval = c.sandbox.cleanup_interval;
  o.identity_range = c.sandbox.uid_range;
  o.max_checkpoints = c.sandbox.max_checkpoints;
  o.fuse_busy_poll_us = c.sandbox.fuse_busy_poll_us;
  return o;
}

// "host:port" → the host part, for the REST Host allow-list (wildcards mean nothing there).
std::string HostOf(const std::string& addr) {
  size_t colon = addr.rfind(':');
  std::string host = colon == std::string::npos ? addr : addr.substr(0, colon);
  if (host.empty() || host == "0.0.0.0" || host == "[::]") return "";
  return host;
}

}  // namespace

Result<std::unique_ptr<ServerApp>> ServerApp::Start(
    const Config& config, std::unique_ptr<service::SandboxApi> sandboxes) {
  std::unique_ptr<ServerApp> app(new ServerApp());
  app->config_ = config;
  const Config& c = app->config_;

  // Nothing under the data directory is reachable by any other local user or any sandbox
  // identity (SPEC §5 host side): the mounts are passed to bwrap as descriptors and bound by
  // Docker as root.
  AF_RETURN_IF_ERROR(EnsurePrivateDir(ParentDir(c.storage.db_path), 0700));
  AF_RETURN_IF_ERROR(EnsurePrivateDir(c.storage.codebase_path, 0700));
  AF_RETURN_IF_ERROR(EnsurePrivateDir(c.storage.mount_path, 0700));

  AF_ASSIGN_OR_RETURN(app->metadata_, store::MetadataStore::Open(c.storage.db_path));
  store::CodebaseFilesOptions files_options;
  files_options.root = c.storage.codebase_path;
  files_options.max_file_bytes = static_cast<int64_t>(c.server.max_upload_bytes);
  AF_ASSIGN_OR_RETURN(app->files_, store::CodebaseFiles::Open(files_options));
  service::CodebaseServiceOptions cb_options;
  cb_options.max_upload_bytes = static_cast<int64_t>(c.server.max_upload_bytes);
  app->codebases_ = std::make_unique<service::CodebaseService>(app->metadata_.get(),
                                                               app->files_.get(), cb_options);

  if (sandboxes == nullptr) {
    service::SandboxApiDeps sdeps;
    sdeps.metadata = app->metadata_.get();
    sdeps.files = app->files_.get();
    AF_ASSIGN_OR_RETURN(sandboxes, service::MakeSandboxApi(SandboxOptionsFrom(c), sdeps));
  }
  app->sandboxes_ = std::move(sandboxes);
  app->codebases_->set_registry(app->sandboxes_.get());

  app->metrics_ = std::make_unique<Metrics>();
  app->metrics_->AddCollector([api = app->sandboxes_.get()] { return api->MetricsText(); });
  app->executor_ = std::make_unique<Executor>(256);
  TransportDeps& d = app->deps_;
  d.codebases = app->codebases_.get();
  d.sandboxes = app->sandboxes_.get();
  d.executor = app->executor_.get();
  d.metrics = app->metrics_.get();
  d.auth_token = c.server.auth_token;
  d.max_body_bytes = c.server.max_body_bytes;
  d.max_upload_bytes = c.server.max_upload_bytes;
  if (std::string h = HostOf(c.server.http_addr); !h.empty()) d.extra_allowed_hosts.push_back(h);
  // A non-loopback bind without a token exists only by the explicit allow_insecure_remote opt-in:
  // the API is then open to the network anyway and a Host check would only lock out its users.
  d.check_host = c.server.auth_token.empty() && IsLoopbackAddress(c.server.http_addr);

  app->grpc_codebase_ = std::make_unique<CodebaseGrpcService>(d);
  app->grpc_sandbox_ = std::make_unique<SandboxGrpcService>(d);
  grpc::ServerBuilder builder;
  // TLS is not offered here: beyond loopback, put a TLS-terminating proxy in front (docs).
  builder.AddListeningPort(c.server.grpc_addr, grpc::InsecureServerCredentials(), &app->grpc_port_);
  builder.RegisterService(app->grpc_codebase_.get());
  builder.RegisterService(app->grpc_sandbox_.get());
  // Uploads arrive in 64 KiB chunks; allow some headroom, refuse absurd single messages.
  builder.SetMaxReceiveMessageSize(8 << 20);
  app->grpc_ = builder.BuildAndStart();
  if (app->grpc_ == nullptr || app->grpc_port_ == 0) {
    return Error(ErrorCode::kUnavailable, "cannot listen for gRPC on " + c.server.grpc_addr);
  }

  app->rest_ = std::make_unique<RestServer>(d);
  AF_ASSIGN_OR_RETURN(app->http_port_, app->rest_->Bind(c.server.http_addr));
  app->rest_thread_ = std::thread([rest = app->rest_.get()] { rest->Serve(); });
  return app;
}

void ServerApp::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  // Stop accepting on both transports, give in-flight calls `grace` (gRPC Shutdown waits that
  // long, then cancels what is left), then tell the remaining REST calls and executor work to stop.
  if (rest_) rest_->Stop();
  if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + grace);
  deps_.stopping->store(true);
  if (rest_thread_.joinable()) rest_thread_.join();
  executor_.reset();  // runs what is queued, joins
  if (sandboxes_) sandboxes_->Shutdown();
}

ServerApp::~ServerApp() { Shutdown(); }

}  // namespace agentfense::server
