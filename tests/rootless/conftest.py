"""The rootless suites (issue 19): AgentFense run by an ordinary user created here, with only
Debian's stock setup (fusermount3 setuid, /dev/fuse crw-rw-rw-, unprivileged user namespaces, no
user_allow_other). The harness itself stays root, to create the user and to look at the host; every
AgentFense process under test runs as the user."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))

from rootless_util import SECRET, USER  # noqa: E402
from server_fixture import binaries_for, ensure_user  # noqa: E402


def pytest_collection_modifyitems(config, items):
    problem = ""
    if os.geteuid() != 0:
        problem = "the rootless suites need root to create their ordinary user"
    elif not os.path.exists("/dev/fuse"):
        problem = "/dev/fuse is missing"
    elif stat.S_IMODE(os.stat("/dev/fuse").st_mode) & 0o006 != 0o006:
        problem = ("/dev/fuse is not crw-rw-rw- as on stock Debian (scripts/ensure-services sets "
                   "it)")
    if not problem:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"tests/rootless: {problem}")
    for item in items:
        if "tests/rootless" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture(scope="session")
def user():
    uid, gid, home = ensure_user(USER)
    return {"name": USER, "uid": uid, "gid": gid, "home": Path(home)}


@pytest.fixture(scope="session")
def bins(user) -> Path:
    return binaries_for(USER)


@pytest.fixture
def tree(user, tmp_path_factory):
    """A project of the user's own, with secrets a policy hides."""
    base = Path(subprocess.run(["mktemp", "-d", "-p", str(user["home"]), "proj-XXXXXX"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (base / "src").mkdir()
    (base / "src" / "app.py").write_text("print('hi from rootless')\n")
    (base / "secrets").mkdir()
    (base / "secrets" / "token").write_text(SECRET + "\n")
    (base / ".env").write_text(f"KEY={SECRET}\n")
    (base / "output").mkdir()
    (base / "README.md").write_text("readme\n")
    subprocess.run(["chown", "-R", f"{user['uid']}:{user['gid']}", str(base)], check=True)
    yield base
    subprocess.run(["rm", "-rf", str(base)])
