// Every error type of the SDK, actually thrown by a real server (or by the SDK where Python's is),
// and the one gRPC-code → error table and the presets checked against the Python SDK's.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { credentials, makeGenericClientConstructor, Metadata } from "@grpc/grpc-js";

import {
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
  Sandbox,
  SandboxClient,
  SandboxError,
  SandboxNotFoundError,
  SandboxNotRunningError,
  SessionClosedError,
  SessionNotFoundError,
  UploadError,
  fromGrpcError,
  getPreset,
  listPresets,
  uploadTree,
} from "../dist/index.js";
import { freePort } from "./server.mjs";
import { make, python, tempDir } from "./helpers.mjs";

test("the error table is the Python SDK's", () => {
  const py = python(`
import json
from agentfense.exceptions import ERROR_TABLE
print(json.dumps({f"{c.value[0]}:{s or ''}": cls.__name__ for (c, s), cls in ERROR_TABLE.items()}))`);
  const ts = Object.fromEntries([...ERROR_TABLE].map(([k, cls]) => [k, cls.name]));
  assert.deepEqual(ts, py);
});

test("the presets are the Python SDK's", () => {
  const py = python(`
import json
from agentfense.presets import get_preset_dicts, list_presets
print(json.dumps({n: get_preset_dicts(n) for n in list_presets()}))`);
  assert.deepEqual(listPresets(), Object.keys(py).sort());
  for (const name of listPresets()) assert.deepEqual(getPreset(name), py[name], name);
});

describe("errors from a real server", () => {
  const client = new SandboxClient();
  let sb;
  let dir;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "af-ts-err-"));
    make(dir, { "a.txt": "a" });
    sb = await Sandbox.fromLocal(dir, { client });
  });
  after(async () => {
    await sb?.destroy();
    client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("not found: sandbox, codebase, session, file", async () => {
    await assert.rejects(client.getSandbox("sb_00000000000000ff"), (e) => {
      assert.ok(e instanceof SandboxNotFoundError);
      assert.equal(e.sandboxId, "sb_00000000000000ff");
      assert.equal(e.grpcCode, 5);
      return true;
    });
    await assert.rejects(client.exec("sb_00000000000000ff", "true"), SandboxNotFoundError);
    await assert.rejects(client.getCodebase("cb_00000000000000ff"), CodebaseNotFoundError);
    await assert.rejects(Sandbox.fromCodebase("cb_00000000000000ff", { client }), CodebaseNotFoundError);
    await assert.rejects(client.getSession("sess_00000000000000ff"), SessionNotFoundError);
    await assert.rejects(client.sessionExec("sess_00000000000000ff", "true"), SessionNotFoundError);
    await assert.rejects(client.downloadFile(sb.codebaseId, "nope.txt"), FileNotFoundError);
    await assert.rejects(sb.readFile("nope.txt"), FileNotFoundError);
  });

  test("invalid input: locally and from the server", async () => {
    await assert.rejects(Sandbox.fromLocal(dir, { preset: "no-such-preset", client }), InvalidConfigurationError);
    await assert.rejects(Sandbox.fromLocal(join(dir, "missing"), { client }), InvalidConfigurationError);
    await assert.rejects(sb.run(""), InvalidConfigurationError);
    await assert.rejects(sb.run("true", { timeout: -1 }), InvalidConfigurationError);
    assert.throws(() => new SandboxClient({ endpoint: "bad endpoint" }), InvalidConfigurationError);
    // The server refuses a path that climbs out of the codebase.
    await assert.rejects(client.listFiles(sb.codebaseId, "../etc"), (e) => {
      assert.ok(e instanceof InvalidConfigurationError);
      assert.equal(e.grpcCode, 3);
      return true;
    });
    await assert.rejects(client.createSandbox(sb.codebaseId, { permissions: [{ pattern: "/a/../b" }] }),
      InvalidConfigurationError);
  });

  test("conflicts: not running, session closed, codebase in use", async () => {
    const other = await Sandbox.fromCodebase(sb.codebaseId, { client, autoStart: false });
    try {
      await assert.rejects(other.run("true"), (e) => {
        assert.ok(e instanceof SandboxNotRunningError);
        assert.ok(e instanceof ConflictError);
        return true;
      });
    } finally {
      await other.destroy();
    }
    const s = await sb.session();
    await s.run("exit 0");
    await assert.rejects(client.sessionExec(s.id, "true"), SessionClosedError);
    await assert.rejects(client.deleteCodebase(sb.codebaseId), ConflictError);
  });

  test("timeouts, failed commands, denied file access", async () => {
    await assert.rejects(sb.run("sleep 10", { timeout: 0.5 }), CommandTimeoutError);
    await assert.rejects(sb.run("false", { raiseOnError: true }), CommandExecutionError);
    await assert.rejects(sb.writeFile("a.txt", "no"), PermissionDeniedError); // agent-safe: read only
  });

  test("authentication, connection, unsupported call, size limit", async (t) => {
    const wrong = new SandboxClient({ token: "wrong-token" });
    await assert.rejects(wrong.listCodebases(), (e) => {
      assert.ok(e instanceof AuthenticationError);
      assert.match(e.message, /AGENTFENSE_TOKEN/);
      return true;
    });
    wrong.close();
    const nowhere = new SandboxClient({ endpoint: `127.0.0.1:${await freePort()}`, timeout: 5 });
    await assert.rejects(nowhere.listCodebases(), ConnectionError);
    nowhere.close();
    // A method this server does not have: UNIMPLEMENTED from the real server.
    const Raw = makeGenericClientConstructor({
      noSuchMethod: {
        path: "/sandbox.v1.SandboxService/NoSuchMethod",
        requestStream: false,
        responseStream: false,
        requestSerialize: (x) => x,
        requestDeserialize: (x) => x,
        responseSerialize: (x) => x,
        responseDeserialize: (x) => x,
      },
    });
    const raw = new Raw(process.env.AGENTFENSE_ENDPOINT, credentials.createInsecure());
    const md = new Metadata();
    md.set("authorization", `Bearer ${process.env.AGENTFENSE_TOKEN}`);
    const err = await new Promise((res) => raw.noSuchMethod(Buffer.alloc(0), md, (e) => res(e)));
    raw.close();
    assert.ok(fromGrpcError(err) instanceof NotSupportedError);
    // The test server caps uploads at 8 MiB (scripts/run-tests.mjs).
    await assert.rejects(client.uploadFile(sb.codebaseId, "big.bin", Buffer.alloc(9 << 20)),
      ResourceLimitExceededError);
    const big = tempDir(t, "af-ts-big-");
    make(big, { "huge.bin": Buffer.alloc(9 << 20) });
    await assert.rejects(Sandbox.fromLocal(big, { client }), (e) => {
      assert.ok(e instanceof ResourceLimitExceededError, String(e));
      assert.match(e.message, /huge\.bin/);
      return true;
    });
    // ...and the failed fromLocal left no codebase behind.
    assert.ok(!(await client.listCodebases("sdk")).some((c) => c.name.startsWith("af-ts-big-")));
  });

  test("UploadError: a local file that cannot be read as the walk saw it", async (t) => {
    // sysfs files announce 4096 bytes and hold fewer: the archive's header already promised them.
    const short = ["/sys/kernel/uevent_seqnum", "/sys/kernel/profiling", "/sys/power/state"].find(existsSync);
    assert.ok(short, "no sysfs attribute file found");
    const cb = await client.createCodebase("upload-error", "sdk");
    t.after(() => client.deleteCodebase(cb.id));
    const walk = { files: [{ rel: "short", absPath: short, size: 4096, mode: 0o644 }], skipped: {}, ignored: 0, totalBytes: 4096 };
    await assert.rejects(uploadTree(client, cb.id, walk), (e) => {
      assert.ok(e instanceof UploadError, String(e));
      assert.ok(e instanceof SandboxError);
      assert.match(e.message, /shrank/);
      return true;
    });
    assert.equal((await client.getCodebase(cb.id)).fileCount, 0); // the cut archive left nothing
  });
});

test("local checks need no server", () => {
  assert.throws(() => getPreset("nope"), InvalidConfigurationError);
});
