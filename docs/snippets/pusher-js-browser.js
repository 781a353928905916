// pusher-js in the browser (npm install pusher-js, or the pusher.min.js script tag).
import Pusher from 'pusher-js';

const pusher = new Pusher('APP_KEY', {
  cluster: 'mt1', // required by pusher-js 8, ignored by this server
  wsHost: 'ws.example.com', // your server's host name
  wsPort: 6001, // plain ws:// (development)
  wssPort: 443, // wss:// behind TLS
  forceTLS: true, // false only for ws:// on a page served over http://
  enabledTransports: ['ws', 'wss'],
  // Your application's endpoints that sign private/presence subscriptions and user sign-in.
  channelAuthorization: { endpoint: '/pusher/auth' },
  userAuthentication: { endpoint: '/pusher/user-auth' },
});

pusher.subscribe('my-channel').bind('my-event', (data) => console.log(data));
