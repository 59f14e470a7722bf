"""Host-side least privilege (SPEC §5, issue 17), attacked the way another local user would: an
ordinary user created here finds every AgentFense mount in /proc/self/mountinfo and tries to stat,
list, read and write through it (the server's sandboxes, `agentfense run`, `agentfense mount`),
and to reach the sandboxes' processes. Two concurrent sandboxes must run as different host uids,
neither of which can signal, trace or read the other's processes."""
from __future__ import annotations

import ctypes
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import secutil
from cli_fixtures import BINARY
from sandbox.v1 import sandbox_pb2

ATTACKER = "afattacker"
RANGE = range(524288, 589824)

# Runs as the attacker: lists every AgentFense mount it can see in /proc/self/mountinfo, then makes
# every attempt on the given ones (this test's: other suites may run beside it) and on the given
# processes, reported as {target: "OK" | errno name}.
PROBE = r'''
import errno, json, os, sys
args = json.loads(sys.argv[1])
out = {}
def attempt(label, fn):
    try:
        fn()
        out[label] = "OK"
    except OSError as e:
        out[label] = errno.errorcode.get(e.errno, str(e.errno))
mounts = []
for line in open("/proc/self/mountinfo"):
    left, _, right = line.partition(" - ")
    if right.split()[0].startswith("fuse.agentfense") or right.split()[1] == "agentfense":
        mounts.append(left.split()[4].replace("\\040", " "))
out["mounts"] = mounts
for m in [m for m in mounts if m in args["targets"]]:
    attempt("stat " + m, lambda: os.stat(m))
    attempt("list " + m, lambda: os.listdir(m))
    for rel in args["files"]:
        p = os.path.join(m, rel)
        attempt("stat " + p, lambda: os.stat(p))
        attempt("read " + p, lambda: open(p, "rb").read())
    attempt("create " + m, lambda: open(os.path.join(m, "output", "planted"), "wb").close())
for pid in args["pids"]:
    attempt(f"kill {pid}", lambda: os.kill(pid, 0))
    attempt(f"environ {pid}", lambda: open(f"/proc/{pid}/environ", "rb").read())
    attempt(f"root {pid}", lambda: os.listdir(f"/proc/{pid}/root/workspace"))
    attempt(f"cwd {pid}", lambda: os.listdir(f"/proc/{pid}/cwd"))
for d in args["dirs"]:
    attempt("list " + d, lambda: os.listdir(d))
    attempt("stat " + d + "/.", lambda: os.stat(os.path.join(d, ".")))
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def attacker():
    from server_fixture import ensure_user
    ensure_user(ATTACKER)
    pw = pwd.getpwnam(ATTACKER)
    assert pw.pw_uid not in RANGE
    return pw.pw_uid, pw.pw_gid


def probe(uid: int, gid: int, targets, files=(), pids=(), dirs=()) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE,
                        json.dumps({"targets": list(targets), "files": list(files),
                                    "pids": list(pids), "dirs": list(dirs)})],
                       user=uid, group=gid, extra_groups=[], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    secutil.assert_no_canary(r.stdout, r.stderr)
    return json.loads(r.stdout)


def assert_all_refused(result: dict) -> None:
    served = {k: v for k, v in result.items() if k != "mounts" and v == "OK"}
    assert served == {}, f"served to another local user: {served}"


def host_pids_running(*argv: str) -> list[int]:
    want = "\0".join(argv) + "\0"
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_text() == want:
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def status_ids(pid: int) -> tuple[list[int], list[int]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = [int(x) for x in v.split()] if k in ("Uid", "Gid") else v
    return fields["Uid"], fields["Gid"]


def agentfense_mounts() -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0].startswith("fuse.agentfense"):
            out.append(left.split()[4])
    return out


def session_exec(world, sandbox_id: str, command: str) -> None:
    s = world.sb.CreateSession(sandbox_pb2.CreateSessionRequest(sandbox_id=sandbox_id))
    world.sb.SessionExec(sandbox_pb2.SessionExecRequest(session_id=s.id, command=command,
                                                        timeout=secutil.dur(30)), timeout=60)


def test_server_sandboxes_are_out_of_reach_of_other_users_and_of_each_other(world, attacker):
    other = world.new_sandbox()
    try:
        tag_a, tag_b = f"3{os.getpid() % 1000:03d}1", f"3{os.getpid() % 1000:03d}2"
        session_exec(world, world.sandbox_id, f"sleep {tag_a} &")
        session_exec(world, other, f"sleep {tag_b} &")
        assert secutil.wait_until(lambda: host_pids_running("sleep", tag_a) and
                                  host_pids_running("sleep", tag_b))
        pid_a, = host_pids_running("sleep", tag_a)
        pid_b, = host_pids_running("sleep", tag_b)

        # One identity per sandbox, its own, seen from the host and reported by the API.
        uid_a = world.sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=world.sandbox_id)).host_uid
        uid_b = world.sb.GetSandbox(sandbox_pb2.GetSandboxRequest(sandbox_id=other)).host_uid
        assert uid_a != uid_b
        for uid, pid in ((uid_a, pid_a), (uid_b, pid_b)):
            assert uid in RANGE and uid not in (0, 65534)
            uids, gids = status_ids(pid)
            assert uids == [uid] * 4 and gids == [uid] * 4

        # Another local user: no mount, no process, no directory of ours.
        data = world.server.data_dir / "data"
        mounts = [str(data / "mounts" / sid) for sid in (world.sandbox_id, other)]
        assert set(mounts) <= set(agentfense_mounts())
        result = probe(*attacker, mounts, files=list(secutil.PUBLIC) + list(secutil.CANARIES),
                       pids=[pid_a, pid_b],
                       dirs=[str(data), str(data / "mounts"), str(data / "codebases"),
                             str(data / "mounts" / ".run")])
        assert set(mounts) <= set(result["mounts"])
        assert_all_refused(result)

        # Sandbox A's identity on the host against sandbox B's processes and mount.
        result = probe(uid_a, uid_a, mounts[1:], files=["README.md"], pids=[pid_b])
        assert_all_refused(result)
        libc = ctypes.CDLL(None, use_errno=True)
        r = subprocess.run([sys.executable, "-c",
                            "import ctypes,sys; l=ctypes.CDLL(None, use_errno=True); "
                            f"print(l.ptrace(16, {pid_b}, 0, 0), ctypes.get_errno())"],
                           user=uid_a, group=uid_a, extra_groups=[], capture_output=True,
                           text=True, timeout=30)
        assert r.stdout.split() == ["-1", "1"], r.stdout + r.stderr  # EPERM
        del libc
    finally:
        world.destroy(other)


def test_no_directory_of_the_server_is_open_to_others(world):
    data = world.server.data_dir / "data"
    for d in [data, data / "mounts", data / "mounts" / ".run", data / "codebases",
              data / "mounts" / ".run" / world.sandbox_id]:
        mode = d.stat().st_mode & 0o777
        assert mode == 0o700, f"{d} is {mode:o}"
    # The mount point itself serves the sandbox's identity alone: root gets EACCES too.
    with pytest.raises(PermissionError):
        (data / "mounts" / world.sandbox_id).stat()
    leases = Path("/run/agentfense/identities")
    assert leases.stat().st_mode & 0o777 == 0o700 and leases.stat().st_uid == 0


def start_background(cmd: list[str], env: dict, ready) -> subprocess.Popen:
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline and not ready():
        if p.poll() is not None:
            pytest.fail(f"{cmd} ended: {p.communicate()}")
        time.sleep(0.1)
    if not ready():
        p.terminate()
        pytest.fail(f"{cmd} did not get ready: {p.communicate(timeout=60)}")
    return p


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "project"
    (src / "src").mkdir(parents=True)
    (src / "src" / "app.py").write_text("print('hi')\n")
    (src / "README.md").write_text("readme\n")
    (src / ".env").write_text(secutil.canary("RUNENV") + "\n")
    return src


@pytest.fixture
def rundir():
    d = Path(tempfile.mkdtemp(prefix="af-host-run-"))
    yield d
    for line in Path("/proc/mounts").read_text().splitlines():
        if str(d) in line:
            subprocess.run(["umount", "-l", line.split()[1]], capture_output=True)
    subprocess.run(["rm", "-rf", str(d)])


def test_agentfense_run_mount_is_out_of_reach(tree, rundir, attacker):
    env = dict(os.environ, AGENTFENSE_RUNTIME_DIR=str(rundir))
    def ours():
        return [m for m in agentfense_mounts() if m.startswith(str(rundir) + "/")]
    tag = f"5{os.getpid() % 10000:04d}"
    p = start_background([str(BINARY), "run", "--preset", "development", str(tree), "--",
                          "sleep", tag], env,
                         lambda: ours() and host_pids_running("/usr/bin/sleep", tag))
    try:
        (mnt,) = ours()
        pid, = host_pids_running("/usr/bin/sleep", tag)
        uids, _ = status_ids(pid)
        assert uids[0] in RANGE
        result = probe(*attacker, [mnt], files=["README.md", "src/app.py"], pids=[pid],
                       dirs=[str(rundir / d.name) for d in rundir.iterdir()])
        assert mnt in result["mounts"]
        assert_all_refused(result)
    finally:
        p.terminate()
        p.communicate(timeout=60)


@pytest.fixture
def private_tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "open.txt").write_text("hello\n")
    (src / "open.txt").chmod(0o644)
    (src / "private.txt").write_text(secutil.canary("ROOTONLY") + "\n")
    (src / "private.txt").chmod(0o600)
    src.chmod(0o755)
    tmp_path.chmod(0o755)
    mnt = Path(tempfile.mkdtemp(prefix="af-mnt-"))
    mnt.chmod(0o755)
    yield src, mnt
    subprocess.run([str(BINARY), "umount", str(mnt)], capture_output=True)
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    mnt.rmdir()


def test_agentfense_mount_serves_the_invoking_user_only(private_tree, attacker):
    src, mnt = private_tree
    subprocess.run([str(BINARY), "mount", "-d", "--preset", "full-access", str(src), str(mnt)],
                   check=True, timeout=30)
    assert (mnt / "private.txt").read_text().startswith("AFSEC")  # root, the invoker, reads it
    result = probe(*attacker, [str(mnt)], files=["open.txt", "private.txt"])
    assert str(mnt) in result["mounts"]
    assert_all_refused(result)


def test_agentfense_mount_allow_other_enforces_host_permission_bits(private_tree, attacker):
    src, mnt = private_tree
    subprocess.run([str(BINARY), "mount", "-d", "--allow-other", "--preset", "full-access",
                    str(src), str(mnt)], check=True, timeout=30)
    result = probe(*attacker, [str(mnt)], files=["open.txt", "private.txt"])
    assert result[f"read {mnt}/open.txt"] == "OK"
    assert result[f"read {mnt}/private.txt"] == "EACCES"
    assert result[f"create {mnt}"] != "OK"
