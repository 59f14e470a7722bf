"""Load: 50 concurrent gRPC clients × 100 execs each against one real server (spread over five
running sandboxes, ON_EXEC sync so every exec also commits), with no error at all; then every
sandbox is destroyed and nothing may be left behind: server fds back to their level before the
load, no supervisor or sandbox process, no mount, no cgroup. Marked `load` (runs in `make test`;
deselect with -m 'not load')."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc

from server_fixture import SERVER_BIN, cleanup_server, make_server

pytestmark = [
    pytest.mark.load,
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                       reason="needs root and /dev/fuse"),
]

CLIENTS = 50
EXECS = 100
SANDBOXES = 5


@pytest.fixture()
def server():
    if not SERVER_BIN.exists():
        pytest.fail(f"{SERVER_BIN} is missing: build the 'agentfense-server' target first")
    s = make_server()
    s.start()
    yield s
    cleanup_server(s)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def processes_mentioning(needle: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd:
            found.append(f"{entry.name}: {cmd[:200]}")
    return found


def cgroups_named(ids: list[str]) -> list[str]:
    out = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "8", "-type", "d", "-name", "sb_*"],
                         capture_output=True, text=True).stdout.split()
    return [p for p in out if any(p.endswith("/" + i) for i in ids)]


def test_fifty_clients_hundred_execs_no_errors_no_leaks(server):
    ch = server.channel()
    cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    c = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="load", owner_id="load"))

    def chunks():
        yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
            codebase_id=c.id, file_path="data/in.txt", total_size=6))
        yield codebase_pb2.UploadChunk(data=b"hello\n")
    cb.UploadFiles(chunks())
    rules = [common_pb2.PermissionRule(pattern="**/*", permission=common_pb2.PERMISSION_READ)]

    # Warm up the server's own pools (gRPC threads, executor, store) before the fd baseline.
    warm = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id=c.id, permissions=rules))
    sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=warm.id))
    for _ in range(20):
        sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=warm.id, command="true"))
    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=warm.id))
    time.sleep(0.5)
    baseline_fds = fd_count(server.proc.pid)

    ids = []
    for _ in range(SANDBOXES):
        s = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id=c.id, permissions=rules))
        sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=s.id))
        ids.append(s.id)

    errors: list[str] = []
    done = [0] * CLIENTS

    def client(n: int) -> None:
        # Each client is its own channel (its own HTTP/2 connection), like separate programs.
        with server.channel() as own:
            stub = sandbox_pb2_grpc.SandboxServiceStub(own)
            sid = ids[n % SANDBOXES]
            for i in range(EXECS):
                try:
                    r = stub.Exec(sandbox_pb2.ExecRequest(
                        sandbox_id=sid, command=f"cat data/in.txt; echo {n}-{i}"), timeout=120)
                    if r.exit_code != 0 or r.stdout != f"hello\n{n}-{i}\n":
                        errors.append(f"client {n} exec {i}: {r.exit_code} {r.stdout!r} {r.stderr!r}")
                    else:
                        done[n] += 1
                except grpc.RpcError as e:
                    errors.append(f"client {n} exec {i}: {e.code()} {e.details()}")

    start = time.time()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - start
    print(f"{CLIENTS * EXECS} execs in {elapsed:.1f}s: {CLIENTS * EXECS / elapsed:.0f}/s")
    assert errors == [], errors[:10]
    assert sum(done) == CLIENTS * EXECS

    for sid in ids:
        sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid))

    # Nothing left behind. The fd count may lag a little while gRPC closes idle connections.
    deadline = time.time() + 20
    while fd_count(server.proc.pid) > baseline_fds + 4 and time.time() < deadline:
        time.sleep(0.5)
    assert fd_count(server.proc.pid) <= baseline_fds + 4, (
        baseline_fds, sorted(os.readlink(f"/proc/{server.proc.pid}/fd/{f}")
                             for f in os.listdir(f"/proc/{server.proc.pid}/fd")))
    # A supervisor removes its sockets (DestroySandbox waits for that) just before it exits.
    run_dir = str(server.data_dir / "data" / "mounts")
    deadline = time.time() + 10
    while processes_mentioning(run_dir) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(run_dir) == []
    for sid in ids + [warm.id]:
        assert processes_mentioning(sid) == []
    with open("/proc/mounts") as f:
        mounts = f.read()
    assert str(server.data_dir) not in mounts
    assert cgroups_named(ids + [warm.id]) == []
    assert list((server.data_dir / "data" / "mounts" / ".run").iterdir()) == []
