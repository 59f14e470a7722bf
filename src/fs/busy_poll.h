// How long a FUSE worker keeps reading requests after answering one (FsOptions::busy_poll_us,
// docs/FILESYSTEM.md): the default and the bound every configuration is checked against, in a
// header of their own so that configuration code needs no FUSE header. Off by default: it makes
// bursts of requests cheaper, and what its spinning costs a loaded host is not measured yet
// (docs/PERFORMANCE.md, "What one request costs").
#pragma once

namespace agentfense::fs {

inline constexpr int kDefaultBusyPollUs = 0;
inline constexpr int kMaxBusyPollUs = 10000;  // 10 ms of spinning after a burst, at most

}  // namespace agentfense::fs
