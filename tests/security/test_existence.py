"""I2: a `none` path is indistinguishable from one that does not exist — in listings, stat, error
codes, access(2), link counts and every other oracle we know of. Each case compares the answer for
a hidden name with the answer for an absent name of the same rule class."""
from __future__ import annotations

from secutil import PRELUDE, results


def pairs(world, expr: str) -> dict[str, str]:
    """Evaluates `expr` (a lambda body using P) for a hidden and an absent path, in pairs."""
    code = PRELUDE + f"""
for tag, P in [("h1", ".env"), ("a1", ".env.nothere"), ("h2", "secrets/key.pem"),
               ("a2", "nosuchdir/key.pem"), ("h3", "output/.env.local"), ("a3", "output/.env.absent"),
               ("h4", "secrets"), ("a4", "nosuchdir"), ("h5", "config/server.pem"),
               ("a5", "config/absent.pem")]:
    t(tag, lambda: {expr})
"""
    return results(world.py(code).stdout)


def assert_same(res):
    for i in range(1, 6):
        assert res[f"h{i}"] == res[f"a{i}"], res


def test_stat_and_lstat(world):
    assert_same(pairs(world, "os.stat(P)"))
    assert_same(pairs(world, "os.lstat(P)"))


def test_access_oracle(world):
    res = pairs(world, "os.access(P, os.F_OK) or (_ for _ in ()).throw(OSError(errno.ENOENT, ''))")
    assert_same(res)
    # access(2) itself through libc (R_OK): answered from levels, never from the backing mode bits
    res = pairs(world, "(libc.access(P.encode(), 4) == 0) or "
                       "(_ for _ in ()).throw(OSError(ctypes.get_errno(), ''))")
    assert_same(res)


def test_open_error_codes(world):
    assert_same(pairs(world, "os.open(P, os.O_RDONLY)"))
    assert_same(pairs(world, "os.open(P, os.O_PATH)"))
    assert_same(pairs(world, "os.open(P, os.O_RDONLY | os.O_DIRECTORY)"))


def test_create_at_hidden_name_is_uniform(world):
    # Creating at a hidden-pattern name answers the same whether a hidden file is there or not.
    res = pairs(world, "os.open(P, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)")
    assert res["h3"] == res["a3"] and res["h3"] != "EEXIST"
    res = pairs(world, "os.mkdir(P)")
    assert res["h3"] == res["a3"] and res["h3"] != "EEXIST"


def test_unlink_rename_readlink_xattr_oracles(world):
    assert_same(pairs(world, "os.unlink(P)"))
    assert_same(pairs(world, "os.readlink(P)"))
    assert_same(pairs(world, "os.getxattr(P, 'user.a')"))
    assert_same(pairs(world, "os.chmod(P, 0o777)"))
    assert_same(pairs(world, "os.utime(P)"))
    assert_same(pairs(world, "os.truncate(P, 0)"))
    assert_same(pairs(world, "os.rename(P, 'output/ren.tmp')"))
    assert_same(pairs(world, "os.chdir(P)"))
    assert_same(pairs(world, "os.listdir(P)"))


def test_rename_onto_hidden_name_is_uniform(world):
    r = world.py(PRELUDE + """
open("output/src1", "w").write("x"); open("output/src2", "w").write("x")
t("onto_hidden", lambda: os.rename("output/src1", "output/.env.local"))
t("onto_absent", lambda: os.rename("output/src2", "output/.env.absent"))
t("link_hidden", lambda: os.link("output/src1", "output/.env.local"))
t("link_absent", lambda: os.link("output/src1", "output/.env.absent"))
t("sym_hidden", lambda: os.symlink("x", "output/.env.local"))
t("sym_absent", lambda: os.symlink("x", "output/.env.absent"))
""")
    res = results(r.stdout)
    for op in ("onto", "link", "sym"):
        assert res[f"{op}_hidden"] == res[f"{op}_absent"], res
        assert res[f"{op}_hidden"] != "OK"


def test_listings_omit_hidden_names(world):
    r = world.exec("ls -a / /workspace /workspace/output /workspace/output/keep /workspace/config; "
                   "echo /workspace/.e* /workspace/output/.e* /workspace/*/*.pem; "
                   "find /workspace -name '*env*' -o -name '*.pem' -o -name secrets")
    names = r.stdout.split()
    assert not [n for n in names if n.endswith((".env", ".env.local", ".pem", "secrets"))
                and "*" not in n]


def test_link_count_and_size_traces(world):
    # Directory st_nlink counts subdirectories; a hidden subdirectory must not be counted, and a
    # directory holding only hidden entries must look like an empty one.
    r = world.py(PRELUDE + """
root = os.stat(".")
subdirs = [n for n in os.listdir(".") if os.path.isdir(n)]
print("root_nlink_ok=" + str(root.st_nlink in (1, 2 + len(subdirs))))
os.makedirs("output/emptyd", exist_ok=True)
print("cfg_nlink_like_empty=" + str(os.stat("config").st_nlink == os.stat("output/emptyd").st_nlink))
print("cfg_list=" + repr(os.listdir("config")))
print("file_nlink=" + str(os.stat("src/app.py").st_nlink))
""")
    res = results(r.stdout)
    assert res["root_nlink_ok"] == "True" and res["cfg_nlink_like_empty"] == "True"
    assert res["cfg_list"] == "[]" and res["file_nlink"] == "1"


def test_getdents_on_opened_dir_after_rewind(world):
    # Re-reading an open directory (rewinddir, seek) must not surface hidden entries either.
    r = world.py(PRELUDE + """
d = os.open("output", os.O_RDONLY | os.O_DIRECTORY)
for i in range(3):
    os.lseek(d, 0, os.SEEK_SET)
    print("pass=" + repr(sorted(os.listdir(d))))
""")
    assert ".env.local" not in r.stdout


def test_shell_error_messages_identical(world):
    r = world.exec("cat .env 2>&1; cat .env.nope 2>&1; ls secrets 2>&1; ls nodir 2>&1")
    lines = r.stdout.replace(".env.nope", ".env").replace("nodir", "secrets").splitlines()
    assert lines[0] == lines[1] and lines[2] == lines[3], lines
