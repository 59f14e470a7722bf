// Path utilities shared by the policy engine, the filesystem and the API. Pure string functions: no
// I/O. Policy paths are absolute within the workspace ("/src/app.py"); API paths are relative.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace agentfense {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxNameBytes = 255;

// Normalizes a workspace path: adds a leading '/', collapses "//" and "." segments, drops a
// trailing '/'. Rejects NUL, ".." segments, components over 255 bytes and paths over 4096 bytes.
// "" and "/" both mean the root, "/".
Result<std::string> NormalizeWorkspacePath(std::string_view path);

// Validates a client-supplied codebase path (upload name, ListFiles path, file route) and returns
// it in canonical relative form ("a/b"). One leading '/' is accepted and means the codebase root:
// "/src/b.py" is "src/b.py" (the reference's SDK writes paths so; a codebase path never names a
// host path). Rejects "..", ".", empty segments (so "//x"), NUL, backslashes and over-long input.
// `allow_empty` admits "" and "/" (meaning the root).
Result<std::string> ValidateRelativePath(std::string_view path, bool allow_empty = false);

// The directory a command starts in, as the sandbox's agent takes it: "" = /workspace (left
// empty); an absolute path anywhere in the sandbox's own view (e.g. /tmp), which is all it can
// reach anyway; a relative one beneath /workspace, its ".." segments refused rather than resolved
// upwards. kInvalidArgument for NUL or over-long input. Shared by the API, the CLI and MCP.
Result<std::string> SandboxWorkdir(std::string_view workdir);

// Splits "/a/b/c" (or "a/b/c") into {"a","b","c"}. Empty segments are skipped.
std::vector<std::string_view> SplitPath(std::string_view path);

// Joins a normalized workspace directory path and a child name: ("/", "a") → "/a", ("/a", "b") → "/a/b".
std::string JoinWorkspacePath(std::string_view dir, std::string_view name);

// Parent of a normalized workspace path ("/a/b" → "/a", "/a" → "/", "/" → "/").
std::string ParentPath(std::string_view path);

// `path` is `root` or beneath it, both absolute and normalized ("/" holds everything):
// ("/a/b", "/a") and ("/a", "/a") → true, ("/ab", "/a") → false.
bool PathIsWithin(std::string_view path, std::string_view root);

// Last component of a normalized workspace path ("/a/b" → "b", "/" → "").
std::string BaseName(std::string_view path);

// The same two for canonical relative paths (ValidateRelativePath's form, "" = the root):
// ("", "a") → "a", ("a", "b") → "a/b"; "a/b/c" → {"a/b", "c"}, "c" → {"", "c"}.
std::string JoinRelativePath(std::string_view dir, std::string_view name);
std::pair<std::string, std::string> SplitRelativePath(std::string_view rel);

}  // namespace agentfense
