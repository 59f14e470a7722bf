// Decisions over rule sets: precedence (§3.3), ancestor visibility (§3.4), the SPEC examples.
#include <gtest/gtest.h>

#include "policy/policy_test_util.h"

namespace agentfense::policy {
namespace {

using testing::MustCompile;
using testing::MustPreset;
using testing::Rules;

constexpr Level N = Level::kNone;
constexpr Level V = Level::kView;
constexpr Level Rd = Level::kRead;
constexpr Level W = Level::kWrite;
constexpr Level A = Level::kAsk;

struct DecisionCase {
  const char* name;
  std::vector<const char*> rules;  // testing::R syntax
  const char* path;
  bool is_dir;
  Level level;
  int rule;  // expected deciding rule (Decision::rule); -2 = do not check
};

std::vector<DecisionCase> Cases() {
  return {
      // §3.3 (1) priority.
      {"priority beats order", {"/a=write@5", "/a=read@1"}, "/a", false, W, 0},
      {"priority beats type", {"file:/a=read@0", "/a=write@1"}, "/a", false, W, 1},
      {"priority beats specificity", {"**=write@1", "/a/b.txt=none@0"}, "/a/b.txt", false, W, 0},
      {"negative priority loses", {"**=read@-1", "/*=write"}, "/x", false, W, 1},
      // (2) type file > directory > glob at equal priority.
      {"file beats directory", {"file:/a/b=read", "dir:/a=write"}, "/a/b", false, Rd, 0},
      {"file beats glob", {"/a/b=write", "file:/a/b=view"}, "/a/b", false, V, 1},
      {"directory beats glob", {"dir:/a=view", "/a/**=write"}, "/a/x", false, V, 0},
      {"directory beats exact glob", {"/a/x=write", "dir:/a=read"}, "/a/x", false, Rd, 1},
      // (3a) wildcard-free beats any wildcard.
      {"literal beats wildcard", {"/a/b.txt=read", "/a/*.txt=write"}, "/a/b.txt", false, Rd, 0},
      {"literal beats longer-prefix wildcard", {"/a=read", "/a**=write"}, "/a", false, Rd, 0},
      // (3b) longer literal prefix.
      {"longer prefix", {"/src/**=write", "**/*.py=read"}, "/src/a.py", false, W, 0},
      {"longer prefix either order", {"**/*.py=read", "/src/**=write"}, "/src/a.py", false, W, 1},
      {"prefix /src/a* vs /src/*", {"/src/a*=read", "/src/*=write"}, "/src/ab", false, Rd, 0},
      // (3c) more literal characters.
      {"more literals", {"/*/x/y/z=read", "/*/**=write"}, "/a/x/y/z", false, Rd, 0},
      {"more literals reversed", {"/*/**=write", "/*/x/y/z=read"}, "/a/x/y/z", false, Rd, 1},
      {"more literals class", {"/*.[ch]=read", "/*=write"}, "/a.c", false, Rd, 0},
      // (4) later rule wins a full tie.
      {"later wins", {"/a/*=read", "/a/*=write"}, "/a/b", false, W, 1},
      {"later wins 3", {"/a/?=read", "/a/*=view", "/a/*=none"}, "/a/b", false, N, 2},
      {"later wins files", {"file:/f=read", "file:/f=write"}, "/f", false, W, 1},
      // `ask` is one more level, decided like the others; it ranks between view and read.
      {"ask decides", {"**/*=read", "**/.env*=ask@10"}, "/app/.env", false, A, 1},
      {"ask loses to priority", {"/x/**=ask", "/x/y=none@5"}, "/x/y", false, N, 1},
      {"ask makes ancestors visible", {"/secrets/**=none@1", "/secrets/k=ask@2"}, "/secrets", true,
       V, 1},
      // Unmatched → none, rule -1.
      {"no rules", {}, "/a", false, N, -1},
      {"unmatched", {"/a=read"}, "/b", false, N, -1},
      // §3.4: ancestors of visible paths.
      {"secrets dir view via public.key",
       {"/secrets/**=none@100", "/secrets/public.key=read@200"},
       "/secrets",
       true,
       V,
       1},
      {"secrets public.key read",
       {"/secrets/**=none@100", "/secrets/public.key=read@200"},
       "/secrets/public.key",
       false,
       Rd,
       1},
      {"secrets other file hidden",
       {"/secrets/**=none@100", "/secrets/public.key=read@200"},
       "/secrets/private.key",
       false,
       N,
       0},
      {"secrets subdir hidden",
       {"/secrets/**=none@100", "/secrets/public.key=read@200"},
       "/secrets/sub",
       true,
       N,
       0},
      {"secrets as a file is none",
       {"/secrets/**=none@100", "/secrets/public.key=read@200"},
       "/secrets",
       false,
       N,
       0},
      {"py anywhere: root traversable", {"**/*.py=read"}, "/", true, V, 0},
      {"py anywhere: dir traversable", {"**/*.py=read"}, "/a", true, V, 0},
      {"py anywhere: deep dir traversable", {"**/*.py=read"}, "/a/b/c", true, V, 0},
      {"py anywhere: py file", {"**/*.py=read"}, "/a/b/c/x.py", false, Rd, 0},
      {"py anywhere: other file", {"**/*.py=read"}, "/a/b/c/x.txt", false, N, -1},
      {"py anywhere: top py", {"**/*.py=read"}, "/x.py", false, Rd, 0},
      {"private invisible", {"**/*=read", "/private/**=none"}, "/private", true, N, 1},
      {"private child invisible", {"**/*=read", "/private/**=none"}, "/private/a", true, N, 1},
      {"private sibling visible", {"**/*=read", "/private/**=none"}, "/public", true, Rd, 0},
      {"visibility needs outranking", {"/a/**=none@10", "/a/b/c=read@5"}, "/a", true, N, 0},
      {"visibility needs outranking deep", {"/a/**=none@10", "/a/b/c=read@5"}, "/a/b", true, N, 0},
      {"visibility at equal rank by specificity", {"/a/**=none", "/a/b/c=read"}, "/a", true, V, 1},
      {"visibility intermediate", {"/a/**=none", "/a/b/c=read"}, "/a/b", true, V, 1},
      {"visibility not for unrelated dir", {"/a/**=none", "/a/b/c=read"}, "/a/x", true, N, 0},
      {"visibility through view rule", {"/d/**=none@1", "/d/x/**=view@2"}, "/d", true, V, 1},
      {"visibility ignores none rules", {"/d/x/y=none@9"}, "/d", true, N, -1},
      {"directory level kept when visible", {"/d/**=read", "/d/x=write"}, "/d", true, Rd, 0},
      {"file does not get ancestor view", {"/a/b=read"}, "/a", false, N, -1},
      {"dir gets ancestor view", {"/a/b=read"}, "/a", true, V, 0},
      {"root gets ancestor view", {"/a/b=read"}, "/", true, V, 0},
      {"no view for the matched path itself", {"/a/b=read"}, "/a/b", true, Rd, 0},
      {"no view beneath a leaf", {"/a/b=read"}, "/a/b/c", true, N, -1},
      {"no view for a sibling prefix", {"/a/bc=read"}, "/a/b", true, N, -1},
      {"type file gives view to parent", {"file:/a/b/c=read"}, "/a/b", true, V, 0},
      {"type dir gives view to parent", {"dir:/a/b=write"}, "/a", true, V, 0},
      {"trailing ** dir rule decides itself", {"/a/**=write"}, "/a", true, W, 0},
      {"class beneath", {"/a/[xy]=read"}, "/a", true, V, 0},
      // The root as a directory is at least view whatever its rules (its floor); the rule that
      // decided its own level is still reported.
      {"star beneath root", {"/*=read@0", "/=none@5"}, "/", true, V, 1},
      {"root floor without rules", {}, "/", true, V, -1},
      {"nothing beneath a floored root", {"/a=read@0", "/**=none@5"}, "/a", false, N, 1},
      // A path beneath an invisible directory is none whatever its own rules say.
      {"hidden ancestor: exact glob hides dir",
       {"**/*=read", "/build=none@10"},
       "/build/x",
       false,
       N,
       1},
      {"hidden ancestor as dir", {"**/*=read", "/build=none@10"}, "/build/x", true, N, 1},
      {"hidden ancestor itself", {"**/*=read", "/build=none@10"}, "/build", true, N, 1},
      {"hidden ancestor sibling", {"**/*=read", "/build=none@10"}, "/buildx/y", false, Rd, 0},
      {"file rule hides subtree", {"**/*=read", "file:/a=none"}, "/a/b/c", false, N, 1},
      {"hidden deep ancestor", {"**/*=write", "/a/b=none@3"}, "/a/b/c/d", false, N, 1},
      {"hidden root hides all", {"/=none@100", "/a=read"}, "/a", false, N, 0},
      {"unmatched root rescued", {"/a=read"}, "/a", false, Rd, 0},
      {"no rules, deep", {}, "/a/b", false, N, -1},
      {"rescued ancestor is not hiding",
       {"/s/**=none@1", "/s/k/**=read@2"},
       "/s/k/x",
       false,
       Rd,
       1},
      {"lower-ranked child stays hidden", {"/a=none@5", "/a/b=read@1"}, "/a/b", false, N, 0},
      {"higher-ranked child shows", {"/a=none@5", "/a/b=read@6"}, "/a/b", false, Rd, 1},
      {"higher-ranked child's parent is view", {"/a=none@5", "/a/b=read@6"}, "/a", true, V, 1},
      // The worked example of docs/PERMISSIONS.md.
      {"doc README",
       {"**/*=read", "/src/**=write", "**/*.py=view@5", "/src/main.py=none@5"},
       "/README.md",
       false,
       Rd,
       0},
      {"doc util.c",
       {"**/*=read", "/src/**=write", "**/*.py=view@5", "/src/main.py=none@5"},
       "/src/util.c",
       false,
       W,
       1},
      {"doc util.py",
       {"**/*=read", "/src/**=write", "**/*.py=view@5", "/src/main.py=none@5"},
       "/src/util.py",
       false,
       V,
       2},
      {"doc main.py",
       {"**/*=read", "/src/**=write", "**/*.py=view@5", "/src/main.py=none@5"},
       "/src/main.py",
       false,
       N,
       3},
      // Spec §3.1 examples.
      {"*.md top level", {"*.md=read"}, "/a.md", false, Rd, 0},
      {"*.md not nested", {"*.md=read"}, "/d/a.md", false, N, -1},
      {".env anchored", {"**/*=read", ".env=none"}, "/.env", false, N, 1},
      {".env only at root", {"**/*=read", ".env=none"}, "/x/.env", false, Rd, 0},
      {"output/* write", {"**/*=read", "output/*=write"}, "/output/a", false, W, 1},
      {"output/* not deeper", {"**/*=read", "output/*=write"}, "/output/a/b", false, Rd, 0},
      {"output/* not itself", {"**/*=read", "output/*=write"}, "/output", true, Rd, 0},
      // Seed README example.
      {"readme docs",
       {"**/*=read", "/docs/**=write", "/metadata/**=view", "/secrets/**=none"},
       "/docs/x.md",
       false,
       W,
       1},
      {"readme metadata",
       {"**/*=read", "/docs/**=write", "/metadata/**=view", "/secrets/**=none"},
       "/metadata/a",
       false,
       V,
       2},
      {"readme secrets dir",
       {"**/*=read", "/docs/**=write", "/metadata/**=view", "/secrets/**=none"},
       "/secrets",
       true,
       N,
       3},
      {"readme other",
       {"**/*=read", "/docs/**=write", "/metadata/**=view", "/secrets/**=none"},
       "/src/main.py",
       false,
       Rd,
       0},
  };
}

TEST(DecisionTest, Table) {
  for (const DecisionCase& c : Cases()) {
    std::vector<Rule> rules;
    rules.reserve(c.rules.size());
    for (const char* s : c.rules) rules.push_back(testing::R(s));
    Policy p = MustCompile(rules);
    Decision d = p.Decide(c.path, c.is_dir);
    EXPECT_EQ(d.level, c.level) << c.name << ": got " << LevelName(d.level);
    if (c.rule != -2) {
      EXPECT_EQ(d.rule, c.rule) << c.name;
    }
    if (d.via_descendant) {
      EXPECT_TRUE(c.is_dir) << c.name;
      EXPECT_EQ(d.level, Level::kView) << c.name;
    }
  }
}

TEST(DecisionTest, ViaDescendantFields) {
  Policy p = MustCompile(Rules({"/secrets/**=none@100", "/secrets/public.key=read@200"}));
  Decision d = p.Decide("/secrets", true);
  EXPECT_TRUE(d.via_descendant);
  EXPECT_EQ(d.rule, 1);
  EXPECT_EQ(d.own_rule, 0);
  Decision f = p.Decide("/secrets", false);
  EXPECT_FALSE(f.via_descendant);
  EXPECT_EQ(f.rule, 0);
  EXPECT_FALSE(d.hidden_ancestor);
  Decision hidden = p.Decide("/secrets/sub/x", false);
  EXPECT_TRUE(hidden.hidden_ancestor);
  EXPECT_EQ(hidden.level, Level::kNone);
  EXPECT_EQ(hidden.rule, 0);
  EXPECT_EQ(hidden.own_rule, 0);
  Decision own_read = MustCompile(Rules({"**/*=read", "/b=none@1"})).Decide("/b/c", false);
  EXPECT_TRUE(own_read.hidden_ancestor);
  EXPECT_EQ(own_read.rule, 1);
  EXPECT_EQ(own_read.own_rule, 0);
  Decision none = MustCompile(Rules({"/a/b=read"})).Decide("/a", true);
  EXPECT_TRUE(none.via_descendant);
  EXPECT_EQ(none.own_rule, -1);
}

TEST(DecisionTest, NonNormalizedPathFailsClosed) {
  Policy p = MustPreset("full-access");
  EXPECT_EQ(p.LevelOf("", false), Level::kNone);
  EXPECT_EQ(p.LevelOf("relative", false), Level::kNone);
  EXPECT_EQ(p.LevelOf("/ok", false), Level::kWrite);
}

TEST(DecisionTest, ExplainWinnerAndReasons) {
  Policy p = MustPreset("agent-safe");
  Explanation e = p.Explain("/output/.env");
  ASSERT_GE(e.matches.size(), 3u);
  EXPECT_TRUE(e.matches[0].winner);
  EXPECT_FALSE(e.matches[1].winner);
  EXPECT_EQ(p.rules()[e.matches[0].rule].pattern, "**/.env*");
  EXPECT_EQ(p.rules()[e.matches[1].rule].pattern, "/output/**");
  EXPECT_EQ(p.rules()[e.matches[2].rule].pattern, "**/*");
  EXPECT_EQ(e.reason,
            "rule #3 \"**/.env*\" (glob, none, priority 100) decides \"/output/.env\" (none): it "
            "beats rule #1 \"/output/**\" (glob, write, priority 10) because it has the higher "
            "priority (100 > 10).");
  EXPECT_EQ(e.as_file.level, Level::kNone);

  struct ReasonCase {
    std::vector<const char*> rules;
    const char* path;
    const char* needle;
  };
  const ReasonCase kReasons[] = {
      {{}, "/a", "No rule matches"},
      {{"/a=read"}, "/a", "Only rule #0"},
      {{"/a=read", "file:/a=write"}, "/a", "its type ranks higher (file > glob"},
      {{"/a/*=read", "/a/b=write"}, "/a/b", "it has no wildcard"},
      {{"**/*.py=read", "/src/**=write"}, "/src/a.py", "literal prefix is longer (5 > 1"},
      {{"/*/**=write", "/*/x/y=read"}, "/a/x/y", "more literal characters (5 > 2)"},
      {{"/a/*=read", "/a/*=write"}, "/a/b", "listed later (#1 after #0)"},
      {{"/s/**=none@1", "/s/k=read@2"}, "/s", "As a directory it is view"},
      {{"**/*=read", "/build=none@10"}, "/build/x", "ancestor directory \"/build\" is invisible"},
      {{"/=none@1", "/a=read"}, "/a/b", "ancestor directory \"/\" is invisible"},
  };
  for (const ReasonCase& c : kReasons) {
    std::vector<Rule> rules;
    rules.reserve(c.rules.size());
    for (const char* s : c.rules) rules.push_back(testing::R(s));
    Explanation x = MustCompile(rules).Explain(c.path);
    EXPECT_NE(x.reason.find(c.needle), std::string::npos) << x.reason;
  }
}

TEST(DecisionTest, ExplainListsEveryMatchBestFirst) {
  Policy p = MustCompile(
      Rules({"**=view", "/a/**=read@1", "/a/b/*=write@1", "file:/a/b/c=none@1", "/z=write@9"}));
  Explanation e = p.Explain("/a/b/c");
  ASSERT_EQ(e.matches.size(), 4u);
  EXPECT_EQ(e.matches[0].rule, 3);
  EXPECT_EQ(e.matches[1].rule, 2);
  EXPECT_EQ(e.matches[2].rule, 1);
  EXPECT_EQ(e.matches[3].rule, 0);
  EXPECT_EQ(e.as_file.level, Level::kNone);
  EXPECT_EQ(e.as_directory.level, Level::kNone);
  EXPECT_EQ(e.path, "/a/b/c");
}

}  // namespace
}  // namespace agentfense::policy
