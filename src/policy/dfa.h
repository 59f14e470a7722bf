// A lazily built DFA that runs every rule's NFA at once (internal to the policy layer).
//
// Why a decision is linear in the path length: a DFA state is the set of NFA states (of all rules)
// reachable after the bytes read so far, so reading one byte is one table lookup, whatever the
// patterns look like; nothing is ever retried ("backtracking"), so `**` nested in `**` cannot blow
// up. Each DFA state precomputes the best rule (by §3.3 rank) that accepts there and the best rule
// with level ≥ view that can still match a longer path, so a decision is one walk plus O(1).
// When the cache reaches its memory budget, the walk continues by simulating the NFA set directly:
// still linear in the path (times the number of live NFA states), just slower, never wrong.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/glob.h"
#include "policy/policy.h"

namespace agentfense::policy::internal {

// What a state set says about the path read so far.
struct SetSummary {
  int32_t best_accept = -1;  // best-ranked rule matching the path itself, -1 if none
  int32_t best_visible_live =
      -1;  // best-ranked rule with level ≥ view that can match a longer path
  // Derived from the two above, so that the hot path compares without looking up rules.
  int64_t accept_rank = -1;     // rank of best_accept, -1 if none
  int64_t visible_rank = -1;    // rank of best_visible_live, -1 if none
  bool accept_visible = false;  // best_accept exists and its level is ≥ view
};

// §3.4 for a directory: `at` summarizes the directory's path, `beneath` the path plus '/'. True
// when the directory is invisible: its own level is none (or no rule matches it) and no rule of
// level ≥ view that outranks its rule can match beneath it.
inline bool InvisibleDirectory(const SetSummary& at, const SetSummary& beneath) {
  return !at.accept_visible && beneath.visible_rank <= at.accept_rank;
}

class LazyDfa {
 public:
  // `nfa`, `rank` and `levels` must outlive the LazyDfa. rank[r] orders rules by §3.3 (higher
  // wins).
  LazyDfa(const Nfa* nfa, const std::vector<uint32_t>* rank, const std::vector<Level>* levels,
          size_t budget_bytes);
  ~LazyDfa();
  LazyDfa(const LazyDfa&) = delete;
  LazyDfa& operator=(const LazyDfa&) = delete;

  struct Walk {
    SetSummary at;                 // after `path`
    SetSummary beneath;            // after `path` + "/" when requested, else equal to `at`
    bool hidden_ancestor = false;  // some proper ancestor directory is invisible
    int32_t hidden_rule = -1;      // the rule that decided the first such ancestor
  };
  // Thread-safe. Lock-free when every transition on the way is cached.
  Walk Run(std::string_view path, bool then_slash) const;

  // Plain NFA simulation (no cache): the canonical state set after `path`. For Explain and
  // UniformLevelBeneath, which are not on the hot path.
  std::vector<uint32_t> SetAfter(std::string_view path) const;
  SetSummary Summarize(const std::vector<uint32_t>& set) const;

  size_t CachedStates() const;

 private:
  struct State;
  struct StateDeleter {
    void operator()(State* s) const noexcept;
  };
  struct VecHash {
    size_t operator()(const std::vector<uint32_t>& v) const noexcept;
  };
  // Walk state: a cached DFA state, or (once the cache is full) an explicit NFA set.
  class Cursor;

  const State* NewStateLocked(std::vector<uint32_t> set) const;
  // Returns the successor of `s` on byte class `cls`, adding it to the cache if the budget allows;
  // otherwise returns nullptr and stores the successor set in *overflow.
  const State* Successor(const State* s, uint32_t cls, std::vector<uint32_t>* overflow) const;

  const Nfa& nfa_;
  const std::vector<uint32_t>& rank_;
  const std::vector<Level>& levels_;
  const size_t budget_bytes_;
  const State* start_ = nullptr;

  // Guards the cache's growth. Readers follow published transition pointers without it (acquire
  // loads pair with the release store in Successor); states are never freed before the LazyDfa.
  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<State, StateDeleter>> states_;  // guarded by mu_
  mutable std::unordered_map<std::vector<uint32_t>, const State*, VecHash> index_;  // by mu_
  mutable size_t bytes_ = 0;                                                        // by mu_
};

}  // namespace agentfense::policy::internal
