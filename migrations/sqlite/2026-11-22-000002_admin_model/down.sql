DROP TABLE meta;
DROP INDEX audit_log_at;
DROP TABLE audit_log;
DROP TABLE api_tokens;
DROP TABLE admin_users;
ALTER TABLE apps DROP COLUMN previous_secret_expires_at;
ALTER TABLE apps DROP COLUMN previous_secret;
