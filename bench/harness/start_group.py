"""Start and exec latency: our bwrap and Docker runtimes against their raw baselines (raw bwrap with
the same binds, fork/exec, `docker run --rm`, `docker exec`), measured interleaved by the C++
benchmark binaries in bench/runtime and bench/docker; this module runs them and parses their tables."""
from __future__ import annotations

import subprocess

from .common import ROOT, Context, markdown_rows, run_capture


def run(ctx: Context) -> dict:
    out: dict = {}
    iters = 50 if ctx.quick else 200
    text = run_capture([str(ctx.bin("runtime_bench")), str(ctx.bin("agentfense-agent")), str(iters)],
                       timeout=1800)
    # runtime_bench rows: | name | p50 | p99 | mean |
    out["bwrap"] = {r[0]: {"p50_ms": float(r[1]), "p99_ms": float(r[2]), "mean_ms": float(r[3])}
                    for r in markdown_rows(text)}
    ctx.note(f"start: bwrap rows: {len(out['bwrap'])}")
    subprocess.run([str(ROOT / "scripts" / "ensure-services")], check=True,
                   stdout=subprocess.DEVNULL)
    starts, execs = (10, 50) if ctx.quick else (30, 200)
    text = run_capture([str(ctx.bin("docker_start_exec_bench")), "--agent",
                        str(ctx.bin("agentfense-agent")), "--starts", str(starts),
                        "--execs", str(execs)], timeout=1800)
    # docker rows: | operation | n | p50 | p90 | p99 | mean |
    out["docker"] = {r[0]: {"n": int(r[1]), "p50_ms": float(r[2]), "p99_ms": float(r[4]),
                            "mean_ms": float(r[5])} for r in markdown_rows(text)}
    ctx.note(f"start: docker rows: {len(out['docker'])}")
    return out
