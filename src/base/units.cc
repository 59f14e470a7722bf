#include "base/units.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace agentfense {
namespace {

// Reads "<digits>[.<digits>]" from the front of `s`; returns false if there is no number.
bool TakeDecimal(std::string_view& s, long double& out) {
  size_t i = 0;
  long double whole = 0;
  bool any = false;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    whole = whole * 10 + (s[i] - '0');
    ++i;
    any = true;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    long double scale = 0.1L;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      whole += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
      any = true;
    }
  }
  s.remove_prefix(i);
  out = whole;
  return any;
}

}  // namespace

Result<std::chrono::nanoseconds> ParseDuration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("invalid duration '{}': {} (examples: 30s, 1.5s, 5m, 1h30m)", text, why));
  };
  if (text.empty()) return bad("empty");
  if (text.size() > 64) return bad("too long");
  if (text == "0") return std::chrono::nanoseconds(0);
  std::string_view s = text;
  long double total_ns = 0;
  while (!s.empty()) {
    long double value;
    if (!TakeDecimal(s, value)) return bad("expected a number");
    long double unit;
    if (s.starts_with("ns")) { unit = 1; s.remove_prefix(2); }
    else if (s.starts_with("us")) { unit = 1e3L; s.remove_prefix(2); }
    else if (s.starts_with("\xC2\xB5s")) { unit = 1e3L; s.remove_prefix(3); }
    else if (s.starts_with("ms")) { unit = 1e6L; s.remove_prefix(2); }
    else if (s.starts_with("s")) { unit = 1e9L; s.remove_prefix(1); }
    else if (s.starts_with("m")) { unit = 60e9L; s.remove_prefix(1); }
    else if (s.starts_with("h")) { unit = 3600e9L; s.remove_prefix(1); }
    else return bad("missing or unknown unit (ns, us, ms, s, m, h)");
    total_ns += value * unit;
  }
  if (total_ns > static_cast<long double>(std::numeric_limits<int64_t>::max())) {
    return bad("out of range");
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(total_ns)));
}

std::string FormatDurationSeconds(std::chrono::nanoseconds d) {
  int64_t ns = d.count();
  if (ns % 1000000000 == 0) return fmt::format("{}s", ns / 1000000000);
  std::string out = fmt::format("{:.9f}", static_cast<double>(ns) / 1e9);
  while (out.back() == '0') out.pop_back();
  return out + "s";
}

Result<uint64_t> ParseSize(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("invalid size '{}': {} (examples: 512M, 2GiB, 1048576)", text, why));
  };
  if (text.empty()) return bad("empty");
  if (text.size() > 32) return bad("too long");
  std::string_view s = text;
  long double value;
  if (!TakeDecimal(s, value)) return bad("expected a number");
  long double mult = 1;
  if (s.empty() || s == "B") mult = 1;
  else if (s == "K" || s == "KB" || s == "KiB" || s == "k") mult = 1024.0L;
  else if (s == "M" || s == "MB" || s == "MiB" || s == "m") mult = 1024.0L * 1024;
  else if (s == "G" || s == "GB" || s == "GiB" || s == "g") mult = 1024.0L * 1024 * 1024;
  else if (s == "T" || s == "TB" || s == "TiB" || s == "t") mult = 1024.0L * 1024 * 1024 * 1024;
  else return bad("unknown unit (B, K, M, G, T)");
  long double bytes = value * mult;
  if (bytes > static_cast<long double>(std::numeric_limits<int64_t>::max())) {
    return bad("out of range");
  }
  return static_cast<uint64_t>(std::llround(bytes));
}

}  // namespace agentfense
