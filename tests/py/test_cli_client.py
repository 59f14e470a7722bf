"""End-to-end tests of the agentfense client commands against a real agentfense-server
(server_fixture.make_server): every command, --json shapes, exit statuses, token handling.

Client exit statuses (docs/CLI.md): 0 ok, 1 failure, 2 invalid input, 3 not found, 4 server
unreachable, 5 unauthenticated, 6 wrong state; `exec` commands exit with the command's status,
or 130 / 143 / 129 when Ctrl-C / SIGTERM / SIGHUP interrupted them (the command is cancelled on
the server).
"""

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from server_fixture import cleanup_server, make_server

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AGENTFENSE_BUILD_DIR", REPO / "build"))
BINARY = BUILD / "bin" / "agentfense"
TOKEN = "cli-test-token"
SECRET = "TOPSECRET-c11e"


@pytest.fixture(scope="module")
def server():
    s = make_server(token=TOKEN)
    s.start()
    yield s
    cleanup_server(s)


def cli(server, *args, token=TOKEN, check=None, input=None):
    env = dict(os.environ)
    env["AGENTFENSE_ENDPOINT"] = server.grpc_addr
    env["AGENTFENSE_TOKEN"] = token
    p = subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=120,
                       env=env, input=input)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


@pytest.fixture
def project(tmp_path):
    d = tmp_path / "proj"
    (d / "src").mkdir(parents=True)
    (d / "src" / "main.py").write_text("print('x')\n")
    (d / "secrets").mkdir()
    (d / "secrets" / "key").write_text(SECRET)
    (d / "output").mkdir()
    (d / "output" / ".keep").write_text("")
    return d


@pytest.fixture
def codebase(server, project):
    cb = cli(server, "codebase", "create", "clitest", check=0).stdout.strip()
    cli(server, "codebase", "upload", cb, str(project), check=0)
    yield cb
    cli(server, "codebase", "rm", cb)


@pytest.fixture
def sandbox(server, codebase):
    sb = cli(server, "sandbox", "create", codebase, "--preset", "agent-safe", "--sync-mode",
             "manual", "--start", check=0).stdout.strip()
    yield sb
    cli(server, "sandbox", "rm", sb)


def test_codebase_commands(server, project, tmp_path):
    created = json.loads(cli(server, "codebase", "create", "c1", "--json", check=0).stdout)
    cb = created["id"]
    assert cb.startswith("cb_") and created["name"] == "c1"
    up = json.loads(cli(server, "codebase", "upload", cb, str(project), "--to", "app", "--json",
                        check=0).stdout)
    assert sorted(u["filePath"] for u in up) == ["app/output/.keep", "app/secrets/key",
                                                  "app/src/main.py"]
    assert all(len(u["checksum"]) == 32 for u in up)
    files = json.loads(cli(server, "codebase", "files", cb, "-r", "--json", check=0).stdout)
    assert "app/src/main.py" in [f["path"] for f in files["files"]]
    text = cli(server, "codebase", "files", cb, "app/src", check=0).stdout
    assert "app/src/main.py" in text
    listed = json.loads(cli(server, "codebase", "ls", "--json", check=0).stdout)
    assert cb in [c["id"] for c in listed["codebases"]]
    out = tmp_path / "dl.py"
    cli(server, "codebase", "download", cb, "app/src/main.py", "-o", str(out), check=0)
    assert out.read_text() == "print('x')\n"
    assert cli(server, "codebase", "download", cb, "app/src/main.py", "-o", "-",
               check=0).stdout == "print('x')\n"
    # A failed download leaves nothing behind.
    bad = tmp_path / "missing.txt"
    assert cli(server, "codebase", "download", cb, "nope.txt", "-o", str(bad)).returncode == 3
    assert not bad.exists() and not list(tmp_path.glob("*.agentfense-partial"))
    cli(server, "codebase", "rm", cb, "app/secrets/key", check=0)
    files = json.loads(cli(server, "codebase", "files", cb, "-r", "--json", check=0).stdout)
    assert "app/secrets/key" not in [f["path"] for f in files["files"]]
    cli(server, "codebase", "rm", cb, check=0)
    assert cli(server, "codebase", "files", cb).returncode == 3


def test_upload_progress_bar_on_a_terminal(server, tmp_path):
    cb = cli(server, "codebase", "create", "prog", check=0).stdout.strip()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    master, slave = pty.openpty()
    env = dict(os.environ, AGENTFENSE_ENDPOINT=server.grpc_addr, AGENTFENSE_TOKEN=TOKEN)
    p = subprocess.run([str(BINARY), "codebase", "upload", cb, str(big)], stderr=slave,
                       stdout=subprocess.PIPE, text=True, timeout=120, env=env)
    os.close(slave)
    drawn = b""
    try:
        while True:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            drawn += chunk
    except OSError:
        pass
    os.close(master)
    assert p.returncode == 0
    assert b"\r[" in drawn and b"100%" in drawn and b"1/1 files" in drawn
    # Not on a pipe: scripts get no bar.
    p = cli(server, "codebase", "upload", cb, str(big), check=0)
    assert "\r" not in p.stderr and "uploaded 1 file(s)" in p.stdout
    cli(server, "codebase", "rm", cb, check=0)


def test_sandbox_lifecycle_and_exec(server, codebase):
    sb = json.loads(cli(server, "sandbox", "create", codebase, "--preset", "agent-safe",
                        "--label", "team=cli", "--json", check=0).stdout)
    sid = sb["id"]
    assert sb["status"] == "SANDBOX_STATUS_PENDING" and sb["labels"] == {"team": "cli"}
    assert len(sb["permissions"]) > 0
    assert cli(server, "sandbox", "exec", sid, "--", "true").returncode == 6  # not running
    started = json.loads(cli(server, "sandbox", "start", sid, "--json", check=0).stdout)
    assert started["status"] == "SANDBOX_STATUS_RUNNING"
    p = cli(server, "sandbox", "exec", sid, "--", "ls -A /workspace; cat /workspace/secrets/key;"
            " echo err >&2; exit 9")
    assert p.returncode == 9
    assert sorted(p.stdout.split()) == ["output", "src"]
    assert SECRET not in p.stdout + p.stderr and "err" in p.stderr
    p = cli(server, "sandbox", "exec", sid, "--env", "A=b c", "--workdir", "/workspace/src",
            "--", 'echo "$A"; pwd', check=0)
    assert p.stdout == "b c\n/workspace/src\n"
    p = cli(server, "sandbox", "exec", sid, "-i", "--", "wc -c", input="abcd", check=0)
    assert p.stdout.strip() == "4"
    assert cli(server, "sandbox", "exec", sid, "--timeout", "1s", "--", "sleep 30").returncode != 0
    got = json.loads(cli(server, "sandbox", "get", sid, "--json", check=0).stdout)
    assert got["id"] == sid and got["status"] == "SANDBOX_STATUS_RUNNING"
    assert "status:    RUNNING" in cli(server, "sandbox", "get", sid, check=0).stdout
    listed = json.loads(cli(server, "sandbox", "ls", "--codebase", codebase, "--json",
                            check=0).stdout)
    assert sid in [s["id"] for s in listed["sandboxes"]]
    stopped = json.loads(cli(server, "sandbox", "stop", sid, "--json", check=0).stdout)
    assert stopped["status"] == "SANDBOX_STATUS_STOPPED"
    cli(server, "sandbox", "rm", sid, check=0)
    assert cli(server, "sandbox", "get", sid).returncode == 3


def test_sessions(server, sandbox):
    sess = json.loads(cli(server, "session", "create", sandbox, "--env", "Z=1", "--json",
                          check=0).stdout)
    sid = sess["id"]
    assert sid.startswith("sess_") and sess["sandboxId"] == sandbox
    cli(server, "session", "exec", sid, "--", "cd /workspace/src; export Q=7", check=0)
    p = cli(server, "session", "exec", sid, "--", 'pwd; echo "$Q$Z"', check=0)
    assert p.stdout == "/workspace/src\n71\n"
    assert cli(server, "session", "exec", sid, "--", "false").returncode == 1
    listed = json.loads(cli(server, "session", "ls", sandbox, "--json", check=0).stdout)
    assert sid in [s["id"] for s in listed["sessions"]]
    cli(server, "session", "rm", sid, check=0)
    assert cli(server, "session", "exec", sid, "--", "true").returncode in (3, 6)


def test_sandbox_shell_line_mode(server, sandbox):
    p = cli(server, "sandbox", "shell", sandbox, input="cd /workspace/src\npwd\nexit\n")
    assert "/workspace/src" in p.stdout


def sandbox_procs(server, sandbox):
    """The command lines of every process in the sandbox (it has its own PID namespace)."""
    p = cli(server, "sandbox", "exec", sandbox, "--",
            "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done", check=0)
    return p.stdout


def start_interruptible(server, *args):
    """Starts `agentfense ARGS` whose command prints "started" first; returns once it did."""
    env = dict(os.environ, AGENTFENSE_ENDPOINT=server.grpc_addr, AGENTFENSE_TOKEN=TOKEN)
    p = subprocess.Popen([str(BINARY), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    assert p.stdout.readline() == "started\n"
    return p


def assert_cancelled_in_sandbox(server, sandbox, started_at, marker="sleep 3"):
    """The interrupted command's processes are gone at once, and its late write never happens."""
    deadline = time.monotonic() + 2
    while marker in sandbox_procs(server, sandbox):
        assert time.monotonic() < deadline, "the command still runs in the sandbox"
        time.sleep(0.1)
    # Past the moment the command would have written its file (sleep 3 + margin).
    time.sleep(max(0.0, started_at + 4.5 - time.monotonic()))
    p = cli(server, "sandbox", "exec", sandbox, "--", "test -e /workspace/output/late")
    assert p.returncode == 1, "the cancelled command ran to its end"


@pytest.mark.parametrize("signo,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_exec_interrupt_cancels_the_command_on_the_server(server, sandbox, signo, status):
    t0 = time.monotonic()
    p = start_interruptible(server, "sandbox", "exec", sandbox, "--",
                            "echo started; sleep 3; touch /workspace/output/late")
    time.sleep(1)
    p.send_signal(signo)
    try:
        p.wait(timeout=2)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("the client did not exit promptly after the signal")
    err = p.stderr.read()
    assert p.returncode == status, (p.returncode, err)
    assert "interrupted" in err
    assert_cancelled_in_sandbox(server, sandbox, t0)


def test_session_exec_interrupt_cancels_only_the_command(server, sandbox):
    sid = cli(server, "session", "create", sandbox, check=0).stdout.strip()
    cli(server, "session", "exec", sid, "--", "export KEEP=kept", check=0)
    t0 = time.monotonic()
    # The list runs in a child shell: a cancel interrupts the processes the command started, not
    # the session's shell, which would go on with the rest of a list (docs/CLI.md).
    p = start_interruptible(server, "session", "exec", sid, "--",
                            "echo started; sh -c 'sleep 3; touch /workspace/output/late'")
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=2)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("the client did not exit promptly after Ctrl-C")
    assert p.returncode == 130, (p.returncode, p.stderr.read())
    assert_cancelled_in_sandbox(server, sandbox, t0)
    # The session itself survives, state intact.
    assert cli(server, "session", "exec", sid, "--", 'echo "$KEEP"', check=0).stdout == "kept\n"
    cli(server, "session", "rm", sid, check=0)


def read_line(p, timeout=10):
    """One line of a child's stdout, or a test failure (never a hang)."""
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    assert ready, "no output in time"
    return p.stdout.readline()


def test_sandbox_shell_ctrl_c_cancels_the_command_and_goes_on(server, sandbox):
    env = dict(os.environ, AGENTFENSE_ENDPOINT=server.grpc_addr, AGENTFENSE_TOKEN=TOKEN)
    p = subprocess.Popen([str(BINARY), "sandbox", "shell", sandbox], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                         env=env)
    try:
        t0 = time.monotonic()
        p.stdin.write("echo started; sh -c 'sleep 3; touch /workspace/output/late'\n")
        p.stdin.flush()
        assert read_line(p) == "started\n"
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        p.stdin.write("echo alive\n")
        p.stdin.flush()
        assert read_line(p, timeout=3) == "alive\n"
        assert_cancelled_in_sandbox(server, sandbox, t0)
        # SIGTERM leaves the shell and closes its session.
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=5) == 143
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    sessions = json.loads(cli(server, "session", "ls", sandbox, "--json", check=0).stdout)
    assert all(s["status"] == "SESSION_STATUS_CLOSED" for s in sessions["sessions"])


def test_changes_commit_discard(server, sandbox, codebase, tmp_path):
    cli(server, "sandbox", "exec", sandbox, "--", "echo one > /workspace/output/one.txt", check=0)
    ch = json.loads(cli(server, "changes", sandbox, "--json", check=0).stdout)
    assert [(c["path"], c["kind"]) for c in ch["changes"]] == [("/output/one.txt",
                                                                 "CHANGE_KIND_ADDED")]
    assert "A /output/one.txt" in cli(server, "changes", sandbox, check=0).stdout
    committed = json.loads(cli(server, "commit", sandbox, "--json", check=0).stdout)
    assert [c["path"] for c in committed["applied"]] == ["/output/one.txt"]
    out = tmp_path / "one.txt"
    cli(server, "codebase", "download", codebase, "output/one.txt", "-o", str(out), check=0)
    assert out.read_text() == "one\n"
    cli(server, "sandbox", "exec", sandbox, "--", "echo two > /workspace/output/two.txt", check=0)
    assert json.loads(cli(server, "discard", sandbox, "--json", check=0).stdout) == {"discarded": 1}
    assert cli(server, "codebase", "download", codebase, "output/two.txt", "-o",
               str(tmp_path / "two")).returncode == 3


def test_audit(server, sandbox):
    cli(server, "sandbox", "exec", sandbox, "--", "cat /workspace/secrets/key")
    ev = json.loads(cli(server, "audit", "--sandbox", sandbox, "--json", check=0).stdout)
    kinds = {e["kind"] for e in ev["events"]}
    assert "lifecycle" in kinds
    denied = json.loads(cli(server, "audit", "--sandbox", sandbox, "--kind", "denied", "--json",
                            check=0).stdout)
    assert all(e["kind"] == "denied" for e in denied["events"])
    assert any(e["path"].startswith("/secrets") for e in denied["events"])
    assert SECRET not in json.dumps(ev)
    assert len(json.loads(cli(server, "audit", "--limit", "1", "--json",
                              check=0).stdout)["events"]) == 1


def test_errors_and_exit_codes(server):
    p = cli(server, "codebase", "ls", token="wrong")
    assert p.returncode == 5 and "UNAUTHENTICATED" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([str(BINARY), "--endpoint", "127.0.0.1:1", "codebase", "ls"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 4 and "UNAVAILABLE" in p.stderr and "127.0.0.1:1" in p.stderr
    p = cli(server, "sandbox", "get", "sb_0000000000000000")
    assert p.returncode == 3 and "NOT_FOUND" in p.stderr
    p = cli(server, "sandbox", "create", "cb_0000000000000000", "--preset", "nope")
    assert p.returncode == 2 and "unknown preset" in p.stderr
    p = cli(server, "sandbox", "exec", "sb_0000000000000000")
    assert p.returncode == 2 and "missing -- COMMAND" in p.stderr
    p = cli(server, "codebase", "upload", "cb_0000000000000000", "/nonexistent-file")
    assert p.returncode == 2 and "no such file" in p.stderr
    p = cli(server, "sandbox", "create", "cb_0000000000000000", "--memory", "lots")
    assert p.returncode == 2 and "--memory" in p.stderr
