#!/usr/bin/env python3
"""Paired `git status` timing: a repository natively and through a mount, with and without git's
optional index lock, side by side in one run (docs/PERFORMANCE.md, the workloads' `git status`).

Each round times RUNS invocations of `git -C DIR [--no-optional-locks] status --porcelain` per
configuration, alternating them, and prints the median per run in ms (fork and exec of git
included, on both sides alike). Usage:
  git_status.py NATIVE_REPO MOUNTED_REPO [--runs N] [--rounds R]
Run it as the identity the mount serves, e.g. after
  agentfense mount -d --delta DELTA --preset development NATIVE_REPO MOUNTED_REPO
"""
import argparse
import statistics
import subprocess
import time


def median_ms(repo: str, nolock: bool, runs: int) -> float:
    cmd = ["git", "-C", repo] + (["--no-optional-locks"] if nolock else []) + \
          ["status", "--porcelain"]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("native")
    ap.add_argument("mounted")
    ap.add_argument("--runs", type=int, default=41)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    for repo in (a.native, a.mounted):  # warm both: the rows are warm by design
        median_ms(repo, False, 3)
    for r in range(a.rounds):
        row = {}
        for nolock in (False, True):
            for name, repo in (("native", a.native), ("mount", a.mounted)):
                row[(name, nolock)] = median_ms(repo, nolock, a.runs)
        print(f"round {r + 1}: "
              f"native {row[('native', False)]:.2f} ms, mount {row[('mount', False)]:.2f} ms "
              f"({row[('mount', False)] / row[('native', False)]:.2f}x); "
              f"--no-optional-locks: native {row[('native', True)]:.2f} ms, "
              f"mount {row[('mount', True)]:.2f} ms "
              f"({row[('mount', True)] / row[('native', True)]:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
