#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "cli/exit_codes.h"
#include "cli/policy_commands.h"

#ifndef AF_VERSION
#define AF_VERSION "unknown"
#endif

namespace agentfense::cli {
namespace {

constexpr char kExitFooter[] =
    "Exit status: 0 success; 1 internal or environment failure; 2 usage error or invalid input\n"
    "(bad rule, path, preset or rules file). Errors are printed on stderr.";

constexpr char kRuleSyntax[] =
    "Rules are PATTERN=LEVEL[@PRIORITY] with LEVEL none|view|read|write (default priority 0),\n"
    "e.g. '**/*.py=read' or '/secrets/**=none@100'. Rules files hold one rule per line; blank\n"
    "lines and lines starting with '#' are ignored. Rules are merged in the order --preset,\n"
    "--rules-file, --rule; on a full tie the later rule wins.";

struct Parsed {
  ExplainOptions explain;
  std::string preset;
  std::string rules_file;
  bool presets_json = false;
  std::string check_file;
  bool check_json = false;
};

CLI::App* Sub(CLI::App* parent, const std::string& name, const std::string& description) {
  CLI::App* sub = parent->add_subcommand(name, description);
  sub->footer(kExitFooter);
  return sub;
}

}  // namespace

int RunCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  // CLI11 reports everything, including --help, by exception; nothing may escape main.
  try {
    CLI::App app("agentfense: least-privilege filesystem sandbox for AI agents", "agentfense");
    app.footer(kExitFooter);
    app.set_version_flag("--version", std::string("agentfense ") + AF_VERSION);
    app.require_subcommand(1);

    Parsed p;
    CLI::App* policy = Sub(&app, "policy", "Inspect and validate permission rules offline");
    policy->require_subcommand(1);

    CLI::App* explain = Sub(policy, "explain",
                            "Show the level each workspace path gets and the rule that decides it");
    explain->footer(std::string(kRuleSyntax) + "\n\n" + kExitFooter);
    explain->add_option("--preset", p.preset, "Start from a preset (see `policy presets`)");
    explain
        ->add_option("--rule", p.explain.sources.rule_specs,
                     "Add a rule PATTERN=LEVEL[@PRIORITY] (repeatable)")
        ->allow_extra_args(false);
    explain->add_option("--rules-file", p.rules_file, "Add the rules of FILE");
    explain->add_flag("--json", p.explain.json, "Print JSON instead of a table");
    explain->add_flag("-v,--verbose", p.explain.verbose,
                      "Also list every matching rule and why the winner wins");
    explain->add_option("paths", p.explain.paths, "Workspace paths such as /src/app.py")
        ->required();

    CLI::App* presets = Sub(policy, "presets", "List the presets and their rules");
    presets->add_flag("--json", p.presets_json, "Print JSON");

    CLI::App* check = Sub(policy, "check", "Validate a rules file");
    check->footer(std::string(kRuleSyntax) + "\n\n" + kExitFooter);
    check->add_option("file", p.check_file, "Rules file")->required();
    check->add_flag("--json", p.check_json, "Print JSON");

    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e, out, err);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e, out, err);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e, out, err);
    } catch (const CLI::ParseError& e) {
      std::ostringstream ignored;
      (void)app.exit(e, ignored, err);  // prints the message and a --help hint on err
      return kExitUsage;
    }

    if (explain->parsed()) {
      if (explain->count("--preset") > 0) p.explain.sources.preset = p.preset;
      if (explain->count("--rules-file") > 0) p.explain.sources.rules_file = p.rules_file;
      return RunPolicyExplain(p.explain, out, err);
    }
    if (presets->parsed()) return RunPolicyPresets(p.presets_json, out, err);
    if (check->parsed()) return RunPolicyCheck(p.check_file, p.check_json, out, err);
    err << "agentfense: error: no command given (see --help)\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    err << "agentfense: internal error: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace agentfense::cli
