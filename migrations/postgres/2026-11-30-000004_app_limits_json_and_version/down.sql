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
    max_connections = COALESCE((limits::json ->> 'max_connections')::integer, max_connections),
    max_client_events_per_second = COALESCE((limits::json ->> 'max_client_events_per_second')::integer, max_client_events_per_second),
    max_channel_name_length = COALESCE((limits::json ->> 'max_channel_name_length')::integer, max_channel_name_length),
    max_event_name_length = COALESCE((limits::json ->> 'max_event_name_length')::integer, max_event_name_length),
    max_event_payload_bytes = COALESCE((limits::json ->> 'max_event_payload_bytes')::integer, max_event_payload_bytes),
    max_event_channels_at_once = COALESCE((limits::json ->> 'max_event_channels_at_once')::integer, max_event_channels_at_once),
    max_event_batch_size = COALESCE((limits::json ->> 'max_event_batch_size')::integer, max_event_batch_size),
    max_presence_members = COALESCE((limits::json ->> 'max_presence_members')::integer, max_presence_members),
    max_presence_member_size_bytes = COALESCE((limits::json ->> 'max_presence_member_size_bytes')::integer, max_presence_member_size_bytes),
    max_user_id_length = COALESCE((limits::json ->> 'max_user_id_length')::integer, max_user_id_length),
    cache_ttl_secs = COALESCE((limits::json ->> 'cache_ttl_secs')::integer, cache_ttl_secs);
ALTER TABLE apps DROP COLUMN limits, DROP COLUMN version;
