// SandboxClient: the low-level client, one method per RPC of sandbox.v1 (promise-based).
//
// One gRPC channel, safe to share between concurrent calls. Every gRPC error leaves as an SDK
// error from the table in errors.ts; every plain call has a client deadline, so a dead server never
// hangs the caller; every call takes an AbortSignal.
import "./dispose.js";
import {
  ChannelCredentials,
  Metadata,
  status,
  type CallOptions,
  type ClientReadableStream,
  type ClientWritableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { once } from "node:events";

import * as cv from "./convert.js";
import {
  CommandTimeoutError,
  InvalidConfigurationError,
  SandboxError,
  fromGrpcError,
  type Subject,
} from "./errors.js";
import {
  CodebaseServiceClient,
  type ArchiveChunk,
  type UploadArchiveResult,
  type UploadChunk,
  type UploadResult as PbUploadResult,
} from "./gen/sandbox/v1/codebase.js";
import {
  AnswerApprovalRequest,
  CreateSandboxRequest,
  ExecRequest,
  SandboxServiceClient,
  SessionExecRequest,
  type Approval,
  type ExecOutput,
} from "./gen/sandbox/v1/sandbox.js";
import type {
  AccessAnswer,
  AccessRequest,
  ArchiveResult,
  AuditPage,
  ChangeSet,
  Checkpoint,
  Codebase,
  CommitResult,
  DeltaQuota,
  ExecResult,
  FileChange,
  FileInfo,
  OutputChunk,
  PermissionExplanation,
  PermissionRule,
  ResourceLimits,
  RuntimeType,
  SandboxInfo,
  Session,
  SyncMode,
  UploadResult,
} from "./types.js";

export const DEFAULT_ENDPOINT = "localhost:9000";
/** The wire contract's UploadFiles chunk size. */
export const UPLOAD_CHUNK = 64 * 1024;
/** gRPC's 4 MiB default is too small for big exec outputs. */
const MAX_MESSAGE = 256 * 1024 * 1024;
/** Client deadline (seconds) of every call that is not a command. */
export const DEFAULT_TIMEOUT = 30;
/** A command's own timeout is enforced by the server; this covers the transport. */
const EXEC_GRACE = 15;

export interface ClientOptions {
  /** "host:port"; default $AGENTFENSE_ENDPOINT, else localhost:9000. */
  endpoint?: string;
  /** Bearer token; default $AGENTFENSE_TOKEN. */
  token?: string;
  /** TLS with the system roots. */
  secure?: boolean;
  /** Client deadline in seconds of every call that is not a command (default 30). */
  timeout?: number;
}

export interface CallOpts {
  signal?: AbortSignal;
}

export interface ExecOptions extends CallOpts {
  stdin?: string;
  env?: Record<string, string>;
  /** Default /workspace. */
  workdir?: string;
  /** Seconds; the server kills the command's process tree after it (CommandTimeoutError). */
  timeout?: number;
}

export interface CreateSandboxOptions {
  permissions?: PermissionRule[];
  labels?: Record<string, string>;
  /** Seconds until the server destroys the sandbox. */
  expiresIn?: number;
  runtime?: RuntimeType;
  image?: string;
  resources?: ResourceLimits;
  syncMode?: SyncMode;
  /** Every public destination (docs/NETWORK.md); with `allowNet`, those rules too. */
  network?: boolean;
  /** Only these destinations ("pypi.org:443", "*.pythonhosted.org"); implies network. */
  allowNet?: string[];
  deltaQuota?: DeltaQuota;
  env?: Record<string, string>;
  /** Seconds an access to an `ask` path waits for a decision (default 60). */
  askTimeout?: number;
}

export function resolveEndpoint(endpoint?: string): string {
  let ep = endpoint || process.env.AGENTFENSE_ENDPOINT || DEFAULT_ENDPOINT;
  if (typeof ep !== "string" || !ep.trim() || /\s/.test(ep)) {
    throw new InvalidConfigurationError(`invalid endpoint ${JSON.stringify(ep)}; expected host:port`);
  }
  for (const scheme of ["grpc://", "http://"]) if (ep.startsWith(scheme)) ep = ep.slice(scheme.length);
  return ep;
}

export function resolveToken(token?: string): string | undefined {
  return token !== undefined ? token : process.env.AGENTFENSE_TOKEN || undefined;
}

export function needId(name: string, value: unknown): string {
  if (typeof value !== "string" || !value) {
    throw new InvalidConfigurationError(`${name} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

function needCommand(command: unknown): string {
  if (typeof command !== "string" || !command.trim()) {
    throw new InvalidConfigurationError(`command must be a non-empty string, got ${JSON.stringify(command)}`);
  }
  return command;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

function deadlineIn(seconds: number | undefined): Partial<CallOptions> {
  return seconds === undefined ? {} : { deadline: new Date(Date.now() + seconds * 1000) };
}

function chunkOf(type: OutputChunk["type"], data: Buffer): OutputChunk {
  return {
    type,
    data,
    get text() {
      return data.toString("utf8");
    },
  };
}

/**
 * Turns ExecOutput messages into typed chunks and keeps the totals; `result()` decodes the whole
 * output at once, so a multi-byte character split across chunks is not mangled there.
 */
class OutputCollector {
  exitCode?: number;
  private out: Buffer[] = [];
  private err: Buffer[] = [];
  private readonly started = Date.now();
  private ended?: number;
  constructor(readonly command: string) {}

  feed(msg: ExecOutput): OutputChunk | undefined {
    if (msg.exitCode !== undefined) {
      this.exitCode = msg.exitCode;
      this.ended = Date.now();
    }
    if (!msg.data?.length) return undefined;
    const type = cv.outputType(msg.type);
    (type === "stdout" ? this.out : this.err).push(msg.data);
    return chunkOf(type, msg.data);
  }

  result(): ExecResult {
    return {
      stdout: Buffer.concat(this.out).toString("utf8"),
      stderr: Buffer.concat(this.err).toString("utf8"),
      exitCode: this.exitCode ?? -1,
      durationMs: (this.ended ?? Date.now()) - this.started,
      command: this.command,
    };
  }
}

/**
 * A running command's output as an async iterable of typed chunks (stdout and stderr kept apart).
 * `exitCode` is set once the stream ended; `result()` drains what is left and returns an
 * ExecResult; `cancel()` (or an abort of the signal, or leaving a `for await` early) stops the
 * command's stream. Iterate it once.
 */
export class ExecStream implements AsyncIterable<OutputChunk>, AsyncDisposable {
  private consumed = false;
  private done = false;

  constructor(
    private readonly call: ClientReadableStream<ExecOutput>,
    private readonly collector: OutputCollector,
    private readonly subject: Subject,
    private readonly what: string,
    private readonly timeout: number | undefined,
    private readonly signal?: AbortSignal,
  ) {}

  get exitCode(): number | undefined {
    return this.collector.exitCode;
  }

  get command(): string {
    return this.collector.command;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<OutputChunk> {
    if (this.consumed) throw new SandboxError("an ExecStream can be iterated only once");
    this.consumed = true;
    const onAbort = () => this.call.cancel();
    this.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (this.signal?.aborted) this.call.cancel();
      for await (const msg of this.call as AsyncIterable<ExecOutput>) {
        const chunk = this.collector.feed(msg);
        if (chunk) yield chunk;
      }
      this.done = true;
    } catch (e) {
      this.done = true;
      if (this.signal?.aborted) throw abortReason(this.signal);
      const err = fromGrpcError(e, this.subject, this.what, "stream", this.timeout);
      if (err instanceof CommandTimeoutError) {
        throw new CommandTimeoutError(this.command, this.timeout, err.message, err.grpcCode);
      }
      throw err;
    } finally {
      this.signal?.removeEventListener("abort", onAbort);
      if (!this.done) this.call.cancel(); // the consumer left the loop early
    }
  }

  /** Drains the stream (if not yet iterated) and returns the whole result. */
  async result(): Promise<ExecResult> {
    if (!this.consumed) {
      for await (const _ of this) {
        // collected by the collector
      }
    }
    return this.collector.result();
  }

  cancel(): void {
    this.call.cancel();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.done) this.cancel();
  }
}

/**
 * A sandbox's access requests as an async iterable: the pending ones, then each new one and each
 * resolution (`state`), until the sandbox stops, `cancel()` is called or the loop is left.
 */
export class ApprovalStream implements AsyncIterable<AccessRequest> {
  constructor(
    private readonly call: ClientReadableStream<Approval>,
    private readonly sandboxId: string,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<AccessRequest> {
    try {
      for await (const msg of this.call as AsyncIterable<Approval>) yield cv.approvalFromPb(msg);
    } catch (e) {
      if ((e as ServiceError)?.code === status.CANCELLED) return;
      throw fromGrpcError(e, "sandbox", this.sandboxId, "watchApprovals", undefined);
    } finally {
      this.call.cancel();
    }
  }

  cancel(): void {
    this.call.cancel();
  }
}

type AnyClient = Record<string, (...args: unknown[]) => unknown>;

export class SandboxClient implements AsyncDisposable {
  readonly endpoint: string;
  readonly timeout: number;
  readonly secure: boolean;
  private readonly token?: string;
  private readonly sb: InstanceType<typeof SandboxServiceClient>;
  private readonly cb: InstanceType<typeof CodebaseServiceClient>;
  private readonly md: Metadata;
  private closed = false;

  constructor(options: ClientOptions = {}) {
    this.endpoint = resolveEndpoint(options.endpoint);
    this.token = resolveToken(options.token);
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.secure = options.secure ?? false;
    const creds = this.secure ? ChannelCredentials.createSsl() : ChannelCredentials.createInsecure();
    const opts = {
      "grpc.max_send_message_length": MAX_MESSAGE,
      "grpc.max_receive_message_length": MAX_MESSAGE,
      "grpc.keepalive_time_ms": 60_000,
      "grpc.keepalive_timeout_ms": 20_000,
    };
    this.sb = new SandboxServiceClient(this.endpoint, creds, opts);
    // The second client shares the first one's channel: one connection for everything.
    this.cb = new CodebaseServiceClient(this.endpoint, creds, {
      ...opts,
      channelOverride: this.sb.getChannel(),
    });
    this.md = new Metadata();
    if (this.token) this.md.set("authorization", `Bearer ${this.token}`);
  }

  // ---- plumbing ----

  private unary<Res>(
    client: object,
    method: string,
    req: unknown,
    subject: Subject | undefined,
    what: string,
    opts: { timeout?: number | null; signal?: AbortSignal; errTimeout?: number } = {},
  ): Promise<Res> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const seconds = opts.timeout === null ? undefined : (opts.timeout ?? this.timeout);
    return new Promise<Res>((resolve, reject) => {
      const onAbort = () => call.cancel();
      const call = ((client as AnyClient)[method] as (...a: unknown[]) => { cancel(): void }).call(
        client,
        req,
        this.md,
        deadlineIn(seconds),
        (err: ServiceError | null, res: Res) => {
          signal?.removeEventListener("abort", onAbort);
          if (err) {
            if (signal?.aborted) reject(abortReason(signal));
            else reject(fromGrpcError(err, subject, what, method, opts.errTimeout ?? seconds));
          } else {
            resolve(res);
          }
        },
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Closes the channel. Calls in flight fail. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sb.close();
    this.cb.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  // ---- codebases ----

  async createCodebase(name: string, ownerId = "default", o: CallOpts = {}): Promise<Codebase> {
    const req = { name: needId("name", name), ownerId: needId("ownerId", ownerId) };
    return cv.codebaseFromPb(await this.unary(this.cb, "createCodebase", req, "codebase", name, o));
  }

  async getCodebase(codebaseId: string, o: CallOpts = {}): Promise<Codebase> {
    const req = { codebaseId: needId("codebaseId", codebaseId) };
    return cv.codebaseFromPb(await this.unary(this.cb, "getCodebase", req, "codebase", codebaseId, o));
  }

  // Every item of a paged List call: requests with each next_page_token until there is none.
  private async paged<T>(
    client: object,
    method: string,
    req: object,
    items: string,
    convert: (x: never) => T,
    o: CallOpts,
  ): Promise<T[]> {
    const out: T[] = [];
    let pageToken = "";
    do {
      const resp = await this.unary<Record<string, unknown> & { nextPageToken: string }>(
        client, method, { ...req, pageToken }, undefined, "", o);
      out.push(...(resp[items] as never[]).map(convert));
      pageToken = resp.nextPageToken;
    } while (pageToken);
    return out;
  }

  /** Every codebase (of `ownerId` if given); follows pagination. */
  listCodebases(ownerId?: string, o: CallOpts & { pageSize?: number } = {}): Promise<Codebase[]> {
    const req = { ownerId: ownerId ?? "", pageSize: o.pageSize ?? 0 };
    return this.paged(this.cb, "listCodebases", req, "codebases", cv.codebaseFromPb, o);
  }

  async deleteCodebase(codebaseId: string, o: CallOpts = {}): Promise<void> {
    const req = { codebaseId: needId("codebaseId", codebaseId) };
    // Big trees take a while to delete.
    await this.unary(this.cb, "deleteCodebase", req, "codebase", codebaseId, {
      ...o,
      timeout: Math.max(this.timeout, 300),
    });
  }

  /**
   * Uploads one file (bytes, or a string encoded as UTF-8) with UploadFiles. `mode`: permission
   * bits to keep (e.g. 0o755).
   */
  async uploadFile(
    codebaseId: string,
    filePath: string,
    content: Buffer | Uint8Array | string,
    o: CallOpts & { mode?: number } = {},
  ): Promise<UploadResult> {
    const data = typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content);
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < data.length; i += UPLOAD_CHUNK) yield data.subarray(i, i + UPLOAD_CHUNK);
    }
    return this.uploadFileStream(codebaseId, filePath, chunks(), data.length, o);
  }

  /** UploadFiles from an iterable of chunks; `size` is announced and checked by the server. */
  async uploadFileStream(
    codebaseId: string,
    filePath: string,
    chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
    size: number,
    o: CallOpts & { mode?: number } = {},
  ): Promise<UploadResult> {
    needId("codebaseId", codebaseId);
    needId("filePath", filePath);
    const first: UploadChunk = {
      metadata: { codebaseId, filePath, totalSize: size, mode: (o.mode ?? 0) & 0o7777 },
    };
    const res = await this.clientStream<UploadChunk, PbUploadResult>(
      "uploadFiles", first, chunks, (data) => ({ data }), size, "codebase", codebaseId,
      `uploadFile ${filePath}`, o.signal);
    return cv.uploadFromPb(res);
  }

  /**
   * Uploads a tar archive (ustar/pax) into an existing codebase in one stream (UploadArchive
   * extension): extracted as it arrives, published when complete; nothing changes if it is
   * refused or cut off. `totalSize` (bytes of the archive, when known) lets the server tell a
   * complete stream from a cut one even before the tar's end marker.
   */
  async uploadArchive(
    codebaseId: string,
    chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
    o: CallOpts & { totalSize?: number; sizeHint?: number } = {},
  ): Promise<ArchiveResult> {
    needId("codebaseId", codebaseId);
    const first: ArchiveChunk = { metadata: { codebaseId, totalSize: o.totalSize ?? 0 } };
    const res = await this.clientStream<ArchiveChunk, UploadArchiveResult>(
      "uploadArchive", first, chunks, (data) => ({ data }), o.sizeHint ?? o.totalSize ?? 0,
      "codebase", codebaseId, "uploadArchive", o.signal);
    return cv.archiveFromPb(res);
  }

  // A client stream: the first message, then one message per chunk, with back-pressure (a full
  // send buffer pauses the producer) and an early stop when the server has already answered.
  private clientStream<Msg, Res>(
    method: "uploadFiles" | "uploadArchive",
    first: Msg,
    chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
    wrap: (data: Buffer) => Msg,
    size: number,
    subject: Subject,
    what: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<Res> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    // The deadline grows with the size: a slow link must not cut a big upload at the default.
    const seconds = this.timeout + size / (1024 * 1024);
    let settled = false;
    let call!: ClientWritableStream<Msg>;
    const result = new Promise<Res>((resolve, reject) => {
      call = (this.cb[method] as unknown as (...a: unknown[]) => ClientWritableStream<Msg>)(
        this.md,
        deadlineIn(seconds),
        (err: ServiceError | null, res: Res) => {
          settled = true;
          if (err) {
            if (signal?.aborted) reject(abortReason(signal));
            else {
              const subj = err.code === status.NOT_FOUND ? subject : undefined; // the codebase
              reject(fromGrpcError(err, subj, what, name, seconds));
            }
          } else {
            resolve(res);
          }
        },
      );
    });
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    const pump = async () => {
      try {
        call.write(first);
        for await (const data of chunks) {
          if (settled) break; // the server answered (an error) before the end
          if (!call.write(wrap(data))) {
            await Promise.race([once(call, "drain"), result.catch(() => undefined)]);
          }
        }
        if (!settled) call.end();
      } catch (e) {
        // The producer failed (a local file vanished...): abandon the call, report the cause.
        call.cancel();
        throw e;
      }
    };
    return (async () => {
      try {
        const [, res] = await Promise.all([pump(), result]);
        return res;
      } catch (e) {
        result.catch(() => undefined);
        throw e;
      } finally {
        signal?.removeEventListener("abort", onAbort);
      }
    })();
  }

  async downloadFile(codebaseId: string, filePath: string, o: CallOpts = {}): Promise<Buffer> {
    const req = { codebaseId: needId("codebaseId", codebaseId), filePath: needId("filePath", filePath) };
    const call = this.cb.downloadFile(req, this.md, deadlineIn(this.timeout * 4));
    const onAbort = () => call.cancel();
    o.signal?.addEventListener("abort", onAbort, { once: true });
    const parts: Buffer[] = [];
    try {
      for await (const ch of call as AsyncIterable<{ data: Buffer }>) parts.push(ch.data);
    } catch (e) {
      if (o.signal?.aborted) throw abortReason(o.signal);
      throw fromGrpcError(e, "file", filePath, "downloadFile");
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
    }
    return Buffer.concat(parts);
  }

  async listFiles(
    codebaseId: string,
    path = "",
    o: CallOpts & { recursive?: boolean } = {},
  ): Promise<FileInfo[]> {
    const req = { codebaseId: needId("codebaseId", codebaseId), path, recursive: o.recursive ?? false };
    const resp = await this.unary<{ files: never[] }>(
      this.cb, "listFiles", req, path ? "file" : "codebase", path || codebaseId, o);
    return resp.files.map(cv.fileInfoFromPb);
  }

  async deleteFile(codebaseId: string, filePath: string, o: CallOpts = {}): Promise<void> {
    const req = { codebaseId: needId("codebaseId", codebaseId), filePath: needId("filePath", filePath) };
    await this.unary(this.cb, "deleteFile", req, "file", filePath, o);
  }

  // ---- sandboxes ----

  /** A "pending" sandbox over the codebase. */
  async createSandbox(
    codebaseId: string,
    options: CreateSandboxOptions = {},
    o: CallOpts = {},
  ): Promise<SandboxInfo> {
    const rules = cv.egressRules(options.allowNet);
    const req = CreateSandboxRequest.fromPartial({
      codebaseId: needId("codebaseId", codebaseId),
      permissions: cv.rulesToPb(options.permissions ?? []),
      labels: cv.strMap("labels", options.labels),
      expiresIn: cv.duration(options.expiresIn, "expiresIn"),
      runtime: cv.runtimeToPb(options.runtime),
      image: options.image ?? "",
      resources: cv.resourcesToPb(options.resources),
      syncMode: cv.syncToPb(options.syncMode),
      // `network` alone: every public destination; `allowNet`: only those (implies network);
      // both: every public destination plus the listed ones (as the Python SDK does).
      network: (options.network ?? false) || rules.length > 0,
      egress: { allow: rules, anyPublic: (options.network ?? false) && rules.length > 0 },
      deltaQuota: cv.quotaToPb(options.deltaQuota),
      env: cv.strMap("env", options.env),
      askTimeout: cv.duration(options.askTimeout, "askTimeout"),
    });
    return cv.sandboxFromPb(await this.unary(this.sb, "createSandbox", req, "codebase", codebaseId, o));
  }

  // The calls whose request is the sandbox id alone; `minTimeout` (seconds) for the slow ones.
  private bySandbox<Res>(method: string, sandboxId: string, o: CallOpts, minTimeout?: number): Promise<Res> {
    const req = { sandboxId: needId("sandboxId", sandboxId) };
    const timeout = minTimeout === undefined ? undefined : Math.max(this.timeout, minTimeout);
    return this.unary<Res>(this.sb, method, req, "sandbox", sandboxId, { ...o, timeout });
  }

  async getSandbox(sandboxId: string, o: CallOpts = {}): Promise<SandboxInfo> {
    return cv.sandboxFromPb(await this.bySandbox("getSandbox", sandboxId, o));
  }

  /** Every sandbox (of `codebaseId` if given); follows pagination. */
  listSandboxes(codebaseId?: string, o: CallOpts & { pageSize?: number } = {}): Promise<SandboxInfo[]> {
    const req = { codebaseId: codebaseId ?? "", pageSize: o.pageSize ?? 0 };
    return this.paged(this.sb, "listSandboxes", req, "sandboxes", cv.sandboxFromPb, o);
  }

  async startSandbox(sandboxId: string, o: CallOpts = {}): Promise<SandboxInfo> {
    // Starting mounts a filesystem and may pull a container image: longer than a plain call.
    return cv.sandboxFromPb(await this.bySandbox("startSandbox", sandboxId, o, 120));
  }

  async stopSandbox(sandboxId: string, o: CallOpts = {}): Promise<SandboxInfo> {
    return cv.sandboxFromPb(await this.bySandbox("stopSandbox", sandboxId, o, 60));
  }

  async destroySandbox(sandboxId: string, o: CallOpts = {}): Promise<void> {
    await this.bySandbox("destroySandbox", sandboxId, o, 60);
  }

  // ---- exec ----

  private execRequest(sandboxId: string, command: string, o: ExecOptions): ExecRequest {
    return ExecRequest.fromPartial({
      sandboxId: needId("sandboxId", sandboxId),
      command: needCommand(command),
      stdin: o.stdin ?? "",
      env: cv.strMap("env", o.env),
      workdir: o.workdir ?? "",
      timeout: cv.duration(o.timeout),
    });
  }

  /**
   * Runs `/bin/sh -c command`. A non-zero exit is a result; outliving `timeout` (seconds) throws
   * CommandTimeoutError; a stopped sandbox throws SandboxNotRunningError; an abort of `signal`
   * cancels the call (the server then kills the command) and rejects with the signal's reason.
   */
  async exec(sandboxId: string, command: string, o: ExecOptions = {}): Promise<ExecResult> {
    const req = this.execRequest(sandboxId, command, o);
    try {
      const resp = await this.unary<never>(this.sb, "exec", req, "exec", sandboxId, {
        signal: o.signal,
        timeout: o.timeout === undefined ? null : o.timeout + EXEC_GRACE,
        errTimeout: o.timeout,
      });
      return cv.execFromPb(resp, command);
    } catch (e) {
      throw this.timeoutFor(e, command, o.timeout);
    }
  }

  /** The command's output as it is produced (see ExecStream). */
  execStream(sandboxId: string, command: string, o: ExecOptions = {}): ExecStream {
    const req = this.execRequest(sandboxId, command, o);
    const deadline = deadlineIn(o.timeout === undefined ? undefined : o.timeout + EXEC_GRACE);
    const call = this.sb.execStream(req, this.md, deadline);
    return new ExecStream(call, new OutputCollector(command), "exec", sandboxId, o.timeout, o.signal);
  }

  // A timeout names the command, not the sandbox.
  private timeoutFor(e: unknown, command: string, timeout?: number): unknown {
    if (e instanceof CommandTimeoutError) {
      return new CommandTimeoutError(command, timeout, e.message, e.grpcCode);
    }
    return e;
  }

  // ---- sessions ----

  async createSession(
    sandboxId: string,
    o: CallOpts & { shell?: string; env?: Record<string, string> } = {},
  ): Promise<Session> {
    const req = { sandboxId: needId("sandboxId", sandboxId), shell: o.shell ?? "", env: cv.strMap("env", o.env) };
    return cv.sessionFromPb(await this.unary(this.sb, "createSession", req, "exec", sandboxId, o));
  }

  async getSession(sessionId: string, o: CallOpts = {}): Promise<Session> {
    const req = { sessionId: needId("sessionId", sessionId) };
    return cv.sessionFromPb(await this.unary(this.sb, "getSession", req, "session", sessionId, o));
  }

  async listSessions(sandboxId: string, o: CallOpts = {}): Promise<Session[]> {
    const resp = await this.bySandbox<{ sessions: never[] }>("listSessions", sandboxId, o);
    return resp.sessions.map(cv.sessionFromPb);
  }

  async destroySession(sessionId: string, o: CallOpts = {}): Promise<void> {
    const req = { sessionId: needId("sessionId", sessionId) };
    await this.unary(this.sb, "destroySession", req, "session", sessionId, o);
  }

  private sessionExecRequest(sessionId: string, command: string, timeout?: number): SessionExecRequest {
    return SessionExecRequest.fromPartial({
      sessionId: needId("sessionId", sessionId),
      command: needCommand(command),
      timeout: cv.duration(timeout),
    });
  }

  async sessionExec(
    sessionId: string,
    command: string,
    o: CallOpts & { timeout?: number } = {},
  ): Promise<ExecResult> {
    const req = this.sessionExecRequest(sessionId, command, o.timeout);
    try {
      const resp = await this.unary<never>(this.sb, "sessionExec", req, "session_exec", sessionId, {
        signal: o.signal,
        timeout: o.timeout === undefined ? null : o.timeout + EXEC_GRACE,
        errTimeout: o.timeout,
      });
      return cv.execFromPb(resp, command);
    } catch (e) {
      throw this.timeoutFor(e, command, o.timeout);
    }
  }

  sessionExecStream(
    sessionId: string,
    command: string,
    o: CallOpts & { timeout?: number } = {},
  ): ExecStream {
    const req = this.sessionExecRequest(sessionId, command, o.timeout);
    const deadline = deadlineIn(o.timeout === undefined ? undefined : o.timeout + EXEC_GRACE);
    const call = this.sb.sessionExecStream(req, this.md, deadline);
    return new ExecStream(call, new OutputCollector(command), "session_exec", sessionId, o.timeout, o.signal);
  }

  // ---- AgentFense extensions ----

  /** Replaces the sandbox's rules; on a running sandbox they apply before this returns. */
  async updatePermissions(sandboxId: string, permissions: PermissionRule[], o: CallOpts = {}): Promise<SandboxInfo> {
    const req = { sandboxId: needId("sandboxId", sandboxId), permissions: cv.rulesToPb(permissions) };
    return cv.sandboxFromPb(await this.unary(this.sb, "updatePermissions", req, "sandbox", sandboxId, o));
  }

  /**
   * Replaces the egress allow-list; on a running sandbox new connections follow it (and open ones
   * it no longer allows are closed) before this returns.
   */
  async updateEgress(sandboxId: string, allowNet: string[], o: CallOpts & { anyPublic?: boolean } = {}): Promise<SandboxInfo> {
    const req = {
      sandboxId: needId("sandboxId", sandboxId),
      egress: { allow: cv.egressRules(allowNet), anyPublic: o.anyPublic ?? false },
    };
    return cv.sandboxFromPb(await this.unary(this.sb, "updateEgress", req, "sandbox", sandboxId, o));
  }

  async explainPermission(sandboxId: string, path: string, o: CallOpts = {}): Promise<PermissionExplanation> {
    const req = { sandboxId: needId("sandboxId", sandboxId), path: needId("path", path) };
    return cv.explainFromPb(await this.unary(this.sb, "explainPermission", req, "sandbox", sandboxId, o));
  }

  explain(sandboxId: string, path: string, o: CallOpts = {}): Promise<PermissionExplanation> {
    return this.explainPermission(sandboxId, path, o);
  }

  async listChanges(sandboxId: string, o: CallOpts = {}): Promise<ChangeSet> {
    return cv.changesFromPb(await this.bySandbox("listChanges", sandboxId, o));
  }

  async commitChanges(sandboxId: string, o: CallOpts = {}): Promise<CommitResult> {
    return cv.commitFromPb(await this.bySandbox("commitChanges", sandboxId, o, 120));
  }

  /** Drops the pending changes; returns how many were discarded. */
  async discardChanges(sandboxId: string, o: CallOpts = {}): Promise<number> {
    const resp = await this.bySandbox<{ discarded: number }>("discardChanges", sandboxId, o);
    return resp.discarded;
  }

  async getAuditLog(
    filter: {
      sandboxId?: string;
      kind?: string;
      pathPrefix?: string;
      since?: Date;
      until?: Date;
      pageSize?: number;
      pageToken?: string;
    } = {},
    o: CallOpts = {},
  ): Promise<AuditPage> {
    const req = {
      sandboxId: filter.sandboxId ?? "",
      kind: filter.kind ?? "",
      pathPrefix: filter.pathPrefix ?? "",
      since: filter.since,
      until: filter.until,
      pageSize: filter.pageSize ?? 0,
      pageToken: filter.pageToken ?? "",
    };
    const resp = await this.unary<{ events: never[]; nextPageToken: string }>(
      this.sb, "getAuditLog", req, filter.sandboxId ? "sandbox" : undefined, filter.sandboxId ?? "", o);
    return { events: resp.events.map(cv.auditFromPb), nextPageToken: resp.nextPageToken };
  }

  // ---- checkpoints (docs/CHECKPOINTS.md) ----

  private byName<Res>(method: string, sandboxId: string, name: string, o: CallOpts, extra = {}): Promise<Res> {
    if (typeof name !== "string" || !name) {
      throw new InvalidConfigurationError(`checkpoint name must be a non-empty string, got ${JSON.stringify(name)}`);
    }
    const req = { sandboxId: needId("sandboxId", sandboxId), name, ...extra };
    return this.unary<Res>(this.sb, method, req, "sandbox", sandboxId, { ...o, timeout: Math.max(this.timeout, 120) });
  }

  async createCheckpoint(sandboxId: string, name: string, o: CallOpts = {}): Promise<Checkpoint> {
    return cv.checkpointFromPb(await this.byName("createCheckpoint", sandboxId, name, o));
  }

  async listCheckpoints(sandboxId: string, o: CallOpts = {}): Promise<Checkpoint[]> {
    const resp = await this.bySandbox<{ checkpoints: never[] }>("listCheckpoints", sandboxId, o);
    return resp.checkpoints.map(cv.checkpointFromPb);
  }

  /** The workspace becomes what it was at checkpoint `name` (refused while a command runs). */
  async restoreCheckpoint(sandboxId: string, name: string, o: CallOpts = {}): Promise<Checkpoint> {
    return cv.checkpointFromPb(await this.byName("restoreCheckpoint", sandboxId, name, o));
  }

  /** What changed from checkpoint `name` to `against` (another checkpoint; default: the workspace now). */
  async diffCheckpoint(sandboxId: string, name: string, o: CallOpts & { against?: string } = {}): Promise<FileChange[]> {
    const resp = await this.byName<{ changes: never[] }>("diffCheckpoint", sandboxId, name, o,
      { against: o.against ?? "" });
    return cv.changesFromPb({ changes: resp.changes, deltaBytes: 0, deltaInodes: 0 }).changes;
  }

  async deleteCheckpoint(sandboxId: string, name: string, o: CallOpts = {}): Promise<void> {
    await this.byName("deleteCheckpoint", sandboxId, name, o);
  }

  // ---- approvals of `ask` paths (docs/PERMISSIONS.md) ----

  async listApprovals(sandboxId: string, o: CallOpts = {}): Promise<AccessRequest[]> {
    const resp = await this.bySandbox<{ approvals: never[] }>("listApprovals", sandboxId, o);
    return resp.approvals.map(cv.approvalFromPb);
  }

  /**
   * Decides a waiting access: "allow" (what it needs), "allow_read", "allow_write" or "deny", or an
   * AccessDecision with `remember` ("once", "path" or a glob pattern: it then becomes a rule).
   */
  async answerApproval(
    sandboxId: string,
    approvalId: string,
    decision: AccessAnswer,
    o: CallOpts & { remember?: string; priority?: number; answeredBy?: string } = {},
  ): Promise<AccessRequest> {
    const d = cv.toDecision(decision);
    const priority = o.priority ?? d.priority;
    const req = AnswerApprovalRequest.fromPartial({
      sandboxId: needId("sandboxId", sandboxId),
      approvalId: needId("approvalId", approvalId),
      decision: cv.DECISION_TO_PB[d.decision],
      remember: o.remember ?? d.remember ?? "once",
      answeredBy: o.answeredBy ?? "",
      ...(priority === undefined ? {} : { priority }),
    });
    return cv.approvalFromPb(await this.unary(this.sb, "answerApproval", req, "sandbox", sandboxId, o));
  }

  /** The access requests as they come (see ApprovalStream). */
  watchApprovals(sandboxId: string): ApprovalStream {
    const call = this.sb.watchApprovals({ sandboxId: needId("sandboxId", sandboxId) }, this.md);
    return new ApprovalStream(call, sandboxId);
  }
}
