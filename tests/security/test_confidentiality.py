"""I1: bytes of a `none` or `view` file never reach a sandboxed process — by any path, link,
handle, mapping, race, cache or later exec. Every exec output is scanned for the canaries (World.exec)."""
from __future__ import annotations

import os

from secutil import PRELUDE, agent_safe_rules, results, P, sandbox_pb2


def test_direct_reads_fail(world):
    r = world.exec("cat .env secrets/key.pem config/server.pem view/v.txt output/.env.local "
                   "output/keep/.env; head -c 100 view/v.txt; dd if=view/v.txt; tail view/v.txt")
    assert r.exit_code != 0


def test_view_file_is_listed_but_unreadable(world):
    r = world.py(PRELUDE + """
t("stat", lambda: os.stat("view/v.txt").st_size > 0)
t("open", lambda: os.open("view/v.txt", os.O_RDONLY))
t("openrw", lambda: os.open("view/v.txt", os.O_RDWR))
t("exec", lambda: os.execv("view/v.txt", ["x"]))
""")
    res = results(r.stdout)
    assert res["stat"] == "OK"
    assert res["open"] == "EACCES" and res["openrw"] == "EACCES" and res["exec"] == "EACCES"


def test_symlink_into_hidden_and_view(world):
    r = world.exec("mkdir -p output/l1 && cd output/l1 && ln -sf ../../.env a && "
                   "ln -sf ../../view/v.txt b && ln -sf /workspace/secrets/key.pem c && "
                   "ln -sf ../.env.local d; cat a b c d; cp a b c d /tmp/ ; cat /tmp/*")
    assert r.exit_code != 0


def test_hard_link_of_hidden_or_view_refused(world):
    r = world.py(PRELUDE + """
os.makedirs("output/hl", exist_ok=True)
t("view", lambda: os.link("view/v.txt", "output/hl/v"))
t("hidden", lambda: os.link(".env", "output/hl/e"))
t("hidden_sibling", lambda: os.link("output/.env.local", "output/hl/o"))
for n in ("v", "e", "o"):
    t("read_" + n, lambda: open("output/hl/" + n).read())
""")
    res = results(r.stdout)
    assert res["view"] != "OK" and res["hidden"] == "ENOENT" and res["hidden_sibling"] == "ENOENT"


def test_rename_hidden_sibling_into_visible_name(world):
    r = world.exec("mv output/.env.local output/stolen; cat output/stolen; "
                   "mv output/keep/.env output/keep/x; cat output/keep/x")
    assert "No such file" in r.stderr


def test_rename_ancestor_of_hidden_file(world):
    # The classic "mv ~/.aws ~/moved" escape: the directory holding a hidden file is renamed (or
    # copied by mv after EXDEV); the hidden file keeps its rule and its place, its bytes never show.
    r = world.exec("mv output/keep output/moved 2>&1; ls -a output/moved output/keep 2>&1; "
                   "cat output/moved/.env output/moved/* output/keep/.env 2>&1; true")
    assert r.exit_code == 0
    world.exec("mkdir -p output/keep; mv output/moved/visible.txt output/keep/ 2>/dev/null; "
               "rm -rf output/moved; true")
    assert "visible.txt" in world.exec("ls -a output/keep").stdout


def test_rename_ancestor_changes_rule_scope(world):
    # A read-only tree moved under the writable tree must not become writable or readable-hidden.
    r = world.exec("mv src output/src2; mv view output/view2; mv config output/cfg; "
                   "cat output/view2/v.txt output/cfg/server.pem; ls src view config")
    assert r.stderr.count("cannot move") == 3, r.stderr  # all three renames refused
    listing = world.exec("ls output; ls src view config").stdout.split()
    assert not {"src2", "view2", "cfg"} & set(listing)
    assert {"app.py", "ro.txt", "v.txt"} <= set(listing)


def test_proc_self_fd_reopen_with_new_flags(world):
    r = world.py(PRELUDE + """
fd = os.open("view/v.txt", os.O_PATH)
t("reopen_r", lambda: os.open(f"/proc/self/fd/{fd}", os.O_RDONLY))
t("reopen_w", lambda: os.open(f"/proc/self/fd/{fd}", os.O_WRONLY))
fd2 = os.open("src/ro.txt", os.O_RDONLY)
t("ro_reopen_w", lambda: os.open(f"/proc/self/fd/{fd2}", os.O_WRONLY))
t("ro_reopen_trunc", lambda: os.open(f"/proc/self/fd/{fd2}", os.O_RDONLY | os.O_TRUNC))
t("ro_reopen_append", lambda: os.open(f"/proc/self/fd/{fd2}", os.O_WRONLY | os.O_APPEND))
""")
    res = results(r.stdout)
    assert res["reopen_r"] == "EACCES" and res["reopen_w"] == "EACCES"
    assert res["ro_reopen_w"] == "EACCES" and res["ro_reopen_trunc"] == "EACCES"
    assert res["ro_reopen_append"] == "EACCES"


def test_o_path_on_hidden_and_read_through_it(world):
    r = world.py(PRELUDE + """
t("opath_hidden", lambda: os.open(".env", os.O_PATH))
t("opath_secretdir", lambda: os.open("secrets", os.O_PATH | os.O_DIRECTORY))
d = os.open("output", os.O_PATH | os.O_DIRECTORY)
t("openat_hidden", lambda: os.open(".env.local", os.O_RDONLY, dir_fd=d))
t("proc_root", lambda: open("/proc/self/root/workspace/.env").read())
t("proc_cwd", lambda: open("/proc/self/cwd/view/v.txt").read())
""")
    res = results(r.stdout)
    assert res["opath_hidden"] == "ENOENT" and res["opath_secretdir"] == "ENOENT"
    assert res["openat_hidden"] == "ENOENT" and res["proc_root"] == "ENOENT"
    assert res["proc_cwd"] == "EACCES"


def test_mmap_and_zero_copy_reads_of_view_file(world):
    r = world.py(PRELUDE + """
def mm():
    fd = os.open("view/v.txt", os.O_RDONLY)
    return bytes(mmap.mmap(fd, 0, prot=mmap.PROT_READ)[:64])
t("mmap", mm)
def cfr():
    src = os.open("view/v.txt", os.O_RDONLY)
    dst = os.open("output/cfr.out", os.O_WRONLY | os.O_CREAT, 0o644)
    return os.copy_file_range(src, dst, 4096)
t("copy_file_range", cfr)
def sf():
    src = os.open("view/v.txt", os.O_RDONLY)
    return os.sendfile(1, src, 0, 4096)
t("sendfile", sf)
""")
    res = results(r.stdout)
    assert res["mmap"] == "EACCES" and res["copy_file_range"] == "EACCES"
    assert res["sendfile"] == "EACCES"


def test_xattrs_of_hidden_and_view(world):
    r = world.py(PRELUDE + """
t("list_hidden", lambda: os.listxattr(".env"))
t("get_hidden", lambda: os.getxattr(".env", "user.x"))
t("list_view", lambda: os.listxattr("view/v.txt"))
t("get_selinux_hidden", lambda: os.getxattr("secrets/key.pem", "security.selinux"))
""")
    res = results(r.stdout)
    assert res["list_hidden"] == "ENOENT" and res["get_hidden"] == "ENOENT"
    assert res["get_selinux_hidden"] == "ENOENT"


def test_recursive_search_finds_no_secret(world):
    r = world.exec("grep -r AFSEC /workspace /tmp /run /dev/shm /etc /var /home /root -s -a -l; "
                   "true", timeout=120)
    assert r.stdout == "", r.stdout
    r = world.exec("find / \\( -path /proc -o -path /sys -o -path /usr \\) -prune -o "
                   "\\( -name '.env*' -o -name '*.pem' -o -name secrets \\) -print 2>/dev/null; "
                   "tar cf - /workspace 2>/dev/null | strings | grep -c AFSEC; true", timeout=120)
    found = [x for x in r.stdout.split() if x.startswith("/")]
    assert not [x for x in found if x.startswith("/workspace")], found
    assert r.stdout.split()[-1] == "0"


def test_symlink_swap_race_never_reads_hidden(world):
    # Two processes for ~8 s: one flips a link between a readable and a hidden target, the other
    # keeps reading through it. A daemon that checked the old target and opened the new one leaks.
    r = world.exec(r"""
mkdir -p output/race && cd output/race
end=$(( $(date +%s) + 8 ))
( while [ $(date +%s) -lt $end ]; do ln -sfn ../../src/app.py l; ln -sfn ../.env.local l;
  ln -sfn ../../view/v.txt l; done ) &
n=0; while [ $(date +%s) -lt $end ]; do cat l 2>/dev/null; n=$((n+1)); done
wait; echo reads=$n >&2
""", timeout=60)
    assert "reads=" in r.stderr


def test_rename_swap_race_on_directories(world):
    # Swap a directory holding a readable file with one whose name the rules hide, while reading.
    r = world.exec(r"""
mkdir -p output/rr/a && echo public > output/rr/a/f && cd output/rr
end=$(( $(date +%s) + 8 ))
( while [ $(date +%s) -lt $end ]; do mv a .env.d 2>/dev/null; mv .env.d a 2>/dev/null;
  mv a b; mv b a; done ) &
while [ $(date +%s) -lt $end ]; do cat a/f b/f .env.d/f ../keep/.env 2>/dev/null; done
wait; echo done >&2
""", timeout=60)
    assert "done" in r.stderr


def test_later_exec_sees_no_secret_written_by_earlier(world):
    # Nothing from an earlier command (files, caches) gives a later one the hidden bytes.
    world.exec("cat .env > output/later.txt 2>/dev/null; cp view/v.txt output/later2 2>/dev/null; "
               "true")
    r = world.exec("cat output/later.txt output/later2 2>&1; true")
    assert r.exit_code == 0


def test_cached_pages_after_policy_downgrade(world):
    """UpdatePermissions read → none: a file read (so its pages are cached) must vanish at once."""
    sid = world.new_sandbox()
    try:
        r = world.exec("cat src/app.py", sandbox_id=sid)
        assert r.stdout == "print('app')\n"
        rules = list(agent_safe_rules()) + [
            P.PermissionRule(pattern="/src/**", permission=P.PERMISSION_NONE, priority=200)]
        world.sb.UpdatePermissions(sandbox_pb2.UpdatePermissionsRequest(
            sandbox_id=sid, permissions=rules), timeout=60)
        r = world.exec("cat src/app.py; ls src; python3 -c \"import mmap,os; "
                       "print(bytes(mmap.mmap(os.open('src/app.py',0),0,prot=1)[:5]))\"",
                       sandbox_id=sid)
        assert "print('app')" not in r.stdout and "app.py" not in r.stdout
    finally:
        world.destroy(sid)


def test_hard_link_planted_in_the_source_is_as_hidden_as_the_secret(world):
    """A second name of secrets/key.pem in a readable directory of the source (made on the host:
    the agent cannot make one). Its level is the most restrictive of its names: `none`, both for
    a sandbox started after the link was made and for one already running when it appeared."""
    root = world.store_root()
    assert root is not None, "codebase store not found"
    link = root / "src" / "public_key.txt"
    os.link(root / "secrets" / "key.pem", link)
    try:
        sid = world.new_sandbox()
        try:
            for s in (sid, world.sandbox_id):
                r = world.exec("cat src/public_key.txt; cat /workspace/src/public_key.txt",
                               sandbox_id=s)
                assert r.exit_code != 0 and "No such file" in r.stderr, r
                r = world.exec("ls -la src; stat -c 'nlink=%h %n' src/*; grep -r . src | wc -l",
                               sandbox_id=s)
                assert "public_key" not in r.stdout, r.stdout
                counts = [ln for ln in r.stdout.splitlines() if ln.startswith("nlink=")]
                assert counts and all(ln.startswith("nlink=1 ") for ln in counts), r.stdout
        finally:
            world.destroy(sid)
    finally:
        link.unlink()


def test_descriptor_held_by_a_session_is_revoked_by_a_downgrade(world):
    """A session holds `exec 3< src/ro.txt` and has read part of it (the rest is in the page
    cache). After UpdatePermissions makes src/ none, reading fd 3 fails: READ re-checks the policy."""
    sid = world.new_sandbox()
    try:
        sess = world.sb.CreateSession(sandbox_pb2.CreateSessionRequest(sandbox_id=sid), timeout=60)
        run = lambda cmd: world.sb.SessionExec(sandbox_pb2.SessionExecRequest(  # noqa: E731
            session_id=sess.id, command=cmd), timeout=60)
        r = run("exec 3< src/ro.txt; dd bs=1 count=8 <&3 2>/dev/null; echo")
        assert r.stdout == "READONLY\n", r
        rules = list(agent_safe_rules()) + [
            P.PermissionRule(pattern="/src/**", permission=P.PERMISSION_NONE, priority=200)]
        world.sb.UpdatePermissions(sandbox_pb2.UpdatePermissionsRequest(
            sandbox_id=sid, permissions=rules), timeout=60)
        # cat first fstat()s the descriptor (a `none` file has no attributes either); a bare
        # read() at an offset whose page was cached is refused by READ itself.
        r = run("cat <&3; echo rc=$?; python3 -c 'import os; os.pread(3, 64, 8)' 2>&1 | tail -1")
        assert "READONLY" not in r.stdout and "ORIGINAL" not in r.stdout, r
        assert "rc=1" in r.stdout and "PermissionError" in r.stdout, r
        r = run("cat src/ro.txt; echo rc=$?")
        assert "rc=1" in r.stdout, r
    finally:
        world.destroy(sid)


def test_oracle_detects_a_leak(world):
    # The harness itself: a sandbox whose policy *does* grant the secret must trip the canary
    # check, otherwise every case above would pass vacuously.
    sid = world.new_sandbox(rules=[P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ,
                                                    priority=0)])
    try:
        try:
            world.exec("cat .env", sandbox_id=sid)
        except AssertionError as e:
            assert "canary leaked" in str(e)
        else:
            raise AssertionError("a readable canary went unnoticed")
    finally:
        world.destroy(sid)


def test_names_cached_as_absent_follow_the_policy(world):
    """Negative dentries (docs/FILESYSTEM.md "Negative entries"): the kernel caches a probed hidden
    name as absent, exactly like an absent one. Probing it first must neither keep it absent after
    an upgrade nor make it appear before, nor let a create slip past the rule."""
    sid = world.new_sandbox()
    try:
        probe = ("for i in 1 2 3; do stat -c %s .env .env.nothere secrets/key.pem 2>&1; done; "
                 "touch output/.env.local 2>&1; ls -a output; ls -a | grep -c '^.env$'")
        r = world.exec(probe, sandbox_id=sid)
        assert r.stdout.count("No such file or directory") == 9, r
        assert "Permission denied" in r.stdout and ".env.local" not in r.stdout.split("denied")[1]
        rules = list(agent_safe_rules()) + [
            P.PermissionRule(pattern="/.env", permission=P.PERMISSION_VIEW, priority=200)]
        world.sb.UpdatePermissions(sandbox_pb2.UpdatePermissionsRequest(
            sandbox_id=sid, permissions=rules), timeout=60)
        # Visible at once, though the kernel held it as absent (its size only: `view`).
        r = world.exec("stat -c %s .env; ls -a | grep -c '^.env$'; cat .env; echo rc=$?",
                       sandbox_id=sid)
        lines = r.stdout.split("\n")
        assert lines[0].isdigit() and lines[1] == "1" and "rc=1" in r.stdout, r
        world.sb.UpdatePermissions(sandbox_pb2.UpdatePermissionsRequest(
            sandbox_id=sid, permissions=agent_safe_rules()), timeout=60)
        r = world.exec(probe, sandbox_id=sid)
        assert r.stdout.count("No such file or directory") == 9, r
        assert r.stdout.rstrip().endswith("0"), r
    finally:
        world.destroy(sid)
