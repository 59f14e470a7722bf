"""MCP beside the API it adds to: `read_file` of a 1 MiB file and a `run_command` round trip
(`true`) through MCP, against the same through the REST API (`POST .../exec` of `cat FILE` and of
`true`) on the same server and sandbox. MCP is measured on the server's Streamable HTTP endpoint
and on `agentfense mcp`'s stdio (a sandbox of the same directory, started as `agentfense run`
starts one). The calls are interleaved (REST, MCP, REST, ...) so that both see the same machine;
the goal is MCP within 1.2× of REST (issue 21), judged on the median of the per-round ratios. A small MCP client is written here (the official
SDKs run in tests/mcp): this measures the server, not a client library."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .common import ROOT, Context, percentile

GOAL = 1.2
BIG = "big.txt"


def _text_mib() -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.,;:!?()[]{}<>=+*/\n"
    data = line * ((1 << 20) // len(line) + 1)
    return data[: 1 << 20]


class Http:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict, dict]:
        h = {"Content-Type": "application/json", **(headers or {})}
        data = json.dumps(body).encode()
        for attempt in range(2):
            try:
                self.conn.request("POST", path, data, h)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, json.loads(raw or b"{}"), dict(r.getheaders())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        raise RuntimeError("unreachable")


class Stdio:
    """`agentfense mcp` as a child: one JSON-RPC message per line."""

    def __init__(self, argv: list[str]) -> None:
        # Buffered, with room for a whole reply: readline() on an unbuffered pipe reads one byte
        # per system call, and on the default 8 KiB buffer a 1 MiB line takes 128 reads.
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, bufsize=1 << 20)
        self.next_id = 0

    def call(self, method: str, params: dict) -> dict:
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.p.stdin.write(json.dumps(msg).encode() + b"\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("agentfense mcp ended")
            reply = json.loads(line)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=60)


def _check_tool(result: dict):
    """read_file's bytes are its text block; other tools' results their structuredContent."""
    if result.get("isError"):
        raise RuntimeError(result["content"][0]["text"])
    if "content" not in result["structuredContent"] and "bytes" in result["structuredContent"]:
        return result["content"][0]["text"]
    return result["structuredContent"]


def run(ctx: Context) -> dict:
    sys.path.insert(0, str(ROOT / "tests" / "py"))
    from server_fixture import cleanup_server, http_json, make_server  # noqa: E402

    iters = 30 if ctx.quick else 150
    payload = _text_mib()
    project = ctx.work / "mcp-project"
    project.mkdir(parents=True, exist_ok=True)
    (project / BIG).write_bytes(payload)

    server = make_server()
    server.start()
    try:
        _, cb = http_json(server, "POST", "/v1/codebases", {"name": "mcp-bench", "ownerId": "bench"})
        req = urllib.request.Request(f"{server.http_base}/v1/codebases/{cb['id']}/files/{BIG}",
                                     data=payload, method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(req, timeout=60).read()
        _, sb = http_json(server, "POST", "/v1/sandboxes", {
            "codebaseId": cb["id"], "syncMode": "SYNC_MODE_MANUAL",
            "permissions": [{"pattern": "**/*", "permission": "PERMISSION_READ"}]})
        st, _ = http_json(server, "POST", f"/v1/sandboxes/{sb['id']}/start", {})
        if st != 200:
            raise RuntimeError(f"start failed: {st}")
        rest = Http(server.http_port)
        mcp = Http(server.http_port)
        exec_path = f"/v1/sandboxes/{sb['id']}/exec"
        mcp_path = f"/v1/sandboxes/{sb['id']}/mcp"
        st, init, headers = mcp.post(mcp_path, {
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1"}}},
            {"Accept": "application/json, text/event-stream"})
        session = {k.lower(): v for k, v in headers.items()}["mcp-session-id"]
        mcp_headers = {"Accept": "application/json", "Mcp-Session-Id": session}

        def rest_exec(command: str) -> dict:
            st, out, _ = rest.post(exec_path, {"command": command})
            if st != 200:
                raise RuntimeError(f"exec {command}: {st} {out}")
            return out

        def mcp_tool(name: str, args: dict) -> dict:
            st, out, _ = mcp.post(mcp_path, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                             "params": {"name": name, "arguments": args}},
                                  mcp_headers)
            if st != 200 or "result" not in out:
                raise RuntimeError(f"{name}: {st} {out}")
            return _check_tool(out["result"])

        stdio = Stdio([str(ctx.bin("agentfense")), "mcp", "-q", "--discard", "--rule", "**/*=read",
                       str(project)])
        stdio.call("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "bench", "version": "1"}})

        def stdio_tool(name: str, args: dict) -> dict:
            return _check_tool(stdio.call("tools/call", {"name": name, "arguments": args}))

        cases = {
            "rest_read": lambda: rest_exec(f"cat {BIG}"),
            "http_read": lambda: mcp_tool("read_file", {"path": BIG}),
            "stdio_read": lambda: stdio_tool("read_file", {"path": BIG}),
            "rest_run": lambda: rest_exec("true"),
            "http_run": lambda: mcp_tool("run_command", {"command": "true"}),
            "stdio_run": lambda: stdio_tool("run_command", {"command": "true"}),
        }
        # Same bytes everywhere, checked once: the paths compared do the same work.
        assert rest_exec(f"cat {BIG}")["stdout"].encode() == payload
        assert mcp_tool("read_file", {"path": BIG}).encode() == payload
        assert stdio_tool("read_file", {"path": BIG}).encode() == payload
        for fn in cases.values():  # warm-up
            fn()
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(iters):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1000)
        stdio.close()
    finally:
        cleanup_server(server)

    out: dict = {"iterations": iters, "file_bytes": len(payload),
                 "load_average_end": os.getloadavg()[0]}
    for name, t in times.items():
        out[name] = {"p50_ms": percentile(t, 50), "p99_ms": percentile(t, 99)}
    # The ratio judged is the median of each round's MCP time over the same round's REST time:
    # a busy machine (these are shared) slows both calls of a round alike, so the pairing cancels
    # most of the noise that a ratio of two medians keeps.
    for what in ("read", "run"):
        for via in ("http", "stdio"):
            rest, mcp_t = times[f"rest_{what}"], times[f"{via}_{what}"]
            ratio = percentile([m / r for m, r in zip(mcp_t, rest)], 50)
            out[f"{via}_{what}"]["ratio"] = ratio
            ctx.note(f"mcp: {what} via {via} {out[f'{via}_{what}']['p50_ms']:.2f} ms, "
                     f"REST {out[f'rest_{what}']['p50_ms']:.2f} ms: {ratio:.2f}× (paired median)")
    return out
