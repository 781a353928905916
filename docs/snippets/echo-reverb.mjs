// Laravel Echo with the `reverb` broadcaster (npm install laravel-echo pusher-js), here in Node;
// in a Vite app the values come from import.meta.env.VITE_REVERB_* instead.
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';

const echo = new Echo({
  broadcaster: 'reverb',
  Pusher, // in a browser, `window.Pusher = Pusher` works too
  key: process.env.REVERB_APP_KEY,
  wsHost: process.env.REVERB_HOST,
  wsPort: Number(process.env.REVERB_PORT),
  wssPort: Number(process.env.REVERB_PORT),
  forceTLS: (process.env.REVERB_SCHEME ?? 'https') === 'https',
  enabledTransports: ['ws', 'wss'],
});

// Laravel broadcasts `App\Events\OrderShipped` as that class name unless the event sets
// broadcastAs(); a leading dot listens to a name as it is.
echo
  .channel('orders')
  .subscribed(() => console.log('subscribed to orders'))
  .listen('.order.shipped', (event) => {
    console.log('order.shipped:', JSON.stringify(event));
    echo.disconnect();
  });
