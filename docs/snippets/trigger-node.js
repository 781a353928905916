// The `pusher` Node SDK (npm install pusher): trigger `my-event` on `my-channel`.
// PUSHER_APP_ID=... PUSHER_APP_KEY=... PUSHER_APP_SECRET=... node trigger-node.js
const Pusher = require('pusher');

const pusher = new Pusher({
  appId: process.env.PUSHER_APP_ID,
  key: process.env.PUSHER_APP_KEY,
  secret: process.env.PUSHER_APP_SECRET,
  host: process.env.PUSHER_HOST || '127.0.0.1',
  port: process.env.PUSHER_PORT || '6001',
  useTLS: false, // true for https:// (then the port is usually 443)
});

pusher
  .trigger('my-channel', 'my-event', { message: 'hello world' })
  .then(() => console.log('triggered my-event'))
  .catch((error) => {
    // A refused request: error.status is the HTTP status, error.body the server's JSON.
    console.error('trigger failed:', error.status, error.body);
    process.exit(1);
  });
