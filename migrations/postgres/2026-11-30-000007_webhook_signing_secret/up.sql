-- An endpoint's own signing secret (sealed under the master key like app secrets, bound to
-- the endpoint's id); NULL signs with the app secret, as Pusher does.
ALTER TABLE webhook_endpoints ADD COLUMN signing_secret TEXT;
