"""Turns the JSON results of bench/run into the generated blocks of docs/PERFORMANCE.md and PNG plots
in docs/perf/. Prose in the document is written by hand; only the text between
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->` is replaced, so a rerun updates every figure and
keeps the explanations."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .common import ROOT

DOC = ROOT / "docs" / "PERFORMANCE.md"
PLOTS = ROOT / "docs" / "perf"

FS_GOALS = {"find, warm": 1.3, "stat, warm": 1.3, "ls -lR, warm": 1.5, "grep -r, warm": 1.5,
            "big read, warm": 1.3, "find, cold": 2.5, "grep -r, cold": 2.5,
            "small writes, warm": 3.0, "big write, warm": 3.0}


def _mark(ok: bool) -> str:
    return "✔" if ok else "✘"


def machine_block(m: dict, quick: bool, when: str) -> str:
    v = m["versions"]
    return (f"Run `{when}` ({'--quick' if quick else 'full'}) on {m['os']}, kernel {m['kernel']}, "
            f"{m['cpus']} × {m['cpu']}, {m['memory_gib']} GiB, cgroup {m['cgroup']}; "
            f"bwrap {v['bwrap']}, docker {v['docker']}, libfuse {v['libfuse']}, "
            f"{v['bindfs']}, {v['fuse-overlayfs']}; commit {v['git']}; "
            f"load average {m.get('load_average', 0):.1f} at the start.\n")


def policy_block(r: dict) -> str:
    rows = ["| benchmark | CPU time |", "|---|---|"]
    for name, x in r.items():
        if not isinstance(x, dict):
            continue
        ns = x["cpu_ns"]
        val = f"{ns:.0f} ns" if ns < 10_000 else f"{ns / 1000:.1f} µs"
        rows.append(f"| `{name}` | {val} |")
    worst = max((x["cpu_ns"] for n, x in r.items()
                 if isinstance(x, dict) and n.startswith("BM_DecideFile/100")),
                default=None)
    tail = ""
    if worst is not None:
        tail = (f"\nDecision at 100 rules: {worst:.0f} ns (goal ≤ 200 ns) "
                f"{_mark(worst <= 200)}\n")
    return "\n".join(rows) + "\n" + tail


def fs_block(r: dict) -> str:
    cfgs = list(r["configs"].keys())
    native = r["configs"]["native"]
    head = "| workload | native | " + " | ".join(c for c in cfgs if c != "native") + " | goal (ours) |"
    rows = [head, "|" + "---|" * (len(cfgs) + 2)]
    for wl in native:
        if not isinstance(native[wl], float):
            continue
        cells = [f"{native[wl]:.3f} s"]
        ours_ok = None
        for c in cfgs:
            if c == "native":
                continue
            ratio = r["ratios"].get(c, {}).get(wl)
            cells.append(f"{ratio:.2f}×" if ratio is not None else "—")
            if c.startswith("ours") and ratio is not None and wl in FS_GOALS:
                ok = ratio <= FS_GOALS[wl]
                ours_ok = ok if ours_ok is None else (ours_ok and ok)
        goal = (f"≤ {FS_GOALS[wl]}× {_mark(bool(ours_ok))}" if wl in FS_GOALS and ours_ok is not None
                else "")
        rows.append(f"| {wl} | " + " | ".join(cells) + f" | {goal} |")
    t = r["tree"]
    return (f"Tree: {t['files']} files + a {t['big_mib']} MiB file; median of {r['rounds']} warm "
            f"runs after one warm-up; cold = after dropping the kernel caches. Ratio = time ÷ native "
            f"time.\n\n" + "\n".join(rows) + "\n")


def start_block(r: dict) -> str:
    rows = ["| runtime | measurement | p50 ms | p99 ms |", "|---|---|---|---|"]
    for rt in ("bwrap", "docker"):
        for name, x in r.get(rt, {}).items():
            rows.append(f"| {rt} | {name} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} |")
    b = r.get("bwrap", {})
    out = "\n".join(rows) + "\n"
    raw = b.get("raw bwrap (same binds) sh -c true")
    ours = b.get("sandbox start + cgroup + first exec result")
    if raw and ours:
        ratio = ours["p50_ms"] / raw["p50_ms"]
        out += f"\nbwrap start ÷ raw bwrap (p50): {ratio:.2f}× (goal ≤ 2×) {_mark(ratio <= 2)}\n"
    return out


def delta_block(r: dict) -> str:
    rows = ["| measurement | delta | baseline | ratio | goal |", "|---|---|---|---|---|"]
    for name, x in r.items():
        if not isinstance(x, dict):
            continue
        goal = f"≤ {x['goal']}× {_mark(x['ratio'] <= x['goal'])}" if x.get("goal") else ""
        rows.append(f"| {name} | {x['ours_s']:.3f} s | {x['baseline']} {x['baseline_s']:.3f} s | "
                    f"{x['ratio']:.2f}× | {goal} |")
    return "\n".join(rows) + "\n"


def density_block(r: dict) -> str:
    rows = ["| runtime | sandboxes | running | create/s | system MiB per sandbox | PSS MiB per "
            "sandbox | server KiB per sandbox | processes | threads | exec p50 / p99 ms | errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rt in ("bwrap", "docker"):
        for n, x in r.get(rt, {}).items():
            e = x["exec_ms"]
            rows.append(
                f"| {rt} | {n} | {x['running']} | {x['create_per_s']:.1f} | "
                f"{x['system_mem_per_sandbox_mib']:.2f} | {x['pss_per_sandbox_mib']:.2f} | "
                f"{x['server_mem_per_sandbox_kib']:.0f} | {x['procs_per_sandbox']:.1f} | "
                f"{x['threads_per_sandbox']:.1f} | {e['p50']:.1f} / {e['p99']:.1f} | "
                f"{x['create_errors'] + x['exec_errors']} |")
    return "\n".join(rows) + "\n"


def stress_block(r: dict) -> str:
    l = r["latency_ms"]
    a = r["after_destroy"]
    return (f"{r['clients']} clients × {r['seconds']} s against {r['sandboxes']} bwrap sandboxes: "
            f"{r['execs']} execs, {r['execs_per_s']:.0f} execs/s, p50 {l['p50']:.1f} ms, "
            f"p99 {l['p99']:.1f} ms, **{r['errors']} errors**. After destroying every sandbox: "
            f"{a['mounts']} mounts and {a['supervisors']} supervisors left, server fds "
            f"{r['before']['server_fds']} before → {a['server_fds']} after.\n")


def plots(results: dict) -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    PLOTS.mkdir(parents=True, exist_ok=True)
    made = []
    fs = results.get("fs")
    if fs:
        cfgs = [c for c in fs["ratios"] if c != "native"]
        wls = [w for w, v in fs["configs"]["native"].items() if isinstance(v, float)]
        fig, ax = plt.subplots(figsize=(10, 4.5))
        width = 0.8 / max(1, len(cfgs))
        for i, c in enumerate(cfgs):
            vals = [fs["ratios"][c].get(w, 0) for w in wls]
            ax.bar([x + i * width for x in range(len(wls))], vals, width, label=c)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([x + width * (len(cfgs) - 1) / 2 for x in range(len(wls))])
        ax.set_xticklabels(wls, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("time ÷ native (lower is better)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.set_title("Filesystem workloads")
        fig.tight_layout()
        fig.savefig(PLOTS / "fs_ratios.png", dpi=90)
        plt.close(fig)
        made.append("fs_ratios.png")
    den = results.get("density")
    if den and den.get("bwrap"):
        ns = sorted(int(n) for n in den["bwrap"])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(ns, [den["bwrap"][str(n)]["system_mem_per_sandbox_mib"] for n in ns], "o-",
                label="system memory per sandbox")
        ax.plot(ns, [den["bwrap"][str(n)]["pss_per_sandbox_mib"] for n in ns], "s-",
                label="PSS of its processes")
        ax.axhline(3.0, color="red", linestyle="--", label="goal 3 MB")
        ax.set_xlabel("idle bwrap sandboxes")
        ax.set_ylabel("MiB")
        ax.legend(fontsize=8)
        ax.set_title("Density")
        fig.tight_layout()
        fig.savefig(PLOTS / "density.png", dpi=90)
        plt.close(fig)
        made.append("density.png")
    return made


def update_doc(results: dict, machine: dict, quick: bool, when: str) -> list[str]:
    blocks = {"machine": machine_block(machine, quick, when)}
    render = {"policy": policy_block, "fs": fs_block, "delta": delta_block, "start": start_block,
              "density": density_block, "stress": stress_block}
    for name, fn in render.items():
        if name in results:
            blocks[name] = fn(results[name])
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    changed = []
    for name, body in blocks.items():
        pat = re.compile(rf"(<!-- bench:{name} -->\n)(.*?)(<!-- /bench:{name} -->)", re.S)
        if pat.search(text):
            text = pat.sub(lambda m: m.group(1) + body + m.group(3), text)
        else:
            text += f"\n<!-- bench:{name} -->\n{body}<!-- /bench:{name} -->\n"
        changed.append(name)
    DOC.write_text(text)
    return changed


def load(out: Path) -> dict:
    res = {}
    for p in sorted(out.glob("*.json")):
        if p.stem != "machine":
            res[p.stem] = json.loads(p.read_text())
    return res
