// The admin panel end to end, in headless Chromium (Debian's package driven by playwright-core;
// no browser is downloaded) against the real server binary with the embedded SPA:
// first-run setup with the token from the terminal banner, logout and login, creating an app,
// connecting pusher-js with the settings the panel shows and watching it in the debug console,
// sending an event from the event creator (and with the Node SDK snippet), switching the app
// off, refusing to delete your own account, settings validation, tokens and the audit log.
// Screenshots of the main pages go to tests/screenshots/ (not committed) for reviewers.

'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Pusher = require('pusher-js');
const { chromium } = require('playwright-core');
const { freePort, isUp, until: waitUntil } = require('./support');

const BIN = process.env.SERVER_BIN || path.resolve(__dirname, '../../target/debug/reverb-pusher');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = path.resolve(__dirname, '../screenshots');
const WAIT_MS = 15000;
const ADMIN = { name: 'Ada Admin', email: 'ada@example.com', password: 'correct horse battery' };

let port;
let base;
let server;
let exited;
let logs = '';
/// Content-Security-Policy violations the browser reported (the panel must cause none).
const cspViolations = [];
let browser;
let page;
const clients = [];

const up = () => isUp(port);

const until = (what, check, timeout = WAIT_MS) => waitUntil(what, check, timeout);

async function shot(name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(fs.statSync(file).size > 0);
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

/// Waits for a row of the debug console with this type whose text matches.
async function consoleRow(kind, pattern) {
  await page.waitForFunction(
    ([k, source]) => [...document.querySelectorAll(`#console-entries tr[data-kind="${k}"]`)]
      .some((tr) => new RegExp(source).test(tr.textContent)),
    [kind, pattern.source],
    { timeout: WAIT_MS },
  );
}

/// Runs a snippet exactly as the panel shows it (minus its import line) and returns its
/// variables.
function runSnippet(text, names, scope) {
  const body = text.split('\n').filter((line) => !/^\s*import /.test(line)).join('\n');
  const params = Object.keys(scope);
  // eslint-disable-next-line no-new-func
  return new Function(...params, `${body}\nreturn { ${names.join(', ')} };`)(...params.map((p) => scope[p]));
}

async function snippet(id) {
  await page.click(`#snippet-tab-${id}`);
  await page.waitForSelector(`#snippet-tab-${id}[aria-selected="true"]`);
  return page.locator('#snippet-text').textContent();
}

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-ui-'));
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['--database-url', `sqlite://${path.join(dir, 'ui.db')}`, '--host', '127.0.0.1', '--port', String(port)], {
    env: {
      ...process.env,
      REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key'),
      REVERB_PUSHER_LOG_FORMAT: 'json',
      REVERB_PUSHER_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout.on('data', (d) => { logs += d; });
  server.stderr.on('data', (d) => { logs += d; });
  exited = new Promise((resolve) => server.on('exit', resolve));
  await until('the server', up);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => { logs += `\n[page error] ${e}`; });
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
});

after(async () => {
  for (const c of clients) c.disconnect();
  if (browser) await browser.close();
  if (server) {
    server.kill('SIGTERM');
    await exited;
  }
});

test('first-run setup with the token from the setup-token file, then logout and login', async () => {
  // stderr is not a terminal here (as under docker or systemd): the banner names a private
  // file that holds the token, and the token itself appears nowhere in the output.
  const file = await until('the setup token file on the terminal', () => {
    const banner = logs.match(/admin setup token \(valid for 1 hour\) is in (\S+)/);
    return banner && banner[1];
  });
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'the token file is private');
  const token = fs.readFileSync(file, 'utf8').trim();
  assert.equal(logs.includes(token), false, 'the setup token is not on stderr');
  const jsonLines = logs.split('\n').filter((l) => l.startsWith('{'));
  assert.ok(jsonLines.length > 0, 'the server writes JSON logs');
  assert.equal(jsonLines.some((l) => l.includes(token)), false, 'the setup token is not in the structured logs');
  await page.goto(`${base}/admin/`);
  await page.waitForURL(/\/admin\/setup$/, { timeout: WAIT_MS });
  // The form checks before sending: a short password is refused in the page.
  await page.fill('#setup-token', token);
  await page.fill('#setup-name', ADMIN.name);
  await page.fill('#setup-email', ADMIN.email);
  await page.fill('#setup-password', 'short');
  await page.fill('#setup-repeat', 'short');
  await page.click('button[type=submit]');
  await textOf('p.error', /at least 8 characters/);
  await page.fill('#setup-password', ADMIN.password);
  await page.fill('#setup-repeat', ADMIN.password);
  await shot('01-setup');
  await page.click('button[type=submit]');
  await textOf('main h1', /^Dashboard$/);
  assert.match(await page.locator('.who').textContent(), /Ada Admin/);

  // Keyboard users reach the skip link first.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');

  await page.click('text=Log out');
  await page.waitForURL(/\/admin\/login$/, { timeout: WAIT_MS });
  await page.fill('#login-email', ADMIN.email);
  await page.fill('#login-password', 'not the password');
  await page.click('button[type=submit]');
  await textOf('p.error', /Wrong email or password/);
  await shot('02-login');
  await page.fill('#login-password', ADMIN.password);
  await page.click('button[type=submit]');
  await textOf('main h1', /^Dashboard$/);
  // The dashboard is the home page; apps have their own.
  await page.goto(`${base}/admin/apps`);
  await textOf('main h1', /^Apps$/);
});

let app;
let client;

test('create an app and see its credentials and snippets', async () => {
  await page.click('#new-app-name');
  await page.click('text=Create app');
  await textOf('p.error', /Give the app a name/);
  await page.fill('#new-app-name', 'Chat');
  await page.click('text=Create app');
  await page.waitForURL(/\/admin\/apps\/\d+$/, { timeout: WAIT_MS });
  await textOf('main h1', /^Chat$/);
  app = {
    id: await page.locator('#app-id').textContent(),
    key: await page.locator('#app-key').textContent(),
  };
  assert.match(app.id, /^\d+$/);
  assert.doesNotMatch(await page.locator('#app-secret').textContent(), /[0-9a-z]{8}/, 'the secret starts hidden');
  await page.click('#reveal-secret');
  app.secret = await page.locator('#app-secret').textContent();
  assert.match(app.secret, /^[0-9a-z]{32,}$/);
  for (const id of ['pusher-js', 'laravel-echo', 'laravel-env-pusher', 'laravel-env-reverb', 'node', 'php', 'python']) {
    const text = await snippet(id);
    assert.ok(text.includes(app.key), `${id} names the key`);
    assert.ok(text.includes(String(port)), `${id} names this server's port`);
  }
  assert.ok((await snippet('laravel-env-reverb')).includes(`REVERB_APP_SECRET=${app.secret}`));
  await snippet('pusher-js');
  // The copy button copies the real text.
  await page.click('.snippet button.copy');
  await textOf('.snippet button.copy', /Copied/);
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.ok(copied.includes(app.key) && copied.startsWith('import Pusher'));
  await shot('03-app-overview');
});

test('a pusher-js client built from the shown snippet appears in the debug console', async () => {
  const text = await snippet('pusher-js');
  await page.click('.tabs >> text=Debug console');
  await page.waitForURL(/\/console$/, { timeout: WAIT_MS });
  await textOf('#console-status', /Live/);

  const received = [];
  const logged = { log: (data) => received.push(data) };
  ({ pusher: client } = runSnippet(text, ['pusher', 'channel'], { Pusher, console: logged }));
  clients.push(client);
  await until('pusher-js connected', () => client.connection.state === 'connected');
  const socketId = client.connection.socket_id;
  await consoleRow('connection', new RegExp(socketId.replace('.', '\\.')));
  await consoleRow('subscribed', /my-channel/);

  // The event creator validates before sending, then reaches the subscriber.
  await page.fill('#send-data', '{not json');
  await page.click('text=Send event');
  await textOf('#event-creator p.error', /valid JSON/);
  await page.fill('#send-data', '{"message":"from the panel"}');
  await page.click('text=Send event');
  await textOf('#send-result', /Sent to 1 subscriber/);
  await until('the event at the client', () => received.some((d) => d.message === 'from the panel'));
  await consoleRow('api_message', /from the panel/);

  // Filters narrow the list.
  await page.selectOption('#filter-kind', 'api_message');
  await page.waitForFunction(() => [...document.querySelectorAll('#console-entries tr')]
    .every((tr) => tr.dataset.kind === 'api_message'));
  await page.selectOption('#filter-kind', '');
  await shot('04-debug-console');

  // The Node SDK snippet, revealed secret and all, triggers to the same client.
  await page.click('.tabs >> text=Overview');
  await page.click('#reveal-secret');
  const nodeText = await snippet('node');
  assert.ok(nodeText.includes(app.secret));
  const sdk = runSnippet(nodeText, ['pusher'], { require }).pusher;
  await sdk.trigger('my-channel', 'my-event', { message: 'from the node snippet' });
  await until('the SDK event at the client', () => received.some((d) => d.message === 'from the node snippet'));
});

test('switching the app off disconnects its client', async () => {
  await page.click('.tabs >> text=Debug console');
  await textOf('#console-status', /Live/);
  const closed = new Promise((resolve) => {
    client.connection.bind('error', (e) => resolve(e && e.data && e.data.code));
  });
  page.once('dialog', (d) => d.accept());
  await page.click('#toggle-app');
  await textOf('.badge.off', /Disabled/);
  assert.equal(await closed, 4003);
  await consoleRow('disconnection', /4003/);
  await shot('05-app-disabled');
  await until('pusher-js gave up', () => ['failed', 'disconnected', 'unavailable'].includes(client.connection.state));
  // Switching on asks nothing.
  await page.click('#toggle-app');
  await textOf('.badge.on', /Enabled/);
});

test('the apps list shows the switch and live connection count', async () => {
  const second = new Pusher(app.key, {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
  });
  clients.push(second);
  await until('second client connected', () => second.connection.state === 'connected');
  await page.click('nav[aria-label=Main] >> text=Apps');
  await textOf(`tr[data-app-id="${app.id}"] td.connections`, /^1$/);
  assert.equal(await page.locator(`tr[data-app-id="${app.id}"] input[role=switch]`).isChecked(), true);
  await shot('06-apps');
  second.disconnect();
  await textOf(`tr[data-app-id="${app.id}"] td.connections`, /^0$/);
});

test('settings validate before saving and apply when saved', async () => {
  await page.click(`tr[data-app-id="${app.id}"] a`);
  await page.click('.tabs >> text=Settings');
  await page.waitForSelector('#limit-max_connections');
  await page.fill('#limit-max_connections', '-5');
  await page.click('text=Save settings');
  await textOf('form.settings p.error', /need fixing/);
  await textOf('form.settings small.error', /whole number from 0 to 10000000/);
  await page.fill('#limit-max_connections', '500');
  await page.check('#app-client-events');
  await page.fill('#app-origins', 'https://chat.example.com');
  await page.click('text=Save settings');
  await textOf('form.settings p.ok', /Saved/);
  await shot('07-app-settings');
  const stored = await page.evaluate(async (id) => (await fetch(`/admin/api/apps/${id}`)).json(), app.id);
  assert.equal(stored.limits.max_connections, 500);
  assert.equal(stored.client_events, true);
  assert.deepEqual(stored.allowed_origins, ['https://chat.example.com']);

  // Someone else changes another limit while this page is open: saving here keeps it, because
  // the page sends only the fields it changed.
  const status = await page.evaluate(async (id) => {
    const me = await (await fetch('/admin/api/me')).json();
    const r = await fetch(`/admin/api/apps/${id}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
      body: JSON.stringify({ limits: { max_presence_members: 42 } }),
    });
    return r.status;
  }, app.id);
  assert.equal(status, 200);
  await page.fill('#limit-max_connections', '600');
  await page.click('text=Save settings');
  const after = await until('the second save', async () => {
    const a = await page.evaluate(async (id) => (await fetch(`/admin/api/apps/${id}`)).json(), app.id);
    return a.limits.max_connections === 600 && a;
  });
  assert.equal(after.limits.max_presence_members, 42, 'the other change survived the save');
});

test('rate limits: a switch among the limits, and an app over its quota is marked', async () => {
  await page.click('.tabs >> text=Settings');
  await page.waitForSelector('#limit-close_on_client_event_excess');
  assert.equal(await page.locator('#limit-close_on_client_event_excess').getAttribute('type'), 'checkbox');
  // Earlier tests used some of today's messages: the quota is one more than that.
  const before = await page.evaluate(async (id) => (await fetch(`/admin/api/apps/${id}`)).json(), app.id);
  const quota = before.usage.messages_today + 1;
  await page.check('#limit-close_on_client_event_excess');
  await page.fill('#limit-max_messages_per_day', String(quota));
  await page.click('text=Save settings');
  await textOf('form.settings p.ok', /Saved/);
  const stored = await page.evaluate(async (id) => (await fetch(`/admin/api/apps/${id}`)).json(), app.id);
  assert.equal(stored.limits.close_on_client_event_excess, 1);
  assert.equal(stored.limits.max_messages_per_day, quota);

  const PusherServer = require('pusher');
  const sdk = new PusherServer({
    appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(port), useTLS: false,
  });
  await sdk.trigger('quota-room', 'e', {});
  await assert.rejects(sdk.trigger('quota-room', 'e', {}), (err) => err.status === 429);
  await page.click('nav[aria-label=Main] >> text=Apps');
  await textOf(`tr[data-app-id="${app.id}"] .over-quota`, /over quota/);
  await page.click(`tr[data-app-id="${app.id}"] a`);
  await textOf('#over-quota', /daily message quota/);
  await textOf('#message-usage', new RegExp(`^${quota} messages today`));
  await shot('07b-over-quota');

  // Back to no quota for the tests that follow.
  const status = await page.evaluate(async (id) => {
    const me = await (await fetch('/admin/api/me')).json();
    const r = await fetch(`/admin/api/apps/${id}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
      body: JSON.stringify({ limits: { max_messages_per_day: 0, close_on_client_event_excess: 0 } }),
    });
    return r.status;
  }, app.id);
  assert.equal(status, 200);
});

test('users: add and remove one, but never yourself', async () => {
  await page.click('nav[aria-label=Main] >> text=Users');
  await page.waitForSelector(`tr[data-email="${ADMIN.email}"]`);
  assert.equal(await page.locator(`tr[data-email="${ADMIN.email}"] button.remove`).isDisabled(), true);
  // The server refuses it too, whatever the page allows.
  const refusal = await page.evaluate(async () => {
    const me = await (await fetch('/admin/api/me')).json();
    const r = await fetch(`/admin/api/users/${me.user.id}`, { method: 'DELETE', headers: { 'X-CSRF-Token': me.csrf_token } });
    return { status: r.status, body: await r.json() };
  });
  assert.equal(refusal.status, 403);
  assert.equal(refusal.body.error, 'cannot_delete_self');

  await page.fill('#new-user-name', 'Bob');
  await page.fill('#new-user-email', 'bob@example.com');
  await page.fill('#new-user-password', 'another long password');
  await page.click('text=Add user');
  await page.waitForSelector('tr[data-email="bob@example.com"]');
  await shot('08-users');
  page.once('dialog', (d) => d.accept());
  await page.click('tr[data-email="bob@example.com"] button.remove');
  await page.waitForSelector('tr[data-email="bob@example.com"]', { state: 'detached', timeout: WAIT_MS });
});

test('API tokens are shown once and work', async () => {
  await page.click('nav[aria-label=Main] >> text=API tokens');
  await page.fill('#token-name', 'deploy script');
  await page.click('text=Create token');
  const token = await textOf('#new-token', /^rpt_/);
  await shot('09-tokens');
  const res = await fetch(`${base}/admin/api/apps`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
});

test('the audit log lists the changes', async () => {
  await page.click('nav[aria-label=Main] >> text=Audit log');
  await textOf('table.audit', /app\.create/);
  const text = await page.locator('table.audit').textContent();
  for (const action of ['app.update', 'user.create', 'user.delete', 'token.create']) {
    assert.ok(text.includes(action), `the audit log shows ${action}`);
  }
  assert.ok(text.includes(`user:${ADMIN.email}`));
  await shot('10-audit');
});

// Issue 19: an app keeps the credentials it had elsewhere, and another server's file imports
// after a plan that changes nothing.
test('create an app with existing credentials, and import a soketi config after checking its plan', async () => {
  await page.goto(`${base}/admin/apps`);
  await page.waitForSelector('#new-app-name');
  await page.click('text=Use existing credentials');
  await page.fill('#new-app-name', 'Kept');
  await page.fill('#new-app-key', 'a:b');
  await page.click('text=Create app');
  await textOf('form.inline p.error', /App key may contain only letters/);
  await page.fill('#new-app-id', 'kept-1');
  await page.fill('#new-app-key', 'kept-key');
  await page.fill('#new-app-secret', 'kept-secret-1');
  await page.click('text=Create app');
  await page.waitForURL(/\/admin\/apps\/kept-1$/, { timeout: WAIT_MS });
  assert.equal(await page.locator('#app-key').textContent(), 'kept-key');
  await page.goto(`${base}/admin/apps`);
  await page.click('text=Use existing credentials');
  await page.fill('#new-app-name', 'Again');
  await page.fill('#new-app-key', 'kept-key');
  await page.click('text=Create app');
  await textOf('form.inline p.error', /Another app has this key already/);

  await page.setInputFiles('#import-file', path.resolve(__dirname, '../fixtures/import/soketi.json'));
  await page.waitForFunction(() => document.querySelector('#import-text').value.includes('appManager'));
  await page.click('form.import >> text=Check');
  await textOf('table.plan tr[data-app-id="soketi-1"] td.action', /^Create$/);
  await textOf('.plan-summary', /Nothing is changed until you import/);
  assert.match(await page.locator('table.plan ul.unmapped').textContent(), /webhooks/);
  assert.equal(await page.locator('table.apps tr[data-app-id="soketi-1"]').count(), 0, 'the check changed nothing');
  await shot('11-import-plan');
  await page.click('#import-apply');
  await textOf('.plan-summary', /Imported/);
  await page.waitForSelector('table.apps tr[data-app-id="soketi-1"]');
  // The same file again: nothing to do.
  await page.click('form.import >> text=Check');
  await textOf('table.plan tr[data-app-id="soketi-1"] td.action', /^Unchanged$/);
  assert.equal(await page.locator('#import-apply').count(), 0, 'nothing to import');
});

test('deleting an app needs its name typed', async () => {
  await page.goto(`${base}/admin/apps/${app.id}/settings`);
  await page.waitForSelector('#delete-confirm');
  assert.equal(await page.locator('text=Delete this app').isDisabled(), true);
  await page.fill('#delete-confirm', 'Chat');
  await page.click('text=Delete this app');
  await page.waitForURL(/\/admin\/apps$/, { timeout: WAIT_MS });
  await textOf('main', /No apps yet|Create an app/);
  assert.equal(await page.locator(`tr[data-app-id="${app.id}"]`).count(), 0);
});

test('phone width: pages fit without sideways scrolling', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/admin/apps`);
  await textOf('main h1', /^Apps$/);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await shot('11-apps-phone');
  await page.goto(`${base}/admin/users`);
  await page.waitForSelector('table.users');
  await shot('12-users-phone');
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('unknown panel routes get the index and a not-found page', async () => {
  await page.goto(`${base}/admin/no/such/page`);
  await textOf('main h1', /Page not found/);
  assert.doesNotMatch(logs, /\[page error\]/, 'no script errors in the page');
});

test('the panel runs under its Content-Security-Policy and refuses to be framed', async () => {
  const response = await page.goto(`${base}/admin/`);
  await textOf('main h1', /^Dashboard$/);
  const headers = response.headers();
  assert.equal(headers['x-frame-options'], 'DENY');
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.match(headers['content-security-policy'], /default-src 'self'/);
  assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline/);
  assert.deepEqual(cspViolations, [], 'no CSP violations while using the panel');
});

test('changing your own password needs the current one, and keeps you logged in', async () => {
  await page.goto(`${base}/admin/users`);
  await page.click(`tr[data-email="${ADMIN.email}"] >> text=Edit`);
  await page.fill('#edit-password', 'a brand new password');
  await page.click('tr.editing button[type=submit]');
  await textOf('tr.editing p.error', /current password/);
  await page.fill('#edit-current-password', 'not the password');
  await page.click('tr.editing button[type=submit]');
  await textOf('tr.editing p.error', /current password is wrong/);
  await page.fill('#edit-current-password', ADMIN.password);
  await page.click('tr.editing button[type=submit]');
  await page.waitForSelector('tr.editing', { state: 'detached', timeout: WAIT_MS });
  await page.goto(`${base}/admin/`);
  await textOf('main h1', /^Dashboard$/);
  assert.doesNotMatch(logs, /\[page error\]/, 'no script errors in the page');
});
