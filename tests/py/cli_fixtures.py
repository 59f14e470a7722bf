"""What the CLI end-to-end tests (test_cli_run.py, test_cli_shell.py) share besides the fixtures in
conftest.py: the binary, the secret planted in the `tree` fixture, the leftover check for `rundir`."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AGENTFENSE_BUILD_DIR", REPO / "build"))
BINARY = BUILD / "bin" / "agentfense"
SECRET = "TOPSECRET-7f3a"


def assert_clean(rundir):
    """No private directory, no mount and no process of ours is left."""
    left = list(rundir.iterdir())
    assert left == [], left
    assert str(rundir) not in Path("/proc/mounts").read_text()
    procs = subprocess.run(["pgrep", "-af", str(rundir)], capture_output=True, text=True).stdout
    assert procs.strip() == "", procs
