#include "cli/policy_commands.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/path.h"
#include "cli/exit_codes.h"

namespace agentfense::cli {
namespace {

using Json = nlohmann::ordered_json;
using policy::Decision;
using policy::Explanation;
using policy::LevelName;
using policy::Rule;

// Paths and patterns are user bytes: JSON output replaces invalid UTF-8 instead of throwing.
std::string Dump(const Json& j) { return j.dump(2, ' ', false, Json::error_handler_t::replace); }

int Fail(const Error& error, std::ostream& err) {
  err << "agentfense: error: " << error.ToString() << "\n";
  return ExitCodeFor(error);
}

Json RuleJson(const Rule& rule, int index) {
  Json j;
  if (index >= 0) j["index"] = index;
  j["pattern"] = rule.pattern;
  j["type"] = std::string(policy::PatternTypeName(rule.type));
  j["level"] = std::string(LevelName(rule.level));
  j["priority"] = rule.priority;
  return j;
}

Json DecisionJson(const Decision& d, const std::vector<SourcedRule>& rules) {
  Json j;
  j["level"] = std::string(LevelName(d.level));
  j["rule"] = d.rule >= 0 ? RuleJson(rules[static_cast<size_t>(d.rule)].rule, d.rule) : Json();
  if (d.rule >= 0) j["rule"]["origin"] = rules[static_cast<size_t>(d.rule)].origin;
  j["via_descendant"] = d.via_descendant;
  if (d.via_descendant) {
    j["own_rule"] = d.own_rule >= 0
                        ? RuleJson(rules[static_cast<size_t>(d.own_rule)].rule, d.own_rule)
                        : Json();
  }
  return j;
}

std::string DescribeRule(int index, const std::vector<SourcedRule>& rules) {
  if (index < 0) return "no rule matches (default none)";
  return "rule #" + std::to_string(index) + "  " +
         FormatRule(rules[static_cast<size_t>(index)].rule);
}

void PrintExplainText(const std::vector<std::string>& inputs,
                      const std::vector<Explanation>& explanations,
                      const std::vector<SourcedRule>& rules, bool verbose, std::ostream& out) {
  size_t width = 4;  // "PATH"
  for (const Explanation& e : explanations) width = std::max(width, e.path.size());
  auto pad = [](std::string_view s, size_t w) {
    std::string r(s);
    if (r.size() < w) r.append(w - r.size(), ' ');
    return r;
  };
  out << pad("PATH", width) << "  " << pad("LEVEL", 5) << "  DECIDED BY\n";
  for (size_t i = 0; i < explanations.size(); ++i) {
    const Explanation& e = explanations[i];
    out << pad(e.path, width) << "  " << pad(LevelName(e.as_file.level), 5) << "  "
        << DescribeRule(e.as_file.rule, rules) << "\n";
    // A directory can be raised to view by ancestor visibility (SPEC §3.4); say so.
    if (e.as_directory.level != e.as_file.level || e.as_directory.via_descendant) {
      out << pad("", width) << "  " << pad(LevelName(e.as_directory.level), 5)
          << "  as a directory: ";
      if (e.as_directory.via_descendant) {
        out << "ancestor of paths made visible by " << DescribeRule(e.as_directory.rule, rules)
            << "\n";
      } else {
        out << DescribeRule(e.as_directory.rule, rules) << "\n";
      }
    }
    if (verbose) {
      if (inputs[i] != e.path) out << "    (given as " << inputs[i] << ")\n";
      for (const policy::RuleMatch& m : e.matches) {
        out << "    " << (m.winner ? "* " : "  ") << DescribeRule(m.rule, rules) << "   ["
            << rules[static_cast<size_t>(m.rule)].origin << "]\n";
      }
      out << "    " << e.reason << "\n";
    }
  }
}

}  // namespace

int RunPolicyExplain(const ExplainOptions& options, std::ostream& out, std::ostream& err) {
  Result<std::vector<SourcedRule>> rules = CollectRules(options.sources);
  if (!rules.ok()) return Fail(rules.error(), err);
  Result<policy::Policy> compiled = CompileSourced(*rules);
  if (!compiled.ok()) return Fail(compiled.error(), err);

  // Validate every path before printing anything: a half-printed table is easy to misread.
  std::vector<std::string> normalized;
  for (const std::string& p : options.paths) {
    Result<std::string> n = NormalizeWorkspacePath(p);
    if (!n.ok()) {
      return Fail(
          Error(ErrorCode::kInvalidArgument, "bad path '" + p + "': " + n.error().message()), err);
    }
    normalized.push_back(std::move(n).value());
  }
  std::vector<Explanation> explanations;
  explanations.reserve(normalized.size());
  for (const std::string& p : normalized) explanations.push_back(compiled->Explain(p));

  if (!options.json) {
    PrintExplainText(options.paths, explanations, *rules, options.verbose, out);
    return kExitOk;
  }
  Json doc;
  doc["rules"] = Json::array();
  for (size_t i = 0; i < rules->size(); ++i) {
    Json r = RuleJson((*rules)[i].rule, static_cast<int>(i));
    r["origin"] = (*rules)[i].origin;
    doc["rules"].push_back(std::move(r));
  }
  doc["paths"] = Json::array();
  for (size_t i = 0; i < explanations.size(); ++i) {
    const Explanation& e = explanations[i];
    Json p;
    p["path"] = e.path;
    p["input"] = options.paths[i];
    p["level"] = std::string(LevelName(e.as_file.level));
    p["rule"] = DecisionJson(e.as_file, *rules)["rule"];
    p["as_file"] = DecisionJson(e.as_file, *rules);
    p["as_directory"] = DecisionJson(e.as_directory, *rules);
    p["matches"] = Json::array();
    for (const policy::RuleMatch& m : e.matches) {
      Json mj = RuleJson((*rules)[static_cast<size_t>(m.rule)].rule, m.rule);
      mj["winner"] = m.winner;
      p["matches"].push_back(std::move(mj));
    }
    p["reason"] = e.reason;
    doc["paths"].push_back(std::move(p));
  }
  out << Dump(doc) << "\n";
  return kExitOk;
}

int RunPolicyPresets(bool json, std::ostream& out, std::ostream& err) {
  Json doc = Json::array();
  for (const std::string& name : policy::PresetNames()) {
    Result<std::vector<Rule>> rules = policy::PresetRules(name);
    if (!rules.ok()) return Fail(rules.error(), err);  // a preset we list must exist
    if (json) {
      Json p;
      p["name"] = name;
      p["rules"] = Json::array();
      for (size_t i = 0; i < rules->size(); ++i) {
        p["rules"].push_back(RuleJson((*rules)[i], static_cast<int>(i)));
      }
      doc.push_back(std::move(p));
    } else {
      out << name << "\n";
      for (const Rule& r : *rules) out << "  " << FormatRule(r) << "\n";
    }
  }
  if (json) out << Dump(doc) << "\n";
  return kExitOk;
}

int RunPolicyCheck(const std::string& rules_file, bool json, std::ostream& out, std::ostream& err) {
  RuleSources sources;
  sources.rules_file = rules_file;
  Result<std::vector<SourcedRule>> rules = CollectRules(sources);
  Status status = OkStatus();
  if (!rules.ok()) {
    status = rules.error();
  } else {
    Result<policy::Policy> compiled = CompileSourced(*rules);
    if (!compiled.ok()) status = compiled.error();
  }
  if (json) {
    Json doc;
    doc["file"] = rules_file;
    doc["valid"] = status.ok();
    if (status.ok()) {
      doc["rules"] = rules->size();
    } else {
      doc["error"] = status.error().ToString();
    }
    out << Dump(doc) << "\n";
    if (!status.ok()) return Fail(status.error(), err);  // stderr names the cause in both modes
    return kExitOk;
  }
  if (!status.ok()) return Fail(status.error(), err);
  out << rules_file << ": valid, " << rules->size() << (rules->size() == 1 ? " rule" : " rules")
      << "\n";
  return kExitOk;
}

}  // namespace agentfense::cli
