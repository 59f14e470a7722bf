"""Copy-on-write delta group: bench/delta_bench.sh (copy-up vs cp, commit vs rsync, walk on a
delta-backed mount vs the plain mount), parsed into ratios; and checkpoint_bench (checkpoints of a
delta of 10,000 files and 1 GiB against their goals: docs/CHECKPOINTS.md)."""
from __future__ import annotations

import json
import os
import re

from .common import ROOT, Context, run_capture

LINE = re.compile(r"^(?P<name>[^:]+):\s+delta (?P<ours>[0-9.]+)s\s+(?P<ref>\S+) (?P<base>[0-9.]+)s")
GOALS = {"copy-up 256 MiB": 1.2, "commit 1,000 files": 1.5, "walk 10,000 files": 1.1}
# Checkpoints (issue 23): a checkpoint of 10,000 files / 1 GiB in <= 200 ms and <= 1 MiB of disk,
# a restore in <= 500 ms.
CHECKPOINT_GOALS = {"checkpoint_s": 0.2, "checkpoint_extra_bytes": 1 << 20,
                    "restore_after_100_changes_s": 0.5, "restore_after_discard_s": 0.5}


def run(ctx: Context) -> dict:
    env = dict(os.environ, RUNS="2" if ctx.quick else "3")
    text = run_capture(["bash", str(ROOT / "bench" / "delta_bench.sh"), str(ctx.build)],
                       timeout=1800, env=env)
    out = {}
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if m:
            ours, base = float(m["ours"]), float(m["base"])
            out[m["name"].strip()] = {"ours_s": ours, "baseline": m["ref"], "baseline_s": base,
                                      "ratio": ours / base if base else float("nan"),
                                      "goal": GOALS.get(m["name"].strip())}
    ctx.note("delta: " + ", ".join(f"{k} {v['ratio']:.2f}x" for k, v in out.items()))
    if len(out) != 3:
        raise RuntimeError(f"delta_bench.sh output not understood:\n{text}")
    files, size = (2000, 200 << 20) if ctx.quick else (10000, 1 << 30)
    ck = json.loads(run_capture([str(ctx.bin("checkpoint_bench")), "--files", str(files), "--bytes",
                                 str(size), "--runs", "3", "--dir", str(ctx.work)], timeout=1800))
    ck["goals"] = CHECKPOINT_GOALS
    out["checkpoints"] = ck
    ctx.note(f"checkpoints: {ck['checkpoint_s'] * 1000:.0f} ms, {ck['checkpoint_extra_bytes'] >> 10} KiB; "
             f"restore {ck['restore_after_100_changes_s'] * 1000:.0f} / "
             f"{ck['restore_after_discard_s'] * 1000:.0f} ms")
    return out
