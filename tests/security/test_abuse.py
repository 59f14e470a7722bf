"""I8: limits hold and the server survives abuse — fork bombs, memory and /tmp hogs, disk and
inode floods, 200 MiB of output, escaping the exec timeout, session and sandbox floods. Each case
ends with World.healthy(): both transports answer and a fresh exec works."""
from __future__ import annotations

import time

import grpc
import pytest

from secutil import World, codebase_pb2, rpc_code, sandbox_pb2, sandbox_pb2_grpc

LIMITS = sandbox_pb2.ResourceLimits(memory_bytes=128 << 20, pids_limit=64)


@pytest.fixture(scope="module")
def world(server):
    # Sandboxes here run with explicit limits; the agent-safe policy is unchanged.
    w = World(server, resources=LIMITS,
              delta_quota=sandbox_pb2.DeltaQuota(max_bytes=32 << 20, max_inodes=2000))
    w.setup()
    yield w
    w.check_integrity()
    w.teardown()


def test_fork_bomb_contained(world):
    r = world.exec("bomb() { bomb | bomb & }; bomb; sleep 3; echo survived", timeout=20)
    assert r is not None
    world.healthy()
    r = world.exec("ps -e --no-headers | wc -l")
    assert int(r.stdout.split()[0]) < 20, r.stdout


def test_memory_hog_killed(world):
    r = world.exec("python3 -c \"b=[]\nwhile True: b.append(bytearray(16<<20))\"; echo rc=$?",
                   timeout=60)
    assert "rc=0" not in r.stdout
    world.healthy()


def test_tmpfs_fill_bounded(world):
    # /tmp is memory: filling it must hit the sandbox memory limit (or a size cap), not the host.
    r = world.exec("dd if=/dev/zero of=/tmp/fill bs=1M count=1024 2>&1; ls -l /tmp/fill 2>&1; "
                   "rm -f /tmp/fill; true", timeout=120)
    sizes = [int(w) for line in r.stdout.splitlines() if "/tmp/fill" in line and line.startswith("-")
             for w in line.split()[4:5]]
    assert all(s < (1 << 30) for s in sizes), r.stdout
    world.healthy()


def test_disk_flood_in_workspace(world):
    # The delta quota (32 MiB) stops the flood with ENOSPC; without a delta the store takes it.
    r = world.exec("dd if=/dev/zero of=output/big bs=1M count=256 2>&1; echo rc=$?; "
                   "stat -c size=%s output/big; rm -f output/big", timeout=180)
    assert "size=" in r.stdout
    size = int(r.stdout.split("size=")[1].split()[0])
    assert size <= 32 << 20, size  # DeltaQuota.max_bytes: "writes past a limit fail with ENOSPC"
    world.commit()
    world.healthy()


def test_inode_flood_in_workspace(world):
    r = world.exec("mkdir -p output/inodes && cd output/inodes && "
                   "i=0; while [ $i -lt 5000 ]; do printf '' > f$i 2>/dev/null || break; i=$((i+1)); done; "
                   "echo made=$i; cd .. && rm -rf inodes", timeout=240)
    assert "made=" in r.stdout
    made = int(r.stdout.split("made=")[1].split()[0])
    assert made <= 2000, made  # DeltaQuota.max_inodes
    world.commit()
    world.healthy()


def test_200_mib_of_output_truncated(world):
    t0 = time.time()
    # A client that accepts big messages: the point is what the server sends, not the client cap.
    ch = grpc.insecure_channel(world.server.grpc_addr,
                               options=[("grpc.max_receive_message_length", 64 << 20),
                                        ("grpc.use_local_subchannel_pool", 1)])
    r = sandbox_pb2_grpc.SandboxServiceStub(ch).Exec(sandbox_pb2.ExecRequest(
        sandbox_id=world.sandbox_id, command="head -c 209715200 /dev/zero | tr '\\0' a; "
        "head -c 10485760 /dev/zero | tr '\\0' b >&2; echo done >&2"),
        timeout=300)
    ch.close()
    assert len(r.stdout) <= (16 << 20) + 4096, len(r.stdout)
    assert len(r.stderr) <= (16 << 20) + 4096
    assert time.time() - t0 < 300
    world.healthy()


def test_200_mib_streamed(world):
    n = 0
    for chunk in world.sb.ExecStream(sandbox_pb2.ExecRequest(
            sandbox_id=world.sandbox_id, command="head -c 209715200 /dev/zero"), timeout=300):
        n += len(chunk.data)
    assert n <= 210 << 20
    world.healthy()


def test_timeout_kills_whole_tree(world):
    with pytest.raises(grpc.RpcError) as e:
        world.exec("(sleep 300 &) ; setsid sh -c 'sleep 301 &' ; nohup sleep 302 & "
                   "trap '' TERM HUP; sleep 303", timeout=2)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    r = world.exec("sleep 1; ps -eo args --no-headers")
    assert "sleep 30" not in r.stdout, r.stdout


def test_session_flood(world):
    # Sessions hold a shell each: the flood ends at the pids limit with a clear error, the server
    # keeps answering, and the sandbox recovers once the sessions are gone.
    made, refused = [], 0
    try:
        for _ in range(300):
            try:
                made.append(world.sb.CreateSession(sandbox_pb2.CreateSessionRequest(
                    sandbox_id=world.sandbox_id), timeout=30).id)
            except grpc.RpcError as e:
                assert e.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    grpc.StatusCode.FAILED_PRECONDITION), e
                refused += 1
                if refused > 5:
                    break
        world.cb.GetCodebase(codebase_pb2.GetCodebaseRequest(codebase_id=world.codebase_id),
                             timeout=20)
        assert len(world.sb.ListSessions(sandbox_pb2.ListSessionsRequest(
            sandbox_id=world.sandbox_id), timeout=30).sessions) >= len(made)
    finally:
        for sid in made:
            rpc_code(world.sb.DestroySession, sandbox_pb2.DestroySessionRequest(session_id=sid),
                     timeout=30)
    world.healthy()


def test_sandbox_flood_per_owner_capped(world):
    made, code = [], grpc.StatusCode.OK
    for _ in range(1100):
        try:
            made.append(world.sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(
                codebase_id=world.codebase_id, permissions=world.rules), timeout=30).id)
        except grpc.RpcError as e:
            code = e.code()
            break
    try:
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and len(made) < 1000, (code, len(made))
        world.healthy()
    finally:
        for sid in made:
            world.destroy(sid)


def test_codebase_flood_and_listing(world):
    for i in range(200):
        world.cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name=f"f{i}", owner_id="flood"),
                                timeout=30)
    lst = world.cb.ListCodebases(codebase_pb2.ListCodebasesRequest(owner_id="flood"), timeout=30)
    assert lst is not None
    world.healthy()
