// The dashboard and an app's Stats tab in headless Chromium (Debian's package driven by
// playwright-core) against the real server binary: live tiles change when a pusher-js client
// connects, a chart draws data points and answers the pointer, an app's stats tab shows its
// peak and recent errors, and the CSV export downloads the same numbers the API serves.
// Screenshots of the dashboard and an app's stats tab go to target/screenshots/.

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
const SCREENSHOTS = path.resolve(__dirname, '../../target/screenshots');
const WAIT_MS = 20000;
const ADMIN = { name: 'Stats Admin', email: 'stats@example.com', password: 'correct horse battery' };

let port;
let base;
let dir;
let server;
let exited;
let logs = '';
let browser;
let page;
let cookie;
let csrf;
let app;
const clients = [];

const up = () => isUp(port);

const until = (what, check, timeout = WAIT_MS) => waitUntil(what, check, timeout, 100);

async function shot(name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(fs.statSync(file).size > 0);
}

async function api(method, route, body) {
  const headers = { 'content-type': 'application/json' };
  if (cookie) headers.cookie = cookie;
  if (csrf) headers['x-csrf-token'] = csrf;
  const res = await fetch(`${base}/admin/api${route}`, { method, headers, body: body && JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* CSV */ }
  return { status: res.status, json, text, headers: res.headers };
}

/// The number a tile shows.
async function tile(id) {
  return page.locator(`#${id} .tile-value`).textContent();
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-dashboard-'));
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['--database-url', `sqlite://${path.join(dir, 'stats.db')}`, '--host', '127.0.0.1', '--port', String(port)], {
    env: {
      ...process.env,
      REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key'),
      REVERB_PUSHER_STATS_SAMPLE_SECS: '1',
      REVERB_PUSHER_STATS_NODE: 'ui-node',
      REVERB_PUSHER_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout.on('data', (d) => { logs += d; });
  server.stderr.on('data', (d) => { logs += d; });
  exited = new Promise((resolve) => server.on('exit', resolve));
  await until('the server', up);
  // The first account, through the setup token the server wrote beside its master key.
  const token = await until('the setup token', () => {
    const file = path.join(dir, 'setup-token');
    return fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim();
  });
  const setup = await api('POST', '/setup', { token, email: ADMIN.email, name: ADMIN.name, password: ADMIN.password });
  assert.equal(setup.status, 201, setup.text);
  cookie = setup.headers.get('set-cookie').split(';')[0];
  csrf = setup.json.csrf_token;
  const created = await api('POST', '/apps', { name: 'Stats demo' });
  assert.equal(created.status, 201, created.text);
  app = created.json;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => { logs += `\n[page error] ${e}`; });
  await page.goto(`${base}/admin/login`);
  await page.fill('#login-email', ADMIN.email);
  await page.fill('#login-password', ADMIN.password);
  await page.click('button[type=submit]');
  await page.waitForFunction(() => document.querySelector('main h1')?.textContent === 'Dashboard');
});

after(async () => {
  for (const c of clients) c.disconnect();
  if (browser) await browser.close();
  if (server) {
    server.kill('SIGTERM');
    await exited;
  }
});

test('the dashboard is the home page: health, live tiles that follow a connecting client', async () => {
  await page.waitForSelector('#health');
  assert.equal(await page.locator('#health-database').textContent(), 'ok');
  assert.equal(await page.locator('#health-redis').textContent(), 'not configured');
  await until('the live tiles', async () => (await tile('tile-connections')) === '0');
  const client = new Pusher(app.key, {
    wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1',
  });
  clients.push(client);
  client.subscribe('news');
  await until('the tile to count the client', async () => (await tile('tile-connections')) === '1');
  // Traffic: events delivered to the client show up as deliveries per second.
  for (let i = 0; i < 5; i += 1) {
    const r = await api('POST', `/apps/${app.id}/events`, { channel: 'news', event: 'tick', data: `{"i":${i}}` });
    assert.equal(r.status, 200, r.text);
  }
  await until('deliveries per second', async () => (await tile('tile-messages-out')) !== '0');
});

test('charts draw the stored minutes and read them out under the pointer', async () => {
  // The series reaches the API within a sample; the page reloads it when the range changes.
  await until('stored deliveries', async () => {
    const s = await api('GET', '/stats/series?range=1h');
    return s.json.points.some((p) => p.messages_out > 0);
  });
  await page.click('.ranges button:has-text("Day")');
  await page.click('.ranges button:has-text("Hour")');
  const chart = '#server-messages';
  await page.waitForSelector(`${chart} svg path.line`);
  const dots = await page.locator(`${chart} svg circle.dot`).count();
  assert.ok(dots >= 60, `${dots} data points`);
  const label = await page.locator(`${chart} svg`).getAttribute('aria-label');
  assert.match(label, /^Messages: 61 points, highest/);
  const box = await page.locator(`${chart} rect.hover`).boundingBox();
  await page.mouse.move(box.x + box.width - 2, box.y + box.height / 2);
  await page.waitForFunction((sel) => /UTC: delivered \d/.test(document.querySelector(`${sel} .readout`).textContent), chart);
  // The keyboard does the same.
  await page.focus(`${chart} svg`);
  await page.keyboard.press('Home');
  await page.waitForFunction((sel) => /UTC: delivered/.test(document.querySelector(`${sel} .readout`).textContent), chart);
  await page.waitForSelector('#apps-stats tbody tr td a');
  assert.match(await page.locator('#apps-stats tbody tr').first().textContent(), /Stats demo/);
  await shot('dashboard');
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the dashboard is ${overflow}px wider than a phone`);
  await shot('dashboard-phone');
  await page.setViewportSize({ width: 1280, height: 900 });
});

test("an app's stats tab: peak, recent errors, and a CSV export of the same numbers", async () => {
  // A refused client event (public channels take none), to appear among the recent errors.
  clients[0].send_event('client-nope', { x: 1 }, 'news');
  await until('the refusal to be listed', async () => {
    const r = await api('GET', `/apps/${app.id}/stats/errors`);
    return r.json.length > 0;
  });
  await page.goto(`${base}/admin/apps/${app.id}/stats`);
  await page.waitForSelector('#app-peaks');
  await page.waitForFunction(() => /Highest concurrent connections\s*1/.test(document.querySelector('#app-peaks').textContent));
  await page.waitForFunction(() => /private and presence/.test(document.querySelector('#recent-errors').textContent));
  await page.waitForSelector('#app-messages svg path.line');
  await shot('app-stats');
  // Still there after a reload.
  await page.reload();
  await page.waitForFunction(() => /private and presence/.test(document.querySelector('#recent-errors')?.textContent || ''));

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const file = path.join(dir, 'export.csv');
  await download.saveAs(file);
  const csv = fs.readFileSync(file, 'utf8').trim().split('\r\n');
  const header = csv[0].split(',');
  const rows = csv.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v])));
  assert.equal(rows.length, 61);
  const delivered = rows.reduce((sum, r) => sum + Number(r.messages_out), 0);
  const series = await api('GET', `/apps/${app.id}/stats/series?range=1h`);
  const fromApi = series.json.points.reduce((sum, p) => sum + p.messages_out, 0);
  assert.ok(delivered >= 5, `${delivered} deliveries in the CSV`);
  assert.equal(delivered, fromApi);
  assert.doesNotMatch(logs, /\[page error\]/, 'no script errors in the page');
});
