"""`agentfense run`, `shell`, `mount` and `umount` as an ordinary user (issue 19): secrets hidden as
with root, writes applied and owned by the user, limits refused with the reason, Ctrl-C and
timeouts, and every start failure naming its cause and its fix."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from rootless_util import SECRET, as_user, popen_as


def run(user, bins, tree, *command, flags=(), env=None, **kw):
    return as_user(user, [str(bins / "agentfense"), "run", *flags, str(tree), "--", *command],
                   env=env, **kw)


def test_run_hides_secrets_and_applies_writes_owned_by_the_user(user, bins, tree):
    run_dir = Path(f"/run/user/{user['uid']}")
    before = set(run_dir.iterdir()) if run_dir.exists() else set()
    r = run(user, bins, tree, "sh", "-c",
            "cat src/app.py; cat .env secrets/token; ls -a; echo made > output/made.txt; "
            "echo changed > README.md; id -u",
            flags=("--preset", "development"))
    assert r.returncode == 0, r.stderr
    assert "hi from rootless" in r.stdout
    assert SECRET not in r.stdout + r.stderr
    assert "secrets" not in r.stdout.split() and ".env" not in r.stdout.split()
    assert r.stdout.strip().splitlines()[-1] != "0"  # never root inside either
    for rel, content in (("output/made.txt", "made\n"), ("README.md", "changed\n")):
        p = tree / rel
        assert p.read_text() == content
        assert (p.stat().st_uid, p.stat().st_gid) == (user["uid"], user["gid"])
    # The run's private state was under the user's XDG_RUNTIME_DIR, and nothing is left of it.
    assert set(run_dir.iterdir()) == before


def test_a_read_only_policy_holds_rootless(user, bins, tree):
    r = run(user, bins, tree, "sh", "-c",
            "echo x > README.md; echo $?; rm src/app.py; echo $?; cat .env; echo $?",
            flags=("--preset", "agent-safe"))
    assert r.returncode == 0, r.stderr
    assert "0" not in r.stdout.split() and len(r.stdout.split()) == 3, r.stdout
    assert (tree / "README.md").read_text() == "readme\n" and (tree / "src" / "app.py").exists()


def test_sandbox_processes_run_as_the_user(user, bins, tree):
    tag = f"7{os.getpid() % 10000:04d}"
    p = popen_as(user, [str(bins / "agentfense"), "run", str(tree), "--", "sleep", tag],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        pids = []
        while time.time() < deadline and not pids:
            pids = [d.name for d in Path("/proc").iterdir() if d.name.isdigit() and
                    _cmdline(d) == ["/usr/bin/sleep", tag]]
            time.sleep(0.1)
        assert pids, p.communicate(timeout=5) if p.poll() is not None else "no sandbox process"
        status = Path(f"/proc/{pids[0]}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(user["uid"])] * 4
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)


def _cmdline(d: Path) -> list[str]:
    try:
        return (d / "cmdline").read_text().split("\0")[:-1]
    except OSError:
        return []


def test_ctrl_c_stops_the_command_applies_nothing_and_leaves_no_mount(user, bins, tree):
    p = popen_as(user, [str(bins / "agentfense"), "run", "--preset", "development", str(tree),
                        "--", "sh", "-c", "echo x > output/half.txt; echo started; sleep 60"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "started\n"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert not (tree / "output" / "half.txt").exists()  # nothing applied half-way
    kept = [line.split()[-1] for line in err.splitlines() if "the delta is kept in" in line]
    assert len(kept) == 1 and kept[0].startswith(f"/run/user/{user['uid']}/"), err
    # Its private directory holds the delta only: the mount is gone.
    assert str(Path(kept[0]).parent) not in Path("/proc/mounts").read_text()
    assert (Path(kept[0]) / "upper" / "output" / "half.txt").exists() or \
        any(p.name == "half.txt" for p in Path(kept[0]).rglob("*")), kept
    subprocess.run(["rm", "-rf", str(Path(kept[0]).parent)])  # the user's to review or delete


def test_timeout_kills_the_command(user, bins, tree):
    t0 = time.time()
    r = run(user, bins, tree, "sleep", "60", flags=("--timeout", "1s", "--discard"))
    assert r.returncode == 124, r.stderr
    assert time.time() - t0 < 30


def test_shell_line_mode(user, bins, tree):
    r = as_user(user, [str(bins / "agentfense"), "shell", "--preset", "development", str(tree)],
                input="cd src\npwd\ncat ../.env\necho hello > ../output/s.txt\n")
    assert r.returncode == 0, r.stderr
    assert "/workspace/src" in r.stdout and SECRET not in r.stdout + r.stderr
    assert (tree / "output" / "s.txt").read_text() == "hello\n"
    assert (tree / "output" / "s.txt").stat().st_uid == user["uid"]


def test_limits_work_or_fail_with_the_reason(user, bins, tree):
    r = run(user, bins, tree, "sh", "-c", "echo ran", flags=("--memory", "256M", "--pids", "64"))
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    if r.returncode == 0:  # a cgroup v2 subtree is delegated to the user here
        assert v2 and r.stdout == "ran\n"
        return
    # Never a silent "no limit": the command did not run, and the error says why and what to do.
    assert "ran" not in r.stdout
    assert r.returncode == 122, r.stderr
    assert "resource limits" in r.stderr and "run as root" in r.stderr
    assert ("cgroup v1" in r.stderr) != v2, r.stderr


def test_mount_serves_the_user_and_umount_detaches(user, bins, tree):
    mnt = Path(tempfile.mkdtemp(prefix="af-rl-mnt-"))
    os.chown(mnt, user["uid"], user["gid"])
    try:
        r = as_user(user, [str(bins / "agentfense"), "mount", "-d", "--preset", "agent-safe",
                           str(tree), str(mnt)])
        assert r.returncode == 0, r.stderr
        r = as_user(user, ["sh", "-c", f"cat {mnt}/src/app.py; ls -a {mnt}; cat {mnt}/.env"])
        assert "hi from rootless" in r.stdout and SECRET not in r.stdout + r.stderr
        # Nobody else is served, root included (the kernel refuses: no allow_other).
        with pytest.raises(PermissionError):
            os.stat(mnt / "src")
        r = as_user(user, [str(bins / "agentfense"), "umount", str(mnt)])
        assert r.returncode == 0, r.stderr
        assert str(mnt) not in Path("/proc/mounts").read_text()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        mnt.rmdir()


def test_allow_other_without_user_allow_other_names_the_fix(user, bins, tree):
    assert "\nuser_allow_other" not in "\n" + Path("/etc/fuse.conf").read_text()
    mnt = Path(tempfile.mkdtemp(prefix="af-rl-mnt-"))
    os.chown(mnt, user["uid"], user["gid"])
    try:
        r = as_user(user, [str(bins / "agentfense"), "mount", "--allow-other", "--preset",
                           "read-only", str(tree), str(mnt)])
        assert r.returncode != 0
        assert "user_allow_other" in r.stderr and "/etc/fuse.conf" in r.stderr, r.stderr
    finally:
        mnt.rmdir()


def test_docker_rootless_names_what_it_needs(user, bins, tree):
    # Docker binds the mount as root: a rootless mount can only serve others with allow_other.
    r = run(user, bins, tree, "true", flags=("--runtime", "docker"))
    assert r.returncode == 122
    assert "user_allow_other" in r.stderr, r.stderr


def test_network_rootless_is_refused_never_the_hosts_namespace(user, bins, tree):
    # The sandbox's network namespace and its filter need root today (docs/NETWORK.md,
    # Rootless): refused with the reason, never a fallback to the host's network.
    r = run(user, bins, tree, "true", flags=("--network",))
    assert r.returncode == 122
    assert "network on needs a supervisor running as root" in r.stderr, r.stderr


# -- start failures, each named with its fix --------------------------------------------------

def in_namespace(user, bins, tree, setup: str, *command: str) -> subprocess.CompletedProcess:
    """Runs `agentfense run` as the user inside a private mount namespace that `setup` (a shell
    snippet run as root) altered: the host itself is never touched."""
    uid, gid = user["uid"], user["gid"]
    inner = (f"{setup} && exec setpriv --reuid={uid} --regid={gid} --clear-groups "
             f"{bins / 'agentfense'} run {tree} -- {' '.join(command)}")
    from server_fixture import user_env
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", inner],
                          env=user_env(user["name"]), capture_output=True, text=True, timeout=120)


def test_missing_dev_fuse_names_the_fix(user, bins, tree):
    # A /dev with the usual nodes but no fuse.
    r = in_namespace(user, bins, tree,
                     "mount -t tmpfs -o mode=755 none /dev && mknod -m 666 /dev/null c 1 3 && "
                     "mknod -m 666 /dev/zero c 1 5 && mknod -m 666 /dev/urandom c 1 9 && "
                     "mknod -m 666 /dev/random c 1 8 && ln -s /proc/self/fd /dev/fd", "true")
    assert r.returncode == 122, r.stderr
    assert "/dev/fuse is missing" in r.stderr and "modprobe fuse" in r.stderr, r.stderr


def test_dev_fuse_closed_to_the_user_names_the_fix(user, bins, tree):
    r = in_namespace(user, bins, tree,
                     "cp -a /dev/fuse /tmp/fuse-closed-$$ && chmod 600 /tmp/fuse-closed-$$ && "
                     "mount --bind /tmp/fuse-closed-$$ /dev/fuse", "true")
    assert r.returncode == 122, r.stderr
    assert "/dev/fuse is not open to you" in r.stderr and "chmod 0666" in r.stderr, r.stderr


def test_missing_fusermount3_names_the_fix(user, bins, tree):
    r = in_namespace(user, bins, tree, "mount --bind /dev/null /usr/bin/fusermount3", "true")
    assert r.returncode == 122, r.stderr
    assert "fusermount3" in r.stderr and ("apt install fuse3" in r.stderr or "chmod 4755" in
                                          r.stderr), r.stderr


def test_fusermount3_without_setuid_names_the_fix(user, bins, tree):
    r = in_namespace(user, bins, tree,
                     "cp /usr/bin/fusermount3 /tmp/fm-$$ && chmod 755 /tmp/fm-$$ && "
                     "mount --bind /tmp/fm-$$ /usr/bin/fusermount3", "true")
    assert r.returncode == 122, r.stderr
    assert "setuid-root" in r.stderr and "chmod 4755" in r.stderr, r.stderr


def test_without_xdg_runtime_dir_state_goes_to_a_private_tmp_directory(user, bins, tree):
    from server_fixture import user_env
    env = user_env(user["name"])
    del env["XDG_RUNTIME_DIR"]
    r = subprocess.run([str(bins / "agentfense"), "run", "--preset", "development", str(tree),
                        "--", "sh", "-c", "echo ok > output/x.txt"], env=env, user=user["uid"],
                       group=user["gid"], extra_groups=[], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tree / "output" / "x.txt").stat().st_uid == user["uid"]


def test_evicted_objects_are_found_again_without_capabilities(user, bins, tree):
    # A 16-descriptor cache over 300 files: most reads reach objects whose descriptor was
    # evicted, which a rootless daemon (no open_by_handle_at) finds again by name and handle.
    many = tree / "many"
    many.mkdir()
    for i in range(300):
        (many / f"f{i}").write_text(f"f{i}\n")
    subprocess.run(["chown", "-R", f"{user['uid']}:{user['gid']}", str(many)], check=True)
    mnt = Path(tempfile.mkdtemp(prefix="af-rl-mnt-"))
    os.chown(mnt, user["uid"], user["gid"])
    try:
        # The background worker keeps its stdio: no pipes to wait on.
        r = as_user(user, [str(bins / "agentfense-mount"), "--fd-cache", "16", "--preset",
                           "read-only", "--background", str(many), str(mnt)],
                    capture_output=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert r.returncode == 0
        for _ in range(2):
            r = as_user(user, ["sh", "-c", f"cat {mnt}/f*"])
            assert r.returncode == 0, r.stderr
            assert sorted(r.stdout.split()) == sorted(f"f{i}" for i in range(300))
    finally:
        as_user(user, [str(bins / "agentfense"), "umount", str(mnt)])
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        mnt.rmdir()
