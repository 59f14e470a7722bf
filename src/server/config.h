// Server configuration: the reference's YAML keys (SPEC §8) plus our additions, parsed once into an
// immutable struct that is injected everywhere it is needed. A missing file means the embedded
// defaults (SQLite and local storage under a data directory, bwrap runtime, loopback only).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs/busy_poll.h"

namespace agentfense::server {

enum class RuntimeKind { kBwrap, kDocker };
enum class LogFormatKind { kText, kJson };

struct Config {
  struct Server {
    std::string grpc_addr = "127.0.0.1:9000";
    std::string http_addr = "127.0.0.1:8080";
    // Bearer token required on both transports when non-empty (also from AGENTFENSE_TOKEN).
    std::string auth_token;
    // Listening beyond loopback without a token is refused unless this is set.
    bool allow_insecure_remote = false;
    uint64_t max_body_bytes = 16ull << 20;
    // Largest single file accepted by an upload (both transports); 0 = unlimited.
    uint64_t max_upload_bytes = 0;
  } server;
  struct Storage {
    std::string data_dir;  // parent of the three below unless they are set explicitly
    std::string codebase_path;
    std::string mount_path;
    std::string db_path;
  } storage;
  struct Runtime {
    RuntimeKind type = RuntimeKind::kBwrap;
    std::string bwrap_path = "bwrap";
    std::chrono::nanoseconds default_timeout = std::chrono::seconds(30);
    std::chrono::nanoseconds max_timeout = std::chrono::minutes(10);
    uint64_t max_output_bytes = 16ull << 20;
    struct Docker {
      std::string host = "unix:///var/run/docker.sock";
      std::string default_image = "agentfense-test/debian:latest";
      std::string network_mode = "none";
      bool enable_networking = false;
    } docker;
  } runtime;
  // The network of sandboxes with network on (docs/NETWORK.md).
  struct Network {
    std::vector<std::string> dns_servers;   // the sandboxes' resolver's upstreams ("IP[:PORT]")
    std::vector<std::string> public_cidrs;  // special-purpose ranges to treat as public
  } network;
  struct Sandbox {
    std::chrono::nanoseconds default_expiration = std::chrono::hours(24);
    int max_per_user = 100;
    std::chrono::nanoseconds cleanup_interval = std::chrono::minutes(1);
    // Host uids/gids of sandboxes, one each (runtime/identity.h, docs/OPERATIONS.md).
    std::string uid_range = "524288-589823";
    int max_checkpoints = 100;  // checkpoints of its delta each sandbox may keep (CHECKPOINTS.md)
    // How long a sandbox's FUSE worker keeps reading requests after one (fs::FsOptions).
    int fuse_busy_poll_us = fs::kDefaultBusyPollUs;
  } sandbox;
  struct Logging {
    std::string level = "info";
    LogFormatKind format = LogFormatKind::kText;
  } logging;

  // Where the values came from, for the start-up log ("embedded defaults", or the file path).
  std::string source = "embedded defaults";
  // Keys present in the file that we do not know; warned about at start-up, never silently used.
  std::vector<std::string> unknown_keys;
};

// Command-line overrides (flags -config, -grpc-addr, -http-addr, -codebase-path, -runtime).
struct ConfigOverrides {
  std::string config_path;
  std::string grpc_addr;
  std::string http_addr;
  std::string codebase_path;
  std::string runtime;
  // storage.data_dir when neither the file nor a flag sets it (DefaultDataDir).
  std::string default_data_dir = "/var/lib/agentfense";
};

// Parses YAML text. Errors name the key and the reason.
Result<Config> ParseConfig(const std::string& yaml_text, std::string source);

// Loads the file named by overrides.config_path (or the embedded defaults when empty), applies
// the flag overrides and AGENTFENSE_TOKEN, fills derived paths and validates the result.
// `env_token` is the value of AGENTFENSE_TOKEN (passed in: no hidden getenv in library code).
// storage.data_dir when the config names none: /var/lib/agentfense for root (euid 0); for an
// ordinary user (rootless) $XDG_DATA_HOME/agentfense, else $HOME/.local/share/agentfense (the
// environment's values are passed in, empty when unset).
std::string DefaultDataDir(uid_t euid, const std::string& xdg_data_home, const std::string& home);

Result<Config> LoadConfig(const ConfigOverrides& overrides, const std::string& env_token);

// Validation rules shared by ParseConfig and LoadConfig: address syntax, non-loopback without a
// token, timeouts (default ≤ max), positive limits.
Status ValidateConfig(const Config& config);

// True when `addr` ("host:port") binds only a loopback address.
bool IsLoopbackAddress(const std::string& addr);

}  // namespace agentfense::server
