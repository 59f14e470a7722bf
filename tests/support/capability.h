// Real-system tests need capabilities of the machine: root, /dev/fuse, bwrap, dockerd, a cgroup
// hierarchy, a toolchain inside the sandbox. A test that lacks one skips loudly on a developer's
// machine and FAILS when the environment variable CI is set (.ci/run sets it): CI promises every
// capability, so a skip there would be a test that passed without having run. Python suites get
// the same rule from the repository's conftest.py.
//
// AF_REQUIRE_CAPABILITY is the only GTEST_SKIP of the tree; scripts/check-vacuous-tests (a ctest)
// keeps it that way.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace agentfense::test_support {

// CI set to anything but "", "0" or "false".
inline bool InCi() {
  const char* ci = std::getenv("CI");
  if (ci == nullptr) return false;
  std::string v(ci);
  return !v.empty() && v != "0" && v != "false";
}

}  // namespace agentfense::test_support

// Use in a test body, SetUp or a void helper: `AF_REQUIRE_CAPABILITY(have_x, "why not");`.
// `why` is evaluated only when `cond` is false.
#define AF_REQUIRE_CAPABILITY(cond, why)                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      const std::string af_why_ = (why);                                                \
      if (::agentfense::test_support::InCi()) {                                         \
        FAIL() << "CI is set and a capability this test needs is missing: " << af_why_; \
      }                                                                                 \
      GTEST_SKIP() << "SKIPPED (missing capability; CI would fail): " << af_why_;       \
    }                                                                                   \
  } while (0)
