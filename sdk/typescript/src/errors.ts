// The SDK's error hierarchy and the single table from gRPC status codes to errors, with the same
// classes and meanings as the Python SDK's exceptions.py.
//
// NOT_FOUND, FAILED_PRECONDITION and DEADLINE_EXCEEDED mean different things depending on what a
// call is about (an unknown sandbox vs an unknown file; exec in a stopped sandbox vs a closed
// session), so the table is keyed by (code, subject) with a per-code fallback. Every error carries
// the numeric `grpcCode` (undefined when it did not come from the server).
import { status as Code } from "@grpc/grpc-js";

export class SandboxError extends Error {
  readonly grpcCode?: number;
  readonly details?: string;
  constructor(message: string, grpcCode?: number, details?: string) {
    super(message);
    this.name = new.target.name;
    this.grpcCode = grpcCode;
    this.details = details;
  }
}

/** The server cannot be reached (bad endpoint, server down), or gave no answer in time. */
export class ConnectionError extends SandboxError {}
/** Missing or wrong token (UNAUTHENTICATED). */
export class AuthenticationError extends SandboxError {}
/** Bad input: an unknown preset, a malformed rule, a bad path or id (INVALID_ARGUMENT). */
export class InvalidConfigurationError extends SandboxError {}
/** The server refused the call (PERMISSION_DENIED), or the sandbox's rules refused a file helper. */
export class PermissionDeniedError extends SandboxError {}
/** A quota or size limit was hit (RESOURCE_EXHAUSTED). */
export class ResourceLimitExceededError extends SandboxError {}
/** The server does not implement this RPC or the runtime cannot serve it (UNIMPLEMENTED). */
export class NotSupportedError extends SandboxError {}
/** The object is in a state that forbids the call (ALREADY_EXISTS, ABORTED, FAILED_PRECONDITION). */
export class ConflictError extends SandboxError {}

export class SandboxNotFoundError extends SandboxError {
  constructor(
    readonly sandboxId: string,
    message?: string,
    grpcCode?: number,
  ) {
    super(message ?? `sandbox not found: ${sandboxId}`, grpcCode);
  }
}

export class SandboxNotRunningError extends ConflictError {
  constructor(
    readonly sandboxId: string,
    message?: string,
    grpcCode?: number,
  ) {
    super(message ?? `sandbox ${sandboxId} is not running`, grpcCode);
  }
}

export class CodebaseNotFoundError extends SandboxError {
  constructor(
    readonly codebaseId: string,
    message?: string,
    grpcCode?: number,
  ) {
    super(message ?? `codebase not found: ${codebaseId}`, grpcCode);
  }
}

export class FileNotFoundError extends SandboxError {
  constructor(
    readonly path: string,
    message?: string,
    grpcCode?: number,
  ) {
    super(message ?? `file not found: ${path}`, grpcCode);
  }
}

export class SessionNotFoundError extends SandboxError {
  constructor(
    readonly sessionId: string,
    message?: string,
    grpcCode?: number,
  ) {
    super(message ?? `session not found: ${sessionId}`, grpcCode);
  }
}

export class SessionClosedError extends ConflictError {
  constructor(
    readonly sessionId: string,
    message?: string,
    grpcCode?: number,
  ) {
    super(message ?? `session ${sessionId} is closed`, grpcCode);
  }
}

export class CommandTimeoutError extends SandboxError {
  constructor(
    readonly command: string,
    /** Seconds. */
    readonly timeout?: number,
    message?: string,
    grpcCode?: number,
  ) {
    super(message ?? `command timed out after ${timeout}s: ${command}`, grpcCode);
  }
}

/** A command exited non-zero and the caller asked for that to throw (`raiseOnError: true`). */
export class CommandExecutionError extends SandboxError {
  constructor(
    readonly command: string,
    readonly exitCode: number,
    readonly stdout = "",
    readonly stderr = "",
    message?: string,
  ) {
    const tail = stderr.trim().split("\n").pop() ?? "";
    super(
      message ?? `command failed with exit code ${exitCode}: ${command}${tail ? ` (${tail})` : ""}`,
    );
  }
}

/** Uploading a local tree failed; `report` says what was uploaded and skipped before it failed. */
export class UploadError extends SandboxError {
  constructor(
    message: string,
    readonly report?: unknown,
    grpcCode?: number,
  ) {
    super(message, grpcCode);
  }
}

/** What a call is about; decides NOT_FOUND / FAILED_PRECONDITION / DEADLINE_EXCEEDED. */
export type Subject = "sandbox" | "exec" | "codebase" | "file" | "session" | "session_exec";

type ErrorClass =
  | typeof SandboxError
  | typeof SandboxNotFoundError
  | typeof SandboxNotRunningError
  | typeof CodebaseNotFoundError
  | typeof FileNotFoundError
  | typeof SessionNotFoundError
  | typeof SessionClosedError
  | typeof CommandTimeoutError;

/**
 * `${code}:${subject}` → class; `${code}:` is the fallback for that code. The same table as the
 * Python SDK's ERROR_TABLE (a test compares the two).
 */
export const ERROR_TABLE: ReadonlyMap<string, ErrorClass> = new Map<string, ErrorClass>([
  [`${Code.NOT_FOUND}:sandbox`, SandboxNotFoundError],
  [`${Code.NOT_FOUND}:exec`, SandboxNotFoundError],
  [`${Code.NOT_FOUND}:codebase`, CodebaseNotFoundError],
  [`${Code.NOT_FOUND}:file`, FileNotFoundError],
  [`${Code.NOT_FOUND}:session`, SessionNotFoundError],
  [`${Code.NOT_FOUND}:session_exec`, SessionNotFoundError],
  [`${Code.NOT_FOUND}:`, SandboxError],
  [`${Code.FAILED_PRECONDITION}:exec`, SandboxNotRunningError],
  [`${Code.FAILED_PRECONDITION}:session_exec`, SessionClosedError],
  [`${Code.FAILED_PRECONDITION}:`, ConflictError],
  [`${Code.ALREADY_EXISTS}:`, ConflictError],
  [`${Code.ABORTED}:`, ConflictError],
  [`${Code.DEADLINE_EXCEEDED}:exec`, CommandTimeoutError],
  [`${Code.DEADLINE_EXCEEDED}:session_exec`, CommandTimeoutError],
  [`${Code.DEADLINE_EXCEEDED}:`, ConnectionError],
  [`${Code.INVALID_ARGUMENT}:`, InvalidConfigurationError],
  [`${Code.OUT_OF_RANGE}:`, InvalidConfigurationError],
  [`${Code.PERMISSION_DENIED}:`, PermissionDeniedError],
  [`${Code.UNAUTHENTICATED}:`, AuthenticationError],
  [`${Code.RESOURCE_EXHAUSTED}:`, ResourceLimitExceededError],
  [`${Code.UNIMPLEMENTED}:`, NotSupportedError],
  [`${Code.UNAVAILABLE}:`, ConnectionError],
  [`${Code.CANCELLED}:`, SandboxError],
  [`${Code.UNKNOWN}:`, SandboxError],
  [`${Code.INTERNAL}:`, SandboxError],
  [`${Code.DATA_LOSS}:`, SandboxError],
]);

interface GrpcLikeError {
  code?: number;
  details?: string;
  message?: string;
}

/**
 * Turns a gRPC error into the SDK error for (code, subject). `what` names the object (an id, a
 * path, a command) for the message and the error's attribute; `timeout` (seconds) is the command's
 * or the client's deadline.
 */
export function fromGrpcError(
  err: unknown,
  subject?: Subject,
  what = "",
  method = "",
  timeout?: number,
): SandboxError {
  if (err instanceof SandboxError) return err;
  const e = err as GrpcLikeError;
  const code = typeof e?.code === "number" ? e.code : Code.UNKNOWN;
  const name = Code[code] ?? "UNKNOWN";
  const details = e?.details || e?.message || name.toLowerCase().replace(/_/g, " ");
  const cls = ERROR_TABLE.get(`${code}:${subject ?? ""}`) ?? ERROR_TABLE.get(`${code}:`) ?? SandboxError;
  const prefix = method ? `${method}: ` : "";
  let msg = `${prefix}${details} [${name}]`;
  if (cls === NotSupportedError) {
    msg =
      `${prefix}the server does not implement this call (${details}); it may be an older ` +
      `AgentFense server without this extension [UNIMPLEMENTED]`;
  } else if (cls === ConnectionError && code === Code.DEADLINE_EXCEEDED) {
    msg =
      `${prefix}no answer within the client deadline of ${timeout}s; the server may be ` +
      `overloaded (new SandboxClient({ timeout }) raises it) [DEADLINE_EXCEEDED]`;
  } else if (cls === ConnectionError && code === Code.UNAVAILABLE) {
    msg = `${prefix}cannot reach the AgentFense server: ${details} [UNAVAILABLE]`;
  } else if (cls === AuthenticationError) {
    msg = `${prefix}authentication failed: ${details} (check AGENTFENSE_TOKEN / token) [UNAUTHENTICATED]`;
  }
  switch (cls) {
    case SandboxNotFoundError:
    case SandboxNotRunningError:
    case CodebaseNotFoundError:
    case FileNotFoundError:
    case SessionNotFoundError:
    case SessionClosedError:
      return new (cls as typeof SandboxNotFoundError)(what, msg, code);
    case CommandTimeoutError:
      return new CommandTimeoutError(what, timeout, msg, code);
    default:
      return new (cls as typeof SandboxError)(msg, code, details);
  }
}
