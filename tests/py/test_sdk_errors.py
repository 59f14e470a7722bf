"""Every SDK exception raised by a real server (or a real failed connection), with its gRPC code,
and the promise behind each failure: nothing created by a failed call is left on the server."""
from __future__ import annotations

import os

import pytest

import agentfense as af
from agentfense import Sandbox, SandboxClient
from server_fixture import cleanup_server, make_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def server():
    # A token (so wrong tokens can be tested) and one sandbox per owner (so limits can be hit).
    s = make_server(token=TOKEN, extra_config="  max_per_user: 1\n")
    s.start()
    yield s
    cleanup_server(s)


@pytest.fixture()
def client(server):
    c = SandboxClient(endpoint=server.grpc_addr, token=TOKEN)
    yield c
    assert c.list_sandboxes() == [] and c.list_codebases() == [], "leaked objects"
    c.close()


def test_authentication(server, monkeypatch):
    for tok in ("wrong", ""):
        monkeypatch.delenv("AGENTFENSE_TOKEN", raising=False)
        with pytest.raises(af.AuthenticationError) as e:
            SandboxClient(endpoint=server.grpc_addr, token=tok or None).list_codebases()
        assert e.value.grpc_code == 16 and "AGENTFENSE_TOKEN" in str(e.value)
    monkeypatch.setenv("AGENTFENSE_TOKEN", TOKEN)
    assert SandboxClient(endpoint=server.grpc_addr).list_codebases() == []


def test_wrong_token_in_from_local_leaks_nothing(server, tmp_path, client):
    (tmp_path / "a").write_text("a")
    with pytest.raises(af.AuthenticationError):
        Sandbox.from_local(tmp_path, endpoint=server.grpc_addr, token="wrong")


def test_not_found_family(client):
    with pytest.raises(af.SandboxNotFoundError) as e:
        client.get_sandbox("sb_0123456789abcdef")
    assert e.value.grpc_code == 5 and e.value.sandbox_id == "sb_0123456789abcdef"
    with pytest.raises(af.CodebaseNotFoundError):
        client.create_sandbox("cb_0123456789abcdef", [{"pattern": "**/*"}])
    with pytest.raises(af.SessionNotFoundError):
        client.destroy_session("sess_0123456789abcdef")
    cb = client.create_codebase("c", "o")
    try:
        with pytest.raises(af.FileNotFoundError) as e:
            client.download_file(cb.id, "missing.txt")
        assert isinstance(e.value, FileNotFoundError) and e.value.path == "missing.txt"
    finally:
        client.delete_codebase(cb.id)


def test_invalid_arguments(client):
    # A malformed id names no sandbox: NOT_FOUND, as the reference answers (its SDK raises the
    # not-found exception); a missing one is the caller's mistake.
    with pytest.raises(af.SandboxNotFoundError) as e:
        client.get_sandbox("not-an-id")
    assert e.value.grpc_code == 5
    with pytest.raises(af.InvalidConfigurationError):
        client.get_sandbox("")
    cb = client.create_codebase("c", "o")
    try:
        for bad in ("../escape", "//abs", "/../x", "a//b", "a/./b"):
            with pytest.raises(af.InvalidConfigurationError):
                client.upload_file(cb.id, bad, "x")
        assert client.get_codebase(cb.id).file_count == 0
    finally:
        client.delete_codebase(cb.id)
    with pytest.raises(af.InvalidConfigurationError):  # refused locally, before any call
        client.create_sandbox("", [])
    with pytest.raises(af.InvalidConfigurationError):
        client.upload_file("cb_0123456789abcdef", "x", 12345)


def test_resource_limit_and_cleanup_of_a_half_built_sandbox(server, client, tmp_path):
    (tmp_path / "a").write_text("a")
    with Sandbox.from_local(tmp_path, endpoint=server.grpc_addr, token=TOKEN, owner_id="limited") as first:
        with pytest.raises(af.ResourceLimitExceededError) as e:
            Sandbox.from_local(tmp_path, endpoint=server.grpc_addr, token=TOKEN, owner_id="limited")
        assert e.value.grpc_code == 8
        # the second codebase was uploaded, then deleted when the sandbox could not be created
        assert [c.id for c in client.list_codebases()] == [first.codebase_id]


def test_state_errors(server, client, tmp_path):
    (tmp_path / "a").write_text("a")
    with Sandbox.from_local(tmp_path, endpoint=server.grpc_addr, token=TOKEN, auto_start=False) as sb:
        assert sb.status == af.SandboxStatus.PENDING
        with pytest.raises(af.SandboxNotRunningError) as e:
            sb.run("true")
        assert e.value.grpc_code == 9
        sb.start()
        with pytest.raises(af.ConflictError):
            client.delete_codebase(sb.codebase_id)  # in use by a live sandbox
        s = sb.session()
        s.exec("true")
        client.destroy_session(s.id)
        with pytest.raises(af.SessionClosedError):
            s.exec("true")
        with pytest.raises(af.CommandTimeoutError) as t:
            sb.run("sleep 20", timeout=1)
        assert t.value.grpc_code == 4 and isinstance(t.value, TimeoutError)
        with pytest.raises(af.CommandExecutionError) as x:
            sb.run("exit 9", raise_on_error=True)
        assert x.value.exit_code == 9
        with pytest.raises(af.PermissionDeniedError):
            sb.write_file("a", "agent-safe makes this read-only")
        with pytest.raises(af.FileNotFoundError):
            sb.read_file("nope")


def test_non_utf8_local_name_is_skipped_not_fatal(server, client, tmp_path):
    open(os.path.join(os.fsencode(tmp_path), b"bad\xff"), "w").close()
    (tmp_path / "ok").write_text("ok")
    with Sandbox.from_local(tmp_path, endpoint=server.grpc_addr, token=TOKEN) as sb:
        assert sb.upload_report.uploaded == ["ok"] and len(sb.upload_report.skipped) == 1


def test_server_gone_mid_session(tmp_path):
    s = make_server()
    s.start()
    try:
        (tmp_path / "a").write_text("a")
        sb = Sandbox.from_local(tmp_path, endpoint=s.grpc_addr)
        s.stop()
        with pytest.raises(af.ConnectionError) as e:
            sb.run("true")
        assert e.value.grpc_code == 14
        with pytest.raises(af.ConnectionError):
            sb.destroy()
    finally:
        cleanup_server(s)


def test_client_deadline_on_a_hung_server():
    import signal
    import time

    s = make_server()
    s.start()
    try:
        c = SandboxClient(endpoint=s.grpc_addr, timeout=1.5)
        assert c.list_codebases() == []
        s.proc.send_signal(signal.SIGSTOP)  # accepts connections, never answers
        try:
            for _ in range(200):  # SIGSTOP is asynchronous: wait until the kernel reports "T"
                if open(f"/proc/{s.proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T":
                    break
                time.sleep(0.01)
            t = time.monotonic()
            with pytest.raises(af.ConnectionError) as e:
                c.list_codebases()
            assert e.value.grpc_code == 4 and "deadline of 1.5s" in str(e.value)
            assert time.monotonic() - t < 10
        finally:
            s.proc.send_signal(signal.SIGCONT)
        assert c.list_codebases() == []
        c.close()
    finally:
        cleanup_server(s)
