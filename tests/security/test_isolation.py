"""I6: sandboxes are isolated from each other and from other codebases — private /tmp, /dev/shm,
processes and caches; a second codebase's bytes never reach a sandbox of the first."""
from __future__ import annotations

import pytest

from secutil import World, canary, codebase_pb2, upload

OTHER = canary("OTHERTENANT")


@pytest.fixture(scope="module")
def two(server):
    a = World(server)
    a.setup()
    b = World(server)
    b.setup()
    cid = b.cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="other", owner_id="o")).id
    upload(b.cb, cid, "data.txt", (OTHER + "\n").encode())
    yield a, b
    a.teardown()
    b.teardown()


def test_tmp_and_shm_private(two):
    a, b = two
    a.exec("echo A-TMP > /tmp/a; echo A-SHM > /dev/shm/a 2>/dev/null; true")
    r = b.exec("cat /tmp/a /dev/shm/a 2>&1; ls /tmp /dev/shm; true")
    assert "A-TMP" not in r.stdout and "A-SHM" not in r.stdout


def test_processes_private(two):
    a, b = two
    import threading
    th = threading.Thread(target=a.exec, args=("exec sleep 3",))
    th.start()
    try:
        r = b.exec("sleep 1; ps -eo args --no-headers")
        assert "sleep 3" not in r.stdout
    finally:
        th.join()


def test_other_codebase_unreachable(two):
    a, _ = two
    r = a.exec("grep -r OTHERTENANT /workspace /tmp /run /dev/shm /etc /var /home /root -s -l; "
               "ls /workspace/.. /workspace/../..; true", timeout=120)
    assert OTHER not in r.stdout + r.stderr
    assert "data.txt" not in r.stdout


def test_write_in_one_sandbox_respects_other_policy(two):
    # Same codebase, two sandboxes: what the first writes reaches the second only through the
    # second's own rules (hidden names stay hidden there too).
    a, _ = two
    sid = a.new_sandbox()
    try:
        a.exec("echo shared > output/from_a.txt; cp output/from_a.txt output/.env.x 2>/dev/null; "
               "true")
        a.commit()
        r = a.exec("ls -a output; cat output/.env.x 2>&1; true", sandbox_id=sid)
        assert ".env.x\n" not in r.stdout and "shared" not in r.stdout
    finally:
        a.destroy(sid)
