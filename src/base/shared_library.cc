#include "base/shared_library.h"

#include <string>

namespace agentfense {

Result<void*> LoadSharedLibrary(const char* soname) {
  void* lib = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = ::dlerror();
    return Error(ErrorCode::kUnavailable,
                 std::string("cannot load ") + soname + ": " + (why != nullptr ? why : "?"));
  }
  return lib;
}

}  // namespace agentfense
