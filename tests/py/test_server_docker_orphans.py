"""Docker orphan cleanup at server start-up: a container labelled as this server's (its instance
label derives from storage.mount_path) whose sandbox does not exist is removed; a container of
another instance (another server sharing the dockerd) is left alone. Real dockerd, real server."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from server_fixture import SERVER_BIN, cleanup_server, make_server

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("docker") is None or
    subprocess.run(["docker", "info"], capture_output=True).returncode != 0,
    reason="needs root and a running dockerd (scripts/ensure-services)")

IMAGE = "agentfense-test/busybox:latest"


def instance_for(mount_path: str) -> str:
    """The server's instance label: 'af' + 48 bits of FNV-1a 64 of storage.mount_path."""
    h = 1469598103934665603
    for b in mount_path.encode():
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"af{h & 0xFFFFFFFFFFFF:012x}"


def make_container(instance: str, sandbox_id: str) -> str:
    name = f"agentfense-{instance}-{sandbox_id}"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    p = subprocess.run(["docker", "create", "--name", name,
                        "--label", "agentfense.managed=true",
                        "--label", f"agentfense.instance={instance}",
                        "--label", f"agentfense.sandbox={sandbox_id}",
                        IMAGE, "sleep", "1000"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return name


def exists(name: str) -> bool:
    return subprocess.run(["docker", "inspect", name], capture_output=True).returncode == 0


def test_orphaned_containers_removed_at_startup():
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode:
        pytest.fail(f"{IMAGE} missing: run scripts/ensure-services")
    if not SERVER_BIN.exists():
        pytest.fail(f"{SERVER_BIN} is missing: build the 'agentfense-server' target first")
    server = make_server(extra_config="runtime:\n  type: docker\n")
    ours = instance_for(str(server.data_dir / "data" / "mounts"))
    theirs = instance_for(str(server.data_dir / "elsewhere"))
    orphan = make_container(ours, "sb_00000000deadbeef")
    foreign = make_container(theirs, "sb_00000000deadbeef")
    try:
        server.start()
        deadline = time.time() + 30
        while exists(orphan) and time.time() < deadline:
            time.sleep(0.3)
        assert not exists(orphan), server.log_path.read_text()[-3000:]
        assert exists(foreign)
        assert "orphan" in server.log_path.read_text()
    finally:
        subprocess.run(["docker", "rm", "-f", orphan, foreign], capture_output=True)
        cleanup_server(server)
