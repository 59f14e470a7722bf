// The server's Streamable HTTP endpoint (/v1/sandboxes/{id}/mcp), driven by the official
// TypeScript SDK clients, behind the same bearer token as the REST API.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttp } from '@modelcontextprotocol/client';

import { makeSandbox, rest, startServer, stopServer } from './harness.mjs';
import * as s from './scenario.mjs';

let server;
let sandbox;
const endpoint = (id = sandbox) => new URL(`${server.base}/v1/sandboxes/${id}/mcp`);
const auth = () => ({ headers: { Authorization: `Bearer ${server.token}` } });

before(async () => {
  server = await startServer();
  sandbox = await makeSandbox(server);
});
after(async () => {
  if (server) await stopServer(server);
});

describe('MCP over Streamable HTTP, SDK v1', () => {
  let client;
  before(async () => {
    client = new Client({ name: 'af-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(endpoint(), { requestInit: auth() }));
  });
  after(async () => {
    await client?.close();
  });

  it('initializes a session', () => {
    assert.equal(client.getServerVersion().name, 'agentfense');
    assert.match(client.getInstructions(), new RegExp(sandbox));
  });
  it('lists the tools with their schemas', () => s.checkToolList(client));
  it('runs every tool', () => s.checkEveryTool(client));
  it('hides hidden files and does not read view files', () => s.checkHiddenAndView(client));
  it('kills a command at its timeout', () => s.checkTimeout(client));
  it('reports progress of a long command', () => s.checkProgress(client));
  it('stops a cancelled command', () => s.checkCancel(client));
  it('serves 100 concurrent calls', () => s.checkConcurrent(client, 100));
});

describe('MCP over Streamable HTTP, SDK v2 at revision 2026-07-28', () => {
  let client;
  before(async () => {
    client = s.markModern(new ModernClient({ name: 'af-test-modern', version: '2.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } }));
    await client.connect(new ModernHttp(endpoint(), { requestInit: auth() }));
  });
  after(async () => {
    await client?.close();
  });

  it('negotiates the stateless revision', () => {
    assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28');
  });
  it('runs the tools', async () => {
    await s.checkToolList(client);
    await s.checkHiddenAndView(client);
    const r = await s.call(client, 'run_command', { command: 'echo modern' });
    assert.equal(r.structuredContent.stdout, 'modern\n');
  });
  it('stops a command whose stream the client closes', () => s.checkCancel(client));
});

// What no SDK sends: the guards of the endpoint.
describe('MCP endpoint guards', () => {
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } };
  const post = (body, headers = {}, id = sandbox) => rest(server, 'POST', `/v1/sandboxes/${id}/mcp`, body,
    { Accept: 'application/json, text/event-stream', ...headers });

  it('needs the bearer token, like every route', async () => {
    const r = await fetch(endpoint(), { method: 'POST', body: JSON.stringify(init), headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 401);
  });
  it('refuses a foreign Origin and accepts a loopback one', async () => {
    const evil = await post(init, { Origin: 'http://evil.example' });
    assert.equal(evil.status, 403);
    assert.equal(evil.json.error.code, -32600);
    const local = await post(init, { Origin: 'http://localhost:3000' });
    assert.equal(local.status, 200);
  });
  it('refuses a Content-Type other than JSON', async () => {
    const r = await post(JSON.stringify(init), { 'Content-Type': 'text/plain' });
    assert.equal(r.status, 415);
  });
  it('answers malformed messages with JSON-RPC errors and keeps serving', async () => {
    const bad = await post('{"jsonrpc":"2.0",');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, -32700);
    const batch = await post([init]);
    assert.equal(batch.json.error.code, -32600);
    const big = await post(`{"x":"${'a'.repeat(9 << 20)}"}`);
    assert.equal(big.status, 413);
    const noSession = await post({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    assert.equal(noSession.status, 400);
    const unknownSession = await post({ jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'Mcp-Session-Id': 'f'.repeat(32) });
    assert.equal(unknownSession.status, 404);
    const ok = await post(init);
    assert.equal(ok.status, 200);
    assert.equal(ok.json.result.serverInfo.name, 'agentfense');
  });
  it('binds a session to its sandbox and ends it on DELETE', async () => {
    const opened = await post(init);
    const sid = opened.headers.get('mcp-session-id');
    assert.match(sid, /^[0-9a-f]{32}$/);
    const other = await makeSandbox(server);
    const elsewhere = await post({ jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'Mcp-Session-Id': sid }, other);
    assert.equal(elsewhere.status, 404);
    const del = await rest(server, 'DELETE', `/v1/sandboxes/${sandbox}/mcp`, undefined, { 'Mcp-Session-Id': sid });
    assert.equal(del.status, 200);
    const gone = await post({ jsonrpc: '2.0', id: 3, method: 'tools/list' }, { 'Mcp-Session-Id': sid });
    assert.equal(gone.status, 404);
  });
  it('checks the headers of a current request against its body', async () => {
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
    const body = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'README.md' }, _meta: meta } };
    const headers = { 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'read_file' };
    const ok = await post(body, { ...headers, Accept: 'application/json' });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.result.content[0].text, 'readme\n');
    const wrongName = await post(body, { ...headers, 'Mcp-Name': 'run_command' });
    assert.equal(wrongName.status, 400);
    assert.equal(wrongName.json.error.code, -32020);
    const encoded = await post(body, { ...headers, Accept: 'application/json', 'Mcp-Name': `=?base64?${Buffer.from('read_file').toString('base64')}?=` });
    assert.equal(encoded.status, 200);
    const missing = await post(body, { 'MCP-Protocol-Version': '2026-07-28' });
    assert.equal(missing.json.error.code, -32020);
    const old = { ...meta, 'io.modelcontextprotocol/protocolVersion': '1900-01-01' };
    const unsupported = await post({ ...body, params: { ...body.params, _meta: old } }, { ...headers, 'MCP-Protocol-Version': '1900-01-01' });
    assert.equal(unsupported.status, 400);
    assert.equal(unsupported.json.error.code, -32022);
    assert.ok(unsupported.json.error.data.supported.includes('2026-07-28'));
    const unknown = await post({ jsonrpc: '2.0', id: 2, method: 'nope', params: { _meta: meta } }, { 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'nope' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, -32601);
  });
  it('answers 404 for an unknown sandbox and 405 for GET', async () => {
    const missing = await post(init, {}, 'sb_0123456789abcdef');
    assert.equal(missing.status, 404);
    const get = await rest(server, 'GET', `/v1/sandboxes/${sandbox}/mcp`);
    assert.equal(get.status, 405);
  });
});
