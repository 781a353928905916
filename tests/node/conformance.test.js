// Conformance suite: the real pusher-js 8 client and the official `pusher` Node SDK 5, from npm,
// against a real Reverb Pusher server process on a loopback port; plus a check of the admin
// API's OpenAPI document with an OpenAPI schema validator from npm.
//
// The server binary comes from SERVER_BIN (default: target/debug/reverb-pusher). Each run
// uses its own temporary SQLite database and credentials made with `reverb-pusher app create`.
//
// With CONFORMANCE_CLUSTER=1 the same suite runs against a 2-node cluster on the machine's Redis
// (127.0.0.1:6379, or REDIS_URL): the clients connect to one node, the SDK talks to the other,
// so every event, presence change and count crosses between nodes.
//
// Encrypted channels are tested twice: with pusher-js's Node build (which bundles the tweetnacl
// encrypted-channel code), and with the browser bundle `pusher-js/with-encryption` itself in
// headless Chromium (Debian's package, driven by playwright-core; no browser is downloaded).

'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const querystring = require('node:querystring');

const PusherClient = require('pusher-js');
const PusherServer = require('pusher');
const { freePort } = require('./support');

const BIN = process.env.SERVER_BIN || path.resolve(__dirname, '../../target/debug/reverb-pusher');
const MASTER_KEY = crypto.randomBytes(32).toString('base64');
const WAIT_MS = 5000;

const CLUSTER = process.env.CONFORMANCE_CLUSTER === '1';
let serverProcess;
let serverExit;
// The SDK's node: the other node of the cluster in cluster mode, the one server otherwise.
let sdkPort;
const otherNodes = [];
let authServer;
let creds;
let port;
let authPort;
let sdk;
let databaseUrl;
const openClients = [];

function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function onceWithMeta(target, event, what) {
  return within(new Promise((resolve) => target.bind(event, function handler(data, meta) {
    target.unbind(event, handler);
    resolve({ data, meta });
  })), what || event);
}

async function once(target, event, what) {
  return (await onceWithMeta(target, event, what)).data;
}

async function waitForServer(on = port) {
  for (let i = 0; i < 100; i += 1) {
    const ok = await new Promise((resolve) => {
      http.get({ host: '127.0.0.1', port: on, path: '/up' }, (res) => { res.resume(); resolve(res.statusCode === 200); })
        .on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not start');
}

// The app's own auth endpoint, built on the SDK's authorizeChannel/authenticateUser as an app
// would build it. The requesting user is named by an auth param.
function startAuthServer() {
  return new Promise((resolve) => {
    authServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => { body += chunk; });
      req.on('end', () => {
        const params = querystring.parse(body);
        const user = params.user || 'anonymous';
        const reply = (status, payload) => {
          res.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
          res.end(JSON.stringify(payload));
        };
        if (req.url === '/browser/pusher-with-encryption.js') {
          res.writeHead(200, { 'content-type': 'text/javascript' });
          return res.end(fs.readFileSync(require.resolve('pusher-js/dist/web/pusher-with-encryption.min.js')));
        }
        if (req.url.startsWith('/browser/encrypted.html')) {
          res.writeHead(200, { 'content-type': 'text/html' });
          return res.end(browserPage());
        }
        if (req.url === '/pusher/auth') {
          const channel = params.channel_name;
          if (channel.startsWith('private-forbidden')) return reply(403, { error: 'no' });
          if (channel.startsWith('presence-')) {
            return reply(200, sdk.authorizeChannel(params.socket_id, channel, {
              user_id: user, user_info: { name: user.toUpperCase() },
            }));
          }
          return reply(200, sdk.authorizeChannel(params.socket_id, channel));
        }
        if (req.url === '/pusher/user-auth') {
          const watchlist = params.watch ? String(params.watch).split(',') : undefined;
          return reply(200, sdk.authenticateUser(params.socket_id, { id: user, user_info: { name: user }, watchlist }));
        }
        return reply(404, {});
      });
    });
    authServer.listen(authPort, '127.0.0.1', resolve);
  });
}

// A page that uses the browser bundle `pusher-js/with-encryption` exactly as a web app would.
function browserPage() {
  return `<!doctype html><script src="/browser/pusher-with-encryption.js"></script><script>
    const pusher = new Pusher(${JSON.stringify(creds.key)}, {
      cluster: 'mt1', wsHost: '127.0.0.1', wsPort: ${port}, forceTLS: false, enabledTransports: ['ws'],
      channelAuthorization: { endpoint: '/pusher/auth', params: { user: 'browser' } },
    });
    const channel = pusher.subscribe('private-encrypted-browser');
    channel.bind('pusher:subscription_succeeded', () => { window.subscribed = true; });
    channel.bind('pusher:subscription_error', (e) => { window.failed = JSON.stringify(e); });
    channel.bind('secret', (data) => { window.received = data; });
  </script>`;
}

function client(user = 'anonymous', extra = {}) {
  const c = new PusherClient(creds.key, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    channelAuthorization: {
      endpoint: `http://127.0.0.1:${authPort}/pusher/auth`, transport: 'ajax', params: { user },
    },
    userAuthentication: {
      endpoint: `http://127.0.0.1:${authPort}/pusher/user-auth`, transport: 'ajax', params: { user, ...extra },
    },
  });
  openClients.push(c);
  return c;
}

async function connected(user, extra) {
  const c = client(user, extra);
  if (c.connection.state !== 'connected') await once(c.connection, 'connected', 'connected');
  return c;
}

async function subscribed(c, name) {
  const channel = c.subscribe(name);
  await once(channel, 'pusher:subscription_succeeded', `subscription to ${name}`);
  return channel;
}

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reverb-pusher-conformance-'));
  const db = `sqlite://${path.join(dir, 'conformance.db')}`;
  databaseUrl = db;
  creds = JSON.parse(execFileSync(BIN, ['--database-url', db, 'app', 'create', '--name', 'conformance', '--json']));
  port = await freePort();
  authPort = await freePort();
  const env = { ...process.env, REVERB_PUSHER_LOG_FORMAT: 'json', REVERB_PUSHER_LOG_LEVEL: 'warn' };
  if (CLUSTER) {
    env.REVERB_PUSHER_CLUSTER_REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379/';
    env.REVERB_PUSHER_CLUSTER_KEY_PREFIX = `conformance-${crypto.randomBytes(6).toString('hex')}`;
  }
  serverProcess = spawn(BIN, ['--database-url', db, '--host', '127.0.0.1', '--port', String(port), 'serve'], {
    env, stdio: ['ignore', 'inherit', 'inherit'],
  });
  serverExit = new Promise((resolve) => serverProcess.on('exit', (code, signal) => resolve({ code, signal })));
  await waitForServer();
  sdkPort = port;
  if (CLUSTER) {
    sdkPort = await freePort();
    const other = spawn(BIN, ['--database-url', db, '--host', '127.0.0.1', '--port', String(sdkPort), 'serve'], {
      env, stdio: ['ignore', 'inherit', 'inherit'],
    });
    otherNodes.push({ process: other, exit: new Promise((resolve) => other.on('exit', (code) => resolve(code))) });
    await waitForServer(sdkPort);
    // Both nodes listen to the app's cluster channel before the tests start.
    const ready = await (await fetch(`http://127.0.0.1:${sdkPort}/ready`)).json();
    assert.equal(ready.checks.cluster.state, 'healthy');
  }
  sdk = new PusherServer({
    appId: creds.id, key: creds.key, secret: creds.secret,
    host: '127.0.0.1', port: String(sdkPort), useTLS: false, encryptionMasterKeyBase64: MASTER_KEY,
  });
  await startAuthServer();
});

after(async () => {
  for (const c of openClients) c.disconnect();
  authServer.close();
  serverProcess.kill('SIGTERM');
  for (const node of otherNodes) node.process.kill('SIGTERM');
  const { code } = await within(serverExit, 'server exit', 10000);
  assert.equal(code, 0, 'the server exits cleanly on SIGTERM');
  for (const node of otherNodes) assert.equal(await within(node.exit, 'node exit', 10000), 0);
});

test('connects with a socket id every SDK accepts', async () => {
  const c = await connected();
  assert.match(c.connection.socket_id, /^\d+\.\d+$/);
});

test('public channel receives a triggered event', async () => {
  const c = await connected();
  const channel = await subscribed(c, 'public-news');
  const got = once(channel, 'headline');
  await sdk.trigger('public-news', 'headline', { title: 'hello' });
  assert.deepEqual(await got, { title: 'hello' });
});

test('private channel through the auth endpoint', async () => {
  const c = await connected('alice');
  const channel = await subscribed(c, 'private-orders');
  const got = once(channel, 'created');
  await sdk.trigger('private-orders', 'created', { id: 7 });
  assert.deepEqual(await got, { id: 7 });
});

test('auth endpoint refusal surfaces as subscription_error', async () => {
  const c = await connected();
  const channel = c.subscribe('private-forbidden-x');
  const error = await once(channel, 'pusher:subscription_error');
  assert.equal(error.status, 403);
});

test('forged channel auth is refused by the server', async () => {
  const c = new PusherClient(creds.key, {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
    channelAuthorization: { customHandler: (_params, cb) => cb(null, { auth: `${creds.key}:${'0'.repeat(64)}` }) },
  });
  openClients.push(c);
  await once(c.connection, 'connected');
  const channel = c.subscribe('private-forged');
  const error = await once(channel, 'pusher:subscription_error');
  assert.equal(error.type, 'AuthError');
  assert.equal(error.status, 401);
});

test('presence channel: members, me, member_added and member_removed', async () => {
  const alice = await connected('alice');
  const aliceChannel = await subscribed(alice, 'presence-room');
  assert.equal(aliceChannel.members.count, 1);
  assert.equal(aliceChannel.members.me.id, 'alice');
  const added = once(aliceChannel, 'pusher:member_added');
  const bob = await connected('bob');
  const bobChannel = await subscribed(bob, 'presence-room');
  assert.equal(bobChannel.members.count, 2);
  assert.deepEqual((await added).info, { name: 'BOB' });
  const removed = once(aliceChannel, 'pusher:member_removed');
  bob.unsubscribe('presence-room');
  assert.equal((await removed).id, 'bob');

  const users = await (await sdk.get({ path: '/channels/presence-room/users' })).json();
  assert.deepEqual(users, { users: [{ id: 'alice' }] });
});

test('encrypted channel: the SDK encrypts, the client decrypts, the server relays', async () => {
  const c = await connected('alice');
  // pusher-js asks the auth endpoint, which adds the shared secret derived from the master key.
  const channel = await subscribed(c, 'private-encrypted-vault');
  const got = once(channel, 'secret');
  await sdk.trigger('private-encrypted-vault', 'secret', { pin: 1234 });
  assert.deepEqual(await got, { pin: 1234 });
});

test('cache channel: last event replayed on subscribe, cache_miss when empty', async () => {
  await sdk.trigger('cache-prices', 'price', { v: 42 });
  const c = await connected();
  const channel = c.subscribe('cache-prices');
  assert.deepEqual(await once(channel, 'price'), { v: 42 });
  const empty = c.subscribe('cache-nothing');
  await once(empty, 'pusher:cache_miss');
});

test('client events go to the other subscriber, not back to the sender', async () => {
  const a = await connected('alice');
  const b = await connected('bob');
  const chA = await subscribed(a, 'private-chat');
  const chB = await subscribed(b, 'private-chat');
  let echoed = false;
  chA.bind('client-typing', () => { echoed = true; });
  const got = once(chB, 'client-typing');
  assert.equal(chA.trigger('client-typing', { who: 'alice' }), true);
  assert.deepEqual(await got, { who: 'alice' });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(echoed, false);
});

test('presence client events carry the sender user_id', async () => {
  const a = await connected('carol');
  const b = await connected('dave');
  const chA = await subscribed(a, 'presence-typing');
  const chB = await subscribed(b, 'presence-typing');
  const got = onceWithMeta(chB, 'client-hello', 'client event with metadata');
  chA.trigger('client-hello', { x: 1 });
  const { data, meta } = await got;
  assert.deepEqual(data, { x: 1 });
  assert.equal(meta.user_id, 'carol');
});

test('sign-in, sendToUser reaches all of that user\'s connections only', async () => {
  const u1 = await connected('erin');
  const u1b = await connected('erin');
  const other = await connected('frank');
  for (const c of [u1, u1b, other]) {
    c.signin();
    // Wait for the user channel subscription that pusher-js makes after signin_success.
    await within(new Promise((resolve) => {
      const check = () => (c.user.serverToUserChannel && c.user.serverToUserChannel.subscribed
        ? resolve() : setTimeout(check, 20));
      check();
    }), 'user channel');
  }
  let frankGot = false;
  other.user.bind('notice', () => { frankGot = true; });
  const a = within(new Promise((r) => u1.user.bind('notice', r)), 'notice on first connection');
  const b = within(new Promise((r) => u1b.user.bind('notice', r)), 'notice on second connection');
  await sdk.sendToUser('erin', 'notice', { text: 'hi erin' });
  assert.deepEqual(await a, { text: 'hi erin' });
  assert.deepEqual(await b, { text: 'hi erin' });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(frankGot, false);
});

test('watchlist events reach pusher-js', async () => {
  const watcher = await connected('grace', { watch: 'heidi' });
  const offline = within(new Promise((r) => watcher.user.watchlist.bind('offline', r)), 'offline');
  watcher.signin();
  assert.deepEqual((await offline).user_ids, ['heidi']);
  const online = within(new Promise((r) => watcher.user.watchlist.bind('online', r)), 'online');
  const heidi = await connected('heidi');
  heidi.signin();
  assert.deepEqual((await online).user_ids, ['heidi']);
});

test('terminateUserConnections disconnects that user for good', async () => {
  const c = await connected('mallory');
  c.signin();
  await within(new Promise((resolve) => {
    const check = () => (c.user.user_data ? resolve() : setTimeout(check, 20));
    check();
  }), 'signin');
  const error = once(c.connection, 'error', 'connection error');
  const disconnected = once(c.connection, 'disconnected', 'disconnected');
  await sdk.terminateUserConnections('mallory');
  const err = await error;
  assert.equal(err.data.code, 4009);
  await disconnected;
});

test('REST through the SDK: triggerBatch, channels, channel info, users', async () => {
  const c = await connected('ivan');
  const pub = await subscribed(c, 'rest-room');
  await subscribed(c, 'presence-rest');
  const got = once(pub, 'batched');
  const batch = await sdk.triggerBatch([
    { channel: 'rest-room', name: 'batched', data: { n: 1 }, info: 'subscription_count' },
    { channel: 'presence-rest', name: 'batched', data: { n: 2 }, info: 'user_count' },
  ]);
  assert.deepEqual(await batch.json(), { batch: [{ subscription_count: 1 }, { user_count: 1 }] });
  assert.deepEqual(await got, { n: 1 });

  const trigger = await sdk.trigger(['rest-room'], 'e', 'd', { info: 'subscription_count' });
  assert.deepEqual(await trigger.json(), { channels: { 'rest-room': { subscription_count: 1 } } });

  const channels = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json();
  assert.equal(channels.channels['presence-rest'].user_count, 1);
  const info = await (await sdk.get({ path: '/channels/rest-room', params: { info: 'subscription_count' } })).json();
  assert.deepEqual(info, { occupied: true, subscription_count: 1 });
  const users = await (await sdk.get({ path: '/channels/presence-rest/users' })).json();
  assert.deepEqual(users, { users: [{ id: 'ivan' }] });
});

test('REST with the wrong secret is refused with 401', async () => {
  const bad = new PusherServer({
    appId: creds.id, key: creds.key, secret: 'wrong-secret', host: '127.0.0.1', port: String(sdkPort), useTLS: false,
  });
  await assert.rejects(bad.trigger('x', 'e', 'd'), (err) => err.status === 401);
  const unknown = new PusherServer({
    appId: '1', key: creds.key, secret: creds.secret, host: '127.0.0.1', port: String(sdkPort), useTLS: false,
  });
  await assert.rejects(unknown.trigger('x', 'e', 'd'), (err) => err.status === 404);
});

test('unknown app key: pusher-js is refused and does not retry', async () => {
  const c = new PusherClient('no-such-key', {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
  });
  openClients.push(c);
  const states = [];
  c.connection.bind('state_change', (s) => states.push(s.current));
  const error = await once(c.connection, 'error', 'refusal');
  // During the handshake pusher-js wraps the server's pusher:error in a WebSocketError.
  assert.equal(error.error.data.code, 4001);
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(states, ['disconnected'], 'refused: no reconnection attempt');
});

test('rate limits: pusher-js retries after a 4100 refusal, the SDK sees 429', async () => {
  // A second app with tight limits, made with the CLI while the server runs.
  const limited = JSON.parse(execFileSync(BIN, ['--database-url', databaseUrl, 'app', 'create', '--name', 'limited', '--json']));
  execFileSync(BIN, ['--database-url', databaseUrl, 'app', 'set', limited.id,
    '--limit', 'max_new_connections_per_second=1', '--limit', 'max_backend_events_per_second=1']);
  const limitedSdk = new PusherServer({
    appId: limited.id, key: limited.key, secret: limited.secret, host: '127.0.0.1', port: String(sdkPort), useTLS: false,
  });
  // The running server picks the app up within its sync interval (in cluster mode both nodes:
  // the clients' node and the SDK's).
  const probes = [...new Set([sdkPort, port])].map((p) => new PusherServer({
    appId: limited.id, key: limited.key, secret: limited.secret, host: '127.0.0.1', port: String(p), useTLS: false,
  }));
  await within(Promise.all(probes.map(async (probe) => {
    for (;;) {
      const known = await probe.get({ path: '/channels' }).then(() => true, (e) => e.status !== 404);
      if (known) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  })), 'the new app to be live');
  const open = () => {
    const c = new PusherClient(limited.key, {
      cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
    });
    openClients.push(c);
    return c;
  };
  const first = open();
  await once(first.connection, 'connected', 'first connection');
  const second = open();
  const error = await once(second.connection, 'error', 'the 4100 refusal');
  assert.equal(error.error.data.code, 4100);
  const refusedAt = Date.now();
  // 4100 means "back off, then retry": pusher-js reconnects by itself about a second later
  // (a 4301 here would have left it disconnected for good).
  await once(second.connection, 'connected', 'the retried connection', 5000);
  assert.equal(second.connection.state, 'connected');
  assert.ok(Date.now() - refusedAt >= 500, 'the retry came after a back-off');

  const ok = await limitedSdk.trigger('room', 'e', {});
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('x-ratelimit-limit'), '1');
  await assert.rejects(limitedSdk.trigger('room', 'e', {}), (err) => {
    assert.equal(err.status, 429);
    assert.match(err.body, /rate_limited/);
    return true;
  });
});

test('the admin API OpenAPI document validates against the OpenAPI schema', async () => {
  const { Validator } = require('@seriousme/openapi-schema-validator');
  const response = await fetch(`http://127.0.0.1:${port}/admin/api/openapi.json`);
  assert.equal(response.status, 200);
  const doc = await response.json();
  const result = await new Validator().validate(doc);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  assert.match(doc.openapi, /^3\.1\./);
  const operations = Object.values(doc.paths).flatMap((item) => Object.keys(item));
  assert.equal(operations.length, 41, 'every admin endpoint is described');
});

// Issue 19: apps moved from Pusher keep their credentials, so their clients need no change.
test('`reverb-pusher app import`: pusher-js connects with the imported key, the SDK triggers with the imported secret', async () => {
  const fixture = path.resolve(__dirname, '../fixtures/import/pusher.csv');
  const report = JSON.parse(execFileSync(BIN, ['--database-url', databaseUrl, 'app', 'import', fixture, '--json']));
  assert.equal(report.applied, true);
  assert.deepEqual(report.apps.map((a) => a.action), ['create', 'create']);
  const [id, key, secret] = fs.readFileSync(fixture, 'utf8').trim().split('\n')[1].split(',');
  const imported = new PusherServer({ appId: id, key, secret, host: '127.0.0.1', port: String(sdkPort), useTLS: false });
  // The running server picks the app up within app_sync_interval_ms: REST answers 404 until then.
  for (let i = 0; ; i += 1) {
    const ready = await imported.get({ path: '/channels' }).then(() => true, (err) => {
      if (err.status !== 404 || i > 50) throw err;
      return false;
    });
    if (ready) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const c = new PusherClient(key, {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
  });
  openClients.push(c);
  await once(c.connection, 'connected', 'connected with the imported key');
  const channel = await subscribed(c, 'moved-from-pusher');
  const got = once(channel, 'arrived');
  await imported.trigger('moved-from-pusher', 'arrived', { from: 'pusher' });
  assert.deepEqual(await got, { from: 'pusher' });
});

test('`reverb-pusher user create` makes an admin account that can log in', async () => {
  execFileSync(BIN, ['--database-url', databaseUrl, 'user', 'create', '--email', 'cli@example.com', '--name', 'Cli'], {
    input: 'a password from stdin\n',
  });
  const login = (password) => fetch(`http://127.0.0.1:${port}/admin/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'cli@example.com', password }),
  });
  assert.equal((await login('wrong password!')).status, 401);
  const ok = await login('a password from stdin');
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get('set-cookie'), /HttpOnly/);
  assert.equal((await ok.json()).user.name, 'Cli');
});

test('encrypted channel in a browser with pusher-js/with-encryption', async () => {
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${authPort}/browser/encrypted.html`);
    await page.waitForFunction(() => window.subscribed === true || window.failed, null, { timeout: WAIT_MS });
    assert.equal(await page.evaluate(() => window.failed), undefined);
    await sdk.trigger('private-encrypted-browser', 'secret', { pin: 4242 });
    const received = await page.waitForFunction(() => window.received, null, { timeout: WAIT_MS });
    assert.deepEqual(await received.jsonValue(), { pin: 4242 });
  } finally {
    await browser.close();
  }
});

// Issue 16: the official SDK's webhook validation accepts what the server sends.
test('webhooks: the `pusher` SDK validates a received webhook (content type, key, signature)', async () => {
  const password = 'webhook conformance password';
  execFileSync(BIN, ['--database-url', databaseUrl, 'user', 'create', '--email', 'hooks@example.com', '--name', 'Hooks'],
    { input: `${password}\n` });
  const login = await fetch(`http://127.0.0.1:${port}/admin/api/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'hooks@example.com', password }),
  });
  assert.equal(login.status, 200);
  const cookie = login.headers.get('set-cookie').split(';')[0];
  const { csrf_token: csrf } = await login.json();

  const received = [];
  let arrived;
  const arrival = new Promise((resolve) => { arrived = resolve; });
  const receiver = http.createServer((req, res) => {
    let rawBody = '';
    req.on('data', (chunk) => { rawBody += chunk; });
    req.on('end', () => {
      received.push({ headers: req.headers, rawBody });
      res.writeHead(200);
      res.end('ok');
      arrived();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  try {
    const created = await fetch(`http://127.0.0.1:${port}/admin/api/apps/${creds.id}/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrf },
      body: JSON.stringify({
        url: `http://127.0.0.1:${receiver.address().port}/hook`,
        event_types: ['channel_occupied'],
        channel_prefix: 'hooked-',
      }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const c = await connected('hooks');
    await subscribed(c, 'hooked-channel');
    await within(arrival, 'a webhook');
    const webhook = sdk.webhook(received[0]);
    assert.equal(webhook.isValid(), true, JSON.stringify(received[0]));
    assert.deepEqual(webhook.getEvents(), [{ name: 'channel_occupied', channel: 'hooked-channel' }]);
    assert.ok(webhook.getTime() instanceof Date);
    // A wrong secret does not validate it: the signature is really checked.
    const other = new PusherServer({ appId: creds.id, key: creds.key, secret: 'not-the-secret', host: '127.0.0.1' });
    assert.equal(other.webhook(received[0]).isValid(), false);
    c.disconnect();
  } finally {
    receiver.close();
  }
});
