"""Shared helpers for bench/run: the run context, timing, statistics, machine facts."""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Context:
    build: Path        # build directory with bin/ and python/
    out: Path          # where this run's JSON results go
    quick: bool        # the < 10 minute mode
    work: Path         # scratch space for trees, mounts and data dirs (same disk as /tmp)
    log: list[str] = field(default_factory=list)

    def bin(self, name: str) -> Path:
        return self.build / "bin" / name

    def note(self, text: str) -> None:
        print(f"  {text}", flush=True)
        self.log.append(text)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * (len(s) - 1))))
    return s[k]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "mean": statistics.fmean(values) if values else float("nan"),
            "min": min(values) if values else float("nan")}


def timed(cmd: str, cwd: Path | None = None) -> float:
    """Wall time of one shell command in seconds; raises when it fails."""
    t0 = time.perf_counter()
    subprocess.run(["/bin/sh", "-c", cmd], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def drop_caches() -> bool:
    """Drops the page, dentry and inode caches (root only). False when the kernel refuses."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def run_capture(argv: list[str], timeout: float | None = None, env: dict | None = None) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode}: {p.stderr[-2000:]}")
    return p.stdout


def markdown_rows(text: str) -> list[list[str]]:
    """The data rows of every markdown table in `text` (header and separator rows dropped)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        rows.append(cells)
    # The first row of each table is its header: keep only rows whose second cell is numeric.
    return [r for r in rows if len(r) > 1 and re.fullmatch(r"[0-9.]+", r[1])]


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        lines = (out.stdout + "\n" + out.stderr).strip().splitlines()
        named = [ln for ln in lines if Path(argv[0]).name in ln.lower()]
        return (named or lines or ["?"])[0].strip()
    except (OSError, subprocess.TimeoutExpired):
        return "absent"


def machine() -> dict:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    os_name = "?"
    if Path("/etc/os-release").exists():
        m = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text())
        os_name = m.group(1) if m else "?"
    machine_id = Path("/etc/machine-id")
    return {
        "os": os_name,
        # With the kernel, what tells two runs' machines apart (report.group_times).
        "machine_id": machine_id.read_text().strip() if machine_id.exists() else "",
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cgroup": "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1",
        "python": sys.version.split()[0],
        "versions": {
            "bwrap": tool_version(["bwrap", "--version"]),
            "docker": tool_version(["docker", "version", "--format", "{{.Server.Version}}"]),
            "bindfs": tool_version(["bindfs", "--version"]),
            "fuse-overlayfs": tool_version(["fuse-overlayfs", "--version"]),
            "libfuse": tool_version(["pkg-config", "--modversion", "fuse3"]),
            "git": source_commit(),
        },
        # Context for every timing: these machines are shared and noisy (docs/PERFORMANCE.md).
        "load_average": os.getloadavg()[0],
    }


def source_commit() -> str:
    """The commit measured: $AF_BENCH_COMMIT (for an exported tree), else git, else unknown."""
    if os.environ.get("AF_BENCH_COMMIT"):
        return os.environ["AF_BENCH_COMMIT"]
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def save(ctx: Context, name: str, data: dict) -> Path:
    ctx.out.mkdir(parents=True, exist_ok=True)
    p = ctx.out / f"{name}.json"
    p.write_text(json.dumps(data, indent=2) + "\n")
    return p


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
