// The offline `agentfense policy ...` commands: explain decisions, list presets, check a rules
// file. They need no server and touch no workspace; paths are workspace paths ("/src/x.py").
// Each returns the process exit status (cli/exit_codes.h) and writes results to `out`, errors to
// `err`.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "cli/rules_input.h"

namespace agentfense::cli {

struct ExplainOptions {
  RuleSources sources;
  std::vector<std::string> paths;
  bool json = false;
  bool verbose = false;  // text mode: also every matching rule and the engine's reason
};

int RunPolicyExplain(const ExplainOptions& options, std::ostream& out, std::ostream& err);
int RunPolicyPresets(bool json, std::ostream& out, std::ostream& err);
int RunPolicyCheck(const std::string& rules_file, bool json, std::ostream& out, std::ostream& err);

}  // namespace agentfense::cli
