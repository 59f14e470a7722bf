"""The SDK's exception hierarchy and the single table from gRPC status codes to exceptions.

NOT_FOUND and FAILED_PRECONDITION mean different things depending on what a call is about (an unknown
sandbox vs an unknown file; exec in a stopped sandbox vs a closed session), so the table is keyed by
(code, subject) with a per-code fallback. Every exception carries the integer `grpc_code` (None when
it did not come from the server).
"""
from __future__ import annotations

import builtins
from typing import Dict, Optional, Tuple, Type

import grpc


class SandboxError(Exception):
    """Base of every error the SDK raises."""

    def __init__(self, message: str = "", grpc_code: Optional[int] = None,
                 details: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.grpc_code = grpc_code
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConnectionError(SandboxError, builtins.ConnectionError):  # noqa: A001 (reference name)
    """The server cannot be reached (bad endpoint, server down, TLS mismatch)."""


class AuthenticationError(SandboxError):
    """Missing or wrong token (UNAUTHENTICATED)."""


class InvalidConfigurationError(SandboxError, ValueError):
    """Bad input: an unknown preset, a malformed rule, a bad path or id (INVALID_ARGUMENT)."""


class PermissionDeniedError(SandboxError, builtins.PermissionError):
    """The server refused the call (PERMISSION_DENIED)."""


class ResourceLimitExceededError(SandboxError):
    """A quota or size limit was hit (RESOURCE_EXHAUSTED)."""


class NotSupportedError(SandboxError, NotImplementedError):
    """The server does not implement this RPC or the runtime cannot serve it (UNIMPLEMENTED)."""


class ConflictError(SandboxError):
    """The object is in a state that forbids the call (ALREADY_EXISTS, ABORTED, FAILED_PRECONDITION)."""


class SandboxNotFoundError(SandboxError, LookupError):
    def __init__(self, sandbox_id: str = "", message: str = "", grpc_code: Optional[int] = None) -> None:
        super().__init__(message or f"sandbox not found: {sandbox_id}", grpc_code)
        self.sandbox_id = sandbox_id


class SandboxNotRunningError(ConflictError):
    def __init__(self, sandbox_id: str = "", message: str = "", grpc_code: Optional[int] = None,
                 status: Optional[str] = None) -> None:
        super().__init__(message or f"sandbox {sandbox_id} is not running", grpc_code)
        self.sandbox_id = sandbox_id
        self.status = status


class CodebaseNotFoundError(SandboxError, LookupError):
    def __init__(self, codebase_id: str = "", message: str = "", grpc_code: Optional[int] = None) -> None:
        super().__init__(message or f"codebase not found: {codebase_id}", grpc_code)
        self.codebase_id = codebase_id


class FileNotFoundError(SandboxError, builtins.FileNotFoundError):  # noqa: A001 (reference name)
    def __init__(self, path: str = "", message: str = "", grpc_code: Optional[int] = None) -> None:
        SandboxError.__init__(self, message or f"file not found: {path}", grpc_code)
        self.path = path


class SessionNotFoundError(SandboxError, LookupError):
    def __init__(self, session_id: str = "", message: str = "", grpc_code: Optional[int] = None) -> None:
        super().__init__(message or f"session not found: {session_id}", grpc_code)
        self.session_id = session_id


class SessionClosedError(ConflictError):
    def __init__(self, session_id: str = "", message: str = "", grpc_code: Optional[int] = None) -> None:
        super().__init__(message or f"session {session_id} is closed", grpc_code)
        self.session_id = session_id


class CommandTimeoutError(SandboxError, builtins.TimeoutError):
    def __init__(self, command: str = "", timeout: Optional[float] = None, message: str = "",
                 grpc_code: Optional[int] = None, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message or f"command timed out after {timeout}s: {command}", grpc_code)
        self.command = command
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr


class CommandExecutionError(SandboxError):
    """A command exited non-zero and the caller asked for that to raise (raise_on_error=True)."""

    def __init__(self, command: str = "<unknown>", exit_code: int = -1, stdout: str = "",
                 stderr: str = "", message: str = "") -> None:
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        super().__init__(message or f"command failed with exit code {exit_code}: {command}"
                         + (f" ({tail})" if tail else ""))
        self.command = command
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr


class UploadError(SandboxError):
    """Uploading a local tree failed; `report` says what was uploaded and skipped before it failed."""

    def __init__(self, message: str, report: object = None, grpc_code: Optional[int] = None) -> None:
        super().__init__(message, grpc_code)
        self.report = report


C = grpc.StatusCode
# What a call is about; decides NOT_FOUND / FAILED_PRECONDITION / DEADLINE_EXCEEDED.
SUBJECTS = ("sandbox", "exec", "codebase", "file", "session", "session_exec", None)

# (code, subject) -> exception. A subject of None is the fallback for that code.
ERROR_TABLE: Dict[Tuple[grpc.StatusCode, Optional[str]], Type[SandboxError]] = {
    (C.NOT_FOUND, "sandbox"): SandboxNotFoundError,
    (C.NOT_FOUND, "exec"): SandboxNotFoundError,
    (C.NOT_FOUND, "codebase"): CodebaseNotFoundError,
    (C.NOT_FOUND, "file"): FileNotFoundError,
    (C.NOT_FOUND, "session"): SessionNotFoundError,
    (C.NOT_FOUND, "session_exec"): SessionNotFoundError,
    (C.NOT_FOUND, None): SandboxError,
    (C.FAILED_PRECONDITION, "exec"): SandboxNotRunningError,
    (C.FAILED_PRECONDITION, "session_exec"): SessionClosedError,
    (C.FAILED_PRECONDITION, None): ConflictError,
    (C.ALREADY_EXISTS, None): ConflictError,
    (C.ABORTED, None): ConflictError,
    (C.DEADLINE_EXCEEDED, "exec"): CommandTimeoutError,
    (C.DEADLINE_EXCEEDED, "session_exec"): CommandTimeoutError,
    (C.DEADLINE_EXCEEDED, None): ConnectionError,
    (C.INVALID_ARGUMENT, None): InvalidConfigurationError,
    (C.OUT_OF_RANGE, None): InvalidConfigurationError,
    (C.PERMISSION_DENIED, None): PermissionDeniedError,
    (C.UNAUTHENTICATED, None): AuthenticationError,
    (C.RESOURCE_EXHAUSTED, None): ResourceLimitExceededError,
    (C.UNIMPLEMENTED, None): NotSupportedError,
    (C.UNAVAILABLE, None): ConnectionError,
    (C.CANCELLED, None): SandboxError,
    (C.UNKNOWN, None): SandboxError,
    (C.INTERNAL, None): SandboxError,
    (C.DATA_LOSS, None): SandboxError,
}


def from_grpc_error(err: grpc.RpcError, subject: Optional[str] = None, what: str = "",
                    method: str = "", timeout: Optional[float] = None) -> SandboxError:
    """Turns a gRPC error into the SDK exception for (code, subject). `what` names the object
    (an id, a path, a command) for the message and the exception's attribute."""
    code: grpc.StatusCode = err.code() if hasattr(err, "code") else C.UNKNOWN  # type: ignore[assignment]
    details = (err.details() if hasattr(err, "details") else None) or ""
    if not details:
        details = code.name.lower().replace("_", " ") if code is not None else "unknown error"
    cls = ERROR_TABLE.get((code, subject)) or ERROR_TABLE.get((code, None)) or SandboxError
    num = int(code.value[0]) if code is not None else None
    prefix = f"{method}: " if method else ""
    msg = f"{prefix}{details} [{code.name if code else 'UNKNOWN'}]"
    if cls is NotSupportedError:
        msg = (f"{prefix}the server does not implement this call ({details}); it may be an older "
               f"AgentFense server without this extension [UNIMPLEMENTED]")
    elif cls is ConnectionError and code == C.DEADLINE_EXCEEDED:
        msg = (f"{prefix}no answer within the client deadline of {timeout}s; the server may be overloaded "
               f"(SandboxClient(timeout=...) raises it) [DEADLINE_EXCEEDED]")
    elif cls is ConnectionError and code == C.UNAVAILABLE:
        msg = f"{prefix}cannot reach the AgentFense server: {details} [UNAVAILABLE]"
    elif cls is AuthenticationError:
        msg = f"{prefix}authentication failed: {details} (check AGENTFENSE_TOKEN / token=) [UNAUTHENTICATED]"
    if cls is SandboxNotFoundError:
        return SandboxNotFoundError(what, msg, num)
    if cls is SandboxNotRunningError:
        return SandboxNotRunningError(what, msg, num)
    if cls is CodebaseNotFoundError:
        return CodebaseNotFoundError(what, msg, num)
    if cls is FileNotFoundError:
        return FileNotFoundError(what, msg, num)
    if cls is SessionNotFoundError:
        return SessionNotFoundError(what, msg, num)
    if cls is SessionClosedError:
        return SessionClosedError(what, msg, num)
    if cls is CommandTimeoutError:
        return CommandTimeoutError(what, timeout, msg, num)
    return cls(msg, num, details)
