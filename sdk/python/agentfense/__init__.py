"""agentfense: Python SDK for AgentFense, a least-privilege filesystem sandbox for AI agents.

High level: Sandbox / AsyncSandbox. Low level: SandboxClient / AsyncSandboxClient (one method per
RPC). Types, presets and the exception hierarchy are re-exported here.
"""
from .async_client import AsyncApprovalStream, AsyncExecStream, AsyncSandboxClient
from .async_sandbox import AsyncSandbox, AsyncSessionWrapper
from .client import ApprovalStream, ExecStream, SandboxClient
from .exceptions import (AuthenticationError, CodebaseNotFoundError, CommandExecutionError,
                         CommandTimeoutError, ConflictError, ConnectionError, FileNotFoundError,
                         InvalidConfigurationError, NotSupportedError, PermissionDeniedError,
                         ResourceLimitExceededError, SandboxError, SandboxNotFoundError,
                         SandboxNotRunningError, SessionClosedError, SessionNotFoundError, UploadError)
from ._high import UploadProgress
from .presets import extend_preset, get_preset, get_preset_dicts, list_presets, register_preset
from .sandbox import Sandbox, SessionWrapper
from .types import (AccessDecision, AccessRequest, ApprovalState, AuditEvent, AuditPage, ChangeError,
                    Checkpoint, Decision, ChangeKind, ChangeSet, Codebase, CommitResult,
                    DeltaQuota, EgressPolicy, ExecResult, FileChange, FileInfo, OutputChunk, OutputType,
                    PatternType, Permission, PermissionExplanation, PermissionRule, ResourceLimits, RuleMatch,
                    RuntimeType, SandboxInfo, SandboxStatus, Session, SessionInfo, SessionStatus,
                    SyncMode, UploadReport, UploadResult)

__version__ = "0.1.0"

__all__ = [
    "AccessDecision", "AccessRequest", "ApprovalState", "Checkpoint", "Decision",
    "ApprovalStream", "AsyncApprovalStream", "AsyncExecStream", "AsyncSandbox", "AsyncSandboxClient", "AsyncSessionWrapper", "AuditEvent", "AuditPage",
    "AuthenticationError", "ChangeError", "ChangeKind", "ChangeSet", "Codebase", "CodebaseNotFoundError",
    "CommandExecutionError", "CommandTimeoutError", "CommitResult", "ConflictError", "ConnectionError",
    "DeltaQuota", "EgressPolicy", "ExecResult", "ExecStream", "FileChange", "FileInfo", "FileNotFoundError",
    "InvalidConfigurationError", "NotSupportedError", "OutputChunk", "OutputType", "PatternType", "Permission",
    "PermissionDeniedError", "PermissionExplanation", "PermissionRule", "ResourceLimitExceededError",
    "ResourceLimits", "RuleMatch", "RuntimeType", "Sandbox", "SandboxClient", "SandboxError", "SandboxInfo",
    "SandboxNotFoundError", "SandboxNotRunningError", "SandboxStatus", "Session", "SessionClosedError",
    "SessionInfo", "SessionNotFoundError", "SessionStatus", "SessionWrapper", "SyncMode", "UploadError",
    "UploadProgress", "UploadReport", "UploadResult", "extend_preset", "get_preset", "get_preset_dicts",
    "list_presets", "register_preset",
]
