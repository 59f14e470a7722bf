"""A client that gives up on an exec cancels the command in the sandbox: over gRPC (ExecStream,
SessionExecStream, unary Exec) and over REST (exec:stream, exec, session exec), whether the
command was printing or silent when the client went away. The command's processes must be gone
at once and its late side effect (a file written after `sleep 3`) must never happen; a session
survives the cancellation of its command."""
from __future__ import annotations

import base64
import json
import os
import socket
import time

import pytest

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc

from server_fixture import running_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

P = common_pb2
# A list: a cancel must stop the whole command line, not only the `sleep` it interrupts (in a
# session the session's own shell runs the text, and the session survives the cancel).
LATE = "sleep 3; touch /workspace/output/late"


@pytest.fixture(scope="module")
def server():
    yield from running_server()


@pytest.fixture(scope="module")
def stub(server):
    return sandbox_pb2_grpc.SandboxServiceStub(server.channel())


@pytest.fixture(scope="module")
def sandbox_id(server, stub):
    cb = codebase_pb2_grpc.CodebaseServiceStub(server.channel())
    c = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="cancel", owner_id="u1"))
    cb.UploadFiles(iter([codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
        codebase_id=c.id, file_path="output/.keep", total_size=0))]))
    rules = [P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ, priority=0),
             P.PermissionRule(pattern="/output/**", permission=P.PERMISSION_WRITE, priority=10)]
    sb = stub.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id=c.id, permissions=rules))
    stub.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=sb.id))
    yield sb.id
    stub.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sb.id))


@pytest.fixture
def clean(stub, sandbox_id):
    stub.Exec(sandbox_pb2.ExecRequest(sandbox_id=sandbox_id, command="rm -f output/late"))
    return sandbox_id


def procs(stub, sandbox_id):
    r = stub.Exec(sandbox_pb2.ExecRequest(
        sandbox_id=sandbox_id,
        command="for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done"))
    return r.stdout


def wait_running(stub, sandbox_id):
    """Returns once the command under test runs (so the client gives up on a live command)."""
    deadline = time.monotonic() + 5
    while "sleep 3" not in procs(stub, sandbox_id):
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.1)


def assert_cancelled(stub, sandbox_id, started_at):
    deadline = time.monotonic() + 2
    while "sleep 3" in procs(stub, sandbox_id):
        assert time.monotonic() < deadline, "the command still runs after its client left"
        time.sleep(0.1)
    time.sleep(max(0.0, started_at + 4.5 - time.monotonic()))
    r = stub.Exec(sandbox_pb2.ExecRequest(sandbox_id=sandbox_id, command="test -e output/late"))
    assert r.exit_code == 1, "the cancelled command ran to its end"


@pytest.mark.parametrize("noisy", [True, False], ids=["printing", "silent"])
def test_grpc_exec_stream_cancel(stub, clean, noisy):
    t0 = time.monotonic()
    call = stub.ExecStream(sandbox_pb2.ExecRequest(
        sandbox_id=clean, command=("echo started; " if noisy else "") + LATE))
    if noisy:
        assert next(call).data == b"started\n"
    wait_running(stub, clean)
    call.cancel()
    assert_cancelled(stub, clean, t0)


def test_grpc_unary_exec_cancel(stub, clean):
    t0 = time.monotonic()
    fut = stub.Exec.future(sandbox_pb2.ExecRequest(sandbox_id=clean, command=LATE))
    wait_running(stub, clean)
    assert fut.cancel()
    assert_cancelled(stub, clean, t0)


def test_grpc_session_exec_stream_cancel_keeps_the_session(stub, clean):
    sess = stub.CreateSession(sandbox_pb2.CreateSessionRequest(sandbox_id=clean))
    stub.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="export K=v"))
    t0 = time.monotonic()
    call = stub.SessionExecStream(sandbox_pb2.SessionExecRequest(
        session_id=sess.id, command="echo started; " + LATE))
    assert next(call).data == b"started\n"
    call.cancel()
    assert_cancelled(stub, clean, t0)
    r = stub.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="echo $K"))
    assert r.stdout == "v\n"
    stub.DestroySession(sandbox_pb2.DestroySessionRequest(session_id=sess.id))


def http_send(server, path, body):
    """Sends a POST on a raw socket (so the test decides exactly when the client goes away)."""
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.http_port}\r\n"
              "Content-Type: application/json\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return s


@pytest.mark.parametrize("route,noisy", [("exec:stream", True), ("exec:stream", False),
                                         ("exec", False)],
                         ids=["stream-printing", "stream-silent", "unary"])
def test_rest_exec_client_gone(server, stub, clean, route, noisy):
    t0 = time.monotonic()
    s = http_send(server, f"/v1/sandboxes/{clean}/{route}",
                  {"command": ("echo started; " if noisy else "") + LATE})
    if noisy:
        got = b""
        while base64.b64encode(b"started\n") not in got:  # bytes are base64 in JSON
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
    wait_running(stub, clean)
    s.close()
    assert_cancelled(stub, clean, t0)


@pytest.mark.parametrize("route", ["exec", "exec:stream"])
def test_rest_session_exec_client_gone(server, stub, clean, route):
    sess = stub.CreateSession(sandbox_pb2.CreateSessionRequest(sandbox_id=clean))
    t0 = time.monotonic()
    s = http_send(server, f"/v1/sessions/{sess.id}/{route}", {"command": LATE})
    wait_running(stub, clean)
    s.close()
    assert_cancelled(stub, clean, t0)
    r = stub.SessionExec(sandbox_pb2.SessionExecRequest(session_id=sess.id, command="echo ok"))
    assert r.stdout == "ok\n"
    stub.DestroySession(sandbox_pb2.DestroySessionRequest(session_id=sess.id))
