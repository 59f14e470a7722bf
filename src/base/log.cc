#include "base/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <memory>
#include <string>

namespace agentfense {

Status InitLogging(std::string_view level, LogFormat format) {
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps unknown names to "off"; only accept that when asked for explicitly.
  if (parsed == spdlog::level::off && level != "off") {
    return Error(ErrorCode::kInvalidArgument,
                 "unknown log level '" + std::string(level) +
                     "' (expected trace, debug, info, warn, error or off)");
  }
  auto logger = std::make_shared<spdlog::logger>(
      "agentfense", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (format == LogFormat::kJson) {
    logger->set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","thread":%t,"msg":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  }
  logger->set_level(parsed);
  spdlog::set_default_logger(std::move(logger));
  spdlog::set_level(parsed);
  return OkStatus();
}

}  // namespace agentfense
