// What the MCP tests share: the project tree and policy both transports serve, a real
// agentfense-server on loopback ports, and its REST calls. The MCP clients themselves are the
// official SDK's, unchanged.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BUILD_DIR = process.env.AGENTFENSE_BUILD_DIR ?? path.resolve(here, '../../build');
export const bin = (name) => path.join(BUILD_DIR, 'bin', name);
export const SECRET = 'AF-MCP-SECRET-7f3a';

// The tree every test sees, and the rules that guard it (CLI flags; the server gets the same).
export const FILES = {
  'src/app.py': "print('hi')\n",
  'README.md': 'readme\n',
  '.env': `KEY=${SECRET}\n`,
  'docs/view.txt': `view only ${SECRET}\n`,
  'output/.keep': '',
};
export const RULES = [
  { pattern: '**/*', permission: 'read', priority: 0 },
  { pattern: '/output/**', permission: 'write', priority: 10 },
  { pattern: '/docs/**', permission: 'view', priority: 10 },
  { pattern: '**/.env', permission: 'none', priority: 100 },
];
export const ruleFlags = () => RULES.flatMap((r) => ['--rule', `${r.pattern}=${r.permission}@${r.priority}`]);

export function makeProject() {
  const dir = mkdtempSync(path.join(tmpdir(), 'af-mcp-project-'));
  for (const [rel, content] of Object.entries(FILES)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), content);
  }
  return dir;
}

export function removeTree(dir) {
  rmSync(dir, { recursive: true, force: true });
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, proc, log, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited: ${readFileSync(log, 'utf8').slice(-4000)}`);
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('server did not listen in time');
}

// A real agentfense-server with a bearer token, on free loopback ports.
export async function startServer({ token = 'mcp-test-token' } = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'af-mcp-srv-'));
  const grpc = await freePort();
  const http = await freePort();
  const config = path.join(dataDir, 'config.yaml');
  writeFileSync(config, [
    'server:',
    `  grpc_addr: 127.0.0.1:${grpc}`,
    `  http_addr: 127.0.0.1:${http}`,
    `  auth_token: ${token}`,
    'storage:',
    `  data_dir: ${path.join(dataDir, 'data')}`,
    '',
  ].join('\n'));
  const log = path.join(dataDir, 'server.log');
  const { openSync } = await import('node:fs');
  const fd = openSync(log, 'a');
  const proc = spawn(bin('agentfense-server'), ['-config', config], {
    stdio: ['ignore', fd, fd],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  await waitForPort(http, proc, log);
  return { proc, dataDir, token, base: `http://127.0.0.1:${http}`, sandboxes: [] };
}

export async function rest(server, method, route, body, headers = {}) {
  const init = { method, headers: { Authorization: `Bearer ${server.token}`, ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!init.headers['Content-Type']) init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(server.base + route, init);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: res.status, json, text, headers: res.headers };
}

const LEVEL = { none: 'PERMISSION_NONE', view: 'PERMISSION_VIEW', read: 'PERMISSION_READ', write: 'PERMISSION_WRITE' };

// A running sandbox of the server over FILES under RULES; its changes stay pending (manual sync)
// so that the changes tool has something to show.
export async function makeSandbox(server) {
  const cb = await rest(server, 'POST', '/v1/codebases', { name: 'mcp', ownerId: 'tests' });
  if (cb.status !== 200) throw new Error(`create codebase: ${cb.text}`);
  for (const [rel, content] of Object.entries(FILES)) {
    const up = await rest(server, 'PUT', `/v1/codebases/${cb.json.id}/files/${rel}`,
      new TextEncoder().encode(content), { 'Content-Type': 'application/octet-stream' });
    if (up.status !== 200) throw new Error(`upload ${rel}: ${up.text}`);
  }
  const sb = await rest(server, 'POST', '/v1/sandboxes', {
    codebaseId: cb.json.id,
    syncMode: 'SYNC_MODE_MANUAL',
    permissions: RULES.map((r) => ({ pattern: r.pattern, permission: LEVEL[r.permission], priority: r.priority })),
  });
  if (sb.status !== 200) throw new Error(`create sandbox: ${sb.text}`);
  const started = await rest(server, 'POST', `/v1/sandboxes/${sb.json.id}/start`);
  if (started.status !== 200) throw new Error(`start sandbox: ${started.text}`);
  server.sandboxes.push(sb.json.id);
  return sb.json.id;
}

export async function stopServer(server) {
  for (const id of server.sandboxes) await rest(server, 'DELETE', `/v1/sandboxes/${id}`).catch(() => {});
  server.proc.kill('SIGTERM');
  await new Promise((resolve) => {
    if (server.proc.exitCode !== null) return resolve();
    const t = setTimeout(() => { server.proc.kill('SIGKILL'); }, 20000);
    server.proc.on('exit', () => { clearTimeout(t); resolve(); });
  });
  const mounts = path.join(server.dataDir, 'data', 'mounts');
  if (existsSync(mounts)) {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const mnt = line.split(' ')[1];
      if (mnt && mnt.startsWith(mounts)) spawn('umount', ['-l', mnt]);
    }
  }
  removeTree(server.dataDir);
}

// The arguments of `agentfense mcp` over `dir` under RULES, changes dropped at the end.
export function mcpArgs(dir, extra = []) {
  return ['mcp', ...ruleFlags(), '--discard', '-q', ...extra, dir];
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
