// `npm pack` output installs and imports in a clean folder, offline (from the tarball and the npm
// cache that our `npm ci` filled, even on a fresh machine), and its type declarations type-check a
// consumer.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { tempDir } from "./helpers.mjs";

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), "..");

test("npm pack installs and imports in a clean folder", (t) => {
  const out = tempDir(t, "af-ts-pack-");
  // dist/ is already built (`npm test` builds first); --ignore-scripts skips the prepack rebuild.
  execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", out], { cwd: PKG, stdio: "pipe" });
  const tgz = readdirSync(out).find((f) => f.endsWith(".tgz"));
  assert.ok(tgz, "npm pack made no tarball");
  const listing = execFileSync("tar", ["-tzf", join(out, tgz)], { encoding: "utf8" }).split("\n");
  assert.ok(listing.includes("package/dist/index.js") && listing.includes("package/dist/index.d.ts"));
  assert.ok(!listing.some((f) => f.startsWith("package/src/") || f.startsWith("package/test/")));

  const app = join(out, "app");
  execFileSync("mkdir", ["-p", app]);
  // A TypeScript consumer has @types/node. `npm ci` from a lockfile fetches every package by its
  // integrity from the npm cache that our own `npm ci` filled, so the install stays offline even on
  // a fresh machine (resolving a version range would need registry metadata npm ci never caches).
  // The lockfile: the tarball, then the runtime closure of ours (every entry not marked dev, which
  // includes the @types/node that protobufjs, under @grpc/grpc-js, depends on).
  const ours = JSON.parse(readFileSync(join(PKG, "package-lock.json"), "utf8"));
  const manifest = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
  const typesNode = ours.packages["node_modules/@types/node"].version;
  const spec = `file:../${tgz}`;
  const packages = {
    "": { name: "app", dependencies: { "@agentfense/sdk": spec }, devDependencies: { "@types/node": typesNode } },
    "node_modules/@agentfense/sdk": {
      version: manifest.version,
      resolved: spec,
      integrity: "sha512-" + createHash("sha512").update(readFileSync(join(out, tgz))).digest("base64"),
      license: manifest.license,
      dependencies: manifest.dependencies,
      engines: manifest.engines,
    },
  };
  for (const [path, entry] of Object.entries(ours.packages)) {
    if (path !== "" && !entry.dev) packages[path] = entry;
  }
  writeFileSync(join(app, "package.json"), JSON.stringify({
    name: "app", private: true, type: "module",
    dependencies: { "@agentfense/sdk": spec }, devDependencies: { "@types/node": typesNode },
  }));
  writeFileSync(join(app, "package-lock.json"), JSON.stringify({ name: "app", lockfileVersion: 3, requires: true, packages }));
  execFileSync("npm", ["ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"], {
    cwd: app,
    stdio: "pipe",
  });
  const got = execFileSync(
    process.execPath,
    ["--input-type=module", "-e", "const m = await import('@agentfense/sdk'); console.log(JSON.stringify([typeof m.Sandbox.fromLocal, typeof m.SandboxClient, m.listPresets()]))"],
    { cwd: app, encoding: "utf8" },
  );
  assert.deepEqual(JSON.parse(got), ["function", "function", ["agent-safe", "development", "full-access", "read-only", "view-only"]]);

  // The declarations: a consumer that uses the API type-checks; one that misuses it does not.
  writeFileSync(join(app, "ok.ts"), `
import { Sandbox, type ExecResult, CommandTimeoutError } from "@agentfense/sdk";
export async function main(): Promise<number> {
  await using sb = await Sandbox.fromLocal(".", { preset: "agent-safe", ignore: ["*.log"] });
  const r: ExecResult = await sb.run("ls", { timeout: 5, env: { A: "b" }, workdir: "/workspace" });
  for await (const c of sb.stream("ls")) if (c.type === "stderr") console.log(c.text);
  try { await sb.run("sleep 9", { timeout: 1 }); } catch (e) { if (e instanceof CommandTimeoutError) return -1; }
  return r.exitCode + r.durationMs;
}
`);
  writeFileSync(join(app, "bad.ts"), `
import { Sandbox } from "@agentfense/sdk";
export const x: Promise<string> = Sandbox.fromLocal(".", { preset: 3 });
`);
  // One compiler run over both (skipLibCheck: the consumer's view of our .d.ts is what we test).
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
    compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true,
      noEmit: true, skipLibCheck: true, lib: ["ES2022", "ESNext.Disposable", "ESNext.AsyncIterable"],
      types: ["node"] },
    files: ["ok.ts", "bad.ts"],
  }));
  let diagnostics = "";
  try {
    execFileSync(process.execPath, [join(PKG, "node_modules", "typescript", "bin", "tsc"), "-p", app],
      { cwd: app, encoding: "utf8" });
  } catch (e) {
    diagnostics = e.stdout || String(e);
  }
  const errors = diagnostics.split("\n").filter((l) => l.includes("error TS"));
  assert.ok(errors.length > 0 && errors.every((l) => l.startsWith("bad.ts")), diagnostics);
});
