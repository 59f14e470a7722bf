#include "server/metrics.h"

#include <fmt/format.h>

namespace agentfense::server {

namespace {

// Label values are route templates and code names chosen by us, but escape anyway.
std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string GrpcCodeName(int code) {
  static constexpr std::array<const char*, 17> kNames = {
      "OK",        "CANCELLED",           "UNKNOWN",  "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",      "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED",   "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
      "UNAVAILABLE", "DATA_LOSS",         "UNAUTHENTICATED"};
  if (code < 0 || code >= static_cast<int>(kNames.size())) return "UNKNOWN";
  return kNames[static_cast<size_t>(code)];
}

void Metrics::RecordRequest(const std::string& transport, const std::string& route,
                            const std::string& code, double seconds) {
  std::lock_guard lock(mu_);
  ++requests_[{transport, route, code}];
  Histogram& h = latency_[{transport, route}];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      ++h.buckets[i];
      break;
    }
  }
  ++h.count;
  h.sum += seconds;
}

void Metrics::AddCollector(std::function<std::string()> collector) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string Metrics::Render() const {
  std::vector<std::function<std::string()>> collectors;
  std::string out;
  {
    std::lock_guard lock(mu_);
    out += "# HELP agentfense_api_requests_total API requests by transport, route and status code.\n";
    out += "# TYPE agentfense_api_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      const auto& [transport, route, code] = key;
      out += fmt::format(
          "agentfense_api_requests_total{{transport=\"{}\",route=\"{}\",code=\"{}\"}} {}\n",
          Escape(transport), Escape(route), Escape(code), n);
    }
    out += "# HELP agentfense_api_request_duration_seconds API request latency.\n";
    out += "# TYPE agentfense_api_request_duration_seconds histogram\n";
    for (const auto& [key, h] : latency_) {
      std::string labels =
          fmt::format("transport=\"{}\",route=\"{}\"", Escape(key.first), Escape(key.second));
      uint64_t cumulative = 0;
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        cumulative += h.buckets[i];
        out += fmt::format("agentfense_api_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n",
                           labels, kBuckets[i], cumulative);
      }
      out += fmt::format("agentfense_api_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n",
                         labels, h.count);
      out += fmt::format("agentfense_api_request_duration_seconds_sum{{{}}} {}\n", labels, h.sum);
      out += fmt::format("agentfense_api_request_duration_seconds_count{{{}}} {}\n", labels,
                         h.count);
    }
    collectors = collectors_;
  }
  // Collectors run outside mu_: they may take their own locks.
  for (const auto& c : collectors) out += c();
  return out;
}

}  // namespace agentfense::server
