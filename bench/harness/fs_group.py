"""Filesystem group: the same workloads over native, bindfs, fuse-overlayfs and our mount (plain and
delta-backed), side by side in one run, reported as ratios to native.

The tree is generated here, deterministically (seeded): source-like text files of 0.3–64 KiB in
nested directories, some containing a needle for grep, plus one large random file.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

from .common import Context, drop_caches, have, percentile, timed

NEEDLE = "af7needle"


def make_tree(root: Path, files: int, big_mib: int, seed: int = 7, big_files: int = 1,
              size_mu: float = 8.0, size_cap: int = 65536) -> dict:
    """Creates the tree once (a stamp file records its shape) and returns its shape. Text file
    sizes are log-normal (median e^size_mu bytes, at most size_cap); big_files of big_mib each."""
    stamp = root / ".bench-tree"
    shape = f"{files} {big_mib} {seed} {big_files} {size_mu} {size_cap}"
    if stamp.exists() and stamp.read_text() == shape:
        return {"files": files, "big_mib": big_mib, "big_files": big_files}
    if root.exists():
        shutil.rmtree(root)
    rnd = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "return", "import", "class", "def", "value",
             "error", "result", "config", "server", "client", "path", "node", "tree", "cache"]
    dirs = [root]
    made = 0
    root.mkdir(parents=True)
    while made < files:
        parent = rnd.choice(dirs)
        if len(parent.relative_to(root).parts) < 6 and rnd.random() < 0.08:
            d = parent / f"d{len(dirs):04d}"
            d.mkdir()
            dirs.append(d)
            continue
        size = int(min(size_cap, max(300, rnd.lognormvariate(size_mu, 1.1))))
        line_words = [rnd.choice(words) for _ in range(12)]
        line = " ".join(line_words) + "\n"
        body = (line * (size // len(line) + 1))[:size]
        if rnd.random() < 0.01:
            body = body[: size // 2] + NEEDLE + body[size // 2:]
        ext = rnd.choice([".py", ".c", ".md", ".txt", ".json", ".go"])
        (parent / f"f{made:05d}{ext}").write_text(body)
        made += 1
    big = root / "assets" / "large"
    big.mkdir(parents=True)
    for i in range(big_files):
        with open(big / ("big.bin" if i == 0 else f"big{i}.bin"), "wb") as f:
            chunk = rnd.randbytes(1 << 20)
            for _ in range(big_mib):
                f.write(chunk)
    (root / "secrets").mkdir()
    (root / "secrets" / "token.txt").write_text("canary\n")
    stamp.write_text(shape)
    return {"files": files, "big_mib": big_mib, "big_files": big_files, "dirs": len(dirs)}


# Workloads also measured with every cache dropped first (the host's and the kernel's FUSE caches).
COLD = ("find", "stat", "grep -r")
SMALL_WRITE_FILES = 300  # created, then removed, by "small writes"

WORKLOADS = {
    # name: (shell command with {M} = the mount, needs write)
    "find": ("find {M} > /dev/null", False),
    "stat": ("find {M} -printf '%s %m %T@\\n' > /dev/null", False),
    "ls -lR": ("ls -lR {M} > /dev/null", False),
    "grep -r": (f"grep -r {NEEDLE} {{M}} > /dev/null || true", False),
    "big read": ("cat {M}/assets/large/big.bin > /dev/null", False),
    "small writes": ("d={M}/scratch/w$$ && mkdir -p $d && for i in $(seq %d); do "
                     "echo hello > $d/f$i; done && rm -rf $d" % SMALL_WRITE_FILES, True),
    "big write": ("dd if=/dev/zero of={M}/scratch/big.out bs=1M count=64 status=none && "
                  "rm -f {M}/scratch/big.out", True),
}


class Config:
    """One way of exposing the tree at a mount point."""

    def __init__(self, name: str, mount_cmd: str | None):
        self.name = name
        self.mount_cmd = mount_cmd  # None = native (the tree itself)

    def mount(self, src: Path, mnt: Path, scratch: Path) -> Path:
        if self.mount_cmd is None:
            return src
        mnt.mkdir(parents=True, exist_ok=True)
        cmd = self.mount_cmd.format(SRC=src, MNT=mnt, SCRATCH=scratch)
        subprocess.run(["/bin/sh", "-c", cmd], check=True)
        for _ in range(100):
            if os.path.ismount(mnt):
                return mnt
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: {mnt} not mounted")

    def unmount(self, mnt: Path) -> None:
        if self.mount_cmd is not None and os.path.ismount(mnt):
            subprocess.run(["umount", str(mnt)], check=False)  # root: FUSE and tmpfs alike
            for _ in range(100):
                if not os.path.ismount(mnt):
                    break
                time.sleep(0.05)


# libfuse's own low-level passthrough example, shipped by Debian's libfuse3-dev: the baseline the
# filesystem issue names (its C++ successor passthrough_hp is not packaged). Built at bench time
# from the installed package, never copied into the project.
PASSTHROUGH_LL = Path("/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c")


def build_passthrough_ll(ctx: Context) -> Path | None:
    out = ctx.work / "passthrough_ll"
    if out.exists():
        return out
    if not PASSTHROUGH_LL.exists() or not have("gcc") or not have("pkg-config"):
        return None
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True,
                           text=True)
    r = subprocess.run(["gcc", "-O2", "-o", str(out), str(PASSTHROUGH_LL), *flags.stdout.split()],
                       capture_output=True, text=True)
    if r.returncode != 0:
        ctx.note(f"fs: passthrough_ll did not build: {r.stderr.strip()[:200]}")
        return None
    return out


def build_folio_census(ctx: Context) -> Path | None:
    out = ctx.work / "folio_census"
    src = Path(__file__).resolve().parents[1] / "fs" / "folio_census.c"
    if not have("gcc"):
        return None
    r = subprocess.run(["gcc", "-O2", "-o", str(out), str(src)], capture_output=True, text=True)
    return out if r.returncode == 0 else None


def folio_census(tool: Path | None, path: Path) -> dict | None:
    """How the page cache holds `path` once read: share of its pages in large folios."""
    if tool is None:
        return None
    r = subprocess.run([str(tool), str(path)], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def configs(ctx: Context) -> list[Config]:
    mount_bin = ctx.bin("agentfense-mount")
    scratch_rule = "--rule '/scratch/**=write@1000' --rule '/scratch=write@1000'"
    out = [Config("native", None)]
    if have("bindfs"):
        out.append(Config("bindfs", "bindfs -o allow_other {SRC} {MNT}"))
    if have("fuse-overlayfs"):
        out.append(Config("fuse-overlayfs",
                          "mkdir -p {SCRATCH}/u {SCRATCH}/w && fuse-overlayfs -o "
                          "lowerdir={SRC},upperdir={SCRATCH}/u,workdir={SCRATCH}/w {MNT}"))
    # Not a FUSE filesystem: an in-memory copy whose page cache uses 4 KiB pages, as FUSE's does
    # on this kernel while ext4 uses large folios; the reference for the big-read row. Its "cold"
    # rows stay warm (drop_caches cannot evict tmpfs).
    out.append(Config("tmpfs copy", "mount -t tmpfs -o size=2g,mode=0755 af-bench {MNT} && "
                                    "cp -a {SRC}/. {MNT}/"))
    if (pll := build_passthrough_ll(ctx)) is not None:
        # cache=always: its fastest mode (long timeouts, keep_cache, cached readdir), as ours.
        out.append(Config("passthrough_ll", f"{pll} -o source={{SRC}},cache=always {{MNT}}"))
    out.append(Config("ours, agent-safe",
                      f"{mount_bin} --background --preset agent-safe {scratch_rule} {{SRC}} {{MNT}}"))
    help_text = subprocess.run([str(mount_bin), "--help"], capture_output=True, text=True)
    if "--delta" in help_text.stdout + help_text.stderr:
        out.append(Config("ours, agent-safe + delta",
                          f"mkdir -p {{SCRATCH}}/delta && {mount_bin} --background --preset "
                          f"agent-safe {scratch_rule} --delta {{SCRATCH}}/delta {{SRC}} {{MNT}}"))
    return out


def run(ctx: Context) -> dict:
    files = 3000 if ctx.quick else 16000
    big_mib = 64 if ctx.quick else 256
    rounds = 3 if ctx.quick else 5
    src = ctx.work / f"tree-{files}"
    ctx.note(f"fs: tree of {files} files + {big_mib} MiB file in {src}")
    shape = make_tree(src, files, big_mib)
    (src / "scratch").mkdir(exist_ok=True)
    cold_ok = drop_caches()
    census = build_folio_census(ctx)
    results: dict = {"tree": shape, "rounds": rounds, "configs": {}, "cold_supported": cold_ok,
                     "small_write_files": SMALL_WRITE_FILES}
    for cfg in configs(ctx):
        mnt = ctx.work / "mnt" / cfg.name.replace(" ", "_").replace(",", "")
        scratch = ctx.work / "scratch" / mnt.name
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        times: dict = {}
        try:
            root = cfg.mount(src, mnt, scratch)
            for wl, (cmd, _) in WORKLOADS.items():
                c = cmd.format(M=root)
                if cold_ok and wl in COLD:
                    cold = []
                    for _ in range(max(1, rounds // 2)):
                        drop_caches()
                        cold.append(timed(c))
                    times[f"{wl}, cold"] = percentile(cold, 50)
                timed(c)  # warm-up
                warm = [timed(c) for _ in range(rounds)]
                times[f"{wl}, warm"] = percentile(warm, 50)
                if wl == "big read":
                    results.setdefault("folios", {})[cfg.name] = folio_census(
                        census, root / "assets" / "large" / "big.bin")
        except (subprocess.CalledProcessError, RuntimeError) as e:
            ctx.note(f"fs: {cfg.name} failed: {e}")
            times["error"] = str(e)
        finally:
            cfg.unmount(mnt)
        results["configs"][cfg.name] = times
        ctx.note(f"fs: {cfg.name}: " + ", ".join(
            f"{k} {v:.3f}s" for k, v in times.items() if isinstance(v, float)))
    native = results["configs"]["native"]
    results["ratios"] = {
        name: {k: v / native[k] for k, v in t.items() if isinstance(v, float) and native.get(k)}
        for name, t in results["configs"].items()}
    return results
