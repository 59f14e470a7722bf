// Libraries loaded with dlopen on first use instead of linked.
//
// Why: every process maps and relocates each library it links when it starts, whether it ever
// calls it or not, and the relocated pages (RELRO, .data) are private to the process. One
// supervisor runs per sandbox, so a library that an idle bwrap sandbox never calls costs that
// much per sandbox: libcurl (Docker's Engine API) with its dependencies (OpenSSL, GnuTLS, Kerberos,
// LDAP, ...) is 1.1 MiB of private memory and 32 KiB of page tables in every process that links
// it, libnftables (network on) 0.14 MiB (docs/PERFORMANCE.md, "Where an idle sandbox's memory
// goes"). Loaded here, a process pays for a library only once it uses it.
//
// A library is found as the dynamic linker finds a linked one (its soname, the system's search
// path), so loading it late trusts nothing that linking it did not. Handles are never closed:
// each user keeps an immutable table of the functions it resolved (a function-local static)
// for the life of the process.
#pragma once

#include <dlfcn.h>

#include "base/result.h"

namespace agentfense {

// dlopen(soname, RTLD_NOW | RTLD_LOCAL). kUnavailable, with dlerror's words, when it is missing.
Result<void*> LoadSharedLibrary(const char* soname);

// Resolves `name` in `lib` into `out`, whose type the caller takes from the library's own header
// (decltype(&::function)) so that the compiler checks every call's signature.
template <typename F>
Status ResolveSymbol(void* lib, const char* soname, const char* name, F* out) {
  *out = reinterpret_cast<F>(::dlsym(lib, name));
  if (*out == nullptr) {
    return Error(ErrorCode::kUnavailable,
                 std::string(soname) + " lacks " + name + " (a library too old?)");
  }
  return OkStatus();
}

}  // namespace agentfense
