#!/usr/bin/env python3
"""Paired micro-benchmark of tree edits: native directory vs a mount, side by side in one run.

Per file: open(O_CREAT|O_EXCL|O_WRONLY) + 100-byte write + close + unlink (the lock-file pattern
of git), the two halves of `cp -r` + `rm -rf` (N creations, then N unlinks) and a `stat` of a
missing name. Rounds alternate native and mount; the median of the rounds is printed in µs per
file. Usage: tree_edit.py NATIVE_DIR MOUNT_DIR [--files N] [--rounds R]
(run it as the identity the mount serves; put the native directory, the mount's source and its
delta on the same file system, tmpfs to measure the mount alone).
"""
import argparse
import os
import statistics
import time

DATA = b"x" * 100


def lockfile(d: str, n: int) -> float:
    # In a directory as new on both sides: ext4 allocates inodes for a new directory elsewhere
    # than for an old one, at a very different cost (a new one measured 40 times slower here).
    sub = os.path.join(d, "lock-dir")
    os.mkdir(sub)
    p = os.path.join(sub, "x.lock")
    t = time.perf_counter()
    for _ in range(n):
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, DATA)
        os.close(fd)
        os.unlink(p)
    r = (time.perf_counter() - t) / n
    os.rmdir(sub)
    return r


def create_all(d: str, n: int) -> tuple[float, float]:
    sub = os.path.join(d, "tree-edit")
    os.mkdir(sub)
    names = [os.path.join(sub, f"f{i}.c") for i in range(n)]
    t = time.perf_counter()
    for p in names:
        try:  # what cp does first: is the destination there?
            os.stat(p)
        except FileNotFoundError:
            pass
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, DATA)
        os.close(fd)
    c = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for p in names:
        os.unlink(p)
    u = (time.perf_counter() - t) / n
    os.rmdir(sub)
    return c, u


def missing(d: str, n: int) -> float:
    p = os.path.join(d, ".rgignore-missing")
    t = time.perf_counter()
    for _ in range(n):
        try:
            os.stat(p)
        except FileNotFoundError:
            pass
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("native")
    ap.add_argument("mount")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    rows = {k: {"native": [], "mount": []} for k in
            ("create+write+close+unlink", "cp: stat+create+write+close", "rm: unlink",
             "stat of a missing name")}
    for _ in range(a.rounds):
        for side, d in (("native", a.native), ("mount", a.mount)):
            rows["create+write+close+unlink"][side].append(lockfile(d, a.files))
            c, u = create_all(d, a.files)
            rows["cp: stat+create+write+close"][side].append(c)
            rows["rm: unlink"][side].append(u)
            rows["stat of a missing name"][side].append(missing(d, a.files * 3))
    print(f"{'per file (median of %d rounds, %d files)' % (a.rounds, a.files):44} "
          f"{'native':>9} {'mount':>9} {'diff':>9} {'ratio':>6}")
    for k, v in rows.items():
        n, m = statistics.median(v["native"]) * 1e6, statistics.median(v["mount"]) * 1e6
        print(f"{k:44} {n:8.1f}µ {m:8.1f}µ {m - n:8.1f}µ {m / n:5.2f}×")


if __name__ == "__main__":
    main()
