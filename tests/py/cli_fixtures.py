"""What the CLI end-to-end tests (test_cli_run.py, test_cli_shell.py) share besides the fixtures in
conftest.py: the binary, the secret planted in the `tree` fixture, the leftover check for `rundir`."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AGENTFENSE_BUILD_DIR", REPO / "build"))
BINARY = BUILD / "bin" / "agentfense"
SECRET = "TOPSECRET-7f3a"

# The Docker runtime needs root: dockerd binds the sandbox's mount as root, which a rootless mount
# serves only with user_allow_other (docs/OPERATIONS.md, "Rootless"). As an ordinary user these
# cases skip (and fail in CI, which runs them as root).
needs_root_for_docker = pytest.mark.skipif(
    os.geteuid() != 0, reason="the Docker runtime needs root (docs/OPERATIONS.md, Rootless)")


def assert_clean(rundir):
    """No private directory, no mount and no process of ours is left."""
    left = list(rundir.iterdir())
    assert left == [], left
    assert str(rundir) not in Path("/proc/mounts").read_text()
    procs = subprocess.run(["pgrep", "-af", str(rundir)], capture_output=True, text=True).stdout
    assert procs.strip() == "", procs
