// @agentfense/sdk: TypeScript SDK for AgentFense, a least-privilege filesystem sandbox for AI agents.
//
// High level: Sandbox (fromLocal / fromCodebase / connect) and SessionWrapper. Low level:
// SandboxClient (one method per RPC). Types, presets, the ignore rules of fromLocal and the error
// hierarchy are exported here.
export { Sandbox, SessionWrapper, raiseOnError, readChunks, uploadTree } from "./sandbox.js";
export type { AccessCallback, FromLocalOptions, RunOptions, SandboxOptions } from "./sandbox.js";
export {
  ApprovalStream,
  DEFAULT_ENDPOINT,
  DEFAULT_TIMEOUT,
  ExecStream,
  SandboxClient,
  resolveEndpoint,
  resolveToken,
} from "./client.js";
export type { CallOpts, ClientOptions, CreateSandboxOptions, ExecOptions } from "./client.js";
export {
  AuthenticationError,
  CodebaseNotFoundError,
  CommandExecutionError,
  CommandTimeoutError,
  ConflictError,
  ConnectionError,
  ERROR_TABLE,
  FileNotFoundError,
  InvalidConfigurationError,
  NotSupportedError,
  PermissionDeniedError,
  ResourceLimitExceededError,
  SandboxError,
  SandboxNotFoundError,
  SandboxNotRunningError,
  SessionClosedError,
  SessionNotFoundError,
  UploadError,
  fromGrpcError,
} from "./errors.js";
export {
  buildRules,
  describePreset,
  extendPreset,
  getPreset,
  listPresets,
  registerPreset,
  toRules,
} from "./presets.js";
export {
  DEFAULT_IGNORES,
  compilePattern,
  isIgnored,
  parseIgnoreText,
  ruleMatches,
  walkTree,
} from "./ignore.js";
export type { IgnoreRule, LocalFile, WalkOptions, WalkResult } from "./ignore.js";
export { tarStream } from "./tar.js";
export type * from "./types.js";

export const VERSION = "0.1.0";
