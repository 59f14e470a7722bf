"""Conversions between the SDK's dataclasses and the sandbox.v1 protobuf messages."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Dict, Iterable, List, Mapping, Optional

from google.protobuf import duration_pb2, timestamp_pb2

from ._proto import codebase_pb2, common_pb2, sandbox_pb2
from .exceptions import InvalidConfigurationError
from .presets import to_rules
from .types import (AccessRequest, ApprovalState, ArchiveResult, AuditEvent, ChangeError, ChangeKind, ChangeSet,
                    Checkpoint, Codebase, CommitResult, Decision,
                    DeltaQuota, EgressPolicy, ExecResult, FileChange, FileInfo, OutputType, PatternType,
                    Permission, PermissionExplanation, PermissionLike, PermissionRule,
                    ResourceLimits, RuleMatch, RuntimeType, SandboxInfo, SandboxStatus, Session,
                    SessionStatus, SyncMode, UploadResult)

_PERM_TO_PB = {Permission.NONE: common_pb2.PERMISSION_NONE, Permission.VIEW: common_pb2.PERMISSION_VIEW,
               Permission.READ: common_pb2.PERMISSION_READ, Permission.WRITE: common_pb2.PERMISSION_WRITE,
               Permission.ASK: common_pb2.PERMISSION_ASK}
_PERM_FROM_PB = {v: k for k, v in _PERM_TO_PB.items()}
_TYPE_TO_PB = {PatternType.GLOB: common_pb2.PATTERN_TYPE_GLOB,
               PatternType.DIRECTORY: common_pb2.PATTERN_TYPE_DIRECTORY,
               PatternType.FILE: common_pb2.PATTERN_TYPE_FILE}
_TYPE_FROM_PB = {v: k for k, v in _TYPE_TO_PB.items()}
_STATUS_FROM_PB = {common_pb2.SANDBOX_STATUS_PENDING: SandboxStatus.PENDING,
                   common_pb2.SANDBOX_STATUS_RUNNING: SandboxStatus.RUNNING,
                   common_pb2.SANDBOX_STATUS_STOPPED: SandboxStatus.STOPPED,
                   common_pb2.SANDBOX_STATUS_ERROR: SandboxStatus.ERROR}
_RUNTIME_TO_PB = {RuntimeType.BWRAP: sandbox_pb2.RUNTIME_TYPE_BWRAP,
                  RuntimeType.DOCKER: sandbox_pb2.RUNTIME_TYPE_DOCKER}
_RUNTIME_FROM_PB = {v: k for k, v in _RUNTIME_TO_PB.items()}
_SYNC_TO_PB = {SyncMode.ON_EXEC: sandbox_pb2.SYNC_MODE_ON_EXEC, SyncMode.ON_STOP: sandbox_pb2.SYNC_MODE_ON_STOP,
               SyncMode.MANUAL: sandbox_pb2.SYNC_MODE_MANUAL, SyncMode.NEVER: sandbox_pb2.SYNC_MODE_NEVER}
_SYNC_FROM_PB = {v: k for k, v in _SYNC_TO_PB.items()}
_KIND_FROM_PB = {sandbox_pb2.CHANGE_KIND_ADDED: ChangeKind.ADDED,
                 sandbox_pb2.CHANGE_KIND_MODIFIED: ChangeKind.MODIFIED,
                 sandbox_pb2.CHANGE_KIND_DELETED: ChangeKind.DELETED}
_APPROVAL_STATE_FROM_PB = {sandbox_pb2.APPROVAL_STATE_PENDING: ApprovalState.PENDING,
                           sandbox_pb2.APPROVAL_STATE_ALLOWED: ApprovalState.ALLOWED,
                           sandbox_pb2.APPROVAL_STATE_DENIED: ApprovalState.DENIED,
                           sandbox_pb2.APPROVAL_STATE_TIMED_OUT: ApprovalState.TIMED_OUT,
                           sandbox_pb2.APPROVAL_STATE_CANCELLED: ApprovalState.CANCELLED}
DECISION_TO_PB = {Decision.ALLOW: sandbox_pb2.APPROVAL_DECISION_ALLOW,
                  Decision.ALLOW_READ: sandbox_pb2.APPROVAL_DECISION_ALLOW_READ,
                  Decision.ALLOW_WRITE: sandbox_pb2.APPROVAL_DECISION_ALLOW_WRITE,
                  Decision.DENY: sandbox_pb2.APPROVAL_DECISION_DENY}
_DECISION_FROM_PB = {v: k for k, v in DECISION_TO_PB.items()}
OUTPUT_FROM_PB = {sandbox_pb2.ExecOutput.OUTPUT_TYPE_STDOUT: OutputType.STDOUT,
                  sandbox_pb2.ExecOutput.OUTPUT_TYPE_STDERR: OutputType.STDERR}


def ts(t: "timestamp_pb2.Timestamp") -> Optional[datetime]:
    if t.seconds == 0 and t.nanos == 0:
        return None
    return datetime.fromtimestamp(t.seconds + t.nanos / 1e9, tz=timezone.utc)


def to_ts(d: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(d.astimezone(timezone.utc).replace(tzinfo=None) if d.tzinfo else d)
    return out


def duration(seconds: Optional[float], what: str = "timeout") -> Optional[duration_pb2.Duration]:
    if seconds is None:
        return None
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise InvalidConfigurationError(f"{what} must be a positive number of seconds, got {seconds!r}")
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def rules_to_pb(rules: Iterable[PermissionLike]) -> List["common_pb2.PermissionRule"]:
    return [common_pb2.PermissionRule(pattern=r.pattern, type=_TYPE_TO_PB[r.type],
                                      permission=_PERM_TO_PB[r.permission], priority=r.priority)
            for r in to_rules(rules)]


def rule_from_pb(r: "common_pb2.PermissionRule") -> PermissionRule:
    return PermissionRule(pattern=r.pattern, permission=_PERM_FROM_PB.get(r.permission, Permission.NONE),
                          type=_TYPE_FROM_PB.get(r.type, PatternType.GLOB), priority=r.priority)


def runtime_to_pb(rt: "RuntimeType | str | None") -> int:
    if rt is None:
        return sandbox_pb2.RUNTIME_TYPE_UNSPECIFIED
    try:
        return _RUNTIME_TO_PB[RuntimeType(rt)]
    except ValueError:
        raise InvalidConfigurationError(f"unknown runtime {rt!r}; use 'bwrap' or 'docker'") from None


def sync_to_pb(m: "SyncMode | str | None") -> int:
    if m is None:
        return sandbox_pb2.SYNC_MODE_UNSPECIFIED
    try:
        return _SYNC_TO_PB[SyncMode(m)]
    except ValueError:
        raise InvalidConfigurationError(
            f"unknown sync_mode {m!r}; use one of {[s.value for s in SyncMode]}") from None


def _nonneg(name: str, v: Optional[int]) -> int:
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InvalidConfigurationError(f"{name} must be a non-negative int, got {v!r}")
    return v


def resources_to_pb(r: Optional[ResourceLimits]) -> Optional["sandbox_pb2.ResourceLimits"]:
    if r is None:
        return None
    if isinstance(r, Mapping):
        r = ResourceLimits(**r)
    return sandbox_pb2.ResourceLimits(memory_bytes=_nonneg("memory_bytes", r.memory_bytes),
                                      cpu_quota=_nonneg("cpu_quota", r.cpu_quota),
                                      cpu_shares=_nonneg("cpu_shares", r.cpu_shares),
                                      pids_limit=_nonneg("pids_limit", r.pids_limit))


def quota_to_pb(q: Optional[DeltaQuota]) -> Optional["sandbox_pb2.DeltaQuota"]:
    if q is None:
        return None
    if isinstance(q, Mapping):
        q = DeltaQuota(**q)
    return sandbox_pb2.DeltaQuota(max_bytes=_nonneg("max_bytes", q.max_bytes),
                                  max_inodes=_nonneg("max_inodes", q.max_inodes))


def str_map(name: str, m: Optional[Mapping[str, str]]) -> Dict[str, str]:
    if m is None:
        return {}
    if not isinstance(m, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
        raise InvalidConfigurationError(f"{name} must be a dict of str to str, got {m!r}")
    return dict(m)


def sandbox_from_pb(s: "sandbox_pb2.Sandbox") -> SandboxInfo:
    res = s.resources if s.HasField("resources") else None
    q = s.delta_quota if s.HasField("delta_quota") else None
    return SandboxInfo(
        id=s.id, codebase_id=s.codebase_id, status=_STATUS_FROM_PB.get(s.status, SandboxStatus.ERROR),
        permissions=[rule_from_pb(r) for r in s.permissions], labels=dict(s.labels),
        runtime=_RUNTIME_FROM_PB.get(s.runtime, RuntimeType.BWRAP), image=s.image or None,
        resources=ResourceLimits(res.memory_bytes or None, res.cpu_quota or None, res.cpu_shares or None,
                                 res.pids_limit or None) if res is not None else None,
        created_at=ts(s.created_at), started_at=ts(s.started_at), stopped_at=ts(s.stopped_at),
        expires_at=ts(s.expires_at), sync_mode=_SYNC_FROM_PB.get(s.sync_mode), network=s.network,
        delta_quota=DeltaQuota(q.max_bytes or None, q.max_inodes or None) if q is not None else None,
        status_message=s.status_message,
        egress=EgressPolicy(list(s.egress.allow), s.egress.any_public) if s.network else None,
        ask_timeout=timedelta(seconds=s.ask_timeout.seconds, microseconds=s.ask_timeout.nanos // 1000)
        if s.HasField("ask_timeout") else None)


def codebase_from_pb(c: "codebase_pb2.Codebase") -> Codebase:
    return Codebase(id=c.id, name=c.name, owner_id=c.owner_id, size=c.size, file_count=c.file_count,
                    created_at=ts(c.created_at), updated_at=ts(c.updated_at))


def file_info_from_pb(f: "codebase_pb2.FileInfo") -> FileInfo:
    return FileInfo(path=f.path, name=f.name, is_dir=f.is_dir, size=f.size, modified_at=ts(f.modified_at))


def upload_from_pb(u: "codebase_pb2.UploadResult") -> UploadResult:
    return UploadResult(codebase_id=u.codebase_id, file_path=u.file_path, size=u.size, checksum=u.checksum)


def archive_from_pb(a: "codebase_pb2.UploadArchiveResult") -> ArchiveResult:
    return ArchiveResult(codebase_id=a.codebase_id, files=a.files, directories=a.directories,
                         symlinks=a.symlinks, bytes=a.bytes,
                         codebase=codebase_from_pb(a.codebase) if a.HasField("codebase") else None)


def exec_from_pb(r: "sandbox_pb2.ExecResult", command: Optional[str]) -> ExecResult:
    dur = timedelta(seconds=r.duration.seconds, microseconds=r.duration.nanos // 1000) \
        if r.HasField("duration") else None
    return ExecResult(stdout=r.stdout, stderr=r.stderr, exit_code=r.exit_code, duration=dur, command=command)


def session_from_pb(s: "sandbox_pb2.Session") -> Session:
    status = SessionStatus.CLOSED if s.status == common_pb2.SESSION_STATUS_CLOSED else SessionStatus.ACTIVE
    return Session(id=s.id, sandbox_id=s.sandbox_id, status=status, shell=s.shell,
                   created_at=ts(s.created_at), closed_at=ts(s.closed_at))


def explain_from_pb(r: "sandbox_pb2.ExplainPermissionResponse") -> PermissionExplanation:
    return PermissionExplanation(path=r.path, permission=_PERM_FROM_PB.get(r.permission, Permission.NONE),
                                 deciding_rule=r.deciding_rule,
                                 matching_rules=[RuleMatch(m.index, rule_from_pb(m.rule)) for m in r.matching_rules],
                                 reason=r.reason)


def change_from_pb(c: "sandbox_pb2.FileChange") -> FileChange:
    return FileChange(path=c.path, kind=_KIND_FROM_PB.get(c.kind, ChangeKind.MODIFIED), size=c.size,
                      is_dir=c.is_dir)


def changes_from_pb(r: "sandbox_pb2.ListChangesResponse") -> ChangeSet:
    return ChangeSet(changes=[change_from_pb(c) for c in r.changes], delta_bytes=r.delta_bytes,
                     delta_inodes=r.delta_inodes)


def commit_from_pb(r: "sandbox_pb2.CommitChangesResponse") -> CommitResult:
    return CommitResult(applied=[change_from_pb(c) for c in r.applied],
                        errors=[ChangeError(e.path, e.message) for e in r.errors])


def audit_from_pb(e: "sandbox_pb2.AuditEvent") -> AuditEvent:
    return AuditEvent(id=e.id, time=ts(e.time), sandbox_id=e.sandbox_id, kind=e.kind, operation=e.operation,
                      path=e.path, rule=e.rule, command=e.command, detail=e.detail)


def checkpoint_from_pb(c: "sandbox_pb2.Checkpoint") -> Checkpoint:
    return Checkpoint(name=c.name, created_at=ts(c.created_at), size=int(c.size), files=int(c.files),
                      directories=int(c.directories), deletions=int(c.deletions))


def approval_from_pb(a: "sandbox_pb2.Approval") -> AccessRequest:
    return AccessRequest(id=a.id, sandbox_id=a.sandbox_id, path=a.path, operation=a.operation,
                         access="write" if a.access == sandbox_pb2.APPROVAL_ACCESS_WRITE else "read",
                         pid=int(a.pid), command=a.command, waiting_since=ts(a.waiting_since),
                         deadline=ts(a.deadline),
                         state=_APPROVAL_STATE_FROM_PB.get(a.state, ApprovalState.PENDING),
                         decision=_DECISION_FROM_PB.get(a.decision), answered_by=a.answered_by,
                         remembered=a.remembered)
