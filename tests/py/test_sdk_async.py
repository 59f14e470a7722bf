"""The async API against a real server: AsyncSandboxClient method by method (same names as the sync
client), AsyncSandbox with `async with`, async sessions, streams, errors and concurrency."""
from __future__ import annotations

import asyncio
import inspect
import os

import pytest

import agentfense as af
from agentfense import AsyncSandbox, AsyncSandboxClient, SandboxClient
from server_fixture import cleanup_server, make_server

pytestmark = [pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                 reason="needs root and /dev/fuse"),
              pytest.mark.asyncio]


@pytest.fixture(scope="module")
def server():
    s = make_server()
    s.start()
    yield s
    cleanup_server(s)


@pytest.fixture(autouse=True)
def no_leaks(server):
    yield
    with SandboxClient(endpoint=server.grpc_addr) as c:
        assert c.list_sandboxes() == [] and c.list_codebases() == []


def make(root, files):
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return root


def public(cls):
    return {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}


async def test_identical_method_names():
    assert public(af.SandboxClient) == public(af.AsyncSandboxClient)
    assert public(af.Sandbox) == public(af.AsyncSandbox)
    assert public(af.SessionWrapper) == public(af.AsyncSessionWrapper)


async def test_async_client_every_method(server):
    async with AsyncSandboxClient(endpoint=server.grpc_addr) as c:
        cb = await c.create_codebase("async", "u")
        await c.upload_file(cb.id, "a/b.txt", "B" * 100_000)
        assert await c.download_file(cb.id, "a/b.txt") == b"B" * 100_000
        assert (await c.get_codebase(cb.id)).file_count == 1
        assert [f.name for f in await c.list_files(cb.id, "a")] == ["b.txt"]
        assert cb.id in [x.id for x in await c.list_codebases()]
        sb = await c.create_sandbox(cb.id, [{"pattern": "**/*", "permission": "write"}], labels={"k": "v"})
        assert (await c.get_sandbox(sb.id)).labels == {"k": "v"}
        assert [s.id for s in await c.list_sandboxes(codebase_id=cb.id)] == [sb.id]
        with pytest.raises(af.SandboxNotRunningError):
            await c.exec(sb.id, "true")
        assert (await c.start_sandbox(sb.id)).status == af.SandboxStatus.RUNNING
        r = await c.exec(sb.id, "cat a/b.txt | wc -c; echo $E", env={"E": "e"})
        assert r.stdout == "100000\ne\n"
        st = c.exec_stream(sb.id, "echo out; echo err >&2; exit 2")
        chunks = [ch async for ch in st]
        assert st.exit_code == 2 and [ch.type for ch in chunks] == [af.OutputType.STDOUT, af.OutputType.STDERR]
        with pytest.raises(af.CommandTimeoutError):
            await c.exec(sb.id, "sleep 30", timeout=1)
        s = await c.create_session(sb.id)
        await c.session_exec(s.id, "cd a")
        assert (await c.session_exec(s.id, "pwd")).stdout == "/workspace/a\n"
        sst = c.session_exec_stream(s.id, "echo x; exit 3")
        assert (await sst.result()).exit_code == 3
        assert s.id in [x.id for x in await c.list_sessions(sb.id)]
        await c.destroy_session(s.id)
        assert (await c.get_session(s.id)).status == af.SessionStatus.CLOSED
        with pytest.raises(af.SessionClosedError):
            await c.session_exec(s.id, "ls")
        async with c.session(sb.id) as w:
            assert (await w.exec("echo w")).stdout == "w\n"
        assert (await c.stop_sandbox(sb.id)).status == af.SandboxStatus.STOPPED
        await c.destroy_sandbox(sb.id)
        with pytest.raises(af.SandboxNotFoundError):
            await c.get_sandbox(sb.id)
        await c.delete_codebase(cb.id)
        with pytest.raises(af.CodebaseNotFoundError):
            await c.get_codebase(cb.id)


async def test_async_extensions(server):
    async with AsyncSandboxClient(endpoint=server.grpc_addr) as c:
        cb = await c.create_codebase("ext", "u")
        await c.upload_file(cb.id, "s.txt", "CANARY-S")
        sb = await c.create_sandbox(cb.id, [{"pattern": "**/*", "permission": "read"},
                                            {"pattern": "/s.txt", "permission": "none", "priority": 9}],
                                     sync_mode=af.SyncMode.MANUAL)
        try:
            await c.start_sandbox(sb.id)
            assert "CANARY" not in (await c.exec(sb.id, "cat s.txt")).stdout
            await c.update_permissions(sb.id, [{"pattern": "**/*", "permission": "write"}])
            assert (await c.exec(sb.id, "cat s.txt; echo n > new.txt")).stdout == "CANARY-S"
            ex = await c.explain_permission(sb.id, "/s.txt")
            assert ex.permission == af.Permission.WRITE
            ch = await c.list_changes(sb.id)
            assert "new.txt" in {x.path.lstrip("/") for x in ch.changes}
            assert (await c.discard_changes(sb.id)) >= 1
            assert (await c.commit_changes(sb.id)).applied == []
            assert isinstance((await c.get_audit_log(sandbox_id=sb.id)).events, list)
            await c.upload_file(cb.id, "gone.txt", "x")
            await c.delete_file(cb.id, "gone.txt")
            with pytest.raises(af.FileNotFoundError):
                await c.download_file(cb.id, "gone.txt")
        finally:
            await c.destroy_sandbox(sb.id)
            await c.delete_codebase(cb.id)


async def test_async_sandbox_readme_shape(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTFENSE_ENDPOINT", server.grpc_addr)
    proj = make(tmp_path / "p", {"main.py": "print('async main')\n", ".env": "CANARY", "output/.keep": ""})
    progress = []
    async with await AsyncSandbox.from_local(proj, on_progress=progress.append) as sandbox:
        result = await sandbox.run("python3 main.py; cat .env")
        assert result.stdout == "async main\n"
        async with sandbox.session() as session:
            await session.exec("cd /workspace/output")
            assert (await session.exec("pwd")).stdout == "/workspace/output\n"
        await sandbox.write_file("output/r.txt", "R")
        assert await sandbox.read_file("output/r.txt") == "R"
        assert "main.py" in {f.name for f in await sandbox.list_files()}
        with pytest.raises(af.CommandExecutionError):
            await sandbox.run("false", raise_on_error=True)
        st = sandbox.exec_stream("echo a; echo b >&2")
        assert (await st.result()).stderr == "b\n"
    assert progress and progress[-1].files_done == 2


async def test_async_cleanup_on_error_and_bad_input(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTFENSE_ENDPOINT", server.grpc_addr)
    proj = make(tmp_path / "p", {"a": "a"})
    with pytest.raises(KeyError):
        async with await AsyncSandbox.from_local(proj):
            raise KeyError("boom")
    with pytest.raises(af.InvalidConfigurationError):
        await AsyncSandbox.from_local(proj, preset="nope")
    with pytest.raises(af.InvalidConfigurationError):
        await AsyncSandbox.from_local(proj / "a")
    with pytest.raises(af.ConnectionError):
        await AsyncSandbox.from_local(proj, endpoint="127.0.0.1:1")


async def test_concurrent_sandboxes(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTFENSE_ENDPOINT", server.grpc_addr)
    proj = make(tmp_path / "p", {"n.txt": "n"})

    async def one(i):
        async with await AsyncSandbox.from_local(proj, preset="full-access") as sb:
            return (await sb.run(f"echo {i}")).stdout.strip()
    assert sorted(await asyncio.gather(*[one(i) for i in range(4)])) == ["0", "1", "2", "3"]
