// `npm test`: starts one real agentfense-server (test/server.mjs) with a token, then runs every
// test file with node's test runner against it (AGENTFENSE_ENDPOINT / AGENTFENSE_TOKEN, the same
// variables users set). Test files share the server; each makes its own codebases and sandboxes.
// Arguments are passed to `node --test` (e.g. a single file).
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { startServer, stopServer } from "../test/server.mjs";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TOKEN = "ts-sdk-test-token";
const server = await startServer({
  token: TOKEN,
  // Small enough that a test can exceed it cheaply (ResourceLimitExceededError).
  maxUploadBytes: "8MiB",
});
let code = 1;
try {
  const files = process.argv.slice(2).length
    ? process.argv.slice(2)
    : readdirSync(join(pkg, "test"))
        .filter((f) => f.endsWith(".test.mjs"))
        .sort()
        .map((f) => join("test", f));
  // Two files at a time: most of a file's time is spent waiting on the server or on tsc.
  const child = spawn(process.execPath, ["--test", "--test-concurrency=2", "--test-reporter=spec", ...files], {
    cwd: pkg,
    stdio: "inherit",
    env: {
      ...process.env,
      AGENTFENSE_ENDPOINT: server.grpcAddr,
      AGENTFENSE_TOKEN: TOKEN,
      AGENTFENSE_TEST_HTTP: server.httpBase,
      AGENTFENSE_TEST_SERVER_DIR: server.dir,
    },
  });
  code = await new Promise((res) => child.once("exit", (c, sig) => res(c ?? (sig ? 1 : 0))));
  if (code !== 0) console.error(`server log tail:\n${server.log().slice(-3000)}`);
} finally {
  await stopServer(server);
}
process.exit(code);
