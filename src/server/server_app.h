// ServerApp: everything agentfense-server runs, built from a validated Config: the data
// directories (0700), the store, the services, the executor and both transports. main() and the
// integration tests build the server the same way.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "base/result.h"
#include "server/config.h"
#include "server/grpc_services.h"
#include "server/rest_server.h"
#include "server/transport_deps.h"
#include "store/codebase_files.h"
#include "store/metadata_store.h"

namespace agentfense::server {

class ServerApp {
 public:
  // Opens the store and the sandbox API and binds both listeners (port 0 picks a free one).
  // `sandboxes` null means: obtain it from service::MakeSandboxApi.
  static Result<std::unique_ptr<ServerApp>> Start(
      const Config& config, std::unique_ptr<service::SandboxApi> sandboxes = nullptr);
  ~ServerApp();

  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }

  // Stops accepting calls, lets in-flight calls finish (up to `grace`), then releases the
  // sandbox API and the store. Idempotent.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  ServerApp() = default;

  Config config_;
  std::unique_ptr<store::MetadataStore> metadata_;
  std::unique_ptr<store::CodebaseFiles> files_;
  std::unique_ptr<service::CodebaseService> codebases_;
  std::unique_ptr<service::SandboxApi> sandboxes_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<Executor> executor_;
  TransportDeps deps_;
  std::unique_ptr<CodebaseGrpcService> grpc_codebase_;
  std::unique_ptr<SandboxGrpcService> grpc_sandbox_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<RestServer> rest_;
  std::thread rest_thread_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  bool shut_down_ = false;
};

// Creates `path` (mode `mode`) and its missing parents (0711, traverse-only); an existing `path` is
// chmod-ed to `mode`
// (SECURITY-NOTES §4.7: store directories are private to the service user).
Status EnsurePrivateDir(const std::string& path, mode_t mode = 0700);

}  // namespace agentfense::server
