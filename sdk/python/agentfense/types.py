"""Public value types of the SDK: str-valued enums and dataclasses mirroring sandbox.v1.

The enum string values are the reference SDK's (`Permission.READ == "read"`), so user code written
against it keeps working; conversion to and from protobuf lives in _convert.py, not here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional, Union


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)


class Permission(_StrEnum):
    NONE = "none"
    VIEW = "view"
    READ = "read"
    WRITE = "write"
    ASK = "ask"  # visible as VIEW; reading or changing waits for a decision (on_access_request)


class PatternType(_StrEnum):
    GLOB = "glob"
    DIRECTORY = "directory"
    FILE = "file"


class SandboxStatus(_StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    ERROR = "error"


class SessionStatus(_StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class RuntimeType(_StrEnum):
    BWRAP = "bwrap"
    DOCKER = "docker"


class SyncMode(_StrEnum):
    """When a sandbox's writes reach the codebase (AgentFense extension)."""
    ON_EXEC = "on_exec"
    ON_STOP = "on_stop"
    MANUAL = "manual"
    NEVER = "never"


class OutputType(_StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


class ChangeKind(_StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass
class PermissionRule:
    pattern: str
    permission: Permission = Permission.READ
    type: PatternType = PatternType.GLOB
    priority: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return {"pattern": self.pattern, "permission": self.permission.value,
                "type": self.type.value, "priority": self.priority}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PermissionRule":
        from .exceptions import InvalidConfigurationError

        unknown = set(d) - {"pattern", "permission", "type", "priority"}
        if unknown:
            raise InvalidConfigurationError(f"permission rule {dict(d)!r}: unknown keys {sorted(unknown)}")
        if not isinstance(d.get("pattern"), str) or not d["pattern"]:
            raise InvalidConfigurationError(f"permission rule {dict(d)!r}: 'pattern' must be a non-empty string")
        try:
            perm = Permission(d.get("permission", Permission.READ))
            ptype = PatternType(d.get("type", PatternType.GLOB))
        except ValueError as e:
            raise InvalidConfigurationError(
                f"permission rule {dict(d)!r}: {e} (permissions: none/view/ask/read/write; "
                f"types: glob/directory/file)") from None
        prio = d.get("priority", 0)
        if isinstance(prio, bool) or not isinstance(prio, int):
            raise InvalidConfigurationError(f"permission rule {dict(d)!r}: 'priority' must be an int")
        return cls(pattern=d["pattern"], permission=perm, type=ptype, priority=prio)


PermissionLike = Union[PermissionRule, Mapping[str, Any]]


@dataclass
class ResourceLimits:
    memory_bytes: Optional[int] = None
    cpu_quota: Optional[int] = None  # microseconds of CPU per 100 ms period
    cpu_shares: Optional[int] = None
    pids_limit: Optional[int] = None


@dataclass
class DeltaQuota:
    """Limits on a sandbox's pending writes; None/0 = unlimited (extension)."""
    max_bytes: Optional[int] = None
    max_inodes: Optional[int] = None


@dataclass
class EgressPolicy:
    """Where a sandbox with network on may connect (docs/NETWORK.md)."""
    allow: List[str] = field(default_factory=list)  # normalized rules ("github.com:443", ...)
    any_public: bool = False  # every public destination too


@dataclass
class SandboxInfo:
    """A sandbox as the server reports it (the reference names this type `Sandbox` in `types`)."""
    id: str
    codebase_id: str
    status: SandboxStatus = SandboxStatus.PENDING
    permissions: List[PermissionRule] = field(default_factory=list)
    labels: Dict[str, str] = field(default_factory=dict)
    runtime: RuntimeType = RuntimeType.BWRAP
    image: Optional[str] = None
    resources: Optional[ResourceLimits] = None
    created_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    stopped_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    sync_mode: Optional[SyncMode] = None
    network: bool = False
    delta_quota: Optional[DeltaQuota] = None
    status_message: str = ""
    egress: Optional[EgressPolicy] = None  # with network on
    ask_timeout: Optional[timedelta] = None  # how long an access to an `ask` path waits


# The reference exports the info dataclass as types.Sandbox; the top-level `Sandbox` is the high-level class.
Sandbox = SandboxInfo


@dataclass
class Codebase:
    id: str
    name: str
    owner_id: str
    size: int = 0
    file_count: int = 0
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None


@dataclass
class FileInfo:
    path: str
    name: str
    is_dir: bool = False
    size: int = 0
    modified_at: Optional[datetime] = None


@dataclass
class UploadResult:
    codebase_id: str
    file_path: str
    size: int
    checksum: str


@dataclass
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int
    duration: Optional[timedelta] = None
    command: Optional[str] = None

    @property
    def success(self) -> bool:
        return self.exit_code == 0

    @property
    def output(self) -> str:
        """stdout and stderr joined by a newline when both are present."""
        if self.stdout and self.stderr:
            return f"{self.stdout}\n{self.stderr}"
        return self.stdout or self.stderr

    def raise_on_error(self) -> "ExecResult":
        """Returns self when the command exited 0, else raises CommandExecutionError."""
        if self.exit_code != 0:
            from .exceptions import CommandExecutionError

            raise CommandExecutionError(command=self.command or "<unknown>", exit_code=self.exit_code,
                                        stdout=self.stdout, stderr=self.stderr)
        return self


@dataclass
class OutputChunk:
    """One piece of a streamed command's output, in the order the server produced it."""
    type: OutputType
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    @property
    def is_stdout(self) -> bool:
        return self.type == OutputType.STDOUT

    @property
    def is_stderr(self) -> bool:
        return self.type == OutputType.STDERR


@dataclass
class Session:
    id: str
    sandbox_id: str
    status: SessionStatus = SessionStatus.ACTIVE
    shell: str = ""
    created_at: Optional[datetime] = None
    closed_at: Optional[datetime] = None


SessionInfo = Session


@dataclass
class RuleMatch:
    index: int
    rule: PermissionRule


@dataclass
class PermissionExplanation:
    """Why a path has its permission (ExplainPermission extension)."""
    path: str
    permission: Permission
    deciding_rule: int  # index into the sandbox's permissions; -1 = no rule matched
    matching_rules: List[RuleMatch] = field(default_factory=list)
    reason: str = ""


@dataclass
class FileChange:
    path: str
    kind: ChangeKind
    size: int = 0
    is_dir: bool = False


@dataclass
class ChangeSet:
    """Pending writes of a sandbox (ListChanges extension)."""
    changes: List[FileChange] = field(default_factory=list)
    delta_bytes: int = 0
    delta_inodes: int = 0


@dataclass
class ChangeError:
    path: str
    message: str


@dataclass
class CommitResult:
    applied: List[FileChange] = field(default_factory=list)
    errors: List[ChangeError] = field(default_factory=list)


@dataclass
class AuditEvent:
    id: int
    time: Optional[datetime]
    sandbox_id: str
    kind: str  # "denied", "lifecycle" or "approval"
    operation: str
    path: str = ""
    rule: str = ""
    command: str = ""
    detail: str = ""


@dataclass
class AuditPage:
    events: List[AuditEvent] = field(default_factory=list)
    next_page_token: str = ""


@dataclass
class UploadReport:
    """What `Sandbox.from_local` did with a local tree: nothing is dropped silently."""
    uploaded: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)  # relative path -> reason
    ignored: int = 0  # entries excluded by ignore rules (not listed individually)
    bytes_uploaded: int = 0
    # "archive" (one UploadArchive stream) or "files" (one stream per file: a server without it)
    method: str = "archive"


@dataclass
class ArchiveResult:
    """What an archive upload did (UploadArchive extension)."""
    codebase_id: str
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    bytes: int = 0
    codebase: Optional[Codebase] = None


@dataclass
class Checkpoint:
    """A named checkpoint of a sandbox's pending changes (docs/CHECKPOINTS.md)."""
    name: str
    created_at: Optional[datetime] = None
    size: int = 0  # bytes of the files it holds
    files: int = 0
    directories: int = 0
    deletions: int = 0


class ApprovalState(_StrEnum):
    PENDING = "pending"
    ALLOWED = "allowed"
    DENIED = "denied"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class Decision(_StrEnum):
    """An answer to an access request: ALLOW grants what the access needs."""
    ALLOW = "allow"
    ALLOW_READ = "allow_read"
    ALLOW_WRITE = "allow_write"
    DENY = "deny"


@dataclass
class AccessRequest:
    """An access to an `ask` path, waiting for a decision (or what became of it)."""
    id: str
    sandbox_id: str
    path: str
    operation: str  # "open", "create", "unlink", "rename", ...
    access: str  # "read" or "write": what the operation needs
    pid: int = 0
    command: str = ""  # the caller's command line (written by the agent: show it, do not trust it)
    waiting_since: Optional[datetime] = None
    deadline: Optional[datetime] = None
    state: ApprovalState = ApprovalState.PENDING
    decision: Optional[Decision] = None
    answered_by: str = ""
    remembered: str = ""


@dataclass
class AccessDecision:
    """What an on_access_request callback may return (a bare Decision, bool or None works too).

    remember: "once" (this access only), "path" (a rule for exactly this path) or a glob pattern;
    a remembered decision becomes a permission rule of the sandbox."""
    decision: Decision = Decision.DENY
    remember: str = "once"
    priority: Optional[int] = None

