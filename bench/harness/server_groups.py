"""Groups that drive a real agentfense-server over gRPC: density (many idle sandboxes on one
codebase: memory, processes, create throughput, exec at that density) and stress (concurrent
clients running execs, then leak checks)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .common import ROOT, Context, summary


def _imports(ctx: Context):
    for p in (str(ctx.build / "python"), str(ROOT / "tests" / "py")):
        if p not in sys.path:
            sys.path.insert(0, p)
    os.environ["AGENTFENSE_BUILD_DIR"] = str(ctx.build)
    import server_fixture  # noqa: E402
    from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc
    return server_fixture, codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc


def _meminfo() -> dict:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, v = line.split(":", 1)
        out[k] = int(v.split()[0]) * 1024
    return out


def _used_bytes() -> int:
    m = _meminfo()
    return m["MemTotal"] - m["MemAvailable"]


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for t in Path(f"/proc/{pid}/task").iterdir():
            try:
                kids += [int(x) for x in (t / "children").read_text().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def _threads(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


def _supervisors(data_dir: Path) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"agentfense-supervisor" in cmd and str(data_dir).encode() in cmd:
            pids.append(int(d.name))
    return pids


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _rules(common_pb2):
    P = common_pb2
    return [P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ),
            P.PermissionRule(pattern="/output/**", permission=P.PERMISSION_WRITE, priority=10),
            P.PermissionRule(pattern="**/secrets/**", permission=P.PERMISSION_NONE, priority=100)]


def _start_server(ctx: Context, fx, max_sandboxes: int):
    s = fx.make_server(extra_config=f"  max_per_user: {max_sandboxes + 10}\n")
    s.start()
    return s


def _codebase(channel, cb_pb2, cb_grpc) -> str:
    stub = cb_grpc.CodebaseServiceStub(channel)
    c = stub.CreateCodebase(cb_pb2.CreateCodebaseRequest(name="bench", owner_id="bench"))
    files = {f"src/m{i}.py": b"print('hi')\n" * 20 for i in range(50)}
    files["secrets/key"] = b"canary\n"
    for path, data in files.items():
        def chunks(path=path, data=data):
            yield cb_pb2.UploadChunk(metadata=cb_pb2.UploadChunk.Metadata(
                codebase_id=c.id, file_path=path, total_size=len(data)))
            yield cb_pb2.UploadChunk(data=data)
        stub.UploadFiles(chunks())
    return c.id


def create_started(sb, sb_pb2, common_pb2, cb_id: str, n: int, rt, image: str = ""):
    """Creates and starts n sandboxes, 8 at a time: (ids started, error messages)."""
    ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def create(_):
        try:
            c = sb.CreateSandbox(sb_pb2.CreateSandboxRequest(
                codebase_id=cb_id, permissions=_rules(common_pb2), runtime=rt, image=image),
                timeout=120)
            sb.StartSandbox(sb_pb2.StartSandboxRequest(sandbox_id=c.id), timeout=300)
            with lock:
                ids.append(c.id)
        except Exception as e:  # noqa: BLE001 - counted and reported
            with lock:
                errors.append(str(e)[:200])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(n)))
    return ids, errors


def density(ctx: Context) -> dict:
    fx, cb_pb2, cb_grpc, common_pb2, sb_pb2, sb_grpc = _imports(ctx)
    levels = [25, 50] if ctx.quick else [100, 250, 500, 1000]
    docker_levels = [10] if ctx.quick else [200]
    out: dict = {"bwrap": {}, "docker": {}}
    for runtime, lv in (("bwrap", levels), ("docker", docker_levels)):
        if runtime == "docker":
            subprocess.run([str(ROOT / "scripts" / "ensure-services")], check=True,
                           stdout=subprocess.DEVNULL)
        for n in lv:
            out[runtime][str(n)] = _density_level(ctx, fx, cb_pb2, cb_grpc, common_pb2, sb_pb2,
                                                  sb_grpc, n, runtime)
    return out


def _density_level(ctx, fx, cb_pb2, cb_grpc, common_pb2, sb_pb2, sb_grpc, n: int, runtime: str):
    server = _start_server(ctx, fx, n)
    try:
        ch = server.channel()
        sb = sb_grpc.SandboxServiceStub(ch)
        cb_id = _codebase(ch, cb_pb2, cb_grpc)
        rt = sb_pb2.RUNTIME_TYPE_DOCKER if runtime == "docker" else sb_pb2.RUNTIME_TYPE_BWRAP
        image = "agentfense-test/busybox" if runtime == "docker" else ""
        time.sleep(1)
        server_rss0 = _pss(server.proc.pid)
        used0 = _used_bytes()
        t0 = time.perf_counter()
        ids, errors = create_started(sb, sb_pb2, common_pb2, cb_id, n, rt, image)
        create_s = time.perf_counter() - t0
        time.sleep(3)  # let page cache and lazy allocations settle
        used1 = _used_bytes()
        server_rss1 = _pss(server.proc.pid)
        sups = _supervisors(server.data_dir)
        procs = threads = pss = 0
        for p in sups:
            tree = _tree(p)
            procs += len(tree)
            threads += sum(_threads(x) for x in tree)
            pss += sum(_pss(x) for x in tree)
        lat = []
        exec_errors = 0
        for sid in ids:
            t = time.perf_counter()
            try:
                r = sb.Exec(sb_pb2.ExecRequest(sandbox_id=sid, command="cat src/m1.py >/dev/null"),
                            timeout=60)
                if r.exit_code != 0:
                    exec_errors += 1
            except Exception:  # noqa: BLE001
                exec_errors += 1
            lat.append((time.perf_counter() - t) * 1000)
        k = max(1, len(ids))
        res = {
            "requested": n, "running": len(ids), "create_errors": len(errors),
            "create_error_samples": errors[:3],
            "create_per_s": len(ids) / create_s if create_s else 0,
            "system_mem_per_sandbox_mib": (used1 - used0) / k / 2**20,
            "pss_per_sandbox_mib": pss / max(1, len(sups)) / 2**20,
            "server_mem_per_sandbox_kib": (server_rss1 - server_rss0) / k / 1024,
            "procs_per_sandbox": procs / max(1, len(sups)),
            "threads_per_sandbox": threads / max(1, len(sups)),
            "exec_ms": summary(lat), "exec_errors": exec_errors,
        }
        ctx.note(f"density {runtime} {n}: {len(ids)} running, "
                 f"{res['system_mem_per_sandbox_mib']:.2f} MiB/sandbox system, "
                 f"{res['pss_per_sandbox_mib']:.2f} MiB PSS, exec p50 {res['exec_ms']['p50']:.1f} ms, "
                 f"errors {len(errors)}/{exec_errors}")
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda sid: sb.DestroySandbox(sb_pb2.DestroySandboxRequest(
                sandbox_id=sid), timeout=120), ids))
        return res
    finally:
        fx.cleanup_server(server)


def _leaks(server, fx) -> dict:
    mounts = [l for l in Path("/proc/self/mounts").read_text().splitlines()
              if str(server.data_dir) in l]
    fds = len(os.listdir(f"/proc/{server.proc.pid}/fd")) if server.proc.poll() is None else -1
    return {"mounts": len(mounts), "supervisors": len(_supervisors(server.data_dir)),
            "server_fds": fds}


def stress(ctx: Context) -> dict:
    fx, cb_pb2, cb_grpc, common_pb2, sb_pb2, sb_grpc = _imports(ctx)
    n_sb, n_clients, seconds = (20, 10, 30) if ctx.quick else (100, 50, 300)
    server = _start_server(ctx, fx, n_sb)
    try:
        ch = server.channel()
        sb = sb_grpc.SandboxServiceStub(ch)
        cb_id = _codebase(ch, cb_pb2, cb_grpc)
        ids = []
        for _ in range(n_sb):
            c = sb.CreateSandbox(sb_pb2.CreateSandboxRequest(codebase_id=cb_id,
                                                             permissions=_rules(common_pb2)))
            sb.StartSandbox(sb_pb2.StartSandboxRequest(sandbox_id=c.id), timeout=120)
            ids.append(c.id)
        before = _leaks(server, fx)
        lat: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.perf_counter() + seconds

        def client(i: int):
            chan = server.channel()
            stub = sb_grpc.SandboxServiceStub(chan)
            k = i
            mine, errs = [], []
            while time.perf_counter() < stop_at:
                sid = ids[k % len(ids)]
                k += 1
                t = time.perf_counter()
                try:
                    r = stub.Exec(sb_pb2.ExecRequest(sandbox_id=sid, command="echo ok"), timeout=60)
                    if r.exit_code != 0 or r.stdout != "ok\n":
                        errs.append(f"exit {r.exit_code} out {r.stdout!r}")
                except Exception as e:  # noqa: BLE001
                    errs.append(str(e)[:200])
                mine.append((time.perf_counter() - t) * 1000)
            chan.close()
            with lock:
                lat.extend(mine)
                errors.extend(errs)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        during = _leaks(server, fx)
        for sid in ids:
            sb.DestroySandbox(sb_pb2.DestroySandboxRequest(sandbox_id=sid), timeout=120)
        time.sleep(2)
        after = _leaks(server, fx)
        res = {"sandboxes": n_sb, "clients": n_clients, "seconds": seconds,
               "execs": len(lat), "execs_per_s": len(lat) / elapsed, "latency_ms": summary(lat),
               "errors": len(errors), "error_samples": errors[:5],
               "before": before, "during": during, "after_destroy": after}
        ctx.note(f"stress: {len(lat)} execs, {res['execs_per_s']:.0f}/s, "
                 f"p99 {res['latency_ms']['p99']:.1f} ms, errors {len(errors)}, after {after}")
        return res
    finally:
        fx.cleanup_server(server)
