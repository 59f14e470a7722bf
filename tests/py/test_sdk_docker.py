"""The SDK with the Docker runtime (image agentfense-test/busybox from scripts/ensure-services):
from_local, resource limits, sessions, streaming and the policy inside a container."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import agentfense as af
from agentfense import ResourceLimits, RuntimeType, Sandbox
from server_fixture import cleanup_server, make_server

IMAGE = "agentfense-test/busybox"


def docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse") or not docker_ready(),
                                reason="needs root, /dev/fuse and dockerd with agentfense-test/busybox "
                                       "(scripts/ensure-services)")


@pytest.fixture(scope="module")
def server():
    s = make_server()
    s.start()
    yield s
    cleanup_server(s)


def test_docker_sandbox_from_local(server, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("from-host")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "k").write_text("CANARY-DOCKER")
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / ".keep").write_text("")
    with Sandbox.from_local(tmp_path, endpoint=server.grpc_addr, runtime=RuntimeType.DOCKER, image=IMAGE,
                            resources=ResourceLimits(memory_bytes=128 * 1024 * 1024, pids_limit=50)) as sb:
        assert sb.runtime == RuntimeType.DOCKER and sb.info.image == IMAGE
        assert sb.info.resources and sb.info.resources.pids_limit == 50
        r = sb.run("cat src/a.txt; ls -a; cat secrets/k; cat /proc/1/cgroup >/dev/null; echo ok")
        assert r.stdout.startswith("from-host") and "CANARY" not in r.stdout and "secrets" not in r.stdout
        assert r.stdout.endswith("ok\n")
        with sb.session() as s:
            s.exec("cd output && export Z=9")
            assert s.exec("pwd; echo $Z").stdout == "/workspace/output\n9\n"
        sb.write_file("output/w.txt", "written in docker")
        assert sb.read_file("output/w.txt") == "written in docker"
        st = sb.exec_stream("echo o; echo e >&2; exit 6")
        res = st.result()
        assert (res.stdout, res.stderr, res.exit_code) == ("o\n", "e\n", 6)
        with pytest.raises(af.CommandTimeoutError):
            sb.run("sleep 30", timeout=1)
