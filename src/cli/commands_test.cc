// In-process tests of the argument handling of run / shell / mount / client commands: every case
// here fails before anything is started (no sandbox, no mount, no server), so they are unit
// tests. What happens after validation is tested end to end by tests/py/test_cli_run.py and
// tests/py/test_cli_client.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/app.h"
#include "cli/exit_codes.h"

namespace agentfense::cli {
namespace {

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun Cli(const std::vector<std::string>& words) {
  std::vector<std::string> owned = {"agentfense"};
  owned.insert(owned.end(), words.begin(), words.end());
  std::vector<const char*> args;
  args.reserve(owned.size());
  for (const std::string& w : owned) args.push_back(w.c_str());
  std::ostringstream out, err;
  int code = RunCli(static_cast<int>(args.size()), args.data(), out, err);
  return {code, out.str(), err.str()};
}

void ExpectOneLineError(const CliRun& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(r.err.rfind("agentfense: error: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(RunArgs, UsageErrorsAre125) {
  ExpectOneLineError(Cli({"run"}), kExitRunUsage, "missing DIR");
  ExpectOneLineError(Cli({"run", "/tmp"}), kExitRunUsage, "missing -- before the command");
  ExpectOneLineError(Cli({"run", "/tmp", "ls"}), kExitRunUsage, "missing -- before the command");
  ExpectOneLineError(Cli({"run", "/tmp", "--"}), kExitRunUsage, "missing COMMAND");
  ExpectOneLineError(Cli({"run", "/etc/passwd", "--", "true"}), kExitRunUsage,
                     "is not a directory");
  ExpectOneLineError(Cli({"run", "--preset", "x", "/tmp", "--", "true"}), kExitRunUsage,
                     "unknown preset");
  ExpectOneLineError(Cli({"run", "--memory", "1Q", "/tmp", "--", "true"}), kExitRunUsage,
                     "--memory 1Q");
  ExpectOneLineError(Cli({"run", "--memory", "1K", "/tmp", "--", "true"}), kExitRunUsage,
                     "minimum");
  ExpectOneLineError(Cli({"run", "--cpus", "-1", "/tmp", "--", "true"}), kExitRunUsage, "--cpus");
  ExpectOneLineError(Cli({"run", "--timeout", "0s", "/tmp", "--", "true"}), kExitRunUsage,
                     "--timeout");
  ExpectOneLineError(Cli({"run", "--bwrap-path", "bwrap", "/tmp", "--", "true"}), kExitRunUsage,
                     "absolute");
  ExpectOneLineError(Cli({"run", "--docker-host", "unix:///x", "/tmp", "--", "true"}),
                     kExitRunUsage, "--docker-host needs --runtime docker");
  ExpectOneLineError(Cli({"run", "--discard", "--keep-delta", "/tmp/x", "/tmp", "--", "true"}),
                     kExitRunUsage, "excludes");
  ExpectOneLineError(Cli({"run", "--no-such-flag", "/tmp", "--", "true"}), kExitRunUsage,
                     "no-such-flag");
}

// `mcp` takes `run`'s flags, but its stdio is the MCP channel: nobody could answer an `ask` there.
TEST(RunArgs, McpRefusesToPromptForAsk) {
  ExpectOneLineError(Cli({"mcp", "--ask", "/tmp"}), kExitRunUsage, "no terminal to ask on");
  ExpectOneLineError(Cli({"mcp", "--timeout", "0s", "/tmp"}), kExitRunUsage, "--timeout");
}

TEST(RunArgs, CommandWordsAfterDashDashAreNeverParsedAsOurFlags) {
  // "--preset nope" after -- belongs to the command; the run still fails on our own bad flag.
  ExpectOneLineError(Cli({"run", "--memory", "zz", "/tmp", "--", "cmd", "--preset", "nope"}),
                     kExitRunUsage, "--memory zz");
}

TEST(ShellArgs, NoCommandAllowed) {
  ExpectOneLineError(Cli({"shell", "/tmp", "--", "ls"}), kExitRunUsage, "takes no COMMAND");
  ExpectOneLineError(Cli({"shell"}), kExitRunUsage, "DIR");
}

TEST(MountArgs, Validation) {
  ExpectOneLineError(Cli({"mount", "--preset", "read-only", "/nonexistent-src", "/tmp"}),
                     kExitUsage, "SOURCE");
  ExpectOneLineError(Cli({"mount", "--preset", "read-only", "/tmp", "/nonexistent-mp"}), kExitUsage,
                     "MOUNTPOINT");
  ExpectOneLineError(Cli({"mount", "--threads", "0", "--preset", "read-only", "/usr", "/tmp"}),
                     kExitUsage, "--threads");
  ExpectOneLineError(Cli({"mount", "--preset", "read-only", "/tmp", "/tmp"}), kExitUsage,
                     "inside SOURCE");
  ExpectOneLineError(Cli({"mount", "/usr", "/tmp"}), kExitUsage, "no rules");
  ExpectOneLineError(Cli({"umount", "/tmp"}), kExitUsage, "not an agentfense");
  ExpectOneLineError(Cli({"policy", "presets", "--", "x"}), kExitUsage, "after --");
}

TEST(ClientArgs, ValidatedBeforeAnyConnection) {
  // The endpoint does not exist; each case must fail on its input first.
  const std::string ep = "--endpoint=127.0.0.1:1";
  ExpectOneLineError(Cli({"sandbox", "exec", ep, "sb_0000000000000000"}), kExitUsage,
                     "missing -- COMMAND");
  ExpectOneLineError(Cli({"sandbox", "create", ep, "cb_x", "--preset", "nope"}), kExitUsage,
                     "unknown preset");
  ExpectOneLineError(Cli({"sandbox", "create", ep, "cb_x", "--sync-mode", "sometimes"}), kExitUsage,
                     "--sync-mode");
  ExpectOneLineError(Cli({"sandbox", "create", ep, "cb_x", "--label", "novalue"}), kExitUsage,
                     "--label");
  ExpectOneLineError(Cli({"codebase", "upload", ep, "cb_x", "/nonexistent-file"}), kExitUsage,
                     "no such file");
  ExpectOneLineError(Cli({"audit", ep, "--limit", "0"}), kExitUsage, "--limit");
}

TEST(ClientArgs, UnreachableServerIsExit4) {
  CliRun r = Cli({"codebase", "ls", "--endpoint", "127.0.0.1:1"});
  EXPECT_EQ(r.code, kExitUnavailable) << r.err;
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos);
}

TEST(Help, EveryCommandHasHelpAndTheTreeListsThemAll) {
  CliRun tree = Cli({"_cli-tree"});
  ASSERT_EQ(tree.code, 0) << tree.err;
  auto j = nlohmann::json::parse(tree.out);
  std::vector<std::string> paths;
  std::vector<nlohmann::json> stack = {j};
  while (!stack.empty()) {
    nlohmann::json node = stack.back();
    stack.pop_back();
    paths.push_back(node["path"].get<std::string>());
    for (const auto& sub : node["subcommands"]) stack.push_back(sub);
  }
  for (const char* expected :
       {"run", "shell", "mount", "umount", "policy explain", "codebase upload", "codebase files",
        "sandbox exec", "sandbox shell", "session exec", "changes", "commit", "discard", "audit"}) {
    EXPECT_NE(std::find(paths.begin(), paths.end(), expected), paths.end()) << expected;
  }
  for (const std::string& path : paths) {
    std::vector<std::string> words;
    std::istringstream in(path);
    for (std::string w; in >> w;) words.push_back(w);
    words.push_back("--help");
    CliRun r = Cli(words);
    EXPECT_EQ(r.code, 0) << path;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << path;
    EXPECT_NE(r.out.find("Exit status"), std::string::npos) << path;
  }
}

}  // namespace
}  // namespace agentfense::cli
