// The seed README's quick start, in TypeScript.
//
//   npm run build && node dist/quickstart.js [DIR]     (in examples/typescript)
//
// Uploads DIR (default: examples/ticket-agent/data) as a codebase with the "agent-safe" preset
// (read everything, write /output and /tmp, hide secrets), runs a few commands and leaves:
// `await using` destroys the sandbox and deletes the codebase on the way out, errors included.
// AGENTFENSE_ENDPOINT (host:port, default localhost:9000) and AGENTFENSE_TOKEN pick the server.
import { fileURLToPath } from "node:url";

import { Sandbox } from "@agentfense/sdk";

const dir = process.argv[2] ?? fileURLToPath(new URL("../../ticket-agent/data", import.meta.url));

{
  // One line: a sandbox over a local directory, with the "agent-safe" preset.
  await using sandbox = await Sandbox.fromLocal(dir);
  const result = await sandbox.run("ls -R && head -3 tickets/T-1001.md");
  console.log(result.stdout);

  // Secrets are invisible: the file does not exist for the agent.
  const secret = await sandbox.run("cat secrets/api_keys.env");
  console.log(`cat secrets/api_keys.env -> exit ${secret.exitCode}: ${secret.stderr.trim()}`);

  // A persistent shell: cwd and environment survive between commands.
  await using session = await sandbox.session();
  await session.run("cd tickets && export TEAM=support");
  console.log((await session.run("echo $TEAM in $(pwd)")).stdout.trim());

  // Output as it is produced.
  for await (const chunk of sandbox.stream("for i in 1 2 3; do echo tick $i; sleep 0.1; done")) {
    process.stdout.write(`[${chunk.type}] ${chunk.text}`);
  }
}
console.log("done: sandbox destroyed, codebase deleted");
