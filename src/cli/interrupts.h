// Ctrl-C / SIGTERM / SIGHUP handling for the commands that own a sandbox or a mount (run, shell,
// mount). The handler only records the signal; the command notices it (AgentClient polls the flag
// as its cancel flag) and then tears the sandbox down on its normal path, so cleanup code runs on
// exactly one path whatever ended the command.
#pragma once

#include <atomic>

namespace agentfense::cli {

class InterruptGuard {
 public:
  // Installs the handlers (no SA_RESTART: a blocking read() returns EINTR so a prompt can react);
  // the destructor restores the previous ones.
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  // Set by any of the signals; AgentClient's CallOptions::cancel.
  static const std::atomic<bool>* flag();
  static bool interrupted();
  // The last signal received (0 if none).
  static int signal_number();
  // Clears the flag (the shell cancels one command on Ctrl-C and carries on).
  static void Reset();
};

}  // namespace agentfense::cli
