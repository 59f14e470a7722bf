// Issue 22's performance check for the TypeScript SDK: Sandbox.fromLocal of a tree vs `tar` of the
// same tree plus one upload of the archive (one UploadFiles stream through the same client),
// against a real server started like the tests do (test/server.mjs). The goal: fromLocal <= 1.2x.
//
//   node bench/from-local-vs-tar.mjs TREE [--rounds N]      (after npm run build)
//
// Prints one line per round and the medians, in the format bench/harness/sdk_group.py parses.
// Codebases are deleted after the last round, not between rounds: see the Python twin
// (sdk/python/bench/from_local_vs_tar.py) for the ext4 allocator effect that would otherwise
// charge one round's cleanup to the next round's upload.
import { execFileSync } from "node:child_process";
import { open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Sandbox, SandboxClient, readChunks, walkTree } from "../dist/index.js";
import { startServer, stopServer } from "../test/server.mjs";

const args = process.argv.slice(2);
const tree = args.find((a) => !a.startsWith("--")) ?? "/tmp/perfbase/src";
const ri = args.indexOf("--rounds");
const rounds = ri >= 0 ? Number(args[ri + 1]) : 3;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const walk = await walkTree(tree);
console.log(`tree ${tree}: ${walk.files.length} files to upload, ${Math.round(walk.totalBytes / 2 ** 20)} MiB, ` +
  `${walk.ignored} ignored, ${Object.keys(walk.skipped).length} skipped`);
const server = await startServer();
const fl = [];
const tu = [];
const keep = [];
try {
  const client = new SandboxClient({ endpoint: server.grpcAddr, timeout: 600 });
  for (let r = 0; r < rounds; r++) {
    let t0 = performance.now();
    const sb = await Sandbox.fromLocal(tree, { endpoint: server.grpcAddr, autoStart: false, timeout: 600 });
    fl.push((performance.now() - t0) / 1000);
    keep.push(sb.codebaseId);
    await sb.destroy({ deleteCodebase: false });

    const tar = join(tmpdir(), `af-bench-${process.pid}.tar`);
    t0 = performance.now();
    execFileSync("tar", ["-cf", tar, "-C", tree, "."]);
    const cb = await client.createCodebase("tar", "bench");
    const size = (await stat(tar)).size;
    const fh = await open(tar, "r");
    // The SDK's own way of streaming one file (64 KiB messages, read 1 MiB at a time).
    await client.uploadFileStream(cb.id, "tree.tar", readChunks(fh, size), size);
    tu.push((performance.now() - t0) / 1000);
    await fh.close();
    await rm(tar);
    keep.push(cb.id);
    console.log(`round ${r + 1}: fromLocal ${fl.at(-1).toFixed(2)}s  tar+upload ${tu.at(-1).toFixed(2)}s  ` +
      `ratio ${(fl.at(-1) / tu.at(-1)).toFixed(2)}`);
  }
  for (const id of keep) await client.deleteCodebase(id);
  client.close();
  const a = median(fl);
  const b = median(tu);
  console.log(`median: from_local ${a.toFixed(2)}s  tar+upload ${b.toFixed(2)}s  ratio ${(a / b).toFixed(2)} (goal <= 1.2)`);
} finally {
  await stopServer(server);
}
