// libFuzzer target: upload metadata validation (service/validation.h, base/ids.h): the fields of
// an UploadChunk's metadata (and the REST file route's path and mode) decide where bytes land on
// the host, so each must either be refused or come out canonical:
//   - an accepted file path is relative, canonical, and re-validates to itself;
//   - an accepted codebase id is exactly "cb_" + 16 lowercase hex (safe as a directory name);
//   - an accepted mode has no bits beyond 07777.
//
// Input: a serialized UploadChunk (protobuf), as the gRPC transport would receive it; when it does
// not parse, the raw bytes are used as each field instead.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/ids.h"
#include "sandbox/v1/codebase.pb.h"
#include "service/validation.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void CheckFields(std::string_view id, std::string_view path, std::string_view mode) {
  using namespace agentfense;
  for (bool allow_empty : {false, true}) {
    auto p = service::ValidateFilePath("file_path", path, allow_empty);
    if (!p.ok()) continue;
    const std::string& rel = *p;
    Check(allow_empty || !rel.empty());
    Check(rel.empty() || (rel.front() != '/' && rel.back() != '/'));
    Check(rel.find("//") == std::string::npos && rel.find('\0') == std::string::npos);
    Check(rel.find('\\') == std::string::npos);
    Check(rel != ".." && rel.rfind("../", 0) != 0 && rel.find("/../") == std::string::npos &&
          (rel.size() < 3 || rel.compare(rel.size() - 3, 3, "/..") != 0));
    auto again = service::ValidateFilePath("file_path", rel, allow_empty);
    Check(again.ok() && *again == rel);
  }
  if (IsValidCodebaseId(id)) {
    Check(id.size() == 19 && id.substr(0, 3) == "cb_");
    for (char c : id.substr(3)) Check((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  }
  Check(IsValidCodebaseId(id) == ValidateCodebaseId(id).ok());
  auto m = service::ParseFileMode(mode, 0644);
  if (m.ok()) Check((*m & ~07777) == 0);
  (void)service::ValidateName("name", path);
  (void)service::ValidateCommand(path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sandbox::v1::UploadChunk chunk;
  if (chunk.ParseFromArray(data, static_cast<int>(size)) && chunk.has_metadata()) {
    const auto& m = chunk.metadata();
    CheckFields(m.codebase_id(), m.file_path(), m.file_path());
    return 0;
  }
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  CheckFields(raw, raw, raw);
  return 0;
}
