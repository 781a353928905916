// Helpers the Node test files share: a free loopback port, the server's /up probe, polling.

'use strict';

const http = require('node:http');
const net = require('node:net');

/** A loopback port nobody listens on now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
    srv.on('error', reject);
  });
}

/** Whether the server on `port` answers /up with 200. */
function isUp(port) {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/up' }, (res) => { res.resume(); resolve(res.statusCode === 200); })
      .on('error', () => resolve(false));
  });
}

/** Polls `check` every `pollMs` until it returns something truthy (returned) or `timeout` passes. */
async function until(what, check, timeout, pollMs = 50) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

module.exports = { freePort, isUp, until };
