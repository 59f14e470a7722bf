"""The Python SDK's `on_access_request` callback (sync and async) and checkpoints against a real
server (docs/SDK.md): the callback sees each access to an `ask` path and its answer decides it
(allow, deny, remembered as a rule, a raising callback denies); checkpoint → change → restore →
diff through Sandbox and AsyncSandbox."""
from __future__ import annotations

import asyncio
import os
import threading

import pytest

import agentfense as af
from agentfense import (AccessDecision, AccessRequest, AsyncSandbox, Decision, Permission, Sandbox,
                        SandboxClient)
from server_fixture import running_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

RULES = [{"pattern": "**/*", "permission": "read"},
         {"pattern": "/notes/**", "permission": "ask", "priority": 10},
         {"pattern": "/out/**", "permission": "write", "priority": 10}]


@pytest.fixture(scope="module")
def server():
    yield from running_server()


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("note a\n")
    (tmp_path / "notes" / "b.md").write_text("note b\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("k\n")
    return tmp_path


def test_sync_callback_decides_and_remembers(server, project):
    seen: list[AccessRequest] = []
    lock = threading.Lock()

    def decide(req: AccessRequest):
        with lock:
            seen.append(req)
        if req.path == "/notes/a.md" and req.access == "read":
            return AccessDecision(Decision.ALLOW, remember="path")
        if req.path == "/notes/b.md":
            return req.access == "read"  # True: allow a read; False: deny a write
        raise RuntimeError("unexpected access")  # a raising callback denies

    with Sandbox.from_local(str(project), preset=None, permissions=RULES, endpoint=server.grpc_addr,
                            sync_mode="manual", on_access_request=decide) as sb:
        assert Permission.ASK in {r.permission for r in sb.permissions}
        assert sb.run("cat notes/a.md").stdout == "note a\n"
        assert sb.run("cat notes/b.md").stdout == "note b\n"
        r = sb.run("echo x >> notes/b.md")
        assert r.exit_code != 0
        r = sb.run("touch notes/new")
        assert r.exit_code != 0
        assert [(s.path, s.access, s.operation) for s in seen] == [
            ("/notes/a.md", "read", "open"), ("/notes/b.md", "read", "open"),
            ("/notes/b.md", "write", "open"), ("/notes/new", "write", "create")]
        assert all(s.command and s.pid > 0 for s in seen)
        # Remembered: no second question for a.md, and the rule is the sandbox's now.
        assert sb.run("cat notes/a.md").stdout == "note a\n"
        assert len(seen) == 4
        assert any(r.pattern == "/notes/a.md" and r.permission == Permission.READ
                   for r in sb.refresh().permissions)
        sb.on_access_request(None)  # nobody answers now: the low-level calls still do
        c = sb.client
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fut = pool.submit(sb.run, "cat notes/b.md")
            for _ in range(500):
                pending = c.list_approvals(sb.id)
                if pending:
                    break
                threading.Event().wait(0.02)
            assert pending and pending[0].path == "/notes/b.md"
            got = sb.deny(pending[0].id)
            assert got.state == af.ApprovalState.DENIED
            assert fut.result().exit_code != 0


def test_checkpoints_through_the_sdk(server, project):
    with Sandbox.from_local(str(project), preset=None, permissions=RULES, endpoint=server.grpc_addr,
                            sync_mode="manual") as sb:
        sb.run("echo 1 > out/a; rm out/keep; mkdir out/d")
        c = sb.checkpoint("one")
        assert c.name == "one" and c.files >= 1 and c.deletions == 1
        sb.run("echo 2 > out/a; rmdir out/d; echo b > out/b")
        assert {ch.path for ch in sb.diff("one")} == {"/out/a", "/out/b", "/out/d"}
        sb.restore("one")
        assert sb.run("cat out/a; ls out").stdout == "1\na\nd\n"
        assert [x.name for x in sb.checkpoints()] == ["one"]
        sb.delete_checkpoint("one")
        assert sb.checkpoints() == []


def test_async_callback_and_checkpoints(server, project):
    async def main():
        answered = []

        async def decide(req):
            await asyncio.sleep(0)
            answered.append(req.path)
            return Decision.ALLOW_READ

        async with await AsyncSandbox.from_local(str(project), preset=None, permissions=RULES,
                                                 endpoint=server.grpc_addr, sync_mode="manual",
                                                 on_access_request=decide) as sb:
            assert (await sb.run("cat notes/b.md")).stdout == "note b\n"
            assert (await sb.run("echo y >> notes/b.md")).exit_code != 0  # read only: denied
            assert answered == ["/notes/b.md", "/notes/b.md"]
            await sb.run("echo z > out/z")
            await sb.checkpoint("z")
            await sb.run("rm out/z")
            await sb.restore("z")
            assert (await sb.run("cat out/z")).stdout == "z\n"
            assert [x.name for x in await sb.checkpoints()] == ["z"]
    asyncio.run(main())
    with SandboxClient(endpoint=server.grpc_addr) as c:
        assert c.list_sandboxes() == []
