// The examples under examples/typescript/ (TypeScript, compiled with tsc: `await using` included),
// run against the real server: the README's quick start, and the Vercel AI SDK bash tool driven by
// the scripted model (every permission level shows).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

import { REPO } from "./server.mjs";

const EXAMPLES = join(REPO, "examples", "typescript");
const DATA = join(REPO, "examples", "ticket-agent", "data");

test("the examples build (npm ci && npm run build in examples/typescript)", async () => {
  assert.ok(existsSync(join(EXAMPLES, "node_modules", "ai")), "run `npm ci` in examples/typescript");
  await promisify(execFile)("npm", ["run", "build"], { cwd: EXAMPLES });
  assert.ok(existsSync(join(EXAMPLES, "dist", "bash-tool.js")));
});

test("quick start", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [join(EXAMPLES, "dist", "quickstart.js")], {
    env: process.env,
    timeout: 60_000,
  });
  assert.match(stdout, /T-1001\.md/);
  assert.match(stdout, /cat secrets\/api_keys\.env -> exit 1: .*No such file or directory/);
  assert.doesNotMatch(stdout, /sk-live/);
  assert.match(stdout, /support in \/workspace\/tickets/);
  assert.match(stdout, /\[stdout\] tick 1\n\[stdout\] tick 2\n\[stdout\] tick 3\n/);
  assert.match(stdout, /done: sandbox destroyed, codebase deleted/);
});

test("a bash tool for the Vercel AI SDK, with a scripted model", async () => {
  const { runAgent, SCRIPT } = await import(join(EXAMPLES, "dist", "bash-tool.js"));
  const lines = [];
  const { steps, text, answered } = await runAgent({ data: DATA, log: (s) => lines.push(s) });
  assert.equal(steps, SCRIPT.length + 1); // one tool call per step, then the answer
  const [look, mine, related, other, secrets, editClosed, answer] = lines;
  assert.ok(look.includes("T-1003.md") && !look.includes("secrets")); // view / none
  assert.match(mine, /Export to CSV drops the last row/); // write includes read
  assert.match(related, /upgrade to 4\.2\.1/); // read
  assert.ok(other.includes("Permission denied") && !other.includes("Lumbergh")); // view
  const output = (line) => line.slice(line.indexOf("\n") + 1); // without the "$ command" line
  assert.ok(!lines.map(output).join("").includes("CANARY") && !output(secrets).includes("sk-live")); // none
  assert.match(secrets, /No such file or directory/);
  assert.ok(editClosed.includes("Permission denied") && !editClosed.includes("[exit 0]")); // read-only
  assert.ok(answer.includes("## Agent answer") && answer.includes("[exit 0]")); // write
  assert.match(answered, /## Agent answer/);
  assert.match(text, /Answered T-1001/);
  // The folder itself is untouched: the agent worked on a codebase copy, now deleted.
  assert.doesNotMatch(readFileSync(join(DATA, "tickets", "T-1001.md"), "utf8"), /## Agent answer/);
});
