"""Fixtures of the end-to-end tests in tests/py (a test module may override one by name)."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from cli_fixtures import SECRET


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "project"
    (src / "src").mkdir(parents=True)
    (src / "src" / "app.py").write_text("print('hi')\n")
    (src / "secrets").mkdir()
    (src / "secrets" / "token").write_text(SECRET + "\n")
    (src / ".env").write_text(f"KEY={SECRET}\n")
    (src / "server.pem").write_text(SECRET + "\n")
    (src / ".git").mkdir()
    (src / ".git" / "config").write_text(SECRET + "\n")
    (src / "output").mkdir()
    (src / "README.md").write_text("readme\n")
    return src


@pytest.fixture
def rundir():
    # Where the CLI puts its private directory ($AGENTFENSE_RUNTIME_DIR). 0700 (mkdtemp): the
    # sandbox gets its mount as a descriptor and never traverses it.
    d = Path(tempfile.mkdtemp(prefix="af-cli-"))
    yield d
    for line in Path("/proc/mounts").read_text().splitlines():
        if str(d) in line:
            subprocess.run(["umount", "-l", line.split()[1]], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)
