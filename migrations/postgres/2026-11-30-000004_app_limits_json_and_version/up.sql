-- The eleven limit columns become one JSON object (`limits`, read with
-- shared::limits::AppLimits; limits missing from it take their defaults), and every app gets a
-- `version` that each stored change increases (compare-and-swap updates).
ALTER TABLE apps ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
ALTER TABLE apps ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
UPDATE apps SET limits = json_build_object(
    'max_connections', max_connections,
    'max_client_events_per_second', max_client_events_per_second,
    'max_channel_name_length', max_channel_name_length,
    'max_event_name_length', max_event_name_length,
    'max_event_payload_bytes', max_event_payload_bytes,
    'max_event_channels_at_once', max_event_channels_at_once,
    'max_event_batch_size', max_event_batch_size,
    'max_presence_members', max_presence_members,
    'max_presence_member_size_bytes', max_presence_member_size_bytes,
    'max_user_id_length', max_user_id_length,
    'cache_ttl_secs', cache_ttl_secs
)::text;
ALTER TABLE apps
    DROP COLUMN max_connections,
    DROP COLUMN max_client_events_per_second,
    DROP COLUMN max_channel_name_length,
    DROP COLUMN max_event_name_length,
    DROP COLUMN max_event_payload_bytes,
    DROP COLUMN max_event_channels_at_once,
    DROP COLUMN max_event_batch_size,
    DROP COLUMN max_presence_members,
    DROP COLUMN max_presence_member_size_bytes,
    DROP COLUMN max_user_id_length,
    DROP COLUMN cache_ttl_secs;
