"""Rootless next to rootful (issue 19; goal: within 10 % on every row). The same operations by root
and by an ordinary user (created when missing, as tests/rootless does), interleaved round by round
so both sides see the same machine:
  * `agentfense run -q --discard DIR -- true` end to end (mount, sandbox, command, teardown);
  * a server run by each: sandbox create + start, and an exec round trip of `true`;
  * filesystem rows of the fs group on an `agentfense mount --delta` made by each over the same tree
    (each side's copy owned by it), the commands run by the mount's own user.
Medians; the ratio is rootless ÷ rootful."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import ROOT, Context, drop_caches
from .fs_group import WORKLOADS, make_tree

USER = "afbench"
GOAL = 1.10
FS_ROWS = [("find", True), ("find", False), ("stat", False), ("grep -r", False),
           ("big read", False), ("small writes", False), ("big write", False)]


def _fixture(ctx: Context):
    for p in (str(ctx.build / "python"), str(ROOT / "tests" / "py")):
        if p not in sys.path:
            sys.path.insert(0, p)
    os.environ["AGENTFENSE_BUILD_DIR"] = str(ctx.build)
    import server_fixture  # noqa: E402
    return server_fixture


class Side:
    """One identity: how it runs a command and where its binaries are."""

    def __init__(self, ctx: Context, fx, user: str | None):
        self.user = user
        self.name = "rootless" if user else "rootful"
        if user:
            self.uid, self.gid, _ = fx.ensure_user(user)
            self.bin = fx.binaries_for(user)
            self.env = fx.user_env(user)
        else:
            self.uid, self.gid = 0, 0
            self.bin = ctx.build / "bin"
            self.env = dict(os.environ)

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        # Both sides change identity in the child, root to root included: with user/group set,
        # subprocess forks this (large) Python process instead of vfork-ing it, a millisecond or
        # more per command, which on 5-15 ms rows was the whole rootless "gap" when only one
        # side paid it (docs/PERFORMANCE.md, "Rootless next to rootful").
        return subprocess.run(argv, env=self.env, check=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, user=self.uid, group=self.gid,
                              extra_groups=[], **kw)

    def timed(self, argv: list[str]) -> float:
        t0 = time.perf_counter()
        self.run(argv)
        return (time.perf_counter() - t0) * 1000

    def own(self, path: Path) -> None:
        if self.user:
            subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(path)], check=True)


def _row(out: dict, name: str, samples: dict[str, list[float]]) -> None:
    a = statistics.median(samples["rootful"])
    b = statistics.median(samples["rootless"])
    out[name] = {"rootful_ms": a, "rootless_ms": b, "ratio": b / a if a > 0 else float("nan"),
                 "n": len(samples["rootful"])}


def _cli_rows(ctx: Context, sides: list[Side], out: dict) -> None:
    runs = 6 if ctx.quick else 20
    dirs = {}
    for s in sides:
        d = ctx.work / f"rootless-run-{s.name}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        (d / "main.py").write_text("print('hi')\n")
        s.own(d)
        dirs[s.name] = d
        s.run([str(s.bin / "agentfense"), "run", "-q", "--discard", str(d), "--", "true"])  # warm-up
    samples: dict[str, list[float]] = {s.name: [] for s in sides}
    for _ in range(runs):
        for s in sides:
            samples[s.name].append(s.timed([str(s.bin / "agentfense"), "run", "-q", "--discard",
                                            str(dirs[s.name]), "--", "true"]))
    _row(out, "agentfense run -- true", samples)


def _server_rows(ctx: Context, fx, sides: list[Side], out: dict) -> None:
    from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, sandbox_pb2, sandbox_pb2_grpc
    from google.protobuf import duration_pb2

    from .server_groups import _codebase, _rules
    from sandbox.v1 import common_pb2
    starts, execs = (3, 30) if ctx.quick else (8, 150)
    state = {}
    try:
        for s in sides:
            srv = fx.make_server(user=s.user or "")
            srv.start()
            ch = srv.channel()
            cb = _codebase(ch, codebase_pb2, codebase_pb2_grpc)
            state[s.name] = (srv, ch, sandbox_pb2_grpc.SandboxServiceStub(ch), cb)
        rules = _rules(common_pb2)

        def start_one(name: str) -> tuple[float, str]:
            _, _, stub, cb = state[name]
            t0 = time.perf_counter()
            sb = stub.CreateSandbox(sandbox_pb2.CreateSandboxRequest(codebase_id=cb,
                                                                     permissions=rules))
            stub.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=sb.id), timeout=120)
            return (time.perf_counter() - t0) * 1000, sb.id

        samples: dict[str, list[float]] = {s.name: [] for s in sides}
        for _ in range(starts):
            for s in sides:
                ms, sid = start_one(s.name)
                samples[s.name].append(ms)
                state[s.name][2].DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid),
                                                timeout=60)
        _row(out, "server: create + start a sandbox", samples)

        ids = {s.name: start_one(s.name)[1] for s in sides}
        samples = {s.name: [] for s in sides}
        timeout = duration_pb2.Duration(seconds=30)
        for i in range(execs + 5):
            for s in sides:
                stub = state[s.name][2]
                t0 = time.perf_counter()
                r = stub.Exec(sandbox_pb2.ExecRequest(sandbox_id=ids[s.name], command="true",
                                                      timeout=timeout), timeout=60)
                if r.exit_code != 0:
                    raise RuntimeError(f"{s.name}: exec of true exited {r.exit_code}")
                if i >= 5:  # the first few warm the agent and the mount
                    samples[s.name].append((time.perf_counter() - t0) * 1000)
        _row(out, "server: exec round trip (true)", samples)
    finally:
        for srv, ch, _, _ in state.values():
            ch.close()
            fx.cleanup_server(srv)


def _fs_rows(ctx: Context, sides: list[Side], out: dict) -> None:
    files, big_mib = (1000, 16) if ctx.quick else (4000, 64)
    rounds = 3 if ctx.quick else 5
    base = ctx.work / f"tree-rootless-{files}"
    make_tree(base, files, big_mib)
    scratch_rule = ["--rule", "/scratch/**=write@1000", "--rule", "/scratch=write@1000"]
    mounts = {}
    try:
        for s in sides:
            top = ctx.work / f"rootless-fs-{s.name}"
            if top.exists():
                subprocess.run(["umount", "-l", str(top / "mnt")], capture_output=True)
                shutil.rmtree(top)
            top.mkdir(parents=True)
            subprocess.run(["cp", "-a", f"{base}/.", str(top / "src")], check=True)
            (top / "src" / "scratch").mkdir(exist_ok=True)
            (top / "mnt").mkdir()
            (top / "delta").mkdir()
            top.chmod(0o755)
            s.own(top)
            s.run([str(s.bin / "agentfense"), "mount", "-d", "--preset", "agent-safe",
                   *scratch_rule, "--delta", str(top / "delta"), str(top / "src"),
                   str(top / "mnt")])
            mounts[s.name] = top / "mnt"
        for name, cold in FS_ROWS:
            cmd = WORKLOADS[name][0]
            samples: dict[str, list[float]] = {s.name: [] for s in sides}
            for s in sides:  # warm-up: the warm rows start from a cached tree
                s.run(["/bin/sh", "-c", cmd.format(M=mounts[s.name])])
            for _ in range(rounds):
                for s in sides:
                    if cold and not drop_caches():
                        raise RuntimeError("drop_caches refused: the cold rows need root")
                    samples[s.name].append(s.timed(["/bin/sh", "-c",
                                                    cmd.format(M=mounts[s.name])]))
            _row(out, f"fs: {name}, {'cold' if cold else 'warm'}", samples)
    finally:
        for s in sides:
            if s.name in mounts:
                subprocess.run([str(ctx.bin("agentfense")), "umount", str(mounts[s.name])],
                               capture_output=True)


def run(ctx: Context) -> dict:
    fx = _fixture(ctx)
    sides = [Side(ctx, fx, None), Side(ctx, fx, USER)]
    rows: dict = {}
    _cli_rows(ctx, sides, rows)
    ctx.note(f"rootless: run -- true {rows['agentfense run -- true']['ratio']:.2f}×")
    _server_rows(ctx, fx, sides, rows)
    _fs_rows(ctx, sides, rows)
    worst = max(r["ratio"] for r in rows.values())
    ctx.note(f"rootless: {len(rows)} rows, worst ratio {worst:.2f}× (goal ≤ {GOAL:.2f}×)")
    return {"user": USER, "goal": GOAL, "rows": rows}
