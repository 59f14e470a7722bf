"""End to end over real gRPC: codebase upload → sandbox with a policy → exec, sessions, policy
enforcement, stop/start, server kill -9 and re-adoption, destroy. Uses only the generated stubs,
as an existing AgentFense client would."""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc

from server_fixture import cleanup_server, make_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

FILES = {
    "src/app.py": b"print('hello from app')\n",
    "README.md": b"# demo\n",
    ".env": b"SECRET=CANARY-ENV-7731\n",
    "secrets/key.pem": b"CANARY-PEM-7731\n",
    "output/.keep": b"",
}


@pytest.fixture()
def server():
    s = make_server()
    s.start()
    yield s
    cleanup_server(s)


def upload(stub, codebase_id: str, path: str, data: bytes):
    def chunks():
        yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
            codebase_id=codebase_id, file_path=path, total_size=len(data)))
        for i in range(0, len(data), 65536):
            yield codebase_pb2.UploadChunk(data=data[i:i + 65536])
    return stub.UploadFiles(chunks())


def make_codebase(channel) -> str:
    cb = codebase_pb2_grpc.CodebaseServiceStub(channel)
    c = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="demo", owner_id="u1"))
    for path, data in FILES.items():
        upload(cb, c.id, path, data)
    return c.id


def agent_safe():
    P = common_pb2
    return [
        P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ, priority=0),
        P.PermissionRule(pattern="/output/**", permission=P.PERMISSION_WRITE, priority=10),
        P.PermissionRule(pattern="**/.env*", permission=P.PERMISSION_NONE, priority=100),
        P.PermissionRule(pattern="**/secrets/**", permission=P.PERMISSION_NONE, priority=100),
        P.PermissionRule(pattern="**/*.pem", permission=P.PERMISSION_NONE, priority=100),
    ]


def test_full_lifecycle_with_policy(server):
    ch = server.channel()
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    cb_id = make_codebase(ch)

    created = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(
        codebase_id=cb_id, permissions=agent_safe(), labels={"team": "a"}))
    assert created.status == common_pb2.SANDBOX_STATUS_PENDING
    assert created.id.startswith("sb_") and len(created.id) == 19
    started = sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=created.id))
    assert started.status == common_pb2.SANDBOX_STATUS_RUNNING
    assert started.started_at.seconds > 0

    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=created.id, command="cat src/app.py; ls -a"))
    assert r.exit_code == 0
    assert "hello from app" in r.stdout
    assert ".env" not in r.stdout and "secrets" not in r.stdout

    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=created.id,
                                        command="cat .env secrets/key.pem; echo err >&2; exit 3"))
    assert r.exit_code == 3
    assert "CANARY" not in r.stdout + r.stderr
    assert "err" in r.stderr

    # stdin, env, workdir
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=created.id, command="cat; echo $FOO; pwd",
                                        stdin="piped\n", env={"FOO": "bar"}, workdir="src"))
    assert r.stdout == "piped\nbar\n/workspace/src\n"

    # writes: allowed in /output, refused elsewhere
    r = sb.Exec(sandbox_pb2.ExecRequest(
        sandbox_id=created.id, command="echo ok > output/r.txt && echo x > src/app.py"))
    assert r.exit_code != 0

    # timeout → DEADLINE_EXCEEDED
    with pytest.raises(grpc.RpcError) as e:
        sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=created.id, command="sleep 30",
                                        timeout=duration_pb2.Duration(seconds=1)))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    # streaming: typed chunks, then the exit code
    outs = list(sb.ExecStream(sandbox_pb2.ExecRequest(
        sandbox_id=created.id, command="echo a; echo b >&2; exit 5")))
    assert outs[-1].HasField("exit_code") and outs[-1].exit_code == 5
    stdout = b"".join(o.data for o in outs if o.type == sandbox_pb2.ExecOutput.OUTPUT_TYPE_STDOUT)
    stderr = b"".join(o.data for o in outs if o.type == sandbox_pb2.ExecOutput.OUTPUT_TYPE_STDERR)
    assert stdout == b"a\n" and stderr == b"b\n"

    # sessions keep state
    sess = sb.CreateSession(sandbox_pb2.CreateSessionRequest(sandbox_id=created.id))
    assert sess.status == common_pb2.SESSION_STATUS_ACTIVE
    sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id,
                                                  command="cd src; export X=42; f() { echo fn; }"))
    r = sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="pwd; echo $X; f"))
    assert r.stdout == "/workspace/src\n42\nfn\n"
    listed = sb.ListSessions(sandbox_pb2.ListSessionsRequest(sandbox_id=created.id))
    assert [s.id for s in listed.sessions] == [sess.id]

    # its own host identity, leased while it runs (docs/OPERATIONS.md "Host identities")
    uid = sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=created.id)).host_uid
    assert 524288 <= uid <= 589823
    lease = Path("/run/agentfense/identities") / str(uid)
    assert lease.read_text() == created.id

    # the server dies hard; the sandbox and its session survive and are re-adopted
    server.kill9()
    server.start()
    ch = server.channel()
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    got = sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=created.id))
    assert got.status == common_pb2.SANDBOX_STATUS_RUNNING
    assert got.host_uid == uid  # re-adopted with the identity its supervisor still holds
    r = sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="pwd; echo $X"))
    assert r.stdout == "/workspace/src\n42\n"

    # exit ends the shell: that command reports normally, later ones are refused and the
    # session turns CLOSED
    try:
        sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="exit 0"))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as e:
        sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="true"))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sb.GetSession(sandbox_pb2.GetSessionRequest(
        session_id=sess.id)).status == common_pb2.SESSION_STATUS_CLOSED

    # stop, start again: the write to /output landed in the codebase
    stopped = sb.StopSandbox(sandbox_pb2.StopSandboxRequest(sandbox_id=created.id))
    assert stopped.status == common_pb2.SANDBOX_STATUS_STOPPED
    with pytest.raises(grpc.RpcError) as e:
        sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=created.id, command="true"))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=created.id))
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=created.id, command="cat output/r.txt"))
    assert r.stdout == "ok\n"
    # a restart asks for the identity it had (free again: nobody took it meanwhile)
    assert sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=created.id)).host_uid == uid
    with pytest.raises(grpc.RpcError) as e:
        sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=created.id))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # a codebase in use cannot be deleted
    cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
    with pytest.raises(grpc.RpcError) as e:
        cb.DeleteCodebase(codebase_pb2.DeleteCodebaseRequest(codebase_id=cb_id))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=created.id))
    with pytest.raises(grpc.RpcError) as e:
        sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=created.id))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    mnt = server.data_dir / "data" / "mounts" / created.id
    assert not mnt.exists()
    # the identity is free again: its lease is no longer held
    with open(lease, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open("/proc/mounts") as f:
        assert created.id not in f.read()


def test_status_semantics(server):
    ch = server.channel()
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    cases = [
        (lambda: sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id="")),
         grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id="sb_0000000000000000")),
         grpc.StatusCode.NOT_FOUND),
        # A malformed id names no sandbox (the reference answers NOT_FOUND) and reaches no path.
        (lambda: sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id="../../etc")),
         grpc.StatusCode.NOT_FOUND),
        (lambda: sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id="cb_0000000000000000")),
         grpc.StatusCode.NOT_FOUND),
        (lambda: sb.Exec(sandbox_pb2.ExecRequest(sandbox_id="sb_0000000000000000", command="true")),
         grpc.StatusCode.NOT_FOUND),
        (lambda: sb.GetSession(sandbox_pb2.GetSessionRequest(session_id="sess_0000000000000000")),
         grpc.StatusCode.NOT_FOUND),
    ]
    for call, code in cases:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == code, e.value.details()

    cb_id = make_codebase(ch)
    bad = common_pb2.PermissionRule(pattern="/a/../b", permission=common_pb2.PERMISSION_READ)
    with pytest.raises(grpc.RpcError) as e:
        sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id=cb_id, permissions=[bad]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    created = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id=cb_id,
                                                                permissions=agent_safe()))
    with pytest.raises(grpc.RpcError) as e:
        sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=created.id, command="true"))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = sb.ListSandboxes(sandbox_pb2.ListSandboxesRequest(codebase_id=cb_id))
    assert [s.id for s in listed.sandboxes] == [created.id]
    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=created.id))


def test_expiry_reaper(server):
    ch = server.channel()
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    cb_id = make_codebase(ch)
    created = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(
        codebase_id=cb_id, permissions=agent_safe(), expires_in=duration_pb2.Duration(seconds=1)))
    sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=created.id))
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=created.id))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND
            break
        time.sleep(0.3)
    else:
        pytest.fail("expired sandbox was not destroyed")
    with open("/proc/mounts") as f:
        assert created.id not in f.read()
