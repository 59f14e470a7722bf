#include "supervisor/launch.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "supervisor/client.h"

namespace agentfense::supervisor {
namespace {

// A bare name is looked up in the system directories only, never in a caller-influenced PATH.
std::string ResolveExecutable(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return name;
  for (const char* dir : {"/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin"}) {
    std::string candidate = std::string(dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

void Default(std::string& field, const std::string& value) {
  if (field.empty()) field = value;
}

}  // namespace

Result<HostSettings> ResolveHost(HostSettings h) {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return Error(ErrorCode::kInternal, "cannot locate the running executable");
  h.supervisor_bin = (self.parent_path() / "agentfense-supervisor").string();
  h.agent_bin = (self.parent_path() / "agentfense-agent").string();
  for (const std::string* bin : {&h.supervisor_bin, &h.agent_bin}) {
    if (::access(bin->c_str(), X_OK) != 0) {
      return Error(ErrorCode::kFailedPrecondition, "missing " + *bin + " (it is installed beside " +
                                                       self.filename().string() + ")");
    }
  }
  const SupervisorSpec defaults;
  Default(h.bwrap_path, defaults.bwrap_path);
  h.bwrap_path = ResolveExecutable(h.bwrap_path);
  Default(h.docker_host, defaults.docker_host);
  Default(h.docker_instance, defaults.docker_instance);
  Default(h.identity_range, defaults.identity_range);
  return h;
}

Status MakePrivateDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error::FromErrno(errno, "mkdir " + path);
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Error::FromErrno(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return Error(ErrorCode::kInternal, path + " is not a directory");
  if ((st.st_mode & 07777) != 0700 && ::chmod(path.c_str(), 0700) != 0) {
    return Error::FromErrno(errno, "chmod 0700 " + path);
  }
  return OkStatus();
}

HostSettings HostOf(const SupervisorSpec& spec) {
  HostSettings h;
  h.agent_bin = spec.agent_path;
  h.bwrap_path = spec.bwrap_path;
  h.docker_host = spec.docker_host;
  h.docker_default_image = spec.docker_default_image;
  h.dns_servers = spec.egress.dns_servers;
  h.public_cidrs = spec.egress.public_cidrs;
  h.docker_instance = spec.docker_instance;
  h.identity_range = spec.identity_range;
  return h;
}

Status Launch(SupervisorSpec spec, const HostSettings& host) {
  spec.agent_path = host.agent_bin;
  spec.bwrap_path = host.bwrap_path;
  spec.docker_host = host.docker_host;
  spec.docker_default_image = host.docker_default_image;
  spec.egress.dns_servers = host.dns_servers;
  spec.egress.public_cidrs = host.public_cidrs;
  spec.docker_instance = host.docker_instance;
  spec.identity_range = host.identity_range;
  return SpawnSupervisor(spec, host.supervisor_bin);
}

Result<std::unique_ptr<runtime::DockerLauncher>> MakeDockerLauncher(const HostSettings& host,
                                                                    uint32_t uid, uint32_t gid) {
  runtime::DockerLauncherConfig config;
  config.client.host = host.docker_host;
  if (!host.docker_default_image.empty()) config.default_image = host.docker_default_image;
  config.agent_path = host.agent_bin;
  config.instance = host.docker_instance;
  config.uid = uid;
  config.gid = gid;
  return runtime::DockerLauncher::Create(config);
}

}  // namespace agentfense::supervisor
