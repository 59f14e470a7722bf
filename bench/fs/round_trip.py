#!/usr/bin/env python3
"""What one FUSE request costs: a request the kernel never caches, timed in a loop.

getxattr of a name outside user.* reaches the daemon every time and is answered without touching
the host (EOPNOTSUPP), so the loop measures the round trip itself: the kernel's queueing, the
wake-ups of the daemon and of the caller, and the reply. Mounts given as NAME=DIR are measured
in turns (rounds), each a median of LOOPS calls; the native file system is the baseline.
Usage: round_trip.py NATIVE_FILE NAME=MOUNTED_FILE [NAME=MOUNTED_FILE ...] [--rounds R]
(run it as the identity the mounts serve).
"""
import argparse
import os
import statistics
import time

NAME = "security.agentfense_round_trip"


def per_call(path: str, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        try:
            os.getxattr(path, NAME)
        except OSError:
            pass
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("native")
    ap.add_argument("mounted", nargs="+", help="NAME=FILE on a mount")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loops", type=int, default=2000)
    a = ap.parse_args()
    targets = [("native", a.native)] + [tuple(m.split("=", 1)) for m in a.mounted]
    times: dict[str, list[float]] = {name: [] for name, _ in targets}
    for _ in range(a.rounds):
        for name, path in targets:
            times[name].append(per_call(path, a.loops))
    print(f"{'µs per getxattr (median of rounds)':40s} {'median':>8s} {'min':>8s}")
    for name, _ in targets:
        print(f"{name:40s} {statistics.median(times[name]):8.1f} {min(times[name]):8.1f}")


if __name__ == "__main__":
    main()
