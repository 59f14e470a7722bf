// The permission engine: rules → per-path decisions (SPEC §3). Pure: no I/O, no FUSE, no protobuf.
//
// A Policy is compiled once from a rule list and is immutable afterwards; every const method is
// safe to call from many threads at once. Paths given to it are normalized workspace paths
// ("/", "/src/app.py"; see base/path.h NormalizeWorkspacePath). Decisions never re-parse patterns
// and run in time linear in the path length (see policy/dfa.h for the argument).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace agentfense::policy {

// Ordered: a higher level grants everything a lower one does. `ask` shows the path as `view` does
// and holds every read of its content and every change until someone decides (docs/PERMISSIONS.md,
// "ask"): it grants no more than `view` by itself, so every check that needs `read` or `write`
// refuses it unless the filesystem turns the wait into an approval.
enum class Level : uint8_t { kNone = 0, kView = 1, kAsk = 2, kRead = 3, kWrite = 4 };

enum class PatternType : uint8_t { kGlob = 0, kDirectory = 1, kFile = 2 };

struct Rule {
  std::string pattern;
  PatternType type = PatternType::kGlob;
  Level level = Level::kNone;
  int32_t priority = 0;
};

inline constexpr size_t kMaxRules = 10000;
inline constexpr size_t kMaxPatternBytes = 4096;
// Sum of all pattern lengths in one policy. 10,000 rules of 4096 bytes would compile to tens of
// millions of NFA states; no real policy is anywhere near 1 MiB of patterns.
inline constexpr size_t kMaxTotalPatternBytes = size_t{1} << 20;

std::string_view LevelName(Level level);  // "none" | "view" | "ask" | "read" | "write"
std::string_view PatternTypeName(PatternType);  // "glob" | "directory" | "file"
Result<Level> ParseLevel(std::string_view name);
Result<PatternType> ParsePatternType(std::string_view name);

// Parses the CLI/rules-file form "PATTERN=LEVEL[@PRIORITY]" (split at the last '='; a pattern may
// contain '='). Type is glob.
Result<Rule> ParseRuleSpec(std::string_view spec);

// The outcome for one path.
struct Decision {
  // The level that applies to the path. For a directory this includes ancestor visibility (§3.4):
  // a directory that would be `none` but leads to a visible path is `view`.
  Level level = Level::kNone;
  // Index into rules() of the rule that decided, or -1 when no rule matched (default none).
  int rule = -1;
  // True when `level` was raised to `view` by ancestor visibility; `rule` is then the outranking
  // rule that can match beneath, and `own_rule` the rule that decided the path itself (or -1).
  bool via_descendant = false;
  int own_rule = -1;
  // True when a proper ancestor directory (the root included) is invisible: its own level is none
  // and §3.4 does not rescue it. Nothing beneath an invisible directory can be reached, so `level`
  // is none whatever the path's own rules say; `rule` is then the rule that decided that ancestor
  // (or -1 when none matched it) and `own_rule` still the path's own. Example: `/build=none@10`
  // + `**/*=read` hides the directory /build, so /build/x is none although `**/*` matches it.
  bool hidden_ancestor = false;
  // The workspace root as a directory is always at least `view`: an agent can enter and list its
  // workspace even when no rule grants anything (the reference behaves so: a sandbox created with
  // no rules shows the root and nothing else). The floor raises the root alone; whether paths
  // beneath an otherwise invisible root can be reached still follows the rules (they cannot).
  // True when the floor raised the level.
  bool root_floor = false;
};

// Why a rule matched and where it ranks, for Explain.
struct RuleMatch {
  int rule = -1;  // index into rules()
  bool winner = false;
};

struct Explanation {
  std::string path;
  Decision as_file;       // the decision if the path is a file
  Decision as_directory;  // the decision if the path is a directory (ancestor visibility applies)
  std::vector<RuleMatch> matches;  // every rule matching the path, best first
  std::string reason;              // one human sentence: why the winner beat the runner-up
};

class CompiledRules;  // defined in policy.cc

class Policy {
 public:
  // Validates and compiles. Errors name the rule index and the reason: empty pattern, NUL, ".."
  // segment, unbalanced '[', pattern over 4096 bytes, more than 10,000 rules, more than 1 MiB of
  // patterns in total, a level or type outside the enums.
  static Result<Policy> Compile(std::vector<Rule> rules);

  Policy(Policy&&) noexcept;
  Policy& operator=(Policy&&) noexcept;
  ~Policy();

  const std::vector<Rule>& rules() const;

  // `path` must be normalized. `is_dir` selects whether ancestor visibility applies.
  Decision Decide(std::string_view path, bool is_dir) const;
  Level LevelOf(std::string_view path, bool is_dir) const { return Decide(path, is_dir).level; }

  // The single level every possible path strictly beneath directory `dir` would get, if it is the
  // same for all of them; nullopt when paths beneath could be decided differently. Conservative:
  // nullopt may be returned for a subtree that happens to be uniform. Used by rename/rmdir of
  // directories (SPEC §3.5: EXDEV unless the whole subtree is writable at both places).
  std::optional<Level> UniformLevelBeneath(std::string_view dir) const;

  Explanation Explain(std::string_view path) const;

 private:
  // Decide without the root floor: the rules' own verdict.
  Decision DecideByRules(std::string_view path, bool is_dir) const;
  explicit Policy(std::unique_ptr<CompiledRules> impl);
  std::unique_ptr<CompiledRules> impl_;
};

// The rule that remembers a decision about an `ask` access to `path` (docs/PERMISSIONS.md, "ask"):
// `remember` is "path" (a file rule for exactly that path) or a glob pattern; the rule gives
// `level` (read or write for an allowed access, view for a denied one). Its priority is
// `priority` when given, else that of the rule deciding `path` now, and appended last it wins
// ties. kInvalidArgument when the pattern is invalid or when, appended to `current`'s rules, it
// would not decide `path` as `level` (another rule still outranks it: give a higher priority).
Result<Rule> RememberRule(const Policy& current, std::string_view path, bool is_dir, Level level,
                          std::string_view remember, std::optional<int32_t> priority);

// Presets of SPEC §3.6.
std::vector<std::string> PresetNames();
Result<std::vector<Rule>> PresetRules(std::string_view name);

}  // namespace agentfense::policy
