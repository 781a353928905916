//! An app's configuration as the running server holds it in memory.
//!
//! Supervisors publish it through an `ArcSwap`, so sessions and channels read the current
//! version without locks or database queries, and a reconfiguration applies at once.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;

/// Per-app limits. Defaults are Pusher's published values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLimits {
    /// Concurrent connections for this app; 0 means unlimited.
    pub max_connections: u32,
    /// Client events a connection may send each second; 0 means unlimited.
    pub max_client_events_per_second: u32,
    pub max_channel_name_length: u32,
    pub max_event_name_length: u32,
    /// Bytes of `data` in one event (REST or client event).
    pub max_event_payload_bytes: u32,
    pub max_event_channels_at_once: u32,
    pub max_event_batch_size: u32,
    pub max_presence_members: u32,
    /// Bytes of a presence member's serialised `user_info`.
    pub max_presence_member_size_bytes: u32,
    pub max_user_id_length: u32,
    /// How long a cache channel keeps its last event.
    pub cache_ttl_secs: u32,
    /// Channels one connection may be subscribed to at once.
    pub max_channels_per_connection: u32,
    /// Channels the app may have occupied on this node at once; 0 means unlimited.
    pub max_channels: u32,
}

impl Default for AppLimits {
    fn default() -> Self {
        Self {
            max_connections: 0,
            max_client_events_per_second: 10,
            max_channel_name_length: 200,
            max_event_name_length: 200,
            max_event_payload_bytes: 10 * 1024,
            max_event_channels_at_once: 100,
            max_event_batch_size: 10,
            max_presence_members: 100,
            max_presence_member_size_bytes: 1024,
            max_user_id_length: 128,
            cache_ttl_secs: 30 * 60,
            max_channels_per_connection: 100,
            max_channels: 0,
        }
    }
}

/// A secret being rotated out: it still signs until `expires_at` (unix seconds).
#[derive(Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at: i64,
}

impl fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreviousSecret")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Everything the protocol paths need to know about one app.
#[derive(Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// Numeric string, as in `/apps/{id}/...`.
    pub id: String,
    pub name: String,
    pub key: String,
    pub secret: String,
    /// The secret before the last rotation, during its grace period.
    pub previous_secret: Option<PreviousSecret>,
    pub enabled: bool,
    /// Origins allowed to open `WebSockets`; empty means any.
    pub allowed_origins: Vec<String>,
    pub client_events: bool,
    /// "Authorized connections only": a connection must sign in (or join a private or
    /// presence channel) within `user_auth_timeout_secs` or it is closed with 4009.
    pub require_user_auth: bool,
    pub user_auth_timeout_secs: u32,
    pub watchlist_events: bool,
    pub subscription_count_events: bool,
    pub limits: AppLimits,
}

impl fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("enabled", &self.enabled)
            .field("allowed_origins", &self.allowed_origins)
            .field("client_events", &self.client_events)
            .field("require_user_auth", &self.require_user_auth)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A fresh app secret from the OS-seeded CSPRNG.
pub fn new_secret() -> String {
    Alphanumeric
        .sample_string(&mut rand::rng(), 32)
        .to_lowercase()
}

impl AppConfig {
    /// A new app with fresh credentials from the OS-seeded CSPRNG.
    pub fn generate(name: &str) -> Self {
        let mut rng = rand::rng();
        Self {
            id: rng.random_range(100_000..1_000_000_000u64).to_string(),
            name: name.to_owned(),
            key: Alphanumeric.sample_string(&mut rng, 20).to_lowercase(),
            secret: Alphanumeric.sample_string(&mut rng, 32).to_lowercase(),
            previous_secret: None,
            enabled: true,
            allowed_origins: Vec::new(),
            client_events: true,
            require_user_auth: false,
            user_auth_timeout_secs: 30,
            watchlist_events: true,
            subscription_count_events: false,
            limits: AppLimits::default(),
        }
    }

    /// The secrets that sign valid requests at `now_unix`: the current one, and the previous
    /// one until its grace period ends.
    pub fn signing_secrets(&self, now_unix: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some(previous) = self
            .previous_secret
            .as_ref()
            .filter(|p| p.expires_at > now_unix)
        {
            secrets.push(previous.secret.as_str());
        }
        secrets
    }

    /// Whether a browser `Origin` may connect. Entries are exact origins, `*`, or
    /// `*.example.com` style wildcards matched against the host.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        if self.allowed_origins.is_empty() || self.allowed_origins.iter().any(|o| o == "*") {
            return true;
        }
        // Non-browser clients send no Origin; the check protects browsers only.
        let Some(origin) = origin else { return true };
        let host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        let host_no_port = host.rsplit_once(':').map_or(host, |(h, _)| h);
        self.allowed_origins.iter().any(|allowed| {
            if let Some(suffix) = allowed.strip_prefix("*.") {
                host_no_port.ends_with(&format!(".{suffix}"))
            } else {
                allowed == origin || allowed == host || allowed == host_no_port
            }
        })
    }
}

/// The live configuration of one app, shared by its supervisor, channels and sessions.
pub type SharedConfig = Arc<ArcSwap<AppConfig>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_are_distinct() {
        let a = AppConfig::generate("a");
        let b = AppConfig::generate("b");
        assert_ne!(a.key, b.key);
        assert_ne!(a.secret, b.secret);
        assert!(a.id.chars().all(|c| c.is_ascii_digit()));
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn previous_secret_signs_only_during_its_grace_period() {
        let mut app = AppConfig::generate("a");
        assert_eq!(app.signing_secrets(100), vec![app.secret.as_str()]);
        app.previous_secret = Some(PreviousSecret {
            secret: "old".into(),
            expires_at: 200,
        });
        assert_eq!(app.signing_secrets(100).len(), 2);
        assert_eq!(app.signing_secrets(200), vec![app.secret.as_str()]);
        assert!(!format!("{app:?}").contains("old"));
    }

    #[test]
    fn origins() {
        let mut app = AppConfig::generate("a");
        assert!(app.origin_allowed(Some("https://evil.test")));
        app.allowed_origins = vec!["https://app.test".into(), "*.example.com".into()];
        assert!(app.origin_allowed(Some("https://app.test")));
        assert!(app.origin_allowed(Some("https://a.example.com")));
        assert!(app.origin_allowed(Some("http://b.a.example.com:8080")));
        assert!(!app.origin_allowed(Some("https://example.com.evil.test")));
        assert!(!app.origin_allowed(Some("https://evil.test")));
        assert!(app.origin_allowed(None));
    }
}
