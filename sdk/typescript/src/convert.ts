// Conversions between the SDK's plain types and the generated sandbox.v1 messages. The only module
// besides client.ts that touches generated code.
import type { Duration } from "./gen/google/protobuf/duration.js";
import type {
  Codebase as PbCodebase,
  FileInfo as PbFileInfo,
  UploadArchiveResult as PbArchiveResult,
  UploadResult as PbUploadResult,
} from "./gen/sandbox/v1/codebase.js";
import {
  PatternType as PbPatternType,
  Permission as PbPermission,
  SandboxStatus as PbSandboxStatus,
  SessionStatus as PbSessionStatus,
  type PermissionRule as PbRule,
} from "./gen/sandbox/v1/common.js";
import {
  ApprovalAccess as PbApprovalAccess,
  ApprovalDecision as PbApprovalDecision,
  ApprovalState as PbApprovalState,
  ChangeKind as PbChangeKind,
  ExecOutput_OutputType,
  RuntimeType as PbRuntimeType,
  SyncMode as PbSyncMode,
  type Approval as PbApproval,
  type AuditEvent as PbAuditEvent,
  type Checkpoint as PbCheckpoint,
  type CommitChangesResponse,
  type DeltaQuota as PbDeltaQuota,
  type ExecResult as PbExecResult,
  type ExplainPermissionResponse,
  type FileChange as PbFileChange,
  type ListChangesResponse,
  type ResourceLimits as PbResourceLimits,
  type Sandbox as PbSandbox,
  type Session as PbSession,
} from "./gen/sandbox/v1/sandbox.js";
import { InvalidConfigurationError } from "./errors.js";
import { toRules } from "./presets.js";
import type {
  AccessAnswer,
  AccessDecision,
  AccessRequest,
  ApprovalState,
  ArchiveResult,
  AuditEvent,
  Checkpoint,
  Decision,
  ChangeKind,
  ChangeSet,
  Codebase,
  CommitResult,
  DeltaQuota,
  ExecResult,
  FileChange,
  FileInfo,
  OutputType,
  PatternType,
  Permission,
  PermissionExplanation,
  PermissionRule,
  ResolvedRule,
  ResourceLimits,
  RuntimeType,
  SandboxInfo,
  SandboxStatus,
  Session,
  SyncMode,
  UploadResult,
} from "./types.js";

function invert<K extends string | number, V extends string | number>(m: Record<K, V>): Record<V, K> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [v, k])) as Record<V, K>;
}

const PERM_TO_PB: Record<Permission, PbPermission> = {
  none: PbPermission.PERMISSION_NONE,
  view: PbPermission.PERMISSION_VIEW,
  read: PbPermission.PERMISSION_READ,
  write: PbPermission.PERMISSION_WRITE,
  ask: PbPermission.PERMISSION_ASK,
};
const PERM_FROM_PB = invert(PERM_TO_PB);
const TYPE_TO_PB: Record<PatternType, PbPatternType> = {
  glob: PbPatternType.PATTERN_TYPE_GLOB,
  directory: PbPatternType.PATTERN_TYPE_DIRECTORY,
  file: PbPatternType.PATTERN_TYPE_FILE,
};
const TYPE_FROM_PB = invert(TYPE_TO_PB);
const STATUS_FROM_PB: Partial<Record<PbSandboxStatus, SandboxStatus>> = {
  [PbSandboxStatus.SANDBOX_STATUS_PENDING]: "pending",
  [PbSandboxStatus.SANDBOX_STATUS_RUNNING]: "running",
  [PbSandboxStatus.SANDBOX_STATUS_STOPPED]: "stopped",
  [PbSandboxStatus.SANDBOX_STATUS_ERROR]: "error",
};
const RUNTIME_TO_PB: Record<RuntimeType, PbRuntimeType> = {
  bwrap: PbRuntimeType.RUNTIME_TYPE_BWRAP,
  docker: PbRuntimeType.RUNTIME_TYPE_DOCKER,
};
const RUNTIME_FROM_PB = invert(RUNTIME_TO_PB);
const SYNC_TO_PB: Record<SyncMode, PbSyncMode> = {
  on_exec: PbSyncMode.SYNC_MODE_ON_EXEC,
  on_stop: PbSyncMode.SYNC_MODE_ON_STOP,
  manual: PbSyncMode.SYNC_MODE_MANUAL,
  never: PbSyncMode.SYNC_MODE_NEVER,
};
const SYNC_FROM_PB = invert(SYNC_TO_PB);
const KIND_FROM_PB: Partial<Record<PbChangeKind, ChangeKind>> = {
  [PbChangeKind.CHANGE_KIND_ADDED]: "added",
  [PbChangeKind.CHANGE_KIND_MODIFIED]: "modified",
  [PbChangeKind.CHANGE_KIND_DELETED]: "deleted",
};

export function outputType(t: ExecOutput_OutputType): OutputType {
  return t === ExecOutput_OutputType.OUTPUT_TYPE_STDERR ? "stderr" : "stdout";
}

/** Seconds → Duration; undefined stays undefined; anything else than a positive number throws. */
export function duration(seconds: number | undefined, what = "timeout"): Duration | undefined {
  if (seconds === undefined || seconds === null) return undefined;
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0) {
    throw new InvalidConfigurationError(
      `${what} must be a positive number of seconds, got ${JSON.stringify(seconds)}`,
    );
  }
  const nanos = Math.round(seconds * 1e9);
  return { seconds: Math.floor(nanos / 1e9), nanos: nanos % 1e9 };
}

function durationMs(d: Duration | undefined): number {
  return d ? d.seconds * 1000 + d.nanos / 1e6 : 0;
}

export function rulesToPb(rules: Iterable<PermissionRule>): PbRule[] {
  return toRules(rules).map((r) => ({
    pattern: r.pattern,
    type: TYPE_TO_PB[r.type],
    permission: PERM_TO_PB[r.permission],
    priority: r.priority,
  }));
}

export function ruleFromPb(r: PbRule | undefined): ResolvedRule {
  return {
    pattern: r?.pattern ?? "",
    permission: PERM_FROM_PB[r?.permission ?? PbPermission.PERMISSION_NONE] ?? "none",
    type: TYPE_FROM_PB[r?.type ?? PbPatternType.PATTERN_TYPE_GLOB] ?? "glob",
    priority: r?.priority ?? 0,
  };
}

export function runtimeToPb(rt: RuntimeType | undefined): PbRuntimeType {
  if (rt === undefined) return PbRuntimeType.RUNTIME_TYPE_UNSPECIFIED;
  const v = RUNTIME_TO_PB[rt];
  if (v === undefined) {
    throw new InvalidConfigurationError(`unknown runtime '${rt}'; use 'bwrap' or 'docker'`);
  }
  return v;
}

export function syncToPb(m: SyncMode | undefined): PbSyncMode {
  if (m === undefined) return PbSyncMode.SYNC_MODE_UNSPECIFIED;
  const v = SYNC_TO_PB[m];
  if (v === undefined) {
    throw new InvalidConfigurationError(
      `unknown syncMode '${m}'; use one of ${Object.keys(SYNC_TO_PB).join(", ")}`,
    );
  }
  return v;
}

function nonNeg(name: string, v: number | undefined): number {
  if (v === undefined || v === null) return 0;
  if (!Number.isInteger(v) || v < 0) {
    throw new InvalidConfigurationError(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function resourcesToPb(r: ResourceLimits | undefined): PbResourceLimits | undefined {
  if (!r) return undefined;
  return {
    memoryBytes: nonNeg("memoryBytes", r.memoryBytes),
    cpuQuota: nonNeg("cpuQuota", r.cpuQuota),
    cpuShares: nonNeg("cpuShares", r.cpuShares),
    pidsLimit: nonNeg("pidsLimit", r.pidsLimit),
  };
}

export function quotaToPb(q: DeltaQuota | undefined): PbDeltaQuota | undefined {
  if (!q) return undefined;
  return { maxBytes: nonNeg("maxBytes", q.maxBytes), maxInodes: nonNeg("maxInodes", q.maxInodes) };
}

export function strMap(name: string, m: Record<string, string> | undefined): Record<string, string> {
  if (m === undefined || m === null) return {};
  if (typeof m !== "object" || Object.values(m).some((v) => typeof v !== "string")) {
    throw new InvalidConfigurationError(`${name} must be an object of string values`);
  }
  return { ...m };
}

export function sandboxFromPb(s: PbSandbox): SandboxInfo {
  const res = s.resources;
  const q = s.deltaQuota;
  return {
    id: s.id,
    codebaseId: s.codebaseId,
    status: STATUS_FROM_PB[s.status] ?? "error",
    permissions: s.permissions.map(ruleFromPb),
    labels: { ...s.labels },
    runtime: RUNTIME_FROM_PB[s.runtime] ?? "bwrap",
    image: s.image || undefined,
    resources: res
      ? {
          memoryBytes: res.memoryBytes || undefined,
          cpuQuota: res.cpuQuota || undefined,
          cpuShares: res.cpuShares || undefined,
          pidsLimit: res.pidsLimit || undefined,
        }
      : undefined,
    createdAt: s.createdAt,
    startedAt: s.startedAt,
    stoppedAt: s.stoppedAt,
    expiresAt: s.expiresAt,
    syncMode: SYNC_FROM_PB[s.syncMode],
    network: s.network,
    egress: s.network ? { allow: [...(s.egress?.allow ?? [])], anyPublic: s.egress?.anyPublic ?? false } : undefined,
    deltaQuota: q ? { maxBytes: q.maxBytes || undefined, maxInodes: q.maxInodes || undefined } : undefined,
    statusMessage: s.statusMessage,
    hostUid: s.hostUid,
    askTimeout: s.askTimeout ? s.askTimeout.seconds + s.askTimeout.nanos / 1e9 : undefined,
  };
}

/** The rule strings of an `allowNet` option; one string instead of a list is refused. */
export function egressRules(allowNet: readonly string[] | undefined): string[] {
  if (allowNet === undefined) return [];
  if (typeof allowNet === "string") {
    throw new InvalidConfigurationError(`allowNet must be a list of rules, not one string: use [${JSON.stringify(allowNet)}]`);
  }
  if (!Array.isArray(allowNet)) throw new InvalidConfigurationError("allowNet must be a list of rule strings");
  for (const r of allowNet) {
    if (typeof r !== "string" || !r) {
      throw new InvalidConfigurationError(`allowNet entries must be non-empty strings, got ${JSON.stringify(r)}`);
    }
  }
  return [...allowNet];
}

export function codebaseFromPb(c: PbCodebase): Codebase {
  return {
    id: c.id,
    name: c.name,
    ownerId: c.ownerId,
    size: c.size,
    fileCount: c.fileCount,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}

export function fileInfoFromPb(f: PbFileInfo): FileInfo {
  return { path: f.path, name: f.name, isDir: f.isDir, size: f.size, modifiedAt: f.modifiedAt };
}

export function uploadFromPb(u: PbUploadResult): UploadResult {
  return { codebaseId: u.codebaseId, filePath: u.filePath, size: u.size, checksum: u.checksum };
}

export function archiveFromPb(a: PbArchiveResult): ArchiveResult {
  return {
    codebaseId: a.codebaseId,
    files: a.files,
    directories: a.directories,
    symlinks: a.symlinks,
    bytes: a.bytes,
    codebase: a.codebase ? codebaseFromPb(a.codebase) : undefined,
  };
}

export function execFromPb(r: PbExecResult, command?: string): ExecResult {
  return {
    stdout: r.stdout,
    stderr: r.stderr,
    exitCode: r.exitCode,
    durationMs: durationMs(r.duration),
    command,
  };
}

export function sessionFromPb(s: PbSession): Session {
  return {
    id: s.id,
    sandboxId: s.sandboxId,
    status: s.status === PbSessionStatus.SESSION_STATUS_CLOSED ? "closed" : "active",
    shell: s.shell,
    createdAt: s.createdAt,
    closedAt: s.closedAt,
  };
}

export function explainFromPb(r: ExplainPermissionResponse): PermissionExplanation {
  return {
    path: r.path,
    permission: PERM_FROM_PB[r.permission] ?? "none",
    decidingRule: r.decidingRule,
    matchingRules: r.matchingRules.map((m) => ({ index: m.index, rule: ruleFromPb(m.rule) })),
    reason: r.reason,
  };
}

function changeFromPb(c: PbFileChange): FileChange {
  return { path: c.path, kind: KIND_FROM_PB[c.kind] ?? "modified", size: c.size, isDir: c.isDir };
}

export function changesFromPb(r: ListChangesResponse): ChangeSet {
  return { changes: r.changes.map(changeFromPb), deltaBytes: r.deltaBytes, deltaInodes: r.deltaInodes };
}

export function commitFromPb(r: CommitChangesResponse): CommitResult {
  return {
    applied: r.applied.map(changeFromPb),
    errors: r.errors.map((e) => ({ path: e.path, message: e.message })),
  };
}

export function auditFromPb(e: PbAuditEvent): AuditEvent {
  return {
    id: e.id,
    time: e.time,
    sandboxId: e.sandboxId,
    kind: e.kind,
    operation: e.operation,
    path: e.path,
    rule: e.rule,
    command: e.command,
    detail: e.detail,
  };
}

export function checkpointFromPb(c: PbCheckpoint): Checkpoint {
  return {
    name: c.name,
    createdAt: c.createdAt,
    size: Number(c.size),
    files: Number(c.files),
    directories: Number(c.directories),
    deletions: Number(c.deletions),
  };
}

const APPROVAL_STATE_FROM_PB: Partial<Record<PbApprovalState, ApprovalState>> = {
  [PbApprovalState.APPROVAL_STATE_PENDING]: "pending",
  [PbApprovalState.APPROVAL_STATE_ALLOWED]: "allowed",
  [PbApprovalState.APPROVAL_STATE_DENIED]: "denied",
  [PbApprovalState.APPROVAL_STATE_TIMED_OUT]: "timed_out",
  [PbApprovalState.APPROVAL_STATE_CANCELLED]: "cancelled",
};
export const DECISION_TO_PB: Record<Decision, PbApprovalDecision> = {
  allow: PbApprovalDecision.APPROVAL_DECISION_ALLOW,
  allow_read: PbApprovalDecision.APPROVAL_DECISION_ALLOW_READ,
  allow_write: PbApprovalDecision.APPROVAL_DECISION_ALLOW_WRITE,
  deny: PbApprovalDecision.APPROVAL_DECISION_DENY,
};
const DECISION_FROM_PB = invert(DECISION_TO_PB);

export function approvalFromPb(a: PbApproval): AccessRequest {
  return {
    id: a.id,
    sandboxId: a.sandboxId,
    path: a.path,
    operation: a.operation,
    access: a.access === PbApprovalAccess.APPROVAL_ACCESS_WRITE ? "write" : "read",
    pid: a.pid,
    command: a.command,
    waitingSince: a.waitingSince,
    deadline: a.deadline,
    state: APPROVAL_STATE_FROM_PB[a.state] ?? "pending",
    decision: DECISION_FROM_PB[a.decision],
    answeredBy: a.answeredBy,
    remembered: a.remembered,
  };
}

/** What an onAccessRequest callback returned, as an AccessDecision (anything unknown is refused). */
export function toDecision(value: AccessAnswer): AccessDecision {
  if (value === true) return { decision: "allow" };
  if (value === false || value === undefined || value === null) return { decision: "deny" };
  if (typeof value === "string") {
    if (value in DECISION_TO_PB) return { decision: value };
  } else if (typeof value === "object" && value.decision in DECISION_TO_PB) {
    return value;
  }
  throw new InvalidConfigurationError(
    `an access decision must be an AccessDecision, a Decision or a boolean, got ${JSON.stringify(value)}`);
}

