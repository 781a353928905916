-- Statistics: one row per app (or `*`, the whole server), resolution (60, 3600 or 86400
-- seconds), bucket start (unix seconds, UTC, aligned) and node. Columns are the API's field
-- names (shared::stats::Counts). No foreign key: rows outlive a deleted app until retention
-- ends, so reports stay complete.
CREATE TABLE app_stats (
    app_id TEXT NOT NULL,
    resolution BIGINT NOT NULL,
    bucket_start BIGINT NOT NULL,
    node TEXT NOT NULL,
    samples BIGINT NOT NULL DEFAULT 0,
    connections_peak BIGINT NOT NULL DEFAULT 0,
    connections_min BIGINT NOT NULL DEFAULT 0,
    connections_sum BIGINT NOT NULL DEFAULT 0,
    channels_peak BIGINT NOT NULL DEFAULT 0,
    connections_opened BIGINT NOT NULL DEFAULT 0,
    connections_closed BIGINT NOT NULL DEFAULT 0,
    closed_error BIGINT NOT NULL DEFAULT 0,
    closed_backoff BIGINT NOT NULL DEFAULT 0,
    closed_reconnect BIGINT NOT NULL DEFAULT 0,
    subscriptions BIGINT NOT NULL DEFAULT 0,
    messages_in_api BIGINT NOT NULL DEFAULT 0,
    messages_in_client BIGINT NOT NULL DEFAULT 0,
    messages_out BIGINT NOT NULL DEFAULT 0,
    messages_out_client BIGINT NOT NULL DEFAULT 0,
    messages_out_presence BIGINT NOT NULL DEFAULT 0,
    messages_out_system BIGINT NOT NULL DEFAULT 0,
    ws_bytes_in BIGINT NOT NULL DEFAULT 0,
    ws_bytes_out BIGINT NOT NULL DEFAULT 0,
    http_bytes_in BIGINT NOT NULL DEFAULT 0,
    http_bytes_out BIGINT NOT NULL DEFAULT 0,
    api_requests BIGINT NOT NULL DEFAULT 0,
    api_errors_4xx BIGINT NOT NULL DEFAULT 0,
    api_errors_5xx BIGINT NOT NULL DEFAULT 0,
    rate_limited BIGINT NOT NULL DEFAULT 0,
    errors_sent BIGINT NOT NULL DEFAULT 0,
    webhooks_sent BIGINT NOT NULL DEFAULT 0,
    webhooks_failed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, resolution, bucket_start, node)
);
CREATE INDEX app_stats_time ON app_stats (resolution, bucket_start);
