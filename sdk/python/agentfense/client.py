"""SandboxClient: the synchronous low-level client, one method per RPC of sandbox.v1.

Thread-safe (one gRPC channel, usable from many threads: from_local uploads in parallel through it).
Every gRPC error leaves as an SDK exception from the table in exceptions.py; every call has a client
deadline, so a dead server never hangs the caller.
"""
from __future__ import annotations

import os
from datetime import datetime
from typing import (TYPE_CHECKING, Any, Callable, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, TypeVar)

import grpc

from . import _common as c
from . import _convert as cv
from ._proto import codebase_pb2, codebase_pb2_grpc, sandbox_pb2, sandbox_pb2_grpc
from .exceptions import from_grpc_error
from .types import (AccessDecision, AccessRequest, ArchiveResult, AuditPage, ChangeSet, Checkpoint, Codebase,
                    CommitResult, Decision, DeltaQuota, ExecResult, FileChange, FileInfo,
                    OutputChunk, PermissionExplanation, PermissionLike, ResourceLimits, RuntimeType,
                    SandboxInfo, Session, SyncMode, UploadResult)

if TYPE_CHECKING:
    from .sandbox import SessionWrapper

T = TypeVar("T")


class ExecStream:
    """Iterator over a running command's output as typed chunks (stdout and stderr kept apart).

    `exit_code` is set once the stream is exhausted (None if the server sent none). `result()`
    drains the rest and returns an ExecResult; `cancel()` stops the command's stream.
    """

    def __init__(self, call: Any, collector: c.OutputCollector, subject: str, what: str,
                 timeout: Optional[float]) -> None:
        self._call = call
        self._col = collector
        self._subject = subject
        self._what = what
        self._timeout = timeout
        self._done = False

    @property
    def exit_code(self) -> Optional[int]:
        return self._col.exit_code

    @property
    def command(self) -> str:
        return self._col.command

    def __iter__(self) -> Iterator[OutputChunk]:
        try:
            for msg in self._call:
                chunk = self._col.feed(msg)
                if chunk is not None:
                    yield chunk
        except grpc.RpcError as e:
            raise from_grpc_error(e, self._subject, self._what, "exec_stream", self._timeout) from None
        finally:
            self._done = True

    def result(self) -> ExecResult:
        if not self._done:
            for _ in self:
                pass
        return self._col.result()

    def cancel(self) -> None:
        self._call.cancel()

    def __enter__(self) -> "ExecStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._done:
            self.cancel()


class ApprovalStream:
    """Iterator over a sandbox's access requests: the pending ones, then each new one and each
    resolution (`state`), until the sandbox stops or `cancel()` is called."""

    def __init__(self, call: Any, sandbox_id: str) -> None:
        self._call = call
        self._sandbox_id = sandbox_id

    def __iter__(self) -> Iterator[AccessRequest]:
        try:
            for msg in self._call:
                yield cv.approval_from_pb(msg)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            raise from_grpc_error(e, "sandbox", self._sandbox_id, "watch_approvals", None) from None

    def cancel(self) -> None:
        self._call.cancel()

    def __enter__(self) -> "ApprovalStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel()


class SandboxClient:
    """Low-level synchronous client.

    endpoint: "host:port"; default $AGENTFENSE_ENDPOINT, else localhost:9000.
    token: bearer token; default $AGENTFENSE_TOKEN. secure: TLS with the system roots.
    timeout: client deadline (seconds) of every call that is not a command.
    """

    def __init__(self, endpoint: Optional[str] = None, secure: bool = False, token: Optional[str] = None,
                 timeout: float = c.DEFAULT_TIMEOUT,
                 options: Optional[Sequence[Tuple[str, Any]]] = None) -> None:
        self.endpoint = c.resolve_endpoint(endpoint)
        self._token = c.resolve_token(token)
        self.timeout = timeout
        self.secure = secure
        self._options = list(options or [])
        opts = c.channel_options(options)
        if secure:
            self._channel = grpc.secure_channel(self.endpoint, grpc.ssl_channel_credentials(), options=opts)
        else:
            self._channel = grpc.insecure_channel(self.endpoint, options=opts)
        self._sb = sandbox_pb2_grpc.SandboxServiceStub(self._channel)
        self._cb = codebase_pb2_grpc.CodebaseServiceStub(self._channel)
        self._md = c.metadata(self._token)
        self._exec_call = self._channel.unary_unary(
            c.EXEC_METHOD, request_serializer=sandbox_pb2.ExecRequest.SerializeToString,
            response_deserializer=c.exec_result_from_bytes)
        self._session_exec_call = self._channel.unary_unary(
            c.SESSION_EXEC_METHOD, request_serializer=sandbox_pb2.SessionExecRequest.SerializeToString,
            response_deserializer=c.exec_result_from_bytes)

    # ---- plumbing ----
    def _unary(self, fn: Callable[..., T], req: Any, subject: Optional[str], what: str,
               timeout: Optional[float] = None, name: str = "", md: Any = None) -> T:
        try:
            return fn(req, timeout=timeout if timeout is not None else self.timeout,
                      metadata=md if md is not None else self._md)
        except grpc.RpcError as e:
            raise from_grpc_error(e, subject, what, name, timeout if timeout is not None else self.timeout) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "SandboxClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- codebases ----
    def create_codebase(self, name: str, owner_id: str = "default") -> Codebase:
        req = codebase_pb2.CreateCodebaseRequest(name=c.need_id("name", name), owner_id=c.need_id("owner_id", owner_id))
        return cv.codebase_from_pb(self._unary(self._cb.CreateCodebase, req, "codebase", name, name="create_codebase"))

    def get_codebase(self, codebase_id: str) -> Codebase:
        req = codebase_pb2.GetCodebaseRequest(codebase_id=c.need_id("codebase_id", codebase_id))
        return cv.codebase_from_pb(self._unary(self._cb.GetCodebase, req, "codebase", codebase_id, name="get_codebase"))

    def list_codebases(self, owner_id: Optional[str] = None, page_size: int = 0) -> List[Codebase]:
        """Every codebase (of `owner_id` if given); follows pagination."""
        out: List[Codebase] = []
        token = ""
        while True:
            req = codebase_pb2.ListCodebasesRequest(owner_id=owner_id or "", page_size=page_size, page_token=token)
            resp = self._unary(self._cb.ListCodebases, req, None, "", name="list_codebases")
            out.extend(cv.codebase_from_pb(x) for x in resp.codebases)
            token = resp.next_page_token
            if not token:
                return out

    def delete_codebase(self, codebase_id: str) -> None:
        req = codebase_pb2.DeleteCodebaseRequest(codebase_id=c.need_id("codebase_id", codebase_id))
        self._unary(self._cb.DeleteCodebase, req, "codebase", codebase_id,
                    timeout=max(self.timeout, 300.0), name="delete_codebase")  # big trees take a while

    def upload_file(self, codebase_id: str, file_path: str, content: c.Content,
                    mode: Optional[int] = None) -> UploadResult:
        """Uploads one file (bytes, or str encoded as UTF-8). `mode`: permission bits to keep (e.g. 0o755)."""
        data = c.as_bytes(content)
        chunks = c.upload_chunks(c.need_id("codebase_id", codebase_id), c.need_id("file_path", file_path), data,
                                 mode=mode)
        return self._upload(chunks, codebase_id, file_path, len(data))

    def upload_local_file(self, codebase_id: str, file_path: str, local_path: str,
                          mode: Optional[int] = None) -> UploadResult:
        """Streams a file from disk (never whole in memory); keeps its mode unless `mode` is given."""
        c.need_id("codebase_id", codebase_id)
        c.need_id("file_path", file_path)
        fobj = open(local_path, "rb")  # builtin OSError here: the local side is the problem
        st = os.fstat(fobj.fileno())
        m = mode if mode is not None else (st.st_mode & 0o777)
        chunks = c.upload_chunks(codebase_id, file_path, None, fobj, st.st_size, mode=m)
        return self._upload(chunks, codebase_id, file_path, st.st_size)

    def _upload(self, chunks: Iterator[Any], codebase_id: str, file_path: str,
                size: int) -> UploadResult:
        md = c.metadata(self._token)
        # Deadline grows with the size: a slow link must not cut a big upload at the default.
        deadline = self.timeout + size / (1024 * 1024)
        try:
            resp = self._cb.UploadFiles(chunks, timeout=deadline, metadata=md)
        except grpc.RpcError as e:
            subject = "codebase" if e.code() == grpc.StatusCode.NOT_FOUND else None
            raise from_grpc_error(e, subject, codebase_id, f"upload_file {file_path}") from None
        return cv.upload_from_pb(resp)

    def upload_archive(self, codebase_id: str, chunks: Iterable["codebase_pb2.ArchiveChunk"],
                       size_hint: int = 0) -> ArchiveResult:
        """Streams UploadArchive messages (metadata first, then tar bytes; see _common.ArchiveStream):
        a whole tree in one stream, extracted by the server as it arrives and published when complete.
        `size_hint` (bytes) only stretches the client deadline."""
        c.need_id("codebase_id", codebase_id)
        try:
            resp = self._cb.UploadArchive(iter(chunks), timeout=self.timeout + size_hint / (1024 * 1024),
                                          metadata=c.metadata(self._token))
        except grpc.RpcError as e:
            subject = "codebase" if e.code() == grpc.StatusCode.NOT_FOUND else None
            raise from_grpc_error(e, subject, codebase_id, "upload_archive") from None
        return cv.archive_from_pb(resp)

    def download_file(self, codebase_id: str, file_path: str) -> bytes:
        req = codebase_pb2.DownloadFileRequest(codebase_id=c.need_id("codebase_id", codebase_id),
                                               file_path=c.need_id("file_path", file_path))
        try:
            return b"".join(ch.data for ch in self._cb.DownloadFile(req, timeout=self.timeout * 4, metadata=self._md))
        except grpc.RpcError as e:
            raise from_grpc_error(e, "file", file_path, "download_file") from None

    def list_files(self, codebase_id: str, path: str = "", recursive: bool = False) -> List[FileInfo]:
        req = codebase_pb2.ListFilesRequest(codebase_id=c.need_id("codebase_id", codebase_id), path=path,
                                            recursive=recursive)
        resp = self._unary(self._cb.ListFiles, req, "file" if path else "codebase", path or codebase_id,
                           name="list_files")
        return [cv.file_info_from_pb(f) for f in resp.files]

    def delete_file(self, codebase_id: str, file_path: str) -> None:
        req = codebase_pb2.DeleteFileRequest(codebase_id=c.need_id("codebase_id", codebase_id),
                                             file_path=c.need_id("file_path", file_path))
        self._unary(self._cb.DeleteFile, req, "file", file_path, name="delete_file")

    # ---- sandboxes ----
    def create_sandbox(self, codebase_id: str, permissions: Optional[Iterable[PermissionLike]] = None,
                       labels: Optional[Mapping[str, str]] = None, expires_in: Optional[float] = None,
                       runtime: "RuntimeType | str | None" = None, image: Optional[str] = None,
                       resources: Optional[ResourceLimits] = None, sync_mode: "SyncMode | str | None" = None,
                       network: bool = False, delta_quota: Optional[DeltaQuota] = None,
                       env: Optional[Mapping[str, str]] = None,
                       allow_net: Optional[Iterable[str]] = None,
                       ask_timeout: Optional[float] = None) -> SandboxInfo:
        """A PENDING sandbox over the codebase. `expires_in`: seconds (or timedelta).
        `ask_timeout`: how long an access to an `ask` path waits for a decision (default 60 s).

        Network (docs/NETWORK.md): `network=True` reaches every public destination; `allow_net`
        (e.g. ["pypi.org", "*.pythonhosted.org:443"]) only those, and implies network; both: every
        public destination plus the listed ones (private ranges included).
        """
        req = c.create_sandbox_request(codebase_id, permissions, labels, expires_in, runtime, image, resources,
                                       sync_mode, network, delta_quota, env, allow_net, ask_timeout)
        return cv.sandbox_from_pb(self._unary(self._sb.CreateSandbox, req, "codebase", codebase_id,
                                              name="create_sandbox"))

    def get_sandbox(self, sandbox_id: str) -> SandboxInfo:
        req = sandbox_pb2.GetSandboxRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        return cv.sandbox_from_pb(self._unary(self._sb.GetSandbox, req, "sandbox", sandbox_id, name="get_sandbox"))

    def list_sandboxes(self, codebase_id: Optional[str] = None, page_size: int = 0) -> List[SandboxInfo]:
        out: List[SandboxInfo] = []
        token = ""
        while True:
            req = sandbox_pb2.ListSandboxesRequest(codebase_id=codebase_id or "", page_size=page_size,
                                                   page_token=token)
            resp = self._unary(self._sb.ListSandboxes, req, None, "", name="list_sandboxes")
            out.extend(cv.sandbox_from_pb(s) for s in resp.sandboxes)
            token = resp.next_page_token
            if not token:
                return out

    def start_sandbox(self, sandbox_id: str) -> SandboxInfo:
        req = sandbox_pb2.StartSandboxRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        # Starting mounts a filesystem and may pull a container image: allow longer than a plain call.
        return cv.sandbox_from_pb(self._unary(self._sb.StartSandbox, req, "sandbox", sandbox_id,
                                              timeout=max(self.timeout, 120.0), name="start_sandbox"))

    def stop_sandbox(self, sandbox_id: str) -> SandboxInfo:
        req = sandbox_pb2.StopSandboxRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        return cv.sandbox_from_pb(self._unary(self._sb.StopSandbox, req, "sandbox", sandbox_id,
                                              timeout=max(self.timeout, 60.0), name="stop_sandbox"))

    def destroy_sandbox(self, sandbox_id: str) -> None:
        req = sandbox_pb2.DestroySandboxRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        self._unary(self._sb.DestroySandbox, req, "sandbox", sandbox_id, timeout=max(self.timeout, 60.0),
                    name="destroy_sandbox")

    # ---- exec ----
    def exec(self, sandbox_id: str, command: str, stdin: Optional[str] = None,
             env: Optional[Mapping[str, str]] = None, workdir: Optional[str] = None,
             timeout: Optional[float] = None) -> ExecResult:
        """Runs `/bin/sh -c command`. A non-zero exit is a result; outliving `timeout` raises
        CommandTimeoutError; a stopped sandbox raises SandboxNotRunningError."""
        req = c.exec_request(sandbox_id, command, stdin, env, workdir, timeout)
        try:
            resp = self._exec_call(req, timeout=c.exec_deadline(timeout), metadata=self._md)
        except grpc.RpcError as e:
            err = from_grpc_error(e, "exec", sandbox_id if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED
                                  else command, "exec", timeout)
            raise err from None
        return cv.exec_from_pb(resp, command)

    def exec_stream(self, sandbox_id: str, command: str, stdin: Optional[str] = None,
                    env: Optional[Mapping[str, str]] = None, workdir: Optional[str] = None,
                    timeout: Optional[float] = None, on_stdout: Optional[c.OutputCallback] = None,
                    on_stderr: Optional[c.OutputCallback] = None) -> ExecStream:
        req = c.exec_request(sandbox_id, command, stdin, env, workdir, timeout)
        call = self._sb.ExecStream(req, timeout=c.exec_deadline(timeout), metadata=self._md)
        return ExecStream(call, c.OutputCollector(command, on_stdout, on_stderr), "exec", sandbox_id, timeout)

    # ---- sessions ----
    def create_session(self, sandbox_id: str, shell: Optional[str] = None,
                       env: Optional[Mapping[str, str]] = None) -> Session:
        req = sandbox_pb2.CreateSessionRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id), shell=shell or "",
                                               env=cv.str_map("env", env))
        return cv.session_from_pb(self._unary(self._sb.CreateSession, req, "exec", sandbox_id, name="create_session"))

    def session(self, sandbox_id: str, shell: Optional[str] = None,
                env: Optional[Mapping[str, str]] = None) -> "SessionWrapper":
        """A new session as a context manager that destroys it on exit."""
        from .sandbox import SessionWrapper

        return SessionWrapper(self, self.create_session(sandbox_id, shell, env))

    def get_session(self, session_id: str) -> Session:
        req = sandbox_pb2.GetSessionRequest(session_id=c.need_id("session_id", session_id))
        return cv.session_from_pb(self._unary(self._sb.GetSession, req, "session", session_id, name="get_session"))

    def list_sessions(self, sandbox_id: str) -> List[Session]:
        req = sandbox_pb2.ListSessionsRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        resp = self._unary(self._sb.ListSessions, req, "sandbox", sandbox_id, name="list_sessions")
        return [cv.session_from_pb(s) for s in resp.sessions]

    def destroy_session(self, session_id: str) -> None:
        req = sandbox_pb2.DestroySessionRequest(session_id=c.need_id("session_id", session_id))
        self._unary(self._sb.DestroySession, req, "session", session_id, name="destroy_session")

    def session_exec(self, session_id: str, command: str, timeout: Optional[float] = None) -> ExecResult:
        req = c.session_exec_request(session_id, command, timeout)
        try:
            resp = self._session_exec_call(req, timeout=c.exec_deadline(timeout), metadata=self._md)
        except grpc.RpcError as e:
            what = command if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED else session_id
            raise from_grpc_error(e, "session_exec", what, "session_exec", timeout) from None
        return cv.exec_from_pb(resp, command)

    def session_exec_stream(self, session_id: str, command: str, timeout: Optional[float] = None,
                            on_stdout: Optional[c.OutputCallback] = None,
                            on_stderr: Optional[c.OutputCallback] = None) -> ExecStream:
        req = c.session_exec_request(session_id, command, timeout)
        call = self._sb.SessionExecStream(req, timeout=c.exec_deadline(timeout), metadata=self._md)
        return ExecStream(call, c.OutputCollector(command, on_stdout, on_stderr), "session_exec", session_id,
                          timeout)

    # ---- AgentFense extensions ----
    def update_permissions(self, sandbox_id: str, permissions: Iterable[PermissionLike]) -> SandboxInfo:
        """Replaces the sandbox's rules; on a running sandbox they apply before this returns."""
        req = sandbox_pb2.UpdatePermissionsRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id),
                                                   permissions=cv.rules_to_pb(permissions))
        return cv.sandbox_from_pb(self._unary(self._sb.UpdatePermissions, req, "sandbox", sandbox_id,
                                              name="update_permissions"))

    def update_egress(self, sandbox_id: str, allow_net: Optional[Iterable[str]] = None,
                      any_public: bool = False) -> SandboxInfo:
        """Replaces the egress allow-list; on a running sandbox new connections follow it (and open
        ones it no longer allows are closed) before this returns."""
        req = c.update_egress_request(sandbox_id, allow_net, any_public)
        return cv.sandbox_from_pb(self._unary(self._sb.UpdateEgress, req, "sandbox", sandbox_id,
                                              name="update_egress"))

    def explain_permission(self, sandbox_id: str, path: str) -> PermissionExplanation:
        req = sandbox_pb2.ExplainPermissionRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id),
                                                   path=c.need_id("path", path))
        return cv.explain_from_pb(self._unary(self._sb.ExplainPermission, req, "sandbox", sandbox_id,
                                              name="explain_permission"))

    explain = explain_permission

    def list_changes(self, sandbox_id: str) -> ChangeSet:
        req = sandbox_pb2.ListChangesRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        return cv.changes_from_pb(self._unary(self._sb.ListChanges, req, "sandbox", sandbox_id, name="list_changes"))

    def commit_changes(self, sandbox_id: str) -> CommitResult:
        req = sandbox_pb2.CommitChangesRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        return cv.commit_from_pb(self._unary(self._sb.CommitChanges, req, "sandbox", sandbox_id,
                                             timeout=max(self.timeout, 120.0), name="commit_changes"))

    def discard_changes(self, sandbox_id: str) -> int:
        req = sandbox_pb2.DiscardChangesRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        return self._unary(self._sb.DiscardChanges, req, "sandbox", sandbox_id, name="discard_changes").discarded

    def get_audit_log(self, sandbox_id: Optional[str] = None, kind: Optional[str] = None,
                      path_prefix: Optional[str] = None, since: Optional[datetime] = None,
                      until: Optional[datetime] = None, page_size: int = 0,
                      page_token: Optional[str] = None) -> AuditPage:
        req = c.audit_request(sandbox_id, kind, path_prefix, since, until, page_size, page_token)
        resp = self._unary(self._sb.GetAuditLog, req, "sandbox" if sandbox_id else None, sandbox_id or "",
                           name="get_audit_log")
        return AuditPage(events=[cv.audit_from_pb(e) for e in resp.events], next_page_token=resp.next_page_token)

    # ---- checkpoints (docs/CHECKPOINTS.md) ----
    def create_checkpoint(self, sandbox_id: str, name: str) -> Checkpoint:
        req = c.checkpoint_request(sandbox_pb2.CreateCheckpointRequest, sandbox_id, name)
        return cv.checkpoint_from_pb(self._unary(self._sb.CreateCheckpoint, req, "sandbox", sandbox_id,
                                                 timeout=max(self.timeout, 120.0), name="create_checkpoint"))

    def list_checkpoints(self, sandbox_id: str) -> List[Checkpoint]:
        req = sandbox_pb2.ListCheckpointsRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        resp = self._unary(self._sb.ListCheckpoints, req, "sandbox", sandbox_id, name="list_checkpoints")
        return [cv.checkpoint_from_pb(x) for x in resp.checkpoints]

    def restore_checkpoint(self, sandbox_id: str, name: str) -> Checkpoint:
        req = c.checkpoint_request(sandbox_pb2.RestoreCheckpointRequest, sandbox_id, name)
        return cv.checkpoint_from_pb(self._unary(self._sb.RestoreCheckpoint, req, "sandbox", sandbox_id,
                                                 timeout=max(self.timeout, 120.0), name="restore_checkpoint"))

    def diff_checkpoint(self, sandbox_id: str, name: str, against: Optional[str] = None) -> List[FileChange]:
        """What changed from checkpoint `name` to checkpoint `against` (None: the workspace now)."""
        req = c.checkpoint_request(sandbox_pb2.DiffCheckpointRequest, sandbox_id, name)
        req.against = against or ""
        resp = self._unary(self._sb.DiffCheckpoint, req, "sandbox", sandbox_id, name="diff_checkpoint")
        return [cv.change_from_pb(x) for x in resp.changes]

    def delete_checkpoint(self, sandbox_id: str, name: str) -> None:
        req = c.checkpoint_request(sandbox_pb2.DeleteCheckpointRequest, sandbox_id, name)
        self._unary(self._sb.DeleteCheckpoint, req, "sandbox", sandbox_id, name="delete_checkpoint")

    # ---- approvals of `ask` paths (docs/PERMISSIONS.md) ----
    def list_approvals(self, sandbox_id: str) -> List[AccessRequest]:
        req = sandbox_pb2.ListApprovalsRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        resp = self._unary(self._sb.ListApprovals, req, "sandbox", sandbox_id, name="list_approvals")
        return [cv.approval_from_pb(a) for a in resp.approvals]

    def answer_approval(self, sandbox_id: str, approval_id: str,
                        decision: "AccessDecision | Decision | str | bool",
                        remember: Optional[str] = None, priority: Optional[int] = None,
                        answered_by: Optional[str] = None) -> AccessRequest:
        """Decides a pending access: `decision` ALLOW (what it needs), ALLOW_READ, ALLOW_WRITE or
        DENY; `remember` "once", "path" or a glob pattern (it then becomes a permission rule)."""
        req = c.answer_request(sandbox_id, approval_id, decision, remember, priority, answered_by)
        return cv.approval_from_pb(self._unary(self._sb.AnswerApproval, req, "sandbox", sandbox_id,
                                               name="answer_approval"))

    def watch_approvals(self, sandbox_id: str) -> ApprovalStream:
        req = sandbox_pb2.WatchApprovalsRequest(sandbox_id=c.need_id("sandbox_id", sandbox_id))
        return ApprovalStream(self._sb.WatchApprovals(req, metadata=self._md), sandbox_id)

