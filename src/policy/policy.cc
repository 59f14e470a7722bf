// Policy: compilation, precedence (§3.3), decisions with ancestor visibility (§3.4), Explain and
// UniformLevelBeneath. Why decisions are linear in the path length: see policy/dfa.h.
#include "policy/policy.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "policy/dfa.h"
#include "policy/glob.h"

namespace agentfense::policy {

using internal::LazyDfa;
using internal::Nfa;
using internal::NormalizedPattern;

namespace {

// Per policy. Small rule sets need a few KB; the budget only matters for pathological ones, which
// then fall back to (slower, still linear) NFA simulation instead of growing without bound.
constexpr size_t kDfaBudgetBytes = 8u << 20;
// UniformLevelBeneath explores at most this many subset states per rule before giving up (and
// answering "not uniform", the conservative answer).
constexpr size_t kUniversalityLimit = 512;

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80)) {
    out += static_cast<unsigned char>(c) < 0x20 ? '?' : c;
  }
  if (s.size() > 80) out += "...";
  out += '"';
  return out;
}

}  // namespace

class CompiledRules {
 public:
  std::vector<Rule> rules;
  std::vector<NormalizedPattern> patterns;
  std::vector<Level> levels;
  std::vector<uint32_t> rank;  // rank[r]: position of rule r in the §3.3 order, higher wins
  Nfa nfa;
  std::unique_ptr<LazyDfa> dfa;

  // §3.3: true when rule a beats rule b.
  bool Better(size_t a, size_t b) const {
    const Rule& ra = rules[a];
    const Rule& rb = rules[b];
    if (ra.priority != rb.priority) return ra.priority > rb.priority;
    if (ra.type != rb.type) return ra.type > rb.type;  // enum order: glob < directory < file
    const NormalizedPattern& pa = patterns[a];
    const NormalizedPattern& pb = patterns[b];
    if (pa.has_wildcard != pb.has_wildcard) return !pa.has_wildcard;
    if (pa.literal_prefix != pb.literal_prefix) return pa.literal_prefix > pb.literal_prefix;
    if (pa.literal_count != pb.literal_count) return pa.literal_count > pb.literal_count;
    return a > b;
  }

  std::string Describe(int r) const {
    const Rule& rule = rules[static_cast<size_t>(r)];
    std::string out = "rule #" + std::to_string(r) + " " + Quote(rule.pattern) + " (";
    out += PatternTypeName(rule.type);
    out += ", ";
    out += LevelName(rule.level);
    out += ", priority " + std::to_string(rule.priority) + ")";
    return out;
  }

  // Why a beats b, as the end of a sentence.
  std::string WhyBetter(size_t a, size_t b) const {
    const Rule& ra = rules[a];
    const Rule& rb = rules[b];
    if (ra.priority != rb.priority) {
      return "it has the higher priority (" + std::to_string(ra.priority) + " > " +
             std::to_string(rb.priority) + ")";
    }
    if (ra.type != rb.type) {
      return std::string("its type ranks higher (") + std::string(PatternTypeName(ra.type)) +
             " > " + std::string(PatternTypeName(rb.type)) +
             "; file beats directory beats glob at equal priority)";
    }
    const NormalizedPattern& pa = patterns[a];
    const NormalizedPattern& pb = patterns[b];
    if (pa.has_wildcard != pb.has_wildcard) {
      return "at equal priority and type it is more specific: it has no wildcard";
    }
    if (pa.literal_prefix != pb.literal_prefix) {
      return "at equal priority and type it is more specific: its literal prefix is longer (" +
             std::to_string(pa.literal_prefix) + " > " + std::to_string(pb.literal_prefix) +
             " bytes)";
    }
    if (pa.literal_count != pb.literal_count) {
      return "at equal priority, type and prefix it is more specific: it has more literal "
             "characters (" +
             std::to_string(pa.literal_count) + " > " + std::to_string(pb.literal_count) + ")";
    }
    return "everything else is equal and it is listed later (#" + std::to_string(a) + " after #" +
           std::to_string(b) + ")";
  }

  // Rules that can match some path strictly beneath the directory whose "beneath" set is `set`.
  std::vector<uint32_t> AliveRules(const std::vector<uint32_t>& set) const {
    std::vector<uint32_t> alive;
    for (uint32_t q : set) {
      if (nfa.states[q].live_nonslash) alive.push_back(nfa.states[q].rule);
    }
    std::sort(alive.begin(), alive.end());
    alive.erase(std::unique(alive.begin(), alive.end()), alive.end());
    return alive;
  }

  // True when rule `r` provably matches every path beneath the directory whose "beneath" set is
  // `set`. Explores the rule's own subset automaton over strings shaped like the rest of a
  // normalized path (no leading '/', no "//", no trailing '/'); any such string must end in an
  // accepting subset. That language is a superset of the real paths, so "true" is sound.
  bool MatchesEverythingBeneath(uint32_t r, const std::vector<uint32_t>& set) const {
    std::vector<uint32_t> start;
    for (uint32_t q : set) {
      if (nfa.states[q].rule == r) start.push_back(q);
    }
    using Node = std::pair<std::vector<uint32_t>, bool>;  // (subset, inside a segment)
    std::set<Node> seen;
    std::vector<Node> work;
    seen.insert({start, false});
    work.push_back({start, false});
    std::vector<uint32_t> next;
    while (!work.empty()) {
      Node node = std::move(work.back());
      work.pop_back();
      for (uint32_t c = 0; c < nfa.num_classes; ++c) {
        uint8_t b = nfa.class_rep[c];
        if (b == '/' && !node.second) continue;
        next.clear();
        nfa.Step(node.first, b, &next);
        internal::Canonicalize(&next);
        bool inside = b != '/';
        if (inside && std::none_of(next.begin(), next.end(),
                                   [&](uint32_t q) { return nfa.states[q].accepting; })) {
          return false;
        }
        Node n{next, inside};
        if (seen.insert(n).second) {
          if (seen.size() > kUniversalityLimit) return false;
          work.push_back(std::move(n));
        }
      }
    }
    return true;
  }
};

Result<Policy> Policy::Compile(std::vector<Rule> rules) {
  if (rules.size() > kMaxRules) {
    return Error(
        ErrorCode::kInvalidArgument,
        std::to_string(rules.size()) + " rules, over the limit of " + std::to_string(kMaxRules));
  }
  auto impl = std::make_unique<CompiledRules>();
  size_t total = 0;
  std::vector<PatternType> types;
  for (size_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    auto fail = [&](std::string_view why) {
      return Error(ErrorCode::kInvalidArgument, "rule " + std::to_string(i) + " (" +
                                                    Quote(r.pattern) + "): " + std::string(why));
    };
    if (r.level > Level::kWrite) return fail("unknown permission level");
    if (r.type > PatternType::kFile) return fail("unknown pattern type");
    auto normalized = internal::NormalizePattern(r.pattern, r.type);
    if (!normalized.ok()) return fail(normalized.error().message());
    total += r.pattern.size();
    if (total > kMaxTotalPatternBytes) {
      return fail("the patterns add up to more than " + std::to_string(kMaxTotalPatternBytes) +
                  " bytes");
    }
    impl->patterns.push_back(std::move(normalized).value());
    impl->levels.push_back(r.level);
    types.push_back(r.type);
  }
  impl->rules = std::move(rules);
  const size_t n = impl->rules.size();
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  const CompiledRules& c = *impl;
  std::sort(order.begin(), order.end(), [&c](uint32_t a, uint32_t b) { return c.Better(b, a); });
  impl->rank.resize(n);
  for (size_t pos = 0; pos < n; ++pos) impl->rank[order[pos]] = static_cast<uint32_t>(pos);
  impl->nfa = internal::BuildNfa(impl->patterns, types);
  impl->dfa = std::make_unique<LazyDfa>(&impl->nfa, &impl->rank, &impl->levels, kDfaBudgetBytes);
  return Policy(std::move(impl));
}

Policy::Policy(std::unique_ptr<CompiledRules> impl) : impl_(std::move(impl)) {}
Policy::Policy(Policy&&) noexcept = default;
Policy& Policy::operator=(Policy&&) noexcept = default;
Policy::~Policy() = default;

const std::vector<Rule>& Policy::rules() const { return impl_->rules; }

Decision Policy::Decide(std::string_view path, bool is_dir) const {
  Decision d = DecideByRules(path, is_dir);
  if (is_dir && path == "/" && d.level < Level::kView) {
    d.level = Level::kView;
    d.root_floor = true;
  }
  return d;
}

Decision Policy::DecideByRules(std::string_view path, bool is_dir) const {
  Decision d;
  // Contract: normalized paths only. Anything else fails closed.
  if (path.empty() || path.front() != '/') return d;
  const bool is_root = path.size() == 1;
  // For the root, the paths beneath are "/" + name, so the set after "/" already is the set
  // "beneath"; any other directory needs one more '/'.
  LazyDfa::Walk walk = impl_->dfa->Run(path, is_dir && !is_root);
  const int own = walk.at.best_accept;
  d.own_rule = own;
  d.rule = own;
  if (walk.hidden_ancestor) {
    d.hidden_ancestor = true;
    d.rule = walk.hidden_rule;
    return d;
  }
  if (own >= 0) d.level = impl_->levels[static_cast<size_t>(own)];
  // For the root, Run did not add a '/', and `beneath` equals `at`: the right set (see above).
  if (is_dir && !walk.at.accept_visible && !internal::InvisibleDirectory(walk.at, walk.beneath)) {
    d.level = Level::kView;
    d.via_descendant = true;
    d.rule = walk.beneath.best_visible_live;
  }
  return d;
}

std::optional<Level> Policy::UniformLevelBeneath(std::string_view dir) const {
  if (dir.empty() || dir.front() != '/') return std::nullopt;
  // Beneath an invisible directory (or one with an invisible ancestor) nothing can be reached;
  // the root counts as invisible here when its rules make it so (its floor shows it, empty).
  if (DecideByRules(dir, true).level == Level::kNone) return Level::kNone;
  const CompiledRules& c = *impl_;
  std::vector<uint32_t> set = c.dfa->SetAfter(dir);
  if (dir.size() > 1) {
    std::vector<uint32_t> next;
    c.nfa.Step(set, '/', &next);
    internal::Canonicalize(&next);
    set.swap(next);
  }
  std::vector<uint32_t> alive = c.AliveRules(set);
  if (alive.empty()) return Level::kNone;  // nothing can match: everything beneath is none
  std::sort(alive.begin(), alive.end(),
            [&c](uint32_t a, uint32_t b) { return c.rank[a] > c.rank[b]; });
  // Every path beneath is matched by a rule U that matches everything, or by a rule ranked above
  // U. If all of those share U's level L, every path gets L; and ancestor visibility cannot raise
  // a none (it would need a rule of level ≥ view ranked above the decider, which is one of them).
  const Level level = c.levels[alive.front()];
  for (uint32_t r : alive) {
    if (c.levels[r] != level) return std::nullopt;
    if (c.MatchesEverythingBeneath(r, set)) return level;
  }
  // No rule covers everything: some paths may be unmatched (none). Uniform only if all are none.
  if (level == Level::kNone) return Level::kNone;
  return std::nullopt;
}

Explanation Policy::Explain(std::string_view path) const {
  const CompiledRules& c = *impl_;
  Explanation e;
  e.path = std::string(path);
  e.as_file = Decide(path, false);
  e.as_directory = Decide(path, true);
  std::vector<uint32_t> winners;
  if (!path.empty() && path.front() == '/') {
    for (uint32_t q : c.dfa->SetAfter(path)) {
      if (c.nfa.states[q].accepting) winners.push_back(c.nfa.states[q].rule);
    }
  }
  std::sort(winners.begin(), winners.end());
  winners.erase(std::unique(winners.begin(), winners.end()), winners.end());
  std::sort(winners.begin(), winners.end(),
            [&c](uint32_t a, uint32_t b) { return c.rank[a] > c.rank[b]; });
  for (uint32_t r : winners) {
    e.matches.push_back({static_cast<int>(r), e.matches.empty()});
  }

  std::string p = Quote(path);
  if (winners.empty()) {
    e.reason = "No rule matches " + p + ", so it is none (the default).";
  } else if (winners.size() == 1) {
    e.reason = "Only " + c.Describe(static_cast<int>(winners[0])) + " matches " + p +
               ", so it is " + std::string(LevelName(c.levels[winners[0]])) + ".";
  } else {
    e.reason = c.Describe(static_cast<int>(winners[0])) + " decides " + p + " (" +
               std::string(LevelName(c.levels[winners[0]])) + "): it beats " +
               c.Describe(static_cast<int>(winners[1])) + " because " +
               c.WhyBetter(winners[0], winners[1]) + ".";
  }
  if (e.as_file.hidden_ancestor) {
    // Find the first invisible ancestor to name it; Explain is not on the hot path.
    std::string_view ancestor = "/";
    if (DecideByRules("/", true).level != Level::kNone) {
      for (size_t i = 1; i < path.size(); ++i) {
        if (path[i] != '/') continue;
        Decision a = Decide(path.substr(0, i), true);
        if (a.level == Level::kNone && !a.hidden_ancestor) {
          ancestor = path.substr(0, i);
          break;
        }
      }
    }
    e.reason += " But its ancestor directory " + Quote(ancestor) + " is invisible (" +
                (e.as_file.rule < 0 ? std::string("no rule matches it")
                                    : "decided by " + c.Describe(e.as_file.rule)) +
                ", and no rule of level view or more that outranks it can match beneath it), so " +
                "the path cannot be reached: none.";
    return e;
  }
  if (e.as_directory.root_floor) {
    e.reason += " As the workspace root it is view all the same: the root can always be entered "
                "and listed, and shows what the rules let it show beneath.";
  }
  if (e.as_directory.via_descendant) {
    e.reason += " As a directory it is view, because " + c.Describe(e.as_directory.rule) +
                " can match paths beneath it and " +
                (e.as_directory.own_rule < 0 ? std::string("no rule matches the directory itself")
                                             : "outranks " + c.Describe(e.as_directory.own_rule)) +
                ".";
  }
  return e;
}

}  // namespace agentfense::policy
