"""Sandbox: the high-level synchronous API (from_local / from_codebase / connect, run, sessions,
file helpers) and SessionWrapper. Context managers destroy what they created, also on errors, and a
failed from_local leaves no codebase or sandbox behind."""
from __future__ import annotations

import asyncio
import base64
import os
import threading
from datetime import timedelta
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from . import _high as h
from ._ask import AccessCallback, AccessWatcher, check_callback
from .client import ExecStream, SandboxClient
from .exceptions import SandboxError, SessionClosedError
from .ignore import walk_tree
from .types import (AccessRequest, ChangeSet, Checkpoint, Codebase, CommitResult, Decision, DeltaQuota,
                    ExecResult, FileChange, FileInfo,
                    PermissionExplanation, PermissionLike, PermissionRule, ResourceLimits, RuntimeType,
                    SandboxInfo, SandboxStatus, Session, SessionStatus, SyncMode, UploadReport)

Timeout = Union[float, timedelta, None]


class SessionWrapper:
    """A persistent shell in a sandbox (cwd and environment survive between commands).

    `with sandbox.session() as s:` creates it on entry (or on first use) and destroys it on exit.
    """

    def __init__(self, client: SandboxClient, session: Optional[Session] = None, sandbox_id: str = "",
                 shell: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> None:
        self._client = client
        self._session = session
        self._sandbox_id = session.sandbox_id if session else sandbox_id
        self._shell = shell
        self._env = env
        self._closed = False

    def _ensure(self) -> Session:
        if self._closed:
            raise SessionClosedError(self._session.id if self._session else "", "session already closed")
        if self._session is None:
            self._session = self._client.create_session(self._sandbox_id, self._shell, self._env)
        return self._session

    @property
    def id(self) -> str:
        return self._ensure().id

    @property
    def info(self) -> Session:
        return self._ensure()

    @property
    def status(self) -> SessionStatus:
        if self._closed:
            return SessionStatus.CLOSED
        return self._client.get_session(self.id).status

    def exec(self, command: str, timeout: Timeout = None) -> ExecResult:
        return self._client.session_exec(self._ensure().id, command, timeout)

    def run(self, command: str, timeout: Timeout = 60, raise_on_error: bool = False) -> ExecResult:
        r = self.exec(command, timeout)
        return r.raise_on_error() if raise_on_error else r

    def exec_stream(self, command: str, timeout: Timeout = None, on_stdout: Any = None,
                    on_stderr: Any = None) -> ExecStream:
        return self._client.session_exec_stream(self._ensure().id, command, timeout, on_stdout, on_stderr)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            self._client.destroy_session(self._session.id)

    destroy = close

    def __enter__(self) -> "SessionWrapper":
        self._ensure()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.close()
        except SandboxError:
            if exc_type is None:
                raise  # otherwise the body's exception matters more than a failed cleanup


class Sandbox:
    """A running sandbox plus what it owns. Prefer the class methods to the constructor."""

    def __init__(self, client: SandboxClient, info: SandboxInfo, codebase: Optional[Codebase] = None,
                 owns_client: bool = False, owns_codebase: bool = False,
                 upload_report: Optional[UploadReport] = None) -> None:
        self._client = client
        self._info = info
        self._codebase = codebase
        self._owns_client = owns_client
        self._owns_codebase = owns_codebase
        self._destroyed = False
        self._watcher: Optional[AccessWatcher] = None
        self.upload_report = upload_report

    # ---- construction ----
    @classmethod
    def from_local(cls, path: "str | os.PathLike[str]", preset: Optional[str] = "agent-safe",
                   permissions: Optional[Iterable[PermissionLike]] = None,
                   runtime: "RuntimeType | str" = RuntimeType.BWRAP, image: Optional[str] = None,
                   resources: Optional[ResourceLimits] = None, endpoint: Optional[str] = None,
                   secure: bool = False, token: Optional[str] = None, owner_id: str = "sdk",
                   codebase_name: Optional[str] = None, ignore_patterns: Optional[Iterable[str]] = None,
                   use_default_ignores: bool = True, labels: Optional[Mapping[str, str]] = None,
                   expires_in: Timeout = None, auto_start: bool = True, workers: int = 16,
                   on_progress: Optional[h.ProgressCallback] = None, show_progress: Optional[bool] = None,
                   sync_mode: "SyncMode | str | None" = None, network: bool = False,
                   delta_quota: Optional[DeltaQuota] = None, env: Optional[Mapping[str, str]] = None,
                   allow_net: Optional[Iterable[str]] = None, ask_timeout: Timeout = None,
                   on_access_request: Optional[AccessCallback] = None,
                   client: Optional[SandboxClient] = None) -> "Sandbox":
        """Uploads a local directory as a new codebase and starts a sandbox over it.

        Rules: the preset's (default "agent-safe") followed by `permissions`. Files are chosen with
        gitignore semantics (.gitignore, .sandboxignore, defaults, `ignore_patterns`); symlinks are
        never followed out of the tree; anything not uploaded is listed in `upload_report.skipped`.
        On any failure the codebase and sandbox created so far are deleted before the error is raised.
        `on_access_request` answers accesses to `ask` paths (see on_access_request()).
        """
        check_callback(on_access_request)
        root = h.check_dir(path)
        rules = h.build_rules(preset, permissions)  # unknown preset: fails before anything exists
        if workers < 1:
            raise SandboxError("workers must be >= 1")
        walk = walk_tree(root, ignore_patterns, use_default_ignores)
        owns_client = client is None
        cl = client or SandboxClient(endpoint=endpoint, secure=secure, token=token)
        codebase: Optional[Codebase] = None
        info: Optional[SandboxInfo] = None
        try:
            codebase = cl.create_codebase(codebase_name or h.codebase_name_for(root), owner_id)
            report = _upload_all(cl, codebase.id, walk, workers, on_progress, show_progress)
            info = cl.create_sandbox(codebase.id, rules, labels=labels, expires_in=expires_in, runtime=runtime,
                                     image=image, resources=resources, sync_mode=sync_mode, network=network,
                                     delta_quota=delta_quota, env=env, allow_net=allow_net,
                                     ask_timeout=ask_timeout)
            if auto_start:
                info = cl.start_sandbox(info.id)
            sb = cls(cl, info, cl.get_codebase(codebase.id), owns_client, True, report)
            if on_access_request is not None:
                sb.on_access_request(on_access_request)
            return sb
        except BaseException:
            _cleanup(cl, info.id if info else None, codebase.id if codebase else None)
            if owns_client:
                cl.close()
            raise

    @classmethod
    def from_codebase(cls, codebase_id: str, preset: Optional[str] = "agent-safe",
                      permissions: Optional[Iterable[PermissionLike]] = None,
                      runtime: "RuntimeType | str" = RuntimeType.BWRAP, image: Optional[str] = None,
                      resources: Optional[ResourceLimits] = None, endpoint: Optional[str] = None,
                      secure: bool = False, token: Optional[str] = None,
                      labels: Optional[Mapping[str, str]] = None, expires_in: Timeout = None,
                      auto_start: bool = True, sync_mode: "SyncMode | str | None" = None,
                      network: bool = False, delta_quota: Optional[DeltaQuota] = None,
                      env: Optional[Mapping[str, str]] = None,
                      allow_net: Optional[Iterable[str]] = None, ask_timeout: Timeout = None,
                      on_access_request: Optional[AccessCallback] = None,
                      client: Optional[SandboxClient] = None) -> "Sandbox":
        """A new sandbox over an existing codebase (which it will not delete)."""
        check_callback(on_access_request)
        rules = h.build_rules(preset, permissions)
        owns_client = client is None
        cl = client or SandboxClient(endpoint=endpoint, secure=secure, token=token)
        info: Optional[SandboxInfo] = None
        try:
            codebase = cl.get_codebase(codebase_id)
            info = cl.create_sandbox(codebase_id, rules, labels=labels, expires_in=expires_in, runtime=runtime,
                                     image=image, resources=resources, sync_mode=sync_mode, network=network,
                                     delta_quota=delta_quota, env=env, allow_net=allow_net,
                                     ask_timeout=ask_timeout)
            if auto_start:
                info = cl.start_sandbox(info.id)
            sb = cls(cl, info, codebase, owns_client, False)
            if on_access_request is not None:
                sb.on_access_request(on_access_request)
            return sb
        except BaseException:
            _cleanup(cl, info.id if info else None, None)
            if owns_client:
                cl.close()
            raise

    @classmethod
    def connect(cls, sandbox_id: str, endpoint: Optional[str] = None, secure: bool = False,
                token: Optional[str] = None, client: Optional[SandboxClient] = None) -> "Sandbox":
        """Attaches to an existing sandbox. Leaving a `with` block destroys it (as for the others)."""
        owns_client = client is None
        cl = client or SandboxClient(endpoint=endpoint, secure=secure, token=token)
        try:
            info = cl.get_sandbox(sandbox_id)
            return cls(cl, info, cl.get_codebase(info.codebase_id), owns_client, False)
        except BaseException:
            if owns_client:
                cl.close()
            raise

    # ---- properties ----
    @property
    def id(self) -> str:
        return self._info.id

    @property
    def codebase_id(self) -> str:
        return self._info.codebase_id

    @property
    def status(self) -> SandboxStatus:
        return self._info.status

    @property
    def runtime(self) -> RuntimeType:
        return self._info.runtime

    @property
    def info(self) -> SandboxInfo:
        return self._info

    @property
    def codebase(self) -> Optional[Codebase]:
        return self._codebase

    @property
    def client(self) -> SandboxClient:
        return self._client

    @property
    def permissions(self) -> List[PermissionRule]:
        return list(self._info.permissions)

    # ---- lifecycle ----
    def start(self) -> "Sandbox":
        if self._info.status != SandboxStatus.RUNNING:
            self._info = self._client.start_sandbox(self.id)
        return self

    def stop(self) -> "Sandbox":
        if self._info.status == SandboxStatus.RUNNING:
            self._info = self._client.stop_sandbox(self.id)
        return self

    def refresh(self) -> "Sandbox":
        self._info = self._client.get_sandbox(self.id)
        return self

    def destroy(self, delete_codebase: Optional[bool] = None) -> None:
        """Destroys the sandbox, the codebase if this object created it (or `delete_codebase`),
        and closes the client if it owns it. Idempotent."""
        if self._destroyed:
            return
        self._destroyed = True
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        try:
            self._client.destroy_sandbox(self.id)
            if delete_codebase if delete_codebase is not None else self._owns_codebase:
                self._client.delete_codebase(self.codebase_id)
        finally:
            if self._owns_client:
                self._client.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.destroy()
        except SandboxError:
            if exc_type is None:
                raise

    # ---- commands ----
    def run(self, command: str, timeout: Timeout = 60, env: Optional[Mapping[str, str]] = None,
            workdir: Optional[str] = None, raise_on_error: bool = False) -> ExecResult:
        """exec with defaults: raises CommandTimeoutError after `timeout` seconds, and
        CommandExecutionError on a non-zero exit when `raise_on_error`."""
        r = self._client.exec(self.id, command, env=env, workdir=workdir, timeout=timeout)
        return r.raise_on_error() if raise_on_error else r

    def exec(self, command: str, stdin: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
             workdir: Optional[str] = None, timeout: Timeout = None) -> ExecResult:
        return self._client.exec(self.id, command, stdin=stdin, env=env, workdir=workdir, timeout=timeout)

    def exec_stream(self, command: str, stdin: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                    workdir: Optional[str] = None, timeout: Timeout = None, on_stdout: Any = None,
                    on_stderr: Any = None) -> ExecStream:
        return self._client.exec_stream(self.id, command, stdin=stdin, env=env, workdir=workdir,
                                        timeout=timeout, on_stdout=on_stdout, on_stderr=on_stderr)

    def session(self, shell: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> SessionWrapper:
        return SessionWrapper(self._client, sandbox_id=self.id, shell=shell, env=env)

    # ---- files, as the sandbox sees them (its permissions apply) ----
    def read_file_bytes(self, path: str, timeout: Timeout = 60) -> bytes:
        cmd = h.read_cmd(path)
        stream = self.exec_stream(cmd, timeout=timeout)
        out = b"".join(ch.data for ch in stream if ch.is_stdout)
        res = stream.result()
        if res.exit_code != 0:
            raise h.file_error("read", path, res.exit_code, res.stderr, cmd)
        return out

    def read_file(self, path: str, timeout: Timeout = 60) -> str:
        return self.read_file_bytes(path, timeout).decode("utf-8", errors="replace")

    def write_file(self, path: str, content: "str | bytes", timeout: Timeout = 60) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        cmd = h.write_cmd(path)
        r = self.exec(cmd, stdin=base64.b64encode(data).decode("ascii"), timeout=timeout)
        if r.exit_code != 0:
            raise h.file_error("write", path, r.exit_code, r.stderr, cmd)

    def list_files(self, path: str = ".", recursive: bool = False, timeout: Timeout = 60) -> List[FileInfo]:
        cmd = h.list_cmd(path, recursive)
        r = self.exec(cmd, timeout=timeout)
        if r.exit_code != 0:
            raise h.file_error("list", path, r.exit_code, r.stderr, cmd)
        return h.parse_listing(path, r)

    # ---- extensions ----
    def update_permissions(self, permissions: Iterable[PermissionLike]) -> SandboxInfo:
        self._info = self._client.update_permissions(self.id, permissions)
        return self._info

    def update_egress(self, allow_net: Optional[Iterable[str]] = None,
                      any_public: bool = False) -> SandboxInfo:
        """Replaces the egress allow-list (docs/NETWORK.md); live before this returns."""
        self._info = self._client.update_egress(self.id, allow_net, any_public)
        return self._info

    def explain(self, path: str) -> PermissionExplanation:
        return self._client.explain_permission(self.id, path)

    def changes(self) -> ChangeSet:
        return self._client.list_changes(self.id)

    def commit(self) -> CommitResult:
        return self._client.commit_changes(self.id)

    def discard(self) -> int:
        return self._client.discard_changes(self.id)

    def audit(self, **kwargs: Any) -> Any:
        return self._client.get_audit_log(sandbox_id=self.id, **kwargs)

    # ---- checkpoints of the pending changes (docs/CHECKPOINTS.md; sync_mode MANUAL, ON_STOP or NEVER) ----
    def checkpoint(self, name: str) -> Checkpoint:
        return self._client.create_checkpoint(self.id, name)

    def checkpoints(self) -> List[Checkpoint]:
        return self._client.list_checkpoints(self.id)

    def restore(self, name: str) -> Checkpoint:
        """The workspace becomes what it was at checkpoint `name` (refused while a command runs)."""
        return self._client.restore_checkpoint(self.id, name)

    def diff(self, name: str, against: Optional[str] = None) -> List[FileChange]:
        return self._client.diff_checkpoint(self.id, name, against)

    def delete_checkpoint(self, name: str) -> None:
        self._client.delete_checkpoint(self.id, name)

    # ---- accesses to `ask` paths (docs/PERMISSIONS.md) ----
    def approvals(self) -> List[AccessRequest]:
        return self._client.list_approvals(self.id)

    def allow(self, approval_id: str, decision: "Decision | str" = Decision.ALLOW, remember: str = "once",
              priority: Optional[int] = None) -> AccessRequest:
        return self._client.answer_approval(self.id, approval_id, decision, remember, priority)

    def deny(self, approval_id: str, remember: str = "once", priority: Optional[int] = None) -> AccessRequest:
        return self._client.answer_approval(self.id, approval_id, Decision.DENY, remember, priority)

    def on_access_request(self, callback: Optional[AccessCallback]) -> None:
        """Answers every access to an `ask` path with `callback(request)`, on a background thread,
        one at a time: return an AccessDecision (decision + remember), a Decision, True (allow) or
        False/None (deny); a callback that raises denies. None stops answering. The watcher stops
        with the sandbox (destroy)."""
        check_callback(callback)
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if callback is not None:
            self._watcher = AccessWatcher(self._client, self.id, callback)

    def __repr__(self) -> str:
        return f"Sandbox(id={self.id!r}, codebase_id={self.codebase_id!r}, status={self.status.value!r})"


def _cleanup(cl: SandboxClient, sandbox_id: Optional[str], codebase_id: Optional[str]) -> None:
    """Best effort, never masking the error being raised."""
    if sandbox_id:
        try:
            cl.destroy_sandbox(sandbox_id)
        except Exception:  # noqa: BLE001 - the original error is what the caller must see
            pass
    if codebase_id:
        try:
            cl.delete_codebase(codebase_id)
        except Exception:  # noqa: BLE001
            pass


def _upload_all(cl: SandboxClient, codebase_id: str, walk: Any, workers: int,
                on_progress: Optional[h.ProgressCallback], show_progress: Optional[bool]) -> UploadReport:
    """Runs the asyncio upload engine (async_sandbox._upload_all) on a private event loop in a helper
    thread. Why not a thread pool of sync calls: grpc's sync client-streaming call spends a thread per
    call consuming the request iterator, which made 16k small files 40% slower than grpc.aio (see
    docs/SDK.md). The thread also keeps this usable from code that already runs an event loop.
    `on_progress` is called from that helper thread."""
    from .async_client import AsyncSandboxClient
    from .async_sandbox import _upload_all as upload_async

    stop = threading.Event()
    box: Dict[str, Any] = {}

    def runner() -> None:
        async def go() -> UploadReport:
            ac = AsyncSandboxClient(endpoint=cl.endpoint, secure=cl.secure, token=cl._token, timeout=cl.timeout,
                                    options=cl._options)
            try:
                return await upload_async(ac, codebase_id, walk, workers, on_progress, show_progress, stop)
            finally:
                await ac.close()
        try:
            box["report"] = asyncio.run(go())
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            box["error"] = e

    t = threading.Thread(target=runner, name="agentfense-upload", daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(0.2)  # short joins keep Ctrl-C deliverable to this thread
    except BaseException:
        stop.set()  # the workers stop before their next file; then the caller cleans up
        t.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["report"]
