// The data of accesses to `ask` paths (docs/PERMISSIONS.md, "ask"), as the filesystem's broker
// (approvals.h), the supervisor's control socket, the server and the CLI pass it on. Pure data:
// no FUSE here.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "policy/policy.h"

namespace agentfense::fs {

inline constexpr std::chrono::milliseconds kDefaultAskTimeout{60'000};
// Held at once per mount; past it an access to an `ask` path is denied at once (a flood of
// requests can neither exhaust the daemon nor bury the one a human is looking for).
inline constexpr size_t kMaxPendingAsks = 256;

// One held access.
struct AccessRequest {
  std::string id;       // "ap_" + 16 lowercase hex, random
  std::string path;     // workspace path
  std::string op;       // "open", "create", "unlink", "rename", ...
  policy::Level need = policy::Level::kRead;  // kRead or kWrite
  pid_t pid = 0;        // the caller, as the daemon sees it
  uid_t uid = 0;
  std::string command;  // its command line, arguments joined by spaces, at most 256 bytes
  int64_t since_ns = 0;     // Unix time
  int64_t deadline_ns = 0;  // denied then
};

enum class AskState { kPending, kAllowed, kDenied, kTimedOut, kCancelled };
inline constexpr AskState kAskStates[] = {AskState::kPending, AskState::kAllowed, AskState::kDenied,
                                          AskState::kTimedOut, AskState::kCancelled};
inline std::string_view AskStateName(AskState state) {
  switch (state) {
    case AskState::kPending: return "pending";
    case AskState::kAllowed: return "allowed";
    case AskState::kDenied: return "denied";
    case AskState::kTimedOut: return "timed_out";
    case AskState::kCancelled: return "cancelled";
  }
  return "unknown";
}

// A decision about one held access.
struct AskAnswer {
  policy::Level grant = policy::Level::kNone;  // kRead, kWrite; kNone = deny
  std::string by;        // who answered (for the audit log)
  std::string remember;  // the rule the decision added, rendered; "" = this access only
};

// Something that happened to a held access: the audit log and watchers get every one.
struct AskEvent {
  AccessRequest request;
  AskState state = AskState::kPending;
  policy::Level grant = policy::Level::kNone;
  std::string by;
  std::string remember;
  int64_t time_ns = 0;
};
// Called on the thread that caused the event, with no lock of the broker held; must be quick.
using AskSink = std::function<void(const AskEvent&)>;

}  // namespace agentfense::fs
