"""The real agentfense-server binary, driven by plain generated gRPC stubs and plain HTTP (urllib),
as an existing AgentFense client would: codebase create / upload / list / download / delete, the
REST twins of each, and the control-plane guards (token, CSRF, Host)."""
from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request

import grpc
import pytest

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc

from server_fixture import SERVER_BIN, cleanup_server, make_server

TOKEN = "py-test-token-1234"


@pytest.fixture()
def server():
    if not SERVER_BIN.exists():
        pytest.fail(f"{SERVER_BIN} is missing: build the 'agentfense-server' target first")
    srv = make_server(token=TOKEN)
    srv.start()
    yield srv
    cleanup_server(srv)


def md(token=TOKEN):
    return (("authorization", f"Bearer {token}"),)


def http(server, method, path, body=None, content_type="application/json", token=TOKEN,
         host="localhost"):
    req = urllib.request.Request(server.http_base + path, method=method, data=body)
    if body is not None and content_type:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def upload(stub, codebase_id, path, data, chunk=64 * 1024):
    def chunks():
        yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
            codebase_id=codebase_id, file_path=path, total_size=len(data)))
        for off in range(0, len(data), chunk):
            yield codebase_pb2.UploadChunk(data=data[off:off + chunk])
    return stub.UploadFiles(chunks(), metadata=md())


def test_codebase_lifecycle_over_grpc_and_rest(server):
    stub = codebase_pb2_grpc.CodebaseServiceStub(server.channel())
    cb = stub.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="demo", owner_id="alice"),
                             metadata=md())
    assert cb.id.startswith("cb_") and len(cb.id) == 19

    payload = os.urandom(300 * 1024 + 5)
    res = upload(stub, cb.id, "src/data.bin", payload)
    assert res.size == len(payload)
    assert res.checksum == hashlib.md5(payload).hexdigest()
    assert res.file_path == "src/data.bin"

    # REST upload (extension) with a mode, then gRPC sees both files.
    status, body = http(server, "PUT", f"/v1/codebases/{cb.id}/files/run.sh?mode=0755",
                        b"#!/bin/sh\necho hi\n", "application/octet-stream")
    assert status == 200, body
    assert json.loads(body)["checksum"] == hashlib.md5(b"#!/bin/sh\necho hi\n").hexdigest()

    files = stub.ListFiles(codebase_pb2.ListFilesRequest(codebase_id=cb.id, recursive=True),
                           metadata=md())
    assert sorted(f.path for f in files.files) == ["run.sh", "src", "src/data.bin"]
    status, body = http(server, "GET", f"/v1/codebases/{cb.id}/files?recursive=true")
    assert status == 200
    rest_files = json.loads(body)["files"]
    assert [f["path"] for f in rest_files] == [f.path for f in files.files]
    # Fields at their zero value are left out (grpc-gateway's default): a file has no "isDir".
    assert {f["path"]: f.get("isDir", False) for f in rest_files} == {
        "run.sh": False, "src": True, "src/data.bin": False}

    got = b"".join(c.data for c in stub.DownloadFile(
        codebase_pb2.DownloadFileRequest(codebase_id=cb.id, file_path="src/data.bin"),
        metadata=md()))
    assert got == payload
    status, body = http(server, "GET", f"/v1/codebases/{cb.id}/files/src/data.bin")
    assert status == 200 and body == payload

    again = stub.GetCodebase(codebase_pb2.GetCodebaseRequest(codebase_id=cb.id), metadata=md())
    assert again.size == len(payload) + 18
    assert again.file_count == 2
    status, body = http(server, "GET", f"/v1/codebases/{cb.id}")
    j = json.loads(body)
    assert j["size"] == str(len(payload) + 18) and j["fileCount"] == 2 and j["ownerId"] == "alice"

    listed = stub.ListCodebases(codebase_pb2.ListCodebasesRequest(owner_id="alice"), metadata=md())
    assert [c.id for c in listed.codebases] == [cb.id]

    stub.DeleteCodebase(codebase_pb2.DeleteCodebaseRequest(codebase_id=cb.id), metadata=md())
    with pytest.raises(grpc.RpcError) as err:
        stub.GetCodebase(codebase_pb2.GetCodebaseRequest(codebase_id=cb.id), metadata=md())
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    status, body = http(server, "GET", f"/v1/codebases/{cb.id}")
    assert status == 404 and json.loads(body)["code"] == 5


def test_data_survives_restart(server):
    stub = codebase_pb2_grpc.CodebaseServiceStub(server.channel())
    cb = stub.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="keep", owner_id="u"),
                             metadata=md())
    upload(stub, cb.id, "a.txt", b"persist me")
    server.stop()
    server.start()
    stub = codebase_pb2_grpc.CodebaseServiceStub(server.channel())
    again = stub.GetCodebase(codebase_pb2.GetCodebaseRequest(codebase_id=cb.id), metadata=md())
    assert again.file_count == 1 and again.size == 10
    got = b"".join(c.data for c in stub.DownloadFile(
        codebase_pb2.DownloadFileRequest(codebase_id=cb.id, file_path="a.txt"), metadata=md()))
    assert got == b"persist me"


def test_guards(server):
    stub = codebase_pb2_grpc.CodebaseServiceStub(server.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.ListCodebases(codebase_pb2.ListCodebasesRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stub.ListCodebases(codebase_pb2.ListCodebasesRequest(), metadata=md("wrong"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    status, _ = http(server, "GET", "/v1/codebases", token="")
    assert status == 401
    status, _ = http(server, "POST", "/v1/codebases", b'{"name":"x","owner_id":"u"}',
                     content_type="text/plain")
    assert status == 415
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="x"), metadata=md())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    cb = stub.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="t", owner_id="u"),
                             metadata=md())
    for bad in ["../x", "//etc/passwd", "/../x", "a/../../x"]:
        with pytest.raises(grpc.RpcError) as err:
            upload(stub, cb.id, bad, b"pwned")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A leading '/' is the codebase's root (the reference's SDK writes paths so): the file lands
    # inside the codebase, the host's /etc/passwd is not touched.
    assert upload(stub, cb.id, "/etc/passwd", b"pwned").file_path == "etc/passwd"
    got = b"".join(c.data for c in stub.DownloadFile(
        codebase_pb2.DownloadFileRequest(codebase_id=cb.id, file_path="/etc/passwd"), metadata=md()))
    assert got == b"pwned" and b"root:" in open("/etc/passwd", "rb").read()
    status, _ = http(server, "GET", "/healthz", token="")
    assert status == 200
    status, body = http(server, "GET", "/metrics")
    assert status == 200 and b"agentfense_api_requests_total" in body


def test_host_check_without_token():
    if not SERVER_BIN.exists():
        pytest.fail(f"{SERVER_BIN} is missing")
    srv = make_server()
    srv.start()
    try:
        status, _ = http(srv, "GET", "/v1/codebases", token="", host="evil.example")
        assert status == 403
        status, _ = http(srv, "GET", "/v1/codebases", token="", host="localhost")
        assert status == 200
    finally:
        cleanup_server(srv)
