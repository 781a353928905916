// Laravel Echo with the `pusher` broadcaster, pointed at this server instead of Pusher's cloud.
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';

const echo = new Echo({
  broadcaster: 'pusher',
  Pusher,
  key: process.env.PUSHER_APP_KEY,
  cluster: 'mt1', // required by pusher-js, ignored by this server
  wsHost: process.env.PUSHER_HOST,
  wsPort: Number(process.env.PUSHER_PORT),
  wssPort: Number(process.env.PUSHER_PORT),
  forceTLS: (process.env.PUSHER_SCHEME ?? 'https') === 'https',
  enabledTransports: ['ws', 'wss'],
});

echo
  .channel('orders')
  .subscribed(() => console.log('subscribed to orders'))
  .listen('.order.shipped', (event) => {
    console.log('order.shipped:', JSON.stringify(event));
    echo.disconnect();
  });
