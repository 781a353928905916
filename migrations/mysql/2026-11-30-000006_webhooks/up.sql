-- Webhook endpoints of each app: where its events are POSTed, which ones, and with which headers.
CREATE TABLE webhook_endpoints (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    app_id VARCHAR(32) NOT NULL,
    url TEXT NOT NULL,
    -- JSON array of event type names.
    event_types TEXT NOT NULL,
    channel_prefix TEXT,
    channel_suffix TEXT,
    -- JSON object of extra request headers.
    headers TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id);

-- One webhook request (a batch of events for one endpoint): the outbox while pending, the
-- delivery log once delivered, failed or dead.
CREATE TABLE webhook_deliveries (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    app_id VARCHAR(32) NOT NULL,
    endpoint_id VARCHAR(36) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    events INTEGER NOT NULL,
    -- pending, delivered, failed (a 4xx that is not retried) or dead (retries ran out).
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NOT NULL,
    last_attempt_at_ms BIGINT,
    status_code INTEGER,
    latency_ms BIGINT,
    error TEXT,
    response TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at_ms);
CREATE INDEX webhook_deliveries_app ON webhook_deliveries (app_id, created_at_ms);
