// Logging facade. Everything logs through these macros so that the sink and format (text or JSON
// lines) are chosen once, at start-up, by InitLogging. Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "base/result.h"

namespace agentfense {

enum class LogFormat { kText, kJson };

// level: trace|debug|info|warn|error|off. Logs go to stderr.
Status InitLogging(std::string_view level, LogFormat format = LogFormat::kText);

}  // namespace agentfense

#define AF_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define AF_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define AF_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define AF_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
