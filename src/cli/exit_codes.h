// Process exit status of the agentfense CLI (documented in the --help footer and docs/CLI.md).
//
// `run` and `shell` pass the command's own status through (0-255, 128+N when a signal N killed
// it), so their own failures use codes a command rarely returns, in the style of `docker run`
// (125) and GNU `timeout` (124). The other commands use 0 / 1 / 2 only.
#pragma once

#include "base/error.h"

namespace agentfense::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // an internal or environmental failure
inline constexpr int kExitUsage = 2;    // bad usage or invalid input (rules, paths, files)

// run / shell only:
inline constexpr int kExitRunSandbox = 122;  // runtime unavailable (bwrap missing, dockerd down,
                                             // image missing) or the sandbox failed mid-run
inline constexpr int kExitRunSync = 123;     // the changes could not all be synced back; the
                                             // delta is kept and its path printed
inline constexpr int kExitRunTimeout = 124;  // --timeout expired; the command was killed
inline constexpr int kExitRunUsage = 125;    // bad usage or invalid input; nothing was started
// Interrupted by SIGINT / SIGTERM / SIGHUP: 128 + the signal (130, 143, 129), after cleanup.

// The exit status for an error that ends a command. Input problems are the user's to fix (2);
// anything else is ours or the environment's (1).
inline int ExitCodeFor(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kInternal:
    case ErrorCode::kUnknown:
    case ErrorCode::kDataLoss:
    case ErrorCode::kUnavailable:
      return kExitFailure;
    default:
      return kExitUsage;
  }
}

}  // namespace agentfense::cli

namespace agentfense::cli {

// Client mode (commands that talk to a server) adds:
inline constexpr int kExitNotFound = 3;  // the codebase / sandbox / session / file does not exist
inline constexpr int kExitUnavailable = 4;   // no server answers at the endpoint (or it timed out)
inline constexpr int kExitUnauthorized = 5;  // missing or wrong token, permission denied
inline constexpr int kExitConflict = 6;      // wrong state: not running, already exists, quota...

}  // namespace agentfense::cli
