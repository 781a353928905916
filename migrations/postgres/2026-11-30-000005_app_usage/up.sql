-- Messages each app used per UTC day (days since 1970-01-01), for the message quota.
CREATE TABLE app_usage (
    app_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    messages BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, day)
);
