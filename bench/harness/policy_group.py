"""Policy engine microbenchmarks (Google Benchmark, bench/policy_bench.cc)."""
from __future__ import annotations

import json

from .common import Context, run_capture


def run(ctx: Context) -> dict:
    min_time = "0.2" if ctx.quick else "1"
    text = run_capture([str(ctx.bin("policy_bench")), "--benchmark_format=json",
                        f"--benchmark_min_time={min_time}"], timeout=900)
    data = json.loads(text)
    out = {}
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        unit = b.get("time_unit", "ns")
        scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]
        out[b["name"]] = {"cpu_ns": b["cpu_time"] * scale, "real_ns": b["real_time"] * scale}
    ctx.note(f"policy: {len(out)} benchmarks")
    return out
