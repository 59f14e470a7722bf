// fromLocal's file selection, without a server: the gitignore cases shared with the Python SDK
// (sdk/testdata/gitignore_cases.json) and the Python suite's tree walks, ported one for one.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

import { compilePattern, isIgnored, parseIgnoreText, ruleMatches, walkTree } from "../dist/index.js";
import { make, tempDir } from "./helpers.mjs";
import { REPO } from "./server.mjs";

const rels = (w) => w.files.map((f) => f.rel);

test("gitignore pattern cases shared with the Python SDK", () => {
  const { cases } = JSON.parse(readFileSync(join(REPO, "sdk", "testdata", "gitignore_cases.json"), "utf8"));
  assert.ok(cases.length >= 25);
  for (const [pattern, path, isDir, expected] of cases) {
    assert.equal(ruleMatches(compilePattern(pattern), path, isDir), expected, `${pattern} vs ${path}`);
  }
});

test("comments, blank lines and last match wins", () => {
  const rules = parseIgnoreText("# comment\n\n*.log\n!keep.log\n   \n");
  assert.equal(rules.length, 2);
  assert.ok(isIgnored(rules, "x.log", false));
  assert.ok(!isIgnored(rules, "d/keep.log", false));
  assert.ok(isIgnored([...rules, ...parseIgnoreText("keep.log")], "keep.log", false));
});

test("walk: negation, anchors and nested ignore files", async (t) => {
  const d = tempDir(t);
  make(d, {
    ".gitignore": "*.log\n!important.log\n/build/\ntmp/\n",
    "a.log": "", "important.log": "", "src/b.log": "", "src/important.log": "",
    "build/out.o": "", "src/build/keep.c": "", "src/tmp/x": "", "tmp/y": "",
    "src/.gitignore": "*.c\n!keep.c\n*.txt\n",
    "src/gen.c": "", "src/notes.txt": "", "notes.txt": "", "src/main.py": "",
  });
  const w = await walkTree(d);
  assert.deepEqual(rels(w), [".gitignore", "important.log", "notes.txt", "src/.gitignore",
    "src/build/keep.c", "src/important.log", "src/main.py"]);
  assert.ok(w.ignored >= 6);
});

test("walk: nothing re-included below an excluded directory", async (t) => {
  const d = tempDir(t);
  make(d, { ".gitignore": "logs/\n!logs/keep.txt\n", "logs/keep.txt": "", "logs/x.txt": "" });
  assert.deepEqual(rels(await walkTree(d)), [".gitignore"]);
  make(d, { ".gitignore": "logs/*\n!logs/keep.txt\n" });
  assert.deepEqual(rels(await walkTree(d)), [".gitignore", "logs/keep.txt"]);
});

test("walk: .sandboxignore overrides .gitignore; extra patterns", async (t) => {
  const d = tempDir(t);
  make(d, { ".gitignore": "*.dat\n", ".sandboxignore": "!small.dat\nbig/\n", "small.dat": "",
    "large.dat": "", "big/f": "", "keep.md": "", "drop.md": "" });
  const w = await walkTree(d, { ignore: ["drop.md"] });
  assert.deepEqual(rels(w), [".gitignore", ".sandboxignore", "keep.md", "small.dat"]);
});

test("walk: default ignores and opting out", async (t) => {
  const d = tempDir(t);
  make(d, { ".git/config": "", "node_modules/x/index.js": "", "__pycache__/m.pyc": "",
    "pkg/__pycache__/n.pyc": "", "a.pyc": "", ".env": "S=1", ".env.local": "S=2",
    ".venv/bin/python": "", "app.py": "" });
  assert.deepEqual(rels(await walkTree(d)), ["app.py"]);
  assert.equal((await walkTree(d, { useDefaultIgnores: false })).files.length, 9);
  make(d, { ".gitignore": "!.env.local\n" });
  assert.ok(rels(await walkTree(d)).includes(".env.local"));
});

test("walk: symlinks never leave the tree", async (t) => {
  const base = tempDir(t);
  const outside = join(base, "outside");
  make(outside, { credentials: "AKIA-CANARY", "dir/x": "CANARY" });
  const root = join(base, "proj");
  make(root, { "real.txt": "in-tree", "sub/data.txt": "d" });
  symlinkSync(join(outside, "credentials"), join(root, "creds"));
  symlinkSync("../outside/dir", join(root, "outdir"));
  symlinkSync("real.txt", join(root, "alias.txt"));
  symlinkSync("sub", join(root, "subalias"));
  symlinkSync("/nonexistent/x", join(root, "broken"));
  symlinkSync("../../proj/real.txt", join(root, "sub/roundabout.txt"));
  const w = await walkTree(root);
  assert.deepEqual(rels(w), ["alias.txt", "real.txt", "sub/data.txt", "sub/roundabout.txt"]);
  assert.equal(w.files.find((f) => f.rel === "alias.txt").absPath, realpathSync(join(root, "real.txt")));
  assert.match(w.skipped.creds, /outside the tree/);
  assert.match(w.skipped.outdir, /outside the tree/);
  assert.match(w.skipped.subalias, /directory/);
  assert.equal(w.skipped.broken, "broken symlink");
  for (const f of w.files) assert.ok(realpathSync(f.absPath).startsWith(realpathSync(root)));
});

test("walk: a root given through a symlink", async (t) => {
  const d = tempDir(t);
  make(join(d, "real"), { "a.txt": "x" });
  symlinkSync(join(d, "real"), join(d, "link"));
  symlinkSync(join(d, "real", "a.txt"), join(d, "real", "b.txt"));
  assert.deepEqual(rels(await walkTree(join(d, "link"))), ["a.txt", "b.txt"]);
});

test("walk: exec bits, empty directories and special files", async (t) => {
  const d = tempDir(t);
  make(d, { "run.sh": "#!/bin/sh\n", "data.txt": "" });
  chmodSync(join(d, "run.sh"), 0o755);
  chmodSync(join(d, "data.txt"), 0o640);
  mkdirSync(join(d, "empty", "nested"), { recursive: true });
  assert.equal(spawnSync("mkfifo", [join(d, "pipe")]).status, 0);
  const w = await walkTree(d);
  assert.deepEqual(Object.fromEntries(w.files.map((f) => [f.rel, f.mode])), { "data.txt": 0o640, "run.sh": 0o755 });
  assert.match(w.skipped["empty/nested"], /empty directory/);
  assert.match(w.skipped.pipe, /special file/);
});

test("walk: a link to an ignored file is not uploaded", async (t) => {
  const d = tempDir(t);
  make(d, { ".env": "SECRET=CANARY", ".gitignore": "private/\n", "private/key": "K", "ok.txt": "x" });
  symlinkSync(".env", join(d, "leak"));
  symlinkSync("private/key", join(d, "leak2"));
  symlinkSync("ok.txt", join(d, "fine"));
  const w = await walkTree(d);
  assert.deepEqual(rels(w), [".gitignore", "fine", "ok.txt"]);
  assert.match(w.skipped.leak, /ignored/);
  assert.match(w.skipped.leak2, /ignored/);
});

test("walk: names that are not UTF-8 are reported", async (t) => {
  const d = tempDir(t);
  writeFileSync(Buffer.concat([Buffer.from(d + "/bad"), Buffer.from([0xff]), Buffer.from("name")]), "");
  writeFileSync(join(d, "good"), "g");
  const w = await walkTree(d);
  assert.deepEqual(rels(w), ["good"]);
  assert.deepEqual(Object.values(w.skipped), ["name is not valid UTF-8; cannot be uploaded"]);
});

test("walk: a large tree", async (t) => {
  const d = tempDir(t);
  for (let i = 0; i < 10; i++) {
    mkdirSync(join(d, `d${i}`));
    for (let j = 0; j < 100; j++) writeFileSync(join(d, `d${i}`, `f${j}.txt`), "x");
  }
  const w = await walkTree(d);
  assert.equal(w.files.length, 1000);
  assert.equal(w.totalBytes, 1000);
  assert.deepEqual(w.skipped, {});
});
