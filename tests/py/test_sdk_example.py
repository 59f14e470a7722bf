"""examples/ticket-agent end to end in its scripted mode (no model, no network): every permission
level behaves as its README says, and the agent's answer lands in the ticket it may write."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server_fixture import cleanup_server, make_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ticket-agent"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")


@pytest.fixture(scope="module")
def server():
    s = make_server()
    s.start()
    yield s
    cleanup_server(s)


def test_scripted_ticket_agent(server, tmp_path):
    saved = tmp_path / "T-1001.md"
    env = {**os.environ, "ANTHROPIC_API_KEY": ""}  # force the scripted agent even if a key is set
    p = subprocess.run([sys.executable, str(EXAMPLE / "agent.py"), "--endpoint", server.grpc_addr,
                        "--save", str(saved)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    # each step: title line, "$ command" line, then what the sandbox printed
    steps = [st.split("\n", 2)[2] for st in out.split("\n>>> ")[1:]]
    assert len(steps) == 7
    look, mine, related, other, secrets, edit_closed, answer = steps
    assert "T-1003.md" in look and "secrets" not in look                      # view / none
    assert "Export to CSV drops the last row" in mine                          # write includes read
    assert "upgrade to 4.2.1" in related                                       # read
    assert "Permission denied" in other and "Lumbergh" not in other            # view
    assert "CANARY" not in out and "sk-live" not in secrets                     # none
    assert "No such file or directory" in secrets
    assert "Permission denied" in edit_closed and "[exit 0]" not in edit_closed  # read is read-only
    assert "## Agent answer" in answer and "[exit 0]" in answer                 # write
    assert "## Agent answer" in saved.read_text()
    # the example's own data folder is untouched (it was uploaded, not mounted)
    assert "## Agent answer" not in (EXAMPLE / "data" / "tickets" / "T-1001.md").read_text()


def test_extract_command():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import agent
    finally:
        sys.path.remove(str(EXAMPLE))
    assert agent.extract_command("x\n```bash\nls -la\n```\n") == "ls -la"
    assert agent.extract_command("done, no command") is None


def test_claude_mode_loop_with_a_scripted_model(server, tmp_path):
    """The Claude code path (not the model): the stand-in `anthropic` of the README tests proposes
    `find . -name '*.py'; cat .env`, then answers. The real package, if installed, is shadowed."""
    stand_in = str(EXAMPLE.parents[1] / "sdk" / "python" / "tests" / "readme" / "stand_in")
    env = {**os.environ, "ANTHROPIC_API_KEY": "not-used-by-the-stand-in",
           "PYTHONPATH": os.pathsep.join([stand_in, os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, str(EXAMPLE / "agent.py"), "--endpoint", server.grpc_addr,
                        "--task", "list python files"], capture_output=True, text=True, env=env,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "scripted agent" not in p.stdout
    assert "$ find . -name '*.py'; cat .env" in p.stdout and "[exit " in p.stdout
    assert "agent: Done" in p.stdout
