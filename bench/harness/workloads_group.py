"""Agent workloads group (issue 20): what agents really run, on real repositories, paired native vs
ours, side by side in one run.

Repositories: the git bundles in shared/repos (a C project and a Python project), cloned once into
a cache under the scratch directory, and, when Debian's linux-source-6.1 is installed (not in
--quick), its tree committed once into a git repository (cached too).

Everything runs as an unprivileged user (AF_BENCH_USER, default `afbench`, created if missing), as
an agent in a sandbox does: that user owns the cached trees, runs the native commands, and makes
our mounts with `agentfense mount` itself, so the mount serves one unprivileged identity and its
opens are decided by the kernel (docs/FILESYSTEM.md, "Opens without a round trip"). All mounts
stay up together and every round runs each configuration back to back, so load swings hit all of
them alike; a cell is the median of the rounds, a ratio the median of the per-round ratios.
"""
from __future__ import annotations

import math
import os
import pwd
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from .common import ROOT, Context, have, save

USER = os.environ.get("AF_BENCH_USER", "afbench")
LINUX_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
GOAL_CONFIG = "ours, delta, development"
# A timed sample lasts at least this long: a shorter command is repeated within it (the spawn of
# a command and the machine's noise would otherwise be most of what is measured).
MIN_SAMPLE_S = 0.3
# Goals of issue 20, ours ÷ native on GOAL_CONFIG (warm). Rows without a goal have None.
GOALS = {"rg": 1.3, "grep -rn": 1.3, "git status": 1.05, "git log --stat -n 300": None,
         "find -name": 1.05, "make -j2": 1.05, "python tests": 1.05, "cp -r + rm -rf": 1.5,
         "unpack": 1.5}


def repo_dirs() -> list[Path]:
    """Where the bundles are: shared/ beside the checkout (CI) or beside its parent (worktrees)."""
    return [p for p in (ROOT.parent / "shared" / "repos", ROOT.parent.parent / "shared" / "repos")
            if p.is_dir()]


class Runner:
    """Runs shell commands as the benchmark user."""

    def __init__(self, ctx: Context):
        try:
            pw = pwd.getpwnam(USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", USER],
                           check=True)
            pw = pwd.getpwnam(USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.home = ctx.work / f"home-{USER}"
        self.home.mkdir(parents=True, exist_ok=True)
        os.chown(self.home, self.uid, self.gid)
        # The system's tools only: the user cannot read root's pyenv or ~/.local.
        self.env = {"HOME": str(self.home), "PATH": "/usr/local/bin:/usr/bin:/bin",
                    "LANG": "C.UTF-8", "GIT_CONFIG_NOSYSTEM": "1"}

    def argv(self, cmd: str) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--",
                "/bin/sh", "-c", cmd]

    def run(self, cmd: str, timeout: float = 1800) -> str:
        p = subprocess.run(self.argv(cmd), env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"`{cmd}` exited {p.returncode}: {p.stderr.strip()[-600:]}")
        return p.stdout

    def timed(self, cmd: str) -> float:
        """Wall time of `cmd`; a failure raises (an error is never a fast run)."""
        t0 = time.perf_counter()
        p = subprocess.run(self.argv(cmd), env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=1800)
        t = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"`{cmd}` exited {p.returncode}: {p.stderr.strip()[-600:]}")
        return t


def prepare_repos(ctx: Context, user: Runner) -> dict[str, Path]:
    """The cached trees, owned by the benchmark user: {"c": ..., "python": ..., "linux": ...}."""
    cache = ctx.work / "repos"
    cache.mkdir(parents=True, exist_ok=True)
    os.chown(cache, user.uid, user.gid)
    bundles = {b.stem: b for d in repo_dirs() for b in sorted(d.glob("*.bundle"))}
    if not bundles:
        raise RuntimeError("no shared/repos/*.bundle beside the checkout")
    trees: dict[str, Path] = {}
    for name, bundle in bundles.items():
        dst = cache / name
        if not (dst / ".git").is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copy(bundle, cache / f"{name}.bundle")
            os.chown(cache / f"{name}.bundle", user.uid, user.gid)
            user.run(f"git clone -q {cache / name}.bundle {dst}")
        kind = "c" if any(dst.glob("*.c")) else "python" if any(dst.glob("**/*.py")) else name
        trees[kind] = dst
    if not ctx.quick and LINUX_TARBALL.exists():
        dst = cache / "linux"
        if not (dst / ".git").is_dir():
            ctx.note("workloads: unpacking and committing linux-source-6.1 once (minutes)")
            tmp = cache / "linux.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            os.chown(tmp, user.uid, user.gid)
            # Debian's tree ignores every top-level name in .gitignore: add with -f.
            user.run(f"tar -xJf {LINUX_TARBALL} -C {tmp} && cd {tmp}/linux-source-6.1 && "
                     "git init -q && git add -f -A . && git -c user.name=bench "
                     "-c user.email=bench@localhost commit -q -m linux-source-6.1", timeout=3600)
            (tmp / "linux-source-6.1").rename(dst)
            tmp.rmdir()
        trees["linux"] = dst
    for tree in trees.values():
        if tree.stat().st_uid != user.uid:  # cloned by another user: the benchmark user owns it
            subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(tree)], check=True)
        # Left over by an interrupted run.
        user.run(f"cd {tree} && git clean -fdxq -e __pycache__ && rm -rf .af-copy .af-unpack")
    return trees


def make_archive(ctx: Context, user: Runner, trees: dict[str, Path]) -> tuple[Path, int]:
    """A tar of many small files: the kernel's fs/ when that tree is there, else the checked-out
    files of every cached repository."""
    if "linux" in trees:
        src, parts = trees["linux"], ["fs"]
    else:
        src, parts = trees["c"].parent, [t.name for k, t in trees.items()]
    out = ctx.work / "repos" / f"small-files-{'-'.join(parts)}.tar"
    if not out.exists():
        user.run(f"cd {src} && tar --exclude=.git -cf {out}.tmp {' '.join(parts)}")
        os.rename(f"{out}.tmp", out)
    files = int(user.run(f"tar -tf {out} | grep -vc '/$'").strip())
    return out, files


def workloads(trees: dict[str, Path], archive: Path) -> list[dict]:
    """Each workload: shell snippets with {R} = the tree's root in the configuration measured.
    `setup`/`after` run untimed before/after each timed run; `writes`: it needs write access
    (the agent-safe preset refuses it); `git`: it reads .git (agent-safe hides it)."""
    c = "c"
    wl = [
        {"name": "rg", "tree": c, "cmd": "rg -n lua_State {R} > /dev/null"},
        {"name": "grep -rn", "tree": c, "cmd": "grep -rn lua_State {R} > /dev/null"},
        {"name": "git status", "tree": c, "cmd": "git -C {R} status --porcelain > /dev/null",
         "git": True},
        {"name": "git log --stat -n 300", "tree": c,
         "cmd": "git -C {R} log --stat -n 300 > /dev/null", "git": True},
        {"name": "find -name", "tree": c, "cmd": "find {R} -name '*.c' > /dev/null"},
        # Lua's makefile needs nothing but gcc and libc: it builds offline.
        {"name": "make -j2", "tree": c, "cmd": "make -C {R} -j2 -s > /dev/null",
         "after": "cd {R} && git clean -fdxq", "writes": True, "git": True},
        {"name": "python tests", "tree": "python",
         "cmd": "cd {R} && python3 -m unittest discover -s tests -q 2> /dev/null", "writes": True},
        {"name": "cp -r + rm -rf", "tree": c,
         "cmd": "mkdir {R}/.af-copy && cp -r {R}/*.c {R}/*.h {R}/testes {R}/manual {R}/.af-copy/ "
                "&& rm -rf {R}/.af-copy", "writes": True},
        {"name": "unpack", "tree": c,
         "cmd": f"mkdir {{R}}/.af-unpack && tar -xf {archive} -C {{R}}/.af-unpack",
         "after": "rm -rf {R}/.af-unpack", "writes": True},
    ]
    if "linux" in trees:
        k = "linux"
        wl += [
            # --no-ignore: Debian's tree ignores every top-level name in its .gitignore.
            {"name": "rg (linux)", "tree": k,
             "cmd": "rg -n --no-ignore EXPORT_SYMBOL_GPL {R} > /dev/null"},
            {"name": "grep -rn (linux)", "tree": k,
             "cmd": "grep -rn --exclude-dir=.git EXPORT_SYMBOL_GPL {R} > /dev/null"},
            {"name": "git status (linux)", "tree": k,
             "cmd": "git -C {R} status --porcelain > /dev/null", "git": True},
            {"name": "find -name (linux)", "tree": k, "cmd": "find {R} -name '*.c' > /dev/null"},
            {"name": "cp -r + rm -rf (linux)", "tree": k,
             "cmd": "cp -r {R}/fs {R}/.af-copy && rm -rf {R}/.af-copy", "writes": True},
        ]
    return [w for w in wl if w["tree"] in trees]


def mounted(path: Path) -> bool:
    """From the mount table: root cannot stat a mount that serves another user alone."""
    return any(line.split()[4] == str(path)
               for line in Path("/proc/self/mountinfo").read_text().splitlines())


class Config:
    """One way of exposing every cached tree: native, or a mount of each tree."""

    def __init__(self, name: str, mount: str | None, writes: bool = True, git: bool = True):
        self.name, self.mount_cmd, self.writes, self.git = name, mount, writes, git
        self.roots: dict[str, Path] = {}

    def up(self, ctx: Context, user: Runner, trees: dict[str, Path]) -> None:
        for kind, src in trees.items():
            if self.mount_cmd is None:
                self.roots[kind] = src
                continue
            base = ctx.work / "workloads" / self.name.replace(" ", "_").replace(",", "") / kind
            if base.exists():
                subprocess.run(["umount", "-l", str(base / "mnt")], capture_output=True)
                shutil.rmtree(base)
            base.mkdir(parents=True)
            os.chown(base, user.uid, user.gid)
            # The mount's own directory reachable only by the user (docs/FILESYSTEM.md).
            base.chmod(0o700)
            # Its stderr goes to a file: a daemon left holding our pipe would block the run.
            try:
                user.run(f"mkdir {base}/mnt && " + self.mount_cmd.format(SRC=src, MNT=base / "mnt",
                                                                          D=base))
            except RuntimeError as e:
                log = base / "mount.log"
                raise RuntimeError(f"{e} {log.read_text() if log.exists() else ''}") from e
            for _ in range(200):
                if mounted(base / "mnt"):
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"{self.name}: {base}/mnt not mounted")
            self.roots[kind] = base / "mnt"

    def down(self) -> None:
        if self.mount_cmd is None:
            return
        for mnt in self.roots.values():
            subprocess.run(["umount", str(mnt)], capture_output=True)
            if mounted(mnt):
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True)

    def applies(self, w: dict) -> bool:
        return (self.writes or not w.get("writes")) and (self.git or not w.get("git"))


def configs(ctx: Context) -> list[Config]:
    af, mount = ctx.bin("agentfense"), ctx.bin("agentfense-mount")
    out = [Config("native", None),
           Config(GOAL_CONFIG, f"{af} mount -d --preset development --delta {{D}}/delta "
                               "{SRC} {MNT} > /dev/null 2> {D}/mount.log")]
    if not ctx.quick:
        # The same mount with every open a request: what deciding opens in the kernel saves.
        out.append(Config("ours, delta, development, every open a request",
                          f"{mount} --background --daemon-open --preset development --delta "
                          "{D}/delta {SRC} {MNT} > /dev/null 2> {D}/mount.log"))
        # The same mount with opt-in busy polling: what it saves (FsOptions::busy_poll_us).
        out.append(Config("ours, delta, development, busy polling",
                          f"{af} mount -d --busy-poll 25 --preset development --delta {{D}}/delta "
                          "{SRC} {MNT} > /dev/null 2> {D}/mount.log"))
        out.append(Config("ours, delta, agent-safe",
                          f"{af} mount -d --preset agent-safe --delta {{D}}/delta {{SRC}} {{MNT}} "
                          "> /dev/null 2> {D}/mount.log", writes=False, git=False))
    if have("fuse-overlayfs"):
        out.append(Config("fuse-overlayfs", "mkdir {D}/u {D}/w && fuse-overlayfs -o "
                                            "lowerdir={SRC},upperdir={D}/u,workdir={D}/w {MNT} "
                                            "2> {D}/mount.log"))
    return out


def run(ctx: Context) -> dict:
    user = Runner(ctx)
    trees = prepare_repos(ctx, user)
    archive, archive_files = make_archive(ctx, user, trees)
    rounds = 3
    wls = workloads(trees, archive)
    cfgs = configs(ctx)
    count = lambda cmd: int(user.run(cmd).strip())  # noqa: E731
    res: dict = {"user": USER, "rounds": rounds, "archive_files": archive_files,
                 "trees": {k: {"path": str(p), "files": count(f"git -C {p} ls-files | wc -l"),
                               "commits": count(f"git -C {p} rev-list --count HEAD")}
                           for k, p in trees.items()},
                 "configs": [c.name for c in cfgs], "goal_config": GOAL_CONFIG, "rows": {},
                 "errors": []}
    ctx.note("workloads: trees " + ", ".join(f"{k} ({v['files']} files)"
                                             for k, v in res["trees"].items()))
    try:
        for cfg in cfgs:
            cfg.up(ctx, user, trees)
        for w in wls:
            row: dict = {"load_average": os.getloadavg()[0], "times": {}, "ratios": {}}
            cells = [c for c in cfgs if c.applies(w)]
            runs: dict[str, list[float]] = {c.name: [] for c in cells}
            reps = 1  # a sample of a command of a few milliseconds repeats it (set after round 0)
            try:
                for r in range(rounds + 1):  # round 0 warms every cache up, untimed
                    # Rotate the order so no configuration always runs first after a pause.
                    for cfg in cells[r % len(cells):] + cells[:r % len(cells)]:
                        root = cfg.roots[w["tree"]]
                        cmd = w["cmd"].format(R=root)
                        if reps > 1:
                            cmd = f"for i in $(seq {reps}); do {cmd}; done"
                        if w.get("setup"):
                            user.run(w["setup"].format(R=root))
                        t = user.timed(cmd) / reps
                        if w.get("after"):
                            user.run(w["after"].format(R=root))
                        if r > 0:
                            runs[cfg.name].append(t)
                        elif cfg.name == "native" and not w.get("after"):
                            reps = max(1, math.ceil(MIN_SAMPLE_S / t))
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                res["errors"].append(f"{w['name']}: {e}")
                ctx.note(f"workloads: {w['name']} FAILED: {e}")
                res["rows"][w["name"]] = dict(row, error=str(e))
                continue
            native = runs["native"]
            for name, ts in runs.items():
                row["times"][name] = statistics.median(ts)
                row["repeats"] = reps
                if name != "native":
                    row["ratios"][name] = statistics.median(t / n for t, n in zip(ts, native))
            res["rows"][w["name"]] = row
            ctx.note(f"workloads: {w['name']}: native {row['times']['native']:.3f}s; " + ", ".join(
                f"{n} {x:.2f}x" for n, x in row["ratios"].items()) +
                f" (load {row['load_average']:.1f})")
    finally:
        for cfg in cfgs:
            cfg.down()
        for tree in trees.values():
            subprocess.run(["rm", "-rf", str(tree / ".af-copy"), str(tree / ".af-unpack")])
    if res["errors"]:
        # Saved first so the report shows what ran; the group still fails (bench/run exits 1).
        save(ctx, "workloads", dict(res, when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
        raise RuntimeError("workloads: " + "; ".join(res["errors"]))
    return res
