// The panel's Cluster page against a real 2-node cluster (two server processes on one SQLite
// database and the machine's Redis at 127.0.0.1:6379, or REDIS_URL): it lists both nodes with
// their connections, and a node that stops disappears from the list. Headless Chromium.

'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const PusherClient = require('pusher-js');
const { freePort, isUp } = require('./support');

const BIN = process.env.SERVER_BIN || path.resolve(__dirname, '../../target/debug/reverb-pusher');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = path.resolve(__dirname, '../screenshots');
const WAIT_MS = 15000;

const nodes = [];
let browser;
let page;
let app;
const sockets = [];
let lastRows;

async function until(what, check, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last rows: ${JSON.stringify(lastRows)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startNode(dir, env, id) {
  const port = await freePort();
  const child = spawn(BIN, ['--database-url', `sqlite://${path.join(dir, 'cluster.db')}`, '--host', '127.0.0.1', '--port', String(port), 'serve'], {
    env: { ...env, REVERB_PUSHER_CLUSTER_NODE_ID: id },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await until(`node ${id}`, () => isUp(port));
  return { id, port, child, exited };
}

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-cluster-ui-'));
  const env = {
    ...process.env,
    REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key'),
    REVERB_PUSHER_LOG_LEVEL: 'warn',
    REVERB_PUSHER_CLUSTER_REDIS_URL: process.env.REDIS_URL || 'redis://127.0.0.1:6379/',
    REVERB_PUSHER_CLUSTER_KEY_PREFIX: `cluster-ui-${crypto.randomBytes(6).toString('hex')}`,
  };
  const db = `sqlite://${path.join(dir, 'cluster.db')}`;
  app = JSON.parse(execFileSync(BIN, ['--database-url', db, 'app', 'create', '--name', 'clustered', '--json'], { env }));
  execFileSync(BIN, ['--database-url', db, 'user', 'create', '--email', 'ops@example.com', '--name', 'Ops'], {
    env, input: 'cluster panel password\n',
  });
  nodes.push(await startNode(dir, env, 'ws-1'));
  nodes.push(await startNode(dir, env, 'ws-2'));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.setDefaultTimeout(WAIT_MS);
});

after(async () => {
  for (const s of sockets) s.disconnect();
  if (browser) await browser.close();
  for (const node of nodes) {
    node.child.kill('SIGTERM');
    await node.exited;
  }
});

test('the Cluster page lists both nodes and their connections, and a stopped node leaves it', async () => {
  // Two clients on the second node.
  for (let i = 0; i < 2; i += 1) {
    const c = new PusherClient(app.key, {
      cluster: 'mt1', wsHost: '127.0.0.1', wsPort: nodes[1].port, forceTLS: false, enabledTransports: ['ws'],
    });
    sockets.push(c);
    await new Promise((resolve) => c.connection.bind('connected', resolve));
  }
  const base = `http://127.0.0.1:${nodes[0].port}`;
  await page.goto(`${base}/admin/login`);
  await page.fill('#login-email', 'ops@example.com');
  await page.fill('#login-password', 'cluster panel password');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Cluster');
  await page.click('nav >> text=Cluster');
  await page.waitForSelector('table.nodes');
  const rows = () => page.$$eval('table.nodes tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  const listed = await until('both nodes with their connections', async () => {
    const text = await rows();
    lastRows = text;
    // Cells: node, address, connections, last heartbeat, started, version, state.
    return text.length === 2 && text.some((r) => r[0] === 'ws-2' && r[2] === '2' && r[6] === 'alive')
      && text.some((r) => r[0] === 'ws-1 (this node)') && text;
  });
  assert.equal(listed.length, 2, JSON.stringify(lastRows));
  assert.match(await page.locator('p.lede').textContent(), /2 nodes, 2 connections.*healthy/);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'cluster-nodes.png'), fullPage: true });

  // The second node stops cleanly: it leaves the cluster at once.
  nodes[1].child.kill('SIGTERM');
  await nodes[1].exited;
  nodes.splice(1, 1);
  await until('one node left', async () => (await rows()).length === 1);
});
