// Shared by the test files: temporary trees and the Python SDK as a reference.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { BUILD_DIR, REPO } from "./server.mjs";

export function tempDir(t, prefix = "af-ts-") {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

export function make(root, files) {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(root, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
}

/** Runs Python code with the repository's Python SDK importable; returns its stdout as JSON. */
export function python(code) {
  const r = spawnSync("/usr/bin/python3", ["-c", code], {
    env: { ...process.env, PYTHONPATH: `${join(BUILD_DIR, "python")}:${join(REPO, "sdk", "python")}` },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
