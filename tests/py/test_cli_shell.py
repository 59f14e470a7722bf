"""End-to-end tests of `agentfense shell` on a terminal: the real binary under a pseudo-terminal we
own (as a user's terminal emulator would), a real FUSE mount and a real bwrap sandbox. The shell
runs on a terminal allocated inside the sandbox; ours only ever sees its output.

(Line mode, with a pipe on stdin, is covered in test_cli_run.py.)
"""

import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import time

import pytest

from cli_fixtures import BINARY, SECRET, assert_clean, needs_root_for_docker


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Session:
    """`agentfense shell` with a pseudo-terminal of ours as its controlling terminal."""

    def __init__(self, rundir, *args, rows=30, cols=100):
        if not BINARY.exists():
            pytest.fail(f"{BINARY} is missing: build the 'agentfense' target first")
        self.master, self.slave = os.openpty()
        set_size(self.slave, rows, cols)
        self.saved = termios.tcgetattr(self.slave)
        env = dict(os.environ, AGENTFENSE_RUNTIME_DIR=str(rundir), TERM="xterm")

        def ctty():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([str(BINARY), "shell", *args], stdin=self.slave,
                                     stdout=self.slave, stderr=self.slave, env=env,
                                     preexec_fn=ctty, close_fds=True)
        os.set_blocking(self.master, False)
        self.screen = ""
        self.seen = 0

    def pump(self, wait=0.1):
        deadline = time.monotonic() + wait
        while True:
            try:
                data = os.read(self.master, 65536)
                self.screen += data.decode("utf-8", "replace")
                continue
            except BlockingIOError:
                pass
            except OSError:  # EIO: every holder of the slave but us is gone
                pass
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)

    def expect(self, pattern, timeout=30):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.screen, self.seen)
            if m:
                self.seen = m.end()
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no /{pattern}/ in terminal output:\n{self.screen}")
            self.pump()

    def type(self, text):
        os.write(self.master, text.encode())

    def run(self, line, timeout=30):
        """Types a command line, returns (status, the output since it was typed)."""
        start = len(self.screen)
        self.type(line + '; echo "@@""S:$?@@"\r')
        m = self.expect(r"@@S:(\d+)@@", timeout)
        # Without control sequences (bracketed paste around prompts) and carriage returns.
        out = re.sub(r"\x1b\[[?0-9;]*[a-zA-Z]|\r", "", self.screen[start:m.start()])
        return int(m.group(1)), out

    def wait(self, timeout=60):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump()
        self.pump(0.2)
        return self.proc.wait(timeout=1)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


def test_shell_on_a_terminal(tree, rundir):
    s = Session(rundir, "--preset", "agent-safe", str(tree), rows=30, cols=100)
    try:
        s.expect("a terminal in the sandbox")
        # Our terminal is raw while the shell runs: the terminal inside does echo and editing.
        assert not termios.tcgetattr(s.slave)[3] & termios.ECHO
        status, out = s.run("tty")
        assert status == 0 and re.search(r"\n/dev/pts/\d+\n", out), out
        status, out = s.run("stty size")
        assert "\n30 100\n" in out, out
        # A resize of our terminal reaches the sandbox's (SIGWINCH → resize frame).
        set_size(s.slave, 40, 120)
        os.killpg(s.proc.pid, signal.SIGWINCH)  # what the kernel does for the terminal's owner
        time.sleep(0.5)
        status, out = s.run("stty size")
        assert "\n40 120\n" in out, out
        # The policy applies: hidden files are invisible, denied ones unreadable.
        status, out = s.run("ls -A /workspace")
        assert status == 0
        for name in ("README.md", "output", "src"):
            assert name in out
        for name in (".env", "secrets"):
            assert name not in out.split("ls -A /workspace")[-1], out
        status, out = s.run("cat /workspace/.env /workspace/secrets/token")
        assert status != 0
        # Ctrl-C is a byte for the shell: it interrupts `sleep`, not agentfense.
        started = time.monotonic()
        s.type("sleep 60\r")
        time.sleep(0.7)
        s.type("\x03")
        time.sleep(0.5)  # ^C flushes the input queued behind it
        s.type('echo "@@""C:$?@@"\r')
        s.expect(r"@@C:130@@")
        assert time.monotonic() - started < 30
        assert s.proc.poll() is None
        # A write is synced back at the end.
        status, _ = s.run("echo typed > /workspace/output/t.txt")
        assert status == 0
        # TIOCSTI from inside is refused, and nothing reaches our terminal's input queue.
        status, out = s.run("python3 -c 'import fcntl,termios; "
                            "fcntl.ioctl(0, termios.TIOCSTI, b\"x\")' 2>&1 | tail -1")
        assert "Operation not permitted" in out, out
        s.type("exit 5\r")
        assert s.wait() == 5
        assert SECRET not in s.screen
        assert re.search(r"synced 1 change", s.screen), s.screen
        assert (tree / "output" / "t.txt").read_text() == "typed\n"
        # Our terminal is back as it was, with no input injected into it.
        assert termios.tcgetattr(s.slave) == s.saved
        pending = struct.unpack("i", fcntl.ioctl(s.slave, termios.FIONREAD, b"\0\0\0\0"))[0]
        assert pending == 0
    finally:
        s.close()
    assert_clean(rundir)


def test_shell_terminal_ctrl_c_status_and_sigterm_restores(tree, rundir):
    s = Session(rundir, "--discard", str(tree))
    try:
        s.expect("a terminal in the sandbox")
        s.type("sleep 60\r")
        time.sleep(0.7)
        s.type("\x03")
        time.sleep(0.5)  # ^C flushes the input queued behind it
        s.type('echo "@@""C:$?@@"\r')
        s.expect(r"@@C:130@@")
        status, _ = s.run("touch /workspace/output/dropped")
        assert status == 0
        s.type("sleep 100 &\r")
        # SIGTERM to agentfense: the sandbox ends, the terminal is restored, nothing is applied.
        time.sleep(0.5)
        s.proc.send_signal(signal.SIGTERM)
        assert s.wait() == 128 + signal.SIGTERM
        assert termios.tcgetattr(s.slave) == s.saved
        assert not (tree / "output" / "dropped").exists()
    finally:
        s.close()
    assert_clean(rundir)


def test_shell_with_a_pipe_on_stdout_stays_in_line_mode(tree, rundir):
    # Our terminal on stdin but a pipe on stdout: no raw mode, commands run line by line.
    master, slave = os.openpty()
    try:
        saved = termios.tcgetattr(slave)
        env = dict(os.environ, AGENTFENSE_RUNTIME_DIR=str(rundir))
        proc = subprocess.Popen([str(BINARY), "shell", str(tree)], stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        # (Line mode only notices that `exit` ended the shell at the next line: ^D ends input.)
        os.write(master, b"tty || echo no-tty\nexit 4\n\x04")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 4, err
        assert b"no-tty" in out
        assert b"line mode" in err
        assert termios.tcgetattr(slave) == saved
    finally:
        os.close(master)
        os.close(slave)
    assert_clean(rundir)


@needs_root_for_docker
def test_shell_terminal_under_docker(tree, rundir):
    # The same terminal through the Docker runtime (busybox image: `sh -i` on the container's own
    # /dev/pts). Needs dockerd and the test image (scripts/ensure-services).
    s = Session(rundir, "--runtime", "docker", "--image", "agentfense-test/busybox",
                "--preset", "agent-safe", str(tree), rows=31, cols=99)
    try:
        s.expect("a terminal in the sandbox", timeout=60)
        status, out = s.run("tty")
        assert status == 0 and re.search(r"\n/dev/pts/\d+\n", out), out
        status, out = s.run("stty size")
        assert "\n31 99\n" in out, out
        set_size(s.slave, 35, 110)
        os.killpg(s.proc.pid, signal.SIGWINCH)
        time.sleep(0.5)
        status, out = s.run("stty size")
        assert "\n35 110\n" in out, out
        status, out = s.run("ls -a /workspace")
        assert "README.md" in out and ".env" not in out.split("ls -a /workspace")[-1], out
        s.type("sleep 60\r")
        time.sleep(0.7)
        s.type("\x03")
        time.sleep(0.5)  # ^C flushes the input queued behind it
        s.type('echo "@@""C:$?@@"\r')
        s.expect(r"@@C:130@@")
        s.type("exit 6\r")
        assert s.wait() == 6
        assert termios.tcgetattr(s.slave) == s.saved
    finally:
        s.close()
    assert_clean(rundir)
