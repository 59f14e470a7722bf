// Process exit status of the agentfense CLI (documented in the --help footer).
#pragma once

#include "base/error.h"

namespace agentfense::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // an internal or environmental failure
inline constexpr int kExitUsage = 2;    // bad usage or invalid input (rules, paths, files)

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
