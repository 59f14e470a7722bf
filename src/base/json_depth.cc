#include "base/json_depth.h"

namespace agentfense {

bool JsonNestingWithin(std::string_view text, int max_depth) {
  int depth = 0;
  char quote = 0;  // the quote that opened the current string, 0 outside strings
  bool escaped = false;
  for (char c : text) {
    if (quote != 0) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    switch (c) {
      // protobuf's JSON parser also accepts single-quoted strings; a guard that knew only '"'
      // would see `'"'` as an unterminated string and stop counting the nesting behind it.
      // Parsers that reject single quotes fail at the quote, before any depth, so treating both
      // as string delimiters is safe for every parser behind this guard.
      case '"':
      case '\'':
        quote = c;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) return false;
        break;
      case ']':
      case '}':
        // Never below 0: leading closers must not bank credit for deeper nesting later.
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return true;
}

}  // namespace agentfense
