"""End-to-end tests of `agentfense policy ...`: the real binary, run as a subprocess.

The binary is $AGENTFENSE_BUILD_DIR/bin/agentfense (scripts/run-tests sets the variable; it
defaults to ./build). Exit codes: 0 ok, 2 usage error or invalid input.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AGENTFENSE_BUILD_DIR", REPO / "build"))
BINARY = BUILD / "bin" / "agentfense"


def run(*args, check_code=None):
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: build the 'agentfense' target first")
    proc = subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=30)
    if check_code is not None:
        assert proc.returncode == check_code, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def table(stdout):
    """[(path, level)] of an explain table, header dropped, continuation lines skipped."""
    rows = []
    for line in stdout.splitlines()[1:]:
        if line.startswith(" "):
            continue
        path, level = line.split()[:2]
        rows.append((path, level))
    return rows


def test_agent_safe_explain_levels():
    paths = ["/secrets/a", "/a/b/secrets/c", "/.git/config", "/src/x.py", "/output/r.txt"]
    proc = run("policy", "explain", "--preset", "agent-safe", *paths, check_code=0)
    assert table(proc.stdout) == list(zip(paths, ["none", "none", "none", "read", "write"]))
    assert proc.stderr == ""
    # The deciding rule is named on each line.
    lines = proc.stdout.splitlines()
    assert "**/secrets/**" in lines[1] and "@100" in lines[1]
    assert "**/.git/**" in lines[3]
    assert "/output/**" in lines[5]


def test_explain_json_parses_and_names_the_rule():
    proc = run("policy", "explain", "--preset", "agent-safe", "--json", "src//x.py", "/.env",
               check_code=0)
    doc = json.loads(proc.stdout)
    assert [p["path"] for p in doc["paths"]] == ["/src/x.py", "/.env"]
    assert doc["paths"][0]["input"] == "src//x.py"
    assert doc["paths"][0]["level"] == "read"
    assert doc["paths"][0]["rule"]["pattern"] == "**/*"
    assert doc["paths"][0]["rule"]["index"] == 0
    env = doc["paths"][1]
    assert env["level"] == "none"
    assert env["rule"]["pattern"] == "**/.env*"
    assert env["rule"]["priority"] == 100
    assert any(m["winner"] for m in env["matches"])
    assert env["reason"]
    assert len(doc["rules"]) == 9


def test_ancestor_visibility_is_reported():
    proc = run("policy", "explain", "--rule", "**/*.py=read", "/lib", "/lib/a.py", check_code=0)
    out = proc.stdout.splitlines()
    assert table(proc.stdout) == [("/lib", "none"), ("/lib/a.py", "read")]
    assert any("as a directory" in line and "view" in line for line in out), proc.stdout
    doc = json.loads(run("policy", "explain", "--json", "--rule", "**/*.py=read", "/lib",
                         check_code=0).stdout)
    d = doc["paths"][0]["as_directory"]
    assert d["level"] == "view" and d["via_descendant"] is True
    assert d["rule"]["pattern"] == "**/*.py"


def test_rule_arguments_follow_preset_and_win_ties():
    proc = run("policy", "explain", "--preset", "read-only", "--rule", "**/*=write",
               "--rule", "/src/**=none@5", "/a", "/src/b", check_code=0)
    assert table(proc.stdout) == [("/a", "write"), ("/src/b", "none")]


def test_rules_file(tmp_path):
    rules = tmp_path / "rules.txt"
    rules.write_text("# base\n\n**/*=read\n   /out/**=write@10   \n")
    proc = run("policy", "explain", "--rules-file", str(rules), "/x", "/out/y", check_code=0)
    assert table(proc.stdout) == [("/x", "read"), ("/out/y", "write")]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--preset", "nope", "/x"], "unknown preset"),
        (["--rule", "/x=sometimes", "/x"], "unknown permission level"),
        (["--rule", "/a/../b=read", "/x"], ".."),
        (["--rule", "=read", "/x"], "empty"),
        (["--rule", "/[ab=read", "/x"], "unbalanced '['"),
        (["--rule", "/x=read@high", "/x"], "priority"),
        (["--rule", "/x=read@99999999999", "/x"], "priority"),
        (["--rule", "/x", "/x"], "PATTERN=LEVEL"),
        (["--rules-file", "/nonexistent/af-rules", "/x"], "/nonexistent/af-rules"),
        (["/x"], "no rules given"),
        (["--preset", "agent-safe", "/a/../b"], "bad path"),
    ],
)
def test_bad_input_exits_2_with_reason(args, needle):
    proc = run("policy", "explain", *args, check_code=2)
    assert needle in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_bad_rule_names_the_argument():
    proc = run("policy", "explain", "--rule", "**/*=read", "--rule", "[x=read", "/x",
               check_code=2)
    assert "--rule #2" in proc.stderr


def test_rules_file_bad_line_is_named(tmp_path):
    rules = tmp_path / "bad.rules"
    rules.write_text("**/*=read\n# fine\n\n/secrets/**=hidden@100\n")
    proc = run("policy", "explain", "--rules-file", str(rules), "/x", check_code=2)
    assert f"{rules}:4:" in proc.stderr, proc.stderr
    assert "hidden" in proc.stderr


def test_presets_listing():
    proc = run("policy", "presets", check_code=0)
    for name in ["agent-safe", "read-only", "full-access", "development", "view-only"]:
        assert f"\n{name}\n" in "\n" + proc.stdout
    doc = json.loads(run("policy", "presets", "--json", check_code=0).stdout)
    by_name = {p["name"]: p["rules"] for p in doc}
    assert by_name["read-only"] == [
        {"index": 0, "pattern": "**/*", "type": "glob", "level": "read", "priority": 0}]
    safe = {(r["pattern"], r["level"], r["priority"]) for r in by_name["agent-safe"]}
    assert ("**/.git/**", "none", 50) in safe
    assert ("/output/**", "write", 10) in safe


def test_presets_listing_round_trips_through_check(tmp_path):
    # The listed rule form is the --rule / rules-file form: it can be pasted back.
    listing = run("policy", "presets", check_code=0).stdout
    block = listing.split("agent-safe\n", 1)[1].split("\nread-only", 1)[0]
    rules = tmp_path / "agent-safe.rules"
    rules.write_text("\n".join(line.strip() for line in block.splitlines()) + "\n")
    run("policy", "check", str(rules), check_code=0)
    a = run("policy", "explain", "--rules-file", str(rules), "/.env", "/src/x", check_code=0)
    b = run("policy", "explain", "--preset", "agent-safe", "/.env", "/src/x", check_code=0)
    assert table(a.stdout) == table(b.stdout)


def test_check(tmp_path):
    good = tmp_path / "good.rules"
    good.write_text("**/*=read\n/out/**=write@10\n")
    proc = run("policy", "check", str(good), check_code=0)
    assert "valid" in proc.stdout and "2 rules" in proc.stdout
    doc = json.loads(run("policy", "check", "--json", str(good), check_code=0).stdout)
    assert doc == {"file": str(good), "valid": True, "rules": 2}

    bad = tmp_path / "bad.rules"
    bad.write_text("**/*=read\n/a[=read\n")
    proc = run("policy", "check", str(bad), check_code=2)
    assert f"{bad}:2:" in proc.stderr
    doc = json.loads(run("policy", "check", "--json", str(bad), check_code=2).stdout)
    assert doc["valid"] is False and f"{bad}:2:" in doc["error"]

    run("policy", "check", str(tmp_path / "missing.rules"), check_code=2)
    run("policy", "check", str(tmp_path), check_code=2)  # a directory is not a rules file


def test_help_version_and_usage():
    top = run("--help", check_code=0)
    assert "policy" in top.stdout and "Exit status" in top.stdout
    for sub in (["policy", "--help"], ["policy", "explain", "--help"],
                ["policy", "presets", "--help"], ["policy", "check", "--help"]):
        assert "Exit status" in run(*sub, check_code=0).stdout
    assert run("--version", check_code=0).stdout.startswith("agentfense ")
    run(check_code=2)
    run("policy", check_code=2)
    run("policy", "explain", "--preset", "agent-safe", check_code=2)  # no path
    run("policy", "explain", "--no-such-flag", "/x", check_code=2)
