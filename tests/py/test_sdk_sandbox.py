"""agentfense.Sandbox against a real server: from_local (ignore rules, symlinks, exec bits, skipped
files, progress, a large tree), run/exec/exec_stream, sessions, file helpers, cleanup on errors and
the bad inputs of issue 7, with a leak check after each test."""
from __future__ import annotations

import io
import os
import sys

import pytest

import agentfense as af
from agentfense import RuntimeType, Sandbox, SandboxClient
from server_fixture import cleanup_server, make_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")


@pytest.fixture(scope="module")
def server():
    s = make_server()
    s.start()
    yield s
    cleanup_server(s)


@pytest.fixture(scope="module")
def admin(server):
    c = SandboxClient(endpoint=server.grpc_addr)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def no_leaks(admin):
    """Whatever a test does, it leaves no sandbox and no codebase behind."""
    yield
    assert admin.list_sandboxes() == []
    assert admin.list_codebases() == []


@pytest.fixture()
def ep(server, monkeypatch):
    monkeypatch.setenv("AGENTFENSE_ENDPOINT", server.grpc_addr)
    return server.grpc_addr


def make(root, files):
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def test_from_local_agent_safe_default(ep, tmp_path):
    proj = make(tmp_path / "proj", {
        "main.py": "print('hello from main')\n", "docs/a.md": "A", ".env.production": "CANARY-ENV",
        "config/secrets/db.txt": "CANARY-DB", "id.pem": "CANARY-PEM", "output/.keep": "",
        ".gitignore": "*.log\n!keep.log\nbuild/\n", "x.log": "LOG", "keep.log": "KEEP", "build/o": "O",
    })
    with Sandbox.from_local(proj) as sb:
        assert sb.status == af.SandboxStatus.RUNNING and sb.runtime == RuntimeType.BWRAP
        assert [r.pattern for r in sb.permissions] == [r.pattern for r in af.get_preset("agent-safe")]
        rep = sb.upload_report
        assert rep.method == "archive"  # one UploadArchive stream, not one stream per file
        assert sorted(rep.uploaded) == [".gitignore", "config/secrets/db.txt", "docs/a.md", "id.pem",
                                        "keep.log", "main.py", "output/.keep"]
        assert sb.codebase.file_count == 7
        r = sb.run("python3 main.py; ls -a; cat keep.log; cat id.pem config/secrets/db.txt")
        assert "hello from main" in r.stdout and "KEEP" in r.stdout
        for canary in ("CANARY", "x.log", "build", ".env", "id.pem", "secrets"):
            assert canary not in r.stdout
        sb.write_file("output/result.txt", "done")
        assert sb.read_file("output/result.txt") == "done"
        with pytest.raises(af.PermissionDeniedError):
            sb.write_file("docs/a.md", "overwrite")
        with pytest.raises(af.FileNotFoundError):
            sb.read_file("id.pem")
        names = {f.name for f in sb.list_files()}
        assert {"main.py", "docs", "output"} <= names and "id.pem" not in names and ".env.production" not in names
        deep = {f.path for f in sb.list_files(".", recursive=True)}
        assert "docs/a.md" in deep and not any("secrets" in p for p in deep)


def test_from_local_extra_permissions_and_binary_files(ep, tmp_path):
    blob = bytes(range(256)) * 1000
    proj = make(tmp_path / "p", {"data/blob.bin": blob, "notes/n.txt": "N", "meta/m.txt": "M"})
    perms = [{"pattern": "/notes/**", "permission": "write", "priority": 20},
             af.PermissionRule("/meta/**", af.Permission.VIEW, priority=20)]
    with Sandbox.from_local(str(proj), preset="read-only", permissions=perms) as sb:
        assert sb.read_file_bytes("data/blob.bin") == blob
        sb.write_file("notes/n.txt", b"\x00\xffbin")
        assert sb.read_file_bytes("notes/n.txt") == b"\x00\xffbin"
        assert [f.name for f in sb.list_files("meta")] == ["m.txt"]
        with pytest.raises(af.PermissionDeniedError):
            sb.read_file("meta/m.txt")


def test_symlinks_out_of_the_tree_are_not_uploaded(ep, tmp_path):
    home = make(tmp_path / "home", {".aws/credentials": "CANARY-AWS"})
    proj = make(tmp_path / "proj", {"app.py": "x"})
    os.symlink(home / ".aws/credentials", proj / "creds")
    os.symlink(home / ".aws", proj / "awsdir")
    os.symlink("app.py", proj / "alias.py")
    with Sandbox.from_local(proj, preset="read-only") as sb:
        assert "outside the tree" in sb.upload_report.skipped["creds"]
        assert "outside the tree" in sb.upload_report.skipped["awsdir"]
        out = sb.run("cat creds awsdir/credentials alias.py; ls -a").stdout
        assert "CANARY" not in out and out.startswith("x")


def test_exec_bits_survive_upload(ep, tmp_path):
    proj = make(tmp_path / "p", {"run.sh": "#!/bin/sh\necho ran\n"})
    os.chmod(proj / "run.sh", 0o755)
    with Sandbox.from_local(proj, preset="read-only") as sb:
        assert sb.run("./run.sh").stdout == "ran\n"


def test_empty_dirs_and_special_files_are_reported(ep, tmp_path):
    proj = make(tmp_path / "p", {"a.txt": "a"})
    (proj / "empty").mkdir()
    os.mkfifo(proj / "fifo")
    with Sandbox.from_local(proj) as sb:
        assert "empty directory" in sb.upload_report.skipped["empty"]
        assert "special file" in sb.upload_report.skipped["fifo"]
        assert sb.upload_report.uploaded == ["a.txt"]


def test_large_tree_parallel_upload_with_progress(ep, tmp_path):
    proj = tmp_path / "big"
    for d in range(10):
        (proj / f"d{d}").mkdir(parents=True)
        for i in range(200):
            (proj / f"d{d}" / f"f{i}.txt").write_text(f"{d}-{i}")
    events = []
    bar = io.StringIO()
    with Sandbox.from_local(proj, on_progress=events.append, workers=16) as sb:
        assert len(sb.upload_report.uploaded) == 2000
        assert events[-1].files_done == events[-1].files_total == 2000
        assert [e.files_done for e in events] == list(range(1, 2001))
        assert sb.codebase.file_count == 2000
        assert sb.run("find . -type f | wc -l").stdout.strip() == "2000"
        assert sb.read_file("d7/f123.txt") == "7-123"
    # the terminal bar: forced on, written to stderr
    old = sys.stderr
    sys.stderr = bar
    try:
        with Sandbox.from_local(proj / "d0", show_progress=True):
            pass
    finally:
        sys.stderr = old
    assert "200/200 files" in bar.getvalue()


def test_run_exec_stream_and_errors(ep, tmp_path):
    proj = make(tmp_path / "p", {"a.txt": "a"})
    with Sandbox.from_local(proj) as sb:
        r = sb.run("echo $A; pwd; exit 3", env={"A": "env-ok"}, workdir="/workspace")
        assert r.stdout == "env-ok\n/workspace\n" and r.exit_code == 3 and not r.success
        with pytest.raises(af.CommandExecutionError) as e:
            sb.run("echo out; echo bad >&2; exit 4", raise_on_error=True)
        assert (e.value.exit_code, e.value.stdout, e.value.stderr) == (4, "out\n", "bad\n")
        with pytest.raises(af.CommandTimeoutError):
            sb.run("sleep 30", timeout=1)
        assert sb.exec("cat", stdin="piped").stdout == "piped"
        outs, errs = [], []
        st = sb.exec_stream("for i in 1 2 3; do echo $i; echo e$i >&2; done; exit 5",
                            on_stdout=outs.append, on_stderr=errs.append)
        res = st.result()
        assert res.exit_code == 5 and res.stdout == "1\n2\n3\n" and res.stderr == "e1\ne2\ne3\n"
        assert "".join(outs) == res.stdout and "".join(errs) == res.stderr
        sb.stop()
        with pytest.raises(af.SandboxNotRunningError):
            sb.run("true")
        sb.start()
        assert sb.run("echo back").stdout == "back\n"


def test_sessions_keep_state_and_close(ep, tmp_path):
    proj = make(tmp_path / "p", {"sub/f.txt": "F"})
    with Sandbox.from_local(proj) as sb:
        with sb.session() as s:
            s.exec("cd sub; export V=7")
            assert s.exec("cat f.txt; echo $V").stdout == "F7\n"
            sid = s.id
            assert s.status == af.SessionStatus.ACTIVE
        assert sb.client.get_session(sid).status == af.SessionStatus.CLOSED
        with pytest.raises(af.SessionClosedError):
            s.exec("ls")
        with pytest.raises(RuntimeError):
            with sb.session() as s2:
                sid2 = s2.id
                raise RuntimeError("body fails")
        assert sb.client.get_session(sid2).status == af.SessionStatus.CLOSED


def test_context_manager_cleans_up_on_error(ep, tmp_path):
    proj = make(tmp_path / "p", {"a": "a"})
    with pytest.raises(ZeroDivisionError):
        with Sandbox.from_local(proj) as sb:
            sid = sb.id
            1 / 0
    with SandboxClient() as c:
        with pytest.raises(af.SandboxNotFoundError):
            c.get_sandbox(sid)


def test_from_codebase_and_connect(ep, tmp_path, admin):
    cb = admin.create_codebase("shared", "u")
    admin.upload_file(cb.id, "x.txt", "shared-content")
    try:
        with Sandbox.from_codebase(cb.id, preset="read-only") as a:
            b = Sandbox.connect(a.id)
            assert b.run("cat x.txt").stdout == "shared-content" and b.codebase.id == cb.id
            b._client.close()
        assert admin.get_codebase(cb.id).id == cb.id  # from_codebase never deletes the codebase
        with pytest.raises(af.CodebaseNotFoundError):
            Sandbox.from_codebase("cb_0000000000000000")
        with pytest.raises(af.SandboxNotFoundError):
            Sandbox.connect("sb_0000000000000000")
    finally:
        admin.delete_codebase(cb.id)


# ---- bad input: clear exceptions, nothing leaked (the autouse fixture checks the server) ----

def test_bad_inputs(ep, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(af.InvalidConfigurationError, match="not a directory"):
        Sandbox.from_local(f)
    with pytest.raises(af.InvalidConfigurationError, match="does not exist"):
        Sandbox.from_local(tmp_path / "nope")
    with pytest.raises(af.InvalidConfigurationError, match="unknown preset 'agent-unsafe'"):
        Sandbox.from_local(tmp_path, preset="agent-unsafe")
    with pytest.raises(af.InvalidConfigurationError, match="permission rule"):
        Sandbox.from_local(tmp_path, permissions=[{"pattern": "x", "permission": "rwx"}])
    with pytest.raises(af.InvalidConfigurationError, match="runtime"):
        Sandbox.from_local(tmp_path, runtime="vm")
    with pytest.raises(af.InvalidConfigurationError, match="pids_limit"):
        Sandbox.from_local(tmp_path, resources=af.ResourceLimits(pids_limit=-1))
    with Sandbox.from_local(make(tmp_path / "ok", {"a": "a"})) as sb:
        with pytest.raises(af.InvalidConfigurationError):
            sb.run("")
        with pytest.raises(af.InvalidConfigurationError):
            sb.run("true", timeout=-5)


def test_server_down_and_bad_endpoint(tmp_path):
    proj = make(tmp_path / "p", {"a": "a"})
    with pytest.raises(af.ConnectionError, match="cannot reach"):
        Sandbox.from_local(proj, endpoint="127.0.0.1:1")
    with pytest.raises(af.ConnectionError):
        SandboxClient(endpoint="no-such-host.invalid:9000", timeout=10).list_codebases()
    with pytest.raises(af.InvalidConfigurationError):
        SandboxClient(endpoint="has space:9000")


def test_from_local_upload_error_leaves_nothing(ep):
    """A file that cannot be read as the walk saw it (a sysfs attribute announces 4096 bytes and
    holds fewer): UploadError, and the cut archive left nothing on the server."""
    import asyncio

    from agentfense.async_client import AsyncSandboxClient
    from agentfense.async_sandbox import _upload_all
    from agentfense.ignore import LocalFile, WalkResult

    short = next(p for p in ("/sys/kernel/uevent_seqnum", "/sys/kernel/profiling", "/sys/power/state")
                 if os.path.exists(p))

    async def go():
        cl = AsyncSandboxClient(endpoint=ep)
        cb = await cl.create_codebase("upload-error", "sdk")
        try:
            walk = WalkResult(files=[LocalFile("ok.txt", __file__, os.path.getsize(__file__), 0o644),
                                     LocalFile("short", short, 4096, 0o644)])
            with pytest.raises(af.UploadError, match="shrank"):
                await _upload_all(cl, cb.id, walk, 1, None, False)
            assert (await cl.get_codebase(cb.id)).file_count == 0
        finally:
            await cl.delete_codebase(cb.id)
            await cl.close()
    asyncio.run(go())
