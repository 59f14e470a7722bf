// Parsing of human-written durations ("30s", "1.5s", "5m", "1h30m", "250ms") and sizes ("512M",
// "2GiB", "1048576"), shared by the config file, the CLI flags and the REST JSON decoding.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace agentfense {

// Go-style durations: a sequence of <decimal><unit> with units ns, us, µs, ms, s, m, h. A bare "0" is
// allowed. Negative durations and overflow are errors.
Result<std::chrono::nanoseconds> ParseDuration(std::string_view text);

// "1.5s", "30s", "2m0s"-like rendering used in logs and JSON ("30s", "0.25s").
std::string FormatDurationSeconds(std::chrono::nanoseconds d);

// Sizes: an integer or decimal with an optional unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB
// (all binary: 1K = 1024). Overflow is an error.
Result<uint64_t> ParseSize(std::string_view text);

}  // namespace agentfense
