// Path utilities shared by the policy engine, the filesystem and the API. Pure string functions: no
// I/O. Policy paths are absolute within the workspace ("/src/app.py"); API paths are relative.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace agentfense {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxNameBytes = 255;

// Normalizes a workspace path: adds a leading '/', collapses "//" and "." segments, drops a
// trailing '/'. Rejects NUL, ".." segments, components over 255 bytes and paths over 4096 bytes.
// "" and "/" both mean the root, "/".
Result<std::string> NormalizeWorkspacePath(std::string_view path);

// Validates a client-supplied relative path (upload name, ListFiles path, file route) and returns
// it in canonical form ("a/b"). Rejects absolute paths, "..", ".", empty segments, NUL, backslashes
// and over-long input. `allow_empty` admits "" (meaning the root).
Result<std::string> ValidateRelativePath(std::string_view path, bool allow_empty = false);

// Splits "/a/b/c" (or "a/b/c") into {"a","b","c"}. Empty segments are skipped.
std::vector<std::string_view> SplitPath(std::string_view path);

// Joins a normalized workspace directory path and a child name: ("/", "a") → "/a", ("/a", "b") → "/a/b".
std::string JoinWorkspacePath(std::string_view dir, std::string_view name);

// Parent of a normalized workspace path ("/a/b" → "/a", "/a" → "/", "/" → "/").
std::string_view ParentPath(std::string_view path);

}  // namespace agentfense
