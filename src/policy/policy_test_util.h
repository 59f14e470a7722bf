// Helpers shared by the policy tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace agentfense::policy::testing {

// "[file:|dir:]PATTERN=LEVEL[@PRIORITY]" → Rule. Aborts the test on a bad spec.
inline Rule R(std::string_view spec) {
  PatternType type = PatternType::kGlob;
  if (spec.starts_with("file:")) {
    type = PatternType::kFile;
    spec.remove_prefix(5);
  } else if (spec.starts_with("dir:")) {
    type = PatternType::kDirectory;
    spec.remove_prefix(4);
  }
  auto rule = ParseRuleSpec(spec);
  EXPECT_TRUE(rule.ok()) << spec << ": " << (rule.ok() ? "" : rule.error().ToString());
  if (!rule.ok()) return Rule{};
  rule->type = type;
  return *rule;
}

inline std::vector<Rule> Rules(std::initializer_list<std::string_view> specs) {
  std::vector<Rule> out;
  for (auto s : specs) out.push_back(R(s));
  return out;
}

inline Policy MustCompile(std::vector<Rule> rules) {
  auto p = Policy::Compile(std::move(rules));
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().ToString());
  if (!p.ok()) std::abort();
  return std::move(p).value();
}

inline Policy MustPreset(std::string_view name) {
  auto rules = PresetRules(name);
  EXPECT_TRUE(rules.ok());
  if (!rules.ok()) std::abort();
  return MustCompile(*rules);
}

}  // namespace agentfense::policy::testing
