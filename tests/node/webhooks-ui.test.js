// Webhooks end to end, in headless Chromium against the real server binary, with a real HTTP
// receiver in this test: an endpoint created in the panel (with its own signing secret, shown
// once), pusher-js activity delivered to the receiver and validated by the official Node SDK
// (`webhook().isValid()`) and the official Python SDK (`validate_webhook`), the delivery log
// and success rate in the panel, a test event sent from the panel, a dead letter replayed from
// the panel, and pending deliveries that survive a SIGKILL of the server.

'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const Pusher = require('pusher-js');
const PusherServer = require('pusher');
const { chromium } = require('playwright-core');
const { freePort, isUp, until: waitUntil } = require('./support');

const ROOT = path.resolve(__dirname, '../..');
const BIN = process.env.SERVER_BIN || path.join(ROOT, 'target/debug/reverb-pusher');
const PYTHON = process.env.DOCS_PYTHON || path.join(ROOT, 'target/py/bin/python');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = path.resolve(__dirname, '../screenshots');
const WAIT_MS = 20000;
const ADMIN = { name: 'Hook Admin', email: 'hooks@example.com', password: 'webhook panel password' };

let dir;
let port;
let base;
let server;
let exited;
let logs = '';
let browser;
let page;
const clients = [];

/// The receiver: every request it got, and what it answers (200, or a failure status).
const received = [];
let answer = 200;
let receiver;
let hookUrl;

const up = () => isUp(port);

const until = (what, check, timeout = WAIT_MS) => waitUntil(what, check, timeout);

async function shot(name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/// Waits until the element's text matches.
async function textOf(selector, pattern) {
  await page.waitForFunction(
    ([s, source]) => {
      const el = document.querySelector(s);
      return el && new RegExp(source).test(el.textContent);
    },
    [selector, pattern.source],
    { timeout: WAIT_MS },
  );
  return page.locator(selector).first().textContent();
}

/// Starts the server on the test's database and port; resolves when it answers.
async function startServer() {
  server = spawn(BIN, ['--database-url', `sqlite://${path.join(dir, 'hooks.db')}`, '--host', '127.0.0.1', '--port', String(port)], {
    env: {
      ...process.env,
      REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key'),
      REVERB_PUSHER_LOG_FORMAT: 'json',
      REVERB_PUSHER_LOG_LEVEL: 'info',
      // Quick enough for a test: no delay before vacated, short retries, a 5-second horizon.
      REVERB_PUSHER_WEBHOOK_VACATE_DELAY_MS: '0',
      REVERB_PUSHER_WEBHOOK_BATCH_WINDOW_MS: '20',
      REVERB_PUSHER_WEBHOOK_BACKOFF_BASE_MS: '100',
      REVERB_PUSHER_WEBHOOK_RETRY_HORIZON_SECS: '5',
      REVERB_PUSHER_WEBHOOK_BREAKER_FAILURES: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout.on('data', (d) => { logs += d; });
  server.stderr.on('data', (d) => { logs += d; });
  exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve(signal || code)));
  await until('the server', up);
}

function pythonValidates({ key, secret, signature, body }) {
  const script = [
    'import json, sys, pusher',
    'args = json.load(sys.stdin)',
    "client = pusher.Pusher(app_id='1', key=args['key'], secret=args['secret'], host='127.0.0.1', ssl=False)",
    "result = client.validate_webhook(key=args['key'], signature=args['signature'], body=args['body'])",
    'print(json.dumps(result))',
  ].join('\n');
  const out = execFileSync(PYTHON, ['-c', script], { input: JSON.stringify({ key, secret, signature, body }) });
  return JSON.parse(out.toString());
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-hooks-'));
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  receiver = http.createServer((req, res) => {
    let rawBody = '';
    req.on('data', (chunk) => { rawBody += chunk; });
    req.on('end', () => {
      received.push({ headers: req.headers, rawBody, status: answer });
      res.writeHead(answer);
      res.end(answer === 200 ? 'thanks' : 'not now');
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${receiver.address().port}/hooks`;
  // The account, made with the CLI as an operator would.
  execFileSync(BIN, ['--database-url', `sqlite://${path.join(dir, 'hooks.db')}`, 'user', 'create', '--email', ADMIN.email, '--name', ADMIN.name],
    { input: `${ADMIN.password}\n`, env: { ...process.env, REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key') } });
  await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => { logs += `\n[page error] ${e}`; });
  page.on('dialog', (d) => d.accept());
});

after(async () => {
  for (const c of clients) c.disconnect();
  if (browser) await browser.close();
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM');
    await exited;
  }
  if (receiver) receiver.close();
});

let app;
let endpointSecret;

function connect() {
  const client = new Pusher(app.key, {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
  });
  clients.push(client);
  return client;
}

async function subscribed(client, channel) {
  const ch = client.subscribe(channel);
  await new Promise((resolve, reject) => {
    ch.bind('pusher:subscription_succeeded', resolve);
    ch.bind('pusher:subscription_error', reject);
  });
}

/// The first received request whose events include one on this channel.
function arrivalFor(channel) {
  return until(`a webhook for ${channel}`, () => received.find((r) => r.status === 200
    && JSON.parse(r.rawBody).events.some((e) => e.channel === channel)));
}

test('create an endpoint in the panel; its secret is shown once', async () => {
  await page.goto(`${base}/admin/`);
  await page.waitForURL(/\/admin\/login$/, { timeout: WAIT_MS });
  await page.fill('#login-email', ADMIN.email);
  await page.fill('#login-password', ADMIN.password);
  await page.click('button[type=submit]');
  // After login the panel opens on the dashboard; apps are listed under /admin/apps.
  await textOf('main h1', /^Dashboard$/);
  await page.goto(`${base}/admin/apps`);
  await textOf('main h1', /^Apps$/);
  await page.fill('#new-app-name', 'Hooked');
  await page.click('text=Create app');
  await page.waitForURL(/\/admin\/apps\/\d+$/, { timeout: WAIT_MS });
  app = {
    id: await page.locator('#app-id').textContent(),
    key: await page.locator('#app-key').textContent(),
  };
  await page.click('#reveal-secret');
  app.secret = await page.locator('#app-secret').textContent();

  await page.click('.tabs >> text=Webhooks');
  await page.waitForURL(/\/webhooks$/, { timeout: WAIT_MS });
  await textOf('#no-webhooks', /No endpoints yet/);
  await page.click('#add-webhook');
  // The form checks before sending.
  await page.fill('#webhook-url', 'not a url');
  await page.click('#save-webhook');
  await textOf('p.error', /starting with http/);
  await page.fill('#webhook-url', hookUrl);
  await page.uncheck('#webhook-type-client_event');
  await page.fill('#webhook-prefix', 'hook-');
  await page.fill('#webhook-headers', 'X-Hook-Test: from the panel');
  await page.selectOption('#webhook-secret-mode', 'generate');
  await page.click('#save-webhook');
  await textOf('#webhook-notice', /Endpoint added/);
  endpointSecret = await page.locator('#webhook-new-secret').textContent();
  assert.match(endpointSecret, /^[0-9a-f]{32}$/);
  await textOf('#webhook-endpoints tbody tr td.url', new RegExp(`127\\.0\\.0\\.1:${receiver.address().port}/hooks`));
  // Listed with its hint only.
  const row = await page.locator('#webhook-endpoints tbody tr').first().textContent();
  assert.ok(row.includes(`••••${endpointSecret.slice(-4)}`), row);
  assert.ok(!row.includes(endpointSecret), row);
  assert.match(row, /Healthy/);
  await shot('hooks-01-endpoint');
});

test('activity reaches the receiver, signed with the endpoint secret (Node and Python SDKs agree)', async () => {
  const client = connect();
  await subscribed(client, 'hook-orders');
  await subscribed(client, 'elsewhere');
  const request = await arrivalFor('hook-orders');
  assert.equal(request.headers['content-type'], 'application/json');
  assert.equal(request.headers['x-hook-test'], 'from the panel');
  assert.deepEqual(JSON.parse(request.rawBody).events, [{ name: 'channel_occupied', channel: 'hook-orders' }]);
  // The official Node SDK validates it with the endpoint's secret, not with the app's.
  const sdk = new PusherServer({ appId: app.id, key: app.key, secret: endpointSecret, host: '127.0.0.1', port: String(port) });
  assert.equal(sdk.webhook(request).isValid(), true);
  const withAppSecret = new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1' });
  assert.equal(withAppSecret.webhook(request).isValid(), false);
  // And so does the official Python SDK.
  const args = {
    key: app.key, signature: request.headers['x-pusher-signature'], body: request.rawBody,
  };
  const valid = pythonValidates({ ...args, secret: endpointSecret });
  assert.deepEqual(valid.events, [{ name: 'channel_occupied', channel: 'hook-orders' }]);
  assert.equal(pythonValidates({ ...args, secret: app.secret }), null);
  // The filter kept the other channel out.
  assert.ok(!received.some((r) => r.rawBody.includes('elsewhere')));

  // The delivery log in the panel.
  await page.click('#webhook-endpoints tbody tr button.show-log');
  await textOf('#delivery-log tbody tr[data-state="delivered"] td.status', /^200$/);
  await textOf('#webhook-endpoints tbody tr td.success-rate', /^100%$/);
  assert.match(await page.locator('#delivery-log tbody tr[data-state="delivered"] td.details').first().textContent(), /thanks/);
});

test('"send a test event" from the panel', async () => {
  await page.click('#webhook-endpoints tbody tr button.send-test');
  await textOf('#webhook-notice', /Test event queued/);
  const request = await arrivalFor('reverb-pusher-test');
  const sdk = new PusherServer({ appId: app.id, key: app.key, secret: endpointSecret, host: '127.0.0.1' });
  assert.equal(sdk.webhook(request).isValid(), true);
  await page.waitForFunction(() => document.querySelectorAll('#delivery-log tbody tr[data-state="delivered"]').length >= 2);
});

test('a delivery the receiver keeps refusing becomes a dead letter; replay from the panel delivers it', async () => {
  answer = 503;
  const client = connect();
  await subscribed(client, 'hook-dead');
  // Retried (attempts shown, with the next retry) until the 5-second horizon passes.
  await page.waitForSelector('#dead-letters tbody tr[data-state="dead"]', { timeout: WAIT_MS });
  const attempts = Number(await page.locator('#dead-letters tbody tr td.attempts').first().textContent());
  assert.ok(attempts >= 2, `attempts ${attempts}`);
  assert.match(await page.locator('#dead-letters tbody tr td.status').first().textContent(), /^503$/);
  assert.match(await page.locator('#dead-letters tbody tr td.details').first().textContent(), /not now/);
  await textOf('#webhook-endpoints tbody tr td.stats', /1 dead/);
  await shot('hooks-02-dead-letter');
  const deadId = await page.locator('#dead-letters tbody tr').first().getAttribute('data-delivery-id');
  const refusals = received.filter((r) => r.status === 503).length;
  assert.ok(refusals >= attempts);

  answer = 200;
  await page.click('#dead-letters tbody tr button.replay');
  await textOf('#webhook-notice', /1 delivery is queued again/);
  const request = await arrivalFor('hook-dead');
  const sdk = new PusherServer({ appId: app.id, key: app.key, secret: endpointSecret, host: '127.0.0.1' });
  assert.equal(sdk.webhook(request).isValid(), true);
  await textOf(`#delivery-log tbody tr[data-delivery-id="${deadId}"]`, /delivered/);
  await textOf('#no-dead-letters', /No dead letters/);
  await shot('hooks-03-replayed');
});

test('pending deliveries survive a SIGKILL of the server', async () => {
  answer = 503;
  const client = connect();
  await subscribed(client, 'hook-crash');
  // Stored and failing (refused once: it is in the outbox, pending); killed well inside its
  // 5-second retry horizon.
  await until('a refused attempt', () => received.some((r) => r.status === 503 && r.rawBody.includes('hook-crash')));
  client.disconnect();
  server.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  answer = 200;
  await startServer();
  const request = await arrivalFor('hook-crash');
  const sdk = new PusherServer({ appId: app.id, key: app.key, secret: endpointSecret, host: '127.0.0.1' });
  assert.equal(sdk.webhook(request).isValid(), true);
  // The panel (same session: it is stored) shows it delivered.
  await page.reload();
  await page.click('#webhook-endpoints tbody tr button.show-log');
  await page.waitForFunction(() => [...document.querySelectorAll('#delivery-log tbody tr')]
    .every((tr) => tr.dataset.state !== 'pending'), null, { timeout: WAIT_MS });
});

test('edit and delete an endpoint in the panel', async () => {
  await page.click('#webhook-endpoints tbody tr button.edit');
  assert.equal(await page.inputValue('#webhook-url'), hookUrl);
  assert.equal(await page.isChecked('#webhook-type-client_event'), false);
  assert.equal(await page.inputValue('#webhook-secret-mode'), 'keep');
  await page.uncheck('#webhook-enabled');
  await page.selectOption('#webhook-secret-mode', 'app');
  await page.click('#save-webhook');
  await textOf('#webhook-notice', /Endpoint saved/);
  // The row shows the change as soon as the panel says it is saved.
  const row = await page.locator('#webhook-endpoints tbody tr').first().textContent();
  assert.match(row, /Off/);
  assert.ok(!row.includes('own secret'), row);
  await page.click('#webhook-endpoints tbody tr button.delete');
  await textOf('#no-webhooks', /No endpoints yet/);
  assert.equal(logs.includes(endpointSecret), false, 'the signing secret is never logged');
});
