#!/usr/bin/python3
"""bench/fs/ab.py: two builds' filesystems, interleaved, on the workloads of bench/run's fs group.

    bench/fs/ab.py BUILD_A BUILD_B [--rounds N] [--cold-rounds N]

Mounts the fs group's tree with each build's agentfense-mount (agent-safe, plain and delta-backed:
the two "ours" configs of the fs group) at the same time, then runs every workload round by round
on all four mounts, alternating which build goes first: the cold samples of a round first (the
kernel caches dropped before each), then each warm sample right after a warm-up run. On a shared machine single runs vary by tens of percent; interleaving exposes both
builds to the same load, and the best-of-N (min) and median per row compare them. Each sample
also records the CPU time the mount's daemon spent on it (the sum of its threads'
/proc/PID/task/*/schedstat), which other processes' load hardly disturbs: that column tells what
a change costs the daemon. Needs root, and the tree of a previous `bench/run --groups fs` (or
makes it).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import fs_group  # noqa: E402
from harness.common import drop_caches, timed  # noqa: E402


def daemon_pid(mnt: Path) -> int:
    """The process serving `mnt`: its argv ends with the mount point and it holds /dev/fuse."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if str(mnt).encode() not in argv:
                continue
            if any(os.readlink(fd) == "/dev/fuse" for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    raise RuntimeError(f"no daemon found for {mnt}")


def cpu_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_a")
    ap.add_argument("build_b")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--cold-rounds", type=int, default=5)
    ap.add_argument("--work", default="/var/tmp/agentfense-bench")
    args = ap.parse_args()
    work = Path(args.work)
    src = work / "tree-16000"
    fs_group.make_tree(src, 16000, 256)
    (src / "scratch").mkdir(exist_ok=True)
    rule = "--rule '/scratch/**=write@1000' --rule '/scratch=write@1000'"
    configs = []
    for tag, build in (("A", args.build_a), ("B", args.build_b)):
        binary = Path(build).resolve() / "bin" / "agentfense-mount"
        configs.append((f"{tag} plain", fs_group.Config(
            f"{tag} plain", f"{binary} --background --preset agent-safe {rule} {{SRC}} {{MNT}}")))
        configs.append((f"{tag} delta", fs_group.Config(
            f"{tag} delta", f"mkdir -p {{SCRATCH}}/delta && {binary} --background --preset "
                            f"agent-safe {rule} --delta {{SCRATCH}}/delta {{SRC}} {{MNT}}")))
    roots = {}
    try:
        for name, cfg in configs:
            mnt = work / "ab" / name.replace(" ", "_")
            scratch = work / "ab-scratch" / name.replace(" ", "_")
            scratch.mkdir(parents=True, exist_ok=True)
            roots[name] = (cfg, mnt, cfg.mount(src, mnt, scratch))
        pids = {name: daemon_pid(root) for name, (_, _, root) in roots.items()}
        times: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}

        def sample(row: str, name: str, c: str) -> None:
            before = cpu_ns(pids[name])
            times.setdefault((row, name), []).append(timed(c))
            cpu.setdefault((row, name), []).append((cpu_ns(pids[name]) - before) / 1e9)

        for rnd in range(args.rounds):
            order = list(roots) if rnd % 2 == 0 else list(reversed(list(roots)))
            # Cold samples first: dropping the caches for one mount drops every mount's.
            for wl in fs_group.COLD if rnd < args.cold_rounds else ():
                for name in order:
                    drop_caches()
                    sample(f"{wl}, cold", name, fs_group.WORKLOADS[wl][0].format(M=roots[name][2]))
            for wl, (cmd, _) in fs_group.WORKLOADS.items():
                for name in order:
                    c = cmd.format(M=roots[name][2])
                    timed(c)  # warm-up, right before: the sample is warm whatever ran between
                    sample(f"{wl}, warm", name, c)
        med = statistics.median
        print("| row | mount | A min | B min | B/A min | A median | B median | B/A median "
              "| A daemon CPU | B daemon CPU | B/A CPU |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for row in dict.fromkeys(r for r, _ in times):
            for kind in ("plain", "delta"):
                a, b = times[(row, f"A {kind}")], times[(row, f"B {kind}")]
                ca, cb = med(cpu[(row, f"A {kind}")]), med(cpu[(row, f"B {kind}")])
                print(f"| {row} | {kind} | {min(a)*1000:.1f} ms | {min(b)*1000:.1f} ms | "
                      f"{min(b)/min(a):.3f} | {med(a)*1000:.1f} ms | {med(b)*1000:.1f} ms | "
                      f"{med(b)/med(a):.3f} | {ca*1000:.1f} ms | {cb*1000:.1f} ms | "
                      f"{cb/ca if ca else float('nan'):.3f} |")
    finally:
        for cfg, mnt, _ in roots.values():
            cfg.unmount(mnt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
