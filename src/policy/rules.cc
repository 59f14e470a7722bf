// Names, the "PATTERN=LEVEL[@PRIORITY]" rule spec, and the presets of SPEC §3.6.
#include <charconv>

#include "policy/glob.h"
#include "policy/policy.h"

namespace agentfense::policy {
namespace {

Error Invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

std::vector<Rule> SecretRules(std::vector<Rule> rules) {
  for (const char* p : {"**/.env*", "**/secrets/**", "**/*.key", "**/*.pem", "**/credentials*"}) {
    rules.push_back({p, PatternType::kGlob, Level::kNone, 100});
  }
  return rules;
}

}  // namespace

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kNone:
      return "none";
    case Level::kView:
      return "view";
    case Level::kAsk:
      return "ask";
    case Level::kRead:
      return "read";
    case Level::kWrite:
      return "write";
  }
  return "invalid";
}

std::string_view PatternTypeName(PatternType type) {
  switch (type) {
    case PatternType::kGlob:
      return "glob";
    case PatternType::kDirectory:
      return "directory";
    case PatternType::kFile:
      return "file";
  }
  return "invalid";
}

Result<Level> ParseLevel(std::string_view name) {
  for (Level l : {Level::kNone, Level::kView, Level::kAsk, Level::kRead, Level::kWrite}) {
    if (EqualsIgnoreCase(name, LevelName(l))) return l;
  }
  return Invalid("unknown permission level \"" + std::string(name.substr(0, 64)) +
                 "\" (expected none, view, ask, read or write)");
}

Result<PatternType> ParsePatternType(std::string_view name) {
  for (PatternType t : {PatternType::kGlob, PatternType::kDirectory, PatternType::kFile}) {
    if (EqualsIgnoreCase(name, PatternTypeName(t))) return t;
  }
  return Invalid("unknown pattern type \"" + std::string(name.substr(0, 64)) +
                 "\" (expected glob, directory or file)");
}

Result<Rule> ParseRuleSpec(std::string_view spec) {
  auto fail = [spec](const std::string& why) {
    std::string shown(spec.substr(0, 80));
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20) c = '?';
    }
    return Invalid("rule spec \"" + shown + (spec.size() > 80 ? "...\"" : "\"") + ": " + why);
  };
  size_t eq = spec.rfind('=');
  if (eq == std::string_view::npos) return fail("expected PATTERN=LEVEL[@PRIORITY]");
  Rule rule;
  rule.pattern = std::string(spec.substr(0, eq));
  std::string_view rest = spec.substr(eq + 1);
  std::string_view level = rest;
  size_t at = rest.find('@');
  if (at != std::string_view::npos) {
    level = rest.substr(0, at);
    std::string_view prio = rest.substr(at + 1);
    if (prio.empty()) return fail("priority after '@' is empty");
    const char* first = prio.data();
    if (*first == '+') ++first;
    auto [ptr, ec] = std::from_chars(first, prio.data() + prio.size(), rule.priority);
    if (ec == std::errc::result_out_of_range) return fail("priority out of the 32-bit range");
    if (ec != std::errc() || ptr != prio.data() + prio.size() || first == ptr) {
      return fail("priority \"" + std::string(prio.substr(0, 32)) + "\" is not an integer");
    }
  }
  auto parsed_level = ParseLevel(level);
  if (!parsed_level.ok()) return fail(parsed_level.error().message());
  rule.level = *parsed_level;
  // Validate now so that a bad pattern is reported against the spec the user typed.
  auto pattern = internal::NormalizePattern(rule.pattern, PatternType::kGlob);
  if (!pattern.ok()) return fail(pattern.error().message());
  return rule;
}

Result<Rule> RememberRule(const Policy& current, std::string_view path, bool is_dir, Level level,
                          std::string_view remember, std::optional<int32_t> priority) {
  if (level != Level::kView && level != Level::kRead && level != Level::kWrite) {
    return Invalid("a remembered decision is view, read or write");
  }
  const Decision now = current.Decide(path, is_dir);
  Rule rule;
  rule.level = level;
  if (priority) {
    rule.priority = *priority;
  } else if (now.rule >= 0 && static_cast<size_t>(now.rule) < current.rules().size()) {
    rule.priority = current.rules()[static_cast<size_t>(now.rule)].priority;
  }
  if (remember == "path") {
    rule.pattern = std::string(path);
    rule.type = PatternType::kFile;
  } else {
    rule.pattern = std::string(remember);
    rule.type = PatternType::kGlob;
  }
  std::vector<Rule> rules = current.rules();
  rules.push_back(rule);
  auto next = Policy::Compile(std::move(rules));
  if (!next.ok()) return Invalid("remember: " + next.error().message());
  const Decision after = next->Decide(path, is_dir);
  if (after.level != level) {
    return Invalid("remember: the rule \"" + rule.pattern.substr(0, 256) + "=" +
                   std::string(LevelName(level)) + "@" + std::to_string(rule.priority) +
                   "\" would not decide " + std::string(path.substr(0, 256)) +
                   " (it would stay " + std::string(LevelName(after.level)) +
                   "): give it a higher priority");
  }
  return rule;
}

std::vector<std::string> PresetNames() {
  return {"agent-safe", "read-only", "full-access", "development", "view-only"};
}

Result<std::vector<Rule>> PresetRules(std::string_view name) {
  using enum Level;
  if (name == "agent-safe") {
    std::vector<Rule> rules = {
        {"**/*", PatternType::kGlob, kRead, 0},
        {"/output/**", PatternType::kGlob, kWrite, 10},
        {"/tmp/**", PatternType::kGlob, kWrite, 10},
    };
    rules = SecretRules(std::move(rules));
    rules.push_back({"**/.git/**", PatternType::kGlob, kNone, 50});
    return rules;
  }
  if (name == "read-only") return std::vector<Rule>{{"**/*", PatternType::kGlob, kRead, 0}};
  if (name == "full-access") return std::vector<Rule>{{"**/*", PatternType::kGlob, kWrite, 0}};
  if (name == "development") {
    return SecretRules({{"**/*", PatternType::kGlob, kWrite, 0}});
  }
  if (name == "view-only") return std::vector<Rule>{{"**/*", PatternType::kGlob, kView, 0}};
  return Invalid("unknown preset \"" + std::string(name.substr(0, 64)) +
                 "\" (expected agent-safe, read-only, full-access, development or view-only)");
}

}  // namespace agentfense::policy
