"""Shared fixtures of the adversarial suite (tests/security): a real agentfense-server, a codebase
planted with canary secrets, sandboxes with the agent-safe style policy, and the invariant checks
every attack ends with. Why a separate suite: tests beside each layer prove that layer; this one
attacks the assembled system through its public API the way a hostile agent or client would."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))

import secutil  # noqa: E402  (path set up just above)
from server_fixture import cleanup_server, make_server  # noqa: E402

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
    reason="needs root and /dev/fuse (CI fails instead: see CI env check below)")


def pytest_collection_modifyitems(config, items):
    # In CI a missing capability is a failure, not a skip (team rule: no skipped test presented as
    # passing).
    in_ci = os.environ.get("CI", "") not in ("", "0", "false")  # as the root conftest.py
    if in_ci and (os.geteuid() != 0 or not os.path.exists("/dev/fuse")):
        raise pytest.UsageError("tests/security needs root and /dev/fuse in CI")
    for item in items:
        if "tests/security" in str(item.fspath):
            item.add_marker(needs_root)


@pytest.fixture(scope="module")
def server():
    s = make_server()
    s.start()
    yield s
    try:
        secutil.assert_no_canary_in_file(s.log_path)
    finally:
        cleanup_server(s)


@pytest.fixture(scope="module")
def world(server):
    """One planted codebase and one running agent-safe sandbox, shared by a module's cases."""
    w = secutil.World(server)
    w.setup()
    yield w
    w.check_integrity()
    w.teardown()


@pytest.fixture(autouse=True)
def _invariants_after_each(request):
    """Every case ends by re-checking the protected bytes of the module's world (if it has one)."""
    yield
    if "world" in request.fixturenames:
        w = request.getfixturevalue("world")
        w.check_integrity()
        w.check_host_canary()
