// Prometheus metrics of the API server, rendered in the text exposition format at GET /metrics.
// Request counts by transport, route and code; a latency histogram per transport and route.
// Other parts of the server add their own families with AddCollector.
//
// Thread-safety: all methods may be called concurrently (one mutex, held briefly; leaf lock).
#pragma once

#include <array>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace agentfense::server {

class Metrics {
 public:
  // `code` is the gRPC code name ("OK", "NOT_FOUND") for both transports, so that one query
  // covers both; REST requests rejected before routing use route "unmatched".
  void RecordRequest(const std::string& transport, const std::string& route,
                     const std::string& code, double seconds);
  // A collector returns complete exposition text for its own families (with HELP/TYPE lines).
  void AddCollector(std::function<std::string()> collector);
  std::string Render() const;

  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1,    5,     30};

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};  // cumulative at render time
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;
  std::vector<std::function<std::string()>> collectors_;
};

// "NOT_FOUND" for ErrorCode::kNotFound etc. (the gRPC spelling).
std::string GrpcCodeName(int code);

}  // namespace agentfense::server
