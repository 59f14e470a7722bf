"""The network of sandboxes (docs/NETWORK.md): what network on costs. Sandbox start with network
on ÷ off (bwrap, interleaved), the latency the egress filter adds to a new TCP connection, bulk
throughput through it, and the memory of a networked sandbox; pasta, the user-mode uplink we did
not choose, is measured beside it on the same client and server. Destinations are the private lab
network of tests/py/netlab.py (a namespace behind a veth pair): nothing leaves this machine."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from google.protobuf import duration_pb2

from .common import Context, summary
from .server_groups import _imports, _pss, _supervisors

# One client program for every path (host, sandbox, pasta): per-connection latency of
# connect + 1-byte request + response + close against the lab's banner, then bulk throughput
# from the lab's byte source.
CLIENT = r'''
import socket, sys, time
host, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "latency":
    out = []
    for _ in range(n):
        t = time.perf_counter()
        s = socket.create_connection((host, 7000))
        while s.recv(64):
            pass
        s.close()
        out.append((time.perf_counter() - t) * 1e6)
    print(" ".join("%.1f" % x for x in out))
else:
    s = socket.create_connection((host, 7002))
    s.sendall(b"%012d" % n)
    buf = bytearray(1 << 20)
    got, t = 0, time.perf_counter()
    while True:
        k = s.recv_into(buf)
        if not k:
            break
        got += k
    dt = time.perf_counter() - t
    print("%d %.6f" % (got, dt))
'''


def _parse_latency(text: str) -> list[float]:
    return [float(x) for x in text.split()]


def _gbits(text: str) -> float:
    got, dt = text.split()
    return int(got) * 8 / float(dt) / 1e9


def run(ctx: Context) -> dict:
    server_fixture, codebase_pb2, codebase_pb2_grpc, _, sandbox_pb2, sandbox_pb2_grpc = \
        _imports(ctx)
    import netlab  # tests/py, on the path from _imports
    out: dict = {}
    starts = 8 if ctx.quick else 30
    conns = 200 if ctx.quick else 1000
    size = (256 if ctx.quick else 2048) << 20
    client_path = ctx.work / "net_client.py"
    client_path.write_text(CLIENT)
    with netlab.Lab() as lab:
        srv = server_fixture.make_server(extra_config=lab.server_config())
        srv.start()
        try:
            ch = srv.channel()
            sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
            cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
            cid = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="net", owner_id="b")).id
            data = CLIENT.encode()

            def chunks():
                yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
                    codebase_id=cid, file_path="client.py", total_size=len(data)))
                yield codebase_pb2.UploadChunk(data=data)
            cb.UploadFiles(chunks())
            rules = [{"pattern": "**/*", "permission": "PERMISSION_READ"}]

            def start(network: bool) -> tuple[str, float]:
                req = sandbox_pb2.CreateSandboxRequest(codebase_id=cid, permissions=rules)
                if network:
                    req.egress.allow.append(f"{netlab.ALLOWED_IP}:7000,7002")
                sid = sb.CreateSandbox(req).id
                t = time.perf_counter()
                sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=sid), timeout=120)
                sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command="true"), timeout=60)
                return sid, (time.perf_counter() - t) * 1000

            # Start, interleaved off/on so that load drifts hit both alike.
            off_ms, on_ms, off_ids, on_ids = [], [], [], []
            for _ in range(starts):
                sid, ms = start(False)
                off_ms.append(ms)
                off_ids.append(sid)
                sid, ms = start(True)
                on_ms.append(ms)
                on_ids.append(sid)
            out["start_off_ms"] = summary(off_ms)
            out["start_on_ms"] = summary(on_ms)
            out["start_ratio_p50"] = out["start_on_ms"]["p50"] / out["start_off_ms"]["p50"]

            # Memory: the supervisors' PSS with network on and off, and the kernel memory a
            # networked sandbox adds (its namespace, routes, rules, sockets), charged to the
            # server's memory cgroup (v1 kmem accounting), started in blocks of `k`.
            for sid in off_ids + on_ids[1:]:
                sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid), timeout=120)
            k = 5 if ctx.quick else 15
            cg = Path("/sys/fs/cgroup/memory/agentfense-bench-net")
            kmem = cg / "memory.kmem.usage_in_bytes"
            if kmem.parent.parent.exists():
                cg.mkdir(exist_ok=True)
                (cg / "cgroup.procs").write_text(str(srv.proc.pid))
            blocks = {}
            for network in (False, True):
                before = int(kmem.read_text()) if kmem.exists() else 0
                ids = [start(network)[0] for _ in range(k)]
                time.sleep(1)
                after = int(kmem.read_text()) if kmem.exists() else 0
                pids = {}
                for pid in _supervisors(srv.data_dir):
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    pids.update({sid: pid for sid in ids if sid.encode() in cmd})
                pss = [_pss(p) for p in pids.values()]
                blocks[network] = {"kmem": (after - before) / k,
                                   "pss": sum(pss) / max(len(pss), 1)}
                for sid in ids:
                    sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid), timeout=120)
            out["supervisor_pss_off_kib"] = blocks[False]["pss"] / 1024
            out["supervisor_pss_on_kib"] = blocks[True]["pss"] / 1024
            if kmem.exists():
                out["kernel_kib_per_sandbox_off"] = blocks[False]["kmem"] / 1024
                out["kernel_kib_per_sandbox_on"] = blocks[True]["kmem"] / 1024
            sid = on_ids[0]

            def inside(mode: str, n: int) -> str:
                r = sb.Exec(sandbox_pb2.ExecRequest(
                    sandbox_id=sid, command=f"python3 client.py {netlab.ALLOWED_IP} {mode} {n}",
                    timeout=duration_pb2.Duration(seconds=600)), timeout=660)
                if r.exit_code != 0:
                    raise RuntimeError(f"client in sandbox failed: {r.stderr}")
                return r.stdout

            def on_host(mode: str, n: int, prefix: list[str] | None = None) -> str:
                argv = (prefix or []) + [sys.executable, str(client_path), netlab.ALLOWED_IP, mode,
                                         str(n)]
                return subprocess.run(argv, capture_output=True, text=True, check=True,
                                      timeout=660).stdout

            # Latency, interleaved in rounds: direct from the host, and through the filter.
            direct, filtered = [], []
            rounds = 5
            for _ in range(rounds):
                direct += _parse_latency(on_host("latency", conns // rounds))
                filtered += _parse_latency(inside("latency", conns // rounds))
            out["connect_direct_us"] = summary(direct)
            out["connect_filtered_us"] = summary(filtered)
            out["connect_added_ms_p50"] = (out["connect_filtered_us"]["p50"] -
                                           out["connect_direct_us"]["p50"]) / 1000
            # Throughput, best of 3 each (a single stream; the client is Python on both sides).
            out["throughput_direct_gbit"] = max(_gbits(on_host("bulk", size)) for _ in range(3))
            out["throughput_filtered_gbit"] = max(_gbits(inside("bulk", size)) for _ in range(3))
            pasta = shutil.which("pasta")
            if pasta:
                # The uplink we did not choose, same client: pasta in its own namespace.
                # (as root pasta would switch to nobody and fail to map ids: keep root)
                pre = [pasta, "-q", "--runas", "0", "--config-net", "--"]
                t = time.perf_counter()
                for _ in range(5):
                    subprocess.run(pre + ["/bin/true"], check=True, capture_output=True,
                                   timeout=30)
                out["pasta_start_ms"] = (time.perf_counter() - t) * 1000 / 5
                out["pasta_connect_us"] = summary(_parse_latency(
                    on_host("latency", conns // rounds, pre)))
                out["pasta_throughput_gbit"] = max(_gbits(on_host("bulk", size, pre))
                                                   for _ in range(3))
            sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid), timeout=120)
            ch.close()
        finally:
            server_fixture.cleanup_server(srv)
            cg = Path("/sys/fs/cgroup/memory/agentfense-bench-net")
            if cg.exists():
                # The sandboxes' own cgroups were made beneath it (v1: under the launcher's).
                for d in sorted((p for p in cg.rglob("*") if p.is_dir()), reverse=True) + [cg]:
                    try:
                        d.rmdir()
                    except OSError:
                        pass
    ctx.note(f"net: start ratio {out['start_ratio_p50']:.2f}, +{out['connect_added_ms_p50']:.3f} ms"
             f" per connection, {out['throughput_filtered_gbit']:.2f} Gbit/s")
    return out
