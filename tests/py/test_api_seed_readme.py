"""The curl examples of the seed README (/work/shared/spec/seed-readme.txt, "REST API" section)
run as written against a live server: the commands are extracted from the README text itself
(not retyped), and only the host:port and the placeholder ids (cb_xxx, sb_xxx) are substituted.
Note that `curl -d` sends Content-Type application/x-www-form-urlencoded: the server accepts a
JSON object under that type from non-browser clients (see docs/API.md, "JSON bodies")."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from server_fixture import SERVER_BIN, cleanup_server, make_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")

README = Path(os.environ.get("AGENTFENSE_SEED_README", "/work/shared/spec/seed-readme.txt"))
# The same examples, verbatim, for checkouts without the shared spec directory.
FALLBACK = r"""
curl -X POST http://localhost:8080/v1/codebases \
-d '{"name": "my-project", "owner_id": "user_001"}'
curl -X POST http://localhost:8080/v1/sandboxes \
-d '{"codebase_id": "cb_xxx", "permissions": [{"pattern": "**/*", "permission": "PERMISSION_READ"}]}'
curl -X POST http://localhost:8080/v1/sandboxes/sb_xxx/start
curl -X POST http://localhost:8080/v1/sandboxes/sb_xxx/exec -d '{"command": "ls /workspace"}'
curl -X DELETE http://localhost:8080/v1/sandboxes/sb_xxx
"""


def extract_curl_commands(text: str) -> list[str]:
    """Every `curl ...` command of the text, with backslash continuations joined. The README's
    last command is followed by box-drawing characters on the same line: cut there."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("curl "):
            cmd = line
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
            cmd = re.split(r"[\u2500-\u257f]", cmd)[0].strip()
            out.append(cmd)
        i += 1
    return out


@pytest.fixture()
def server():
    if not SERVER_BIN.exists():
        pytest.fail(f"{SERVER_BIN} is missing: build the 'agentfense-server' target first")
    s = make_server()
    s.start()
    yield s
    cleanup_server(s)


def test_seed_readme_curl_examples(server):
    assert shutil.which("curl"), "curl is required"
    text = README.read_text() if README.exists() else FALLBACK
    commands = extract_curl_commands(text)
    assert len(commands) == 5, commands
    assert commands == extract_curl_commands(FALLBACK), "the README examples changed"

    ids: dict[str, str] = {}

    def run(cmd: str) -> dict:
        cmd = cmd.replace("http://localhost:8080", server.http_base)
        for placeholder, real in ids.items():
            cmd = cmd.replace(placeholder, real)
        argv = shlex.split(cmd)
        # -s only hides the progress meter; -w appends the HTTP status for the assertion.
        p = subprocess.run(argv + ["-s", "-w", "\n%{http_code}"], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        body, _, code = p.stdout.rpartition("\n")
        assert code == "200", (cmd, code, body)
        return json.loads(body)

    codebase = run(commands[0])
    assert codebase["name"] == "my-project" and codebase["ownerId"] == "user_001"
    ids["cb_xxx"] = codebase["id"]
    sandbox = run(commands[1])
    assert sandbox["status"] == "SANDBOX_STATUS_PENDING"
    assert sandbox["permissions"][0]["permission"] == "PERMISSION_READ"
    ids["sb_xxx"] = sandbox["id"]
    started = run(commands[2])
    assert started["status"] == "SANDBOX_STATUS_RUNNING"
    result = run(commands[3])
    assert result.get("exitCode", 0) == 0 and result.get("stdout", "") == ""
    assert run(commands[4]) == {}
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        f"{server.http_base}/v1/sandboxes/{ids['sb_xxx']}"],
                       capture_output=True, text=True, timeout=30)
    assert p.stdout == "404"


def test_form_typed_json_from_a_browser_is_refused(server):
    # The same request with the header any browser adds to a cross-site POST: CSRF refused.
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                        "-H", "Origin: http://evil.example", f"{server.http_base}/v1/codebases",
                        "-d", '{"name": "x", "owner_id": "u"}'],
                       capture_output=True, text=True, timeout=30)
    assert p.stdout == "415"
