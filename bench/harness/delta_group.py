"""Copy-on-write delta group: bench/delta_bench.sh (copy-up vs cp, commit vs rsync, walk on a
delta-backed mount vs the plain mount), parsed into ratios."""
from __future__ import annotations

import os
import re

from .common import ROOT, Context, run_capture

LINE = re.compile(r"^(?P<name>[^:]+):\s+delta (?P<ours>[0-9.]+)s\s+(?P<ref>\S+) (?P<base>[0-9.]+)s")
GOALS = {"copy-up 256 MiB": 1.2, "commit 1,000 files": 1.5, "walk 10,000 files": 1.1}


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
    return out
