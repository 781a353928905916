// pusher-js in Node: subscribe to `my-channel`, print the first `my-event`, then disconnect.
// PUSHER_APP_KEY=... PUSHER_HOST=127.0.0.1 PUSHER_PORT=6001 node pusher-js-node.js
const Pusher = require('pusher-js');

const pusher = new Pusher(process.env.PUSHER_APP_KEY, {
  cluster: 'mt1', // required by pusher-js 8, ignored by this server
  wsHost: process.env.PUSHER_HOST || '127.0.0.1',
  wsPort: Number(process.env.PUSHER_PORT || 6001),
  forceTLS: false, // true when the server (or its proxy) speaks TLS; then set wssPort too
  enabledTransports: ['ws', 'wss'],
});

pusher.connection.bind('error', (error) => {
  // A refusal, e.g. {"type":"PusherError","data":{"code":4001,"message":"App key ... not in this cluster"}}
  console.error('connection error:', JSON.stringify(error));
  process.exit(1);
});

const channel = pusher.subscribe('my-channel');
channel.bind('pusher:subscription_succeeded', () => console.log('subscribed to my-channel'));
channel.bind('my-event', (data) => {
  console.log('received my-event:', JSON.stringify(data));
  pusher.disconnect();
});
