// libFuzzer target: path normalization (base/path.h), the function every workspace path and every
// client path goes through before a policy decision or a store lookup. Besides "never crash", it
// checks the properties the policy engine and the store rely on:
//   - a normalized path is canonical: absolute, no empty/"."/".." segments, no trailing '/',
//     no NUL, within the length limits, and normalizing it again changes nothing;
//   - a validated relative path is canonical too and is exactly the normalized path minus '/';
//   - ParentPath/BaseName/JoinWorkspacePath/SplitPath agree with each other on canonical paths;
//   - a codebase path with one leading '/' validates as the same path without it.
//
// Input: byte 0 picks allow_empty for ValidateRelativePath; the rest is the path.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/path.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void CheckCanonicalSegments(std::string_view rel) {
  for (auto seg : agentfense::SplitPath(rel)) {
    Check(!seg.empty() && seg != "." && seg != "..");
    Check(seg.size() <= agentfense::kMaxNameBytes);
    Check(seg.find('/') == std::string_view::npos);
  }
}

void CheckNormalized(const std::string& n) {
  using agentfense::JoinWorkspacePath;
  using agentfense::ParentPath;
  Check(!n.empty() && n.front() == '/');
  Check(n.size() <= agentfense::kMaxPathBytes);
  Check(n == "/" || n.back() != '/');
  Check(n.find("//") == std::string::npos);
  Check(n.find('\0') == std::string::npos);
  CheckCanonicalSegments(n);
  auto again = agentfense::NormalizeWorkspacePath(n);
  Check(again.ok() && *again == n);
  if (n != "/") {
    const std::string parent = ParentPath(n);
    Check(n.size() > parent.size() && n.compare(0, parent.size(), parent) == 0);
    std::string_view last = agentfense::SplitPath(n).back();
    Check(JoinWorkspacePath(parent, last) == n);
    Check(agentfense::BaseName(n) == last);
  } else {
    Check(ParentPath(n) == "/");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  bool allow_empty = data[0] & 1;
  std::string_view path(reinterpret_cast<const char*>(data + 1), size - 1);

  auto n = agentfense::NormalizeWorkspacePath(path);
  if (n.ok()) CheckNormalized(*n);

  auto r = agentfense::ValidateRelativePath(path, allow_empty);
  if (r.ok()) {
    const std::string& rel = *r;
    Check(allow_empty || !rel.empty());
    Check(rel.empty() || (rel.front() != '/' && rel.back() != '/'));
    Check(rel.find('\\') == std::string::npos && rel.find('\0') == std::string::npos);
    CheckCanonicalSegments(rel);
    auto again = agentfense::ValidateRelativePath(rel, allow_empty);
    Check(again.ok() && *again == rel);
    // The store and the policy must name the same object: the relative form, made absolute,
    // is already the normalized workspace path.
    auto abs = agentfense::NormalizeWorkspacePath("/" + rel);
    Check(abs.ok() && *abs == (rel.empty() ? "/" : "/" + rel));
    // "/x" is the codebase's "x" (the reference's SDK writes it so), never anything else.
    if (rel.size() < agentfense::kMaxPathBytes) {
      auto rooted = agentfense::ValidateRelativePath("/" + rel, allow_empty);
      Check(rooted.ok() && *rooted == rel);
    }
  }
  return 0;
}
