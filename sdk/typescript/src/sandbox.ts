// Sandbox: the high-level API (fromLocal / fromCodebase / connect, run, stream, sessions, file
// helpers) and SessionWrapper. `await using` (or close()) destroys what the object created, also on
// errors, and a failed fromLocal leaves no codebase or sandbox behind.
import "./dispose.js";
import { promises as fsp } from "node:fs";
import { basename, resolve } from "node:path";

import {
  SandboxClient,
  type ApprovalStream,
  type CallOpts,
  type ClientOptions,
  type CreateSandboxOptions,
  type ExecOptions,
  type ExecStream,
} from "./client.js";
import {
  CommandExecutionError,
  FileNotFoundError,
  InvalidConfigurationError,
  NotSupportedError,
  PermissionDeniedError,
  SandboxError,
  SessionClosedError,
  UploadError,
} from "./errors.js";
import { walkTree, type LocalFile, type WalkResult } from "./ignore.js";
import { buildRules } from "./presets.js";
import { tarStream } from "./tar.js";
import type {
  AccessAnswer,
  AccessRequest,
  AuditPage,
  ChangeSet,
  Checkpoint,
  Codebase,
  CommitResult,
  Decision,
  ExecResult,
  FileChange,
  FileInfo,
  PermissionExplanation,
  PermissionRule,
  ResolvedRule,
  RuntimeType,
  SandboxInfo,
  SandboxStatus,
  Session,
  SessionStatus,
  UploadProgress,
  UploadReport,
} from "./types.js";

export interface SandboxOptions extends ClientOptions, CreateSandboxOptions {
  /** Answers every access to an `ask` path (see Sandbox.onAccessRequest). */
  onAccessRequest?: AccessCallback;
  /** Preset whose rules come first; default "agent-safe"; null for only `permissions`. */
  preset?: string | null;
  /** Rules added after the preset's. */
  permissions?: PermissionRule[];
  /** Start the sandbox (default true). */
  autoStart?: boolean;
  /** Use this client (not closed by the sandbox) instead of making one. */
  client?: SandboxClient;
  /** Aborts the creation; everything created so far is removed. */
  signal?: AbortSignal;
}

export interface FromLocalOptions extends SandboxOptions {
  ownerId?: string;
  codebaseName?: string;
  /** Extra gitignore lines (applied after the defaults, before the tree's own ignore files). */
  ignore?: string[];
  /** Default true: skip .git/, node_modules/, .env, .env.* ... (see DEFAULT_IGNORES). */
  useDefaultIgnores?: boolean;
  /** Called after each file is streamed. */
  onProgress?: (p: UploadProgress) => void;
}

export interface RunOptions extends ExecOptions {
  /** Throw CommandExecutionError on a non-zero exit. */
  raiseOnError?: boolean;
}

/** Decides one access to an `ask` path; may return a promise. */
export type AccessCallback = (request: AccessRequest) => AccessAnswer | Promise<AccessAnswer>;

const ANSWERED_BY = "typescript sdk onAccessRequest";
const RECONNECT_MS = 500;

/**
 * Follows a sandbox's access requests and answers each with `callback`, one at a time, in the order
 * they arrive; a callback that throws (or rejects) denies. Reconnects when the stream ends (a server
 * restart, the sandbox stopped and started again) until stop().
 */
class AccessWatcher {
  private stopped = false;
  private stream?: ApprovalStream;
  private readonly seen = new Set<string>();
  private readonly done: Promise<void>;

  constructor(
    private readonly client: SandboxClient,
    private readonly sandboxId: string,
    private readonly callback: AccessCallback,
  ) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        this.stream = this.client.watchApprovals(this.sandboxId);
        for await (const req of this.stream) {
          if (this.stopped) break;
          if (req.state !== "pending" || this.seen.has(req.id)) continue;
          this.seen.add(req.id);
          let answer: AccessAnswer;
          try {
            answer = await this.callback(req);
          } catch {
            answer = "deny";
          }
          await this.client.answerApproval(this.sandboxId, req.id, answer, { answeredBy: ANSWERED_BY })
            .catch(() => undefined); // answered, timed out or cancelled meanwhile
        }
      } catch {
        // the stream failed: reconnect below
      }
      if (!this.stopped) await new Promise((r) => setTimeout(r, RECONNECT_MS).unref());
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stream?.cancel();
    await this.done;
  }
}

export function raiseOnError(r: ExecResult): ExecResult {
  if (r.exitCode !== 0) {
    throw new CommandExecutionError(r.command ?? "<unknown>", r.exitCode, r.stdout, r.stderr);
  }
  return r;
}

/** A persistent shell in a sandbox: cwd, environment, functions and jobs survive between commands. */
export class SessionWrapper implements AsyncDisposable {
  private closed = false;

  constructor(
    private readonly client: SandboxClient,
    private session: Session,
  ) {}

  get id(): string {
    return this.session.id;
  }

  get info(): Session {
    return this.session;
  }

  private ensure(): string {
    if (this.closed) throw new SessionClosedError(this.session.id, "session already closed");
    return this.session.id;
  }

  async status(o: CallOpts = {}): Promise<SessionStatus> {
    if (this.closed) return "closed";
    this.session = await this.client.getSession(this.session.id, o);
    return this.session.status;
  }

  exec(command: string, o: CallOpts & { timeout?: number } = {}): Promise<ExecResult> {
    return this.client.sessionExec(this.ensure(), command, o);
  }

  /** exec with a default timeout of 60 s, and `raiseOnError`. */
  async run(command: string, o: CallOpts & { timeout?: number; raiseOnError?: boolean } = {}): Promise<ExecResult> {
    const r = await this.exec(command, { timeout: 60, ...o });
    return o.raiseOnError ? raiseOnError(r) : r;
  }

  stream(command: string, o: CallOpts & { timeout?: number } = {}): ExecStream {
    return this.client.sessionExecStream(this.ensure(), command, o);
  }

  /** Destroys the session (kills its process tree). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.destroySession(this.session.id);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A running sandbox plus what it owns. Create it with the static methods. */
export class Sandbox implements AsyncDisposable {
  private destroyed = false;
  private watcher?: AccessWatcher;

  private constructor(
    readonly client: SandboxClient,
    private _info: SandboxInfo,
    readonly codebase: Codebase | undefined,
    private readonly ownsClient: boolean,
    private readonly ownsCodebase: boolean,
    /** What fromLocal uploaded and skipped (undefined for the other constructors). */
    readonly uploadReport?: UploadReport,
  ) {}

  // ---- construction ----

  /**
   * Uploads a local directory as a new codebase (one archive stream) and starts a sandbox over it.
   * Rules: the preset's (default "agent-safe") followed by `permissions`. Files are chosen with
   * gitignore semantics (.gitignore, .sandboxignore, defaults, `ignore`); symlinks are never
   * followed out of the tree; anything not uploaded is listed in `uploadReport.skipped`. On any
   * failure (or an abort) the codebase and sandbox created so far are deleted before the error is
   * thrown.
   */
  static async fromLocal(dir: string, options: FromLocalOptions = {}): Promise<Sandbox> {
    const root = await checkDir(dir);
    const rules = buildRules(options.preset === undefined ? "agent-safe" : options.preset, options.permissions);
    const walk = await walkTree(root, { ignore: options.ignore, useDefaultIgnores: options.useDefaultIgnores });
    const owns = !options.client;
    const cl = options.client ?? new SandboxClient(options);
    let codebase: Codebase | undefined;
    let info: SandboxInfo | undefined;
    try {
      const signal = options.signal;
      codebase = await cl.createCodebase(options.codebaseName ?? (basename(root) || "codebase"),
        options.ownerId ?? "sdk", { signal });
      const report = await uploadTree(cl, codebase.id, walk, options.onProgress, signal);
      info = await cl.createSandbox(codebase.id, { ...options, permissions: rules }, { signal });
      if (options.autoStart ?? true) info = await cl.startSandbox(info.id, { signal });
      const sb = new Sandbox(cl, info, await cl.getCodebase(codebase.id), owns, true, report);
      if (options.onAccessRequest) sb.onAccessRequest(options.onAccessRequest);
      return sb;
    } catch (e) {
      await cleanup(cl, info?.id, codebase?.id);
      if (owns) cl.close();
      throw e;
    }
  }

  /** A new sandbox over an existing codebase (which it will not delete). */
  static async fromCodebase(codebaseId: string, options: SandboxOptions = {}): Promise<Sandbox> {
    const rules = buildRules(options.preset === undefined ? "agent-safe" : options.preset, options.permissions);
    const owns = !options.client;
    const cl = options.client ?? new SandboxClient(options);
    let info: SandboxInfo | undefined;
    try {
      const signal = options.signal;
      const codebase = await cl.getCodebase(codebaseId, { signal });
      info = await cl.createSandbox(codebaseId, { ...options, permissions: rules }, { signal });
      if (options.autoStart ?? true) info = await cl.startSandbox(info.id, { signal });
      const sb = new Sandbox(cl, info, codebase, owns, false);
      if (options.onAccessRequest) sb.onAccessRequest(options.onAccessRequest);
      return sb;
    } catch (e) {
      await cleanup(cl, info?.id, undefined);
      if (owns) cl.close();
      throw e;
    }
  }

  /** Attaches to an existing sandbox. Closing it destroys it, as for the others. */
  static async connect(sandboxId: string, options: ClientOptions & { client?: SandboxClient } = {}): Promise<Sandbox> {
    const owns = !options.client;
    const cl = options.client ?? new SandboxClient(options);
    try {
      const info = await cl.getSandbox(sandboxId);
      return new Sandbox(cl, info, await cl.getCodebase(info.codebaseId), owns, false);
    } catch (e) {
      if (owns) cl.close();
      throw e;
    }
  }

  // ---- properties ----

  get id(): string {
    return this._info.id;
  }
  get codebaseId(): string {
    return this._info.codebaseId;
  }
  get status(): SandboxStatus {
    return this._info.status;
  }
  get runtime(): RuntimeType {
    return this._info.runtime;
  }
  get info(): SandboxInfo {
    return this._info;
  }
  get permissions(): ResolvedRule[] {
    return [...this._info.permissions];
  }

  // ---- lifecycle ----

  async start(): Promise<this> {
    if (this._info.status !== "running") this._info = await this.client.startSandbox(this.id);
    return this;
  }

  async stop(): Promise<this> {
    if (this._info.status === "running") this._info = await this.client.stopSandbox(this.id);
    return this;
  }

  async refresh(): Promise<this> {
    this._info = await this.client.getSandbox(this.id);
    return this;
  }

  /**
   * Destroys the sandbox, the codebase if this object created it (or `deleteCodebase`), and
   * closes the client if it owns it. Idempotent.
   */
  async destroy(o: { deleteCodebase?: boolean } = {}): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.watcher?.stop();
    this.watcher = undefined;
    try {
      await this.client.destroySandbox(this.id);
      if (o.deleteCodebase ?? this.ownsCodebase) await this.client.deleteCodebase(this.codebaseId);
    } finally {
      if (this.ownsClient) this.client.close();
    }
  }

  close(): Promise<void> {
    return this.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  // ---- commands ----

  /**
   * Runs a command with defaults: `timeout` 60 s (CommandTimeoutError after it), and
   * CommandExecutionError on a non-zero exit when `raiseOnError`.
   */
  async run(command: string, o: RunOptions = {}): Promise<ExecResult> {
    const r = await this.client.exec(this.id, command, { timeout: 60, ...o });
    return o.raiseOnError ? raiseOnError(r) : r;
  }

  /** The plain Exec RPC (no default timeout: the server's applies). */
  exec(command: string, o: ExecOptions = {}): Promise<ExecResult> {
    return this.client.exec(this.id, command, o);
  }

  /** The command's output as an async iterable of typed chunks; `.result()` for the totals. */
  stream(command: string, o: ExecOptions = {}): ExecStream {
    return this.client.execStream(this.id, command, o);
  }

  /** Alias of stream(), the Python SDK's name. */
  execStream(command: string, o: ExecOptions = {}): ExecStream {
    return this.stream(command, o);
  }

  /** A new session (a persistent shell); `await using s = await sandbox.session()` closes it. */
  async session(o: CallOpts & { shell?: string; env?: Record<string, string> } = {}): Promise<SessionWrapper> {
    return new SessionWrapper(this.client, await this.client.createSession(this.id, o));
  }

  // ---- files, as the sandbox sees them (its permissions apply) ----

  async readFileBytes(path: string, o: CallOpts & { timeout?: number } = {}): Promise<Buffer> {
    const cmd = readCmd(path);
    const stream = this.stream(cmd, { timeout: 60, ...o });
    const parts: Buffer[] = [];
    for await (const ch of stream) if (ch.type === "stdout") parts.push(ch.data);
    const res = await stream.result();
    if (res.exitCode !== 0) throw fileError("read", path, res.exitCode, res.stderr, cmd);
    return Buffer.concat(parts);
  }

  async readFile(path: string, o: CallOpts & { timeout?: number } = {}): Promise<string> {
    return (await this.readFileBytes(path, o)).toString("utf8");
  }

  async writeFile(path: string, content: string | Uint8Array, o: CallOpts & { timeout?: number } = {}): Promise<void> {
    const data = typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content);
    const cmd = writeCmd(path);
    const r = await this.exec(cmd, { stdin: data.toString("base64"), timeout: 60, ...o });
    if (r.exitCode !== 0) throw fileError("write", path, r.exitCode, r.stderr, cmd);
  }

  async listFiles(path = ".", o: CallOpts & { recursive?: boolean; timeout?: number } = {}): Promise<FileInfo[]> {
    const cmd = listCmd(path, o.recursive ?? false);
    const r = await this.exec(cmd, { timeout: 60, ...o });
    if (r.exitCode !== 0) throw fileError("list", path, r.exitCode, r.stderr, cmd);
    return parseListing(path, r);
  }

  // ---- extensions ----

  async updatePermissions(permissions: PermissionRule[], o: CallOpts = {}): Promise<SandboxInfo> {
    this._info = await this.client.updatePermissions(this.id, permissions, o);
    return this._info;
  }

  /** Replaces the egress allow-list (docs/NETWORK.md); new connections follow it on return. */
  async updateEgress(allowNet: string[], o: CallOpts & { anyPublic?: boolean } = {}): Promise<SandboxInfo> {
    this._info = await this.client.updateEgress(this.id, allowNet, o);
    return this._info;
  }

  explain(path: string, o: CallOpts = {}): Promise<PermissionExplanation> {
    return this.client.explainPermission(this.id, path, o);
  }

  changes(o: CallOpts = {}): Promise<ChangeSet> {
    return this.client.listChanges(this.id, o);
  }

  commit(o: CallOpts = {}): Promise<CommitResult> {
    return this.client.commitChanges(this.id, o);
  }

  /** Drops the pending changes; returns how many were discarded. */
  discard(o: CallOpts = {}): Promise<number> {
    return this.client.discardChanges(this.id, o);
  }

  audit(filter: { kind?: string; pathPrefix?: string; since?: Date; until?: Date; pageSize?: number; pageToken?: string } = {}): Promise<AuditPage> {
    return this.client.getAuditLog({ ...filter, sandboxId: this.id });
  }

  // ---- checkpoints of the pending changes (docs/CHECKPOINTS.md; syncMode "manual", "on_stop" or "never") ----

  checkpoint(name: string, o: CallOpts = {}): Promise<Checkpoint> {
    return this.client.createCheckpoint(this.id, name, o);
  }

  checkpoints(o: CallOpts = {}): Promise<Checkpoint[]> {
    return this.client.listCheckpoints(this.id, o);
  }

  /** The workspace becomes what it was at checkpoint `name` (refused while a command runs). */
  restore(name: string, o: CallOpts = {}): Promise<Checkpoint> {
    return this.client.restoreCheckpoint(this.id, name, o);
  }

  diff(name: string, o: CallOpts & { against?: string } = {}): Promise<FileChange[]> {
    return this.client.diffCheckpoint(this.id, name, o);
  }

  deleteCheckpoint(name: string, o: CallOpts = {}): Promise<void> {
    return this.client.deleteCheckpoint(this.id, name, o);
  }

  // ---- accesses to `ask` paths (docs/PERMISSIONS.md) ----

  approvals(o: CallOpts = {}): Promise<AccessRequest[]> {
    return this.client.listApprovals(this.id, o);
  }

  allow(approvalId: string, o: CallOpts & { decision?: Decision; remember?: string; priority?: number } = {}): Promise<AccessRequest> {
    return this.client.answerApproval(this.id, approvalId, o.decision ?? "allow", o);
  }

  deny(approvalId: string, o: CallOpts & { remember?: string; priority?: number } = {}): Promise<AccessRequest> {
    return this.client.answerApproval(this.id, approvalId, "deny", o);
  }

  /**
   * Answers every access to an `ask` path with `callback(request)`, one at a time: return (or
   * resolve to) an AccessDecision (decision + remember), a Decision, true (allow) or false/undefined
   * (deny); a callback that throws denies. `undefined` stops answering. Stops with the sandbox.
   */
  onAccessRequest(callback: AccessCallback | undefined): void {
    const old = this.watcher;
    this.watcher = undefined;
    void old?.stop();
    if (callback) this.watcher = new AccessWatcher(this.client, this.id, callback);
  }

  toString(): string {
    return `Sandbox(id=${this.id}, codebaseId=${this.codebaseId}, status=${this.status})`;
  }
}

// ---- helpers ----

async function checkDir(dir: string): Promise<string> {
  let st;
  try {
    st = await fsp.stat(dir);
  } catch {
    throw new InvalidConfigurationError(`fromLocal: path does not exist: ${dir}`);
  }
  if (!st.isDirectory()) throw new InvalidConfigurationError(`fromLocal: not a directory: ${dir}`);
  return resolve(dir);
}

/** Best effort, never masking the error being thrown. */
async function cleanup(cl: SandboxClient, sandboxId?: string, codebaseId?: string): Promise<void> {
  if (sandboxId) await cl.destroySandbox(sandboxId).catch(() => undefined);
  if (codebaseId) await cl.deleteCodebase(codebaseId).catch(() => undefined);
}

/**
 * Uploads the walked files: one UploadArchive stream (the tar is produced while it is sent, never
 * whole in memory), or, against a server without that extension, one UploadFiles stream per file.
 */
export async function uploadTree(
  cl: SandboxClient,
  codebaseId: string,
  walk: WalkResult,
  onProgress?: (p: UploadProgress) => void,
  signal?: AbortSignal,
): Promise<UploadReport> {
  const report: UploadReport = {
    uploaded: [],
    skipped: { ...walk.skipped },
    ignored: walk.ignored,
    bytesUploaded: 0,
    method: "archive",
  };
  const done = (f: LocalFile) => {
    report.uploaded.push(f.rel);
    report.bytesUploaded += f.size;
    onProgress?.({
      filesDone: report.uploaded.length,
      filesTotal: walk.files.length,
      bytesDone: report.bytesUploaded,
      bytesTotal: walk.totalBytes,
      path: f.rel,
    });
  };
  try {
    try {
      await cl.uploadArchive(
        codebaseId,
        tarStream(walk.files, { onFile: done, onSkip: (f, why) => (report.skipped[f.rel] = why) }, signal),
        { signal, sizeHint: walk.totalBytes },
      );
    } catch (e) {
      if (!(e instanceof NotSupportedError)) throw e;
      // An older server: nothing was stored; start over with one stream per file.
      report.uploaded = [];
      report.bytesUploaded = 0;
      report.method = "files";
      await uploadFiles(cl, codebaseId, walk.files, done, report, signal);
    }
    return report;
  } catch (e) {
    if (signal?.aborted) throw e;
    if (e instanceof SandboxError) {
      (e as SandboxError & { uploadReport?: UploadReport }).uploadReport = report;
      throw e;
    }
    throw new UploadError(`fromLocal: upload failed: ${(e as Error).message ?? e}`, report);
  }
}

async function uploadFiles(
  cl: SandboxClient,
  codebaseId: string,
  files: LocalFile[],
  done: (f: LocalFile) => void,
  report: UploadReport,
  signal?: AbortSignal,
): Promise<void> {
  const queue = [...files].reverse();
  const worker = async () => {
    for (let f = queue.pop(); f; f = queue.pop()) {
      signal?.throwIfAborted();
      let fh: fsp.FileHandle;
      try {
        fh = await fsp.open(f.absPath, "r");
      } catch (e) {
        report.skipped[f.rel] = `vanished or unreadable during upload: ${(e as Error).message}`;
        continue;
      }
      try {
        const size = (await fh.stat()).size;
        await cl.uploadFileStream(codebaseId, f.rel, readChunks(fh, size), size, { mode: f.mode, signal });
        f.size = size;
        done(f);
      } finally {
        await fh.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, Math.max(1, files.length)) }, worker));
}

/**
 * A file's bytes as UploadFiles chunks (64 KiB, the wire contract's size), read 1 MiB at a time:
 * one thread-pool round trip per 16 chunks instead of one per chunk.
 */
export async function* readChunks(fh: fsp.FileHandle, size: number): AsyncGenerator<Buffer> {
  for (let pos = 0; pos < size; ) {
    const buf = Buffer.allocUnsafe(Math.min(1 << 20, size - pos));
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) return;
    pos += bytesRead;
    for (let off = 0; off < bytesRead; off += 64 * 1024) {
      yield buf.subarray(off, Math.min(off + 64 * 1024, bytesRead));
    }
  }
}

// ---- file helpers: commands run in the sandbox, so the sandbox's permissions decide ----

/** A path as one shell word that no tool can take for an option (Python's shlex.quote rules). */
function arg(path: string): string {
  if (typeof path !== "string" || !path || path.includes("\0")) {
    throw new InvalidConfigurationError(`invalid path ${JSON.stringify(path)}`);
  }
  const p = path.startsWith("-") ? "./" + path : path;
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(p)) return p;
  return "'" + p.replace(/'/g, `'"'"'`) + "'";
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : i === 0 ? "/" : path.slice(0, i);
}

export function readCmd(path: string): string {
  return `cat -- ${arg(path)}`;
}

export function writeCmd(path: string): string {
  const d = dirname(path);
  const mk = d && d !== "." && d !== "/" ? `mkdir -p -- ${arg(d)} && ` : "";
  return `${mk}base64 -d > ${arg(path)}`;
}

export function listCmd(path: string, recursive: boolean): string {
  const depth = recursive ? "" : "-maxdepth 1 ";
  return (
    `find ${arg(path)} -mindepth 1 ${depth}-printf '%y\\t%s\\t%P\\n' 2>/dev/null || ` +
    `{ echo __AF_NO_PRINTF__; ls -1Ap -- ${arg(path)}; }`
  );
}

export function fileError(op: string, path: string, exitCode: number, stderr: string, command: string): SandboxError {
  const low = stderr.toLowerCase();
  if (low.includes("no such file") || low.includes("not found")) {
    return new FileNotFoundError(path, `${op} ${path}: ${stderr.trim()}`);
  }
  if (low.includes("permission denied") || low.includes("read-only file system") || low.includes("operation not permitted")) {
    return new PermissionDeniedError(`${op} ${path}: ${stderr.trim()} (the sandbox's permissions refuse it)`);
  }
  return new CommandExecutionError(command, exitCode, "", stderr);
}

function parseListing(path: string, r: ExecResult): FileInfo[] {
  const out: FileInfo[] = [];
  const lines = r.stdout.split("\n").filter((l) => l !== "");
  const join = (rel: string) => (path === "" || path === "." ? rel : `${path.replace(/\/+$/, "")}/${rel}`);
  if (lines[0] === "__AF_NO_PRINTF__") {
    for (const name of lines.slice(1)) {
      const isDir = name.endsWith("/");
      const n = name.replace(/\/+$/, "");
      out.push({ path: join(n), name: n, isDir, size: 0 });
    }
    return out;
  }
  for (const line of lines) {
    const parts = line.split("\t");
    if (parts.length < 3) continue;
    const [kind, size] = parts;
    const rel = parts.slice(2).join("\t");
    out.push({
      path: join(rel),
      name: rel.slice(rel.lastIndexOf("/") + 1),
      isDir: kind === "d",
      size: kind === "f" && /^\d+$/.test(size) ? Number(size) : 0,
    });
  }
  return out;
}
