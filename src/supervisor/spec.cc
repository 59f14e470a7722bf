#include "supervisor/spec.h"

#include <nlohmann/json.hpp>

namespace agentfense::supervisor {

using nlohmann::json;

std::string SpecToJson(const SupervisorSpec& s) {
  json rules = json::array();
  for (const auto& r : s.rules) {
    rules.push_back({{"pattern", r.pattern},
                     {"type", std::string(policy::PatternTypeName(r.type))},
                     {"level", std::string(policy::LevelName(r.level))},
                     {"priority", r.priority}});
  }
  json j = {{"sandbox_id", s.sandbox_id},
            {"source_dir", s.source_dir},
            {"mountpoint", s.mountpoint},
            {"run_dir", s.run_dir},
            {"rules", rules},
            {"runtime", s.runtime == RuntimeKind::kDocker ? "docker" : "bwrap"},
            {"image", s.image},
            {"network", s.network},
            {"limits",
             {{"memory_bytes", s.limits.memory_bytes},
              {"cpu_quota_us", s.limits.cpu_quota_us},
              {"cpu_shares", s.limits.cpu_shares},
              {"pids_limit", s.limits.pids_limit}}},
            {"agent_path", s.agent_path},
            {"bwrap_path", s.bwrap_path},
            {"docker_host", s.docker_host},
            {"docker_default_image", s.docker_default_image},
            {"docker_network_mode", s.docker_network_mode},
            {"docker_instance", s.docker_instance}};
  return j.dump();
}

Result<SupervisorSpec> SpecFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(ErrorCode::kInvalidArgument, "supervisor spec is not a JSON object");
  }
  SupervisorSpec s;
  std::string field;
  try {
    field = "sandbox_id";
    s.sandbox_id = j.at("sandbox_id").get<std::string>();
    field = "source_dir";
    s.source_dir = j.at("source_dir").get<std::string>();
    field = "mountpoint";
    s.mountpoint = j.at("mountpoint").get<std::string>();
    field = "run_dir";
    s.run_dir = j.at("run_dir").get<std::string>();
    field = "rules";
    for (const auto& r : j.at("rules")) {
      policy::Rule rule;
      rule.pattern = r.at("pattern").get<std::string>();
      auto type = policy::ParsePatternType(r.at("type").get<std::string>());
      if (!type.ok()) return std::move(type).error().With("supervisor spec rules");
      rule.type = *type;
      auto level = policy::ParseLevel(r.at("level").get<std::string>());
      if (!level.ok()) return std::move(level).error().With("supervisor spec rules");
      rule.level = *level;
      rule.priority = r.at("priority").get<int32_t>();
      s.rules.push_back(std::move(rule));
    }
    field = "runtime";
    std::string runtime = j.at("runtime").get<std::string>();
    if (runtime == "docker") {
      s.runtime = RuntimeKind::kDocker;
    } else if (runtime != "bwrap") {
      return Error(ErrorCode::kInvalidArgument, "supervisor spec: unknown runtime " + runtime);
    }
    field = "image";
    s.image = j.value("image", "");
    field = "network";
    s.network = j.value("network", false);
    field = "limits";
    if (j.contains("limits")) {
      const auto& l = j.at("limits");
      s.limits.memory_bytes = l.value("memory_bytes", uint64_t{0});
      s.limits.cpu_quota_us = l.value("cpu_quota_us", int64_t{0});
      s.limits.cpu_shares = l.value("cpu_shares", uint64_t{0});
      s.limits.pids_limit = l.value("pids_limit", uint64_t{0});
    }
    field = "agent_path";
    s.agent_path = j.at("agent_path").get<std::string>();
    field = "bwrap_path";
    s.bwrap_path = j.value("bwrap_path", s.bwrap_path);
    field = "docker_host";
    s.docker_host = j.value("docker_host", s.docker_host);
    s.docker_default_image = j.value("docker_default_image", "");
    s.docker_network_mode = j.value("docker_network_mode", s.docker_network_mode);
    s.docker_instance = j.value("docker_instance", s.docker_instance);
  } catch (const json::exception& e) {
    return Error(ErrorCode::kInvalidArgument,
                 "supervisor spec field '" + field + "': " + std::string(e.what()));
  }
  for (const std::string* p : {&s.source_dir, &s.mountpoint, &s.run_dir, &s.agent_path}) {
    if (p->empty() || p->front() != '/') {
      return Error(ErrorCode::kInvalidArgument, "supervisor spec: paths must be absolute");
    }
  }
  return s;
}

}  // namespace agentfense::supervisor
