"""Helpers of the adversarial suite: canary secrets, the planted codebase, the agent-safe policy,
an exec wrapper that fails the case as soon as a canary shows up in any output, and the integrity
checks (store bytes and metadata, a host file outside every codebase) run after every case."""
from __future__ import annotations

import hashlib
import os
import secrets as _secrets
import shutil
import stat
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf import duration_pb2

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc

P = common_pb2
RUN = _secrets.token_hex(6)


def canary(tag: str) -> str:
    return f"AFSEC{tag}{RUN}"


# Every secret the agent must never see, and where it lives in the codebase.
CANARIES = {
    ".env": canary("ENV"),
    "secrets/key.pem": canary("SECRETDIR"),
    "secrets/deep/a/b/token.txt": canary("DEEP"),
    "config/server.pem": canary("PEM"),
    "view/v.txt": canary("VIEW"),          # view: name and metadata only
    "output/.env.local": canary("OUTENV"),  # hidden file inside the writable tree
    "output/keep/.env": canary("KEEPENV"),  # hidden file in a writable subdirectory
}
HOST_CANARY = canary("HOST")
PUBLIC = {
    "src/app.py": b"print('app')\n",
    "src/ro.txt": b"READONLY-ORIGINAL-CONTENT\n" * 64,
    "README.md": b"# readme\n",
    "output/keep/visible.txt": b"visible\n",
    "output/.placeholder": b"",
}
ALL_CANARIES = list(CANARIES.values()) + [HOST_CANARY]


def agent_safe_rules():
    return [
        P.PermissionRule(pattern="**/*", permission=P.PERMISSION_READ, priority=0),
        P.PermissionRule(pattern="/output/**", permission=P.PERMISSION_WRITE, priority=10),
        P.PermissionRule(pattern="/view/**", permission=P.PERMISSION_VIEW, priority=50),
        P.PermissionRule(pattern="**/.env*", permission=P.PERMISSION_NONE, priority=100),
        P.PermissionRule(pattern="**/secrets/**", permission=P.PERMISSION_NONE, priority=100),
        P.PermissionRule(pattern="**/*.pem", permission=P.PERMISSION_NONE, priority=100),
    ]


def leaked(text) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    return [c for c in ALL_CANARIES if c in text]


def assert_no_canary(*texts) -> None:
    for t in texts:
        found = leaked(t)
        assert not found, f"canary leaked: {found}"


def assert_no_canary_in_file(path: Path) -> None:
    if path.exists():
        assert_no_canary(path.read_bytes())


def dur(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))


def upload(cb_stub, codebase_id: str, path: str, data: bytes):
    def chunks():
        yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
            codebase_id=codebase_id, file_path=path, total_size=len(data)))
        for i in range(0, len(data), 65536):
            yield codebase_pb2.UploadChunk(data=data[i:i + 65536])
    return cb_stub.UploadFiles(chunks())


def download(cb_stub, codebase_id: str, path: str, timeout: float = 20) -> bytes:
    it = cb_stub.DownloadFile(codebase_pb2.DownloadFileRequest(codebase_id=codebase_id,
                                                               file_path=path), timeout=timeout)
    return b"".join(c.data for c in it)


class World:
    """A planted codebase + a running sandbox with the agent-safe policy."""

    def __init__(self, server, rules=None, **create_kwargs):
        self.server = server
        self.rules = rules or agent_safe_rules()
        self.create_kwargs = create_kwargs
        self.ch = server.channel()
        self.cb = codebase_pb2_grpc.CodebaseServiceStub(self.ch)
        self.sb = sandbox_pb2_grpc.SandboxServiceStub(self.ch)
        self.codebase_id = ""
        self.sandbox_id = ""
        self.host_dir = Path(tempfile.mkdtemp(prefix="afsec-host-"))
        self.host_file = self.host_dir / "host_secret"
        self.baseline: dict[str, tuple[str, int]] = {}

    # -- setup --------------------------------------------------------------------------------
    def setup(self) -> None:
        os.chmod(self.host_dir, 0o755)  # world-readable on purpose: only isolation protects it
        self.host_file.write_text(HOST_CANARY + "\n")
        os.chmod(self.host_file, 0o666)  # even world-writable: nothing in the sandbox may reach it
        c = self.cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="sec", owner_id="sec"))
        self.codebase_id = c.id
        for path, data in list(PUBLIC.items()) + [(k, (v + "\n").encode()) for k, v in
                                                  CANARIES.items()]:
            upload(self.cb, c.id, path, data)
        self.baseline = {p: self.fingerprint(p) for p in self.protected_paths()}
        self.sandbox_id = self.new_sandbox()

    def new_sandbox(self, rules=None, start=True, **kw) -> str:
        args = dict(self.create_kwargs)
        args.update(kw)
        s = self.sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(
            codebase_id=self.codebase_id, permissions=rules or self.rules, **args))
        if start:
            self.sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=s.id), timeout=120)
        return s.id

    def destroy(self, sandbox_id: str) -> None:
        try:
            self.sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sandbox_id),
                                   timeout=60)
        except grpc.RpcError:
            pass

    def teardown(self) -> None:
        if self.sandbox_id:
            self.destroy(self.sandbox_id)
        self.ch.close()
        shutil.rmtree(self.host_dir, ignore_errors=True)

    # -- exec ---------------------------------------------------------------------------------
    def exec(self, command: str, timeout: float = 60, sandbox_id: str = "", **kw):
        """Runs `command` in the sandbox; fails the case if a canary appears in its output."""
        sid = sandbox_id or self.sandbox_id
        try:
            r = self.sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command=command,
                                                     timeout=dur(timeout), **kw),
                             timeout=timeout + 60)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            # The runtime died: its supervisor's log says why, and it goes with the sandbox.
            raise AssertionError(f"{e.details()}; supervisor log:\n{self.supervisor_log(sid)}") from e
        assert_no_canary(r.stdout, r.stderr)
        return r

    def supervisor_log(self, sandbox_id: str) -> str:
        log = self.server.data_dir / "data" / "mounts" / ".run" / sandbox_id / "supervisor.log"
        try:
            text = log.read_text(errors="replace")[-6000:]
        except OSError as e:
            return f"(unreadable: {e})"
        assert_no_canary(text, "")
        return text

    def py(self, code: str, timeout: float = 60, sandbox_id: str = ""):
        """Runs a Python snippet inside the sandbox (host /usr is bound read-only, python3 is there)."""
        return self.exec("python3 - <<'AFSEC_EOF'\n" + code + "\nAFSEC_EOF\n", timeout=timeout,
                         sandbox_id=sandbox_id)

    def commit(self):
        """Commits the sandbox's delta to the codebase (CommitChanges). Every sandbox here runs with
        a delta, so any error fails the case: a commit that did not happen must not pass as one
        (the invariant checks that follow would then look at an unchanged codebase)."""
        return self.sb.CommitChanges(
            sandbox_pb2.CommitChangesRequest(sandbox_id=self.sandbox_id), timeout=60)

    def healthy(self) -> None:
        """The server answers both transports and a fresh exec works."""
        self.cb.GetCodebase(codebase_pb2.GetCodebaseRequest(codebase_id=self.codebase_id),
                            timeout=20)
        r = self.exec("echo alive", timeout=60)
        assert r.stdout == "alive\n", r

    # -- invariants ---------------------------------------------------------------------------
    def protected_paths(self) -> list[str]:
        return list(CANARIES) + ["src/app.py", "src/ro.txt", "README.md"]

    def fingerprint(self, path: str) -> tuple[str, int]:
        return hashlib.sha256(download(self.cb, self.codebase_id, path)).hexdigest(), 0

    def store_root(self) -> Path | None:
        base = self.server.data_dir / "data" / "codebases"
        for cand in (base / self.codebase_id, base / self.codebase_id / "files"):
            if (cand / "src" / "app.py").exists():
                return cand
        for p in base.rglob("app.py") if base.exists() else []:
            if p.parent.name == "src" and self.codebase_id in str(p):
                return p.parent.parent
        return None

    def check_integrity(self) -> None:
        """I3: every read/view/none byte is unchanged in the store and no mode bit was granted."""
        for p, want in self.baseline.items():
            got = self.fingerprint(p)
            assert got == want, f"protected file changed or vanished: {p}"
        root = self.store_root()
        if root is not None:
            for p in self.protected_paths():
                st = os.lstat(root / p)
                assert stat.S_ISREG(st.st_mode), f"{p} is no longer a regular file in the store"
                assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), p

    def check_host_canary(self) -> None:
        """I4: a host file outside every codebase is untouched and nothing new appeared beside it."""
        assert self.host_file.read_text() == HOST_CANARY + "\n"
        assert sorted(os.listdir(self.host_dir)) == ["host_secret"]


def rpc_code(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def wait_until(pred, timeout: float = 20.0, step: float = 0.2) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# Prepended to in-sandbox Python snippets: `t(label, fn)` prints "label=OK" or "label=ENAME", so a
# case can assert on errno names (error-code oracles) without parsing tracebacks.
PRELUDE = r'''
import os, errno, ctypes, mmap, fcntl, sys, stat
os.chdir("/workspace")
def t(label, fn):
    try:
        r = fn()
        print(f"{label}=OK" + ("" if r is None else f":{r!r}"[:200]))
    except OSError as e:
        print(f"{label}={errno.errorcode.get(e.errno, e.errno)}")
libc = ctypes.CDLL(None, use_errno=True)
def sysc(nr, *args):
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if r < 0:
        raise OSError(ctypes.get_errno(), "syscall")
    return r
'''


def results(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v.split(":", 1)[0]
    return out
