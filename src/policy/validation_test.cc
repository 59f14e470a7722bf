// Bad input: every rejection names the rule and the reason; nothing crashes or is ignored.
#include <gtest/gtest.h>

#include "policy/policy_test_util.h"

namespace agentfense::policy {
namespace {

using testing::MustCompile;

struct BadRule {
  std::string pattern;
  PatternType type;
  const char* reason;  // substring of the error message
};

TEST(ValidationTest, BadPatternsAreRejectedWithIndexAndReason) {
  const BadRule kBad[] = {
      {"", PatternType::kGlob, "pattern is empty"},
      {"", PatternType::kFile, "pattern is empty"},
      {"/a/../b", PatternType::kGlob, "'..' segment"},
      {"..", PatternType::kGlob, "'..' segment"},
      {"a/..", PatternType::kDirectory, "'..' segment"},
      {"../etc/**", PatternType::kFile, "'..' segment"},
      {std::string("/a\0b", 4), PatternType::kGlob, "NUL"},
      {std::string("/a\0", 3), PatternType::kDirectory, "NUL"},
      {"/a[bc", PatternType::kGlob, "unbalanced '['"},
      {"[", PatternType::kGlob, "unbalanced '['"},
      {"/a[b/c]", PatternType::kGlob, "unbalanced '['"},
      {"/[]", PatternType::kGlob, "unbalanced '['"},
      {"/[!]", PatternType::kGlob, "unbalanced '['"},
      {"/[z-a]", PatternType::kGlob, "reversed range"},
      {"/[/]", PatternType::kGlob, "unbalanced '['"},
      {std::string(4097, 'a'), PatternType::kGlob, "over the limit of 4096"},
      {"/" + std::string(4096, 'b'), PatternType::kFile, "over the limit of 4096"},
  };
  for (const BadRule& b : kBad) {
    std::vector<Rule> rules = {Rule{"**/*", PatternType::kGlob, Level::kRead, 0},
                               Rule{"/ok", PatternType::kGlob, Level::kRead, 0},
                               Rule{b.pattern, b.type, Level::kRead, 0}};
    auto p = Policy::Compile(rules);
    ASSERT_FALSE(p.ok()) << b.reason;
    EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
    const std::string& msg = p.error().message();
    EXPECT_EQ(msg.rfind("rule 2 ", 0), 0u) << msg;
    EXPECT_NE(msg.find(b.reason), std::string::npos) << msg;
    EXPECT_LT(msg.size(), 400u) << "the message must not echo a huge pattern";
  }
}

TEST(ValidationTest, LimitsAreExact) {
  EXPECT_TRUE(
      Policy::Compile({Rule{std::string(4096, 'a'), PatternType::kGlob, Level::kRead, 0}}).ok());
  std::vector<Rule> many(kMaxRules, Rule{"/a", PatternType::kGlob, Level::kRead, 0});
  EXPECT_TRUE(Policy::Compile(many).ok());
  many.push_back(many.back());
  auto p = Policy::Compile(many);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(p.error().message().find("10001 rules"), std::string::npos) << p.error().message();

  // 300 rules of 4000 bytes exceed the 1 MiB total.
  std::vector<Rule> big(300,
                        Rule{"/" + std::string(3999, 'x'), PatternType::kGlob, Level::kRead, 0});
  auto q = Policy::Compile(big);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.error().message().find("add up to more than"), std::string::npos);
}

TEST(ValidationTest, OutOfRangeEnums) {
  auto bad_level = Policy::Compile({Rule{"/a", PatternType::kGlob, static_cast<Level>(7), 0}});
  ASSERT_FALSE(bad_level.ok());
  EXPECT_NE(bad_level.error().message().find("rule 0"), std::string::npos);
  EXPECT_NE(bad_level.error().message().find("unknown permission level"), std::string::npos);
  auto bad_type = Policy::Compile({Rule{"/a", static_cast<PatternType>(9), Level::kRead, 0}});
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.error().message().find("unknown pattern type"), std::string::npos);
}

TEST(ValidationTest, AcceptedOddities) {
  // Legal but unusual: all compile and behave as documented.
  Policy p = MustCompile({Rule{"./a//b/./", PatternType::kGlob, Level::kRead, 0},
                          Rule{"/x/...", PatternType::kGlob, Level::kWrite, 0},
                          Rule{"/a\\b", PatternType::kGlob, Level::kView, 0},
                          Rule{"/]", PatternType::kGlob, Level::kView, 0},
                          Rule{"/data[1]", PatternType::kFile, Level::kRead, 0}});
  EXPECT_EQ(p.LevelOf("/a/b", false), Level::kRead);
  EXPECT_EQ(p.LevelOf("/x/...", false), Level::kWrite);
  EXPECT_EQ(p.LevelOf("/a\\b", false), Level::kView);
  EXPECT_EQ(p.LevelOf("/]", false), Level::kView);
  EXPECT_EQ(p.LevelOf("/data[1]", false), Level::kRead);
}

TEST(ParseTest, Levels) {
  EXPECT_EQ(*ParseLevel("none"), Level::kNone);
  EXPECT_EQ(*ParseLevel("view"), Level::kView);
  EXPECT_EQ(*ParseLevel("read"), Level::kRead);
  EXPECT_EQ(*ParseLevel("WRITE"), Level::kWrite);
  EXPECT_EQ(*ParseLevel("ask"), Level::kAsk);
  // `ask` grants what `view` does and no more: every check needing read or write refuses it.
  EXPECT_LT(Level::kView, Level::kAsk);
  EXPECT_LT(Level::kAsk, Level::kRead);
  for (const char* bad : {"", "rw", "writable", "none ", "PERMISSION_READ"}) {
    auto l = ParseLevel(bad);
    ASSERT_FALSE(l.ok()) << bad;
    EXPECT_EQ(l.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(l.error().message().find("unknown permission level"), std::string::npos);
  }
  for (Level l : {Level::kNone, Level::kView, Level::kAsk, Level::kRead, Level::kWrite}) {
    EXPECT_EQ(*ParseLevel(LevelName(l)), l);
  }
}

TEST(ParseTest, PatternTypes) {
  EXPECT_EQ(*ParsePatternType("glob"), PatternType::kGlob);
  EXPECT_EQ(*ParsePatternType("directory"), PatternType::kDirectory);
  EXPECT_EQ(*ParsePatternType("file"), PatternType::kFile);
  EXPECT_FALSE(ParsePatternType("dir").ok());
  EXPECT_FALSE(ParsePatternType("").ok());
  for (PatternType t : {PatternType::kGlob, PatternType::kDirectory, PatternType::kFile}) {
    EXPECT_EQ(*ParsePatternType(PatternTypeName(t)), t);
  }
}

TEST(ParseTest, RuleSpecs) {
  struct Good {
    const char* spec;
    const char* pattern;
    Level level;
    int32_t priority;
  };
  const Good kGood[] = {
      {"**/*=read", "**/*", Level::kRead, 0},
      {"/secrets/**=none@100", "/secrets/**", Level::kNone, 100},
      {"a=b=write", "a=b", Level::kWrite, 0},
      {"/x@y=view@-5", "/x@y", Level::kView, -5},
      {"/p=read@+7", "/p", Level::kRead, 7},
      {"/p=read@2147483647", "/p", Level::kRead, 2147483647},
      {"/p=read@-2147483648", "/p", Level::kRead, -2147483647 - 1},
  };
  for (const Good& g : kGood) {
    auto r = ParseRuleSpec(g.spec);
    ASSERT_TRUE(r.ok()) << g.spec << ": " << r.error().ToString();
    EXPECT_EQ(r->pattern, g.pattern);
    EXPECT_EQ(r->level, g.level);
    EXPECT_EQ(r->priority, g.priority);
    EXPECT_EQ(r->type, PatternType::kGlob);
  }
  struct Bad {
    const char* spec;
    const char* reason;
  };
  const Bad kBad[] = {
      {"**/*", "expected PATTERN=LEVEL"},
      {"", "expected PATTERN=LEVEL"},
      {"=read", "pattern is empty"},
      {"/a=", "unknown permission level"},
      {"/a=readable", "unknown permission level"},
      {"/a=read@", "priority after '@' is empty"},
      {"/a=read@x", "is not an integer"},
      {"/a=read@1.5", "is not an integer"},
      {"/a=read@+", "is not an integer"},
      {"/a=read@ 1", "is not an integer"},
      {"/a=read@99999999999", "out of the 32-bit range"},
      {"/a/../b=read", "'..' segment"},
      {"/a[=read", "unbalanced '['"},
  };
  for (const Bad& b : kBad) {
    auto r = ParseRuleSpec(b.spec);
    ASSERT_FALSE(r.ok()) << b.spec;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(b.reason), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("rule spec"), std::string::npos);
  }
}

TEST(RememberTest, ARememberedDecisionBecomesARuleThatDecidesThePath) {
  Policy p = MustCompile({Rule{"**/*", PatternType::kGlob, Level::kRead, 0},
                          Rule{"/src/**", PatternType::kGlob, Level::kAsk, 10},
                          Rule{"/src/keep", PatternType::kFile, Level::kNone, 50}});
  auto path = RememberRule(p, "/src/a.py", false, Level::kWrite, "path", std::nullopt);
  ASSERT_TRUE(path.ok()) << path.error().ToString();
  EXPECT_EQ(path->type, PatternType::kFile);
  EXPECT_EQ(path->pattern, "/src/a.py");
  EXPECT_EQ(path->priority, 10);
  auto pattern = RememberRule(p, "/src/a.py", false, Level::kRead, "/src/*.py", std::nullopt);
  ASSERT_TRUE(pattern.ok()) << pattern.error().ToString();
  std::vector<Rule> rules = p.rules();
  rules.push_back(*pattern);
  Policy q = MustCompile(rules);
  EXPECT_EQ(q.LevelOf("/src/b.py", false), Level::kRead);
  EXPECT_EQ(q.LevelOf("/src/b.c", false), Level::kAsk);
  EXPECT_EQ(q.LevelOf("/src/keep", false), Level::kNone) << "what outranked ask still does";
  // A denial remembers view.
  auto deny = RememberRule(p, "/src/x", false, Level::kView, "path", std::nullopt);
  ASSERT_TRUE(deny.ok());
  EXPECT_EQ(deny->level, Level::kView);
  // A pattern that would not win, a bad pattern, and ask itself are refused.
  auto loses = RememberRule(p, "/src/a.py", false, Level::kRead, "**/*.py", std::nullopt);
  ASSERT_FALSE(loses.ok());
  EXPECT_NE(loses.error().message().find("higher priority"), std::string::npos);
  EXPECT_TRUE(RememberRule(p, "/src/a.py", false, Level::kRead, "**/*.py", 11).ok());
  EXPECT_FALSE(RememberRule(p, "/src/a.py", false, Level::kRead, "/src/../x", 11).ok());
  EXPECT_FALSE(RememberRule(p, "/src/a.py", false, Level::kAsk, "path", std::nullopt).ok());
}

}  // namespace
}  // namespace agentfense::policy
