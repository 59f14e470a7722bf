// libFuzzer target: random rule specs and paths, compiled and decided. Besides "never crash", it
// checks properties that must hold for every policy:
//   - Explain agrees with Decide, and its matches are best first with the winner marked;
//   - ancestor visibility only ever raises a directory from none to view; a hidden ancestor makes
//     a path none;
//   - UniformLevelBeneath(parent) never claims a level that a path beneath does not get.
//
// Input: lines. A line "preset:NAME" adds a preset's rules; "file:SPEC" / "dir:SPEC" add a rule of
// that type; "SPEC" a glob rule (PATTERN=LEVEL[@PRIORITY]); "?PATH" is a path to decide.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/path.h"
#include "policy/policy.h"

namespace {

using agentfense::policy::Decision;
using agentfense::policy::Explanation;
using agentfense::policy::Level;
using agentfense::policy::PatternType;
using agentfense::policy::Policy;
using agentfense::policy::Rule;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<Rule> rules;
  std::vector<std::string> paths;
  while (!input.empty()) {
    size_t nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
    if (line.starts_with("?")) {
      auto p = agentfense::NormalizeWorkspacePath(line.substr(1));
      if (p.ok() && paths.size() < 32) paths.push_back(*p);
      continue;
    }
    if (line.starts_with("preset:")) {
      auto preset = agentfense::policy::PresetRules(line.substr(7));
      if (preset.ok()) rules.insert(rules.end(), preset->begin(), preset->end());
      continue;
    }
    PatternType type = PatternType::kGlob;
    if (line.starts_with("file:")) {
      type = PatternType::kFile;
      line.remove_prefix(5);
    } else if (line.starts_with("dir:")) {
      type = PatternType::kDirectory;
      line.remove_prefix(4);
    }
    auto rule = agentfense::policy::ParseRuleSpec(line);
    if (!rule.ok()) {
      Check(!rule.error().message().empty());
      continue;
    }
    rule->type = type;
    if (rules.size() < 64) rules.push_back(*rule);
  }
  auto compiled = Policy::Compile(rules);
  if (!compiled.ok()) {
    // Only file/directory patterns skip ParseRuleSpec's glob checks, and those can still fail
    // (e.g. they are never rejected for '[', but are for NUL): the error must say which rule.
    Check(compiled.error().message().starts_with("rule "));
    return 0;
  }
  const Policy& policy = *compiled;
  if (paths.empty()) paths.push_back("/");
  for (const std::string& path : paths) {
    Decision f = policy.Decide(path, false);
    Decision d = policy.Decide(path, true);
    Check(!f.via_descendant);
    Check(f.hidden_ancestor == d.hidden_ancestor);
    Check(!f.hidden_ancestor || (f.level == Level::kNone && d.level == Level::kNone));
    Check(f.own_rule >= -1 && f.own_rule < static_cast<int>(rules.size()));
    Check(f.rule >= -1 && f.rule < static_cast<int>(rules.size()));
    Check(d.rule >= -1 && d.rule < static_cast<int>(rules.size()));
    if (d.via_descendant) {
      Check(f.level == Level::kNone && d.level == Level::kView);
      Check(rules[static_cast<size_t>(d.rule)].level >= Level::kView);
    } else if (d.root_floor) {
      // The workspace root can always be entered (a rule-less sandbox shows it): the floor
      // raises the directory decision of "/" alone, and only from below view.
      Check(path == "/" && d.level == Level::kView && f.level < Level::kView);
    } else {
      Check(d.level == f.level && d.rule == f.rule);
    }
    Explanation e = policy.Explain(path);
    Check(e.as_file.level == f.level && e.as_directory.level == d.level);
    Check(!e.reason.empty());
    Check(e.matches.empty() ? f.own_rule == -1
                            : e.matches[0].rule == f.own_rule && e.matches[0].winner);
    for (size_t i = 1; i < e.matches.size(); ++i) Check(!e.matches[i].winner);

    const std::string parent = agentfense::ParentPath(path);
    if (path != "/") {
      if (auto uniform = policy.UniformLevelBeneath(parent)) {
        Check(f.level == *uniform);
        Check(d.level == *uniform);
      }
    }
  }
  return 0;
}
