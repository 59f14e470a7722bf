// Property tests: the compiled engine agrees with a naive recursive matcher and a naive ranking
// written here straight from SPEC §3.2/§3.3, on many random patterns, rule sets and paths (fixed
// seed). Also: the cache-full fallback gives the same answers, and concurrent use is consistent.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "policy/dfa.h"
#include "policy/glob.h"
#include "policy/policy_test_util.h"

namespace agentfense::policy {
namespace {

// ---- Reference matcher, §3.2, on a normalized pattern (leading '/', no "//", no "."). ----

bool StarRun(std::string_view seg) {
  return seg.size() >= 2 && seg.find_first_not_of('*') == std::string_view::npos;
}

// Class at x[i] == '['; returns whether byte c is in it and sets *next past the ']'.
bool RefClass(std::string_view x, size_t i, char c, size_t* next) {
  size_t j = i + 1;
  bool neg = j < x.size() && (x[j] == '!' || x[j] == '^');
  if (neg) ++j;
  bool in = false;
  bool first = true;
  while (x[j] != ']' || first) {
    first = false;
    if (j + 2 < x.size() && x[j + 1] == '-' && x[j + 2] != ']') {
      auto lo = static_cast<unsigned char>(x[j]);
      auto hi = static_cast<unsigned char>(x[j + 2]);
      auto b = static_cast<unsigned char>(c);
      if (lo <= b && b <= hi) in = true;
      j += 3;
    } else {
      if (x[j] == c) in = true;
      ++j;
    }
  }
  *next = j + 1;
  return c != '/' && in != neg;
}

bool RefMatchAt(std::string_view x, size_t i, std::string_view s, size_t j) {
  if (i == x.size()) return j == s.size();
  char c = x[i];
  if (c == '*') {
    size_t k = i;
    while (k < x.size() && x[k] == '*') ++k;
    if (k - i == 1) {  // '*': a run within one segment
      for (size_t l = j;; ++l) {
        if (RefMatchAt(x, k, s, l)) return true;
        if (l == s.size() || s[l] == '/') return false;
      }
    }
    if (x[i - 1] == '/' && k < x.size() && x[k] == '/') {  // "**/": zero or more segments
      if (RefMatchAt(x, k + 1, s, j)) return true;
      for (size_t l = j; l < s.size();) {
        size_t e = s.find('/', l);
        if (e == std::string_view::npos || e == l) return false;
        if (RefMatchAt(x, k + 1, s, e + 1)) return true;
        l = e + 1;
      }
      return false;
    }
    for (size_t l = j; l <= s.size(); ++l) {  // other "**": any run
      if (RefMatchAt(x, k, s, l)) return true;
    }
    return false;
  }
  if (j >= s.size()) return false;
  if (c == '?') return s[j] != '/' && RefMatchAt(x, i + 1, s, j + 1);
  if (c == '[') {
    size_t next = 0;
    return RefClass(x, i, s[j], &next) && RefMatchAt(x, next, s, j + 1);
  }
  return c == s[j] && RefMatchAt(x, i + 1, s, j + 1);
}

bool RefGlob(std::string_view g, std::string_view path) {
  // A trailing "/**": the directory itself and everything beneath.
  bool tail = false;
  while (!g.empty()) {
    size_t slash = g.rfind('/');
    if (!StarRun(g.substr(slash + 1))) break;
    tail = true;
    g = g.substr(0, slash);
  }
  if (!g.empty() && RefMatchAt(g, 0, path, 0)) return true;
  if (!tail) return false;
  for (size_t cut = 0; cut < path.size(); ++cut) {
    if (path[cut] == '/' && (g.empty() ? cut == 0 : RefMatchAt(g, 0, path.substr(0, cut), 0))) {
      return true;
    }
  }
  return false;
}

bool RefMatch(std::string_view text, PatternType type, std::string_view path) {
  switch (type) {
    case PatternType::kFile:
      return path == text;
    case PatternType::kDirectory:
      return text == "/" || path == text ||
             (path.starts_with(text) && path.size() > text.size() && path[text.size()] == '/');
    case PatternType::kGlob:
      return RefGlob(text, path);
  }
  return false;
}

// ---- Reference ranking, §3.3. ----

struct RefRule {
  Rule rule;
  std::string text;  // normalized
};

bool IsWild(char c) { return c == '*' || c == '?' || c == '['; }

void Measure(const RefRule& r, bool* wild, size_t* prefix, size_t* literals) {
  *wild = false;
  *prefix = r.text.size();
  *literals = 0;
  if (r.rule.type != PatternType::kGlob) {
    *literals = r.text.size();
    return;
  }
  for (size_t i = 0; i < r.text.size(); ++i) {
    if (IsWild(r.text[i])) {
      if (!*wild) *prefix = i;
      *wild = true;
      if (r.text[i] == '[') {
        size_t next = 0;
        RefClass(r.text, i, 'a', &next);
        i = next - 1;
      }
    } else {
      ++*literals;
    }
  }
}

bool RefBetter(const std::vector<RefRule>& rules, size_t a, size_t b) {
  const Rule& x = rules[a].rule;
  const Rule& y = rules[b].rule;
  if (x.priority != y.priority) return x.priority > y.priority;
  auto type_rank = [](PatternType t) {
    return t == PatternType::kFile ? 2 : t == PatternType::kDirectory ? 1 : 0;
  };
  if (x.type != y.type) return type_rank(x.type) > type_rank(y.type);
  bool wa = false, wb = false;
  size_t pa = 0, pb = 0, la = 0, lb = 0;
  Measure(rules[a], &wa, &pa, &la);
  Measure(rules[b], &wb, &pb, &lb);
  if (wa != wb) return !wa;
  if (pa != pb) return pa > pb;
  if (la != lb) return la > lb;
  return a > b;
}

int RefDecide(const std::vector<RefRule>& rules, std::string_view path) {
  int best = -1;
  for (size_t i = 0; i < rules.size(); ++i) {
    if (!RefMatch(rules[i].text, rules[i].rule.type, path)) continue;
    if (best < 0 || RefBetter(rules, i, static_cast<size_t>(best))) best = static_cast<int>(i);
  }
  return best;
}

// ---- Random generation over a small alphabet, so that matches are frequent. ----

std::string RandomGlob(std::mt19937& rng) {
  static const char* kPieces[] = {"a",    "b",     "ab",   ".",    "x",   "/", "/",
                                  "*",    "*",     "**",   "**/",  "/**", "?", "[ab]",
                                  "[!a]", "[a-c]", "[^b]", "[]a]", "-"};
  std::uniform_int_distribution<int> len(1, 6);
  std::uniform_int_distribution<size_t> pick(0, std::size(kPieces) - 1);
  std::string g = rng() % 2 ? "/" : "";
  for (int i = len(rng); i > 0; --i) g += kPieces[pick(rng)];
  return g;
}

std::string RandomLiteral(std::mt19937& rng) {
  static const char* kSegs[] = {"a", "b", "ab", "x", "a.b"};
  std::uniform_int_distribution<int> depth(0, 3);
  std::string p;
  for (int i = depth(rng); i >= 0; --i) p += std::string("/") + kSegs[rng() % std::size(kSegs)];
  return p;
}

std::string RandomPath(std::mt19937& rng) {
  static const char* kSegs[] = {"a", "b", "ab", "ba", "x", "a.b", ".a", "c", "-", "]", "aab"};
  std::uniform_int_distribution<int> depth(0, 4);
  int d = depth(rng);
  if (d == 0) return "/";
  std::string p;
  for (int i = 0; i < d; ++i) p += std::string("/") + kSegs[rng() % std::size(kSegs)];
  return p;
}

RefRule RandomRule(std::mt19937& rng) {
  RefRule r;
  int kind = static_cast<int>(rng() % 8);
  r.rule.type = kind == 0   ? PatternType::kFile
                : kind == 1 ? PatternType::kDirectory
                            : PatternType::kGlob;
  r.rule.pattern = r.rule.type == PatternType::kGlob ? RandomGlob(rng) : RandomLiteral(rng);
  r.rule.level = static_cast<Level>(rng() % 5);  // every level, ask included
  r.rule.priority = static_cast<int32_t>(rng() % 3);
  return r;
}

TEST(PropertyTest, SingleGlobAgreesWithReference) {
  // NOLINTNEXTLINE(bugprone-random-generator-seed): a fixed seed makes a failure reproducible.
  std::mt19937 rng(20261127);
  int patterns = 0;
  int comparisons = 0;
  int matches = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    RefRule r = RandomRule(rng);
    r.rule.level = Level::kRead;
    auto norm = internal::NormalizePattern(r.rule.pattern, r.rule.type);
    if (!norm.ok()) continue;  // e.g. an unbalanced '[' built from "[]a]" pieces
    r.text = norm->text;
    Policy p = testing::MustCompile({r.rule});
    ++patterns;
    for (int k = 0; k < 25; ++k) {
      std::string path = RandomPath(rng);
      bool want = RefMatch(r.text, r.rule.type, path);
      bool got = p.LevelOf(path, false) == Level::kRead;
      matches += want;
      ++comparisons;
      ASSERT_EQ(got, want) << "pattern \"" << r.rule.pattern << "\" → \"" << r.text << "\" type "
                           << PatternTypeName(r.rule.type) << " path " << path;
    }
  }
  EXPECT_GT(patterns, 3000);
  EXPECT_GT(matches, comparisons / 20) << "the generator should produce matches often";
}

TEST(PropertyTest, RuleSetsAgreeWithReference) {
  // NOLINTNEXTLINE(bugprone-random-generator-seed): a fixed seed makes a failure reproducible.
  std::mt19937 rng(7);
  int comparisons = 0;
  int hidden = 0;
  for (int iter = 0; iter < 600; ++iter) {
    std::vector<RefRule> refs;
    std::vector<Rule> rules;
    int n = 1 + static_cast<int>(rng() % 12);
    while (static_cast<int>(refs.size()) < n) {
      RefRule r = RandomRule(rng);
      auto norm = internal::NormalizePattern(r.rule.pattern, r.rule.type);
      if (!norm.ok()) continue;
      r.text = norm->text;
      refs.push_back(r);
      rules.push_back(r.rule);
    }
    Policy p = testing::MustCompile(rules);
    std::vector<std::string> paths;
    paths.reserve(40);
    for (int k = 0; k < 40; ++k) paths.push_back(RandomPath(rng));
    for (const std::string& path : paths) {
      int want = RefDecide(refs, path);
      Decision d = p.Decide(path, false);
      ++comparisons;
      ASSERT_EQ(d.own_rule, want) << "path " << path << " rules " << n << " iter " << iter;
      // A path is reachable only through visible directories: hidden_ancestor exactly when some
      // proper ancestor (root included) is none as a directory.
      bool ancestor_none = false;
      if (path != "/") {
        // The root's floor shows it, but by its rules it hides what lies beneath.
        Decision root = p.Decide("/", true);
        ancestor_none = root.root_floor || root.level == Level::kNone;
        for (size_t i = 1; i < path.size(); ++i) {
          if (path[i] == '/') ancestor_none |= p.LevelOf(path.substr(0, i), true) == Level::kNone;
        }
      }
      ASSERT_EQ(d.hidden_ancestor, ancestor_none) << path;
      hidden += ancestor_none;
      if (!ancestor_none) {
        ASSERT_EQ(d.rule, want);
      }
      Level want_level = want < 0 ? Level::kNone : refs[static_cast<size_t>(want)].rule.level;
      ASSERT_EQ(d.level, ancestor_none ? Level::kNone : want_level);
      // Explain agrees: same winner, matches sorted by the reference order.
      Explanation e = p.Explain(path);
      ASSERT_EQ(e.matches.empty() ? -1 : e.matches[0].rule, want);
      for (size_t m = 1; m < e.matches.size(); ++m) {
        ASSERT_TRUE(RefBetter(refs, static_cast<size_t>(e.matches[m - 1].rule),
                              static_cast<size_t>(e.matches[m].rule)));
      }
    }
    // Ancestor visibility never hides a directory that leads to a visible path (§3.4): if some
    // path beneath D is matched by a rule ≥ view that outranks D's own rule, D is ≥ view.
    for (const std::string& dir : paths) {
      Decision dd = p.Decide(dir, true);
      if (dd.level != Level::kNone || dd.hidden_ancestor) continue;
      int own = RefDecide(refs, dir);
      std::string prefix = dir == "/" ? "/" : dir + "/";
      for (const std::string& below : paths) {
        if (below.size() <= prefix.size() || !below.starts_with(prefix)) continue;
        for (size_t r = 0; r < refs.size(); ++r) {
          if (refs[r].rule.level < Level::kView) continue;
          if (!RefMatch(refs[r].text, refs[r].rule.type, below)) continue;
          ASSERT_FALSE(own < 0 || RefBetter(refs, r, static_cast<size_t>(own)))
              << dir << " hidden although rule " << r << " shows " << below;
        }
      }
    }
  }
  EXPECT_GT(comparisons, 20000);
  EXPECT_GT(hidden, 100);
}

TEST(PropertyTest, UniformLevelBeneathIsNeverWrong) {
  // Whenever it claims a level, every sampled path beneath gets exactly that level.
  // NOLINTNEXTLINE(bugprone-random-generator-seed): a fixed seed makes a failure reproducible.
  std::mt19937 rng(99);
  int claims = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::vector<Rule> rules;
    int n = 1 + static_cast<int>(rng() % 5);
    while (static_cast<int>(rules.size()) < n) {
      RefRule r = RandomRule(rng);
      if (internal::NormalizePattern(r.rule.pattern, r.rule.type).ok()) rules.push_back(r.rule);
    }
    Policy p = testing::MustCompile(rules);
    for (int k = 0; k < 10; ++k) {
      std::string dir = RandomPath(rng);
      std::optional<Level> u = p.UniformLevelBeneath(dir);
      if (!u) continue;
      ++claims;
      std::string prefix = dir == "/" ? "" : dir;
      for (int m = 0; m < 30; ++m) {
        std::string rest = RandomPath(rng);
        if (rest == "/") continue;
        std::string below = prefix + rest;
        ASSERT_EQ(p.LevelOf(below, false), *u) << dir << " → " << below;
        ASSERT_EQ(p.LevelOf(below, true), *u) << dir << " → " << below << " (dir)";
      }
    }
  }
  EXPECT_GT(claims, 200);
}

TEST(PropertyTest, PathologicalPatternsStayLinear) {
  // Backtracking matchers take exponential time on these; the automaton reads each byte once.
  std::string many_stars = "/";
  for (int i = 0; i < 30; ++i) many_stars += "**a";
  many_stars += "**b";
  std::string star_segments = "/";
  for (int i = 0; i < 30; ++i) star_segments += "*a*a*a/";
  star_segments += "**/z";
  std::vector<Rule> rules = {
      Rule{many_stars, PatternType::kGlob, Level::kRead, 0},
      Rule{star_segments, PatternType::kGlob, Level::kWrite, 0},
      Rule{"/**/**/**/**/**/**/**/**/x", PatternType::kGlob, Level::kView, 0}};
  Policy p = testing::MustCompile(rules);
  std::string path = "/" + std::string(4000, 'a');
  std::string deep;
  for (int i = 0; i < 800; ++i) deep += "/aaaa";
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(p.LevelOf(path, false), Level::kNone);
    EXPECT_EQ(p.LevelOf(path + "b", false), Level::kRead);
    EXPECT_EQ(p.LevelOf(deep, true), Level::kView);
    EXPECT_EQ(p.LevelOf(deep + "/x", false), Level::kView);
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  // 80 decisions over ~4 KB paths: microseconds each when linear; generous for sanitizer builds.
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST(PropertyTest, MaxRulesDecideQuickly) {
  std::vector<Rule> rules;
  for (size_t i = 0; i < kMaxRules; ++i) {
    std::string k = std::to_string(i);
    rules.push_back(Rule{i % 2 ? "/d" + k + "/**" : "**/*.e" + k, PatternType::kGlob,
                         static_cast<Level>(i % 4), static_cast<int32_t>(i % 3)});
  }
  Policy p = testing::MustCompile(rules);
  EXPECT_EQ(p.Decide("/d9999/x", false).rule, 9999);
  EXPECT_EQ(p.Decide("/q/r/s.e9998", false).rule, 9998);
  EXPECT_EQ(p.Decide("/q/r/s.e9997", false).rule, -1);
  EXPECT_EQ(p.Decide("/d9999", true).level, static_cast<Level>(9999 % 4));
}

TEST(PropertyTest, CacheFullFallbackAgrees) {
  // A LazyDfa with no budget caches only its start state; every walk runs the NFA directly.
  // NOLINTNEXTLINE(bugprone-random-generator-seed): a fixed seed makes a failure reproducible.
  std::mt19937 rng(3);
  for (int iter = 0; iter < 200; ++iter) {
    std::vector<internal::NormalizedPattern> pats;
    std::vector<PatternType> types;
    std::vector<Level> levels;
    while (pats.size() < 8) {
      RefRule r = RandomRule(rng);
      auto norm = internal::NormalizePattern(r.rule.pattern, r.rule.type);
      if (!norm.ok()) continue;
      pats.push_back(*norm);
      types.push_back(r.rule.type);
      levels.push_back(r.rule.level);
    }
    std::vector<uint32_t> rank(pats.size());
    for (uint32_t i = 0; i < rank.size(); ++i) rank[i] = i;
    internal::Nfa nfa = internal::BuildNfa(pats, types);
    internal::LazyDfa big(&nfa, &rank, &levels, 1 << 20);
    internal::LazyDfa none(&nfa, &rank, &levels, 0);
    for (int k = 0; k < 50; ++k) {
      std::string path = RandomPath(rng);
      auto a = big.Run(path, true);
      auto b = none.Run(path, true);
      ASSERT_EQ(a.at.best_accept, b.at.best_accept) << path;
      ASSERT_EQ(a.at.best_visible_live, b.at.best_visible_live) << path;
      ASSERT_EQ(a.beneath.best_accept, b.beneath.best_accept) << path;
      ASSERT_EQ(a.beneath.best_visible_live, b.beneath.best_visible_live) << path;
    }
    EXPECT_EQ(none.CachedStates(), 1u);
  }
}

TEST(PropertyTest, ConcurrentDecisionsAreConsistent) {
  auto rules = PresetRules("agent-safe");
  ASSERT_TRUE(rules.ok());
  for (const char* s : {"/src/**/*.py=write@20", "**/node_modules/**=none@30", "/docs/**.md=read",
                        "/a/[a-c]*/x=view@40"}) {
    rules->push_back(testing::R(s));
  }
  // NOLINTNEXTLINE(bugprone-random-generator-seed): a fixed seed makes a failure reproducible.
  std::mt19937 rng(11);
  std::vector<std::string> paths;
  for (int i = 0; i < 2000; ++i) {
    static const char* kSegs[] = {
        "src",          "a",     "b",      "x",   ".env", "secrets", "docs", "r.md",
        "node_modules", "k.pem", "output", "tmp", "c.py", ".git"};
    std::string p;
    for (int d = 1 + static_cast<int>(rng() % 6); d > 0; --d) {
      p += std::string("/") + kSegs[rng() % std::size(kSegs)];
    }
    paths.push_back(p);
  }
  // Expected answers from a separate policy, computed single-threaded.
  Policy reference = testing::MustCompile(*rules);
  std::vector<Decision> want;
  want.reserve(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) want.push_back(reference.Decide(paths[i], i % 2 == 0));
  Policy shared = testing::MustCompile(*rules);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        for (size_t i = 0; i < paths.size(); ++i) {
          size_t k = (i * 7 + static_cast<size_t>(t) * 131) % paths.size();
          Decision d = shared.Decide(paths[k], k % 2 == 0);
          if (d.level != want[k].level || d.rule != want[k].rule) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace agentfense::policy
