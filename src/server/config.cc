#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "base/units.h"
#include "policy/egress.h"
#include "runtime/identity.h"

namespace agentfense::server {
namespace {

Error KeyError(const std::string& key, const std::string& why) {
  return Error(ErrorCode::kInvalidArgument, fmt::format("config key '{}': {}", key, why));
}

// Every key we understand, as dotted paths. Anything else in the file is reported as unknown.
const std::set<std::string>& KnownKeys() {
  static const std::set<std::string> keys = {
      "server", "server.grpc_addr", "server.http_addr", "server.auth_token",
      "server.allow_insecure_remote", "server.max_body_bytes", "server.max_upload_bytes",
      "storage", "storage.data_dir", "storage.codebase_path", "storage.mount_path",
      "storage.db_path",
      "runtime", "runtime.type", "runtime.bwrap_path", "runtime.default_timeout",
      "runtime.max_timeout", "runtime.max_output_bytes", "runtime.docker", "runtime.docker.host",
      "runtime.docker.default_image", "runtime.docker.network_mode",
      "runtime.docker.enable_networking",
      "network", "network.dns_servers", "network.public_cidrs",
      "sandbox", "sandbox.default_expiration", "sandbox.max_per_user", "sandbox.cleanup_interval",
      "sandbox.uid_range", "sandbox.max_checkpoints", "sandbox.fuse_busy_poll_us", "logging",
      "logging.level", "logging.format"};
  return keys;
}

void CollectUnknown(const YAML::Node& node, const std::string& prefix,
                    std::vector<std::string>& unknown) {
  if (!node.IsMap()) return;
  for (const auto& kv : node) {
    std::string key = prefix.empty() ? kv.first.as<std::string>()
                                     : prefix + "." + kv.first.as<std::string>();
    if (!KnownKeys().count(key)) {
      unknown.push_back(key);
      continue;
    }
    CollectUnknown(kv.second, key, unknown);
  }
}

// The node at a dotted path, or nullopt when absent or null (then the default stays).
std::optional<YAML::Node> Find(const YAML::Node& root, const std::string& dotted) {
  YAML::Node node = YAML::Clone(root);
  std::stringstream ss(dotted);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (!node.IsMap()) return std::nullopt;
    node = node[part];
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
  }
  return node;
}

// Reads a scalar at a dotted path if present. yaml-cpp throws on type mismatches; every access
// goes through here so the exception becomes an error that names the key.
template <typename T>
Status Read(const YAML::Node& root, const std::string& dotted, T& out) {
  std::optional<YAML::Node> node = Find(root, dotted);
  if (!node) return OkStatus();
  if (!node->IsScalar()) return KeyError(dotted, "expected a single value");
  try {
    out = node->as<T>();
  } catch (const YAML::Exception& e) {
    return KeyError(dotted, fmt::format("wrong type ({})", e.what()));
  }
  return OkStatus();
}

// A sequence of strings (or one string) at a dotted path, if present.
Status ReadList(const YAML::Node& root, const std::string& dotted, std::vector<std::string>& out) {
  std::optional<YAML::Node> node = Find(root, dotted);
  if (!node) return OkStatus();
  try {
    out.clear();
    if (node->IsScalar()) {
      out.push_back(node->as<std::string>());
      return OkStatus();
    }
    if (!node->IsSequence()) return KeyError(dotted, "expected a list of strings");
    for (const auto& item : *node) {
      if (!item.IsScalar()) return KeyError(dotted, "expected a list of strings");
      out.push_back(item.as<std::string>());
    }
  } catch (const YAML::Exception& e) {
    return KeyError(dotted, fmt::format("wrong type ({})", e.what()));
  }
  return OkStatus();
}

Status ReadDuration(const YAML::Node& root, const std::string& key, std::chrono::nanoseconds& out) {
  std::string text;
  AF_RETURN_IF_ERROR(Read(root, key, text));
  if (text.empty()) return OkStatus();
  auto d = ParseDuration(text);
  if (!d.ok()) return KeyError(key, d.error().message());
  out = *d;
  return OkStatus();
}

Status ReadSize(const YAML::Node& root, const std::string& key, uint64_t& out) {
  std::string text;
  AF_RETURN_IF_ERROR(Read(root, key, text));
  if (text.empty()) return OkStatus();
  auto n = ParseSize(text);
  if (!n.ok()) return KeyError(key, n.error().message());
  out = *n;
  return OkStatus();
}

Result<RuntimeKind> ParseRuntime(const std::string& name) {
  if (name == "bwrap") return RuntimeKind::kBwrap;
  if (name == "docker") return RuntimeKind::kDocker;
  return Error(ErrorCode::kInvalidArgument,
               fmt::format("unknown runtime '{}' (expected bwrap or docker)", name));
}

bool ValidPort(const std::string& port) {
  if (port.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  int p = std::stoi(port);
  return p >= 0 && p <= 65535;
}

// Splits "host:port" / "[v6]:port" / ":port". Returns false on bad syntax.
bool SplitHostPort(const std::string& addr, std::string& host, std::string& port) {
  if (!addr.empty() && addr.front() == '[') {
    size_t close = addr.find(']');
    if (close == std::string::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return false;
    }
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    size_t colon = addr.rfind(':');
    if (colon == std::string::npos) return false;
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
    if (host.find(':') != std::string::npos) return false;
  }
  return ValidPort(port);
}

}  // namespace

bool IsLoopbackAddress(const std::string& addr) {
  std::string host, port;
  if (!SplitHostPort(addr, host, port)) return false;
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Result<Config> ParseConfig(const std::string& yaml_text, std::string source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::kInvalidArgument, fmt::format("config is not valid YAML: {}", e.what()));
  }
  Config c;
  c.source = std::move(source);
  if (root.IsNull()) return c;
  if (!root.IsMap()) return Error(ErrorCode::kInvalidArgument, "config must be a YAML mapping");
  CollectUnknown(root, "", c.unknown_keys);

  AF_RETURN_IF_ERROR(Read(root, "server.grpc_addr", c.server.grpc_addr));
  AF_RETURN_IF_ERROR(Read(root, "server.http_addr", c.server.http_addr));
  AF_RETURN_IF_ERROR(Read(root, "server.auth_token", c.server.auth_token));
  AF_RETURN_IF_ERROR(Read(root, "server.allow_insecure_remote", c.server.allow_insecure_remote));
  AF_RETURN_IF_ERROR(ReadSize(root, "server.max_body_bytes", c.server.max_body_bytes));
  AF_RETURN_IF_ERROR(ReadSize(root, "server.max_upload_bytes", c.server.max_upload_bytes));
  AF_RETURN_IF_ERROR(Read(root, "storage.data_dir", c.storage.data_dir));
  AF_RETURN_IF_ERROR(Read(root, "storage.codebase_path", c.storage.codebase_path));
  AF_RETURN_IF_ERROR(Read(root, "storage.mount_path", c.storage.mount_path));
  AF_RETURN_IF_ERROR(Read(root, "storage.db_path", c.storage.db_path));
  std::string runtime;
  AF_RETURN_IF_ERROR(Read(root, "runtime.type", runtime));
  if (!runtime.empty()) {
    auto kind = ParseRuntime(runtime);
    if (!kind.ok()) return KeyError("runtime.type", kind.error().message());
    c.runtime.type = *kind;
  }
  AF_RETURN_IF_ERROR(Read(root, "runtime.bwrap_path", c.runtime.bwrap_path));
  AF_RETURN_IF_ERROR(ReadDuration(root, "runtime.default_timeout", c.runtime.default_timeout));
  AF_RETURN_IF_ERROR(ReadDuration(root, "runtime.max_timeout", c.runtime.max_timeout));
  AF_RETURN_IF_ERROR(ReadSize(root, "runtime.max_output_bytes", c.runtime.max_output_bytes));
  AF_RETURN_IF_ERROR(Read(root, "runtime.docker.host", c.runtime.docker.host));
  AF_RETURN_IF_ERROR(Read(root, "runtime.docker.default_image", c.runtime.docker.default_image));
  AF_RETURN_IF_ERROR(Read(root, "runtime.docker.network_mode", c.runtime.docker.network_mode));
  AF_RETURN_IF_ERROR(
      Read(root, "runtime.docker.enable_networking", c.runtime.docker.enable_networking));
  AF_RETURN_IF_ERROR(ReadList(root, "network.dns_servers", c.network.dns_servers));
  AF_RETURN_IF_ERROR(ReadList(root, "network.public_cidrs", c.network.public_cidrs));
  AF_RETURN_IF_ERROR(
      ReadDuration(root, "sandbox.default_expiration", c.sandbox.default_expiration));
  AF_RETURN_IF_ERROR(Read(root, "sandbox.max_per_user", c.sandbox.max_per_user));
  AF_RETURN_IF_ERROR(ReadDuration(root, "sandbox.cleanup_interval", c.sandbox.cleanup_interval));
  AF_RETURN_IF_ERROR(Read(root, "sandbox.uid_range", c.sandbox.uid_range));
  AF_RETURN_IF_ERROR(Read(root, "sandbox.max_checkpoints", c.sandbox.max_checkpoints));
  AF_RETURN_IF_ERROR(Read(root, "sandbox.fuse_busy_poll_us", c.sandbox.fuse_busy_poll_us));
  AF_RETURN_IF_ERROR(Read(root, "logging.level", c.logging.level));
  std::string format;
  AF_RETURN_IF_ERROR(Read(root, "logging.format", format));
  if (format == "json") {
    c.logging.format = LogFormatKind::kJson;
  } else if (!format.empty() && format != "text") {
    return KeyError("logging.format", fmt::format("unknown format '{}' (text or json)", format));
  }
  return c;
}

Status ValidateConfig(const Config& c) {
  std::string host, port;
  for (const auto& [key, addr] : {std::pair{"server.grpc_addr", &c.server.grpc_addr},
                                  std::pair{"server.http_addr", &c.server.http_addr}}) {
    if (!SplitHostPort(*addr, host, port)) {
      return KeyError(key, fmt::format("'{}' is not host:port", *addr));
    }
    if (!IsLoopbackAddress(*addr) && c.server.auth_token.empty() &&
        !c.server.allow_insecure_remote) {
      return KeyError(key, fmt::format(
          "'{}' listens beyond loopback without an auth token; set server.auth_token (or "
          "AGENTFENSE_TOKEN), or set server.allow_insecure_remote: true to accept the risk",
          *addr));
    }
  }
  if (c.runtime.default_timeout <= std::chrono::nanoseconds(0)) {
    return KeyError("runtime.default_timeout", "must be positive");
  }
  if (c.runtime.max_timeout < c.runtime.default_timeout) {
    return KeyError("runtime.max_timeout", "must be at least runtime.default_timeout");
  }
  if (c.sandbox.max_per_user <= 0) return KeyError("sandbox.max_per_user", "must be positive");
  if (c.sandbox.max_checkpoints < 0 || c.sandbox.max_checkpoints > 10000) {
    return KeyError("sandbox.max_checkpoints", "must be between 0 and 10000");
  }
  if (c.sandbox.fuse_busy_poll_us < 0 || c.sandbox.fuse_busy_poll_us > fs::kMaxBusyPollUs) {
    return KeyError("sandbox.fuse_busy_poll_us",
                    fmt::format("must be between 0 and {} (microseconds)", fs::kMaxBusyPollUs));
  }
  if (c.sandbox.cleanup_interval < std::chrono::seconds(1)) {
    return KeyError("sandbox.cleanup_interval", "must be at least 1s");
  }
  if (c.sandbox.default_expiration < std::chrono::nanoseconds(0)) {
    return KeyError("sandbox.default_expiration", "must not be negative (0 = never)");
  }
  auto range = runtime::IdentityRange::Parse(c.sandbox.uid_range);
  if (!range.ok()) return KeyError("sandbox.uid_range", range.error().message());
  if (Status st = runtime::ValidateIdentityRange(*range); !st.ok()) {
    return KeyError("sandbox.uid_range", st.error().message());
  }
  for (const auto& d : c.network.dns_servers) {
    auto addr = policy::ParseSocketAddress(d, 53);
    if (!addr.ok()) return KeyError("network.dns_servers", addr.error().message());
  }
  if (auto p = policy::EgressPolicy::Create(false, {}, c.network.public_cidrs); !p.ok()) {
    return KeyError("network.public_cidrs", p.error().message());
  }
  if (c.runtime.docker.network_mode != "none" && c.runtime.docker.network_mode != "bridge" &&
      c.runtime.docker.network_mode != "host") {
    return KeyError("runtime.docker.network_mode", "expected none, bridge or host");
  }
  return OkStatus();
}

std::string DefaultDataDir(uid_t euid, const std::string& xdg_data_home, const std::string& home) {
  if (euid == 0) return "/var/lib/agentfense";
  // Rootless: the user's own data directory (XDG base directories), never a shared one.
  if (!xdg_data_home.empty() && xdg_data_home[0] == '/') return xdg_data_home + "/agentfense";
  if (!home.empty() && home[0] == '/') return home + "/.local/share/agentfense";
  return "/tmp/agentfense-" + std::to_string(euid);
}

Result<Config> LoadConfig(const ConfigOverrides& o, const std::string& env_token) {
  Config c;
  if (!o.config_path.empty()) {
    std::ifstream in(o.config_path);
    if (!in) {
      return Error(ErrorCode::kNotFound, fmt::format("cannot read config file '{}'", o.config_path));
    }
    std::stringstream text;
    text << in.rdbuf();
    AF_ASSIGN_OR_RETURN(c, ParseConfig(text.str(), o.config_path));
  }
  if (!o.grpc_addr.empty()) c.server.grpc_addr = o.grpc_addr;
  if (!o.http_addr.empty()) c.server.http_addr = o.http_addr;
  if (!o.codebase_path.empty()) c.storage.codebase_path = o.codebase_path;
  if (!o.runtime.empty()) {
    auto kind = ParseRuntime(o.runtime);
    if (!kind.ok()) return std::move(kind).error().With("flag -runtime");
    c.runtime.type = *kind;
  }
  if (c.server.auth_token.empty()) c.server.auth_token = env_token;
  if (c.storage.data_dir.empty()) c.storage.data_dir = o.default_data_dir;
  if (c.storage.codebase_path.empty()) c.storage.codebase_path = c.storage.data_dir + "/codebases";
  if (c.storage.mount_path.empty()) c.storage.mount_path = c.storage.data_dir + "/mounts";
  if (c.storage.db_path.empty()) c.storage.db_path = c.storage.data_dir + "/agentfense.db";
  AF_RETURN_IF_ERROR(ValidateConfig(c));
  return c;
}

}  // namespace agentfense::server
