// The host identity real-system tests run their sandboxes as: leased once per test process from
// the product's range, exactly as a supervisor leases one (runtime/identity.h), so a test sandbox
// never shares a uid with another live sandbox on the machine.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "runtime/identity.h"

namespace agentfense::testing {

inline const runtime::IdentityLease& TestIdentity() {
  static const runtime::IdentityLease lease = [] {
    auto l = runtime::IdentityLease::Acquire(runtime::IdentityRange{}, runtime::kDefaultLeaseDir, 0,
                                             "test-" + std::to_string(::getpid()));
    if (!l.ok()) {
      std::cerr << "cannot lease a test identity: " << l.error().ToString() << "\n";
      std::abort();
    }
    return std::move(*l);
  }();
  return lease;
}

}  // namespace agentfense::testing
