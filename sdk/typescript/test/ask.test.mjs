// The onAccessRequest callback and checkpoints against a real server (docs/SDK.md): the callback
// sees each access to an `ask` path and its answer decides it (allow, deny, remembered as a rule,
// a throwing callback denies); checkpoint → change → restore → diff through Sandbox.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Sandbox } from "../dist/index.js";
import { make, tempDir } from "./helpers.mjs";

const RULES = [
  { pattern: "**/*", permission: "read" },
  { pattern: "/notes/**", permission: "ask", priority: 10 },
  { pattern: "/out/**", permission: "write", priority: 10 },
];

test("onAccessRequest decides each access and can remember it", async (t) => {
  const dir = tempDir(t);
  make(dir, { "notes/a.md": "note a\n", "notes/b.md": "note b\n", "out/keep": "k\n" });
  const seen = [];
  const sb = await Sandbox.fromLocal(dir, {
    preset: null,
    permissions: RULES,
    syncMode: "manual",
    askTimeout: 30,
    onAccessRequest: async (req) => {
      seen.push([req.path, req.access, req.operation]);
      if (req.path === "/notes/a.md") return { decision: "allow", remember: "path" };
      if (req.path === "/notes/b.md") return req.access === "read";
      throw new Error("unexpected access"); // a throwing callback denies
    },
  });
  try {
    assert.equal(sb.info.askTimeout, 30);
    assert.equal((await sb.run("cat notes/a.md")).stdout, "note a\n");
    assert.equal((await sb.run("cat notes/b.md")).stdout, "note b\n");
    assert.notEqual((await sb.run("echo x >> notes/b.md")).exitCode, 0);
    assert.notEqual((await sb.run("touch notes/new")).exitCode, 0);
    assert.deepEqual(seen, [
      ["/notes/a.md", "read", "open"],
      ["/notes/b.md", "read", "open"],
      ["/notes/b.md", "write", "open"],
      ["/notes/new", "write", "create"],
    ]);
    assert.equal((await sb.run("cat notes/a.md")).stdout, "note a\n"); // remembered
    assert.equal(seen.length, 4);
    assert.ok((await sb.refresh()).permissions.some((r) => r.pattern === "/notes/a.md" && r.permission === "read"));
  } finally {
    await sb.close();
  }
});

test("checkpoints: create, diff, restore, delete", async (t) => {
  const dir = tempDir(t);
  make(dir, { "out/keep": "k\n" });
  const sb = await Sandbox.fromLocal(dir, { preset: null, permissions: RULES, syncMode: "manual" });
  try {
    await sb.run("echo 1 > out/a; rm out/keep");
    const c = await sb.checkpoint("one");
    assert.equal(c.name, "one");
    assert.equal(c.deletions, 1);
    await sb.run("echo 2 > out/a; echo b > out/b");
    assert.deepEqual((await sb.diff("one")).map((x) => x.path).sort(), ["/out/a", "/out/b"]);
    await sb.restore("one");
    assert.equal((await sb.run("cat out/a; ls out")).stdout, "1\na\n");
    assert.deepEqual((await sb.checkpoints()).map((x) => x.name), ["one"]);
    await sb.deleteCheckpoint("one");
    assert.deepEqual(await sb.checkpoints(), []);
  } finally {
    await sb.close();
  }
});
