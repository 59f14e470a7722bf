#!/usr/bin/python3
"""bench/runtime/density_breakdown.py: where an idle sandbox's memory goes, per build.

    bench/runtime/density_breakdown.py BUILD [N] [--hold SECONDS]

Starts N (default 100) idle bwrap sandboxes exactly as bench/run's density group does (same
server fixture, codebase, rules and creation), then prints per sandbox: the density group's
"system memory" (growth of MemTotal − MemAvailable), the /proc/meminfo and /proc/slabinfo
deltas (kernel: slab caches, kernel stacks, page tables, per-CPU), and for each process of a
sandbox (supervisor, bwrap, agent) its smaps_rollup (PSS, private dirty), threads and open
descriptors by kind, and the server's own growth. The per-process and slab figures are exact;
the system figure moves with whatever else the machine does meanwhile, so read it at 1,000
sandboxes or on a quiet machine. --hold keeps the sandboxes up that long before the execs and
the teardown, for a look at one supervisor (/proc/PID/smaps, gdb). Needs root.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import server_groups as sg  # noqa: E402


def slabinfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/slabinfo").read_text().splitlines()[2:]:
        f = line.split()
        out[f[0]] = int(f[2]) * int(f[3])  # objects × object size
    return out


def rollup(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def fd_kinds(pid: int) -> dict[str, int]:
    kinds: dict[str, int] = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return kinds
    for n in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{n}")
        except OSError:
            continue
        kind = "path" if target.startswith("/") else re.sub(r":?\[\d+\]$", "", target)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", type=Path)
    ap.add_argument("n", type=int, nargs="?", default=100)
    ap.add_argument("--hold", type=int, default=0)
    args = ap.parse_args()

    class Ctx:
        build = args.build.resolve()
        quick = False

    fx, cb_pb2, cb_grpc, common_pb2, sb_pb2, sb_grpc = sg._imports(Ctx)
    server = sg._start_server(Ctx, fx, args.n)
    try:
        ch = server.channel()
        sb = sb_grpc.SandboxServiceStub(ch)
        cb_id = sg._codebase(ch, cb_pb2, cb_grpc)
        time.sleep(1)
        mem0, slab0, srv0 = sg._meminfo(), slabinfo(), rollup(server.proc.pid)
        ids, errors = sg.create_started(sb, sb_pb2, common_pb2, cb_id, args.n,
                                        sb_pb2.RUNTIME_TYPE_BWRAP)
        time.sleep(3)  # as the density group: let lazy allocations settle
        mem1, slab1, srv1 = sg._meminfo(), slabinfo(), rollup(server.proc.pid)
        k = max(1, len(ids))
        used = (mem1["MemTotal"] - mem1["MemAvailable"]) - (mem0["MemTotal"] - mem0["MemAvailable"])
        print(f"{len(ids)} running, {len(errors)} errors; system memory per sandbox "
              f"{used / k:,.0f} bytes ({used / k / 2**20:.2f} MiB)")
        print("meminfo, KiB per sandbox:")
        for key in ("AnonPages", "Shmem", "SUnreclaim", "SReclaimable", "KernelStack",
                    "PageTables", "Percpu", "VmallocUsed"):
            print(f"  {key:14} {(mem1[key] - mem0[key]) / k / 1024:8.1f}")
        print("slab caches, KiB per sandbox (largest growth):")
        growth = sorted(((c, (slab1.get(c, 0) - slab0.get(c, 0)) / k) for c in slab1),
                        key=lambda x: -x[1])
        for cache, b in growth[:16]:
            print(f"  {cache:24} {b / 1024:8.1f}")
        per: dict[str, dict] = {}
        sups = sg._supervisors(server.data_dir)
        for p in sups:
            for i, pid in enumerate(sg._tree(p)):
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    continue
                e = per.setdefault(f"{i} {comm}", {"n": 0, "threads": 0, "fds": {}, "mem": {}})
                e["n"] += 1
                e["threads"] += sg._threads(pid)
                for a, b in fd_kinds(pid).items():
                    e["fds"][a] = e["fds"].get(a, 0) + b
                for a, b in rollup(pid).items():
                    e["mem"][a] = e["mem"].get(a, 0) + b
        print("processes of a sandbox, averages (KiB):")
        for name, e in per.items():
            n = e["n"]
            m = {a: b / n / 1024 for a, b in e["mem"].items()}
            fds = ", ".join(f"{a} {b / n:g}" for a, b in sorted(e["fds"].items()))
            print(f"  {name:18} PSS {m.get('Pss', 0):7.0f}  private dirty "
                  f"{m.get('Private_Dirty', 0):7.0f}  threads {e['threads'] / n:g}  fds: {fds}")
        print(f"  server growth      PSS {(srv1.get('Pss', 0) - srv0.get('Pss', 0)) / k / 1024:7.0f}")
        if args.hold:
            print(f"holding {args.hold} s; supervisors {sups[:3]} ...", flush=True)
            time.sleep(args.hold)
        lat = []
        for sid in ids:
            t = time.perf_counter()
            sb.Exec(sb_pb2.ExecRequest(sandbox_id=sid, command="cat src/m1.py >/dev/null"),
                    timeout=60)
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        if lat:
            print(f"exec p50 {lat[len(lat) // 2]:.1f} ms")
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda sid: sb.DestroySandbox(
                sb_pb2.DestroySandboxRequest(sandbox_id=sid), timeout=120), ids))
    finally:
        fx.cleanup_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
