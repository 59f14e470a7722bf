"""The AgentFense extensions of the wire API on a real server, each over gRPC and its REST twin:
UpdatePermissions / ExplainPermission, GetAuditLog (denials ingested from the supervisors, once,
also across a kill -9 restart), gRPC DeleteFile, the CreateSandbox extensions (env, sync_mode,
network, delta quota, status_message) and sessions turning CLOSED when their shell exits."""
from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest
from google.protobuf import timestamp_pb2

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc

from server_fixture import http_json, running_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

P = common_pb2
FILES = {
    "src/app.py": b"print('hello')\n",
    ".env": b"SECRET=CANARY-EXT-4411\n",
    "output/.keep": b"",
}


def rules():
    return [
        P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ, priority=0),
        P.PermissionRule(pattern="/output/**", permission=P.PERMISSION_WRITE, priority=10),
        P.PermissionRule(pattern="**/.env*", permission=P.PERMISSION_NONE, priority=100),
    ]


@pytest.fixture()
def server():
    yield from running_server()


http = http_json


def upload(cb, codebase_id, path, data):
    def chunks():
        yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
            codebase_id=codebase_id, file_path=path, total_size=len(data)))
        if data:
            yield codebase_pb2.UploadChunk(data=data)
    return cb.UploadFiles(chunks())


def prepare(server, **create):
    ch = server.channel()
    cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    c = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="ext", owner_id="u1"))
    for path, data in FILES.items():
        upload(cb, c.id, path, data)
    created = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(
        codebase_id=c.id, permissions=create.pop("permissions", rules()), **create))
    return ch, cb, sb, c.id, created


def read_codebase(cb, codebase_id, path):
    try:
        return b"".join(ch.data for ch in cb.DownloadFile(codebase_pb2.DownloadFileRequest(
            codebase_id=codebase_id, file_path=path)))
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def test_update_and_explain_permissions(server):
    _, _, sb, _, created = prepare(server)
    sid = created.id
    sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=sid))
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command="cat .env"))
    assert r.exit_code != 0 and "CANARY" not in r.stdout + r.stderr

    # explain over both transports: identical answers
    ex = sb.ExplainPermission(sandbox_pb2.ExplainPermissionRequest(sandbox_id=sid, path=".env"))
    assert ex.path == "/.env"
    assert ex.permission == P.PERMISSION_NONE
    assert ex.deciding_rule == 2
    assert [m.index for m in ex.matching_rules] == [2, 0]
    assert ex.matching_rules[0].rule.pattern == "**/.env*"
    assert ex.reason
    status, body = http(server, "GET", f"/v1/sandboxes/{sid}/permissions:explain?path=%2F.env")
    assert status == 200
    assert body["path"] == "/.env" and body["permission"] == "PERMISSION_NONE"
    assert body["decidingRule"] == 2
    ex2 = sb.ExplainPermission(sandbox_pb2.ExplainPermissionRequest(sandbox_id=sid,
                                                                    path="/nothing/here"))
    assert ex2.permission == P.PERMISSION_READ and ex2.deciding_rule == 0
    for bad in ["../x", "a/../../x", "a\x00b"]:
        with pytest.raises(grpc.RpcError) as e:
            sb.ExplainPermission(sandbox_pb2.ExplainPermissionRequest(sandbox_id=sid, path=bad))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status, _ = http(server, "GET", f"/v1/sandboxes/{sid}/permissions:explain?path=..%2Fx")
    assert status == 400
    status, _ = http(server, "GET", f"/v1/sandboxes/{sid}/permissions:explain")
    assert status == 400

    # a bad rule list is refused and changes nothing
    with pytest.raises(grpc.RpcError) as e:
        sb.UpdatePermissions(sandbox_pb2.UpdatePermissionsRequest(
            sandbox_id=sid, permissions=[P.PermissionRule(pattern="/a/../b",
                                                           permission=P.PERMISSION_READ)]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status, _ = http(server, "PUT", f"/v1/sandboxes/{sid}/permissions",
                     {"permissions": [{"pattern": "**/*"}]})  # no permission: refused
    assert status == 400
    assert len(sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=sid)).permissions) == 3

    # hot change on the running sandbox: .env becomes readable before the call returns
    opened = rules()[:2]
    updated = sb.UpdatePermissions(sandbox_pb2.UpdatePermissionsRequest(sandbox_id=sid,
                                                                        permissions=opened))
    assert len(updated.permissions) == 2
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command="cat .env"))
    assert r.stdout == "SECRET=CANARY-EXT-4411\n"

    # and closed again over REST
    status, body = http(server, "PUT", f"/v1/sandboxes/{sid}/permissions", {"permissions": [
        {"pattern": "**/*", "permission": "PERMISSION_READ"},
        {"pattern": "**/.env*", "permission": "PERMISSION_NONE", "priority": 100}]})
    assert status == 200 and len(body["permissions"]) == 2
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command="cat .env; ls -a"))
    assert "CANARY" not in r.stdout + r.stderr and ".env" not in r.stdout

    # a stopped sandbox stores the rules and gets them at its next start
    sb.StopSandbox(sandbox_pb2.StopSandboxRequest(sandbox_id=sid))
    sb.UpdatePermissions(sandbox_pb2.UpdatePermissionsRequest(sandbox_id=sid, permissions=opened))
    sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=sid))
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command="cat .env"))
    assert r.stdout == "SECRET=CANARY-EXT-4411\n"

    with pytest.raises(grpc.RpcError) as e:
        sb.UpdatePermissions(sandbox_pb2.UpdatePermissionsRequest(
            sandbox_id="sb_0000000000000000", permissions=opened))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid))


def audit_all(sb, **kw):
    events, token = [], ""
    while True:
        page = sb.GetAuditLog(sandbox_pb2.GetAuditLogRequest(page_size=2, page_token=token, **kw))
        events.extend(page.events)
        token = page.next_page_token
        if not token:
            return events


def test_audit_log(server):
    _, _, sb, _, created = prepare(server)
    sid = created.id
    sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=sid))
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid,
                                        command="echo x > src/app.py; echo y > src/new.py; true"))
    assert r.exit_code == 0
    denied = audit_all(sb, sandbox_id=sid, kind="denied")
    paths = {e.path for e in denied}
    assert "/src/app.py" in paths, [(e.path, e.operation) for e in denied]
    assert all(e.kind == "denied" and e.sandbox_id == sid and e.rule for e in denied)
    ids = [e.id for e in denied]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    lifecycle = audit_all(sb, sandbox_id=sid, kind="lifecycle")
    assert [e.operation for e in lifecycle][:2] == ["created", "started"]

    # filters: path prefix, time window
    only = audit_all(sb, sandbox_id=sid, path_prefix="/src/app")
    assert only and all(e.path.startswith("/src/app") for e in only)
    future = sb.GetAuditLog(sandbox_pb2.GetAuditLogRequest(
        sandbox_id=sid, since=timestamp_pb2.Timestamp(seconds=int(time.time()) + 3600)))
    assert len(future.events) == 0

    # REST twins: same events, JSON conventions
    status, body = http(server, "GET", f"/v1/sandboxes/{sid}/audit?kind=denied&page_size=1000")
    assert status == 200
    assert [int(e["id"]) for e in body["events"]] == ids
    status, body = http(server, "GET",
                        f"/v1/audit?sandboxId={sid}&kind=denied&pathPrefix=%2Fsrc%2Fapp")
    assert status == 200 and {e["path"] for e in body["events"]} <= {"/src/app.py"}
    status, _ = http(server, "GET", "/v1/audit?since=yesterday")
    assert status == 400
    status, _ = http(server, "GET", "/v1/audit?page_token=garbage")
    assert status == 400
    status, _ = http(server, "GET", "/v1/sandboxes/sb_NOT-AN-ID/audit")
    assert status == 404  # a malformed id names no sandbox (the reference answers NOT_FOUND)

    # kill -9 and restart: nothing is ingested twice, new denials still arrive
    server.kill9()
    server.start()
    sb = sandbox_pb2_grpc.SandboxServiceStub(server.channel())
    again = audit_all(sb, sandbox_id=sid, kind="denied")
    assert [e.id for e in again] == ids
    sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command="echo z > src/app.py; true"))
    more = audit_all(sb, sandbox_id=sid, kind="denied")
    assert len(more) > len(ids) and [e.id for e in more][:len(ids)] == ids

    # the sandbox families of /metrics
    with urllib.request.urlopen(server.http_base + "/metrics", timeout=30) as resp:
        metrics = resp.read().decode()
    assert 'agentfense_sandboxes{state="running"} 1' in metrics
    assert 'agentfense_exec_duration_seconds_count{kind="exec"} 1' in metrics  # since restart
    assert "agentfense_denials_total " in metrics
    # FUSE request counts of the running (re-adopted) sandbox, asked of its supervisor
    lookups = [line for line in metrics.splitlines()
               if line.startswith('agentfense_fuse_requests{op="lookup"} ')]
    assert lookups and int(lookups[0].split()[-1]) > 0, metrics

    # the trail outlives the sandbox
    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid))
    after = audit_all(sb, sandbox_id=sid)
    assert [e.id for e in after if e.kind == "denied"] == [e.id for e in more]
    assert after[-1].operation == "destroyed"


def test_grpc_delete_file(server):
    ch = server.channel()
    cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
    c = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="d", owner_id="u1"))
    upload(cb, c.id, "a/b.txt", b"bee")
    upload(cb, c.id, "c.txt", b"see")
    cb.DeleteFile(codebase_pb2.DeleteFileRequest(codebase_id=c.id, file_path="a/b.txt"))
    assert read_codebase(cb, c.id, "a/b.txt") is None
    assert read_codebase(cb, c.id, "c.txt") == b"see"
    assert read_codebase(cb, c.id, "/c.txt") == b"see"  # a leading '/' is the codebase root
    got = cb.GetCodebase(codebase_pb2.GetCodebaseRequest(codebase_id=c.id))
    assert got.file_count == 1 and got.size == 3
    for path, code in [("a/b.txt", grpc.StatusCode.NOT_FOUND),
                       ("../c.txt", grpc.StatusCode.INVALID_ARGUMENT),
                       ("//c.txt", grpc.StatusCode.INVALID_ARGUMENT),
                       ("", grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.RpcError) as e:
            cb.DeleteFile(codebase_pb2.DeleteFileRequest(codebase_id=c.id, file_path=path))
        assert e.value.code() == code, (path, e.value.details())
    with pytest.raises(grpc.RpcError) as e:
        cb.DeleteFile(codebase_pb2.DeleteFileRequest(codebase_id="cb_0000000000000000",
                                                     file_path="c.txt"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # REST twin of the same service function
    req = urllib.request.Request(f"{server.http_base}/v1/codebases/{c.id}/files/c.txt",
                                 method="DELETE")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    assert read_codebase(cb, c.id, "c.txt") is None


def test_create_extensions_env_and_echo(server):
    _, _, sb, _, created = prepare(
        server, env={"FOO": "from-sandbox", "BAR": "b"}, sync_mode=sandbox_pb2.SYNC_MODE_MANUAL,
        delta_quota=sandbox_pb2.DeltaQuota(max_bytes=1 << 20, max_inodes=100))
    assert created.sync_mode == sandbox_pb2.SYNC_MODE_MANUAL
    assert created.delta_quota.max_bytes == 1 << 20 and created.delta_quota.max_inodes == 100
    assert created.network is False and created.status_message == ""
    sid = created.id
    sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=sid))
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command='echo "$FOO $BAR"'))
    assert r.stdout == "from-sandbox b\n"
    r = sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command='echo "$FOO $BAR"',
                                        env={"FOO": "from-request"}))
    assert r.stdout == "from-request b\n"
    sess = sb.CreateSession(sandbox_pb2.CreateSessionRequest(sandbox_id=sid, env={"BAR": "s"}))
    r = sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command='echo "$FOO $BAR"'))
    assert r.stdout == "from-sandbox s\n"

    status, body = http(server, "GET", f"/v1/sandboxes/{sid}")
    assert body["syncMode"] == "SYNC_MODE_MANUAL"
    assert body["deltaQuota"] == {"maxBytes": str(1 << 20), "maxInodes": "100"}

    # bad extension values are refused
    cb_id = created.codebase_id
    for kw in [{"env": {"A=B": "x"}}, {"env": {"": "x"}},
               {"delta_quota": sandbox_pb2.DeltaQuota(max_bytes=-1)}, {"sync_mode": 42}]:
        with pytest.raises(grpc.RpcError) as e:
            sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id=cb_id,
                                                              permissions=rules(), **kw))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kw
    status, _ = http(server, "POST", "/v1/sandboxes",
                     {"codebaseId": cb_id, "env": {"A=B": "x"}})
    assert status == 400
    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid))


def test_status_message_on_start_failure(server):
    _, _, sb, _, created = prepare(server, runtime=sandbox_pb2.RUNTIME_TYPE_DOCKER,
                                 image="agentfense-test/does-not-exist:nope")
    with pytest.raises(grpc.RpcError):
        sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=created.id))
    got = sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=created.id))
    assert got.status == P.SANDBOX_STATUS_ERROR
    assert got.status_message
    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=created.id))


def wait_closed(sb, session_id, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = sb.GetSession(sandbox_pb2.GetSessionRequest(session_id=session_id))
        if s.status == P.SESSION_STATUS_CLOSED:
            return s
        time.sleep(0.2)
    pytest.fail("session did not turn CLOSED")


def test_session_closed_when_shell_exits(server):
    _, _, sb, _, created = prepare(server)
    sid = created.id
    sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=sid))

    # `exit` in the session: CLOSED at once, without another command
    s1 = sb.CreateSession(sandbox_pb2.CreateSessionRequest(sandbox_id=sid))
    sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=s1.id, command="export N=7; cd src"))
    # the liveness check runs nothing in a live shell: its state is untouched
    for _ in range(3):
        assert sb.GetSession(sandbox_pb2.GetSessionRequest(
            session_id=s1.id)).status == P.SESSION_STATUS_ACTIVE
    r = sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=s1.id, command="echo $N; pwd"))
    assert r.stdout == "7\n/workspace/src\n"
    try:
        sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=s1.id, command="exit 3"))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    got = sb.GetSession(sandbox_pb2.GetSessionRequest(session_id=s1.id))
    assert got.status == P.SESSION_STATUS_CLOSED and got.closed_at.seconds > 0

    # a shell killed from outside the session: CLOSED within a few seconds, unprompted
    s2 = sb.CreateSession(sandbox_pb2.CreateSessionRequest(sandbox_id=sid))
    pid = sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=s2.id,
                                                        command="echo $$")).stdout.strip()
    assert pid.isdigit()
    sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command=f"kill -9 {pid}"))
    deadline = time.time() + 10
    while time.time() < deadline:
        listed = sb.ListSessions(sandbox_pb2.ListSessionsRequest(sandbox_id=sid))
        st = {s.id: s.status for s in listed.sessions}
        if st[s2.id] == P.SESSION_STATUS_CLOSED:
            break
        time.sleep(0.2)
    else:
        pytest.fail("killed session still ACTIVE")
    status, body = http(server, "GET", f"/v1/sessions/{s2.id}")
    assert body["status"] == "SESSION_STATUS_CLOSED"
    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid))
