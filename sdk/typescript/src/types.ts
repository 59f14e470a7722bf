// Public value types of the SDK. Enum values are the Python SDK's strings ("read", "bwrap", ...),
// so rules and settings read the same in both languages; conversion to and from protobuf lives in
// convert.ts, not here.

/** "ask": visible as "view"; reading or changing waits for a decision (onAccessRequest). */
export type Permission = "none" | "view" | "ask" | "read" | "write";
export type PatternType = "glob" | "directory" | "file";
export type SandboxStatus = "pending" | "running" | "stopped" | "error";
export type SessionStatus = "active" | "closed";
export type RuntimeType = "bwrap" | "docker";
/** When a sandbox's writes reach the codebase (AgentFense extension). */
export type SyncMode = "on_exec" | "on_stop" | "manual" | "never";
export type OutputType = "stdout" | "stderr";
export type ChangeKind = "added" | "modified" | "deleted";

export interface PermissionRule {
  pattern: string;
  /** Default "read". */
  permission?: Permission;
  /** Default "glob". */
  type?: PatternType;
  /** Higher wins; default 0. */
  priority?: number;
}

/** A rule with every field filled in, as presets and the server return them. */
export interface ResolvedRule {
  pattern: string;
  permission: Permission;
  type: PatternType;
  priority: number;
}

export interface ResourceLimits {
  memoryBytes?: number;
  /** Microseconds of CPU per 100 ms period. */
  cpuQuota?: number;
  cpuShares?: number;
  pidsLimit?: number;
}

/** Limits on a sandbox's pending writes; 0 or absent = unlimited (extension). */
export interface DeltaQuota {
  maxBytes?: number;
  maxInodes?: number;
}

export interface SandboxInfo {
  id: string;
  codebaseId: string;
  status: SandboxStatus;
  permissions: ResolvedRule[];
  labels: Record<string, string>;
  runtime: RuntimeType;
  image?: string;
  resources?: ResourceLimits;
  createdAt?: Date;
  startedAt?: Date;
  stoppedAt?: Date;
  expiresAt?: Date;
  syncMode?: SyncMode;
  network: boolean;
  /** The effective egress policy, rules normalized; undefined without network (docs/NETWORK.md). */
  egress?: EgressPolicy;
  deltaQuota?: DeltaQuota;
  /** Why the sandbox is in "error"; empty otherwise. */
  statusMessage: string;
  /** The host uid (= gid) the sandbox runs as: its own while it runs (0 before its first start). */
  hostUid: number;
  /** Seconds an access to an `ask` path waits for a decision before it is denied. */
  askTimeout?: number;
}

/** Where a sandbox with network on may connect (docs/NETWORK.md). */
export interface EgressPolicy {
  /** "github.com", "*.pypi.org:443", "10.0.0.0/8:5432", "udp:10.1.2.3:53", ... */
  allow: string[];
  /** Every public destination too. */
  anyPublic: boolean;
}

export interface Codebase {
  id: string;
  name: string;
  ownerId: string;
  size: number;
  fileCount: number;
  createdAt?: Date;
  updatedAt?: Date;
}

export interface FileInfo {
  path: string;
  name: string;
  isDir: boolean;
  size: number;
  modifiedAt?: Date;
}

export interface UploadResult {
  codebaseId: string;
  filePath: string;
  size: number;
  /** Hex MD5 of the bytes the server received. */
  checksum: string;
}

export interface ArchiveResult {
  codebaseId: string;
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  codebase?: Codebase;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
  command?: string;
}

/** One piece of a streamed command's output, in the order the server produced it. */
export interface OutputChunk {
  type: OutputType;
  data: Buffer;
  /** `data` decoded as UTF-8 (a character split across chunks shows as U+FFFD here). */
  readonly text: string;
}

export interface Session {
  id: string;
  sandboxId: string;
  status: SessionStatus;
  shell: string;
  createdAt?: Date;
  closedAt?: Date;
}

export interface RuleMatch {
  index: number;
  rule: ResolvedRule;
}

/** Why a path has its permission (ExplainPermission extension). */
export interface PermissionExplanation {
  path: string;
  permission: Permission;
  /** Index into the sandbox's permissions; -1 = no rule matched. */
  decidingRule: number;
  matchingRules: RuleMatch[];
  reason: string;
}

export interface FileChange {
  path: string;
  kind: ChangeKind;
  size: number;
  isDir: boolean;
}

/** Pending writes of a sandbox (ListChanges extension). */
export interface ChangeSet {
  changes: FileChange[];
  deltaBytes: number;
  deltaInodes: number;
}

export interface CommitResult {
  applied: FileChange[];
  errors: { path: string; message: string }[];
}

export interface AuditEvent {
  id: number;
  time?: Date;
  sandboxId: string;
  /** "denied", "lifecycle" or "approval". */
  kind: string;
  operation: string;
  path: string;
  rule: string;
  command: string;
  detail: string;
}

export interface AuditPage {
  events: AuditEvent[];
  nextPageToken: string;
}

/** What `Sandbox.fromLocal` did with a local tree: nothing is dropped silently. */
export interface UploadReport {
  uploaded: string[];
  /** Relative path → reason. */
  skipped: Record<string, string>;
  /** Entries excluded by ignore rules (not listed individually). */
  ignored: number;
  bytesUploaded: number;
  /** "archive" (one UploadArchive stream) or "files" (one stream per file, older servers). */
  method: "archive" | "files";
}

export interface UploadProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** The file just finished. */
  path: string;
}

/** A named checkpoint of a sandbox's pending changes (docs/CHECKPOINTS.md). */
export interface Checkpoint {
  name: string;
  createdAt?: Date;
  /** Bytes of the files it holds. */
  size: number;
  files: number;
  directories: number;
  deletions: number;
}

export type ApprovalState = "pending" | "allowed" | "denied" | "timed_out" | "cancelled";
/** "allow" grants what the access needs. */
export type Decision = "allow" | "allow_read" | "allow_write" | "deny";

/** An access to an `ask` path waiting for a decision (or what became of it). */
export interface AccessRequest {
  id: string;
  sandboxId: string;
  path: string;
  /** "open", "create", "unlink", "rename", ... */
  operation: string;
  access: "read" | "write";
  pid: number;
  /** The caller's command line: written by the agent, show it escaped, never trust it. */
  command: string;
  waitingSince?: Date;
  deadline?: Date;
  state: ApprovalState;
  decision?: Decision;
  answeredBy: string;
  remembered: string;
}

/**
 * An answer to an access request. `remember`: "once" (default), "path" or a glob pattern; a
 * remembered decision becomes a permission rule of the sandbox.
 */
export interface AccessDecision {
  decision: Decision;
  remember?: string;
  priority?: number;
}

/** What an onAccessRequest callback may return (or resolve to): true = allow, false/undefined = deny. */
export type AccessAnswer = AccessDecision | Decision | boolean | undefined | null;

