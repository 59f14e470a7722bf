#include "base/mountinfo.h"

namespace agentfense {
namespace {

bool IsOctal(char c, char max) { return c >= '0' && c <= max; }

}  // namespace

std::string UnescapeMountinfo(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && IsOctal(s[i + 1], '3') && IsOctal(s[i + 2], '7') &&
        IsOctal(s[i + 3], '7')) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<MountinfoEntry> ParseMountinfoLine(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t sp = line.find(' ', pos);
    if (sp == std::string_view::npos) sp = line.size();
    if (sp > pos) fields.push_back(line.substr(pos, sp - pos));
    pos = sp + 1;
  }
  if (fields.size() < 6) return std::nullopt;
  MountinfoEntry entry;
  entry.mount_point = UnescapeMountinfo(fields[4]);
  size_t i = 6;
  for (; i < fields.size() && fields[i] != "-"; ++i) entry.optional.push_back(fields[i]);
  if (i + 1 < fields.size()) entry.fstype = fields[i + 1];
  return entry;
}

}  // namespace agentfense
