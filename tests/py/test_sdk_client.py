"""agentfense.SandboxClient against a real server: every method, the error each misuse raises, and
the extension RPCs (which this server implements: NotSupportedError from them is a failure)."""
from __future__ import annotations

import hashlib
import os
import time

import pytest

import agentfense as af
from agentfense import Permission, SandboxClient
from server_fixture import cleanup_server, make_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

RULES = [{"pattern": "**/*", "permission": "read"},
         {"pattern": "/out/**", "permission": "write", "priority": 10},
         {"pattern": "/meta/**", "permission": "view", "priority": 10},
         {"pattern": "**/secret*", "permission": "none", "priority": 100}]


@pytest.fixture(scope="module")
def server():
    s = make_server()
    s.start()
    yield s
    cleanup_server(s)


@pytest.fixture(scope="module")
def client(server):
    c = SandboxClient(endpoint=server.grpc_addr)
    yield c
    c.close()


@pytest.fixture()
def codebase(client):
    cb = client.create_codebase("proj", "tester")
    client.upload_file(cb.id, "src/app.py", "print('hi')\n")
    client.upload_file(cb.id, "meta/info.txt", "META-CONTENT")
    client.upload_file(cb.id, "secret.txt", "CANARY-SECRET-1")
    client.upload_file(cb.id, "out/.keep", b"")
    yield cb
    for sb in client.list_sandboxes(codebase_id=cb.id):
        client.destroy_sandbox(sb.id)
    client.delete_codebase(cb.id)


@pytest.fixture()
def running(client, codebase):
    sb = client.create_sandbox(codebase.id, RULES, labels={"t": "1"})
    sb = client.start_sandbox(sb.id)
    yield sb


def test_endpoint_and_token_from_environment(monkeypatch, server):
    monkeypatch.setenv("AGENTFENSE_ENDPOINT", server.grpc_addr)
    monkeypatch.setenv("AGENTFENSE_TOKEN", "tok")
    c = SandboxClient()
    assert c.endpoint == server.grpc_addr and c._md == [("authorization", "Bearer tok")]
    assert isinstance(c.list_codebases(), list)  # a server without a token accepts any
    c.close()
    monkeypatch.delenv("AGENTFENSE_ENDPOINT")
    assert SandboxClient().endpoint == "localhost:9000"


def test_codebase_crud_and_files(client):
    cb = client.create_codebase("files", "owner-a")
    assert cb.id.startswith("cb_") and cb.name == "files" and cb.owner_id == "owner-a" and cb.created_at
    data = os.urandom(300_000)  # several 64 KiB chunks, binary
    up = client.upload_file(cb.id, "bin/blob.dat", data)
    assert up.size == len(data) and up.checksum == hashlib.md5(data).hexdigest()
    client.upload_file(cb.id, "a.txt", "héllo")
    assert client.download_file(cb.id, "bin/blob.dat") == data
    assert client.download_file(cb.id, "a.txt") == "héllo".encode()
    got = client.get_codebase(cb.id)
    assert got.file_count == 2 and got.size == len(data) + len("héllo".encode())
    top = {f.name: f for f in client.list_files(cb.id)}
    assert top["bin"].is_dir and top["a.txt"].size == 6
    rec = {f.path for f in client.list_files(cb.id, recursive=True)}
    assert {"bin/blob.dat", "a.txt"} <= {p.lstrip("/") for p in rec}
    assert [f.name for f in client.list_files(cb.id, "bin")] == ["blob.dat"]
    assert cb.id in [c.id for c in client.list_codebases(owner_id="owner-a")]
    assert cb.id not in [c.id for c in client.list_codebases(owner_id="someone-else")]
    client.delete_codebase(cb.id)
    with pytest.raises(af.CodebaseNotFoundError) as e:
        client.get_codebase(cb.id)
    assert e.value.grpc_code == 5 and e.value.codebase_id == cb.id


def test_delete_file(client, codebase):
    client.upload_file(codebase.id, "tmp/a.txt", "x")
    client.delete_file(codebase.id, "tmp/a.txt")
    with pytest.raises(af.FileNotFoundError):
        client.download_file(codebase.id, "tmp/a.txt")
    with pytest.raises(af.FileNotFoundError) as e:
        client.delete_file(codebase.id, "tmp/a.txt")
    assert e.value.path == "tmp/a.txt"


def test_upload_local_file_streams_and_keeps_mode(client, tmp_path):
    cb = client.create_codebase("local", "u")
    try:
        p = tmp_path / "big.bin"
        p.write_bytes(os.urandom(1 << 20))
        r = client.upload_local_file(cb.id, "big.bin", str(p))
        assert r.size == 1 << 20 and client.download_file(cb.id, "big.bin") == p.read_bytes()
        with pytest.raises(OSError):
            client.upload_local_file(cb.id, "gone", str(tmp_path / "missing"))
    finally:
        client.delete_codebase(cb.id)


def test_sandbox_lifecycle(client, codebase):
    sb = client.create_sandbox(codebase.id, RULES, labels={"team": "a"}, expires_in=3600,
                               runtime=af.RuntimeType.BWRAP,
                               resources=af.ResourceLimits(memory_bytes=256 << 20, pids_limit=64))
    assert sb.status == af.SandboxStatus.PENDING and sb.labels == {"team": "a"} and sb.expires_at
    assert [r.permission for r in sb.permissions] == [Permission.READ, Permission.WRITE, Permission.VIEW,
                                                      Permission.NONE]
    assert sb.resources and sb.resources.pids_limit == 64
    assert client.get_sandbox(sb.id).id == sb.id
    assert sb.id in [s.id for s in client.list_sandboxes(codebase_id=codebase.id)]
    started = client.start_sandbox(sb.id)
    assert started.status == af.SandboxStatus.RUNNING and started.started_at
    with pytest.raises(af.ConflictError) as e:
        client.start_sandbox(sb.id)
    assert e.value.grpc_code == 9
    stopped = client.stop_sandbox(sb.id)
    assert stopped.status == af.SandboxStatus.STOPPED
    with pytest.raises(af.SandboxNotRunningError) as e:
        client.exec(sb.id, "true")
    assert e.value.sandbox_id == sb.id
    assert client.start_sandbox(sb.id).status == af.SandboxStatus.RUNNING
    client.destroy_sandbox(sb.id)
    with pytest.raises(af.SandboxNotFoundError):
        client.get_sandbox(sb.id)


def test_exec_policy_and_results(client, running):
    r = client.exec(running.id, "cat src/app.py; ls meta; cat meta/info.txt; ls -a; cat secret.txt",
                    env={"X": "1"}, timeout=30)
    assert "print('hi')" in r.stdout and "info.txt" in r.stdout
    assert "META-CONTENT" not in r.stdout and "secret" not in r.stdout and "CANARY" not in r.stdout
    assert r.exit_code != 0 and r.duration is not None and r.command.startswith("cat src")
    r = client.exec(running.id, "echo $X; pwd; cat", env={"X": "42"}, workdir="/workspace/src", stdin="in")
    assert r.stdout.split("\n")[:3] == ["42", "/workspace/src", "in"] and r.success
    w = client.exec(running.id, "echo data > out/new.txt && cat out/new.txt; echo nope > src/x.py")
    assert "data" in w.stdout and "Permission denied" in w.stderr or "Read-only" in w.stderr


def test_exec_binary_output_and_big_output(client, running):
    r = client.exec(running.id, "head -c 4096 /dev/urandom; printf 'end'")
    assert r.exit_code == 0 and r.stdout.endswith("end")
    big = client.exec(running.id, "head -c 6000000 /dev/zero | tr '\\0' x")  # above gRPC's 4 MiB default
    assert big.exit_code == 0 and len(big.stdout) == 6_000_000


def test_exec_timeout(client, running):
    t = time.monotonic()
    with pytest.raises(af.CommandTimeoutError) as e:
        client.exec(running.id, "sleep 30", timeout=1)
    assert time.monotonic() - t < 20 and e.value.grpc_code == 4 and e.value.timeout == 1
    assert client.exec(running.id, "echo alive").stdout == "alive\n"


def test_exec_stream_typed_chunks_and_exit_code(client, running):
    seen = {"out": [], "err": []}
    st = client.exec_stream(running.id, "echo o1; echo e1 >&2; sleep 0.2; echo o2; exit 7",
                            on_stdout=seen["out"].append, on_stderr=seen["err"].append)
    chunks = list(st)
    assert st.exit_code == 7
    assert b"".join(c.data for c in chunks if c.type == af.OutputType.STDOUT) == b"o1\no2\n"
    assert b"".join(c.data for c in chunks if c.type == af.OutputType.STDERR) == b"e1\n"
    assert "".join(seen["out"]) == "o1\no2\n" and "".join(seen["err"]) == "e1\n"
    res = client.exec_stream(running.id, "printf '\\377\\376'; exit 0").result()
    assert res.exit_code == 0 and res.stdout == "\ufffd\ufffd"
    with pytest.raises(af.CommandTimeoutError):
        list(client.exec_stream(running.id, "sleep 30", timeout=1))


def test_sessions(client, running):
    s = client.create_session(running.id, env={"GREETING": "hey"})
    assert s.id.startswith("sess_") and s.status == af.SessionStatus.ACTIVE
    assert client.session_exec(s.id, "cd src && export Y=2").exit_code == 0
    r = client.session_exec(s.id, "pwd; echo $Y $GREETING")
    assert r.stdout == "/workspace/src\n2 hey\n"
    st = client.session_exec_stream(s.id, "echo so; echo se >&2; false")
    out = list(st)
    assert st.exit_code == 1 and {c.type for c in out} == {af.OutputType.STDOUT, af.OutputType.STDERR}
    assert client.get_session(s.id).status == af.SessionStatus.ACTIVE
    assert s.id in [x.id for x in client.list_sessions(running.id)]
    with pytest.raises(af.CommandTimeoutError):
        client.session_exec(s.id, "sleep 30", timeout=1)
    client.destroy_session(s.id)
    with pytest.raises(af.SessionClosedError) as e:
        client.session_exec(s.id, "ls")
    assert e.value.session_id == s.id and e.value.grpc_code == 9
    with client.session(running.id) as w:
        assert w.exec("echo in-wrapper").stdout == "in-wrapper\n"
        sid = w.id
    assert client.get_session(sid).status == af.SessionStatus.CLOSED
    with pytest.raises(af.SessionNotFoundError):
        client.get_session("sess_0000000000000000")


def test_update_permissions_takes_effect(client, running):
    assert "CANARY-SECRET-1" not in client.exec(running.id, "cat secret.txt").stdout
    info = client.update_permissions(running.id, [{"pattern": "**/*", "permission": "read"}])
    assert [r.pattern for r in info.permissions] == ["**/*"]
    assert "CANARY-SECRET-1" in client.exec(running.id, "cat secret.txt").stdout
    client.update_permissions(running.id, RULES)
    r = client.exec(running.id, "cat secret.txt; ls -a")
    assert "CANARY" not in r.stdout and "secret" not in r.stdout


def test_explain_permission(client, running):
    ex = client.explain_permission(running.id, "/secret.txt")
    assert ex.permission == Permission.NONE and ex.deciding_rule == 3 and ex.reason
    assert any(m.index == 0 for m in ex.matching_rules)
    assert client.explain(running.id, "src/app.py").permission == Permission.READ


def test_changes_commit_discard(client, codebase):
    sb = client.create_sandbox(codebase.id, [{"pattern": "**/*", "permission": "write"}], sync_mode="manual")
    client.start_sandbox(sb.id)
    client.exec(sb.id, "echo one > out/a.txt; echo two > out/b.txt")
    ch = client.list_changes(sb.id)
    assert {c.path.lstrip("/") for c in ch.changes} >= {"out/a.txt", "out/b.txt"}
    assert all(c.kind == af.ChangeKind.ADDED for c in ch.changes if not c.is_dir)
    res = client.commit_changes(sb.id)
    assert not res.errors and {c.path.lstrip("/") for c in res.applied} >= {"out/a.txt"}
    assert client.download_file(codebase.id, "out/a.txt") == b"one\n"
    client.exec(sb.id, "echo three > out/c.txt")
    assert client.discard_changes(sb.id) >= 1
    with pytest.raises(af.FileNotFoundError):
        client.download_file(codebase.id, "out/c.txt")


def test_audit_log_records_denials(client, running):
    client.exec(running.id, "cat secret.txt; cat meta/info.txt")
    page = client.get_audit_log(sandbox_id=running.id)
    kinds = {(e.kind, e.path.lstrip("/")) for e in page.events}
    assert ("denied", "meta/info.txt") in kinds
    assert all(e.sandbox_id == running.id for e in page.events)
    assert client.get_audit_log(sandbox_id=running.id, kind="lifecycle").events
