// Starts a real agentfense-server on free loopback ports with a private data directory, like the
// Python suite's tests/py/server_fixture.py, and cleans everything up afterwards (supervisors
// outlive the server by design, so they are stopped through their control sockets).
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "..", "..", "..");
export const BUILD_DIR = resolve(process.env.AGENTFENSE_BUILD_DIR ?? join(REPO, "build"));
export const SERVER_BIN = process.env.AGENTFENSE_SERVER_BIN ?? join(BUILD_DIR, "bin", "agentfense-server");

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function canConnect(port) {
  return new Promise((res) => {
    const c = connect({ host: "127.0.0.1", port });
    c.once("connect", () => {
      c.destroy();
      res(true);
    });
    c.once("error", () => res(false));
  });
}

export async function startServer({ token = "", extraConfig = "", maxUploadBytes = "" } = {}) {
  if (!existsSync(SERVER_BIN)) {
    throw new Error(`${SERVER_BIN} is missing: build the 'agentfense-server' target first`);
  }
  const dir = mkdtempSync(join(tmpdir(), "af-ts-srv-"));
  chmodSync(dir, 0o711); // sandbox users traverse to their mount points beneath it
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    "server:\n" +
      `  grpc_addr: 127.0.0.1:${grpcPort}\n` +
      `  http_addr: 127.0.0.1:${httpPort}\n` +
      (token ? `  auth_token: ${token}\n` : "") +
      (maxUploadBytes ? `  max_upload_bytes: ${maxUploadBytes}\n` : "") +
      "storage:\n" +
      `  data_dir: ${join(dir, "data")}\n` +
      "sandbox:\n" +
      "  cleanup_interval: 1s\n" +
      extraConfig,
  );
  const log = openSync(join(dir, "server.log"), "a");
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  for (const k of ["TSAN_OPTIONS", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"]) {
    if (process.env[k]) env[k] = process.env[k];
  }
  const proc = spawn(SERVER_BIN, ["-config", config], { stdio: ["ignore", log, log], env });
  let exited = false;
  proc.once("exit", () => (exited = true));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`server exited: ${readFileSync(join(dir, "server.log"), "utf8").slice(-4000)}`);
    if ((await canConnect(grpcPort)) && (await canConnect(httpPort))) {
      return {
        dir,
        proc,
        token,
        grpcAddr: `127.0.0.1:${grpcPort}`,
        httpBase: `http://127.0.0.1:${httpPort}`,
        log: () => readFileSync(join(dir, "server.log"), "utf8"),
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill("SIGKILL");
  throw new Error("server did not start listening in time");
}

async function stopSupervisor(sock) {
  await new Promise((res) => {
    const c = connect(sock);
    const done = () => {
      c.destroy();
      res();
    };
    c.setTimeout(10_000, done);
    c.once("error", done);
    c.once("connect", () => c.write('{"op":"stop","destroy":true}\n'));
    c.once("data", done);
  });
}

export async function stopServer(server) {
  if (!server) return;
  if (server.proc.exitCode === null) {
    const gone = new Promise((r) => server.proc.once("exit", r));
    server.proc.kill("SIGTERM");
    const t = setTimeout(() => server.proc.kill("SIGKILL"), 20_000);
    await gone;
    clearTimeout(t);
  }
  const run = join(server.dir, "data", "mounts", ".run");
  if (existsSync(run)) {
    const socks = readdirSync(run)
      .map((d) => join(run, d, "control.sock"))
      .filter(existsSync);
    await Promise.all(socks.map(stopSupervisor));
    if (socks.length) await new Promise((r) => setTimeout(r, 500));
  }
  const mounts = join(server.dir, "data", "mounts");
  if (existsSync(mounts)) {
    for (const d of readdirSync(mounts)) spawnSync("umount", ["-l", join(mounts, d)], { stdio: "ignore" });
  }
  rmSync(server.dir, { recursive: true, force: true });
}
