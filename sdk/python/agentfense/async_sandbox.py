"""AsyncSandbox and AsyncSessionWrapper: the asyncio twins of Sandbox and SessionWrapper, with the
same method names (awaited). `async with await AsyncSandbox.from_local(...)` and
`async with sandbox.session() as s` both clean up, also on errors."""
from __future__ import annotations

import asyncio
import base64
import os
from typing import Any, Iterable, List, Mapping, Optional

from . import _high as h
from ._ask import AsyncAccessCallback, AsyncAccessWatcher, check_callback
from .async_client import AsyncExecStream, AsyncSandboxClient
from . import _common as c
from .exceptions import NotSupportedError, SandboxError, SessionClosedError, UploadError
from .ignore import WalkResult, walk_tree
from .sandbox import Timeout
from .types import (AccessRequest, ChangeSet, Checkpoint, Codebase, CommitResult, Decision, DeltaQuota,
                    ExecResult, FileChange, FileInfo,
                    PermissionExplanation, PermissionLike, PermissionRule, ResourceLimits, RuntimeType,
                    SandboxInfo, SandboxStatus, Session, SessionStatus, SyncMode, UploadReport)


class AsyncSessionWrapper:
    def __init__(self, client: AsyncSandboxClient, session: Optional[Session] = None, sandbox_id: str = "",
                 shell: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> None:
        self._client = client
        self._session = session
        self._sandbox_id = session.sandbox_id if session else sandbox_id
        self._shell = shell
        self._env = env
        self._closed = False

    async def _ensure(self) -> Session:
        if self._closed:
            raise SessionClosedError(self._session.id if self._session else "", "session already closed")
        if self._session is None:
            self._session = await self._client.create_session(self._sandbox_id, self._shell, self._env)
        return self._session

    @property
    def id(self) -> str:
        if self._session is None:
            raise SessionClosedError("", "session not created yet: use `async with` or await exec() first")
        return self._session.id

    @property
    def info(self) -> Optional[Session]:
        return self._session

    async def status(self) -> SessionStatus:
        if self._closed:
            return SessionStatus.CLOSED
        return (await self._client.get_session((await self._ensure()).id)).status

    async def exec(self, command: str, timeout: Timeout = None) -> ExecResult:
        return await self._client.session_exec((await self._ensure()).id, command, timeout)

    async def run(self, command: str, timeout: Timeout = 60, raise_on_error: bool = False) -> ExecResult:
        r = await self.exec(command, timeout)
        return r.raise_on_error() if raise_on_error else r

    async def exec_stream(self, command: str, timeout: Timeout = None, on_stdout: Any = None,
                          on_stderr: Any = None) -> AsyncExecStream:
        s = await self._ensure()
        return self._client.session_exec_stream(s.id, command, timeout, on_stdout, on_stderr)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            await self._client.destroy_session(self._session.id)

    destroy = close

    async def __aenter__(self) -> "AsyncSessionWrapper":
        await self._ensure()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            await self.close()
        except SandboxError:
            if exc_type is None:
                raise


class AsyncSandbox:
    """See Sandbox: same class methods and methods, as coroutines."""

    def __init__(self, client: AsyncSandboxClient, info: SandboxInfo, codebase: Optional[Codebase] = None,
                 owns_client: bool = False, owns_codebase: bool = False,
                 upload_report: Optional[UploadReport] = None) -> None:
        self._client = client
        self._info = info
        self._codebase = codebase
        self._owns_client = owns_client
        self._owns_codebase = owns_codebase
        self._destroyed = False
        self._watcher: Optional[AsyncAccessWatcher] = None
        self.upload_report = upload_report

    @classmethod
    async def from_local(cls, path: "str | os.PathLike[str]", preset: Optional[str] = "agent-safe",
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
                         on_access_request: Optional[AsyncAccessCallback] = None,
                         client: Optional[AsyncSandboxClient] = None) -> "AsyncSandbox":
        check_callback(on_access_request)
        root = h.check_dir(path)
        rules = h.build_rules(preset, permissions)
        if workers < 1:
            raise SandboxError("workers must be >= 1")
        walk = await asyncio.get_running_loop().run_in_executor(
            None, walk_tree, root, list(ignore_patterns or []), use_default_ignores)
        owns_client = client is None
        cl = client or AsyncSandboxClient(endpoint=endpoint, secure=secure, token=token)
        codebase: Optional[Codebase] = None
        info: Optional[SandboxInfo] = None
        try:
            codebase = await cl.create_codebase(codebase_name or h.codebase_name_for(root), owner_id)
            report = await _upload_all(cl, codebase.id, walk, workers, on_progress, show_progress)
            info = await cl.create_sandbox(codebase.id, rules, labels=labels, expires_in=expires_in,
                                           runtime=runtime, image=image, resources=resources,
                                           sync_mode=sync_mode, network=network,
                                           delta_quota=delta_quota, env=env, allow_net=allow_net,
                                           ask_timeout=ask_timeout)
            if auto_start:
                info = await cl.start_sandbox(info.id)
            sb = cls(cl, info, await cl.get_codebase(codebase.id), owns_client, True, report)
            if on_access_request is not None:
                sb.on_access_request(on_access_request)
            return sb
        except BaseException:
            await asyncio.shield(_cleanup(cl, info.id if info else None, codebase.id if codebase else None,
                                          owns_client))
            raise

    @classmethod
    async def from_codebase(cls, codebase_id: str, preset: Optional[str] = "agent-safe",
                            permissions: Optional[Iterable[PermissionLike]] = None,
                            runtime: "RuntimeType | str" = RuntimeType.BWRAP, image: Optional[str] = None,
                            resources: Optional[ResourceLimits] = None, endpoint: Optional[str] = None,
                            secure: bool = False, token: Optional[str] = None,
                            labels: Optional[Mapping[str, str]] = None, expires_in: Timeout = None,
                            auto_start: bool = True, sync_mode: "SyncMode | str | None" = None,
                            network: bool = False, delta_quota: Optional[DeltaQuota] = None,
                            env: Optional[Mapping[str, str]] = None,
                            allow_net: Optional[Iterable[str]] = None, ask_timeout: Timeout = None,
                            on_access_request: Optional[AsyncAccessCallback] = None,
                            client: Optional[AsyncSandboxClient] = None) -> "AsyncSandbox":
        check_callback(on_access_request)
        rules = h.build_rules(preset, permissions)
        owns_client = client is None
        cl = client or AsyncSandboxClient(endpoint=endpoint, secure=secure, token=token)
        info: Optional[SandboxInfo] = None
        try:
            codebase = await cl.get_codebase(codebase_id)
            info = await cl.create_sandbox(codebase_id, rules, labels=labels, expires_in=expires_in,
                                           runtime=runtime, image=image, resources=resources,
                                           sync_mode=sync_mode, network=network,
                                           delta_quota=delta_quota, env=env, allow_net=allow_net,
                                           ask_timeout=ask_timeout)
            if auto_start:
                info = await cl.start_sandbox(info.id)
            sb = cls(cl, info, codebase, owns_client, False)
            if on_access_request is not None:
                sb.on_access_request(on_access_request)
            return sb
        except BaseException:
            await asyncio.shield(_cleanup(cl, info.id if info else None, None, owns_client))
            raise

    @classmethod
    async def connect(cls, sandbox_id: str, endpoint: Optional[str] = None, secure: bool = False,
                      token: Optional[str] = None, client: Optional[AsyncSandboxClient] = None) -> "AsyncSandbox":
        owns_client = client is None
        cl = client or AsyncSandboxClient(endpoint=endpoint, secure=secure, token=token)
        try:
            info = await cl.get_sandbox(sandbox_id)
            return cls(cl, info, await cl.get_codebase(info.codebase_id), owns_client, False)
        except BaseException:
            if owns_client:
                await cl.close()
            raise

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
    def client(self) -> AsyncSandboxClient:
        return self._client

    @property
    def permissions(self) -> List[PermissionRule]:
        return list(self._info.permissions)

    async def start(self) -> "AsyncSandbox":
        if self._info.status != SandboxStatus.RUNNING:
            self._info = await self._client.start_sandbox(self.id)
        return self

    async def stop(self) -> "AsyncSandbox":
        if self._info.status == SandboxStatus.RUNNING:
            self._info = await self._client.stop_sandbox(self.id)
        return self

    async def refresh(self) -> "AsyncSandbox":
        self._info = await self._client.get_sandbox(self.id)
        return self

    async def destroy(self, delete_codebase: Optional[bool] = None) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        if self._watcher is not None:
            await self._watcher.stop()
            self._watcher = None
        try:
            await self._client.destroy_sandbox(self.id)
            if delete_codebase if delete_codebase is not None else self._owns_codebase:
                await self._client.delete_codebase(self.codebase_id)
        finally:
            if self._owns_client:
                await self._client.close()

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            await asyncio.shield(self.destroy())
        except SandboxError:
            if exc_type is None:
                raise

    async def run(self, command: str, timeout: Timeout = 60, env: Optional[Mapping[str, str]] = None,
                  workdir: Optional[str] = None, raise_on_error: bool = False) -> ExecResult:
        r = await self._client.exec(self.id, command, env=env, workdir=workdir, timeout=timeout)
        return r.raise_on_error() if raise_on_error else r

    async def exec(self, command: str, stdin: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                   workdir: Optional[str] = None, timeout: Timeout = None) -> ExecResult:
        return await self._client.exec(self.id, command, stdin=stdin, env=env, workdir=workdir, timeout=timeout)

    def exec_stream(self, command: str, stdin: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                    workdir: Optional[str] = None, timeout: Timeout = None, on_stdout: Any = None,
                    on_stderr: Any = None) -> AsyncExecStream:
        return self._client.exec_stream(self.id, command, stdin=stdin, env=env, workdir=workdir,
                                        timeout=timeout, on_stdout=on_stdout, on_stderr=on_stderr)

    def session(self, shell: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> AsyncSessionWrapper:
        return AsyncSessionWrapper(self._client, sandbox_id=self.id, shell=shell, env=env)

    async def read_file_bytes(self, path: str, timeout: Timeout = 60) -> bytes:
        cmd = h.read_cmd(path)
        stream = self.exec_stream(cmd, timeout=timeout)
        parts = [ch.data async for ch in stream if ch.is_stdout]
        res = await stream.result()
        if res.exit_code != 0:
            raise h.file_error("read", path, res.exit_code, res.stderr, cmd)
        return b"".join(parts)

    async def read_file(self, path: str, timeout: Timeout = 60) -> str:
        return (await self.read_file_bytes(path, timeout)).decode("utf-8", errors="replace")

    async def write_file(self, path: str, content: "str | bytes", timeout: Timeout = 60) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        cmd = h.write_cmd(path)
        r = await self.exec(cmd, stdin=base64.b64encode(data).decode("ascii"), timeout=timeout)
        if r.exit_code != 0:
            raise h.file_error("write", path, r.exit_code, r.stderr, cmd)

    async def list_files(self, path: str = ".", recursive: bool = False, timeout: Timeout = 60) -> List[FileInfo]:
        cmd = h.list_cmd(path, recursive)
        r = await self.exec(cmd, timeout=timeout)
        if r.exit_code != 0:
            raise h.file_error("list", path, r.exit_code, r.stderr, cmd)
        return h.parse_listing(path, r)

    async def update_permissions(self, permissions: Iterable[PermissionLike]) -> SandboxInfo:
        self._info = await self._client.update_permissions(self.id, permissions)
        return self._info

    async def update_egress(self, allow_net: Optional[Iterable[str]] = None,
                      any_public: bool = False) -> SandboxInfo:
        """Replaces the egress allow-list (docs/NETWORK.md); live before this returns."""
        self._info = await self._client.update_egress(self.id, allow_net, any_public)
        return self._info

    async def explain(self, path: str) -> PermissionExplanation:
        return await self._client.explain_permission(self.id, path)

    async def changes(self) -> ChangeSet:
        return await self._client.list_changes(self.id)

    async def commit(self) -> CommitResult:
        return await self._client.commit_changes(self.id)

    async def discard(self) -> int:
        return await self._client.discard_changes(self.id)

    async def audit(self, **kwargs: Any) -> Any:
        return await self._client.get_audit_log(sandbox_id=self.id, **kwargs)

    # ---- checkpoints of the pending changes (docs/CHECKPOINTS.md) ----
    async def checkpoint(self, name: str) -> Checkpoint:
        return await self._client.create_checkpoint(self.id, name)

    async def checkpoints(self) -> List[Checkpoint]:
        return await self._client.list_checkpoints(self.id)

    async def restore(self, name: str) -> Checkpoint:
        return await self._client.restore_checkpoint(self.id, name)

    async def diff(self, name: str, against: Optional[str] = None) -> List[FileChange]:
        return await self._client.diff_checkpoint(self.id, name, against)

    async def delete_checkpoint(self, name: str) -> None:
        await self._client.delete_checkpoint(self.id, name)

    # ---- accesses to `ask` paths (docs/PERMISSIONS.md) ----
    async def approvals(self) -> List[AccessRequest]:
        return await self._client.list_approvals(self.id)

    async def allow(self, approval_id: str, decision: "Decision | str" = Decision.ALLOW,
                    remember: str = "once", priority: Optional[int] = None) -> AccessRequest:
        return await self._client.answer_approval(self.id, approval_id, decision, remember, priority)

    async def deny(self, approval_id: str, remember: str = "once",
                   priority: Optional[int] = None) -> AccessRequest:
        return await self._client.answer_approval(self.id, approval_id, Decision.DENY, remember, priority)

    def on_access_request(self, callback: Optional[AsyncAccessCallback]) -> None:
        """See Sandbox.on_access_request; here a task on the running loop, and `callback` may be a
        coroutine function. Not a coroutine itself (call it from inside the loop)."""
        check_callback(callback)
        if self._watcher is not None:
            old = self._watcher
            asyncio.get_running_loop().create_task(old.stop())
            self._watcher = None
        if callback is not None:
            self._watcher = AsyncAccessWatcher(self._client, self.id, callback)

    def __repr__(self) -> str:
        return f"AsyncSandbox(id={self.id!r}, codebase_id={self.codebase_id!r}, status={self.status.value!r})"


async def _cleanup(cl: AsyncSandboxClient, sandbox_id: Optional[str], codebase_id: Optional[str],
                   close: bool) -> None:
    if sandbox_id:
        try:
            await cl.destroy_sandbox(sandbox_id)
        except Exception:  # noqa: BLE001 - the original error is what the caller must see
            pass
    if codebase_id:
        try:
            await cl.delete_codebase(codebase_id)
        except Exception:  # noqa: BLE001
            pass
    if close:
        await cl.close()


async def _upload_all(cl: AsyncSandboxClient, codebase_id: str, walk: WalkResult, workers: int,
                      on_progress: Optional[h.ProgressCallback], show_progress: Optional[bool],
                      stop: Optional[Any] = None) -> UploadReport:
    """Uploads walk.files as one UploadArchive stream (the tar is built while it is sent, never
    whole in memory); against a server without that extension, with `workers` concurrent
    UploadFiles streams on one channel. `stop`: a threading.Event the sync Sandbox sets to abandon
    the upload (e.g. on Ctrl-C)."""
    report = UploadReport(skipped=dict(walk.skipped), ignored=walk.ignored)
    total_files, total_bytes = len(walk.files), walk.total_bytes
    notify, bar = h.make_progress(on_progress, show_progress, total_files, total_bytes)

    def done(f: Any) -> None:
        report.uploaded.append(f.rel)
        report.bytes_uploaded += f.size
        notify(h.UploadProgress(len(report.uploaded), total_files, report.bytes_uploaded, total_bytes, f.rel))

    def skip(f: Any, why: str) -> None:
        report.skipped[f.rel] = why

    try:
        stream = c.ArchiveStream(codebase_id, walk.files, done, skip, stop)
        try:
            await cl.upload_archive(codebase_id, stream, size_hint=total_bytes)
        except NotSupportedError:
            # An older server: nothing was stored; start over with one stream per file.
            report.uploaded, report.bytes_uploaded, report.method = [], 0, "files"
            await _upload_files(cl, codebase_id, walk, workers, done, skip, stop)
        except SandboxError as e:
            if stop is not None and stop.is_set():
                raise asyncio.CancelledError() from None
            if stream.error is not None:  # the local side failed first; the server only saw a cut
                raise UploadError(f"from_local: upload failed: {stream.error}", report) from stream.error
            raise e
    except BaseException as e:
        if isinstance(e, SandboxError):
            e.upload_report = report  # type: ignore[attr-defined]
        raise
    finally:
        if bar is not None:
            bar.close()
    report.uploaded.sort()
    return report


async def _upload_files(cl: AsyncSandboxClient, codebase_id: str, walk: WalkResult, workers: int,
                        done: Any, skip: Any, stop: Optional[Any]) -> None:
    queue = list(reversed(walk.files))

    async def worker() -> None:
        while queue:
            if stop is not None and stop.is_set():
                raise asyncio.CancelledError()
            f = queue.pop()
            try:
                await cl.upload_local_file(codebase_id, f.rel, f.abs_path, mode=f.mode)
            except OSError as e:
                if isinstance(e, SandboxError):
                    raise
                skip(f, f"vanished or unreadable during upload: {e.strerror or e}")
            else:
                done(f)

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(workers, max(1, len(queue))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
