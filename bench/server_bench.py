#!/usr/bin/env python3
"""agentfense-server benchmark over real gRPC (issue 6, "Performance").

  1. create → start → exec → destroy cycle of one sandbox, p50 / p99 (ms), N cycles in sequence;
  2. exec throughput with 50 concurrent clients (each its own channel) on 5 running sandboxes;
  3. 100 idle running sandboxes: server RSS growth per sandbox, and the whole-system cost per
     idle sandbox including its supervisor, FUSE daemon threads and runtime (sum of PSS of every
     process of the sandboxes, from /proc/<pid>/smaps_rollup), plus MemAvailable drop per sandbox
     for context (noisy on a shared machine).

Usage (as root, server built):
  AGENTFENSE_BUILD_DIR=build PYTHONPATH=build/python:tests/py /usr/bin/python3 bench/server_bench.py \
      [--cycles 30] [--clients 50] [--execs 40] [--idle 100]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "py"))

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc  # noqa: E402

from server_fixture import cleanup_server, make_server  # noqa: E402

RULES = [common_pb2.PermissionRule(pattern="**/*", permission=common_pb2.PERMISSION_READ),
         common_pb2.PermissionRule(pattern="/out/**", permission=common_pb2.PERMISSION_WRITE,
                                   priority=10)]


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def kb(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for e in Path("/proc").iterdir():
        if not e.name.isdigit():
            continue
        try:
            stat = (e / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        out.setdefault(ppid, []).append(int(e.name))
    return out


def sandbox_pids(needle: str) -> set[int]:
    """Processes whose command line mentions `needle` (the supervisors) and all descendants."""
    roots = set()
    for e in Path("/proc").iterdir():
        if not e.name.isdigit():
            continue
        try:
            if needle.encode() in (e / "cmdline").read_bytes():
                roots.add(int(e.name))
        except OSError:
            pass
    kids = children_map()
    seen, stack = set(), list(roots)
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        stack.extend(kids.get(p, []))
    return seen


def pss_kb(pids) -> int:
    total = 0
    for p in pids:
        try:
            total += kb(f"/proc/{p}/smaps_rollup", "Pss")
        except OSError:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=30)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--execs", type=int, default=40)
    ap.add_argument("--idle", type=int, default=100)
    args = ap.parse_args()

    srv = make_server()
    srv.start()
    try:
        ch = srv.channel()
        cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
        sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
        c = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="bench", owner_id="bench"))

        def chunks():
            yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
                codebase_id=c.id, file_path="src/main.py", total_size=12))
            yield codebase_pb2.UploadChunk(data=b"print('hi')\n")
        cb.UploadFiles(chunks())

        def create_start():
            s = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id=c.id,
                                                                  permissions=RULES))
            sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=s.id))
            return s.id

        # 1. cycle latency
        cycles = []
        for _ in range(args.cycles):
            t0 = time.perf_counter()
            sid = create_start()
            sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command="cat src/main.py"))
            sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid))
            cycles.append((time.perf_counter() - t0) * 1000)
        print(f"cycle create→start→exec→destroy ({args.cycles}): "
              f"p50 {pct(cycles, 50):.0f} ms, p99 {pct(cycles, 99):.0f} ms, "
              f"mean {statistics.mean(cycles):.0f} ms")

        # 2. exec throughput
        ids = [create_start() for _ in range(5)]
        lat: list[float] = []
        errors = [0]
        lock = threading.Lock()

        def client(n):
            with srv.channel() as own:
                stub = sandbox_pb2_grpc.SandboxServiceStub(own)
                mine = []
                for _ in range(args.execs):
                    t0 = time.perf_counter()
                    try:
                        stub.Exec(sandbox_pb2.ExecRequest(sandbox_id=ids[n % 5], command="true"))
                    except Exception:  # noqa: BLE001
                        with lock:
                            errors[0] += 1
                    mine.append((time.perf_counter() - t0) * 1000)
                with lock:
                    lat.extend(mine)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        total = args.clients * args.execs
        print(f"exec throughput, {args.clients} clients × {args.execs}: {total / wall:.0f} exec/s, "
              f"latency p50 {pct(lat, 50):.0f} ms p99 {pct(lat, 99):.0f} ms, errors {errors[0]}")
        for sid in ids:
            sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid))

        # 3. idle memory
        time.sleep(1)
        server_rss0 = kb(f"/proc/{srv.proc.pid}/status", "VmRSS")
        avail0 = kb("/proc/meminfo", "MemAvailable")
        idle = []
        t0 = time.perf_counter()
        for _ in range(args.idle):
            idle.append(create_start())
        started = time.perf_counter() - t0
        time.sleep(3)
        server_rss1 = kb(f"/proc/{srv.proc.pid}/status", "VmRSS")
        avail1 = kb("/proc/meminfo", "MemAvailable")
        run_dir = str(srv.data_dir / "data" / "mounts" / ".run")
        pids = sandbox_pids(run_dir)
        pss = pss_kb(pids)
        n = args.idle
        print(f"{n} idle sandboxes started in {started:.1f}s; {len(pids)} processes")
        print(f"server RSS: {server_rss0 / 1024:.1f} → {server_rss1 / 1024:.1f} MiB, "
              f"{(server_rss1 - server_rss0) / n:.0f} KiB per sandbox")
        print(f"sandbox processes (supervisor + FUSE + runtime), PSS: {pss / 1024:.1f} MiB total, "
              f"{pss / n:.0f} KiB per idle sandbox")
        print(f"whole system incl. server growth: {(pss + server_rss1 - server_rss0) / n / 1024:.2f}"
              f" MiB per idle sandbox (goal ≤ 3 MiB); MemAvailable drop "
              f"{(avail0 - avail1) / n / 1024:.2f} MiB per sandbox (noisy: shared machine)")
        for sid in idle:
            sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid))
    finally:
        cleanup_server(srv)


if __name__ == "__main__":
    main()
