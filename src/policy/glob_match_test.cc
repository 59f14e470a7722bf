// Table of single-rule decisions: does the pattern of §3.2 match this path? Each case compiles one
// `read` rule and checks the level of the path as a file (read when it matches, none otherwise).
#include <gtest/gtest.h>

#include "policy/glob.h"
#include "policy/policy_test_util.h"

namespace agentfense::policy {
namespace {

using testing::MustCompile;

struct MatchCase {
  const char* pattern;
  PatternType type;
  const char* path;
  bool match;
};

constexpr PatternType G = PatternType::kGlob;
constexpr PatternType D = PatternType::kDirectory;
constexpr PatternType F = PatternType::kFile;

const MatchCase kCases[] = {
    // Anchoring: no leading '/' means anchored at the root.
    {"*.md", G, "/README.md", true},
    {"*.md", G, "/docs/README.md", false},
    {"*.md", G, "/.md", true},
    {"*.md", G, "/README.mdx", false},
    {"/*.md", G, "/a.md", true},
    {".env", G, "/.env", true},
    {".env", G, "/x/.env", false},
    {".env", G, "/.env.local", false},
    {"output/*", G, "/output/a", true},
    {"output/*", G, "/output/a/b", false},
    {"output/*", G, "/output", false},
    {"output/*", G, "/outputs/a", false},
    {"src/app.py", G, "/src/app.py", true},
    {"src/app.py", G, "/src/app.pyc", false},
    {"src/app.py", G, "/x/src/app.py", false},
    // "//" and "." collapse; a trailing '/' is dropped.
    {"//src//./app.py", G, "/src/app.py", true},
    {"./src/", G, "/src", true},
    {"src/", G, "/src/a", false},
    {"/", G, "/", true},
    {"/", G, "/a", false},
    // '**/' = zero or more whole segments.
    {"**/*.py", G, "/a.py", true},
    {"**/*.py", G, "/x/a.py", true},
    {"**/*.py", G, "/x/y/z/a.py", true},
    {"**/*.py", G, "/x/a.pyc", false},
    {"**/*.py", G, "/x.py/a", false},
    {"**/*.py", G, "/.py", true},
    {"/src/**/test_*.py", G, "/src/test_a.py", true},
    {"/src/**/test_*.py", G, "/src/a/b/test_a.py", true},
    {"/src/**/test_*.py", G, "/lib/test_a.py", false},
    {"/src/**/test_*.py", G, "/src/a/xtest_a.py", false},
    {"**/secrets/**", G, "/secrets", true},
    {"**/secrets/**", G, "/secrets/k", true},
    {"**/secrets/**", G, "/a/b/secrets/c/d", true},
    {"**/secrets/**", G, "/a/secretsx/c", false},
    {"**/secrets/**", G, "/a/xsecrets", false},
    {"**/.git/**", G, "/pkg/.git/objects/x", true},
    {"**/.git/**", G, "/.git", true},
    {"**/.git/**", G, "/.gitignore", false},
    {"/a/**/b/**/c", G, "/a/b/c", true},
    {"/a/**/b/**/c", G, "/a/x/b/y/z/c", true},
    {"/a/**/b/**/c", G, "/a/x/y/c", false},
    {"/a/**/**/b", G, "/a/b", true},
    {"/a/**/**/b", G, "/a/x/y/b", true},
    {"**/**/x", G, "/x", true},
    {"**/**/x", G, "/p/q/x", true},
    // Trailing '/**' = the directory itself and everything beneath.
    {"/secrets/**", G, "/secrets", true},
    {"/secrets/**", G, "/secrets/a", true},
    {"/secrets/**", G, "/secrets/a/b/c", true},
    {"/secrets/**", G, "/secretsx", false},
    {"/secrets/**", G, "/x/secrets", false},
    {"/output/**", G, "/output/r.txt", true},
    {"/a/**/**", G, "/a", true},
    {"/a/**/**", G, "/a/b/c", true},
    {"**", G, "/", true},
    {"**", G, "/anything/at/all", true},
    {"/**", G, "/x", true},
    // Any other '**' crosses '/'.
    {"/docs/**.md", G, "/docs/a.md", true},
    {"/docs/**.md", G, "/docs/x/y/a.md", true},
    {"/docs/**.md", G, "/docs/a.txt", false},
    {"/docs/**.md", G, "/docsa.md", false},
    {"/a**", G, "/a", true},
    {"/a**", G, "/ab/c", true},
    {"/a**", G, "/b/a", false},
    {"/x/**y", G, "/x/a/b/y", true},
    {"/x/**y", G, "/x/y", true},
    {"/x/***/y", G, "/x/y", true},
    {"/x/***/y", G, "/x/a/b/y", true},
    // '*' stays inside one segment.
    {"/*", G, "/a", true},
    {"/*", G, "/a/b", false},
    {"/*/b", G, "/a/b", true},
    {"/*/b", G, "/a/c/b", false},
    {"/a*b", G, "/ab", true},
    {"/a*b", G, "/axxb", true},
    {"/a*b", G, "/ax/b", false},
    {"/*.tar.gz", G, "/x.tar.gz", true},
    {"/*.*", G, "/noext", false},
    {"**/*", G, "/a", true},
    {"**/*", G, "/a/b/c", true},
    // '?' is one byte other than '/'.
    {"/?", G, "/a", true},
    {"/?", G, "/ab", false},
    {"/a?c", G, "/abc", true},
    {"/a?c", G, "/a/c", false},
    {"/??", G, "/é", true},  // byte-wise: é is two bytes
    // Classes.
    {"/[abc].txt", G, "/b.txt", true},
    {"/[abc].txt", G, "/d.txt", false},
    {"/[a-z]", G, "/q", true},
    {"/[a-z]", G, "/Q", false},
    {"/[!x]", G, "/y", true},
    {"/[!x]", G, "/x", false},
    {"/[^x]", G, "/y", true},
    {"/[^x]", G, "/x", false},
    {"/a[!x]b", G, "/a/b", false},  // negated classes never match '/'
    {"/[]]", G, "/]", true},
    {"/[!]]", G, "/a", true},
    {"/[!]]", G, "/]", false},
    {"/[a-]", G, "/-", true},
    {"/[-a]", G, "/-", true},
    {"/[0-9][0-9]", G, "/42", true},
    {"/[0-9][0-9]", G, "/4a", false},
    {"/log[0-9]*.txt", G, "/log1.txt", true},
    {"/log[0-9]*.txt", G, "/log.txt", false},
    // Case-sensitive, byte-wise; dotfiles are ordinary names.
    {"/README.md", G, "/readme.md", false},
    {"/*.MD", G, "/a.md", false},
    {"/*", G, "/.hidden", true},
    {"**/.env*", G, "/x/.env.local", true},
    {"**/.env*", G, "/.env", true},
    {"**/.env*", G, "/x/env", false},
    {"/.*", G, "/.bashrc", true},
    // Names with spaces, '#', unicode, '=', '@'.
    {"/my docs/*", G, "/my docs/a b.txt", true},
    {"/my docs/*", G, "/my/docs/a", false},
    {"/#notes#", G, "/#notes#", true},
    {"/données/*.csv", G, "/données/été.csv", true},
    {"/données/*.csv", G, "/donnees/x.csv", false},
    {"/日本/**", G, "/日本/語", true},
    {"/a=b@c", G, "/a=b@c", true},
    // Type file: the exact path, wildcards are literal.
    {"/src/app.py", F, "/src/app.py", true},
    {"/src/app.py", F, "/src/app.py/x", false},
    {"src/app.py", F, "/src/app.py", true},
    {"/data[1].csv", F, "/data[1].csv", true},
    {"/data[1].csv", F, "/data1.csv", false},
    {"/*.md", F, "/a.md", false},
    {"/*.md", F, "/*.md", true},
    // Type directory: the path and everything beneath.
    {"/src", D, "/src", true},
    {"/src", D, "/src/a/b.py", true},
    {"/src", D, "/srcx", false},
    {"/src", D, "/x/src", false},
    {"src/", D, "/src/a", true},
    {"/", D, "/", true},
    {"/", D, "/any/thing", true},
    {"/a*", D, "/a*/x", true},
    {"/a*", D, "/ab/x", false},
};

TEST(GlobMatchTest, Table) {
  for (const MatchCase& c : kCases) {
    Policy p = MustCompile({Rule{c.pattern, c.type, Level::kRead, 0}});
    Level want = c.match ? Level::kRead : Level::kNone;
    EXPECT_EQ(p.LevelOf(c.path, /*is_dir=*/false), want)
        << "pattern " << c.pattern << " (" << PatternTypeName(c.type) << ") path " << c.path;
    // The explanation lists the rule exactly when it matches.
    Explanation e = p.Explain(c.path);
    EXPECT_EQ(e.matches.size(), c.match ? 1u : 0u) << c.pattern << " " << c.path;
  }
}

TEST(GlobMatchTest, AllRulesAtOnceAgreeWithOneAtATime) {
  // The same table, but every pattern in one policy: each rule's match must be unaffected by the
  // others sharing the automaton.
  std::vector<Rule> rules;
  for (const MatchCase& c : kCases) rules.push_back(Rule{c.pattern, c.type, Level::kRead, 0});
  Policy p = MustCompile(rules);
  for (size_t i = 0; i < std::size(kCases); ++i) {
    const MatchCase& c = kCases[i];
    Explanation e = p.Explain(c.path);
    bool found = false;
    for (const RuleMatch& m : e.matches) found = found || m.rule == static_cast<int>(i);
    EXPECT_EQ(found, c.match) << c.pattern << " " << c.path;
  }
}

TEST(GlobMatchTest, NormalizedMeasures) {
  struct Measure {
    const char* pattern;
    PatternType type;
    const char* text;
    bool wildcard;
    size_t prefix;
    size_t literals;
  };
  const Measure kMeasures[] = {
      {"*.md", G, "/*.md", true, 1, 4},
      {"src//./a/", G, "/src/a", false, 6, 6},
      {"/src/**/*.py", G, "/src/**/*.py", true, 5, 9},
      {"/a[bc]d", G, "/a[bc]d", true, 2, 3},
      {"/a[b", F, "/a[b", false, 4, 4},
      {".", D, "/", false, 1, 1},
  };
  for (const Measure& m : kMeasures) {
    auto n = internal::NormalizePattern(m.pattern, m.type);
    ASSERT_TRUE(n.ok()) << m.pattern;
    EXPECT_EQ(n->text, m.text);
    EXPECT_EQ(n->has_wildcard, m.wildcard) << m.pattern;
    EXPECT_EQ(n->literal_prefix, m.prefix) << m.pattern;
    EXPECT_EQ(n->literal_count, m.literals) << m.pattern;
  }
}

}  // namespace
}  // namespace agentfense::policy
