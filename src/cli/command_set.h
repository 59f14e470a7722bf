// The leaf commands of the CLI and what each runs once CLI11 has parsed argv. Each command group
// (policy, run, mount, client) registers its subcommands here, so app.cc stays a table.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/exit_codes.h"

namespace agentfense::cli {

class CommandSet {
 public:
  // A subcommand with our footer (exit status, syntax notes).
  CLI::App* Sub(CLI::App* parent, const std::string& name, const std::string& description,
                const std::string& footer) {
    CLI::App* sub = parent->add_subcommand(name, description);
    sub->footer(footer);
    return sub;
  }
  // `run` is what the leaf does; `takes_command` = it accepts "-- COMMAND [ARG...]".
  void On(CLI::App* leaf, std::function<int()> run, bool takes_command = false) {
    leaves_.push_back({leaf, std::move(run), takes_command});
  }
  bool TakesCommand() const {
    for (const auto& l : leaves_) {
      if (l.app->parsed()) return l.takes_command || l.app->get_name() == "run";
    }
    return false;
  }
  int Dispatch(std::ostream& err) const {
    for (const auto& l : leaves_) {
      if (l.app->parsed()) return l.run();
    }
    err << "agentfense: error: no command given (see --help)\n";
    return kExitUsage;
  }

 private:
  struct Leaf {
    CLI::App* app;
    std::function<int()> run;
    bool takes_command;
  };
  std::vector<Leaf> leaves_;
};

}  // namespace agentfense::cli
