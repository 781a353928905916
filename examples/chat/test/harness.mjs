// Starts the real processes the chat tests run against: the Reverb Pusher server (from
// SERVER_BIN, on a temporary SQLite database, an app created with its CLI) and the example app
// (`next start` on its production build), both on free loopback ports; and headless Chromium
// (Debian's, driven by playwright-core; nothing is downloaded).

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const EXAMPLE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SERVER_BIN = process.env.SERVER_BIN || path.resolve(EXAMPLE_DIR, '../../target/debug/reverb-pusher');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** The HTTP status of a GET, or 0 when nothing answers. */
export function statusOf(url) {
  return new Promise((resolve) => {
    http.get(url, (res) => { res.resume(); resolve(res.statusCode); }).on('error', () => resolve(0));
  });
}

/** Polls `check` until it returns something truthy; throws after `timeout` ms. */
export async function until(what, check, timeout = 15000, every = 50) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A process with its output kept (shown when a test fails) and a way to stop it. */
function supervise(name, child) {
  const handle = { child, output: '' };
  const keep = (chunk) => {
    handle.output += chunk;
    if (handle.output.length > 200_000) handle.output = handle.output.slice(-100_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  handle.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  handle.stop = async (signal = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await handle.exited;
    clearTimeout(timer);
  };
  handle.name = name;
  return handle;
}

/**
 * The Reverb Pusher server. `start()` may be called again after `stop()` (same port, same
 * database: the app and its credentials survive), to test what happens while it is away.
 */
export async function reverbServer() {
  if (!fs.existsSync(SERVER_BIN)) throw new Error(`no server binary at ${SERVER_BIN} (set SERVER_BIN)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-example-server-'));
  const db = `sqlite://${path.join(dir, 'server.db')}`;
  const env = {
    ...process.env,
    REVERB_PUSHER_MASTER_KEY_FILE: path.join(dir, 'master.key'),
    REVERB_PUSHER_LOG_FORMAT: 'json',
    REVERB_PUSHER_LOG_LEVEL: 'info',
    REVERB_PUSHER_DRAIN_WINDOW_SECS: '1',
  };
  const creds = JSON.parse(execFileSync(SERVER_BIN, ['--database-url', db, 'app', 'create', '--name', 'chat', '--json'], { env }));
  const port = await freePort();
  const server = { port, creds, dir, proc: null, logs: '' };
  server.start = async () => {
    const proc = supervise('reverb-pusher', spawn(
      SERVER_BIN, ['--database-url', db, '--host', '127.0.0.1', '--port', String(port), 'serve'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    ));
    server.proc = proc;
    await until('the server to be ready', async () => {
      if (proc.child.exitCode !== null) throw new Error(`server exited: ${proc.output}`);
      return (await statusOf(`http://127.0.0.1:${port}/ready`)) === 200;
    }, 20000, 100);
  };
  server.stop = async (signal) => {
    if (!server.proc) return;
    await server.proc.stop(signal);
    server.logs += server.proc.output;
    server.proc = null;
  };
  server.output = () => server.logs + (server.proc ? server.proc.output : '');
  await server.start();
  return server;
}

/** Builds the example if there is no production build yet (`npm run build` does the same). */
export function ensureBuilt() {
  if (fs.existsSync(path.join(EXAMPLE_DIR, '.next', 'BUILD_ID'))) return;
  execFileSync(process.execPath, [path.join(EXAMPLE_DIR, 'node_modules/next/dist/bin/next'), 'build'], {
    cwd: EXAMPLE_DIR, stdio: 'inherit', env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' },
  });
}

/** The example app (`next start`), configured for `reverb` by environment variables only. */
export async function chatApp(reverb) {
  ensureBuilt();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-example-app-'));
  const port = await freePort();
  const env = {
    ...process.env,
    NODE_ENV: 'production',
    NEXT_TELEMETRY_DISABLED: '1',
    PUSHER_APP_ID: String(reverb.creds.id),
    PUSHER_KEY: reverb.creds.key,
    PUSHER_SECRET: reverb.creds.secret,
    PUSHER_CLUSTER: 'mt1',
    PUSHER_HOST: '127.0.0.1',
    PUSHER_PORT: String(reverb.port),
    PUSHER_USE_TLS: 'false',
    CHAT_DATABASE_PATH: path.join(dir, 'chat.db'),
  };
  const proc = supervise('next', spawn(
    process.execPath, [path.join(EXAMPLE_DIR, 'node_modules/next/dist/bin/next'), 'start', '-H', '127.0.0.1', '-p', String(port)],
    { cwd: EXAMPLE_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] },
  ));
  const base = `http://127.0.0.1:${port}`;
  await until('the example app to answer', async () => {
    if (proc.child.exitCode !== null) throw new Error(`next exited: ${proc.output}`);
    return (await statusOf(`${base}/`)) === 200;
  }, 30000, 100);
  return { base, port, proc, dbPath: env.CHAT_DATABASE_PATH };
}

/** Logs in through the API and returns the session cookie (`name=value`). */
export async function sessionCookie(base, userId) {
  const res = await fetch(`${base}/api/session`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId }),
  });
  if (res.status !== 200) throw new Error(`login as ${userId}: HTTP ${res.status} ${await res.text()}`);
  return res.headers.get('set-cookie').split(';')[0];
}

/** Calls the example's API as the user of `cookie`. */
export async function apiCall(base, cookie, method, urlPath, body) {
  const res = await fetch(`${base}${urlPath}`, {
    method,
    headers: { ...(cookie ? { cookie } : {}), ...(body !== undefined ? { 'content-type': typeof body === 'string' ? 'application/x-www-form-urlencoded' : 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}
