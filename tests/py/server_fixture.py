"""Starts a real agentfense-server on free loopback ports with a private data directory."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

BUILD_DIR = Path(os.environ.get("AGENTFENSE_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
SERVER_BIN = BUILD_DIR / "bin" / "agentfense-server"
HELPERS = ("agentfense", "agentfense-server", "agentfense-supervisor", "agentfense-agent",
           "agentfense-mount")
# AF_SERVER_USER=NAME: servers start rootless, as that ordinary user (tests/rootless, and the
# adversarial suite's rootless run in scripts/run-tests). The harness stays root to inspect.
SERVER_USER = os.environ.get("AF_SERVER_USER", "")


def user_ids(name: str) -> tuple[int, int, str]:
    import pwd
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid, pw.pw_dir


def ensure_user(name: str) -> tuple[int, int, str]:
    """An ordinary local user (created when missing, with a home), as a new user of the host."""
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        r = subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], capture_output=True, text=True)
        # 9: another test worker (pytest -n) created it meanwhile.
        if r.returncode not in (0, 9):
            raise RuntimeError(f"useradd {name}: {r.stderr}")
    return user_ids(name)


_bin_copies: dict[str, Path] = {}


def binaries_for(user: str) -> Path:
    """The built binaries, copied where `user` may run them (the build tree may sit in a directory
    only root can enter); the helpers stay beside agentfense, where it looks for them."""
    if user not in _bin_copies:
        import atexit
        d = Path(tempfile.mkdtemp(prefix=f"af-bin-{user}-"))
        atexit.register(shutil.rmtree, d, True)
        d.chmod(0o755)
        for name in HELPERS:
            shutil.copy2(BUILD_DIR / "bin" / name, d / name)
        _bin_copies[user] = d
    return _bin_copies[user]


def user_env(user: str, **extra: str) -> dict[str, str]:
    """A login-like environment for `user`: HOME, PATH, and an XDG_RUNTIME_DIR of theirs (0700,
    as systemd-logind makes /run/user/UID)."""
    uid, gid, home = user_ids(user)
    run = Path(f"/run/user/{uid}")
    run.mkdir(parents=True, exist_ok=True)
    os.chown(run, uid, gid)
    run.chmod(0o700)
    env = {"HOME": home, "USER": user, "LOGNAME": user, "PATH": "/usr/local/bin:/usr/bin:/bin",
           "XDG_RUNTIME_DIR": str(run), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    data_dir: Path
    grpc_port: int
    http_port: int
    extra_config: str = ""
    token: str = ""
    user: str = SERVER_USER  # "" = the harness's own identity (root); else rootless, as that user
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "server.log"

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> None:
        config = self.data_dir / "config.yaml"
        config.write_text(
            "server:\n"
            f"  grpc_addr: 127.0.0.1:{self.grpc_port}\n"
            f"  http_addr: 127.0.0.1:{self.http_port}\n"
            + (f"  auth_token: {self.token}\n" if self.token else "")
            + "storage:\n"
            f"  data_dir: {self.data_dir / 'data'}\n"
            "sandbox:\n"
            "  cleanup_interval: 1s\n"
            + self.extra_config
        )
        log = open(self.log_path, "ab")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        binary, user = str(SERVER_BIN), {}
        if self.user:
            uid, gid, _ = ensure_user(self.user)
            env = user_env(self.user)
            binary = str(binaries_for(self.user) / "agentfense-server")
            user = {"user": uid, "group": gid, "extra_groups": []}
            for p in (self.data_dir, config, self.log_path):
                os.chown(p, uid, gid)
        # Sanitizer builds (scripts/sanitize): the server honours the run's report options.
        for name in ("TSAN_OPTIONS", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if name in os.environ:
                env[name] = os.environ[name]
        self.proc = subprocess.Popen([binary, "-config", str(config)], stdout=log,
                                     stderr=subprocess.STDOUT, env=env, **user)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-4000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=0.2):
                    pass
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start listening in time")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def channel(self) -> grpc.Channel:
        # A private subchannel pool: otherwise a channel made after a server restart may reuse the
        # dead connection of an earlier channel to the same address and fail its first call.
        return grpc.insecure_channel(self.grpc_addr,
                                     options=[("grpc.use_local_subchannel_pool", 1)])


def make_server(**kwargs) -> Server:
    d = Path(tempfile.mkdtemp(prefix="af-srv-"))  # 0700: no sandbox identity ever passes through
    return Server(data_dir=d, grpc_port=free_port(), http_port=free_port(), **kwargs)


def cleanup_server(server: Server) -> None:
    server.stop()
    keep = os.environ.get("AF_KEEP_LOGS")
    if keep:  # a copy of every log for a post-mortem (CI sets it; the data dir goes below)
        dest = Path(keep) / server.data_dir.name
        dest.mkdir(parents=True, exist_ok=True)
        for log in server.data_dir.rglob("*.log"):
            shutil.copy2(log, dest / str(log.relative_to(server.data_dir)).replace("/", "_"))
    # Supervisors outlive the server by design: stop any this test left (their sockets are
    # under the data dir), then remove everything.
    run = server.data_dir / "data" / "mounts" / ".run"
    if run.is_dir():
        for d in run.iterdir():
            ctl = d / "control.sock"
            if ctl.exists():
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.settimeout(10)
                        s.connect(str(ctl))
                        s.sendall(b'{"op":"stop","destroy":true}\n')
                        s.recv(4096)
                except OSError:
                    pass
        time.sleep(0.5)
    mounts = server.data_dir / "data" / "mounts"
    if mounts.is_dir():
        for d in mounts.iterdir():
            subprocess.run(["umount", "-l", str(d)], capture_output=True)
    shutil.rmtree(server.data_dir, ignore_errors=True)


def running_server(**kwargs):
    """Generator for pytest fixtures: a started server, cleaned up afterwards."""
    if not SERVER_BIN.exists():
        raise RuntimeError(f"{SERVER_BIN} is missing: build the 'agentfense-server' target first")
    s = make_server(**kwargs)
    s.start()
    try:
        yield s
    finally:
        cleanup_server(s)


def http_json(server: Server, method: str, path: str, body=None, timeout: float = 60):
    """One REST call with a JSON body (when given): (status, decoded JSON reply)."""
    import json
    import urllib.error
    import urllib.request
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.http_base + path, method=method, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def upload(codebase_stub, codebase_id: str, path: str, data: bytes) -> None:
    """One file into a codebase over gRPC (UploadFiles: its metadata, then its data if any)."""
    from sandbox.v1 import codebase_pb2  # generated into build/python (PYTHONPATH)

    def chunks():
        yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
            codebase_id=codebase_id, file_path=path, total_size=len(data)))
        if data:
            yield codebase_pb2.UploadChunk(data=data)
    codebase_stub.UploadFiles(chunks())


def cli(server: Server, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The `agentfense` client CLI against `server` (gRPC), its output captured as text."""
    return subprocess.run([str(BUILD_DIR / "bin" / "agentfense"), "--endpoint", server.grpc_addr,
                           *args], capture_output=True, text=True, timeout=timeout)
