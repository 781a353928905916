ALTER TABLE apps ADD COLUMN max_connections INTEGER NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN max_client_events_per_second INTEGER NOT NULL DEFAULT 10;
ALTER TABLE apps ADD COLUMN max_channel_name_length INTEGER NOT NULL DEFAULT 200;
ALTER TABLE apps ADD COLUMN max_event_name_length INTEGER NOT NULL DEFAULT 200;
ALTER TABLE apps ADD COLUMN max_event_payload_bytes INTEGER NOT NULL DEFAULT 10240;
ALTER TABLE apps ADD COLUMN max_event_channels_at_once INTEGER NOT NULL DEFAULT 100;
ALTER TABLE apps ADD COLUMN max_event_batch_size INTEGER NOT NULL DEFAULT 10;
ALTER TABLE apps ADD COLUMN max_presence_members INTEGER NOT NULL DEFAULT 100;
ALTER TABLE apps ADD COLUMN max_presence_member_size_bytes INTEGER NOT NULL DEFAULT 1024;
ALTER TABLE apps ADD COLUMN max_user_id_length INTEGER NOT NULL DEFAULT 128;
ALTER TABLE apps ADD COLUMN cache_ttl_secs INTEGER NOT NULL DEFAULT 1800;
UPDATE apps SET
    max_connections = COALESCE(json_extract(limits, '$.max_connections'), max_connections),
    max_client_events_per_second = COALESCE(json_extract(limits, '$.max_client_events_per_second'), max_client_events_per_second),
    max_channel_name_length = COALESCE(json_extract(limits, '$.max_channel_name_length'), max_channel_name_length),
    max_event_name_length = COALESCE(json_extract(limits, '$.max_event_name_length'), max_event_name_length),
    max_event_payload_bytes = COALESCE(json_extract(limits, '$.max_event_payload_bytes'), max_event_payload_bytes),
    max_event_channels_at_once = COALESCE(json_extract(limits, '$.max_event_channels_at_once'), max_event_channels_at_once),
    max_event_batch_size = COALESCE(json_extract(limits, '$.max_event_batch_size'), max_event_batch_size),
    max_presence_members = COALESCE(json_extract(limits, '$.max_presence_members'), max_presence_members),
    max_presence_member_size_bytes = COALESCE(json_extract(limits, '$.max_presence_member_size_bytes'), max_presence_member_size_bytes),
    max_user_id_length = COALESCE(json_extract(limits, '$.max_user_id_length'), max_user_id_length),
    cache_ttl_secs = COALESCE(json_extract(limits, '$.cache_ttl_secs'), cache_ttl_secs);
ALTER TABLE apps DROP COLUMN limits;
ALTER TABLE apps DROP COLUMN version;
