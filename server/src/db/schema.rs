//! The database schema, one definition for every backend.

diesel::table! {
    apps (id) {
        id -> Text,
        name -> Text,
        app_key -> Text,
        secret -> Text,
        enabled -> Bool,
        allowed_origins -> Text,
        client_events -> Bool,
        require_user_auth -> Bool,
        user_auth_timeout_secs -> Integer,
        watchlist_events -> Bool,
        subscription_count_events -> Bool,
        /// Every limit, as one JSON object (`shared::limits::AppLimits`).
        limits -> Text,
        /// Increases by one with every stored change (compare-and-swap updates).
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    admin_users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        target_type -> Text,
        target_id -> Text,
        before_json -> Nullable<Text>,
        after_json -> Nullable<Text>,
    }
}

diesel::table! {
    meta (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::joinable!(api_tokens -> admin_users (user_id));
diesel::allow_tables_to_appear_in_same_query!(admin_users, api_tokens);

diesel::table! {
    admin_sessions (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::joinable!(admin_sessions -> admin_users (user_id));
diesel::allow_tables_to_appear_in_same_query!(admin_sessions, admin_users);

diesel::table! {
    /// Messages each app used per UTC day, for the message quota.
    app_usage (app_id, day) {
        app_id -> Text,
        /// Days since 1970-01-01 (UTC).
        day -> BigInt,
        messages -> BigInt,
    }
}

diesel::table! {
    /// Where each app's webhooks go (see `crate::webhooks`).
    webhook_endpoints (id) {
        id -> Text,
        app_id -> Text,
        url -> Text,
        /// JSON array of event type names.
        event_types -> Text,
        channel_prefix -> Nullable<Text>,
        channel_suffix -> Nullable<Text>,
        /// JSON object of extra headers.
        headers -> Text,
        enabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        /// The endpoint's own signing secret, sealed (`crate::db::crypto`); NULL: the app's.
        signing_secret -> Nullable<Text>,
    }
}

diesel::table! {
    /// Webhook requests: the outbox while `pending`, then the delivery log.
    webhook_deliveries (id) {
        id -> Text,
        app_id -> Text,
        endpoint_id -> Text,
        created_at_ms -> BigInt,
        body -> Text,
        events -> Integer,
        state -> Text,
        attempts -> Integer,
        next_attempt_at_ms -> BigInt,
        last_attempt_at_ms -> Nullable<BigInt>,
        status_code -> Nullable<Integer>,
        latency_ms -> Nullable<BigInt>,
        error -> Nullable<Text>,
        response -> Nullable<Text>,
    }
}

diesel::table! {
    /// Statistics buckets (see migrations/*/2026-11-30-000008_app_stats).
    app_stats (app_id, resolution, bucket_start, node) {
        app_id -> Text,
        resolution -> BigInt,
        bucket_start -> BigInt,
        node -> Text,
        samples -> BigInt,
        connections_peak -> BigInt,
        connections_min -> BigInt,
        connections_sum -> BigInt,
        channels_peak -> BigInt,
        connections_opened -> BigInt,
        connections_closed -> BigInt,
        closed_error -> BigInt,
        closed_backoff -> BigInt,
        closed_reconnect -> BigInt,
        subscriptions -> BigInt,
        messages_in_api -> BigInt,
        messages_in_client -> BigInt,
        messages_out -> BigInt,
        messages_out_client -> BigInt,
        messages_out_presence -> BigInt,
        messages_out_system -> BigInt,
        ws_bytes_in -> BigInt,
        ws_bytes_out -> BigInt,
        http_bytes_in -> BigInt,
        http_bytes_out -> BigInt,
        api_requests -> BigInt,
        api_errors_4xx -> BigInt,
        api_errors_5xx -> BigInt,
        rate_limited -> BigInt,
        errors_sent -> BigInt,
        webhooks_sent -> BigInt,
        webhooks_failed -> BigInt,
    }
}
