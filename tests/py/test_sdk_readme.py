"""Every Python snippet of the seed README, run verbatim (as its own python3 process) against a real
server. Only the endpoint is adapted. Snippets that assume surroundings (a `client`, the `anthropic`
package, Docker with python:3.11-slim) get them from the harness, never by editing the snippet."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server_fixture import cleanup_server, make_server

ROOT = Path(__file__).resolve().parents[2]
README_DIR = ROOT / "sdk" / "python" / "tests" / "readme"
# The seed README lives beside the repository in the shared spec directory (a clean clone elsewhere
# finds it at its usual absolute place); AGENTFENSE_SEED_README overrides both.
_SEED_CANDIDATES = [Path(p) for p in (os.environ.get("AGENTFENSE_SEED_README"),
                                      ROOT.parent / "shared" / "spec" / "seed-readme.txt",
                                      "/work/shared/spec/seed-readme.txt") if p]
SEED = next((p for p in _SEED_CANDIDATES if p.is_file()), _SEED_CANDIDATES[0])
sys.path.insert(0, str(README_DIR))
import snippets  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="needs root and /dev/fuse")
ALL = ["ONE_LINER", "CUSTOM_PERMISSIONS", "ANTHROPIC_AGENT", "QUICK_START", "ASYNC", "PRESETS", "ERRORS",
       "LOW_LEVEL"]


@pytest.fixture(scope="module")
def server():
    s = make_server()
    s.start()
    yield s
    cleanup_server(s)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The two projects the snippets name, ./my-project and ./project."""
    d = tmp_path_factory.mktemp("readme")
    mp = d / "my-project"
    (mp / "tests").mkdir(parents=True)
    (mp / "main.py").write_text("print('hello from my-project')\n")
    (mp / "requirements.txt").write_text("")
    (mp / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    p = d / "project"
    (p / "output").mkdir(parents=True)
    (p / "main.py").write_text("print('hello from project')\n")
    (p / "tool.py").write_text("")
    (p / ".env").write_text("API_KEY=CANARY-README-ENV\n")
    return d


@pytest.fixture(scope="module")
def has_python(server, workdir):
    """Whether `python` (not just python3) exists inside a bwrap sandbox on this host."""
    from agentfense import Sandbox

    with Sandbox.from_local(workdir / "project", endpoint=server.grpc_addr) as sb:
        return sb.run("command -v python").exit_code == 0


def run_snippet(name, server, workdir, prelude="", epilogue="", extra_path=()):
    """Runs snippet `name` in a fresh python3 in `workdir`; `prelude`/`epilogue` supply what the
    README has around the snippet and the checks, the snippet text itself is untouched."""
    code = getattr(snippets, name).replace('"localhost:9000"', repr(server.grpc_addr)) + epilogue
    env = dict(os.environ)
    env["AGENTFENSE_ENDPOINT"] = server.grpc_addr
    env["PYTHONPATH"] = os.pathsep.join([*extra_path, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", prelude + code], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"snippet {name} failed:\n{proc.stderr}"
    return proc.stdout


def leaks(server):
    from agentfense import SandboxClient

    with SandboxClient(endpoint=server.grpc_addr) as c:
        return c.list_sandboxes(), c.list_codebases()


def test_snippets_are_verbatim_from_the_seed():
    if not SEED.is_file():
        pytest.skip(f"seed README not found at {SEED} (set AGENTFENSE_SEED_README)")
    seed = re.sub(r"\s+", "", SEED.read_text())
    for name in ALL:
        assert re.sub(r"\s+", "", getattr(snippets, name)) in seed, name


def test_one_liner(server, workdir, has_python):
    out = run_snippet("ONE_LINER", server, workdir)
    assert out == ("hello from my-project\n\n" if has_python else "\n")
    assert leaks(server) == ([], [])


def test_custom_permissions(server, workdir):
    prelude = (  # the README's `client` and `codebase`
        "from agentfense import SandboxClient\n"
        "client = SandboxClient()\n"
        "codebase = client.create_codebase(name='perm-demo', owner_id='readme')\n"
        "for p, c in [('docs/d.md', 'DOC'), ('metadata/m.json', 'META'), ('secrets/k', 'CANARY'),"
        " ('src/a.py', 'SRC')]:\n"
        "    client.upload_file(codebase.id, p, c)\n")
    epilogue = (
        "\nclient.start_sandbox(sandbox.id)\n"
        "r = client.exec(sandbox.id, 'cat src/a.py; echo W > docs/new.md && cat docs/new.md; ls metadata;"
        " cat metadata/m.json; ls -a; cat secrets/k; echo X > src/b.py')\n"
        "print(r.stdout); print(r.stderr)\n"
        "client.destroy_sandbox(sandbox.id); client.delete_codebase(codebase.id)\n")
    out = run_snippet("CUSTOM_PERMISSIONS", server, workdir, prelude=prelude, epilogue=epilogue)
    stdout, _, stderr = out.partition("\n\n")
    assert "SRC" in out and "W\n" in out and "m.json" in out
    assert "META" not in out and "CANARY" not in out and "secrets" not in stdout
    assert "src/b.py" in out and ("Permission denied" in out or "Read-only" in out)
    assert leaks(server) == ([], [])


def test_anthropic_agent(server, workdir):
    # stand_in/ provides extract_command (sitecustomize) and, as no `anthropic` is installed in CI,
    # a scripted `anthropic` that answers like the API would.
    if importlib.util.find_spec("anthropic") is not None:
        pytest.skip("a real `anthropic` package is installed: its answers depend on the model")
    extra = [str(README_DIR / "stand_in")]
    out = run_snippet("ANTHROPIC_AGENT", server, workdir, extra_path=extra)
    assert "./main.py" in out and "./tool.py" in out
    assert "CANARY" not in out  # the scripted command also tries `cat .env`
    assert leaks(server) == ([], [])


def test_quick_start_with_docker(server, workdir, has_python):
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.skip("no dockerd (run scripts/ensure-services)")
    created_tag = False
    if subprocess.run(["docker", "image", "inspect", "python:3.11-slim"], capture_output=True).returncode:
        # No registry here: python:3.11-slim is our local Debian test image under the README's name.
        subprocess.run(["docker", "tag", "agentfense-test/debian", "python:3.11-slim"], check=True)
        created_tag = True
    try:
        out = run_snippet("QUICK_START", server, workdir)
    finally:
        if created_tag:
            subprocess.run(["docker", "rmi", "python:3.11-slim"], capture_output=True)
    assert out.startswith("hello from my-project\n" if has_python else "\n")
    assert leaks(server) == ([], [])


def test_async(server, workdir, has_python):
    out = run_snippet("ASYNC", server, workdir)
    assert out == ("hello from my-project\n\n" if has_python else "\n")
    assert leaks(server) == ([], [])


def test_presets(server, workdir):
    run_snippet("PRESETS", server, workdir)
    from agentfense import extend_preset, list_presets

    rules = extend_preset("agent-safe", additions=[{"pattern": "/custom/**", "permission": "write"}])
    assert rules[-1].pattern == "/custom/**" and "agent-safe" in list_presets()


def test_errors(server, workdir, has_python):
    out = run_snippet("ERRORS", server, workdir)
    if has_python:
        assert out == ""  # main.py succeeds, nothing printed
    else:
        assert out.startswith("Failed (exit 127): ") and "python" in out
    assert leaks(server) == ([], [])


def test_low_level(server, workdir, has_python):
    out = run_snippet("LOW_LEVEL", server, workdir)
    assert out == ("hello\n\n" if has_python else "\n")
    assert leaks(server) == ([], [])
