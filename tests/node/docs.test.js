// The documentation's client snippets (docs/snippets/), run as they are printed in the book
// against the real server, with an app's credentials in the environment: pusher-js in Node,
// the `pusher` Node and Python SDKs, Laravel Echo with the `reverb` and `pusher` broadcasters.
// Also: the served /docs/ pages carry the snippets, and the link checker that guards the book
// (linkcheck.js) finds what it must.

'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const PusherServer = require('pusher');
const { checkBook } = require('./linkcheck');
const { freePort } = require('./support');

const ROOT = path.resolve(__dirname, '../..');
const BIN = process.env.SERVER_BIN || path.join(ROOT, 'target/debug/reverb-pusher');
const PYTHON = process.env.DOCS_PYTHON || path.join(ROOT, 'target/py/bin/python');
const WAIT_MS = 15000;

let server;
let port;
let creds;
let dir;
let snippets;
/** Every snippet process started, so that a failed test leaves none running. */
const children = new Set();

function get(urlPath) {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: urlPath }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', () => resolve({ status: 0, body: '' }));
  });
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-docs-'));
  // The snippets run from a folder inside tests/node, so that `require` and `import` find the
  // pinned packages in tests/node/node_modules exactly as they would in a user's project.
  snippets = fs.mkdtempSync(path.join(__dirname, '.snippets-'));
  for (const f of fs.readdirSync(path.join(ROOT, 'docs/snippets'))) {
    fs.copyFileSync(path.join(ROOT, 'docs/snippets', f), path.join(snippets, f));
  }
  const db = `sqlite://${path.join(dir, 'docs.db')}`;
  const env = { ...process.env, REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key') };
  creds = JSON.parse(execFileSync(BIN, ['--database-url', db, 'app', 'create', '--name', 'docs', '--json'], { env }));
  port = await freePort();
  server = spawn(BIN, ['--database-url', db, '--host', '127.0.0.1', '--port', String(port), 'serve'], {
    env, stdio: ['ignore', 'ignore', 'ignore'],
  });
  for (let i = 0; i < 100 && (await get('/ready')).status !== 200; i += 1) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await get('/ready')).status, 200, 'the server did not become ready');
});

after(() => {
  for (const child of children) child.kill('SIGKILL');
  if (server) server.kill('SIGKILL');
  if (snippets) fs.rmSync(snippets, { recursive: true, force: true });
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The environment a reader sets before running a snippet, from the app's credentials. */
function snippetEnv(overrides = {}) {
  return {
    ...process.env,
    PUSHER_APP_ID: creds.id,
    PUSHER_APP_KEY: creds.key,
    PUSHER_APP_SECRET: creds.secret,
    PUSHER_HOST: '127.0.0.1',
    PUSHER_PORT: String(port),
    PUSHER_SCHEME: 'http',
    REVERB_APP_ID: creds.id,
    REVERB_APP_KEY: creds.key,
    REVERB_APP_SECRET: creds.secret,
    REVERB_HOST: '127.0.0.1',
    REVERB_PORT: String(port),
    REVERB_SCHEME: 'http',
    ...overrides,
  };
}

/** Starts a snippet; `waitFor(text)` resolves once its output contains `text`. */
function start(command, file, env) {
  const child = spawn(command, [path.join(snippets, file)], { cwd: snippets, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const proc = { child, out: '', waiters: [] };
  const feed = (chunk) => {
    proc.out += chunk;
    proc.waiters = proc.waiters.filter(([text, resolve]) => (proc.out.includes(text) ? (resolve(), false) : true));
  };
  child.stdout.on('data', feed);
  child.stderr.on('data', feed);
  proc.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  proc.waitFor = (text) => new Promise((resolve, reject) => {
    if (proc.out.includes(text)) { resolve(); return; }
    const timer = setTimeout(() => reject(new Error(`${file}: no "${text}" within ${WAIT_MS} ms; output:\n${proc.out}`)), WAIT_MS);
    proc.waiters.push([text, () => { clearTimeout(timer); resolve(); }]);
  });
  proc.finish = async () => {
    const timer = setTimeout(() => child.kill('SIGKILL'), WAIT_MS);
    const code = await proc.exited;
    clearTimeout(timer);
    return code;
  };
  return proc;
}

async function runToEnd(command, file, env) {
  const proc = start(command, file, env);
  const code = await proc.finish();
  return { code, out: proc.out };
}

test('getting started: pusher-js in Node receives the event that the Node SDK snippet triggers', async () => {
  const client = start('node', 'pusher-js-node.js', snippetEnv());
  await client.waitFor('subscribed to my-channel');
  const trigger = await runToEnd('node', 'trigger-node.js', snippetEnv());
  assert.equal(trigger.code, 0, trigger.out);
  assert.match(trigger.out, /triggered my-event/);
  await client.waitFor('received my-event: {"message":"hello world"}');
  assert.equal(await client.finish(), 0, client.out);
});

test('the Python SDK snippet triggers an event that pusher-js receives', async () => {
  const client = start('node', 'pusher-js-node.js', snippetEnv());
  await client.waitFor('subscribed to my-channel');
  const trigger = await runToEnd(PYTHON, 'trigger.py', snippetEnv());
  assert.equal(trigger.code, 0, trigger.out);
  assert.match(trigger.out, /triggered my-event/);
  await client.waitFor('received my-event: {"message":"hello world"}');
  assert.equal(await client.finish(), 0, client.out);
});

for (const [file, broadcaster] of [['echo-reverb.mjs', 'reverb'], ['echo-pusher.mjs', 'pusher']]) {
  test(`Laravel Echo with the ${broadcaster} broadcaster receives a broadcast`, async () => {
    const echo = start('node', file, snippetEnv());
    await echo.waitFor('subscribed to orders');
    // What Laravel's broadcaster sends for an event with broadcastAs() = 'order.shipped'.
    const sdk = new PusherServer({
      appId: creds.id, key: creds.key, secret: creds.secret, host: '127.0.0.1', port: String(port), useTLS: false,
    });
    await sdk.trigger('orders', 'order.shipped', { order: 42 });
    await echo.waitFor('order.shipped: {"order":42}');
    assert.equal(await echo.finish(), 0, echo.out);
  });
}

test('the snippets fail loudly with wrong credentials', async () => {
  const client = await runToEnd('node', 'pusher-js-node.js', snippetEnv({ PUSHER_APP_KEY: 'not-a-key' }));
  assert.equal(client.code, 1);
  assert.match(client.out, /4001/);
  const node = await runToEnd('node', 'trigger-node.js', snippetEnv({ PUSHER_APP_SECRET: 'wrong' }));
  assert.equal(node.code, 1);
  assert.match(node.out, /401/);
  const python = await runToEnd(PYTHON, 'trigger.py', snippetEnv({ PUSHER_APP_SECRET: 'wrong' }));
  assert.notEqual(python.code, 0, python.out);
});

test('the served documentation shows the tested snippets and the generated references', async () => {
  const page = await get('/docs/getting-started.html');
  assert.equal(page.status, 200);
  assert.ok(page.body.includes('process.env.PUSHER_APP_KEY'),
    'the book embedded in the server lacks the snippet (built without mdBook? run scripts/docs.sh)');
  const settings = await get('/docs/reference/settings.html');
  assert.ok(settings.body.includes('REVERB_PUSHER_ACTIVITY_TIMEOUT_SECS'));
  const admin = await get('/docs/reference/admin-api.html');
  assert.ok(admin.body.includes('/admin/api/apps/{id}/rotate-secret'));
});

test('the link checker finds broken links, missing anchors and unexpanded includes', () => {
  const book = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-book-'));
  try {
    fs.mkdirSync(path.join(book, 'a'));
    fs.writeFileSync(path.join(book, 'index.html'),
      '<a href="a/page.html#here">ok</a> <a href="https://example.com/">external</a> <a href="#top">self</a><h1 id="top"></h1>');
    fs.writeFileSync(path.join(book, 'a/page.html'), '<h2 id="here"></h2><a href="../index.html">up</a> <a href="/docs/index.html">abs</a>');
    assert.deepEqual(checkBook(book).problems, []);
    fs.writeFileSync(path.join(book, 'a/bad.html'),
      '<a href="missing.html">x</a> <a href="page.html#nowhere">y</a> <a href="../../etc/passwd">z</a> <a href="/admin/">w</a> {{#include gone.md}}');
    const { problems } = checkBook(book);
    assert.equal(problems.length, 5, problems.join('\n'));
    assert.ok(problems.some((p) => p.includes('missing.html: no such file')));
    assert.ok(problems.some((p) => p.includes('no id "nowhere"')));
    assert.ok(problems.some((p) => p.includes('outside the book')));
    assert.ok(problems.some((p) => p.includes('not expanded')));
  } finally {
    fs.rmSync(book, { recursive: true, force: true });
  }
});
