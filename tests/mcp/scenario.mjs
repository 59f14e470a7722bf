// The checks every transport and client must pass, on a client already connected to a sandbox
// over FILES under RULES (harness.mjs).
import assert from 'node:assert/strict';

import { SECRET, sleep } from './harness.mjs';

export const TOOLS = ['run_command', 'read_file', 'write_file', 'edit_file', 'list_files',
  'explain_permission', 'changes'];

// SDK v2's callTool takes its options second; v1's third (after a result schema).
const modern = new WeakSet();
export function markModern(client) {
  modern.add(client);
  return client;
}

export async function call(client, name, args, options) {
  if (modern.has(client)) return client.callTool({ name, arguments: args }, options);
  return client.callTool({ name, arguments: args }, undefined, options);
}

function text(result) {
  return result.content.map((c) => c.text ?? '').join('');
}

export async function checkToolList(client, { structured = true } = {}) {
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name), TOOLS);
  for (const t of tools) {
    assert.equal(t.inputSchema.type, 'object', t.name);
    if (structured) assert.equal(t.outputSchema?.type, 'object', t.name);
    assert.ok(t.description.length > 20, t.name);
  }
}

export async function checkEveryTool(client, { pendingChanges = true } = {}) {
  const run = await call(client, 'run_command', { command: 'echo out; echo err >&2; exit 3' });
  assert.equal(run.isError, false);
  assert.equal(run.structuredContent.stdout, 'out\n');
  assert.equal(run.structuredContent.stderr, 'err\n');
  assert.equal(run.structuredContent.exit_code, 3);
  assert.equal(run.structuredContent.timed_out, false);

  const wrote = await call(client, 'write_file', { path: 'output/new/notes.txt', content: 'alpha beta alpha\n' });
  assert.equal(wrote.isError, false, text(wrote));
  assert.equal(wrote.structuredContent.bytes_written, 17);

  const read = await call(client, 'read_file', { path: '/output/new/notes.txt' });
  assert.equal(text(read), 'alpha beta alpha\n');
  assert.equal(read.structuredContent.encoding, 'utf-8');
  assert.equal(read.structuredContent.eof, true);
  // The command sees what the tool wrote, and the tool sees what a command writes.
  const cat = await call(client, 'run_command', { command: 'cat output/new/notes.txt; printf x > output/by-cmd' });
  assert.equal(cat.structuredContent.stdout, 'alpha beta alpha\n');
  const byCmd = await call(client, 'read_file', { path: '/workspace/output/by-cmd' });
  assert.equal(text(byCmd), 'x');

  const twice = await call(client, 'edit_file', { path: 'output/new/notes.txt', old_string: 'alpha', new_string: 'gamma' });
  assert.equal(twice.isError, true);
  assert.match(text(twice), /occurs 2 times/);
  const none = await call(client, 'edit_file', { path: 'output/new/notes.txt', old_string: 'delta', new_string: 'x' });
  assert.equal(none.isError, true);
  assert.match(text(none), /does not occur/);
  const once = await call(client, 'edit_file', { path: 'output/new/notes.txt', old_string: 'beta', new_string: 'BETA' });
  assert.equal(once.isError, false, text(once));
  assert.equal(once.structuredContent.replacements, 1);
  const all = await call(client, 'edit_file', { path: 'output/new/notes.txt', old_string: 'alpha', new_string: 'a', replace_all: true });
  assert.equal(all.structuredContent.replacements, 2);
  const edited = await call(client, 'read_file', { path: 'output/new/notes.txt' });
  assert.equal(text(edited), 'a BETA a\n');
  const ro = await call(client, 'edit_file', { path: 'src/app.py', old_string: 'hi', new_string: 'ho' });
  assert.equal(ro.isError, true);
  assert.match(text(ro), /^edit_file: EACCES: /);

  const partial = await call(client, 'read_file', { path: 'src/app.py', offset: 7, limit: 2 });
  assert.equal(text(partial), 'hi');
  assert.equal(partial.structuredContent.eof, false);
  assert.equal(partial.structuredContent.size, 12);

  const listed = await call(client, 'list_files', { depth: 3 });
  const paths = listed.structuredContent.entries.map((e) => e.path);
  assert.ok(paths.includes('src/app.py'), paths);
  assert.ok(paths.includes('output/new/notes.txt'), paths);
  assert.equal(listed.structuredContent.entries.find((e) => e.path === 'src').type, 'directory');

  const explained = await call(client, 'explain_permission', { path: '/output/new/notes.txt' });
  assert.equal(explained.structuredContent.level, 'write');
  assert.equal(explained.structuredContent.deciding_rule.pattern, '/output/**');
  const dir = await call(client, 'explain_permission', { path: 'docs' });
  assert.equal(dir.structuredContent.is_directory, true);

  const changes = await call(client, 'changes', {});
  assert.equal(changes.isError, false, text(changes));
  if (pendingChanges) {
    const changed = changes.structuredContent.changes.map((c) => c.path);
    assert.ok(changed.includes('/output/new/notes.txt'), changed);
    assert.ok(changed.includes('/output/by-cmd'), changed);
  }
}

// A hidden file does not exist for any tool, exactly as a missing one; a `view` file lists but
// does not read. Nothing of either content ever shows.
export async function checkHiddenAndView(client) {
  const hidden = await call(client, 'read_file', { path: '.env' });
  const missing = await call(client, 'read_file', { path: '.envx' });
  assert.equal(hidden.isError, true);
  assert.equal(text(hidden), 'read_file: ENOENT: /workspace/.env (No such file or directory)');
  assert.equal(text(missing), text(hidden).replace('.env', '.envx'));
  const editHidden = await call(client, 'edit_file', { path: '.env', old_string: 'KEY', new_string: 'x' });
  assert.match(text(editHidden), /^edit_file: ENOENT/);
  const writeHidden = await call(client, 'write_file', { path: '.env', content: 'x' });
  assert.match(text(writeHidden), /^write_file: EACCES/);

  const view = await call(client, 'read_file', { path: 'docs/view.txt' });
  assert.equal(view.isError, true);
  assert.equal(text(view), 'read_file: EACCES: /workspace/docs/view.txt (Permission denied)');

  const listed = await call(client, 'list_files', { depth: 2 });
  const paths = listed.structuredContent.entries.map((e) => e.path);
  assert.ok(paths.includes('docs/view.txt'), paths);
  assert.ok(!paths.some((p) => p.includes('.env')), paths);
  const viaShell = await call(client, 'run_command', { command: 'cat .env docs/view.txt; ls -a' });
  assert.ok(!viaShell.structuredContent.stdout.includes('.env'));

  const why = await call(client, 'explain_permission', { path: '/.env' });
  assert.equal(why.structuredContent.level, 'none');
  assert.equal(why.structuredContent.deciding_rule.pattern, '**/.env');
  for (const r of [hidden, view, listed, viaShell, why]) {
    assert.ok(!JSON.stringify(r).includes(SECRET), JSON.stringify(r));
  }
}

// The agent never blocks on, or reads from, anything but a regular file.
export async function checkSpecialFiles(client) {
  const made = await call(client, 'run_command', { command: 'mkfifo output/fifo && ln -sf /dev/zero output/zero' });
  assert.equal(made.structuredContent.exit_code, 0, made.structuredContent.stderr);
  for (const p of ['output/fifo', 'output/zero']) {
    const r = await call(client, 'read_file', { path: p });
    assert.equal(r.isError, true, p);
    assert.match(text(r), /^read_file: EINVAL: .* is not a regular file/);
  }
  const w = await call(client, 'write_file', { path: 'output/fifo', content: 'x' });
  assert.equal(w.isError, true);
  const dir = await call(client, 'read_file', { path: 'output' });
  assert.match(text(dir), /^read_file: EISDIR/);
  const listed = await call(client, 'list_files', { path: 'output' });
  const types = Object.fromEntries(listed.structuredContent.entries.map((e) => [e.path, e.type]));
  assert.equal(types['output/fifo'], 'other');
  assert.equal(types['output/zero'], 'symlink');
  await call(client, 'run_command', { command: 'rm -f output/fifo output/zero' });
}

export async function checkTimeout(client) {
  const started = Date.now();
  const r = await call(client, 'run_command', { command: 'echo before; sleep 30', timeout: 0.5 });
  assert.equal(r.isError, false);
  assert.equal(r.structuredContent.timed_out, true);
  assert.equal(r.structuredContent.stdout, 'before\n');
  assert.ok(Date.now() - started < 10000);
}

// Cancelling the request stops the command (its process is gone), and the server carries on.
export async function checkCancel(client) {
  const controller = new AbortController();
  const pending = call(client, 'run_command', { command: 'echo $$ > /tmp/cancel.pid; exec sleep 60' },
    { signal: controller.signal });
  await sleep(700);
  controller.abort('test cancels');
  await assert.rejects(pending);
  let state = '';
  for (let i = 0; i < 50 && state !== 'gone'; ++i) {
    await sleep(100);
    const r = await call(client, 'run_command', { command: 'kill -0 $(cat /tmp/cancel.pid) 2>/dev/null && echo alive || echo gone' });
    state = r.structuredContent.stdout.trim();
  }
  assert.equal(state, 'gone');
}

export async function checkProgress(client) {
  const seen = [];
  const r = await call(client, 'run_command', { command: 'sleep 2.3; echo done', timeout: 30 },
    { onprogress: (p) => seen.push(p), resetTimeoutOnProgress: true });
  assert.equal(r.structuredContent.stdout, 'done\n');
  assert.ok(seen.length >= 2, JSON.stringify(seen));
  assert.ok(seen[1].progress > seen[0].progress);
  assert.equal(seen[0].total, 30);
}

export async function checkConcurrent(client, n = 100) {
  const results = await Promise.all(Array.from({ length: n }, (_, i) => (i % 2
    ? call(client, 'run_command', { command: `echo ${i}` })
    : call(client, 'read_file', { path: 'src/app.py' }))));
  results.forEach((r, i) => {
    assert.equal(r.isError, false, text(r));
    if (i % 2) assert.equal(r.structuredContent.stdout, `${i}\n`);
    else assert.equal(text(r), "print('hi')\n");
  });
}
