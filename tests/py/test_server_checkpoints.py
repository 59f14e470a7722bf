"""Checkpoints of a sandbox's delta through the server (docs/CHECKPOINTS.md): checkpoint → change →
restore round trips (files, directories, deletions, renames, modes, symlinks) over gRPC and REST,
diffs, a restore refused while a command runs, restore under a quota, the ON_EXEC refusal, and
checkpoints surviving a server kill -9. One server for the module."""
from __future__ import annotations

import json
import os
import threading
import time

import grpc
import pytest

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc

from server_fixture import cli, http_json, running_server, upload

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

P = common_pb2
S = sandbox_pb2

# The workspace as one line per path: type, mode, and content or target (no symlink followed).
TREE = ("cd /workspace && find . -mindepth 1 ! -path './.keep' | LC_ALL=C sort | while read -r p; do "
        "if [ -L \"$p\" ]; then echo \"$p L $(readlink \"$p\")\"; "
        "elif [ -d \"$p\" ]; then echo \"$p D $(stat -c %a \"$p\")\"; "
        "elif [ -p \"$p\" ]; then echo \"$p P $(stat -c %a \"$p\")\"; "
        "else echo \"$p F $(stat -c %a \"$p\") $(md5sum < \"$p\" | cut -c1-8)\"; fi; done")


@pytest.fixture(scope="module")
def server():
    yield from running_server()


class Env:
    def __init__(self, server, mode=S.SYNC_MODE_MANUAL, quota=None):
        self.server = server
        ch = server.channel()
        self.cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
        self.sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
        self.cb_id = self.cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="ckpt", owner_id="u")).id
        for path, data in (("src/main.c", b"int main;\n"), ("src/util.c", b"util\n"),
                           ("old/x", b"x\n"), ("README", b"readme\n")):
            self.put(path, data)
        req = S.CreateSandboxRequest(
            codebase_id=self.cb_id, sync_mode=mode,
            permissions=[P.PermissionRule(pattern="**/*", permission=P.PERMISSION_WRITE)])
        if quota:
            req.delta_quota.max_bytes = quota
        self.id = self.sb.CreateSandbox(req).id
        self.sb.StartSandbox(S.StartSandboxRequest(sandbox_id=self.id))

    def put(self, path, data):
        upload(self.cb, self.cb_id, path, data)

    def run(self, cmd, ok=True):
        r = self.sb.Exec(S.ExecRequest(sandbox_id=self.id, command=cmd))
        if ok:
            assert r.exit_code == 0, r.stderr
        return r

    def tree(self):
        return self.run(TREE).stdout

    def checkpoint(self, name):
        return self.sb.CreateCheckpoint(S.CreateCheckpointRequest(sandbox_id=self.id, name=name))

    def restore(self, name):
        return self.sb.RestoreCheckpoint(S.RestoreCheckpointRequest(sandbox_id=self.id, name=name))

    def close(self):
        self.sb.DestroySandbox(S.DestroySandboxRequest(sandbox_id=self.id))


CHANGE_1 = ("set -e; echo one > src/main.c; mkdir -m 750 dir1; echo in > dir1/f; chmod 600 README; "
            "rm -r old; ln -s src/main.c link; mv src/util.c src/util1.c; mkfifo pipe")
CHANGE_2 = ("set -e; echo two > src/main.c; rm -r dir1; rm README; mkdir README; chmod 644 src/util1.c; "
            "rm link; ln -s /etc/passwd link; mkdir -p old/new; mv src src2; rm pipe")


def test_round_trip_over_grpc_and_rest(server):
    e = Env(server)
    try:
        e.run(CHANGE_1)
        at_c1 = e.tree()
        c1 = e.checkpoint("c1")
        assert c1.name == "c1" and c1.files >= 4 and c1.deletions >= 2 and c1.created_at.seconds > 0
        e.run(CHANGE_2)
        assert e.tree() != at_c1
        diff = e.sb.DiffCheckpoint(S.DiffCheckpointRequest(sandbox_id=e.id, name="c1"))
        kinds = {c.path: c.kind for c in diff.changes}
        assert kinds["/src2"] == S.CHANGE_KIND_ADDED and kinds["/src"] == S.CHANGE_KIND_DELETED
        assert kinds["/README"] == S.CHANGE_KIND_MODIFIED and kinds["/link"] == S.CHANGE_KIND_MODIFIED
        assert kinds["/dir1"] == S.CHANGE_KIND_DELETED
        # REST: a second checkpoint, the list, a diff between the two, then restore.
        st, c2 = http_json(server, "POST", f"/v1/sandboxes/{e.id}/checkpoints", {"name": "c2"})
        assert st == 200 and c2["name"] == "c2", c2
        st, listed = http_json(server, "GET", f"/v1/sandboxes/{e.id}/checkpoints")
        assert [c["name"] for c in listed["checkpoints"]] == ["c1", "c2"]
        st, d = http_json(server, "GET", f"/v1/sandboxes/{e.id}/checkpoints/c1/diff?against=c2")
        assert st == 200 and {c["path"] for c in d["changes"]} == set(kinds), d
        st, d = http_json(server, "GET", f"/v1/sandboxes/{e.id}/checkpoints/c2/diff?against=current")
        assert st == 200 and d.get("changes", []) == [], d  # empty: omitted (gateway JSON)
        st, r = http_json(server, "POST", f"/v1/sandboxes/{e.id}/checkpoints/c1:restore", {})
        assert st == 200 and r["name"] == "c1", r
        assert e.tree() == at_c1
        # Writing after the restore changes neither checkpoint; restoring c2 is exact too.
        e.run("echo three > src/main.c; chmod 700 dir1")
        e.restore("c2")
        assert "src2" in e.tree() and "dir1" not in e.tree()
        e.restore("c1")
        assert e.tree() == at_c1
        st, _ = http_json(server, "DELETE", f"/v1/sandboxes/{e.id}/checkpoints/c2")
        assert st == 200
        assert [c.name for c in e.sb.ListCheckpoints(S.ListCheckpointsRequest(sandbox_id=e.id)).checkpoints] == ["c1"]
        # The codebase saw none of it (MANUAL), and every step is in the audit log.
        assert b"".join(c.data for c in e.cb.DownloadFile(codebase_pb2.DownloadFileRequest(
            codebase_id=e.cb_id, file_path="src/main.c"))) == b"int main;\n"
        ops = [ev.operation for ev in e.sb.GetAuditLog(S.GetAuditLogRequest(sandbox_id=e.id, kind="lifecycle")).events]
        for op in ("checkpoint_created", "checkpoint_restored", "checkpoint_deleted"):
            assert op in ops
    finally:
        e.close()


def test_the_cli_checkpoint_commands(server):
    e = Env(server)
    try:
        e.run("echo 1 > src/main.c")
        r = cli(server, "checkpoint", "create", e.id, "one")
        assert r.returncode == 0 and r.stdout.startswith("checkpoint one: "), r.stderr
        e.run("echo 2 > src/main.c; echo b > b; rm README")
        r = cli(server, "checkpoint", "diff", e.id, "one")
        assert r.returncode == 0 and sorted(r.stdout.split("\n")) == ["", "A /b", "D /README",
                                                                       "M /src/main.c"], r.stdout
        r = cli(server, "checkpoint", "ls", e.id)
        assert r.returncode == 0 and r.stdout.startswith("one "), r.stdout
        r = cli(server, "checkpoint", "restore", e.id, "one")
        assert r.returncode == 0 and r.stdout == "restored one\n", r.stderr
        assert e.run("cat src/main.c README; ls b 2>&1 || true").stdout.startswith("1\nreadme\n")
        assert cli(server, "checkpoint", "rm", e.id, "one").returncode == 0
        r = cli(server, "checkpoint", "restore", e.id, "one")
        assert r.returncode != 0 and "one" in r.stderr
    finally:
        e.close()


def test_bad_names_unknown_checkpoints_and_on_exec_are_refused(server):
    e = Env(server)
    try:
        for bad in ("", "..", ".", "a/b", "../../etc", "a\0b", "x" * 65, "-x", "a:restore"):
            with pytest.raises(grpc.RpcError) as err:
                e.checkpoint(bad)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        with pytest.raises(grpc.RpcError) as err:
            e.restore("never")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        st, _ = http_json(server, "POST", f"/v1/sandboxes/{e.id}/checkpoints/..%2F..%2Fetc:restore", {})
        assert st in (400, 404)
        e.checkpoint("dup")
        with pytest.raises(grpc.RpcError) as err:
            e.checkpoint("dup")
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    finally:
        e.close()
    on_exec = Env(server, mode=S.SYNC_MODE_ON_EXEC)
    try:
        with pytest.raises(grpc.RpcError) as err:
            on_exec.checkpoint("c")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "ON_EXEC" in err.value.details()
    finally:
        on_exec.close()


def test_restore_waits_for_no_command_and_works_under_quota(server):
    e = Env(server, quota=3 << 20)
    try:
        e.run("head -c 1000000 /dev/zero > big")
        e.checkpoint("c")
        # A command running: the restore is refused rather than racing it.
        t = threading.Thread(target=lambda: e.run("sleep 1.2"))
        t.start()
        time.sleep(0.5)
        with pytest.raises(grpc.RpcError) as err:
            e.restore("c")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        t.join()
        # Rewriting the file copies it (the checkpoint keeps its own): 2 MB of the 3 MB quota.
        e.run("head -c 1000000 /dev/urandom > big")
        r = e.run("head -c 1500000 /dev/zero > more", ok=False)
        assert r.exit_code != 0 and "No space" in r.stderr, r.stderr
        changes = e.sb.ListChanges(S.ListChangesRequest(sandbox_id=e.id))
        assert changes.delta_bytes >= 2_000_000
        e.restore("c")
        assert e.run("cmp -n 1000000 big /dev/zero && echo same").stdout == "same\n"
    finally:
        e.close()


def test_checkpoints_survive_a_server_kill9(server):
    e = Env(server)
    e.run(CHANGE_1)
    at_c = e.tree()
    e.checkpoint("before")
    e.run(CHANGE_2)
    server.kill9()
    server.start()
    e2 = Env.__new__(Env)
    e2.__dict__.update(e.__dict__)
    ch = server.channel()
    e2.cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
    e2.sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
    try:
        assert [c.name for c in e2.sb.ListCheckpoints(S.ListCheckpointsRequest(sandbox_id=e2.id)).checkpoints] == ["before"]
        e2.restore("before")
        assert e2.tree() == at_c
    finally:
        e2.close()
