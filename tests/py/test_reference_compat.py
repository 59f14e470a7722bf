"""Issue 21, item 4: what the reference's own Python SDK does, run against our server with its call
shapes (sdk/python/sandbox_sdk/client.py of AjaxZhan/AgentFense: raw generated stubs, the requests
built exactly as it builds them), in the three places it used to fail, plus REST JSON that omits
unpopulated fields as grpc-gateway does by default."""
from __future__ import annotations

import json
import os
import urllib.request
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc

from server_fixture import http_json, running_server

pytestmark = pytest.mark.skipif(
    not os.environ.get("CI") and (os.geteuid() != 0 or not os.path.exists("/dev/fuse")),
    reason="needs root and /dev/fuse")


@pytest.fixture(scope="module")
def server():
    yield from running_server()


@pytest.fixture(scope="module")
def stubs(server):
    channel = server.channel()
    return sandbox_pb2_grpc.SandboxServiceStub(channel), codebase_pb2_grpc.CodebaseServiceStub(channel)


# --- the reference SDK's call shapes ------------------------------------------------------------

def upload_file(cb, codebase_id: str, file_path: str, content: bytes, chunk_size: int = 64 * 1024):
    def generate_chunks():
        yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
            codebase_id=codebase_id, file_path=file_path, total_size=len(content)))
        for i in range(0, len(content), chunk_size):
            yield codebase_pb2.UploadChunk(data=content[i:i + chunk_size])
    return cb.UploadFiles(generate_chunks())


def list_files(cb, codebase_id: str, path: str = "", recursive: bool = False):
    return cb.ListFiles(codebase_pb2.ListFilesRequest(codebase_id=codebase_id, path=path,
                                                      recursive=recursive)).files


def download_file(cb, codebase_id: str, file_path: str) -> bytes:
    req = codebase_pb2.DownloadFileRequest(codebase_id=codebase_id, file_path=file_path)
    return b"".join(r.data for r in cb.DownloadFile(req))


def create_sandbox(sb, codebase_id: str, permissions=None, labels=None):
    # `permissions or []`: the reference sends an empty list when none is given.
    return sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(
        codebase_id=codebase_id, permissions=permissions or [], labels=labels or {}))


def exec_(sb, sandbox_id: str, command: str, timeout: timedelta | None = None):
    request = sandbox_pb2.ExecRequest(sandbox_id=sandbox_id, command=command, stdin="", env={},
                                      workdir="")
    if timeout:
        request.timeout.CopyFrom(Duration(seconds=int(timeout.total_seconds())))
    return sb.Exec(request)


@pytest.fixture(scope="module")
def codebase(stubs):
    _, cb = stubs
    c = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="compat", owner_id="ref"))
    upload_file(cb, c.id, "README.md", b"readme\n")
    return c.id


# --- 1. a sandbox created with no permission rules starts, showing the root and nothing else ----

def test_sandbox_without_rules_starts_with_only_the_root_visible(stubs, codebase):
    sb, _ = stubs
    created = create_sandbox(sb, codebase)
    assert len(created.permissions) == 0
    started = sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=created.id))
    assert started.status == common_pb2.SANDBOX_STATUS_RUNNING
    r = exec_(sb, created.id, "ls -A /workspace; test -d /workspace && echo root-visible; "
                              "cat /workspace/README.md", timedelta(seconds=30))
    assert r.stdout == "root-visible\n", r.stdout
    assert r.exit_code != 0 and "No such file" in r.stderr
    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=created.id))


# --- 2. codebase paths with a leading '/' are codebase-relative ---------------------------------

def test_leading_slash_paths_are_codebase_relative(stubs, codebase, server):
    _, cb = stubs
    result = upload_file(cb, codebase, "/src/b.py", b"print('b')\n")
    assert result.file_path == "src/b.py" and result.size == 11
    assert [f.path for f in list_files(cb, codebase, path="/src")] == ["src/b.py"]
    assert {f.path for f in list_files(cb, codebase, path="/", recursive=True)} >= {"src", "src/b.py"}
    assert download_file(cb, codebase, "/src/b.py") == b"print('b')\n"
    # It names the codebase's root, never the host's: "/etc/passwd" is the codebase's etc/passwd.
    with pytest.raises(grpc.RpcError) as err:
        download_file(cb, codebase, "/etc/passwd")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    st, body = http_json(server, "GET", f"/v1/codebases/{codebase}/files?path=/src")
    assert st == 200 and [f["path"] for f in body["files"]] == ["src/b.py"]
    # Still refused: anything that is not a plain path under the root.
    for bad in ("//src/b.py", "/../x", "/src/../../x"):
        with pytest.raises(grpc.RpcError) as err:
            upload_file(cb, codebase, bad, b"x")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad


# --- 3. a malformed id answers NOT_FOUND; traversal-looking ids never reach a path --------------

def test_malformed_ids_are_not_found(stubs, server):
    sb, cb = stubs
    for call, req in [
            (sb.GetSandbox, sandbox_pb2.GetSandboxRequest(sandbox_id="sb_doesnotexist")),
            (sb.StartSandbox, sandbox_pb2.StartSandboxRequest(sandbox_id="sb_doesnotexist")),
            (sb.GetSandbox, sandbox_pb2.GetSandboxRequest(sandbox_id="../x")),
            (sb.GetSession, sandbox_pb2.GetSessionRequest(session_id="sess_nope")),
            (cb.GetCodebase, codebase_pb2.GetCodebaseRequest(codebase_id="cb_../../etc")),
            (cb.ListFiles, codebase_pb2.ListFilesRequest(codebase_id="../store"))]:
        with pytest.raises(grpc.RpcError) as err:
            call(req)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, req
    # A missing id stays the caller's mistake.
    with pytest.raises(grpc.RpcError) as err:
        sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=""))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    st, body = http_json(server, "GET", "/v1/sandboxes/sb_doesnotexist")
    assert st == 404 and body["code"] == 5
    st, _ = http_json(server, "GET", "/v1/codebases/..%2F..%2Fetc")
    assert st == 404
    # Nothing was created for any of them.
    assert not (server.data_dir / "data" / "etc").exists()


# --- REST JSON leaves unpopulated fields out, as grpc-gateway's default marshaler -----------------

def test_rest_json_omits_unpopulated_fields(stubs, server):
    st, created = http_json(server, "POST", "/v1/codebases", {"name": "empty", "owner_id": "ref"})
    assert st == 200
    assert "size" not in created and "fileCount" not in created, created
    st, sb = http_json(server, "POST", "/v1/sandboxes", {"codebaseId": created["id"]})
    assert st == 200
    assert "permissions" not in sb and "image" not in sb and "labels" not in sb, sb
    assert sb["status"] == "SANDBOX_STATUS_PENDING"
    st, _ = http_json(server, "POST", f"/v1/sandboxes/{sb['id']}/start", {})
    assert st == 200
    st, r = http_json(server, "POST", f"/v1/sandboxes/{sb['id']}/exec", {"command": "true"})
    assert st == 200 and "exitCode" not in r and "stdout" not in r and "duration" in r, r
    st, r = http_json(server, "POST", f"/v1/sandboxes/{sb['id']}/exec", {"command": "exit 3"})
    assert r["exitCode"] == 3
    # The streamed form still ends with its exit code, even 0 (an explicitly present field).
    req = urllib.request.Request(f"{server.http_base}/v1/sandboxes/{sb['id']}/exec:stream",
                                 data=b'{"command":"true"}', method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        lines = [json.loads(x) for x in resp.read().splitlines() if x.strip()]
    assert lines[-1] == {"result": {"exitCode": 0}}, lines
    http_json(server, "DELETE", f"/v1/sandboxes/{sb['id']}")
