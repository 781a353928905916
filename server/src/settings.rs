//! Server settings: one typed tree, loaded in layers (defaults, then an optional TOML file,
//! then `REVERB_PUSHER_*` environment variables, then command-line flags) and validated once.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use shared::limits::{AppLimits, LimitError};

const ENV_PREFIX: &str = "REVERB_PUSHER_";

/// Every field of [`Settings`], as environment variables name them (a test keeps it in step).
pub(crate) const FIELDS: [&str; 52] = [
    "tls_cert_file",
    "tls_key_file",
    "tls_reload_secs",
    "http_redirect_port",
    "trusted_proxies",
    "drain_window_secs",
    "metrics_port",
    "metrics_token",
    "host",
    "port",
    "database_url",
    "database_pool_size",
    "database_timeout_secs",
    "master_key",
    "master_key_file",
    "workers",
    "app_threads",
    "activity_timeout_secs",
    "pong_timeout_secs",
    "max_frame_bytes",
    "max_request_body_bytes",
    "max_connections",
    "outbound_buffer_messages",
    "outbound_buffer_bytes",
    "client_disconnect_timeout_ms",
    "log_level",
    "log_format",
    "app_sync_interval_ms",
    "usage_flush_secs",
    "webhook_vacate_delay_ms",
    "webhook_batch_window_ms",
    "webhook_timeout_ms",
    "webhook_retry_horizon_secs",
    "webhook_backoff_base_ms",
    "webhook_allow_private_targets",
    "webhook_log_retention_hours",
    "webhook_log_max_deliveries",
    "webhook_breaker_failures",
    "webhook_breaker_cooldown_ms",
    "webhook_max_buffered_events",
    "stats_enabled",
    "stats_sample_secs",
    "stats_minute_retention_days",
    "stats_hour_retention_days",
    "stats_day_retention_days",
    "stats_node",
    "default_app_limits",
    "cluster_redis_url",
    "cluster_key_prefix",
    "cluster_node_id",
    "cluster_heartbeat_ms",
    "cluster_lease_ms",
];

/// A setting that must never appear in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Every setting, with its default. Environment variables are the field names in upper case
/// behind `REVERB_PUSHER_`, for example `REVERB_PUSHER_PORT=6001`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub host: String,
    /// Port for `WebSockets`, the REST API and the admin panel. 0 picks a free port.
    pub port: u16,
    /// `sqlite://PATH` (or a plain file path), `postgres://USER@HOST/DB` or
    /// `mysql://USER:PASSWORD@HOST/DB` (PostgreSQL and MySQL need the `postgres`/`mysql` build
    /// features).
    pub database_url: String,
    /// Connections kept by the database pool.
    pub database_pool_size: u32,
    /// Seconds a database operation waits for a connection before failing as unavailable.
    pub database_timeout_secs: u64,
    /// The master key that encrypts app secrets at rest: 32 bytes, base64. When unset, the key
    /// is read from `master_key_file`, which is created on the first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<Secret>,
    /// Where the master key is kept when `master_key` is unset (created with mode 0600).
    pub master_key_file: String,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Threads of their own for the apps' supervisors and channels (fan-out), apps dealt out
    /// over them in turn; 0 (the default) runs them on the HTTP workers, which saves a
    /// cross-thread wake-up per subscribe, unsubscribe and disconnect on the app's own worker,
    /// while threads of their own keep one app's long fan-out from delaying a worker's sockets.
    pub app_threads: usize,
    /// Seconds announced to clients as `activity_timeout`; the server also pings a client that
    /// has been silent this long.
    pub activity_timeout_secs: u64,
    /// Seconds to wait for any message after a server ping before closing with 4201.
    pub pong_timeout_secs: u64,
    /// Largest WebSocket frame a client may send, in bytes.
    pub max_frame_bytes: usize,
    /// Largest REST request body, in bytes.
    pub max_request_body_bytes: usize,
    /// Connections this node accepts in total before refusing with 4100. 0 (the default) means
    /// "the open-file limit, raised to its hard maximum at start, minus a reserve of 256".
    pub max_connections: usize,
    /// Messages queued for one client before it is treated as too slow and closed with 4100.
    pub outbound_buffer_messages: usize,
    /// Bytes queued for one client before it is treated as too slow and closed with 4100.
    pub outbound_buffer_bytes: usize,
    /// Milliseconds a closing connection may take to flush its last bytes (and to finish a close
    /// handshake the client started) before the socket is dropped.
    pub client_disconnect_timeout_ms: u64,
    /// PEM certificate chain; with `tls_key_file`, the main port speaks TLS (`wss://`, `https://`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<String>,
    /// PEM private key for `tls_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<String>,
    /// How often (seconds) the certificate files are checked for changes; SIGHUP reloads at once.
    pub tls_reload_secs: u64,
    /// With TLS on, also listen for plain HTTP on this port and redirect to `https://` (0: off).
    pub http_redirect_port: u16,
    /// Addresses of reverse proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    /// From anyone else those headers are ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// On SIGTERM/SIGINT, connections are closed with 4200 at random moments within this many
    /// seconds (no reconnect stampede); the process exits a few seconds after the window.
    pub drain_window_secs: u64,
    /// Serve `/metrics` on this port instead of the main one (0: the main port). This port
    /// answers anyone who can reach it unless `metrics_token` is set.
    pub metrics_port: u16,
    /// When set, `/metrics` requires `Authorization: Bearer <metrics_token>`. When unset,
    /// `/metrics` on the main port answers only local requests that no proxy relayed
    /// (127.0.0.0/8, `::1`, without `X-Forwarded-For`/`Forwarded`/`X-Real-IP`), 403 otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<Secret>,
    /// Log filter in `tracing` `EnvFilter` syntax, e.g. `info` or `reverb_pusher=debug`.
    pub log_level: String,
    /// `pretty` (human-readable lines for a terminal) or `json` (one JSON object per line, for
    /// log collectors).
    pub log_format: LogFormat,
    /// How often (milliseconds) the server reads the apps' stored versions and applies changes
    /// made elsewhere (the `app` CLI commands, other nodes): created apps start, changed ones
    /// apply, deleted ones stop, without a restart.
    pub app_sync_interval_ms: u64,
    /// How often (seconds) the apps' message counts for the daily and monthly quota are written
    /// to the database; a crash loses at most this much of the count.
    pub usage_flush_secs: u64,
    /// How long (milliseconds) `channel_vacated` and `member_removed` webhooks wait; a channel
    /// or member back within it sends neither (a page reload sends nothing). 0 sends at once.
    pub webhook_vacate_delay_ms: u64,
    /// How long (milliseconds) events for one endpoint are gathered into one request (at most
    /// 100 events per request).
    pub webhook_batch_window_ms: u64,
    /// How long (milliseconds) a webhook request may take before it counts as failed.
    pub webhook_timeout_ms: u64,
    /// How long (seconds) a webhook that fails with a transport error, a 5xx, 408 or 429 is
    /// retried before it is dead-lettered.
    pub webhook_retry_horizon_secs: u64,
    /// The first retry delay (milliseconds); each next one doubles (up to 15 minutes), with
    /// jitter.
    pub webhook_backoff_base_ms: u64,
    /// Whether webhook URLs may name loopback, private or link-local IP addresses or
    /// `localhost`. Admins are trusted, so it is on; turn it off when webhook URLs come from
    /// people who must not reach your internal network. (Host names are not resolved to check.)
    pub webhook_allow_private_targets: bool,
    /// How long (hours) finished webhook deliveries stay in the delivery log.
    pub webhook_log_retention_hours: u64,
    /// How many finished webhook deliveries the delivery log keeps per endpoint (the newest);
    /// older ones are pruned even within `webhook_log_retention_hours`.
    pub webhook_log_max_deliveries: u64,
    /// After this many consecutive failed requests (transport error, timeout, 5xx, 408, 429) an
    /// endpoint's circuit breaker opens: its deliveries wait, untouched, for
    /// `webhook_breaker_cooldown_ms`, then one probe request decides. 0 never opens it.
    pub webhook_breaker_failures: u32,
    /// How long (milliseconds) an open circuit breaker pauses its endpoint before a probe.
    pub webhook_breaker_cooldown_ms: u64,
    /// How many webhook events each app keeps in memory while the database cannot take them;
    /// beyond it the oldest are dropped, counted (`outcome="dropped"`) and logged.
    pub webhook_max_buffered_events: usize,
    /// Whether per-app statistics are collected and stored (the dashboard's history, usage
    /// reports). Off, the counters still count (one atomic add each) but nothing is sampled
    /// or written.
    pub stats_enabled: bool,
    /// How often (seconds, 1-60) the statistics of the current minute are written to the
    /// database (all apps in one transaction); each minute's row also closes when the minute
    /// ends. A crash loses at most this much.
    pub stats_sample_secs: u64,
    /// How long (days) per-minute statistics are kept.
    pub stats_minute_retention_days: u64,
    /// How long (days) per-hour statistics are kept (396: 13 months, so last month's report
    /// and the same month a year ago stay available).
    pub stats_hour_retention_days: u64,
    /// How long (days) per-day statistics are kept; 0 keeps them forever.
    pub stats_day_retention_days: u64,
    /// This node's name in statistics rows (letters, digits, `.`, `_`, `-`, `:`; at most 64).
    /// Empty: the host name. Nodes sharing a database need different names.
    pub stats_node: String,
    /// The limits of newly created apps (admin API, panel, CLI). Each limit is optional here;
    /// a missing one takes its built-in default. Existing apps keep their own limits.
    pub default_app_limits: AppLimits,
    /// Cluster mode: the Redis (or Valkey) every node of the cluster shares, e.g.
    /// `redis://10.0.0.5:6379/` or `rediss://user:password@host:6380/` (TLS). Unset: one
    /// process, no Redis. All nodes must share the database too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_redis_url: Option<Secret>,
    /// Prefix of every Redis key and pub/sub channel of this cluster, so several deployments
    /// can share one Redis without seeing each other.
    pub cluster_key_prefix: String,
    /// This node's id in the cluster (letters, digits, `-`, `_`, `.`). Empty: a random one at
    /// each start (a restarted node is a new node; its old self is cleaned up by the others).
    pub cluster_node_id: String,
    /// How often (milliseconds) a node renews its lease in Redis.
    pub cluster_heartbeat_ms: u64,
    /// How long (milliseconds) a node's lease lasts: a node silent for this long is declared
    /// dead, and the others remove its presence members, counts and connections (sending
    /// `member_removed`). Bounds how long a crashed node's users stay listed.
    pub cluster_lease_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 6001,
            database_url: "sqlite://data/reverb-pusher.db".into(),
            database_pool_size: 8,
            database_timeout_secs: 5,
            master_key: None,
            cluster_redis_url: None,
            cluster_key_prefix: "reverb-pusher".into(),
            cluster_node_id: String::new(),
            cluster_heartbeat_ms: 2000,
            cluster_lease_ms: 8000,
            master_key_file: "data/master.key".into(),
            workers: 0,
            app_threads: 0,
            activity_timeout_secs: 120,
            pong_timeout_secs: 30,
            max_frame_bytes: 64 * 1024,
            max_request_body_bytes: 1024 * 1024,
            max_connections: 0,
            outbound_buffer_messages: 1024,
            outbound_buffer_bytes: 256 * 1024,
            client_disconnect_timeout_ms: 1000,
            tls_cert_file: None,
            tls_key_file: None,
            tls_reload_secs: 30,
            http_redirect_port: 0,
            trusted_proxies: Vec::new(),
            drain_window_secs: 10,
            metrics_port: 0,
            metrics_token: None,
            log_level: "info".into(),
            log_format: LogFormat::Pretty,
            app_sync_interval_ms: 1000,
            usage_flush_secs: 10,
            webhook_vacate_delay_ms: 3000,
            webhook_batch_window_ms: 50,
            webhook_timeout_ms: 5000,
            webhook_retry_horizon_secs: 86_400,
            webhook_backoff_base_ms: 1000,
            webhook_allow_private_targets: true,
            webhook_log_retention_hours: 168,
            webhook_log_max_deliveries: 10_000,
            webhook_breaker_failures: 5,
            webhook_breaker_cooldown_ms: 30_000,
            webhook_max_buffered_events: 10_000,
            stats_enabled: true,
            stats_sample_secs: 60,
            stats_minute_retention_days: 7,
            stats_hour_retention_days: 396,
            stats_day_retention_days: 1830,
            stats_node: String::new(),
            default_app_limits: AppLimits::default(),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid setting {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("invalid setting default_app_{0}")]
    DefaultLimit(#[from] LimitError),
}

impl Settings {
    /// Where the master key comes from, per these settings.
    pub fn key_source(&self) -> Result<crate::db::KeySource, crate::db::crypto::KeyError> {
        let key = self
            .master_key
            .as_ref()
            .map(|k| crate::db::crypto::MasterKey::from_base64(&k.0))
            .transpose()?;
        Ok(crate::db::KeySource {
            key,
            file: self.master_key_file.clone().into(),
        })
    }

    /// The TLS files, when TLS is on.
    pub fn tls_files(&self) -> Option<crate::tls::TlsFiles> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            _ => None,
        }
    }

    /// Pool sizing from these settings.
    pub fn pool_options(&self) -> crate::db::PoolOptions {
        crate::db::PoolOptions {
            max_size: self.database_pool_size,
            timeout: std::time::Duration::from_secs(self.database_timeout_secs),
        }
    }

    /// Loads defaults, then `file` if given (or `reverb-pusher.toml` if it exists), then the
    /// environment. Command-line overrides are applied by the caller with [`Figment::merge`].
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("reverb-pusher.toml")),
        }
        // Only setting names are read: other `REVERB_PUSHER_*` variables (the config file path,
        // build switches, test harness paths) are not settings, and [`unknown_env_vars`]
        // reports them instead of failing the start.
        figment.merge(Env::prefixed(ENV_PREFIX).only(&FIELDS))
    }

    /// `REVERB_PUSHER_*` variables that name no setting (probably typos), for a start-up warning.
    pub fn unknown_env_vars() -> Vec<String> {
        // Build switches (`server/build.rs`) and the config file path.
        const NOT_SETTINGS: [&str; 4] = ["CONFIG", "SKIP_UI", "MDBOOK", "REQUIRE_DOCS"];
        std::env::vars()
            .filter_map(|(name, _)| name.strip_prefix(ENV_PREFIX).map(str::to_owned))
            .filter(|rest| {
                !NOT_SETTINGS.contains(&rest.as_str())
                    && !FIELDS.contains(&rest.to_ascii_lowercase().as_str())
            })
            .map(|rest| format!("{ENV_PREFIX}{rest}"))
            .collect()
    }

    /// Extracts and validates.
    pub fn from_figment(figment: &Figment) -> Result<Self, SettingsError> {
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |field, reason| Err(SettingsError::Invalid { field, reason });
        if self.activity_timeout_secs == 0 {
            // pusher-js refuses a handshake whose activity_timeout is 0.
            return invalid("activity_timeout_secs", "must be at least 1");
        }
        if self.pong_timeout_secs == 0 {
            return invalid("pong_timeout_secs", "must be at least 1");
        }
        if self.max_frame_bytes < 1024 {
            return invalid("max_frame_bytes", "must be at least 1024");
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return invalid(
                "tls_cert_file",
                "set both tls_cert_file and tls_key_file, or neither",
            );
        }
        if self.tls_reload_secs == 0 {
            return invalid("tls_reload_secs", "must be at least 1");
        }
        if self.http_redirect_port != 0 && self.tls_cert_file.is_none() {
            return invalid(
                "http_redirect_port",
                "redirects to https need TLS (tls_cert_file)",
            );
        }
        if self.cluster_heartbeat_ms == 0 || self.cluster_lease_ms < 2 * self.cluster_heartbeat_ms {
            return invalid(
                "cluster_lease_ms",
                "must be at least twice cluster_heartbeat_ms (which must be at least 1)",
            );
        }
        if !self
            .cluster_node_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || self.cluster_node_id.len() > 64
            || self.cluster_key_prefix.is_empty()
            || self.cluster_key_prefix.contains(char::is_whitespace)
        {
            return invalid(
                "cluster_node_id",
                "node ids use letters, digits, '-', '_' and '.' (at most 64); the key prefix is \
                 non-empty without spaces",
            );
        }
        if self.database_pool_size == 0 {
            return invalid("database_pool_size", "must be at least 1");
        }
        if self.database_timeout_secs == 0 {
            return invalid("database_timeout_secs", "must be at least 1");
        }
        if self.outbound_buffer_messages == 0 {
            return invalid("outbound_buffer_messages", "must be at least 1");
        }
        if self.outbound_buffer_bytes < 1024 {
            return invalid("outbound_buffer_bytes", "must be at least 1024");
        }
        if self.usage_flush_secs == 0 {
            return invalid("usage_flush_secs", "must be at least 1");
        }
        if self.webhook_timeout_ms == 0 {
            return invalid("webhook_timeout_ms", "must be at least 1");
        }
        if self.webhook_backoff_base_ms == 0 {
            return invalid("webhook_backoff_base_ms", "must be at least 1");
        }
        if self.webhook_log_max_deliveries == 0 {
            return invalid("webhook_log_max_deliveries", "must be at least 1");
        }
        if self.webhook_max_buffered_events == 0 {
            return invalid("webhook_max_buffered_events", "must be at least 1");
        }
        if self.webhook_breaker_cooldown_ms == 0 {
            return invalid("webhook_breaker_cooldown_ms", "must be at least 1");
        }
        if !(1..=60).contains(&self.stats_sample_secs) {
            return invalid("stats_sample_secs", "must be between 1 and 60");
        }
        if self.stats_minute_retention_days == 0 {
            return invalid("stats_minute_retention_days", "must be at least 1");
        }
        if self.stats_hour_retention_days < 2 {
            return invalid("stats_hour_retention_days", "must be at least 2");
        }
        if self.stats_day_retention_days == 1 {
            return invalid(
                "stats_day_retention_days",
                "must be 0 (forever) or at least 2",
            );
        }
        if self.stats_node.len() > 64
            || !self
                .stats_node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
        {
            return invalid(
                "stats_node",
                "use at most 64 letters, digits, '.', '_', '-' or ':'",
            );
        }
        if self.app_sync_interval_ms == 0 {
            return invalid("app_sync_interval_ms", "must be at least 1");
        }
        self.default_app_limits.validate()?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment's own error type
mod tests {
    use super::*;
    use shared::limits::LIMITS;

    #[test]
    fn field_list_matches_the_struct() {
        let settings = Settings {
            master_key: Some(Secret("k".into())),
            metrics_token: Some(Secret("t".into())),
            cluster_redis_url: Some(Secret("redis://x".into())),
            tls_cert_file: Some("c".into()),
            tls_key_file: Some("k".into()),
            ..Settings::default()
        };
        let value = serde_json::to_value(settings).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut fields = FIELDS.to_vec();
        keys.sort_unstable();
        fields.sort_unstable();
        assert_eq!(keys, fields);
    }

    #[test]
    fn stray_env_vars_are_reported_not_fatal() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("REVERB_PUSHER_BIN", "/x");
            jail.set_env("REVERB_PUSHER_PROT", "1");
            jail.set_env("REVERB_PUSHER_PORT", "7002");
            let s = Settings::from_figment(&Settings::figment(None)).unwrap();
            assert_eq!(s.port, 7002);
            let unknown = Settings::unknown_env_vars();
            assert!(unknown.contains(&"REVERB_PUSHER_PROT".to_owned()));
            assert!(unknown.contains(&"REVERB_PUSHER_BIN".to_owned()));
            Ok(())
        });
    }

    #[test]
    fn example_file_lists_every_setting_at_its_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../reverb-pusher.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        for field in FIELDS {
            assert!(
                text.contains(&format!("{field} =")) || text.contains(&format!("[{field}]")),
                "{field} missing from the example file"
            );
        }
        let (_, limits) = text.split_once("[default_app_limits]").unwrap();
        for spec in &LIMITS {
            assert!(
                limits.contains(&format!("{} = {}\n", spec.field, spec.default)),
                "{} missing from [default_app_limits] in the example file",
                spec.field
            );
        }
        let parsed = Settings::from_figment(&Figment::from(Toml::file_exact(path))).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Settings::default()));
    }

    #[test]
    fn lists_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("REVERB_PUSHER_TRUSTED_PROXIES", "[10.0.0.5, \"::1\"]");
            let s = Settings::from_figment(&Settings::figment(None)).unwrap();
            assert_eq!(
                s.trusted_proxies,
                vec![
                    "10.0.0.5".parse::<std::net::IpAddr>().unwrap(),
                    "::1".parse().unwrap()
                ]
            );
            Ok(())
        });
    }

    #[test]
    fn master_key_is_never_printed() {
        let settings = Settings {
            master_key: Some(Secret("topsecret".into())),
            ..Settings::default()
        };
        assert!(!format!("{settings:?}").contains("topsecret"));
    }

    #[test]
    fn default_app_limits_from_a_file_and_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "reverb-pusher.toml",
                "[default_app_limits]\nmax_connections = 500\nmax_channels = 20",
            )?;
            let s = Settings::from_figment(&Settings::figment(None)).unwrap();
            assert_eq!(
                (
                    s.default_app_limits.max_connections,
                    s.default_app_limits.max_channels
                ),
                (500, 20)
            );
            assert_eq!(s.default_app_limits.max_channels_per_connection, 100);
            jail.set_env("REVERB_PUSHER_DEFAULT_APP_LIMITS", "{max_connections=7}");
            let s = Settings::from_figment(&Settings::figment(None)).unwrap();
            assert_eq!(s.default_app_limits.max_connections, 7);
            Ok(())
        });
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn layers_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("reverb-pusher.toml", "port = 7000\nlog_format = \"json\"")?;
            jail.set_env("REVERB_PUSHER_PORT", "7001");
            let s = Settings::from_figment(&Settings::figment(None)).unwrap();
            assert_eq!(s.port, 7001);
            assert_eq!(s.log_format, LogFormat::Json);
            Ok(())
        });
    }

    #[test]
    fn unknown_and_invalid_settings_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("reverb-pusher.toml", "prot = 7000")?;
            assert!(Settings::from_figment(&Settings::figment(None)).is_err());
            jail.create_file("reverb-pusher.toml", "activity_timeout_secs = 0")?;
            assert!(Settings::from_figment(&Settings::figment(None)).is_err());
            jail.create_file(
                "reverb-pusher.toml",
                "[default_app_limits]\nmax_channels_per_connection = 0",
            )?;
            let err = Settings::from_figment(&Settings::figment(None)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid setting default_app_limits.max_channels_per_connection must be \
                 between 1 and 10000"
            );
            Ok(())
        });
    }
}
