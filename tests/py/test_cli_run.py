"""End-to-end tests of `agentfense run`, `shell`, `mount` and `umount`: the real binary over a real
FUSE mount in a real bwrap sandbox (no server). Each test gets its own fixture tree and its own
$AGENTFENSE_RUNTIME_DIR, so leftovers (directories, mounts, processes) can be checked exactly.

Exit statuses (docs/CLI.md): the command's own; 122 sandbox unavailable; 123 sync failed;
124 timeout; 125 usage / invalid input; 128+N interrupted by signal N.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_fixtures import BINARY, SECRET, assert_clean, needs_root_for_docker


def env_for(rundir):
    env = dict(os.environ)
    env["AGENTFENSE_RUNTIME_DIR"] = str(rundir)
    return env


def run(rundir, *args, timeout=120, stdin=subprocess.DEVNULL):
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: build the 'agentfense' target first")
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=timeout,
                          env=env_for(rundir), stdin=stdin)


def sh(script):
    return ["--", "sh", "-c", script]


# ---- presets over the fixture tree -------------------------------------------------------------

def test_agent_safe_hides_secrets_reads_src_and_syncs_output(tree, rundir):
    p = run(rundir, "run", "--preset", "agent-safe", str(tree), *sh(
        "ls -A /workspace; cat /workspace/src/app.py; echo made > /workspace/output/new.txt; "
        "cat /workspace/secrets/token /workspace/.env /workspace/server.pem /workspace/.git/config;"
        " find /workspace | sort; echo end"))
    assert p.returncode == 0, p.stderr
    listing = p.stdout.split("print('hi')")[0].split()
    assert sorted(listing) == ["README.md", "output", "src"]
    assert SECRET not in p.stdout + p.stderr
    assert "end" in p.stdout
    assert (tree / "output" / "new.txt").read_text() == "made\n"
    assert "1 added" in p.stderr and "/output/new.txt" in p.stderr
    assert_clean(rundir)


def test_agent_safe_refuses_writes_outside_output(tree, rundir):
    p = run(rundir, "run", "--preset", "agent-safe", str(tree),
            *sh("echo x > /workspace/src/app.py"))
    assert p.returncode != 0
    assert (tree / "src" / "app.py").read_text() == "print('hi')\n"
    assert_clean(rundir)


def test_default_policy_is_agent_safe(tree, rundir):
    p = run(rundir, "run", str(tree), *sh("cat /workspace/.env; ls -A /workspace"))
    assert SECRET not in p.stdout + p.stderr
    assert ".env" not in p.stdout
    assert_clean(rundir)


def test_read_only_preset(tree, rundir):
    p = run(rundir, "run", "--preset", "read-only", str(tree),
            *sh("cat /workspace/README.md; echo x > /workspace/output/x && echo WROTE"))
    assert "readme" in p.stdout and "WROTE" not in p.stdout
    assert not (tree / "output" / "x").exists()
    assert_clean(rundir)


def test_view_only_preset_lists_but_cannot_read(tree, rundir):
    p = run(rundir, "run", "--preset", "view-only", str(tree),
            *sh("ls /workspace; cat /workspace/README.md && echo CAT-OK"))
    assert "README.md" in p.stdout and "CAT-OK" not in p.stdout and "readme" not in p.stdout
    assert_clean(rundir)


def test_full_access_syncs_add_modify_delete(tree, rundir):
    p = run(rundir, "run", "--preset", "full-access", str(tree), *sh(
        "echo new > /workspace/added.txt; echo changed > /workspace/README.md; "
        "rm /workspace/src/app.py"))
    assert p.returncode == 0, p.stderr
    assert (tree / "added.txt").read_text() == "new\n"
    assert (tree / "README.md").read_text() == "changed\n"
    assert not (tree / "src" / "app.py").exists()
    assert "1 added, 1 modified, 1 deleted" in p.stderr
    assert_clean(rundir)


def test_development_preset_writes_but_hides_secrets(tree, rundir):
    p = run(rundir, "run", "--preset", "development", str(tree), *sh(
        "echo y >> /workspace/src/app.py; cat /workspace/secrets/token; ls -A /workspace"))
    assert SECRET not in p.stdout + p.stderr
    assert "secrets" not in p.stdout and ".env" not in p.stdout
    assert (tree / "src" / "app.py").read_text() == "print('hi')\ny\n"
    assert_clean(rundir)


def test_rules_file_and_rule_flags(tree, rundir, tmp_path):
    rules = tmp_path / "rules.txt"
    rules.write_text("# comment\n**/*=read\n/output/**=write@10\n")
    p = run(rundir, "run", "--rules-file", str(rules), "--rule", "/README.md=none@100",
            str(tree), *sh("ls /workspace; echo k > /workspace/output/k"))
    assert "README.md" not in p.stdout and "src" in p.stdout
    assert (tree / "output" / "k").exists()
    assert_clean(rundir)


# ---- attacks: nothing may leak from a hidden path ---------------------------------------------

def test_hidden_paths_do_not_leak_through_tricks(tree, rundir):
    script = (
        "cd /workspace; cat src/../secrets/token; cat ./secrets//token; ls -la secrets; "
        "stat secrets/token; ln -s ../secrets/token output/link; cat output/link; "
        "ln secrets/token output/hard; cp -r . /tmp/copy 2>&1; grep -r TOPSECRET /tmp/copy; "
        "tar cf - . 2>/dev/null | strings | grep TOPSECRET; mv secrets output/s; "
        "cat output/s/token; echo done")
    p = run(rundir, "run", "--preset", "agent-safe", str(tree), *sh(script))
    assert "done" in p.stdout
    assert SECRET not in p.stdout + p.stderr
    # Nothing synced back may carry the secret or replace it.
    for f in (tree / "output").rglob("*"):
        if f.is_file() and not f.is_symlink():
            assert SECRET not in f.read_text(errors="replace")
    assert (tree / "secrets" / "token").read_text() == SECRET + "\n"
    assert_clean(rundir)


# ---- sync modes ------------------------------------------------------------------------------

def test_discard_leaves_source_untouched(tree, rundir):
    p = run(rundir, "run", "--discard", "--preset", "full-access", str(tree),
            *sh("echo gone > /workspace/output/d.txt; rm /workspace/README.md"))
    assert p.returncode == 0, p.stderr
    assert not (tree / "output" / "d.txt").exists()
    assert (tree / "README.md").exists()
    assert "discarded 2 change(s)" in p.stderr
    assert_clean(rundir)


def test_keep_delta_leaves_changes_in_dir(tree, rundir, tmp_path):
    delta = tmp_path / "delta"
    p = run(rundir, "run", "--keep-delta", str(delta), str(tree),
            *sh("echo kept > /workspace/output/k.txt"))
    assert p.returncode == 0, p.stderr
    assert not (tree / "output" / "k.txt").exists()
    assert str(delta) in p.stderr and "/output/k.txt" in p.stderr
    kept = [f for f in delta.rglob("k.txt")]
    assert kept and kept[0].read_text() == "kept\n"
    assert_clean(rundir)


def test_keep_delta_refuses_non_empty_or_inside_source(tree, rundir, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    p = run(rundir, "run", "--keep-delta", str(full), str(tree), "--", "true")
    assert p.returncode == 125 and "not empty" in p.stderr
    p = run(rundir, "run", "--keep-delta", str(tree / "output" / "d"), str(tree), "--", "true")
    assert p.returncode == 125 and "inside" in p.stderr
    assert not (tree / "output" / "d").exists()  # refused input creates nothing
    assert_clean(rundir)


def test_json_summary_shape(tree, rundir):
    p = run(rundir, "run", "--json", "--preset", "agent-safe", str(tree),
            *sh("echo j > /workspace/output/j; exit 4"))
    assert p.returncode == 4
    doc = json.loads(p.stdout.strip().splitlines()[-1])
    assert doc["exit_code"] == 4 and doc["status"] == 4 and doc["signal"] == 0
    assert doc["timed_out"] is False and doc["interrupted"] is False
    assert doc["sync"]["mode"] == "sync" and doc["sync"]["added"] == 1
    assert doc["sync"]["changes"] == [
        {"path": "/output/j", "kind": "added", "size": 2, "is_dir": False}]
    assert_clean(rundir)


# ---- exit statuses ---------------------------------------------------------------------------

@pytest.mark.parametrize("script,code", [("exit 0", 0), ("exit 7", 7), ("exit 255", 255),
                                         ("kill -9 $$", 137), ("kill -TERM $$", 143)])
def test_exit_code_propagates(tree, rundir, script, code):
    p = run(rundir, "run", "-q", str(tree), *sh(script))
    assert p.returncode == code, p.stderr
    if script.startswith("kill"):
        assert "killed by SIG" in p.stderr
    assert_clean(rundir)


def test_command_not_found_is_127(tree, rundir):
    p = run(rundir, "run", "-q", str(tree), "--", "/no/such/program")
    assert p.returncode == 127
    assert_clean(rundir)


def test_output_streams_live_and_stays_separate(tree, rundir):
    proc = subprocess.Popen([str(BINARY), "run", "-q", str(tree), *sh(
        "echo first; echo err >&2; sleep 5; echo second")], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env_for(rundir))
    first = proc.stdout.readline()
    assert first == "first\n"
    assert proc.poll() is None  # still running: the line came before the command ended
    out, errs = proc.communicate(timeout=60)
    assert out == "second\n" and "err" in errs
    assert proc.returncode == 0
    assert_clean(rundir)


def test_timeout_kills_and_exits_124(tree, rundir):
    start = time.monotonic()
    p = run(rundir, "run", "--timeout", "1s", str(tree), "--", "sleep", "60")
    assert p.returncode == 124 and "timed out" in p.stderr
    assert time.monotonic() - start < 50
    assert_clean(rundir)


def test_env_and_workdir(tree, rundir):
    p = run(rundir, "run", "-q", "--env", "FOO=bar baz", "--workdir", "src", str(tree),
            *sh('echo "$FOO"; pwd'))
    assert p.stdout == "bar baz\n/workspace/src\n"
    assert_clean(rundir)


def test_stdin_forwarding(tree, rundir):
    p = subprocess.run([str(BINARY), "run", "-q", "-i", str(tree), "--", "wc", "-c"],
                       input="12345", capture_output=True, text=True, timeout=60,
                       env=env_for(rundir))
    assert p.stdout.strip() == "5"


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["run"], "missing DIR"),
    (["run", "--", "true"], "missing DIR"),
    (["run", "{file}", "--", "true"], "is not a directory"),
    (["run", "/nonexistent-dir-xyz", "--", "true"], "No such file"),
    (["run", "--preset", "nope", "{dir}", "--", "true"], "unknown preset"),
    (["run", "--rule", "/x=superwrite", "{dir}", "--", "true"], "unknown permission level"),
    (["run", "--memory", "12Q", "{dir}", "--", "true"], "--memory 12Q"),
    (["run", "--timeout", "5parsecs", "{dir}", "--", "true"], "--timeout 5parsecs"),
    (["run", "{dir}", "true"], "missing -- before the command"),
    (["run", "{dir}"], "missing -- before the command"),
    (["run", "{dir}", "--"], "missing COMMAND"),
    (["run", "--runtime", "lxc", "{dir}", "--", "true"], "unknown runtime"),
    (["run", "--sync", "--discard", "{dir}", "--", "true"], "excludes"),
    (["run", "--image", "x", "{dir}", "--", "true"], "--image needs --runtime docker"),
    (["run", "--env", "1X=2", "{dir}", "--", "true"], "--env 1X=2"),
    (["run", "--rules-file", "/nonexistent-rules", "{dir}", "--", "true"], "nonexistent-rules"),
    (["shell", "{dir}", "--", "ls"], "shell takes no COMMAND"),
    (["run", "/tmp", "--", "true"], "contains the runtime directory"),  # mount inside its source
    (["run", "/", "--", "true"], "contains the runtime directory"),
])
def test_bad_input_is_one_line_and_125(tree, rundir, args, message):
    args = [a.format(dir=tree, file=tree / "README.md") for a in args]
    p = run(rundir, *args)
    assert p.returncode == 125, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentfense: error: "), p.stderr
    assert message in lines[0]
    assert p.stdout == ""
    assert_clean(rundir)


def test_bwrap_missing_is_122(tree, rundir):
    p = run(rundir, "run", "--bwrap-path", "/nonexistent/bwrap", str(tree), "--", "true")
    assert p.returncode == 122
    assert "bwrap not found" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert_clean(rundir)


@needs_root_for_docker
def test_dockerd_down_is_122(tree, rundir):
    p = run(rundir, "run", "--runtime", "docker", "--docker-host",
            f"unix://{rundir}/dead.sock", str(tree), "--", "true")
    assert p.returncode == 122
    assert "docker daemon not reachable" in p.stderr
    assert_clean(rundir)


# ---- signals and cleanup ---------------------------------------------------------------------

@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_cleans_up_everything(tree, rundir, sig, code):
    proc = subprocess.Popen([str(BINARY), "run", str(tree), *sh("echo started; sleep 60")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_for(rundir))
    assert proc.stdout.readline() == "started\n"
    # While it runs: one private dir, one FUSE mount under it, a supervisor.
    assert len(list(rundir.iterdir())) == 1
    assert str(rundir) in Path("/proc/mounts").read_text()
    proc.send_signal(sig)
    out, errs = proc.communicate(timeout=60)
    assert proc.returncode == code, errs
    assert_clean(rundir)
    assert not (tree / "output" / "x").exists()


def test_interrupt_keeps_unapplied_changes(tree, rundir):
    proc = subprocess.Popen([str(BINARY), "run", str(tree), *sh(
        "echo half > /workspace/output/half.txt; echo started; sleep 60")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(rundir))
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGINT)
    _, errs = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert not (tree / "output" / "half.txt").exists()  # never half-applied
    assert "interrupted" in errs and "delta is kept in" in errs
    kept = list(rundir.rglob("half.txt"))
    assert kept and kept[0].read_text() == "half\n"  # ...and never lost
    assert str(rundir) not in Path("/proc/mounts").read_text()


# ---- shell (line mode) -----------------------------------------------------------------------

def test_shell_line_mode_keeps_state_and_syncs(tree, rundir):
    p = subprocess.run(
        [str(BINARY), "shell", "--preset", "agent-safe", str(tree)],
        input="cd /workspace/output\nexport X=42\necho $X > x.txt\npwd\ncat /workspace/.env\n"
              "echo a \\\nb\nexit 3\n",
        capture_output=True, text=True, timeout=120, env=env_for(rundir))
    assert "a b" in p.stdout  # a trailing backslash continues the line
    assert "/workspace/output" in p.stdout
    assert SECRET not in p.stdout + p.stderr
    assert (tree / "output" / "x.txt").read_text() == "42\n"
    assert_clean(rundir)


# ---- mount / umount --------------------------------------------------------------------------

def test_mount_background_then_umount(tree, tmp_path, rundir):
    mp = tmp_path / "mnt"
    mp.mkdir()
    p = run(rundir, "mount", "-d", "--preset", "agent-safe", str(tree), str(mp))
    assert p.returncode == 0, p.stderr
    try:
        names = sorted(os.listdir(mp))
        assert names == ["README.md", "output", "src"]
        assert (mp / "src" / "app.py").read_text() == "print('hi')\n"
        with pytest.raises(OSError):
            (mp / "secrets" / "token").read_text()
        with pytest.raises(OSError):
            (mp / "README.md").write_text("no")
    finally:
        u = run(rundir, "umount", str(mp))
    assert u.returncode == 0, u.stderr
    assert str(mp) not in Path("/proc/mounts").read_text()
    assert run(rundir, "umount", str(mp)).returncode == 2  # no longer a mount


def test_mount_foreground_ends_on_sigint(tree, tmp_path, rundir):
    mp = tmp_path / "mnt"
    mp.mkdir()
    proc = subprocess.Popen([str(BINARY), "mount", "--preset", "read-only", str(tree), str(mp)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while str(mp) not in Path("/proc/mounts").read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    assert (mp / "README.md").read_text() == "readme\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert str(mp) not in Path("/proc/mounts").read_text()


def test_mount_bad_input(tree, tmp_path, rundir):
    p = run(rundir, "mount", "--preset", "agent-safe", str(tree), str(tmp_path / "nope"))
    assert p.returncode == 2 and "MOUNTPOINT" in p.stderr
    p = run(rundir, "mount", "--preset", "nope", str(tree), str(tmp_path))
    assert p.returncode == 2 and "unknown preset" in p.stderr
    p = run(rundir, "umount", str(tmp_path))
    assert p.returncode == 2 and "not an agentfense" in p.stderr


# ---- docker runtime (needs dockerd and the local test images: scripts/ensure-services) ---------

@needs_root_for_docker
def test_docker_runtime_with_limits(tree, rundir):
    p = run(rundir, "run", "--runtime", "docker", "--image", "agentfense-test/busybox",
            "--memory", "64M", "--pids", "64", "--cpus", "0.5", str(tree), *sh(
                "ls -A /workspace; cat /workspace/secrets/token; "
                "echo d > /workspace/output/dock.txt; exit 6"))
    assert p.returncode == 6, p.stderr
    assert sorted(p.stdout.split()) == ["README.md", "output", "src"]
    assert SECRET not in p.stdout + p.stderr
    assert (tree / "output" / "dock.txt").read_text() == "d\n"
    assert_clean(rundir)
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True,
                           text=True).stdout
    # `run` names its containers agentfense-cli-<sandbox id> and removes them at the end.
    assert [n for n in names.split() if n.startswith("agentfense-cli-")] == []


@needs_root_for_docker
def test_docker_missing_image_is_122(tree, rundir):
    p = run(rundir, "run", "--runtime", "docker", "--image", "agentfense-test/no-such-image",
            str(tree), "--", "true")
    assert p.returncode == 122, p.stderr
    assert "no-such-image" in p.stderr
    assert_clean(rundir)


def test_mount_with_delta_leaves_source_untouched(tree, tmp_path, rundir):
    mp = tmp_path / "mnt"
    mp.mkdir()
    delta = tmp_path / "delta"
    p = run(rundir, "mount", "-d", "--preset", "full-access", "--delta", str(delta), str(tree),
            str(mp))
    assert p.returncode == 0, p.stderr
    try:
        (mp / "output" / "w.txt").write_text("cow\n")
        (mp / "README.md").unlink()
        assert (mp / "output" / "w.txt").read_text() == "cow\n"
        assert not (mp / "README.md").exists()
    finally:
        assert run(rundir, "umount", str(mp)).returncode == 0
    assert not (tree / "output" / "w.txt").exists() and (tree / "README.md").exists()
    assert [f.read_text() for f in delta.rglob("w.txt")] == ["cow\n"]
    p = run(rundir, "mount", "--preset", "full-access", "--delta", str(tree / "d"), str(tree),
            str(mp))
    assert p.returncode == 2 and "inside" in p.stderr
    assert not (tree / "d").exists()  # refused input creates nothing


def test_sigkill_of_the_cli_is_cleaned_up_by_the_reaper(tree, rundir):
    # SIGKILL cannot be caught: the detached reaper notices our death and does the cleanup.
    proc = subprocess.Popen([str(BINARY), "run", str(tree), *sh(
        "echo k > /workspace/output/killed.txt; echo started; sleep 60")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(rundir))
    assert proc.stdout.readline() == "started\n"
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.time() + 60
    while time.time() < deadline:
        busy = subprocess.run(["pgrep", "-af", str(rundir)], capture_output=True,
                              text=True).stdout.strip()
        if not busy and str(rundir) not in Path("/proc/mounts").read_text():
            break
        time.sleep(0.1)
    assert str(rundir) not in Path("/proc/mounts").read_text()
    assert subprocess.run(["pgrep", "-af", str(rundir)], capture_output=True,
                          text=True).stdout.strip() == ""
    assert not (tree / "output" / "killed.txt").exists()  # never applied...
    kept = list(rundir.rglob("killed.txt"))
    assert kept and kept[0].read_text() == "k\n"  # ...never lost
    assert not list(rundir.rglob("run"))  # sockets, spec, log: gone


def test_sigkill_without_changes_leaves_nothing(tree, rundir):
    proc = subprocess.Popen([str(BINARY), "run", str(tree), *sh("echo started; sleep 60")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_for(rundir))
    assert proc.stdout.readline() == "started\n"
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.time() + 60
    while list(rundir.iterdir()) and time.time() < deadline:
        time.sleep(0.1)
    assert_clean(rundir)


def test_shell_ctrl_c_cancels_the_command_not_the_shell(tree, rundir):
    proc = subprocess.Popen([str(BINARY), "shell", str(tree)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_for(rundir))
    proc.stdin.write("echo started; sleep 60\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGINT)
    proc.stdin.write("echo alive\n")
    proc.stdin.close()
    out = proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    assert out == "alive\n"
    assert_clean(rundir)
