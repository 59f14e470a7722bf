"""agentfense-server as an ordinary user (issue 19): its data in the user's own directory, the API
flow end to end (codebase, sandbox, exec, session, policy, sync, restart, destroy), the files it
writes owned by the user."""
from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from rootless_util import SECRET, USER
from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc
from server_fixture import cleanup_server, make_server

P = common_pb2


@pytest.fixture(scope="module")
def server(user):
    s = make_server(user=USER)
    s.start()
    yield s
    cleanup_server(s)


def upload(cb, cid: str, path: str, data: bytes) -> None:
    def chunks():
        yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
            codebase_id=cid, file_path=path, total_size=len(data)))
        yield codebase_pb2.UploadChunk(data=data)
    cb.UploadFiles(chunks())


def test_the_api_flow_runs_rootless(server, user):
    ch = server.channel()
    cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    c = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="rl", owner_id="rl"))
    upload(cb, c.id, "src/app.py", b"print('app')\n")
    upload(cb, c.id, ".env", (SECRET + "\n").encode())
    upload(cb, c.id, "output/.keep", b"")
    rules = [P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ),
             P.PermissionRule(pattern="/output/**", permission=P.PERMISSION_WRITE, priority=10),
             P.PermissionRule(pattern="**/.env*", permission=P.PERMISSION_NONE, priority=100)]
    s = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id=c.id, permissions=rules))
    started = sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=s.id), timeout=120)
    assert started.status == P.SANDBOX_STATUS_RUNNING
    # Rootless: the sandbox runs as the user itself (docs/RUNTIMES.md says what that shares).
    assert started.host_uid == user["uid"]

    r = sb.Exec(sandbox_pb2.ExecRequest(
        sandbox_id=s.id, command="python3 src/app.py; cat .env; ls -a; echo made > output/o.txt; "
                                 "echo x > src/app.py"))
    assert "app" in r.stdout and SECRET not in r.stdout + r.stderr and ".env" not in r.stdout
    assert r.exit_code != 0  # the last write was refused

    data = server.data_dir / "data"
    store = data / "codebases" / c.id
    made = next(p for p in store.rglob("o.txt"))
    assert made.read_text() == "made\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (user["uid"], user["gid"])
    assert (data.stat().st_uid, data.stat().st_mode & 0o777) == (user["uid"], 0o700)

    sess = sb.CreateSession(sandbox_pb2.CreateSessionRequest(sandbox_id=s.id))
    sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="cd src; X=7"))
    r = sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="pwd; echo $X"))
    assert r.stdout == "/workspace/src\n7\n"

    sb.UpdatePermissions(sandbox_pb2.UpdatePermissionsRequest(
        sandbox_id=s.id, permissions=rules + [P.PermissionRule(
            pattern="/src/**", permission=P.PERMISSION_NONE, priority=200)]))
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=s.id, command="cat src/app.py"))
    assert r.exit_code != 0 and "app" not in r.stdout

    with pytest.raises(grpc.RpcError) as e:
        sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=s.id, command="sleep 20",
                                        timeout=duration_pb2.Duration(seconds=1)))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    # The server restarts (killed outright) and re-adopts its running sandbox.
    server.kill9()
    server.start()
    ch = server.channel()
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    assert sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=s.id)).status == \
        P.SANDBOX_STATUS_RUNNING
    r = sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="echo $X"))
    assert r.stdout == "7\n"

    sb.StopSandbox(sandbox_pb2.StopSandboxRequest(sandbox_id=s.id))
    sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=s.id), timeout=120)
    assert sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=s.id, command="cat output/o.txt")).stdout \
        == "made\n"
    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=s.id))
    assert s.id not in Path("/proc/mounts").read_text()


def test_what_needs_root_is_refused_with_the_reason(server, user):
    ch = server.channel()
    cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    c = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="rl2", owner_id="rl"))
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    s = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(
        codebase_id=c.id, resources=sandbox_pb2.ResourceLimits(memory_bytes=256 << 20)))
    try:
        sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=s.id), timeout=120)
        assert v2, "limits cannot hold rootless on cgroup v1"
    except grpc.RpcError as e:
        assert "resource limits" in e.details() and "run as root" in e.details(), e.details()
    finally:
        sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=s.id))
