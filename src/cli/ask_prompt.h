// Answers the accesses to `ask` paths of a sandbox this CLI owns (`agentfense run` / `shell`;
// docs/CLI.md, docs/PERMISSIONS.md "ask"). With --ask the person at the terminal decides each
// one; with --ask=deny (and without --ask) each is denied at once and a line on stderr says so.
//
// Prompting: one question at a time on the controlling terminal, everything the agent chose (the
// path, the command line) escaped for the terminal (base/utf8.h ForTerminal), so a file name can
// neither fake the question nor hide it. Answers: r / w allow reading / writing this once, d
// denies; R / W / D remember the answer as a rule for the path (added to the sandbox's rules).
// Line mode (`run`, line-mode `shell`) reads a line from /dev/tty: the command that asked is
// running then, so nothing else reads the terminal. Terminal mode (`shell` on a raw terminal)
// takes its keys from the shell's relay loop instead (Active / Feed).
#pragma once

#include <atomic>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "policy/policy.h"
#include "supervisor/client.h"

namespace agentfense::cli {

enum class AskMode { kDeny, kPrompt };

// Parses --ask's value: "" or "prompt" = kPrompt, "deny" = kDeny.
Result<AskMode> ParseAskMode(const std::string& value);

class AskPrompter {
 public:
  // `raw`: the terminal is in raw mode and the caller feeds keystrokes (Feed) while Active().
  static Result<std::unique_ptr<AskPrompter>> Start(const supervisor::SupervisorControl& control,
                                                    AskMode mode, std::vector<policy::Rule> rules,
                                                    bool raw, std::string answered_by);
  ~AskPrompter();  // stops the thread; accesses still held are left to the sandbox's stop
  AskPrompter(const AskPrompter&) = delete;
  AskPrompter& operator=(const AskPrompter&) = delete;

  // Raw mode: a question is on the screen and waits for a key.
  bool Active() const { return active_.load(); }
  // Raw mode: bytes the user typed while Active().
  void Feed(std::string_view bytes);

 private:
  AskPrompter(const supervisor::SupervisorControl& control, AskMode mode,
              std::vector<policy::Rule> rules, bool raw, std::string answered_by);
  void Loop();
  void Say(const std::string& text) const;  // one line (raw: \r\n) on the terminal
  // Decides `r` with key `key` (r/w/d/R/W/D); false for any other key.
  bool Decide(const fs::AccessRequest& r, char key);

  const supervisor::SupervisorControl& control_;
  const AskMode mode_;
  std::vector<policy::Rule> rules_;  // the sandbox's, with what was remembered since
  const bool raw_;
  const std::string by_;
  UniqueFd tty_;             // line mode: /dev/tty (questions and answers)
  UniqueFd keys_[2];         // raw mode: Feed → the thread (pipe)
  UniqueFd stop_;            // eventfd
  std::unique_ptr<supervisor::ApprovalWatch> watch_;
  std::atomic<bool> active_{false};
  std::thread thread_;
};

}  // namespace agentfense::cli
