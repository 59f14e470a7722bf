"""The copy-on-write delta through the server: sync modes (ON_EXEC commits before the exec reply,
ON_STOP at stop, MANUAL only on CommitChanges, NEVER refuses it), ListChanges / CommitChanges /
DiscardChanges over gRPC and REST, a stopped sandbox answering FAILED_PRECONDITION, and a commit
becoming visible in another running sandbox of the same codebase."""
from __future__ import annotations

import os

import grpc
import pytest

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc

from server_fixture import http_json, running_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

P = common_pb2
S = sandbox_pb2


def rules():
    return [P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ),
            P.PermissionRule(pattern="/output/**", permission=P.PERMISSION_WRITE, priority=10)]


@pytest.fixture()
def server():
    yield from running_server()


http = http_json


class Env:
    def __init__(self, server):
        ch = server.channel()
        self.cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
        self.sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
        c = self.cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="delta", owner_id="u"))
        self.cb_id = c.id
        self.put("output/.keep", b"")
        self.put("output/old.txt", b"old\n")

    def put(self, path, data):
        def chunks():
            yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
                codebase_id=self.cb_id, file_path=path, total_size=len(data)))
            if data:
                yield codebase_pb2.UploadChunk(data=data)
        self.cb.UploadFiles(chunks())

    def read(self, path):
        try:
            return b"".join(c.data for c in self.cb.DownloadFile(
                codebase_pb2.DownloadFileRequest(codebase_id=self.cb_id, file_path=path)))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def sandbox(self, mode):
        s = self.sb.CreateSandbox(S.CreateSandboxRequest(codebase_id=self.cb_id,
                                                         permissions=rules(), sync_mode=mode))
        self.sb.StartSandbox(S.StartSandboxRequest(sandbox_id=s.id))
        return s.id

    def run(self, sid, cmd):
        r = self.sb.Exec(S.ExecRequest(sandbox_id=sid, command=cmd))
        assert r.exit_code == 0, r.stderr
        return r.stdout


def test_on_exec_commits_before_the_reply(server):
    e = Env(server)
    sid = e.sandbox(S.SYNC_MODE_UNSPECIFIED)
    assert e.sb.GetSandbox(S.GetSandboxRequest(sandbox_id=sid)).sync_mode == S.SYNC_MODE_ON_EXEC
    e.run(sid, "echo new > output/new.txt; rm output/old.txt")
    assert e.read("output/new.txt") == b"new\n"
    assert e.read("output/old.txt") is None
    assert len(e.sb.ListChanges(S.ListChangesRequest(sandbox_id=sid)).changes) == 0
    # a session command commits too
    sess = e.sb.CreateSession(S.CreateSessionRequest(sandbox_id=sid))
    e.sb.SessionExec(S.SessionExecRequest(session_id=sess.id, command="echo s > output/s.txt"))
    assert e.read("output/s.txt") == b"s\n"


def test_manual_list_commit_discard_over_both_transports(server):
    e = Env(server)
    sid = e.sandbox(S.SYNC_MODE_MANUAL)
    e.run(sid, "echo one > output/one.txt; echo changed > output/old.txt")
    assert e.read("output/one.txt") is None          # not committed yet
    assert e.read("output/old.txt") == b"old\n"
    assert e.run(sid, "cat output/one.txt") == "one\n"  # but the sandbox sees its own writes

    listed = e.sb.ListChanges(S.ListChangesRequest(sandbox_id=sid))
    kinds = {c.path: c.kind for c in listed.changes}
    assert kinds == {"/output/one.txt": S.CHANGE_KIND_ADDED,
                     "/output/old.txt": S.CHANGE_KIND_MODIFIED}
    assert listed.delta_bytes > 0
    status, body = http(server, "GET", f"/v1/sandboxes/{sid}/changes")
    assert status == 200
    assert {c["path"]: c["kind"] for c in body["changes"]} == {
        "/output/one.txt": "CHANGE_KIND_ADDED", "/output/old.txt": "CHANGE_KIND_MODIFIED"}

    committed = e.sb.CommitChanges(S.CommitChangesRequest(sandbox_id=sid))
    assert {c.path for c in committed.applied} == {"/output/one.txt", "/output/old.txt"}
    assert len(committed.errors) == 0
    assert e.read("output/one.txt") == b"one\n" and e.read("output/old.txt") == b"changed\n"

    e.run(sid, "echo two > output/two.txt")
    status, body = http(server, "POST", f"/v1/sandboxes/{sid}/changes:discard", {})
    assert status == 200 and body["discarded"] == 1
    assert e.run(sid, "ls -A output").split() == [".keep", "old.txt", "one.txt"]
    assert e.read("output/two.txt") is None

    e.run(sid, "echo three > output/three.txt")
    status, body = http(server, "POST", f"/v1/sandboxes/{sid}/changes:commit", {})
    assert status == 200 and [c["path"] for c in body["applied"]] == ["/output/three.txt"]
    assert e.read("output/three.txt") == b"three\n"


def test_on_stop_never_and_stopped(server):
    e = Env(server)
    on_stop = e.sandbox(S.SYNC_MODE_ON_STOP)
    e.run(on_stop, "echo s > output/stop.txt")
    assert e.read("output/stop.txt") is None
    e.sb.StopSandbox(S.StopSandboxRequest(sandbox_id=on_stop))
    assert e.read("output/stop.txt") == b"s\n"
    for call in (lambda: e.sb.ListChanges(S.ListChangesRequest(sandbox_id=on_stop)),
                 lambda: e.sb.CommitChanges(S.CommitChangesRequest(sandbox_id=on_stop)),
                 lambda: e.sb.DiscardChanges(S.DiscardChangesRequest(sandbox_id=on_stop))):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status, _ = http(server, "GET", f"/v1/sandboxes/{on_stop}/changes")
    assert status == 400  # FAILED_PRECONDITION maps to 400 in grpc-gateway

    never = e.sandbox(S.SYNC_MODE_NEVER)
    e.run(never, "echo n > output/never.txt")
    with pytest.raises(grpc.RpcError) as err:
        e.sb.CommitChanges(S.CommitChangesRequest(sandbox_id=never))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    e.sb.StopSandbox(S.StopSandboxRequest(sandbox_id=never))
    assert e.read("output/never.txt") is None

    with pytest.raises(grpc.RpcError) as err:
        e.sb.ListChanges(S.ListChangesRequest(sandbox_id="sb_0000000000000000"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_commit_is_seen_by_other_sandboxes(server):
    e = Env(server)
    writer = e.sandbox(S.SYNC_MODE_MANUAL)
    reader = e.sandbox(S.SYNC_MODE_MANUAL)
    assert e.run(reader, "ls -A output").split() == [".keep", "old.txt"]  # caches the listing
    assert e.run(reader, "cat output/old.txt") == "old\n"
    e.run(writer, "echo fresh > output/fresh.txt; echo v2 > output/old.txt")
    assert e.run(reader, "ls -A output").split() == [".keep", "old.txt"]
    e.sb.CommitChanges(S.CommitChangesRequest(sandbox_id=writer))
    assert e.run(reader, "ls -A output").split() == [".keep", "fresh.txt", "old.txt"]
    assert e.run(reader, "cat output/fresh.txt output/old.txt") == "fresh\nv2\n"


def test_api_upload_and_delete_seen_by_running_sandboxes(server):
    e = Env(server)
    sid = e.sandbox(S.SYNC_MODE_ON_EXEC)
    assert e.run(sid, "ls -A output").split() == [".keep", "old.txt"]  # caches the listing
    assert e.run(sid, "cat output/old.txt") == "old\n"
    e.put("output/pushed.txt", b"pushed\n")
    e.put("output/old.txt", b"replaced\n")
    assert e.run(sid, "ls -A output").split() == [".keep", "old.txt", "pushed.txt"]
    assert e.run(sid, "cat output/pushed.txt output/old.txt") == "pushed\nreplaced\n"
    e.cb.DeleteFile(codebase_pb2.DeleteFileRequest(codebase_id=e.cb_id, file_path="output/pushed.txt"))
    assert e.run(sid, "ls -A output").split() == [".keep", "old.txt"]
