// Rule lists as users write them for the CLI: presets, "PATTERN=LEVEL[@PRIORITY]" arguments and
// rules files. Each rule remembers where it came from so that an error can point at the exact
// argument or file line instead of an index into a merged list.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "policy/policy.h"

namespace agentfense::cli {

struct SourcedRule {
  policy::Rule rule;
  std::string origin;  // "preset agent-safe, rule 3", "--rule #2", "rules.txt:4"
};

// Files larger than this are refused before reading: 10,000 rules of 4 KiB patterns fit easily.
inline constexpr size_t kMaxRulesFileBytes = 64u << 20;

// Parses rules-file text: one PATTERN=LEVEL[@PRIORITY] per line; blank lines and lines whose first
// non-blank character is '#' are ignored; surrounding whitespace (and a CR of CRLF files) is
// trimmed. Errors are INVALID_ARGUMENT and start with "<source_name>:<line>: ".
Result<std::vector<SourcedRule>> ParseRulesText(std::string_view text,
                                                std::string_view source_name);

// Reads and parses a rules file. A missing or unreadable file is an error naming the file.
Result<std::vector<SourcedRule>> LoadRulesFile(const std::string& path);

// Where a command's rules come from. They are merged in this order: preset, rules file, --rule
// arguments; on a full tie the later rule wins (SPEC §3.3), so command-line rules refine the rest.
struct RuleSources {
  std::optional<std::string> preset;
  std::optional<std::string> rules_file;
  std::vector<std::string> rule_specs;
};

// Collects the rules of every source. Errors: "no rules given" when there is no source at all,
// an unknown preset, a bad --rule (naming the argument), a bad file line (naming file:line).
Result<std::vector<SourcedRule>> CollectRules(const RuleSources& sources);

// Compiles the rules; a rule the engine rejects is reported with its origin.
Result<policy::Policy> CompileSourced(const std::vector<SourcedRule>& rules);

// The rule in the form --rule and rules files accept ("**/*.py=read@10"), so output can be pasted
// back; non-glob types (which that form cannot express) get a " (directory)" / " (file)" suffix.
std::string FormatRule(const policy::Rule& rule);

}  // namespace agentfense::cli
