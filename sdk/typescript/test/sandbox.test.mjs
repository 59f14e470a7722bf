// The SDK against a real agentfense-server (started by scripts/run-tests.mjs; endpoint and token
// come from AGENTFENSE_ENDPOINT / AGENTFENSE_TOKEN): fromLocal with ignored and secret files,
// hidden/view/read/write through the file helpers, run, streaming, sessions, timeouts, aborts,
// changes, permissions, and 20 sandboxes at once. One codebase and a few sandboxes are shared
// across the tests of this file to keep the suite quick.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  CommandExecutionError,
  CommandTimeoutError,
  FileNotFoundError,
  InvalidConfigurationError,
  PermissionDeniedError,
  Sandbox,
  SandboxClient,
  SessionClosedError,
  describePreset,
  extendPreset,
  listPresets,
  registerPreset,
  tarStream,
} from "../dist/index.js";
import { make, tempDir } from "./helpers.mjs";

const RULES = [
  { pattern: "**/*", permission: "read" },
  { pattern: "/docs/**", permission: "view", priority: 10 },
  { pattern: "/output/**", permission: "write", priority: 10 },
  { pattern: "**/secrets/**", permission: "none", priority: 100 },
];

describe("a sandbox from a local tree", () => {
  let dir;
  let sb;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "af-ts-tree-"));
    make(dir, {
      ".gitignore": "build/\n*.log\n",
      "src/main.py": "print('hello')\n",
      "run.sh": "#!/bin/sh\necho ran\n",
      "build/out.o": "OBJ",
      "debug.log": "LOG",
      ".env": "API_KEY=CANARY-ENV",
      "secrets/api.key": "CANARY-SECRET",
      "docs/guide.md": "# guide\n",
      "output/.keep": "",
    });
    chmodSync(join(dir, "run.sh"), 0o755);
    mkdirSync(join(dir, "empty"));
    sb = await Sandbox.fromLocal(dir, { preset: null, permissions: RULES });
  });
  after(async () => {
    await sb?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("fromLocal uploads one archive, skipping ignored files and reporting what it left", async () => {
    const r = sb.uploadReport;
    assert.equal(r.method, "archive");
    assert.deepEqual([...r.uploaded].sort(), [".gitignore", "docs/guide.md", "output/.keep", "run.sh",
      "secrets/api.key", "src/main.py"]);
    assert.ok(r.ignored >= 3); // build/, debug.log, .env (a default)
    assert.match(r.skipped.empty, /empty directory/);
    assert.equal(sb.status, "running");
    assert.equal(sb.codebase.fileCount, 6);
    // Nothing ignored reached the server, not even in the codebase the sandbox cannot see.
    const files = (await sb.client.listFiles(sb.codebaseId, "", { recursive: true })).map((f) => f.path);
    assert.ok(!files.includes(".env") && !files.includes("debug.log") && !files.includes("build"));
  });

  test("run: stdout, stderr, exit code, duration, env, workdir, exec bit", async () => {
    const r = await sb.run("echo out; echo err >&2; exit 3");
    assert.equal(r.stdout, "out\n");
    assert.equal(r.stderr, "err\n");
    assert.equal(r.exitCode, 3);
    assert.ok(r.durationMs >= 0);
    assert.equal((await sb.run("echo $GREETING", { env: { GREETING: "hi" } })).stdout, "hi\n");
    assert.equal((await sb.run("pwd", { workdir: "/workspace/src" })).stdout, "/workspace/src\n");
    assert.equal((await sb.run("./run.sh")).stdout, "ran\n");
    await assert.rejects(sb.run("exit 7", { raiseOnError: true }), (e) => {
      assert.ok(e instanceof CommandExecutionError);
      assert.equal(e.exitCode, 7);
      return true;
    });
  });

  test("hidden, view, read and write through the file helpers", async () => {
    // none: as if absent, in listings and on access.
    await assert.rejects(sb.readFile("secrets/api.key"), FileNotFoundError);
    assert.ok(!(await sb.listFiles(".")).some((f) => f.name === "secrets"));
    const cat = await sb.run("cat secrets/api.key; ls -a");
    assert.ok(!cat.stdout.includes("CANARY") && !cat.stdout.includes("secrets"));
    // view: listed, not readable.
    const docs = await sb.listFiles("docs");
    assert.deepEqual(docs.map((f) => f.name), ["guide.md"]);
    await assert.rejects(sb.readFile("docs/guide.md"), PermissionDeniedError);
    // read: readable, not writable.
    assert.equal(await sb.readFile("src/main.py"), "print('hello')\n");
    await assert.rejects(sb.writeFile("src/main.py", "x"), PermissionDeniedError);
    // write: creates and round-trips binary content.
    const bytes = Buffer.from([0, 1, 2, 255, 10, 13]);
    await sb.writeFile("output/sub/data.bin", bytes);
    assert.deepEqual(await sb.readFileBytes("output/sub/data.bin"), bytes);
    const listed = await sb.listFiles("output", { recursive: true });
    assert.ok(listed.some((f) => f.path === "output/sub/data.bin" && f.size === 6 && !f.isDir));
    assert.ok(listed.some((f) => f.path === "output/sub" && f.isDir));
  });

  test("stream: typed chunks in order, the exit code, result()", async () => {
    const s = sb.stream("echo one; echo two >&2; sleep 0.2; echo three; exit 4");
    const seen = [];
    for await (const ch of s) seen.push([ch.type, ch.text]);
    assert.deepEqual(seen.filter(([t]) => t === "stdout").map(([, x]) => x).join(""), "one\nthree\n");
    assert.deepEqual(seen.filter(([t]) => t === "stderr").map(([, x]) => x).join(""), "two\n");
    assert.equal(s.exitCode, 4);
    const r = await sb.stream("printf abc").result();
    assert.equal(r.stdout, "abc");
    assert.equal(r.exitCode, 0);
  });

  test("timeouts and cancellation", async () => {
    const t0 = Date.now();
    await assert.rejects(sb.run("sleep 20", { timeout: 1 }), (e) => {
      assert.ok(e instanceof CommandTimeoutError, String(e));
      assert.equal(e.command, "sleep 20");
      return true;
    });
    assert.ok(Date.now() - t0 < 10_000);
    // An AbortSignal cancels the call; the server kills the command.
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const t1 = Date.now();
    await assert.rejects(sb.run("sleep 31.5", { signal: ac.signal }), { name: "AbortError" });
    assert.ok(Date.now() - t1 < 5_000);
    // A stream too, and a signal aborted before the call starts.
    const ac2 = new AbortController();
    const s = sb.stream("echo first; sleep 32.5", { signal: ac2.signal });
    await assert.rejects(
      (async () => {
        for await (const ch of s) if (ch.text.includes("first")) ac2.abort();
      })(),
      { name: "AbortError" },
    );
    await assert.rejects(sb.run("true", { signal: AbortSignal.abort() }), { name: "AbortError" });
    // Nothing of the aborted commands is left running.
    let left = "";
    for (let i = 0; i < 50; i++) {
      left = (await sb.run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")).stdout;
      if (!left.includes("sleep 31.5") && !left.includes("sleep 32.5")) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(!left.includes("sleep 31.5") && !left.includes("sleep 32.5"), left);
  });

  test("sessions: state persists, per-command timeouts, exit closes it", async () => {
    const s = await sb.session({ env: { START: "s" } });
    try {
      await s.run("cd /workspace/src && export FOO=bar && greet() { echo hi $1; }");
      assert.equal((await s.run("pwd")).stdout, "/workspace/src\n");
      assert.equal((await s.run("echo $FOO $START; greet you")).stdout, "bar s\nhi you\n");
      await assert.rejects(s.run("sleep 20", { timeout: 1 }), CommandTimeoutError);
      assert.equal((await s.run("echo still here")).stdout, "still here\n");
      const st = s.stream("echo a; echo b >&2");
      const r = await st.result();
      assert.deepEqual([r.stdout, r.stderr, r.exitCode], ["a\n", "b\n", 0]);
      assert.equal(await s.status(), "active");
      const listed = await sb.client.listSessions(sb.id);
      assert.ok(listed.some((x) => x.id === s.id));
    } finally {
      await s[Symbol.asyncDispose](); // what `await using` calls (Node 20 cannot parse it in .mjs)
    }
    assert.ok(!(await sb.client.listSessions(sb.id)).some((x) => x.id === s.id && x.status === "active"));
    const s2 = await sb.session();
    await s2.run("exit");
    await assert.rejects(s2.run("echo x"), SessionClosedError);
    await s2.close();
    await assert.rejects(s2.run("echo x"), SessionClosedError); // closed locally too
  });

  test("updatePermissions and explain", async () => {
    const ex = await sb.explain("/docs/guide.md");
    assert.equal(ex.permission, "view");
    assert.equal(ex.decidingRule, 1);
    assert.ok(ex.reason.length > 0);
    const info = await sb.updatePermissions([...RULES, { pattern: "/docs/**", permission: "read", priority: 20 }]);
    assert.equal(info.permissions.length, RULES.length + 1);
    assert.equal(await sb.readFile("docs/guide.md"), "# guide\n");
    await sb.updatePermissions(RULES);
    await assert.rejects(sb.readFile("docs/guide.md"), PermissionDeniedError);
    const audit = await sb.audit({ kind: "denied" });
    assert.ok(audit.events.some((e) => e.path.includes("guide.md")));
  });

  test("its own host identity, and no network unless asked", () => {
    assert.ok(sb.info.hostUid > 0 && sb.info.hostUid !== 65534);
    assert.equal(sb.info.network, false);
    assert.equal(sb.info.egress, undefined);
  });
});

test("egress: allowNet on create, updateEgress, rules validated (docs/NETWORK.md)", async (t) => {
  const client = new SandboxClient();
  t.after(() => client.close());
  const cb = await client.createCodebase("ts-egress", "ts");
  // One string instead of a list is refused before any call.
  await assert.rejects(client.createSandbox(cb.id, { allowNet: "pypi.org" }), InvalidConfigurationError);
  let info = await client.createSandbox(cb.id, {
    permissions: RULES,
    allowNet: ["pypi.org:443", "*.pythonhosted.org"],
  });
  assert.equal(info.network, true);
  assert.deepEqual(info.egress?.allow.length, 2);
  assert.equal(info.egress?.anyPublic, false);
  const sb = await Sandbox.connect(info.id, { client });
  await sb.start();
  info = await sb.updateEgress([]);
  assert.deepEqual(info.egress, { allow: [], anyPublic: false });
  info = await sb.updateEgress(["github.com:443"], { anyPublic: true });
  assert.deepEqual(info.egress?.allow, ["github.com:443"]);
  assert.equal(info.egress?.anyPublic, true);
  // The server's one validator names a bad rule.
  await assert.rejects(sb.updateEgress(["bad rule with spaces"]), InvalidConfigurationError);
  // A bare `network: true` means every public destination (the effective policy says so).
  const open = await client.createSandbox(cb.id, { permissions: RULES, network: true });
  assert.deepEqual(open.egress, { allow: [], anyPublic: true });
  for (const id of [info.id, open.id]) await client.destroySandbox(id);
  await client.deleteCodebase(cb.id);
});

describe("changes, commit and discard", () => {
  let sb;
  let dir;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "af-ts-delta-"));
    make(dir, { "a.txt": "original\n" });
    sb = await Sandbox.fromLocal(dir, { preset: "development", syncMode: "manual" });
  });
  after(async () => {
    await sb?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("pending writes are listed, discarded, committed", async () => {
    await sb.writeFile("new.txt", "n\n");
    let c = await sb.changes();
    assert.deepEqual(c.changes.map((x) => [x.path, x.kind]), [["/new.txt", "added"]]);
    assert.equal(await sb.discard(), 1);
    assert.equal((await sb.changes()).changes.length, 0);
    await assert.rejects(sb.readFile("new.txt"), FileNotFoundError);
    await sb.writeFile("a.txt", "changed\n");
    c = await sb.changes();
    assert.deepEqual(c.changes.map((x) => [x.path, x.kind]), [["/a.txt", "modified"]]);
    const res = await sb.commit();
    assert.equal(res.errors.length, 0);
    assert.equal(res.applied.length, 1);
    assert.equal((await sb.client.downloadFile(sb.codebaseId, "a.txt")).toString(), "changed\n");
  });
});

test("20 sandboxes at once over one codebase, one client", async (t) => {
  const dir = tempDir(t, "af-ts-many-");
  make(dir, { "id.txt": "shared\n" });
  const client = new SandboxClient();
  const first = await Sandbox.fromLocal(dir, { client, preset: "read-only" });
  try {
    const many = await Promise.all(
      Array.from({ length: 20 }, () => Sandbox.fromCodebase(first.codebaseId, { client, preset: "agent-safe" })),
    );
    try {
      const outs = await Promise.all(many.map((s, i) => s.run(`echo ${i} $(cat id.txt)`)));
      outs.forEach((r, i) => assert.equal(r.stdout, `${i} shared\n`));
      assert.equal(new Set(many.map((s) => s.id)).size, 20);
    } finally {
      await Promise.all(many.map((s) => s.destroy()));
    }
    // fromCodebase does not delete the codebase it did not create.
    assert.equal((await client.getCodebase(first.codebaseId)).id, first.codebaseId);
  } finally {
    await first.destroy();
    client.close();
  }
});

test("the rest of the surface: connect, stop/start, lists, raw archives and files, preset helpers", async (t) => {
  const dir = tempDir(t, "af-ts-rest-");
  make(dir, { "keep.txt": "k\n" });
  const client = new SandboxClient();
  const sb = await Sandbox.fromLocal(dir, { client, preset: "read-only", labels: { suite: "ts" } });
  try {
    // A second handle on the same sandbox, its own client.
    const other = await Sandbox.connect(sb.id);
    assert.equal(other.codebaseId, sb.codebaseId);
    assert.equal((await other.run("cat keep.txt")).stdout, "k\n");
    other.client.close(); // closing it would destroy the sandbox: only drop the connection
    assert.ok((await client.listSandboxes(sb.codebaseId)).some((s) => s.id === sb.id && s.labels.suite === "ts"));
    await sb.stop();
    assert.equal(sb.status, "stopped");
    await sb.start();
    assert.equal((await sb.refresh()).status, "running");
    // A tar built by the SDK's writer, sent with the low-level call; then one file removed.
    const files = [{ rel: "more/new.txt", absPath: join(dir, "keep.txt"), size: 2, mode: 0o644 }];
    const res = await client.uploadArchive(sb.codebaseId, tarStream(files));
    assert.deepEqual([res.files, res.bytes, res.codebase.fileCount], [1, 2, 2]);
    assert.equal((await sb.run("cat more/new.txt")).stdout, "k\n"); // the mount sees it at once
    await client.deleteFile(sb.codebaseId, "more/new.txt");
    assert.deepEqual((await client.listFiles(sb.codebaseId, "more")).map((f) => f.name), []);
    // Preset helpers.
    assert.match(describePreset("agent-safe"), /hide secrets/);
    const ext = extendPreset("read-only", { overrides: [{ pattern: "**/*", permission: "view" }],
      additions: [{ pattern: "/out/**", permission: "write", priority: 5 }] });
    assert.deepEqual(ext.map((r) => [r.pattern, r.permission]), [["**/*", "view"], ["/out/**", "write"]]);
    registerPreset("ts-test-preset", ext, { description: "test" });
    assert.ok(listPresets().includes("ts-test-preset"));
    assert.throws(() => registerPreset("ts-test-preset", ext), /already exists/);
  } finally {
    await sb.destroy();
    client.close();
  }
});
