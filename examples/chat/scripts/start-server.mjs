#!/usr/bin/env node
// Starts Reverb Pusher for the chat example: on first run it creates an app called
// `chat-example` with the server's CLI and writes its credentials to `.env.local` (which
// `next dev` and `next start` read); then it runs the server on 127.0.0.1:6001 until Ctrl-C.
// Its data (SQLite database, master key, the app's credentials) lives in `data/reverb/`.
//
// The binary: $CHAT_SERVER_BIN, else the repository's target/release or target/debug build;
// when there is none it is built with `cargo build --release` first.
//
// Environment: CHAT_SERVER_PORT (default 6001).

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const exampleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repoDir = path.resolve(exampleDir, '../..');
const dataDir = path.join(exampleDir, 'data', 'reverb');
const port = Number(process.env.CHAT_SERVER_PORT || 6001);
const host = '127.0.0.1';

function findBinary() {
  if (process.env.CHAT_SERVER_BIN) return process.env.CHAT_SERVER_BIN;
  for (const profile of ['release', 'debug']) {
    const candidate = path.join(repoDir, 'target', profile, 'reverb-pusher');
    if (fs.existsSync(candidate)) return candidate;
  }
  console.log('No reverb-pusher binary yet: building it (cargo build --release, a few minutes the first time)...');
  execFileSync('rustup', ['target', 'add', 'wasm32-unknown-unknown'], { cwd: repoDir, stdio: 'inherit' });
  execFileSync('cargo', ['build', '--release', '-p', 'reverb-pusher'], { cwd: repoDir, stdio: 'inherit' });
  return path.join(repoDir, 'target', 'release', 'reverb-pusher');
}

const bin = findBinary();
fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
const database = `sqlite://${path.join(dataDir, 'server.db')}`;
const { CHAT_SERVER_BIN: _bin, CHAT_SERVER_PORT: _port, ...inherited } = process.env;
const env = { ...inherited, REVERB_PUSHER_MASTER_KEY_FILE: path.join(dataDir, 'master.key') };
const run = (args) => execFileSync(bin, ['--database-url', database, ...args], { env, encoding: 'utf8' });

// The app: created once, its credentials kept beside the database.
const appFile = path.join(dataDir, 'app.json');
let app;
if (fs.existsSync(appFile)) {
  app = JSON.parse(fs.readFileSync(appFile, 'utf8'));
} else {
  app = JSON.parse(run(['app', 'create', '--name', 'chat-example', '--json']));
  fs.writeFileSync(appFile, JSON.stringify(app, null, 2), { mode: 0o600 });
  console.log(`Created the app "chat-example" (id ${app.id}, key ${app.key}).`);
}

// The example's configuration. The secret goes into the file only, never to the terminal.
const envFile = path.join(exampleDir, '.env.local');
const lines = [
  '# Written by scripts/start-server.mjs for the local Reverb Pusher server; see README.md.',
  `PUSHER_APP_ID=${app.id}`,
  `PUSHER_KEY=${app.key}`,
  `PUSHER_SECRET=${app.secret}`,
  'PUSHER_CLUSTER=mt1',
  `PUSHER_HOST=${host}`,
  `PUSHER_PORT=${port}`,
  'PUSHER_USE_TLS=false',
  '',
];
fs.writeFileSync(envFile, lines.join('\n'), { mode: 0o600 });
console.log(`Wrote ${path.relative(process.cwd(), envFile) || envFile}; start the example with: npm run dev`);

// In its own process group, so that Ctrl-C reaches it once (from us), not twice; a second
// signal would skip the server's graceful drain.
const server = spawn(bin, ['--database-url', database, '--host', host, '--port', String(port), 'serve'], {
  env, stdio: 'inherit', detached: true,
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.kill(signal));
server.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
