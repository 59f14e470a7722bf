// `agentfense mcp` on stdio, driven by the official TypeScript SDK clients: v1
// (@modelcontextprotocol/sdk, the initialize-era revisions) for everything, v2
// (@modelcontextprotocol/client) for the current revision, 2026-07-28.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Client as ModernClient } from '@modelcontextprotocol/client';
import { StdioClientTransport as ModernStdio } from '@modelcontextprotocol/client/stdio';

import { bin, makeProject, mcpArgs, removeTree, FILES } from './harness.mjs';
import * as s from './scenario.mjs';

function transport(TransportClass, dir, extra = []) {
  return new TransportClass({
    command: bin('agentfense'),
    args: mcpArgs(dir, extra),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    stderr: 'pipe',
  });
}

describe('agentfense mcp (stdio), SDK v1', () => {
  let dir;
  let client;
  before(async () => {
    dir = makeProject();
    client = new Client({ name: 'af-test', version: '1.0.0' });
    await client.connect(transport(StdioClientTransport, dir));
  });
  after(async () => {
    await client?.close();
    removeTree(dir);
  });

  it('initializes at the newest revision the SDK speaks', () => {
    assert.equal(client.getServerVersion().name, 'agentfense');
    assert.ok(client.getServerCapabilities().tools);
    assert.match(client.getInstructions(), /least-privilege/);
  });
  it('lists the tools with their schemas', () => s.checkToolList(client));
  it('runs every tool', () => s.checkEveryTool(client));
  it('hides hidden files and does not read view files', () => s.checkHiddenAndView(client));
  it('refuses FIFOs, devices and directories as files', () => s.checkSpecialFiles(client));
  it('kills a command at its timeout', () => s.checkTimeout(client));
  it('reports progress of a long command', () => s.checkProgress(client));
  it('stops a cancelled command', () => s.checkCancel(client));
  it('serves 100 concurrent calls', () => s.checkConcurrent(client, 100));
});

// The raw protocol on the wire: what no SDK would send.
describe('agentfense mcp (stdio), hostile input', () => {
  let dir;
  before(() => { dir = makeProject(); });
  after(() => removeTree(dir));

  it('answers malformed messages with clear JSON-RPC errors and keeps serving', async () => {
    const child = spawn(bin('agentfense'), mcpArgs(dir), { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = [];
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)));  // every line out is one valid JSON message
        buf = buf.slice(nl + 1);
      }
    });
    const send = (x) => child.stdin.write(`${typeof x === 'string' ? x : JSON.stringify(x)}\n`);
    send('this is not json');
    send('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}');
    send([{ jsonrpc: '2.0', id: 2, method: 'ping' }]);
    send({ jsonrpc: '1.0', id: 3, method: 'ping' });
    send({ jsonrpc: '2.0', id: 4, method: 'tools/list' });  // before initialize
    send('{"jsonrpc":"2.0","id":5,"method":"ping","method":"tools/list"}');
    send(`{"jsonrpc":"2.0","id":6,"method":"ping","params":{"x":"${'a'.repeat(9 << 20)}"}}`);
    send({ jsonrpc: '2.0', id: 7, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
    send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    send({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'no_such_tool', arguments: {} } });
    send({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'read_file', arguments: { path: '../../etc/passwd' } } });
    send({ jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'README.md' } } });
    const deadline = Date.now() + 30000;
    while (lines.length < 11 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.stdin.end();
    const code = await new Promise((r) => child.on('exit', r));
    assert.equal(code, 0);
    const byId = new Map(lines.filter((l) => l.id !== null).map((l) => [l.id, l]));
    const anonymous = lines.filter((l) => l.id === null).map((l) => l.error.code);
    // not JSON, truncated JSON, a batch, the over-long line: no id could be read.
    assert.deepEqual(anonymous, [-32700, -32700, -32600, -32600]);
    assert.equal(byId.get(3).error.code, -32600);
    assert.match(byId.get(3).error.message, /jsonrpc must be "2.0"/);
    assert.match(byId.get(4).error.message, /not initialized/);
    assert.match(byId.get(5).error.message, /duplicate/);
    assert.equal(byId.get(7).result.protocolVersion, '2025-11-25');
    assert.equal(byId.get(8).error.code, -32602);
    assert.equal(byId.get(9).result.isError, true);
    assert.match(byId.get(9).result.content[0].text, /'\.\.' segment/);
    assert.equal(byId.get(10).result.content[0].text, FILES['README.md']);
  });

  it('writes nothing but MCP messages on stdout and syncs at the end', async () => {
    // --sync (the default): the session's writes reach DIR when the client closes our input.
    const client = new Client({ name: 'af-test', version: '1.0.0' });
    const args = mcpArgs(dir).filter((a) => a !== '--discard' && a !== '-q');
    await client.connect(new StdioClientTransport({ command: bin('agentfense'), args, stderr: 'pipe' }));
    await s.call(client, 'write_file', { path: 'output/synced.txt', content: 'kept' });
    await client.close();
    const target = path.join(dir, 'output', 'synced.txt');
    for (let i = 0; i < 100 && !existsSync(target); ++i) await new Promise((r) => setTimeout(r, 100));
    assert.equal(readFileSync(target, 'utf8'), 'kept');
  });
});

describe('agentfense mcp (stdio), SDK v2 at revision 2026-07-28', () => {
  let dir;
  let client;
  before(async () => {
    dir = makeProject();
    client = s.markModern(new ModernClient({ name: 'af-test-modern', version: '2.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } }));
    await client.connect(transport(ModernStdio, dir));
  });
  after(async () => {
    await client?.close();
    removeTree(dir);
  });

  it('negotiates the stateless revision', () => {
    assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28');
  });
  it('lists the tools with their schemas', () => s.checkToolList(client));
  it('runs the tools', async () => {
    await s.checkEveryTool(client);
    await s.checkHiddenAndView(client);
  });
  it('stops a cancelled command', () => s.checkCancel(client));
});
