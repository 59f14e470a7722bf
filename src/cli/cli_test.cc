// In-process tests of the CLI pieces: rules-file parsing, rule collection and the command runner.
// The real binary is exercised end to end by tests/py/test_cli_policy.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/app.h"
#include "cli/exit_codes.h"
#include "cli/rules_input.h"

namespace agentfense::cli {
namespace {

using policy::Level;

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun RunArgs(const std::vector<std::string>& words) {
  std::vector<std::string> owned = {"agentfense"};
  owned.insert(owned.end(), words.begin(), words.end());
  std::vector<const char*> args;
  args.reserve(owned.size());
  for (const std::string& w : owned) args.push_back(w.c_str());
  std::ostringstream out;
  std::ostringstream err;
  int code = RunCli(static_cast<int>(args.size()), args.data(), out, err);
  return {code, out.str(), err.str()};
}

// A temporary file removed at scope exit.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char tmpl[] = "/tmp/af_cli_test_XXXXXX";
    int fd = ::mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    if (fd >= 0) ::close(fd);
    path_ = tmpl;
    std::ofstream(path_) << content;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(RulesText, SkipsCommentsAndBlanksAndNamesLines) {
  auto rules = ParseRulesText("# header\n\n  **/*=read  \r\n\t# indented comment\n/out/**=write@10",
                              "f.rules");
  ASSERT_TRUE(rules.ok()) << rules.error().ToString();
  ASSERT_EQ(rules->size(), 2u);
  EXPECT_EQ((*rules)[0].rule.pattern, "**/*");
  EXPECT_EQ((*rules)[0].origin, "f.rules:3");
  EXPECT_EQ((*rules)[1].rule.level, Level::kWrite);
  EXPECT_EQ((*rules)[1].rule.priority, 10);
  EXPECT_EQ((*rules)[1].origin, "f.rules:5");
}

TEST(RulesText, BadLineIsNamed) {
  auto rules = ParseRulesText("**/*=read\n\n/x=sometimes\n", "f.rules");
  ASSERT_FALSE(rules.ok());
  EXPECT_EQ(rules.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(rules.error().message().find("f.rules:3: "), std::string::npos)
      << rules.error().message();
}

TEST(RulesText, EmptyTextHasNoRules) {
  auto rules = ParseRulesText("", "empty");
  ASSERT_TRUE(rules.ok());
  EXPECT_TRUE(rules->empty());
}

TEST(CollectRules, NoSourceIsAnError) {
  auto rules = CollectRules({});
  ASSERT_FALSE(rules.ok());
  EXPECT_NE(rules.error().message().find("no rules given"), std::string::npos);
}

TEST(CollectRules, PresetThenFileThenRuleArguments) {
  TempFile file("/f=write\n");
  RuleSources sources;
  sources.preset = "read-only";
  sources.rules_file = file.path();
  sources.rule_specs = {"/a=none@3"};
  auto rules = CollectRules(sources);
  ASSERT_TRUE(rules.ok()) << rules.error().ToString();
  ASSERT_EQ(rules->size(), 3u);
  EXPECT_EQ((*rules)[0].origin, "preset read-only, rule 0");
  EXPECT_EQ((*rules)[1].origin, file.path() + ":1");
  EXPECT_EQ((*rules)[2].origin, "--rule #1");
  EXPECT_EQ((*rules)[2].rule.priority, 3);
}

TEST(CollectRules, MissingFileNamesTheFile) {
  RuleSources sources;
  sources.rules_file = "/nonexistent/af.rules";
  auto rules = CollectRules(sources);
  ASSERT_FALSE(rules.ok());
  EXPECT_NE(rules.error().ToString().find("/nonexistent/af.rules"), std::string::npos);
  EXPECT_EQ(ExitCodeFor(rules.error()), kExitUsage);
}

TEST(CompileSourced, ReportsOriginOfRejectedRule) {
  // Built directly (not via ParseRuleSpec, which would reject it first) to reach the engine.
  std::vector<SourcedRule> rules = {
      {{"**/*", policy::PatternType::kGlob, Level::kRead, 0}, "a:1"},
      {{"/x/../y", policy::PatternType::kFile, Level::kRead, 0}, "a:2"},
  };
  auto compiled = CompileSourced(rules);
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.error().message().rfind("a:2: ", 0), 0u) << compiled.error().message();
}

TEST(FormatRule, RoundTripsThroughRuleSpec) {
  policy::Rule rule{"**/secrets/**", policy::PatternType::kGlob, Level::kNone, -7};
  auto parsed = policy::ParseRuleSpec(FormatRule(rule));
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  EXPECT_EQ(parsed->pattern, rule.pattern);
  EXPECT_EQ(parsed->level, rule.level);
  EXPECT_EQ(parsed->priority, rule.priority);
}

TEST(RunCli, ExplainAgentSafe) {
  CliRun r = RunArgs(
      {"policy", "explain", "--preset", "agent-safe", "/secrets/a", "/src/x.py", "/output/r.txt"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);  // header
  std::vector<std::pair<std::string, std::string>> rows;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string path, level;
    words >> path >> level;
    rows.emplace_back(path, level);
  }
  std::vector<std::pair<std::string, std::string>> want = {
      {"/secrets/a", "none"}, {"/src/x.py", "read"}, {"/output/r.txt", "write"}};
  EXPECT_EQ(rows, want) << r.out;
}

TEST(RunCli, UsageErrorsExitTwo) {
  EXPECT_EQ(RunArgs({}).code, kExitUsage);
  EXPECT_EQ(RunArgs({"policy"}).code, kExitUsage);
  EXPECT_EQ(RunArgs({"policy", "explain", "/x"}).code, kExitUsage);
  EXPECT_EQ(RunArgs({"policy", "explain", "--preset", "agent-safe"}).code, kExitUsage);
  EXPECT_EQ(RunArgs({"policy", "explain", "--bogus", "/x"}).code, kExitUsage);
  CliRun r = RunArgs({"policy", "explain", "--rule", "/a=read", "--rule", "[x=read", "/x"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("--rule #2"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(RunCli, HelpAndVersionExitZero) {
  CliRun help = RunArgs({"--help"});
  EXPECT_EQ(help.code, kExitOk);
  EXPECT_NE(help.out.find("Exit status"), std::string::npos);
  CliRun version = RunArgs({"--version"});
  EXPECT_EQ(version.code, kExitOk);
  EXPECT_EQ(version.out.rfind("agentfense ", 0), 0u) << version.out;
}

}  // namespace
}  // namespace agentfense::cli
