#include "supervisor/spec.h"

#include <cstdint>

#include <nlohmann/json.hpp>

namespace agentfense::supervisor {

using nlohmann::json;

namespace {

json RulesArray(const std::vector<policy::Rule>& rules) {
  json out = json::array();
  for (const auto& r : rules) {
    out.push_back({{"pattern", r.pattern},
                   {"type", std::string(policy::PatternTypeName(r.type))},
                   {"level", std::string(policy::LevelName(r.level))},
                   {"priority", r.priority}});
  }
  return out;
}

Result<std::vector<policy::Rule>> ParseRulesArray(const json& array) {
  if (!array.is_array()) return Error(ErrorCode::kInvalidArgument, "rules must be a JSON array");
  std::vector<policy::Rule> rules;
  size_t index = 0;
  for (const auto& r : array) {
    auto bad = [&](const std::string& why) {
      return Error(ErrorCode::kInvalidArgument, "rule " + std::to_string(index) + ": " + why);
    };
    if (!r.is_object() || !r.contains("pattern") || !r["pattern"].is_string() ||
        !r.contains("level") || !r["level"].is_string()) {
      return bad("needs string fields pattern and level");
    }
    policy::Rule rule;
    rule.pattern = r["pattern"].get<std::string>();
    auto level = policy::ParseLevel(r["level"].get<std::string>());
    if (!level.ok()) return bad(level.error().message());
    rule.level = *level;
    if (r.contains("type")) {
      if (!r["type"].is_string()) return bad("type must be a string");
      auto type = policy::ParsePatternType(r["type"].get<std::string>());
      if (!type.ok()) return bad(type.error().message());
      rule.type = *type;
    }
    if (r.contains("priority")) {
      if (!r["priority"].is_number_integer()) return bad("priority must be an integer");
      int64_t p = r["priority"].get<int64_t>();
      if (p < INT32_MIN || p > INT32_MAX) return bad("priority out of range");
      rule.priority = static_cast<int32_t>(p);
    }
    rules.push_back(std::move(rule));
    ++index;
  }
  return rules;
}

json EgressObject(const EgressSpec& e) {
  return {{"any_public", e.any_public},
          {"allow", e.allow},
          {"dns_servers", e.dns_servers},
          {"public_cidrs", e.public_cidrs}};
}

Result<EgressSpec> ParseEgressObject(const json& j) {
  if (!j.is_object()) return Error(ErrorCode::kInvalidArgument, "egress must be a JSON object");
  EgressSpec e;
  auto strings = [&](const char* key, std::vector<std::string>* out) -> Status {
    if (!j.contains(key)) return OkStatus();
    const json& a = j.at(key);
    if (!a.is_array()) {
      return Error(ErrorCode::kInvalidArgument, std::string("egress.") + key + " must be an array");
    }
    for (const auto& v : a) {
      if (!v.is_string()) {
        return Error(ErrorCode::kInvalidArgument,
                     std::string("egress.") + key + " must hold strings");
      }
      out->push_back(v.get<std::string>());
    }
    return OkStatus();
  };
  if (j.contains("any_public")) {
    if (!j.at("any_public").is_boolean()) {
      return Error(ErrorCode::kInvalidArgument, "egress.any_public must be a boolean");
    }
    e.any_public = j.at("any_public").get<bool>();
  }
  AF_RETURN_IF_ERROR(strings("allow", &e.allow));
  AF_RETURN_IF_ERROR(strings("dns_servers", &e.dns_servers));
  AF_RETURN_IF_ERROR(strings("public_cidrs", &e.public_cidrs));
  return e;
}

}  // namespace

std::string EgressToJson(const EgressSpec& egress) { return EgressObject(egress).dump(); }

Result<EgressSpec> EgressFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error(ErrorCode::kInvalidArgument, "egress is not valid JSON");
  return ParseEgressObject(j);
}

std::string RulesToJson(const std::vector<policy::Rule>& rules) {
  return RulesArray(rules).dump();
}

Result<std::vector<policy::Rule>> RulesFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error(ErrorCode::kInvalidArgument, "rules are not valid JSON");
  return ParseRulesArray(j);
}

std::string AskEventToJson(const fs::AskEvent& e) {
  const fs::AccessRequest& r = e.request;
  json j = {{"id", r.id},
            {"path", r.path},
            {"op", r.op},
            {"need", std::string(policy::LevelName(r.need))},
            {"pid", r.pid},
            {"command", r.command},
            {"since_ns", r.since_ns},
            {"deadline_ns", r.deadline_ns},
            {"state", std::string(fs::AskStateName(e.state))},
            {"grant", std::string(policy::LevelName(e.grant))},
            {"by", e.by},
            {"remember", e.remember},
            {"time_ns", e.time_ns}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<fs::AskEvent> AskEventFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(ErrorCode::kInvalidArgument, "an approval event is not a JSON object");
  }
  fs::AskEvent e;
  try {
    fs::AccessRequest& r = e.request;
    r.id = j.value("id", std::string());
    r.path = j.value("path", std::string());
    r.op = j.value("op", std::string());
    auto need = policy::ParseLevel(j.value("need", std::string("read")));
    if (need.ok()) r.need = *need;
    r.pid = j.value("pid", 0);
    r.command = j.value("command", std::string());
    r.since_ns = j.value("since_ns", int64_t{0});
    r.deadline_ns = j.value("deadline_ns", int64_t{0});
    const std::string state = j.value("state", std::string("pending"));
    for (fs::AskState s : fs::kAskStates) {
      if (fs::AskStateName(s) == state) e.state = s;
    }
    auto grant = policy::ParseLevel(j.value("grant", std::string("none")));
    if (grant.ok()) e.grant = *grant;
    e.by = j.value("by", std::string());
    e.remember = j.value("remember", std::string());
    e.time_ns = j.value("time_ns", int64_t{0});
  } catch (const json::exception&) {
    return Error(ErrorCode::kInvalidArgument, "an approval event has a field of the wrong type");
  }
  return e;
}

std::string SpecToJson(const SupervisorSpec& s) {
  json rules = RulesArray(s.rules);
  json j = {{"sandbox_id", s.sandbox_id},
            {"source_dir", s.source_dir},
            {"mountpoint", s.mountpoint},
            {"run_dir", s.run_dir},
            {"rules", rules},
            {"runtime", s.runtime == RuntimeKind::kDocker ? "docker" : "bwrap"},
            {"image", s.image},
            {"network", s.network},
            {"egress", EgressObject(s.egress)},
            {"delta_dir", s.delta_dir},
            {"delta_quota_bytes", s.delta_quota_bytes},
            {"delta_quota_inodes", s.delta_quota_inodes},
            {"max_checkpoints", s.max_checkpoints},
            {"ask_timeout_ms", s.ask_timeout_ms},
            {"fuse_busy_poll_us", s.fuse_busy_poll_us},
            {"limits",
             {{"memory_bytes", s.limits.memory_bytes},
              {"cpu_quota_us", s.limits.cpu_quota_us},
              {"cpu_shares", s.limits.cpu_shares},
              {"pids_limit", s.limits.pids_limit}}},
            {"agent_path", s.agent_path},
            {"bwrap_path", s.bwrap_path},
            {"docker_host", s.docker_host},
            {"docker_default_image", s.docker_default_image},
            {"docker_instance", s.docker_instance},
            {"identity_range", s.identity_range},
            {"identity_lease_dir", s.identity_lease_dir},
            {"preferred_uid", s.preferred_uid}};
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
    auto rules = ParseRulesArray(j.at("rules"));
    if (!rules.ok()) return std::move(rules).error().With("supervisor spec");
    s.rules = std::move(*rules);
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
    field = "egress";
    if (j.contains("egress")) {
      auto egress = ParseEgressObject(j.at("egress"));
      if (!egress.ok()) return std::move(egress).error().With("supervisor spec");
      s.egress = std::move(*egress);
    }
    field = "delta_dir";
    s.delta_dir = j.value("delta_dir", std::string());
    field = "delta_quota_bytes";
    s.delta_quota_bytes = j.value("delta_quota_bytes", uint64_t{0});
    field = "delta_quota_inodes";
    s.delta_quota_inodes = j.value("delta_quota_inodes", uint64_t{0});
    field = "max_checkpoints";
    s.max_checkpoints = j.value("max_checkpoints", uint64_t{0});
    field = "ask_timeout_ms";
    s.ask_timeout_ms = j.value("ask_timeout_ms", uint64_t{0});
    field = "fuse_busy_poll_us";
    s.fuse_busy_poll_us = j.value("fuse_busy_poll_us", int64_t{-1});
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
    s.docker_instance = j.value("docker_instance", s.docker_instance);
    field = "identity_range";
    s.identity_range = j.value("identity_range", s.identity_range);
    field = "identity_lease_dir";
    s.identity_lease_dir = j.value("identity_lease_dir", s.identity_lease_dir);
    field = "preferred_uid";
    s.preferred_uid = j.value("preferred_uid", uint32_t{0});
  } catch (const json::exception& e) {
    return Error(ErrorCode::kInvalidArgument,
                 "supervisor spec field '" + field + "': " + std::string(e.what()));
  }
  for (const std::string* p :
       {&s.source_dir, &s.mountpoint, &s.run_dir, &s.agent_path, &s.identity_lease_dir}) {
    if (p->empty() || p->front() != '/') {
      return Error(ErrorCode::kInvalidArgument, "supervisor spec: paths must be absolute");
    }
  }
  return s;
}

}  // namespace agentfense::supervisor
