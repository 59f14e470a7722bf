// A bound on JSON nesting, checked on the raw text before any parser sees it: recursive-descent
// parsers (protobuf's, nlohmann's) use stack per level, so deep input from a client or a daemon
// must be refused first. Linear, no allocation; brackets inside strings do not count.
#pragma once

#include <string_view>

namespace agentfense {

bool JsonNestingWithin(std::string_view text, int max_depth);

}  // namespace agentfense
