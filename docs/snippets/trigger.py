# The `pusher` Python SDK (pip install pusher): trigger `my-event` on `my-channel`.
# PUSHER_APP_ID=... PUSHER_APP_KEY=... PUSHER_APP_SECRET=... python3 trigger.py
import os

import pusher

client = pusher.Pusher(
    app_id=os.environ["PUSHER_APP_ID"],
    key=os.environ["PUSHER_APP_KEY"],
    secret=os.environ["PUSHER_APP_SECRET"],
    host=os.environ.get("PUSHER_HOST", "127.0.0.1"),
    port=int(os.environ.get("PUSHER_PORT", "6001")),
    ssl=False,  # True for https:// (then the port is usually 443)
)

client.trigger("my-channel", "my-event", {"message": "hello world"})
print("triggered my-event")
