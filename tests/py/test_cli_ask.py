"""`agentfense run` / `shell` and the `ask` level (docs/CLI.md): --ask prompts on the terminal (driven
through tmux: a real terminal, keys typed into it), a remembered answer asks no more, a file name
full of terminal escapes is shown escaped, the raw-terminal `shell` routes the answer key to the
question; without a terminal (--ask=deny, or no --ask) every access is denied with a line on
stderr."""

import os
import shutil
import subprocess
import time
import uuid

import pytest

from cli_fixtures import BINARY, assert_clean

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

RULES = ["--rule", "**/*=read", "--rule", "/notes/**=ask@10"]


@pytest.fixture
def notes(tmp_path):
    src = tmp_path / "project"
    (src / "notes").mkdir(parents=True)
    (src / "notes" / "a").write_text("note a\n")
    (src / "notes" / "evil\x1b[2J\x1b[31mAUTO-ALLOWED\x1b[0m").write_text("evil\n")
    return src


class Tmux:
    """One tmux server of our own (its own socket), running one command on a 200x50 terminal."""

    def __init__(self, command: str):
        if shutil.which("tmux") is None:
            pytest.fail("tmux is missing (scripts/bootstrap installs it)")
        self.sock = f"af-ask-{uuid.uuid4().hex[:8]}"
        subprocess.run(["tmux", "-L", self.sock, "new-session", "-d", "-s", "t", "-x", "200", "-y",
                        "50", f"{command}; echo EXIT=$?; sleep 30"], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "-L", self.sock, "capture-pane", "-p", "-J", "-t", "t",
                               "-S", "-200"], capture_output=True, text=True).stdout

    def wait(self, text: str, timeout: float = 30) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.screen()
            if text in s:
                return s
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared on the terminal:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "-L", self.sock, "send-keys", "-t", "t", *keys], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)
        # kill-server returns before the server process has exited; the leftover check that
        # follows (rundir) would see it, its command line naming the run directory.
        deadline = time.time() + 10
        while time.time() < deadline and subprocess.run(
                ["pgrep", "-f", f"tmux -L {self.sock} "], capture_output=True).returncode == 0:
            time.sleep(0.05)


def command(rundir, *args):
    return f"AGENTFENSE_RUNTIME_DIR={rundir} {BINARY} " + " ".join(f"'{a}'" for a in args)


def test_run_asks_on_the_terminal_and_remembers(notes, rundir):
    t = Tmux(command(rundir, "run", "--ask", *RULES, str(notes), "--", "sh", "-c",
                     "cat /workspace/notes/a; cat /workspace/notes/a; cat /workspace/notes/evil*; "
                     "echo done"))
    try:
        s = t.wait("Allow? [r]ead [w]rite [d]eny")
        assert "read /notes/a (open, pid " in s and "cat /workspace/notes/a" in s
        t.keys("R", "Enter")  # remembered for the path: the second cat does not ask
        s = t.wait("evil")
        assert s.count("note a") == 2 and s.count("Allow?") == 2
        # The escapes in the file name are shown, not obeyed: the screen was not cleared.
        assert "evil\\x1b[2J\\x1b[31mAUTO-ALLOWED\\x1b[0m" in s
        t.keys("d", "Enter")
        s = t.wait("EXIT=")
        assert "Permission denied" in s and "done" in s and "EXIT=0" in s
        assert "allowed /notes/a (remembered: /notes/a=read@10 (file))" in s
    finally:
        t.close()
    assert_clean(rundir)


def test_shell_on_a_raw_terminal_takes_the_answer_key(notes, rundir):
    t = Tmux(command(rundir, "shell", "--ask", *RULES, str(notes)))
    try:
        t.wait("agentfense shell")
        time.sleep(0.5)
        t.keys("cat /workspace/notes/a; echo rc=$?", "Enter")
        t.wait("Allow? [r]ead")
        t.keys("r")  # one key, no Enter: the shell never sees it
        s = t.wait("rc=0")
        assert "note a" in s
        t.keys("exit", "Enter")
        t.wait("EXIT=")
    finally:
        t.close()
    assert_clean(rundir)


def test_without_a_terminal_every_access_is_denied(notes, rundir):
    for flags in (["--ask=deny"], []):
        p = subprocess.run([str(BINARY), "run", *flags, *RULES, str(notes), "--", "sh", "-c",
                            "cat /workspace/notes/a; echo rc=$?"],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, AGENTFENSE_RUNTIME_DIR=str(rundir)),
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        assert "rc=1" in p.stdout and "note a" not in p.stdout
        assert "denied read /notes/a (open, pid" in p.stderr
    assert_clean(rundir)
