ALTER TABLE webhook_endpoints DROP COLUMN signing_secret;
