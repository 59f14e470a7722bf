"""Attacks on checkpoints and on the `ask` level (docs/CHECKPOINTS.md, docs/PERMISSIONS.md):
checkpoint names that try to be paths (`..`, `/`, NUL, encodings, huge), thousands of checkpoints,
symlinks the agent plants for a restore or a diff to follow, an agent trying to reach, forge or
race approvals, a flood of held accesses, and terminal escapes in what the agent names."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from secutil import World, rpc_code, sandbox_pb2, upload
from server_fixture import cleanup_server, http_json, make_server

from sandbox.v1 import common_pb2 as P

S = sandbox_pb2
CLI = Path(os.environ.get("AGENTFENSE_BUILD_DIR", Path(__file__).resolve().parents[2] / "build")) \
    / "bin" / "agentfense"


def rules():
    return [P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ),
            P.PermissionRule(pattern="/output/**", permission=P.PERMISSION_WRITE, priority=10),
            P.PermissionRule(pattern="/asked/**", permission=P.PERMISSION_ASK, priority=10),
            P.PermissionRule(pattern="**/.env*", permission=P.PERMISSION_NONE, priority=100)]


@pytest.fixture(scope="module")
def server():
    s = make_server(extra_config="  max_checkpoints: 20\n")
    s.start()
    yield s
    cleanup_server(s)


@pytest.fixture(scope="module")
def world(server):
    w = World(server, rules=rules(), sync_mode=S.SYNC_MODE_MANUAL)
    w.setup()
    for i in range(300):
        upload(w.cb, w.codebase_id, f"asked/{i}", f"{i}\n".encode())
    upload(w.cb, w.codebase_id, "asked/evil\x1b[2J\x1b]0;pwned\x07\u202etxt.exe", b"evil\n")
    yield w
    w.check_integrity()
    w.teardown()


def pending(world, n=1, sandbox_id="", timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = list(world.sb.ListApprovals(S.ListApprovalsRequest(
            sandbox_id=sandbox_id or world.sandbox_id)).approvals)
        if len(got) >= n:
            return got
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} accesses held")


def exec_later(world, cmd, sandbox_id=""):
    pool = ThreadPoolExecutor(1)
    fut = pool.submit(world.exec, cmd, sandbox_id=sandbox_id)
    pool.shutdown(wait=False)
    return fut


def test_checkpoint_names_are_never_paths(world, server):
    sid = world.sandbox_id
    before = sorted(p.name for p in (server.data_dir / "data").iterdir())
    for bad in ("..", ".", "../../../../tmp/x", "/etc", "a/b", "a\0b", "x" * 65, "x" * (1 << 20),
                ".new-x", ".del-x", "a b", "a\nb", "é"):
        assert rpc_code(world.sb.CreateCheckpoint, S.CreateCheckpointRequest(sandbox_id=sid, name=bad)) \
            == grpc.StatusCode.INVALID_ARGUMENT, bad[:20]
        assert rpc_code(world.sb.RestoreCheckpoint, S.RestoreCheckpointRequest(sandbox_id=sid, name=bad)) \
            == grpc.StatusCode.INVALID_ARGUMENT, bad[:20]
    for path in (f"/v1/sandboxes/{sid}/checkpoints/..:restore", f"/v1/sandboxes/{sid}/checkpoints/%2e%2e:restore",
                 f"/v1/sandboxes/{sid}/checkpoints/..%2F..%2Fx:restore", f"/v1/sandboxes/{sid}/checkpoints/a%00b"):
        st, _ = http_json(server, "POST" if path.endswith("restore") else "DELETE", path, {})
        assert st in (400, 404), path
    st, _ = http_json(server, "GET", f"/v1/sandboxes/{sid}/checkpoints/..%2F..%2Fetc/diff?against=..%2Fx")
    assert st in (400, 404)
    assert sorted(p.name for p in (server.data_dir / "data").iterdir()) == before
    world.check_host_canary()


def test_thousands_of_checkpoints_are_bounded(world):
    sid = world.sandbox_id
    for i in range(20):
        world.sb.CreateCheckpoint(S.CreateCheckpointRequest(sandbox_id=sid, name=f"k{i}"))
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: rpc_code(world.sb.CreateCheckpoint, S.CreateCheckpointRequest(
            sandbox_id=sid, name=f"more{i}")), range(400)))
    assert set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert len(world.sb.ListCheckpoints(S.ListCheckpointsRequest(sandbox_id=sid)).checkpoints) == 20
    for i in range(20):
        world.sb.DeleteCheckpoint(S.DeleteCheckpointRequest(sandbox_id=sid, name=f"k{i}"))
    world.healthy()


def test_restore_and_diff_never_follow_planted_symlinks(world):
    host = str(world.host_dir)
    world.exec(f"cd output && mkdir -p d && echo mine > d/f && ln -s {host} to-host && "
               f"ln -s {host}/host_secret secret-link && ln -s /etc etc")
    world.sb.CreateCheckpoint(S.CreateCheckpointRequest(sandbox_id=world.sandbox_id, name="planted"))
    # Swap what the checkpoint holds for links to the host, and the links for directories and
    # files named like the host's.
    world.exec(f"cd output && rm -r d && ln -s {host} d && rm to-host secret-link etc && "
               "mkdir to-host etc && echo overwritten > to-host/host_secret && "
               "echo overwritten > secret-link && touch etc/passwd")
    diff = world.sb.DiffCheckpoint(S.DiffCheckpointRequest(sandbox_id=world.sandbox_id, name="planted"))
    assert {c.path for c in diff.changes} >= {"/output/d", "/output/to-host", "/output/etc"}
    world.sb.RestoreCheckpoint(S.RestoreCheckpointRequest(sandbox_id=world.sandbox_id, name="planted"))
    r = world.exec("cd output && readlink to-host secret-link etc && cat d/f && ls d")
    assert r.stdout.split() == [host, f"{host}/host_secret", "/etc", "mine", "f"]
    world.check_host_canary()
    assert Path("/etc/passwd").read_text().startswith("root:")
    world.sb.DeleteCheckpoint(S.DeleteCheckpointRequest(sandbox_id=world.sandbox_id, name="planted"))
    world.sb.DiscardChanges(S.DiscardChangesRequest(sandbox_id=world.sandbox_id))


def test_the_agent_cannot_reach_or_forge_approvals(world, server):
    run_dir = server.data_dir / "data" / "mounts" / ".run" / world.sandbox_id
    assert (run_dir / "control.sock").exists()
    r = world.exec(f"ls -d {run_dir} 2>&1; find / -xdev -name control.sock 2>/dev/null | head -3; "
                   f"(exec 3<>/dev/tcp/127.0.0.1/{server.grpc_port}) 2>&1 && echo connected",
                   timeout=60)
    assert "control.sock" not in r.stdout and "connected" not in r.stdout
    assert "No such file" in r.stdout
    # An approval of one sandbox cannot be answered through another one.
    other = world.new_sandbox(sync_mode=S.SYNC_MODE_MANUAL)
    try:
        fut = exec_later(world, "cat asked/1")
        [a] = pending(world)
        with pytest.raises(grpc.RpcError) as err:
            world.sb.AnswerApproval(S.AnswerApprovalRequest(sandbox_id=other, approval_id=a.id,
                                                            decision=S.APPROVAL_DECISION_ALLOW))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert [x.id for x in pending(world)] == [a.id]
        world.sb.AnswerApproval(S.AnswerApprovalRequest(sandbox_id=world.sandbox_id, approval_id=a.id,
                                                        decision=S.APPROVAL_DECISION_DENY))
        assert fut.result(30).exit_code != 0
    finally:
        world.destroy(other)


def test_one_approval_lets_exactly_one_access_through(world):
    # Two processes race for the same file: allowing the first does not let the second in.
    fut = exec_later(world, "(cat asked/2 > /tmp/first 2>&1; echo first=$?) & sleep 0.3; "
                            "cat asked/2 > /tmp/second 2>&1; echo second=$?; wait; cat /tmp/first")
    first = pending(world)[0]
    world.sb.AnswerApproval(S.AnswerApprovalRequest(sandbox_id=world.sandbox_id, approval_id=first.id,
                                                    decision=S.APPROVAL_DECISION_ALLOW))
    second = [x for x in pending(world) if x.id != first.id]
    deadline = time.time() + 20
    while not second and time.time() < deadline:
        second = [x for x in pending(world) if x.id != first.id]
    assert second and second[0].path == "/asked/2" and second[0].pid != first.pid
    world.sb.AnswerApproval(S.AnswerApprovalRequest(sandbox_id=world.sandbox_id, approval_id=second[0].id,
                                                    decision=S.APPROVAL_DECISION_DENY))
    out = fut.result(30).stdout
    assert "first=0" in out and "second=1" in out and "2\n" in out


def test_a_flood_of_asks_is_bounded_and_the_server_stays_up(world):
    fut = exec_later(world, "cd asked; for i in $(seq 0 299); do (cat $i >/dev/null 2>&1; "
                            "echo $? > /tmp/rc.$i) & done; wait; cat /tmp/rc.* | sort | uniq -c")
    pending(world, 256)
    time.sleep(0.5)
    assert len(pending(world)) == 256  # the bound: what comes meanwhile is denied at once
    # Deny what is held until every cat has ended. On a loaded machine some of the 300 cats start
    # only after the first answers and are held in the slots those answers free: nobody else
    # would answer them (they would wait for the ask timeout, as long as the exec's).
    answered = set()
    deny = lambda a: world.sb.AnswerApproval(S.AnswerApprovalRequest(  # noqa: E731
        sandbox_id=world.sandbox_id, approval_id=a.id, decision=S.APPROVAL_DECISION_DENY))
    deadline = time.time() + 60
    with ThreadPoolExecutor(8) as pool:
        while not fut.done() and time.time() < deadline:
            held = pending(world, 0)
            assert len(held) <= 256
            fresh = [a for a in held if a.id not in answered]
            answered.update(a.id for a in fresh)
            list(pool.map(deny, fresh))
            time.sleep(0.05)
    counts = fut.result(60).stdout.split()
    assert counts == ["300", "1"]  # every cat failed: denied at once, or by an answer
    assert 256 <= len(answered) <= 300
    world.healthy()


def test_terminal_escapes_in_agent_names_are_shown_escaped(world, server):
    fut = exec_later(world, "cat asked/evil* >/dev/null")
    [a] = pending(world)
    assert "\x1b" in a.path  # the API gives the name as it is
    p = subprocess.run([str(CLI), "--endpoint", server.grpc_addr, "approval", "ls", world.sandbox_id],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout and "\x07" not in p.stdout and "\u202e" not in p.stdout
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\u{202e}txt.exe" in p.stdout
    world.sb.AnswerApproval(S.AnswerApprovalRequest(sandbox_id=world.sandbox_id, approval_id=a.id,
                                                    decision=S.APPROVAL_DECISION_DENY))
    fut.result(30)
