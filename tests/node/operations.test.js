// Operations, against the real server process: SIGTERM during traffic drains every client with
// 4200, readiness flips at once, the process exits 0 within its bound; JSON logs carry one line
// per connection open and close with its fields, and never the app secret.

'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const PusherClient = require('pusher-js');
const PusherServer = require('pusher');
const { freePort } = require('./support');

const BIN = process.env.SERVER_BIN || path.resolve(__dirname, '../../target/debug/reverb-pusher');
const DRAIN_WINDOW_SECS = 2;

function getStatus(port, urlPath) {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: urlPath }, (res) => { res.resume(); resolve(res.statusCode); })
      .on('error', () => resolve(0));
  });
}

test('SIGTERM drains every client with 4200, flips readiness and exits 0; JSON logs per connection', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-ops-'));
  const db = `sqlite://${path.join(dir, 'ops.db')}`;
  const env = {
    ...process.env,
    REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key'),
    REVERB_PUSHER_LOG_FORMAT: 'json',
    REVERB_PUSHER_LOG_LEVEL: 'info',
    REVERB_PUSHER_DRAIN_WINDOW_SECS: String(DRAIN_WINDOW_SECS),
  };
  const creds = JSON.parse(execFileSync(BIN, ['--database-url', db, 'app', 'create', '--name', 'ops', '--json'], { env }));
  const port = await freePort();
  const server = spawn(BIN, ['--database-url', db, '--host', '127.0.0.1', '--port', String(port), 'serve'], {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  server.stderr.on('data', (chunk) => { logs += chunk; });
  server.stdout.on('data', (chunk) => { logs += chunk; });
  const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  for (let i = 0; i < 100 && (await getStatus(port, '/ready')) !== 200; i += 1) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await getStatus(port, '/ready'), 200);

  const clients = [];
  const codes = [];
  for (let i = 0; i < 5; i += 1) {
    const c = new PusherClient(creds.key, {
      cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
    });
    await new Promise((resolve) => c.connection.bind('connected', resolve));
    const got = new Promise((resolve) => c.connection.bind('error', (e) => {
      const code = (e.data && e.data.code) || (e.error && e.error.data && e.error.data.code);
      if (code) resolve(code);
    }));
    c.subscribe('live');
    clients.push(c);
    codes.push(got);
  }
  // Traffic while the drain begins.
  const sdk = new PusherServer({ appId: creds.id, key: creds.key, secret: creds.secret, host: '127.0.0.1', port: String(port), useTLS: false });
  await sdk.trigger('live', 'tick', { n: 1 });

  const started = Date.now();
  server.kill('SIGTERM');
  let sawNotReady = false;
  for (let i = 0; i < 20 && !sawNotReady; i += 1) {
    sawNotReady = (await getStatus(port, '/ready')) === 503;
    if (!sawNotReady) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(sawNotReady, true, '/ready answers 503 during the drain');

  const received = await Promise.all(codes);
  assert.deepEqual(received, [4200, 4200, 4200, 4200, 4200]);
  const { code } = await exited;
  const elapsed = (Date.now() - started) / 1000;
  for (const c of clients) c.disconnect();
  assert.equal(code, 0, 'exit code');
  assert.ok(elapsed < DRAIN_WINDOW_SECS + 10, `exited within the bound (${elapsed}s)`);

  const lines = logs.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const opened = lines.filter((l) => l.message === 'connection opened');
  const closed = lines.filter((l) => l.message === 'connection closed');
  assert.equal(opened.length, 5, 'one line per connection opened');
  assert.equal(closed.length, 5, 'one line per connection closed');
  for (const line of [...opened, ...closed]) {
    assert.equal(String(line.app_id), creds.id);
    assert.match(line.socket_id, /^\d+\.\d+$/);
    assert.ok(line.timestamp && line.level);
  }
  assert.ok(closed.every((l) => l.code === 4200), 'close lines carry the code');
  assert.equal(logs.includes(creds.secret), false, 'the app secret never reaches the logs');
});

/// Starts the server with JSON logs on a fresh database; resolves once it is ready.
async function startServer(extraEnv = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-ops-'));
  const db = `sqlite://${path.join(dir, 'ops.db')}`;
  const env = {
    ...process.env,
    REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key'),
    REVERB_PUSHER_LOG_FORMAT: 'json',
    REVERB_PUSHER_LOG_LEVEL: 'info',
    ...extraEnv,
  };
  const creds = JSON.parse(execFileSync(BIN, ['--database-url', db, 'app', 'create', '--name', 'ops', '--json'], { env }));
  const port = await freePort();
  const server = spawn(BIN, ['--database-url', db, '--host', '127.0.0.1', '--port', String(port), 'serve'], {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const handle = { server, port, creds, logs: '' };
  server.stderr.on('data', (chunk) => { handle.logs += chunk; });
  server.stdout.on('data', (chunk) => { handle.logs += chunk; });
  handle.exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  for (let i = 0; i < 100 && (await getStatus(port, '/ready')) !== 200; i += 1) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await getStatus(port, '/ready'), 200);
  return handle;
}

test('issue 13: a second SIGTERM during the drain exits at once', async () => {
  const { server, port, creds, exited } = await startServer({ REVERB_PUSHER_DRAIN_WINDOW_SECS: '60' });
  const client = new PusherClient(creds.key, {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
  });
  await new Promise((resolve) => client.connection.bind('connected', resolve));
  server.kill('SIGTERM');
  for (let i = 0; i < 40 && (await getStatus(port, '/ready')) !== 503; i += 1) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const started = Date.now();
  server.kill('SIGTERM');
  const timeout = new Promise((resolve) => setTimeout(() => resolve('still running'), 5000));
  const outcome = await Promise.race([exited, timeout]);
  client.disconnect();
  if (outcome === 'still running') server.kill('SIGKILL');
  assert.notEqual(outcome, 'still running', 'the second signal ends the drain');
  assert.ok(Date.now() - started < 5000);
  assert.notEqual(outcome.code, 0, 'an interrupted drain is not a clean exit');
});

test('issue 13: an unauthenticated admin call is logged once, client input never raw', async () => {
  const handle = await startServer();
  const { server, port, exited } = handle;
  assert.equal(await getStatus(port, '/admin/api/apps'), 401);
  const forged = '"}\n{"level":"ERROR","fake":true}';
  const loginStatus = await new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1', port, path: '/admin/api/login', method: 'POST', headers: { 'content-type': 'application/json' },
    }, (res) => { res.resume(); resolve(res.statusCode); });
    req.end(JSON.stringify({ email: `evil${forged}@example.com`, password: 'whatever pw' }));
  });
  assert.equal(loginStatus, 401);
  server.kill('SIGTERM');
  await exited;
  const lines = handle.logs.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const about = (endpoint) => lines.filter((l) => l.endpoint === endpoint || (endpoint.endsWith('/login') && /login/.test(l.message)));
  assert.equal(about('/admin/api/apps').length, 1, 'one line for the refused call');
  assert.equal(about('/admin/api/login').length, 1, `one line for the failed login: ${JSON.stringify(about('/admin/api/login'))}`);
  assert.equal(lines.some((l) => l.fake === true), false, 'no forged log line');
});
