#include "runtime/docker_container_spec.h"

#include <algorithm>
#include <cctype>

#include "base/ids.h"
#include "runtime/docker_client.h"

namespace agentfense::runtime {
namespace {

using Json = nlohmann::json;

Error Invalid(std::string_view field, std::string_view why) {
  return Error(ErrorCode::kInvalidArgument,
               "docker sandbox " + std::string(field) + ": " + std::string(why));
}

// An absolute, normalized host path: no "..", no "//", no NUL, no ',' or ':' (Docker's mount
// syntaxes split on them), not "/".
Status ValidateHostPath(std::string_view field, std::string_view p) {
  if (p.empty() || p.front() != '/') return Invalid(field, "must be an absolute path");
  if (p == "/") return Invalid(field, "must not be /");
  if (p.size() > 4096) return Invalid(field, "too long");
  if (p.find('\0') != std::string_view::npos || p.find(',') != std::string_view::npos ||
      p.find(':') != std::string_view::npos) {
    return Invalid(field, "contains NUL, ',' or ':'");
  }
  if (p.find("//") != std::string_view::npos || p.back() == '/') {
    return Invalid(field, "must be normalized");
  }
  for (size_t start = 1; start <= p.size();) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view seg = p.substr(start, end - start);
    if (seg == "." || seg == "..") return Invalid(field, "must not contain . or ..");
    start = end + 1;
  }
  return OkStatus();
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

}  // namespace

std::string DockerContainerName(std::string_view instance, std::string_view sandbox_id) {
  return "agentfense-" + std::string(instance) + "-" + std::string(sandbox_id);
}

Status ValidateInstanceName(std::string_view instance) {
  const bool ok = !instance.empty() && instance.size() <= 32 &&
                  std::all_of(instance.begin(), instance.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
                  });
  if (!ok) {
    return Error(ErrorCode::kInvalidArgument, "bad docker instance name \"" +
                                                  std::string(instance.substr(0, 40)) +
                                                  "\": expected 1-32 characters of [A-Za-z0-9_.]");
  }
  return OkStatus();
}

Result<Json> BuildContainerCreateBody(const DockerContainerPlan& plan) {
  if (!IsValidSandboxId(plan.sandbox_id)) {
    return Error(ErrorCode::kInvalidArgument, "sandbox_id: not a sandbox id (sb_ + 16 hex digits)");
  }
  AF_RETURN_IF_ERROR(ValidateInstanceName(plan.instance));
  AF_RETURN_IF_ERROR(ValidateImageRef(plan.image));
  AF_RETURN_IF_ERROR(ValidateHostPath("workspace_dir", plan.workspace_dir));
  AF_RETURN_IF_ERROR(ValidateHostPath("agent_path", plan.agent_path));
  AF_RETURN_IF_ERROR(ValidateHostPath("run_dir", plan.run_dir));
  // Root inside a container without a user namespace is root on the host's files.
  if (plan.uid == 0 || plan.gid == 0) return Invalid("user", "uid and gid must not be 0");
  // The host's nobody is shared with everything else on the host: never a sandbox's identity.
  if (plan.uid == 65534 || plan.gid == 65534) {
    return Invalid("user", "uid and gid must not be 65534 (nobody)");
  }
  if (plan.hostname.empty() || plan.hostname.size() > 63 ||
      !std::all_of(plan.hostname.begin(), plan.hostname.end(), IsNameChar)) {
    return Invalid("hostname", "expected 1-63 characters of [A-Za-z0-9_.-]");
  }

  const DockerLimits& l = plan.limits;
  if (l.memory_bytes < 0 || l.nano_cpus < 0 || l.cpu_quota_us < 0 || l.cpu_period_us < 0 ||
      l.cpu_shares < 0 || l.pids_limit < 0 || l.tmp_size_bytes <= 0) {
    return Invalid("limits", "negative value (or a zero /tmp size)");
  }
  if (l.memory_bytes != 0 && l.memory_bytes < (6LL << 20)) {
    return Invalid("limits", "memory below Docker's 6 MiB minimum");
  }
  if (l.nano_cpus != 0 && (l.cpu_quota_us != 0 || l.cpu_period_us != 0)) {
    return Invalid("limits", "nano_cpus and cpu_quota/cpu_period are exclusive");
  }
  if (l.cpu_period_us != 0 && (l.cpu_period_us < 1000 || l.cpu_period_us > 1000000)) {
    return Invalid("limits", "cpu_period must be within 1000..1000000 us");
  }
  if (l.cpu_quota_us != 0 && l.cpu_quota_us < 1000) {
    return Invalid("limits", "cpu_quota must be at least 1000 us");
  }
  if (l.cpu_shares != 0 && l.cpu_shares < 2) return Invalid("limits", "cpu_shares below 2");

  if (plan.workspace_propagation != "rslave" && plan.workspace_propagation != "rprivate") {
    return Invalid("workspace_propagation", "must be rslave or rprivate");
  }
  // Always "none": a namespace with only lo. With network on, the supervisor prepares that
  // namespace after start (net/netns.h) so that its only way out is the sandbox's egress filter;
  // a Docker network (bridge) would be a second, unfiltered way out.
  const std::string network_mode = "none";

  Json labels = Json::object();
  for (const auto& [k, v] : plan.extra_labels) {
    if (k.starts_with("agentfense.")) return Invalid("labels", "agentfense.* labels are reserved");
    labels[k] = v;
  }
  labels[std::string(kLabelManaged)] = "true";
  labels[std::string(kLabelSandbox)] = plan.sandbox_id;
  labels[std::string(kLabelInstance)] = plan.instance;

  Json entrypoint = Json::array({std::string(kContainerAgentPath)});
  for (const auto& a : plan.agent_args) entrypoint.push_back(a);

  // Bind mounts through the Mounts API (not the Binds strings) so that paths are never parsed.
  // Docker's Mounts API has no nosuid/nodev option for binds: a bind keeps the flags of its source
  // mount, so the FUSE mount (mounted nosuid,nodev by the fs layer) stays nosuid,nodev inside. On a
  // plain directory the device cgroup, CapDrop ALL (no mknod) and no-new-privileges cover the rest.
  Json mounts = Json::array();
  mounts.push_back({{"Type", "bind"},
                    {"Source", plan.workspace_dir},
                    {"Target", std::string(kContainerWorkspace)},
                    {"ReadOnly", false},
                    {"BindOptions", {{"Propagation", plan.workspace_propagation}}}});
  mounts.push_back({{"Type", "bind"},
                    {"Source", plan.agent_path},
                    {"Target", std::string(kContainerAgentPath)},
                    {"ReadOnly", true},
                    {"BindOptions", {{"Propagation", "rprivate"}}}});
  mounts.push_back({{"Type", "bind"},
                    {"Source", plan.run_dir},
                    {"Target", std::string(kContainerRunDir)},
                    {"ReadOnly", false},
                    {"BindOptions", {{"Propagation", "rprivate"}}}});

  Json host_config = {
      {"Mounts", mounts},
      {"Tmpfs", {{"/tmp", "rw,nosuid,nodev,mode=1777,size=" + std::to_string(l.tmp_size_bytes)}}},
      {"ReadonlyRootfs", true},
      {"CapDrop", Json::array({"ALL"})},
      {"CapAdd", Json::array()},
      {"SecurityOpt", Json::array({"no-new-privileges"})},
      {"Privileged", false},
      {"NetworkMode", network_mode},
      {"IpcMode", "private"},
      {"PidMode", ""},
      {"Init", false},        // the agent is PID 1 and reaps orphans itself
      {"AutoRemove", false},  // stop → start must work; Destroy removes
      {"RestartPolicy", {{"Name", "no"}}},
      {"OomKillDisable", false},
      // Agent diagnostics only (command output goes over the agent socket); capped.
      {"LogConfig", {{"Type", "json-file"}, {"Config", {{"max-size", "1m"}, {"max-file", "1"}}}}},
  };
  if (l.memory_bytes != 0) {
    host_config["Memory"] = l.memory_bytes;
    host_config["MemorySwap"] = l.memory_bytes;
  }
  if (l.nano_cpus != 0) host_config["NanoCpus"] = l.nano_cpus;
  if (l.cpu_quota_us != 0) {
    host_config["CpuQuota"] = l.cpu_quota_us;
    host_config["CpuPeriod"] = l.cpu_period_us != 0 ? l.cpu_period_us : 100000;
  } else if (l.cpu_period_us != 0) {
    host_config["CpuPeriod"] = l.cpu_period_us;
  }
  if (l.cpu_shares != 0) host_config["CpuShares"] = l.cpu_shares;
  if (l.pids_limit != 0) host_config["PidsLimit"] = l.pids_limit;

  Json body = {
      {"Image", plan.image},
      {"Entrypoint", entrypoint},
      {"Cmd", Json::array()},
      {"User", std::to_string(plan.uid) + ":" + std::to_string(plan.gid)},
      {"WorkingDir", std::string(kContainerWorkspace)},
      {"Hostname", plan.hostname},
      // The agent gives every command a clean base of its own; this is only the agent's.
      {"Env", Json::array({"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           "HOME=/tmp"})},
      {"Labels", labels},
      {"AttachStdin", false},
      {"AttachStdout", false},
      {"AttachStderr", false},
      {"Tty", false},
      {"OpenStdin", false},
      {"NetworkDisabled", !plan.network},
      {"StopSignal", "SIGTERM"},
      {"HostConfig", host_config},
  };
  return body;
}

}  // namespace agentfense::runtime
