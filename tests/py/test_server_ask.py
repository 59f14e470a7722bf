"""The `ask` level through the server (docs/PERMISSIONS.md, "ask"): allow once, deny, timeout,
remember path, remember pattern, 50 accesses waiting at once, a stop while waiting, an unrelated
`ls` not blocked, the watch stream (gRPC and REST), the audit log. One server for the module."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc

from server_fixture import BUILD_DIR, cli, http_json, running_server, upload

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

P = common_pb2
S = sandbox_pb2


@pytest.fixture(scope="module")
def server():
    yield from running_server()


class Env:
    def __init__(self, server, ask_timeout=None, files=0):
        self.server = server
        ch = server.channel()
        self.cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
        self.sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
        self.cb_id = self.cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="ask", owner_id="u")).id
        for path, data in [("secret", b"s3cret\n"), ("README", b"readme\n"), ("out/.keep", b"")] + \
                [(f"many/{i}", f"{i}\n".encode()) for i in range(files)]:
            self.put(path, data)
        req = S.CreateSandboxRequest(
            codebase_id=self.cb_id, sync_mode=S.SYNC_MODE_MANUAL,
            permissions=[P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ),
                         P.PermissionRule(pattern="/secret", permission=P.PERMISSION_ASK, priority=10),
                         P.PermissionRule(pattern="/many/**", permission=P.PERMISSION_ASK, priority=10),
                         P.PermissionRule(pattern="/out/**", permission=P.PERMISSION_ASK, priority=10)])
        if ask_timeout:
            req.ask_timeout.FromMilliseconds(int(ask_timeout * 1000))
        self.id = self.sb.CreateSandbox(req).id
        self.sb.StartSandbox(S.StartSandboxRequest(sandbox_id=self.id))

    def put(self, path, data):
        upload(self.cb, self.cb_id, path, data)

    def run(self, cmd, timeout=60):
        return self.sb.Exec(S.ExecRequest(sandbox_id=self.id, command=cmd), timeout=timeout)

    def run_later(self, cmd):
        pool = ThreadPoolExecutor(1)
        fut = pool.submit(self.run, cmd)
        pool.shutdown(wait=False)
        return fut

    def pending(self, n=1, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = list(self.sb.ListApprovals(S.ListApprovalsRequest(sandbox_id=self.id)).approvals)
            if len(got) >= n:
                return got
            time.sleep(0.02)
        raise AssertionError(f"fewer than {n} accesses waiting")

    def answer(self, approval_id, decision, remember="", priority=None, by="test"):
        req = S.AnswerApprovalRequest(sandbox_id=self.id, approval_id=approval_id, decision=decision,
                                      remember=remember, answered_by=by)
        if priority is not None:
            req.priority = priority
        return self.sb.AnswerApproval(req)

    def close(self):
        self.sb.DestroySandbox(S.DestroySandboxRequest(sandbox_id=self.id))


def test_allow_once_then_deny_over_rest_and_the_audit(server):
    e = Env(server)
    try:
        r = e.run_later("cat /workspace/secret")
        [a] = e.pending()
        assert a.path == "/secret" and a.operation == "open" and a.access == S.APPROVAL_ACCESS_READ
        assert a.pid > 0 and "cat" in a.command and a.id.startswith("ap_")
        assert a.deadline.seconds - a.waiting_since.seconds in (59, 60, 61)
        st, listed = http_json(server, "GET", f"/v1/sandboxes/{e.id}/approvals")
        assert st == 200 and listed["approvals"][0]["id"] == a.id
        assert listed["approvals"][0]["access"] == "APPROVAL_ACCESS_READ"
        st, ans = http_json(server, "POST", f"/v1/sandboxes/{e.id}/approvals/{a.id}:allow",
                            {"answered_by": "alice"})
        assert st == 200 and ans["state"] == "APPROVAL_STATE_ALLOWED", ans
        assert r.result(30).stdout == "s3cret\n"
        # Once: the next read asks again; this time it is denied.
        r = e.run_later("cat /workspace/secret")
        [b] = e.pending()
        assert b.id != a.id
        st, ans = http_json(server, "POST", f"/v1/sandboxes/{e.id}/approvals/{b.id}:deny", {})
        assert st == 200 and ans["state"] == "APPROVAL_STATE_DENIED"
        res = r.result(30)
        assert res.exit_code != 0 and "Permission denied" in res.stderr
        # Answering twice, a bad id, a deny through :allow: refused.
        st, _ = http_json(server, "POST", f"/v1/sandboxes/{e.id}/approvals/{a.id}:allow", {})
        assert st == 404
        st, _ = http_json(server, "POST", f"/v1/sandboxes/{e.id}/approvals/ap_zz:allow", {})
        assert st == 404  # no approval can have that id (base/ids.h, as every id)
        st, _ = http_json(server, "POST", f"/v1/sandboxes/{e.id}/approvals/{a.id}:allow",
                          {"decision": "APPROVAL_DECISION_DENY"})
        assert st == 400
        # Every access and its answer is in the audit log: who, when, how.
        events = e.sb.GetAuditLog(S.GetAuditLogRequest(sandbox_id=e.id, kind="approval")).events
        ops = [(ev.operation, ev.path) for ev in events]
        assert ops.count(("open:pending", "/secret")) == 2
        assert ("open:allowed", "/secret") in ops and ("open:denied", "/secret") in ops
        allowed = next(ev for ev in events if ev.operation == "open:allowed")
        assert "alice (rest" in allowed.detail and a.id in allowed.detail and allowed.time.seconds > 0
    finally:
        e.close()


def test_an_ask_rule_added_to_a_sandbox_that_cannot_ask_is_refused_and_changes_nothing(server):
    """A sandbox started without an `ask` rule lets the kernel decide its opens, which cannot hold
    an open: adding `ask` later is refused with the reason and the way out, the rules unchanged."""
    ch = server.channel()
    cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
    sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    cb_id = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="noask", owner_id="u")).id
    upload(cb, cb_id, "secret", b"s3cret\n")
    rules = [P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ)]
    sid = sb.CreateSandbox(S.CreateSandboxRequest(codebase_id=cb_id, permissions=rules)).id
    try:
        sb.StartSandbox(S.StartSandboxRequest(sandbox_id=sid))
        st, err = http_json(server, "PUT", f"/v1/sandboxes/{sid}/permissions",
                            {"permissions": [{"pattern": "**/*", "permission": "PERMISSION_READ"},
                                             {"pattern": "/secret", "permission": "PERMISSION_ASK",
                                              "priority": 10}]})
        assert st == 400 and "create the sandbox with an `ask` rule" in json.dumps(err), (st, err)
        got = sb.GetSandbox(S.GetSandboxRequest(sandbox_id=sid))
        assert [(r.pattern, r.permission) for r in got.permissions] == [("**/*", P.PERMISSION_READ)]
        res = sb.Exec(S.ExecRequest(sandbox_id=sid, command="cat /workspace/secret"), timeout=30)
        assert res.stdout == "s3cret\n"
    finally:
        sb.DestroySandbox(S.DestroySandboxRequest(sandbox_id=sid))


def test_the_cli_lists_answers_and_watches(server):
    e = Env(server)
    watch = subprocess.Popen([str(BUILD_DIR / "bin" / "agentfense"), "--endpoint", server.grpc_addr,
                              "approval", "watch", e.id], stdout=subprocess.PIPE, text=True)
    lines = []

    def follow():
        for line in watch.stdout:
            lines.append(line)
    threading.Thread(target=follow, daemon=True).start()
    try:
        r = e.run_later("cat /workspace/secret")
        [a] = e.pending()
        ls = cli(server, "approval", "ls", e.id)
        assert ls.returncode == 0 and ls.stdout.startswith(a.id) and "/secret" in ls.stdout, ls
        got = cli(server, "approval", "allow", e.id, a.id, "--read", "--by", "bob")
        assert got.returncode == 0 and " ALLOWED " in got.stdout, got
        assert r.result(30).stdout == "s3cret\n"
        r = e.run_later("echo x > /workspace/out/f")
        [b] = e.pending()
        assert cli(server, "approval", "deny", e.id, b.id).returncode == 0
        assert r.result(30).exit_code != 0
        # The watch saw both accesses come and go, as they happened.
        deadline = time.time() + 20
        while sum(x.startswith(b.id) for x in lines) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert [x.split()[1] for x in lines if x.startswith(a.id)] == ["PENDING", "ALLOWED"], lines
        assert [x.split()[1] for x in lines if x.startswith(b.id)] == ["PENDING", "DENIED"], lines
        assert "by bob" in next(x for x in lines if "ALLOWED" in x)
    finally:
        watch.kill()
        watch.wait()
        e.close()


def test_remember_path_and_pattern_become_rules(server):
    e = Env(server)
    try:
        r = e.run_later("cat /workspace/secret")
        [a] = e.pending()
        got = e.answer(a.id, S.APPROVAL_DECISION_ALLOW_READ, remember="path")
        assert got.remembered.startswith("/secret = read")
        assert r.result(30).stdout == "s3cret\n"
        assert e.run("cat /workspace/secret", timeout=10).stdout == "s3cret\n"  # no question now
        rules = e.sb.GetSandbox(S.GetSandboxRequest(sandbox_id=e.id)).permissions
        assert any(x.pattern == "/secret" and x.type == P.PATTERN_TYPE_FILE and
                   x.permission == P.PERMISSION_READ for x in rules)
        # A pattern that would not decide the path is refused and the access keeps waiting.
        r = e.run_later("echo a > /workspace/out/a.txt")
        [w] = e.pending()
        assert w.access == S.APPROVAL_ACCESS_WRITE and w.path == "/out/a.txt"
        with pytest.raises(grpc.RpcError) as err:
            e.answer(w.id, S.APPROVAL_DECISION_ALLOW, remember="**/*.txt", priority=0)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "higher priority" in err.value.details()
        e.answer(w.id, S.APPROVAL_DECISION_ALLOW, remember="/out/*.txt")
        assert r.result(30).exit_code == 0
        assert e.run("echo b > /workspace/out/b.txt && cat /workspace/out/b.txt", timeout=10).stdout == "b\n"
        r = e.run_later("echo c > /workspace/out/c.bin")
        [c] = e.pending()
        assert c.path == "/out/c.bin"
        e.answer(c.id, S.APPROVAL_DECISION_DENY, remember="path")
        assert r.result(30).exit_code != 0
        assert e.run("echo c > /workspace/out/c.bin", timeout=10).exit_code != 0  # remembered: no question
    finally:
        e.close()


def test_timeout_denies_and_the_stream_reports_it(server):
    e = Env(server, ask_timeout=1.5)
    try:
        assert e.sb.GetSandbox(S.GetSandboxRequest(sandbox_id=e.id)).ask_timeout.ToMilliseconds() == 1500
        t0 = time.time()
        r = e.run_later("cat /workspace/secret")
        e.pending()
        # The stream starts with what is pending, then reports how it ends.
        stream = sandbox_pb2_grpc.SandboxServiceStub(server.channel()).WatchApprovals(
            S.WatchApprovalsRequest(sandbox_id=e.id), timeout=20)
        seen = []
        for x in stream:
            seen.append((x.path, x.state))
            if x.state != S.APPROVAL_STATE_PENDING:
                break
        stream.cancel()
        assert seen == [("/secret", S.APPROVAL_STATE_PENDING), ("/secret", S.APPROVAL_STATE_TIMED_OUT)]
        res = r.result(30)
        assert res.exit_code != 0 and "Permission denied" in res.stderr
        assert 1.4 < time.time() - t0 < 15
        # REST: the NDJSON stream of the same (pending accesses first).
        r = e.run_later("cat /workspace/secret")
        e.pending()
        with urllib.request.urlopen(server.http_base + f"/v1/sandboxes/{e.id}/approvals:watch",
                                    timeout=10) as resp:
            first = json.loads(resp.readline())
        assert first["result"]["path"] == "/secret"
        assert first["result"]["state"] == "APPROVAL_STATE_PENDING"
        r.result(30)
    finally:
        e.close()


def test_fifty_at_once_and_an_unrelated_ls_is_never_blocked(server):
    e = Env(server, files=50)
    try:
        r = e.run_later("cd /workspace/many; for i in $(seq 0 49); do (cat $i > /tmp/out.$i 2>&1 || "
                        "echo denied > /tmp/out.$i) & done; wait; cat /tmp/out.*")
        held = e.pending(50)
        assert len(held) == 50 and len({a.pid for a in held}) == 50
        t0 = time.time()
        ls = e.run("ls /workspace && cat /workspace/README", timeout=10)
        assert ls.exit_code == 0 and "readme" in ls.stdout and time.time() - t0 < 5
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda a: e.answer(a.id, S.APPROVAL_DECISION_ALLOW if int(a.path.rsplit("/", 1)[1]) % 2 == 0
                                             else S.APPROVAL_DECISION_DENY), held))
        out = r.result(60).stdout.split()
        assert out.count("denied") == 25 and len(out) == 50
    finally:
        e.close()


def test_a_stop_releases_every_waiter(server):
    e = Env(server)
    try:
        r = e.run_later("cat /workspace/secret; echo rc=$?")
        e.pending()
        e.sb.StopSandbox(S.StopSandboxRequest(sandbox_id=e.id))
        try:
            res = r.result(30)
            assert "s3cret" not in res.stdout
        except grpc.RpcError as err:
            assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                  grpc.StatusCode.INTERNAL)
        events = e.sb.GetAuditLog(S.GetAuditLogRequest(sandbox_id=e.id, kind="approval")).events
        assert "open:cancelled" in [ev.operation for ev in events]
        with pytest.raises(grpc.RpcError) as err:
            e.sb.ListApprovals(S.ListApprovalsRequest(sandbox_id=e.id))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        e.close()


def mcp_call(server, sandbox_id, tool, arguments, timeout=60):
    """One MCP tools/call over Streamable HTTP, stateless revision: the tool's result."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments,
                       "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    req = urllib.request.Request(server.http_base + f"/v1/sandboxes/{sandbox_id}/mcp", method="POST",
                                 data=json.dumps(body).encode())
    for k, v in {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                 "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool}.items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read().decode()
    # JSON, or an event stream whose last data line is the answer.
    data = [x[5:].strip() for x in raw.splitlines() if x.startswith("data:")]
    msg = json.loads(data[-1] if data else raw)
    assert "result" in msg, msg
    return msg["result"]


def mcp_text(result):
    return "".join(c.get("text", "") for c in result["content"])


def test_a_file_tool_held_at_ask_blocks_nothing_else(server):
    """The agent runs file operations off its loop: while an MCP read waits for a person, the same
    sandbox runs commands and serves other files; the held read then gets its answer, and a stop
    ends one still waiting."""
    e = Env(server)
    pool = ThreadPoolExecutor(2)
    try:
        held = pool.submit(mcp_call, server, e.id, "read_file", {"path": "secret"})
        [a] = e.pending()
        assert a.path == "/secret" and a.access == S.APPROVAL_ACCESS_READ
        assert a.command == "file tool: read secret", a.command  # not the agent's command line
        t0 = time.time()
        assert e.run("echo alive", timeout=10).stdout == "alive\n"
        assert mcp_text(mcp_call(server, e.id, "read_file", {"path": "README"}, timeout=10)) == "readme\n"
        assert time.time() - t0 < 5 and not held.done()
        e.answer(a.id, S.APPROVAL_DECISION_ALLOW_READ)
        r = held.result(30)
        assert not r.get("isError") and mcp_text(r) == "s3cret\n", r
        # Deny: the tool reports the permission error, nothing of the content.
        held = pool.submit(mcp_call, server, e.id, "read_file", {"path": "secret"})
        [b] = e.pending()
        e.answer(b.id, S.APPROVAL_DECISION_DENY)
        r = held.result(30)
        assert r.get("isError") and "EACCES" in mcp_text(r) and "s3cret" not in mcp_text(r), r
        # A stop while a file operation waits: it fails, and its process is gone.
        held = pool.submit(mcp_call, server, e.id, "read_file", {"path": "secret"})
        [c] = e.pending()
        assert c.pid > 0 and os.path.exists(f"/proc/{c.pid}")
        e.sb.StopSandbox(S.StopSandboxRequest(sandbox_id=e.id))
        try:
            r = held.result(30)
            assert r.get("isError") and "s3cret" not in mcp_text(r), r
        except urllib.error.HTTPError:
            pass  # the sandbox went away under the call: an error status is as good
        deadline = time.time() + 10
        while os.path.exists(f"/proc/{c.pid}") and time.time() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{c.pid}")
    finally:
        pool.shutdown(wait=False)
        e.close()
