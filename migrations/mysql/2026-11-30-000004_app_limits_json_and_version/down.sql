ALTER TABLE apps
    ADD COLUMN max_connections INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN max_client_events_per_second INTEGER NOT NULL DEFAULT 10,
    ADD COLUMN max_channel_name_length INTEGER NOT NULL DEFAULT 200,
    ADD COLUMN max_event_name_length INTEGER NOT NULL DEFAULT 200,
    ADD COLUMN max_event_payload_bytes INTEGER NOT NULL DEFAULT 10240,
    ADD COLUMN max_event_channels_at_once INTEGER NOT NULL DEFAULT 100,
    ADD COLUMN max_event_batch_size INTEGER NOT NULL DEFAULT 10,
    ADD COLUMN max_presence_members INTEGER NOT NULL DEFAULT 100,
    ADD COLUMN max_presence_member_size_bytes INTEGER NOT NULL DEFAULT 1024,
    ADD COLUMN max_user_id_length INTEGER NOT NULL DEFAULT 128,
    ADD COLUMN cache_ttl_secs INTEGER NOT NULL DEFAULT 1800;
UPDATE apps SET
    max_connections = COALESCE(JSON_EXTRACT(limits, '$.max_connections'), max_connections),
    max_client_events_per_second = COALESCE(JSON_EXTRACT(limits, '$.max_client_events_per_second'), max_client_events_per_second),
    max_channel_name_length = COALESCE(JSON_EXTRACT(limits, '$.max_channel_name_length'), max_channel_name_length),
    max_event_name_length = COALESCE(JSON_EXTRACT(limits, '$.max_event_name_length'), max_event_name_length),
    max_event_payload_bytes = COALESCE(JSON_EXTRACT(limits, '$.max_event_payload_bytes'), max_event_payload_bytes),
    max_event_channels_at_once = COALESCE(JSON_EXTRACT(limits, '$.max_event_channels_at_once'), max_event_channels_at_once),
    max_event_batch_size = COALESCE(JSON_EXTRACT(limits, '$.max_event_batch_size'), max_event_batch_size),
    max_presence_members = COALESCE(JSON_EXTRACT(limits, '$.max_presence_members'), max_presence_members),
    max_presence_member_size_bytes = COALESCE(JSON_EXTRACT(limits, '$.max_presence_member_size_bytes'), max_presence_member_size_bytes),
    max_user_id_length = COALESCE(JSON_EXTRACT(limits, '$.max_user_id_length'), max_user_id_length),
    cache_ttl_secs = COALESCE(JSON_EXTRACT(limits, '$.cache_ttl_secs'), cache_ttl_secs);
ALTER TABLE apps DROP COLUMN limits, DROP COLUMN version;
