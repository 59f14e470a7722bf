// agentfense-server: the gRPC (:9000) and REST (:8080) API. Flags as the reference server
// (Go-style single dash; "--flag" and "-flag=value" work too):
//   -config FILE  -grpc-addr HOST:PORT  -http-addr HOST:PORT  -codebase-path DIR  -runtime bwrap|docker
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "base/log.h"
#include "server/config.h"
#include "server/server_app.h"

namespace {

using agentfense::server::ConfigOverrides;

constexpr const char* kUsage =
    "usage: agentfense-server [-config FILE] [-grpc-addr HOST:PORT] [-http-addr HOST:PORT]\n"
    "                         [-codebase-path DIR] [-runtime bwrap|docker]\n"
    "Without -config the embedded defaults are used (loopback only, data under\n"
    "/var/lib/agentfense). The bearer token comes from server.auth_token or AGENTFENSE_TOKEN.\n";

// Returns 0 on success, 2 on a usage error (printed), 1 for -help.
int ParseFlags(int argc, char** argv, ConfigOverrides* out) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      (void)std::fprintf(stderr, "unexpected argument: %s\n%s", argv[i], kUsage);
      return 2;
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    std::string name(arg);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    if (name == "h" || name == "help") {
      (void)std::fputs(kUsage, stdout);
      return 1;
    }
    std::string* target = nullptr;
    if (name == "config") target = &out->config_path;
    if (name == "grpc-addr") target = &out->grpc_addr;
    if (name == "http-addr") target = &out->http_addr;
    if (name == "codebase-path") target = &out->codebase_path;
    if (name == "runtime") target = &out->runtime;
    if (target == nullptr) {
      (void)std::fprintf(stderr, "unknown flag: %s\n%s", argv[i], kUsage);
      return 2;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        (void)std::fprintf(stderr, "flag -%s needs a value\n", name.c_str());
        return 2;
      }
      value = argv[++i];
    }
    *target = value;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ConfigOverrides overrides;
  if (int rc = ParseFlags(argc, argv, &overrides); rc != 0) return rc == 1 ? 0 : 2;

  // Block the shutdown signals before any thread exists, so every thread inherits the mask and
  // only the sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  (void)signal(SIGPIPE, SIG_IGN);  // fails only for an invalid signal number

  const char* env_token = std::getenv("AGENTFENSE_TOKEN");
  const char* xdg_data = std::getenv("XDG_DATA_HOME");
  const char* home = std::getenv("HOME");
  overrides.default_data_dir = agentfense::server::DefaultDataDir(
      ::geteuid(), xdg_data ? xdg_data : "", home ? home : "");
  auto config = agentfense::server::LoadConfig(overrides, env_token ? env_token : "");
  if (!config.ok()) {
    (void)std::fprintf(stderr, "agentfense-server: %s\n", config.error().ToString().c_str());
    return 2;
  }
  auto format = config->logging.format == agentfense::server::LogFormatKind::kJson
                    ? agentfense::LogFormat::kJson
                    : agentfense::LogFormat::kText;
  if (auto s = agentfense::InitLogging(config->logging.level, format); !s.ok()) {
    (void)std::fprintf(stderr, "agentfense-server: %s\n", s.error().ToString().c_str());
    return 2;
  }
  AF_LOG_INFO("configuration from {}", config->source);
  if (config->runtime.docker.network_mode != "none") {
    AF_LOG_WARN(
        "runtime.docker.network_mode {} no longer selects a Docker network: a sandbox "
        "with network gets a namespace of its own behind its egress filter "
        "(docs/NETWORK.md)",
        config->runtime.docker.network_mode);
  }
  for (const auto& key : config->unknown_keys) {
    AF_LOG_WARN("unknown configuration key ignored: {}", key);
  }
  if (config->server.auth_token.empty()) {
    AF_LOG_WARN("no auth token configured: the API accepts any local caller (loopback only)");
  }

  auto app = agentfense::server::ServerApp::Start(*config);
  if (!app.ok()) {
    AF_LOG_ERROR("start-up failed: {}", app.error().ToString());
    return 1;
  }
  AF_LOG_INFO("gRPC listening on {} (port {})", config->server.grpc_addr, (*app)->grpc_port());
  AF_LOG_INFO("REST listening on {} (port {})", config->server.http_addr, (*app)->http_port());
  AF_LOG_INFO("data: codebases {}, mounts {}, database {}", config->storage.codebase_path,
              config->storage.mount_path, config->storage.db_path);

  int sig = 0;
  sigwait(&signals, &sig);
  AF_LOG_INFO("signal {} received: shutting down", sig);
  (*app)->Shutdown();
  AF_LOG_INFO("stopped");
  return 0;
}
