"""The client side: `agentfense run` end to end (mount, sandbox, command, change summary, teardown)
for a trivial command, and both SDKs' from_local of a 1 GiB tree against `tar` of the same tree plus
one upload (sdk/python/bench/from_local_vs_tar.py, sdk/typescript/bench/from-local-vs-tar.mjs;
goal ≤ 1.2×, issue 22: one UploadArchive stream per tree)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from .common import ROOT, Context, percentile, run_capture
from .fs_group import make_tree


def _cli_run(ctx: Context, tree, runs: int) -> dict:
    argv = [str(ctx.bin("agentfense")), "run", "-q", "--discard", str(tree), "--", "true"]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append((time.monotonic() - t0) * 1000)
    return {"runs": runs, "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}


def run(ctx: Context) -> dict:
    # The SDK goal's tree: shaped like ../shared/bench/make_tree.sh's defaults (16,000 text files
    # of ~20 KiB on average, up to 1 MiB, plus 3 × 256 MiB binaries: ~1.1 GiB). The per-file cost
    # of one upload stream per file (the wire contract) dominates on small files, so the ratio
    # depends on the tree's bytes per file; the fs group's tree (5 KiB files) would say little.
    files, big_mib, big_files = (3000, 64, 1) if ctx.quick else (16000, 256, 3)
    tree = ctx.work / f"tree-sdk-{files}"
    make_tree(tree, files, big_mib, big_files=big_files, size_mu=9.2, size_cap=1 << 20)
    small = ctx.work / "cli-run-dir"
    small.mkdir(exist_ok=True)
    (small / "main.py").write_text("print('hi')\n")
    out: dict = {"cli_run_bwrap": _cli_run(ctx, small, 10 if ctx.quick else 30)}
    ctx.note(f"sdk: agentfense run p50 {out['cli_run_bwrap']['p50_ms']:.0f} ms")
    env = dict(os.environ, AGENTFENSE_BUILD_DIR=str(ctx.build),
               PYTHONPATH=os.pathsep.join([str(ctx.build / "python"), str(ROOT / "sdk" / "python"),
                                           str(ROOT / "tests" / "py")]))
    rounds = "1" if ctx.quick else "3"
    _settle(ctx)
    text = run_capture(["/usr/bin/python3", str(ROOT / "sdk" / "python" / "bench" / "from_local_vs_tar.py"),
                        str(tree), "--rounds", rounds], timeout=1800, env=env)
    out["from_local"] = _parse(text, files, "from_local_vs_tar.py")
    ctx.note(f"sdk: Python from_local ÷ tar+upload {out['from_local']['ratio']:.2f}×")
    if shutil.which("npm"):
        ts = ROOT / "sdk" / "typescript"
        subprocess.run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=ts, check=True)
        subprocess.run(["npm", "run", "build"], cwd=ts, check=True, stdout=subprocess.DEVNULL)
        _settle(ctx)
        text = run_capture(["node", str(ts / "bench" / "from-local-vs-tar.mjs"), str(tree), "--rounds", rounds],
                           timeout=1800, env=env)
        out["from_local_ts"] = _parse(text, files, "from-local-vs-tar.mjs")
        ctx.note(f"sdk: TypeScript fromLocal ÷ tar+upload {out['from_local_ts']['ratio']:.2f}×")
    else:
        ctx.note("sdk: npm not found; the TypeScript SDK row was not measured")
    return out


def _settle(ctx: Context) -> None:
    """Waits until inodes freed by earlier work no longer slow down file creation. On ext4 without
    a journal (this VM's disk), the inode allocator skips every inode freed in the last 60 s (300 s
    more while its inode table block is dirty) one by one (ext4 `recently_deleted()`); right after
    a previous step deleted a 16k-file tree, extracting one measured 2-4x slower. Not what the
    upload costs, so the measurement starts after a sync and that window."""
    os.sync()
    time.sleep(5 if ctx.quick else 65)


def _parse(text: str, files: int, script: str) -> dict:
    m = re.search(r"median: from_local ([\d.]+)s\s+tar\+upload ([\d.]+)s", text)
    if m is None:
        raise RuntimeError(f"{script} printed no median:\n{text[-2000:]}")
    head = re.search(r"tree \S+: (\d+) files to upload, (\d+) MiB", text)
    return {"files": int(head.group(1)) if head else files,
            "mib": int(head.group(2)) if head else None,
            "from_local_s": float(m.group(1)), "tar_upload_s": float(m.group(2)),
            "ratio": float(m.group(1)) / float(m.group(2))}
