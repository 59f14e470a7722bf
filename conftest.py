"""Repository-wide pytest hooks: no test may pass without having run.

- In CI (env CI set to anything but "", "0" or "false", as .ci/run does) a skipped test is a
  failure: suites skip when a capability is missing (root, /dev/fuse, dockerd), and a CI run that
  silently skipped them would prove nothing. The C++ suites follow the same rule
  (tests/support/capability.h).
- xfail is never allowed, in CI or not: an expected failure is a test that cannot fail.
scripts/check-vacuous-tests (a ctest) keeps the trees free of xfail and of raw GTEST_SKIP.
"""
import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "") not in ("", "0", "false")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"xfail is not allowed (a test must be able to fail): {report.wasxfail}"
    elif in_ci() and report.skipped:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI (a required capability is missing): {reason}"
