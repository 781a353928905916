//! Apps: their configuration as the running server holds it in memory ([`AppConfig`]), how a
//! change is checked ([`patch`]), and the one place that changes an app ([`service`]: store,
//! audit, apply) together with the loop that picks up changes made elsewhere ([`sync`]); moving
//! apps in from other servers and out again ([`transfer`]: `app import` / `app export`).
//!
//! Supervisors publish the configuration through an `ArcSwap`, so sessions and channels read the
//! current version without locks or database queries, and a reconfiguration applies at once.
//! The limits are `shared::limits::AppLimits`, the one declaration of every limit.

pub mod patch;
pub mod service;
pub mod sync;
pub mod transfer;

pub use patch::{apply_patch, ConfigError};
pub use service::{AppError, AppService, ChosenCredentials, LiveApps};
pub use shared::limits::AppLimits;

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;

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
    /// The stored revision this configuration is (1 when created). Every stored change
    /// increases it by one; the registry never replaces a configuration with an older one.
    pub version: i64,
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
            .field("version", &self.version)
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
    /// A new app with fresh credentials from the OS-seeded CSPRNG and the built-in limits.
    pub fn generate(name: &str) -> Self {
        Self::generate_with(name, AppLimits::default())
    }

    /// A new app with fresh credentials and the given limits.
    pub fn generate_with(name: &str, limits: AppLimits) -> Self {
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
            limits,
            version: 1,
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
