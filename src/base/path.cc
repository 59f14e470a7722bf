#include "base/path.h"

namespace agentfense {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

Result<std::string> NormalizeWorkspacePath(std::string_view path) {
  if (path.size() > kMaxPathBytes) {
    return Error(ErrorCode::kInvalidArgument, "path longer than 4096 bytes");
  }
  if (path.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, "path contains a NUL byte");
  }
  std::string out;
  out.reserve(path.size() + 1);
  for (std::string_view seg : SplitPath(path)) {
    if (seg == ".") continue;
    if (seg == "..") return Error(ErrorCode::kInvalidArgument, "path contains a '..' segment");
    if (seg.size() > kMaxNameBytes) {
      return Error(ErrorCode::kInvalidArgument, "path component longer than 255 bytes");
    }
    out += '/';
    out += seg;
  }
  if (out.empty()) out = "/";
  return out;
}

Result<std::string> ValidateRelativePath(std::string_view path, bool allow_empty) {
  if (path.empty()) {
    if (allow_empty) return std::string();
    return Error(ErrorCode::kInvalidArgument, "path is empty");
  }
  if (path.size() > kMaxPathBytes) {
    return Error(ErrorCode::kInvalidArgument, "path longer than 4096 bytes");
  }
  if (path.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, "path contains a NUL byte");
  }
  if (path.find('\\') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, "path contains a backslash");
  }
  if (path.starts_with('/')) {
    path.remove_prefix(1);  // codebase-relative: "/src" is "src"
    if (path.empty()) {
      if (allow_empty) return std::string();
      return Error(ErrorCode::kInvalidArgument, "path names the codebase root, not a file");
    }
    if (path.starts_with('/')) {
      return Error(ErrorCode::kInvalidArgument, "path has an empty segment");
    }
  }
  // A single trailing '/' is tolerated for directories ("src/"); any other empty segment is not.
  std::string_view body = path;
  if (body.size() > 1 && body.back() == '/') body.remove_suffix(1);
  size_t i = 0;
  while (true) {
    size_t j = body.find('/', i);
    std::string_view seg = body.substr(i, j == std::string_view::npos ? j : j - i);
    if (seg.empty()) return Error(ErrorCode::kInvalidArgument, "path has an empty segment");
    if (seg == "." || seg == "..") {
      return Error(ErrorCode::kInvalidArgument, "path contains a '.' or '..' segment");
    }
    if (seg.size() > kMaxNameBytes) {
      return Error(ErrorCode::kInvalidArgument, "path component longer than 255 bytes");
    }
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  return std::string(body);
}

Result<std::string> SandboxWorkdir(std::string_view workdir) {
  if (workdir.empty()) return std::string();
  if (workdir.size() > kMaxPathBytes || workdir.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, "workdir is invalid");
  }
  if (workdir.front() == '/') return std::string(workdir);
  auto rel = NormalizeWorkspacePath(workdir);
  if (!rel.ok()) {
    return Error(ErrorCode::kInvalidArgument,
                 "workdir: a relative workdir must stay inside /workspace (" +
                     rel.error().ToString() + ")");
  }
  return *rel == "/" ? std::string("/workspace") : "/workspace" + *rel;
}

std::string JoinWorkspacePath(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (out.empty() || out.back() != '/') out += '/';
  out += name;
  return out;
}

std::string ParentPath(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

bool PathIsWithin(std::string_view path, std::string_view root) {
  if (root == "/" || path == root) return true;
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
         path[root.size()] == '/';
}

std::string BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string JoinRelativePath(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out.append(dir).append("/").append(name);
  return out;
}

std::pair<std::string, std::string> SplitRelativePath(std::string_view rel) {
  size_t slash = rel.rfind('/');
  if (slash == std::string_view::npos) return {"", std::string(rel)};
  return {std::string(rel.substr(0, slash)), std::string(rel.substr(slash + 1))};
}

}  // namespace agentfense
