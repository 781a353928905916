// The embedded admin UI boots in a real browser: headless Chromium (Debian's package) loads
// /admin/ from the server binary, the WASM app mounts and renders. A screenshot is written to
// tests/screenshots/ (not committed) for reviewers.

'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const BIN = process.env.SERVER_BIN || path.resolve(__dirname, '../../target/debug/reverb-pusher');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = path.resolve(__dirname, '../screenshots');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
    srv.on('error', reject);
  });
}

function chromium(args) {
  const flags = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run',
    `--user-data-dir=${fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-chromium-'))}`,
    '--virtual-time-budget=15000', '--window-size=1280,800',
  ];
  return new Promise((resolve, reject) => {
    execFile(CHROMIUM, [...flags, ...args], { timeout: 60000, maxBuffer: 16 << 20 }, (err, stdout) => {
      if (err) reject(err); else resolve(stdout);
    });
  });
}

test('the admin UI loads and renders in headless Chromium', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-ui-'));
  const port = await freePort();
  const server = spawn(BIN, ['--database-url', `sqlite://${path.join(dir, 'ui.db')}`, '--host', '127.0.0.1', '--port', String(port)], {
    env: { ...process.env, REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key'), REVERB_PUSHER_LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => server.on('exit', resolve));
  try {
    for (let i = 0; i < 100; i += 1) {
      const up = await new Promise((resolve) => {
        http.get({ host: '127.0.0.1', port, path: '/up' }, (res) => { res.resume(); resolve(res.statusCode === 200); })
          .on('error', () => resolve(false));
      });
      if (up) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const url = `http://127.0.0.1:${port}/admin/`;
    const dom = await chromium(['--dump-dom', url]);
    assert.match(dom, /<h1>Reverb Pusher<\/h1>/, 'the WASM app rendered its heading');
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await chromium([`--screenshot=${path.join(SCREENSHOTS, 'admin-landing.png')}`, url]);
    assert.ok(fs.statSync(path.join(SCREENSHOTS, 'admin-landing.png')).size > 0);
  } finally {
    server.kill('SIGTERM');
    await exited;
  }
});
