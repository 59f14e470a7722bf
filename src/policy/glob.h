// Pattern validation, normalization and compilation to an NFA over bytes (SPEC §3.1, §3.2).
// Internal to the policy layer: callers outside src/policy use policy.h.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "policy/policy.h"

namespace agentfense::policy::internal {

// A validated pattern in canonical form plus the measures §3.3 ranks by.
struct NormalizedPattern {
  std::string text;  // "/src/**/*.py": leading '/', no "//", no "." segment, no trailing '/'
  bool has_wildcard = false;  // any of * ? [ (globs only; file and directory patterns are literal)
  size_t literal_prefix = 0;  // bytes before the first wildcard (whole text when wildcard-free)
  size_t literal_count = 0;   // bytes that are not part of a wildcard
};

// Validates and normalizes one rule's pattern. Errors (kInvalidArgument) say why, without the
// rule index: the caller adds it. File and directory patterns are literal paths: '*', '?' and '['
// are ordinary bytes in them, so a file named "report[1].txt" can be granted exactly.
Result<NormalizedPattern> NormalizePattern(std::string_view raw, PatternType type);

using ByteSet = std::bitset<256>;

// The NFA of every rule of a policy, concatenated. A state belongs to exactly one rule. Byte sets
// with an id below 256 are the singleton {id}; others index `sets`.
struct Nfa {
  struct Transition {
    uint32_t set;
    uint32_t target;
  };
  struct State {
    uint32_t rule = 0;
    uint32_t trans_begin = 0;  // into transitions
    uint32_t trans_end = 0;
    uint32_t closure_begin = 0;  // into closures: this state and every state reachable by epsilon
    uint32_t closure_end = 0;
    bool accepting = false;
    // Some transition on a byte other than '/' leads to a state from which an accepting state is
    // reachable: the rule can still match a longer path whose next segment starts here.
    bool live_nonslash = false;
  };

  std::vector<State> states;
  std::vector<Transition> transitions;
  std::vector<uint32_t> closures;
  std::vector<ByteSet> sets;              // set id 256 + i
  std::vector<uint32_t> rule_start;       // per rule: its start state
  std::array<uint8_t, 256> byte_class{};  // bytes no rule distinguishes share a class
  std::array<uint8_t, 256> class_rep{};   // one byte of each class
  uint32_t num_classes = 1;

  bool Contains(uint32_t set, uint8_t byte) const {
    return set < 256 ? set == byte : sets[set - 256].test(byte);
  }
  // Adds the epsilon closures of every state reached from `from` on `byte` to `out` (unsorted,
  // may hold duplicates; see Canonicalize).
  void Step(const std::vector<uint32_t>& from, uint8_t byte, std::vector<uint32_t>* out) const;
};

// Sorts and deduplicates a state set so that equal sets compare equal.
void Canonicalize(std::vector<uint32_t>* set);

// Builds the NFA for all patterns (index = rule index). `patterns[i]` must come from
// NormalizePattern with `types[i]`.
Nfa BuildNfa(const std::vector<NormalizedPattern>& patterns, const std::vector<PatternType>& types);

}  // namespace agentfense::policy::internal
