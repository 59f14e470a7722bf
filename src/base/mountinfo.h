// /proc/self/mountinfo, read one way for every layer: the filesystem asks whether a path is a FUSE
// mount point, the Docker launcher whether a bind will propagate. One parser, one unescaper.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentfense {

// One line: "id parent major:minor root mount_point options [optional...] - fstype source super".
struct MountinfoEntry {
  std::string mount_point;                 // decoded (see UnescapeMountinfo)
  std::vector<std::string_view> optional;  // "shared:N", "master:N", ... (views into the line)
  std::string_view fstype;                 // "" when the line has no " - " separator
};

// The kernel writes ' ', '\t', '\n' and '\\' in paths as \ooo. Only a well-formed escape (a
// backslash and three octal digits, the first 0-3) is decoded; anything else is kept verbatim, so
// a path that merely contains a backslash is not mangled.
std::string UnescapeMountinfo(std::string_view s);

// Parses one line; nullopt when it has fewer than the 6 mandatory leading fields.
std::optional<MountinfoEntry> ParseMountinfoLine(std::string_view line);

}  // namespace agentfense
