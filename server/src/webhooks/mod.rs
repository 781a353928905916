//! Webhooks: each app's events sent (HTTP POST) to its endpoints in Pusher's format, durably,
//! at least once.
//!
//! The path of an event:
//! 1. **Producer** ([`producer`]): one task per app that has an enabled endpoint reads the
//!    app's event stream through a bounded [`crate::events::AppEvents::queue`] (the hot path
//!    never waits: a full queue drops and counts), turns events into Pusher's event objects,
//!    holds `channel_vacated`/`member_removed` back for `webhook_vacate_delay_ms` (cancelled if
//!    the channel or member comes back), filters per endpoint, gathers per endpoint for
//!    `webhook_batch_window_ms` (at most [`MAX_BATCH`] events) and writes the batches to the
//!    outbox in one transaction. While the database is down, batches wait in memory up to
//!    `webhook_max_buffered_events` events; older ones are dropped, counted and logged.
//! 2. **Outbox** (`webhook_deliveries`, state `pending`): survives restarts and crashes.
//! 3. **Worker** ([`delivery`]): claims due rows, signs each body with the app secret at send
//!    time, POSTs it, and records the outcome in the same row, which is then the delivery log:
//!    `delivered`, `failed` (a 4xx other than 408/429: not retried), or `pending` again with a
//!    backoff, until the retry horizon makes it `dead`. Dead ones can be replayed.
//!
//! The endpoint list lives in memory ([`Webhooks::refresh`] reloads it after every change made
//! here and periodically, for changes made by other processes). One node delivers: this module
//! does not yet coordinate several nodes on one database.

pub mod breaker;
pub mod delivery;
pub mod producer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::actors::directory::Directory;
use crate::db::webhooks::EndpointRow;
use crate::db::{Db, DbError};
use crate::node::NodeState;
use crate::settings::Settings;

/// Most events in one request.
pub const MAX_BATCH: usize = 100;
/// Events waiting between the hot path and an app's producer.
pub const QUEUE_CAPACITY: usize = 8192;

/// Every event type, as endpoints name them.
pub use shared::webhooks::EVENT_TYPES;

/// Headers the server sets itself; an endpoint's custom headers cannot replace them.
pub const RESERVED_HEADERS: [&str; 3] = ["content-type", "x-pusher-key", "x-pusher-signature"];

/// One event object as Pusher sends it (§6.2 of the protocol notes), fields in Pusher's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEvent {
    pub name: &'static str,
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<usize>,
}

impl WebhookEvent {
    pub fn new(name: &'static str, channel: impl Into<String>) -> Self {
        Self {
            name,
            channel: channel.into(),
            event: None,
            data: None,
            socket_id: None,
            user_id: None,
            subscription_count: None,
        }
    }
}

/// A request body: `{"time_ms":…,"events":[…]}`.
pub fn body(time_ms: i64, events: &[WebhookEvent]) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        time_ms: i64,
        events: &'a [WebhookEvent],
    }
    serde_json::to_string(&Body { time_ms, events }).expect("serialisable body")
}

/// The body with `time_ms` set to `now_ms`: a request carries the time it is sent, so that a
/// retry or a replay hours later still passes SDKs that refuse old webhooks (the Python SDK
/// refuses any more than 5 minutes off). Bodies this server did not write are left alone.
pub fn restamp(stored: &str, now_ms: i64) -> String {
    const HEAD: &str = r#"{"time_ms":"#;
    let Some(rest) = stored.strip_prefix(HEAD) else {
        return stored.to_owned();
    };
    match rest.find(',') {
        Some(end) if end > 0 && rest[..end].bytes().all(|b| b.is_ascii_digit()) => {
            format!("{HEAD}{now_ms}{}", &rest[end..])
        }
        _ => stored.to_owned(),
    }
}

/// `X-Pusher-Signature`: the hex HMAC-SHA256 of the raw body under the secret.
pub fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// An endpoint's own signing secret; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(pub String);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl SigningSecret {
    /// A fresh random secret: 32 lowercase hex characters, like app secrets.
    pub fn generate() -> Self {
        Self(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// What the admin API shows instead: the last four characters.
    pub fn masked(&self) -> String {
        let tail: String = self
            .0
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("••••{tail}")
    }
}

/// An endpoint, parsed from its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub app_id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub channel_prefix: Option<String>,
    pub channel_suffix: Option<String>,
    pub headers: Vec<(String, String)>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Signs its requests instead of the app secret when set.
    pub signing_secret: Option<SigningSecret>,
}

impl Endpoint {
    pub fn from_row(row: EndpointRow) -> Self {
        let event_types = serde_json::from_str(&row.event_types).unwrap_or_default();
        let headers: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&row.headers).unwrap_or_default();
        Self {
            id: row.id,
            app_id: row.app_id,
            url: row.url,
            event_types,
            channel_prefix: row.channel_prefix,
            channel_suffix: row.channel_suffix,
            headers: headers
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                .collect(),
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
            signing_secret: row.signing_secret.map(SigningSecret),
        }
    }

    pub fn to_row(&self) -> EndpointRow {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        EndpointRow {
            id: self.id.clone(),
            app_id: self.app_id.clone(),
            url: self.url.clone(),
            event_types: serde_json::to_string(&self.event_types).expect("serialisable"),
            channel_prefix: self.channel_prefix.clone(),
            channel_suffix: self.channel_suffix.clone(),
            headers: serde_json::Value::Object(headers).to_string(),
            enabled: self.enabled,
            created_at: self.created_at,
            updated_at: self.updated_at,
            signing_secret: self.signing_secret.as_ref().map(|s| s.0.clone()),
        }
    }

    /// Whether this endpoint wants the event (type, then channel prefix and suffix; all must match).
    pub fn wants(&self, event: &WebhookEvent) -> bool {
        self.enabled
            && self.event_types.iter().any(|t| t == event.name)
            && self
                .channel_prefix
                .as_deref()
                .is_none_or(|p| event.channel.starts_with(p))
            && self
                .channel_suffix
                .as_deref()
                .is_none_or(|s| event.channel.ends_with(s))
    }
}

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL is not valid")]
    Invalid,
    #[error("the URL must start with http:// or https://")]
    Scheme,
    #[error("the URL names a loopback, private or link-local address, which this server does not allow (webhook_allow_private_targets)")]
    Private,
}

/// Checks a webhook URL: absolute http(s) with a host and no credentials; loopback, private
/// and link-local IP addresses and `localhost` only when `allow_private`.
pub fn validate_url(url: &str, allow_private: bool) -> Result<(), UrlError> {
    let uri: actix_web::http::Uri = url.parse().map_err(|_| UrlError::Invalid)?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(UrlError::Scheme),
    }
    let authority = uri.authority().ok_or(UrlError::Invalid)?;
    if authority.as_str().contains('@') {
        return Err(UrlError::Invalid);
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(UrlError::Invalid);
    }
    if !allow_private && is_private_host(host) {
        return Err(UrlError::Private);
    }
    Ok(())
}

fn is_private_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64
        }
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private() || v4.is_link_local())
        }
        Err(_) => false,
    }
}

/// The webhook settings, copied out of [`Settings`].
#[derive(Debug, Clone)]
pub struct Config {
    pub vacate_delay: Duration,
    pub batch_window: Duration,
    pub timeout: Duration,
    pub retry_horizon: Duration,
    pub backoff_base: Duration,
    pub allow_private_targets: bool,
    pub log_retention: Duration,
    pub log_max_deliveries: u64,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub max_buffered_events: usize,
}

impl Config {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            vacate_delay: Duration::from_millis(s.webhook_vacate_delay_ms),
            batch_window: Duration::from_millis(s.webhook_batch_window_ms),
            timeout: Duration::from_millis(s.webhook_timeout_ms.max(1)),
            retry_horizon: Duration::from_secs(s.webhook_retry_horizon_secs),
            backoff_base: Duration::from_millis(s.webhook_backoff_base_ms.max(1)),
            allow_private_targets: s.webhook_allow_private_targets,
            log_retention: Duration::from_secs(s.webhook_log_retention_hours * 3600),
            log_max_deliveries: s.webhook_log_max_deliveries.max(1),
            breaker_failures: s.webhook_breaker_failures,
            breaker_cooldown: Duration::from_millis(s.webhook_breaker_cooldown_ms.max(1)),
            max_buffered_events: s.webhook_max_buffered_events,
        }
    }
}

struct Inner {
    db: Db,
    directory: Directory,
    node: Arc<NodeState>,
    config: Config,
    /// Every endpoint by app id.
    endpoints: RwLock<HashMap<String, Arc<Vec<Endpoint>>>>,
    /// The running producers by app id.
    producers: Mutex<HashMap<String, producer::Running>>,
    /// Each endpoint's circuit breaker (only endpoints that exist: [`Webhooks::refresh`] drops
    /// the others).
    breakers: Mutex<HashMap<String, breaker::Breaker>>,
    /// Wakes the delivery worker (new rows, a finished delivery).
    wake: tokio::sync::Notify,
    /// Tells the worker to stop.
    stop: tokio::sync::Notify,
    worker: Mutex<Option<actix_web::rt::task::JoinHandle<()>>>,
}

/// The webhook service: endpoints, producers and the delivery worker. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks(Arc<Inner>);

impl Webhooks {
    /// Loads the endpoints, starts a producer for every app that has an enabled one and starts
    /// the delivery worker. Must run on the actix system thread (the HTTP client lives there).
    pub async fn start(
        db: Db,
        directory: Directory,
        node: Arc<NodeState>,
        config: Config,
    ) -> Result<Self, DbError> {
        let webhooks = Self(Arc::new(Inner {
            db,
            directory,
            node,
            config,
            endpoints: RwLock::default(),
            producers: Mutex::default(),
            breakers: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            stop: tokio::sync::Notify::new(),
            worker: Mutex::default(),
        }));
        webhooks.refresh().await?;
        let worker = actix_web::rt::spawn(delivery::run(webhooks.clone()));
        *webhooks
            .0
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(worker);
        Ok(webhooks)
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// An app's endpoints, as last loaded.
    pub fn endpoints_of(&self, app_id: &str) -> Arc<Vec<Endpoint>> {
        self.0
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(app_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether any app has an enabled endpoint (else the delivery worker has nothing to do).
    pub fn any_enabled(&self) -> bool {
        self.0
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|endpoints| endpoints.iter().any(|e| e.enabled))
    }

    /// An endpoint's circuit breaker as it stands (closed for one never used).
    pub fn breaker(&self, endpoint_id: &str) -> breaker::Breaker {
        self.0
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Ends the cooldown of the app's paused endpoints (one, or all of the app's), so that a
    /// replay or test event is tried at once, as a probe; a changed endpoint (`reset`) starts
    /// over with a closed breaker. Wakes the worker.
    pub fn nudge(&self, app_id: &str, endpoint_id: Option<&str>, reset: bool) {
        let ids: Vec<String> = self
            .endpoints_of(app_id)
            .iter()
            .filter(|e| endpoint_id.is_none_or(|id| id == e.id))
            .map(|e| e.id.clone())
            .collect();
        let now = crate::events::now_ms();
        let mut breakers = self
            .0
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            if reset {
                breakers.remove(&id);
            } else if let Some(b) = breakers.get_mut(&id) {
                b.probe_now(now);
            }
        }
        drop(breakers);
        self.wake();
    }

    fn endpoint(&self, app_id: &str, id: &str) -> Option<Endpoint> {
        self.endpoints_of(app_id)
            .iter()
            .find(|e| e.id == id)
            .cloned()
    }

    /// Reloads the endpoints and starts or stops producers to match: an app gets one while it
    /// runs here and has an enabled endpoint.
    pub async fn refresh(&self) -> Result<(), DbError> {
        let rows = crate::db::blocking(&self.0.db, Db::webhook_endpoints).await?;
        let mut by_app: HashMap<String, Vec<Endpoint>> = HashMap::new();
        for row in rows {
            let endpoint = Endpoint::from_row(row);
            by_app
                .entry(endpoint.app_id.clone())
                .or_default()
                .push(endpoint);
        }
        let wanted: Vec<String> = by_app
            .iter()
            .filter(|(_, endpoints)| endpoints.iter().any(|e| e.enabled))
            .map(|(id, _)| id.clone())
            .collect();
        self.0
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| by_app.values().flatten().any(|e| e.id == *id));
        *self
            .0
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = by_app
            .into_iter()
            .map(|(id, endpoints)| (id, Arc::new(endpoints)))
            .collect();
        let mut stopping = Vec::new();
        {
            let mut producers = self
                .0
                .producers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut keep = HashMap::new();
            for app_id in wanted {
                let Some(handle) = self.0.directory.by_id(&app_id) else {
                    continue;
                };
                match producers.remove(&app_id) {
                    Some(running) if running.events.same_as(&handle.events) => {
                        keep.insert(app_id, running);
                    }
                    other => {
                        stopping.extend(other);
                        let running =
                            producer::spawn(self.clone(), app_id.clone(), handle.events.clone());
                        keep.insert(app_id, running);
                    }
                }
            }
            stopping.extend(producers.drain().map(|(_, running)| running));
            *producers = keep;
        }
        for running in stopping {
            running.stop().await;
        }
        Ok(())
    }

    /// Wakes the delivery worker.
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// Stops the producers (each writes what it holds to the outbox first, delayed events
    /// included) and then the worker. Deliveries in flight are retried after a restart.
    pub async fn shutdown(&self) {
        let producers: Vec<producer::Running> = self
            .0
            .producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, running)| running)
            .collect();
        for running in producers {
            running.stop().await;
        }
        self.0.stop.notify_one();
        let worker = self
            .0
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            let _ = actix_web::rt::time::timeout(Duration::from_secs(2), worker).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_verified_vector() {
        let body = r#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test-channel"}]}"#;
        assert_eq!(
            sign("7ad3773142a6692b25b8", body),
            "5dd6562a9f744b72a688bcdfea41c14c2c56d12c44c99e32c08face4cc1e8aeb"
        );
        assert_eq!(
            super::body(
                1_327_078_148_132,
                &[WebhookEvent::new("channel_occupied", "test-channel")]
            ),
            body
        );
    }

    #[test]
    fn a_body_is_restamped_with_the_time_it_is_sent() {
        let stored = body(1_000, &[WebhookEvent::new("channel_occupied", "c")]);
        assert_eq!(
            restamp(&stored, 1_700_000_000_123),
            r#"{"time_ms":1700000000123,"events":[{"name":"channel_occupied","channel":"c"}]}"#
        );
        assert_eq!(restamp("not ours", 5), "not ours");
        assert_eq!(
            restamp(r#"{"time_ms":x,"events":[]}"#, 5),
            r#"{"time_ms":x,"events":[]}"#
        );
    }

    #[test]
    fn urls_are_http_and_private_targets_follow_the_setting() {
        assert!(validate_url("https://example.com/hook", false).is_ok());
        assert_eq!(
            validate_url("ftp://example.com/", true),
            Err(UrlError::Scheme)
        );
        assert_eq!(validate_url("not a url", true), Err(UrlError::Invalid));
        assert_eq!(
            validate_url("http://user:pw@example.com/", true),
            Err(UrlError::Invalid)
        );
        for private in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://169.254.169.254/",
            "http://[::1]/",
            "http://[fd00::1]/",
        ] {
            assert_eq!(
                validate_url(private, false),
                Err(UrlError::Private),
                "{private}"
            );
            assert!(validate_url(private, true).is_ok(), "{private}");
        }
    }

    #[test]
    fn filters_combine_type_prefix_and_suffix() {
        let endpoint = Endpoint {
            id: "e".into(),
            app_id: "a".into(),
            url: "http://x/".into(),
            event_types: vec!["channel_occupied".into()],
            channel_prefix: Some("private-".into()),
            channel_suffix: Some("-orders".into()),
            headers: Vec::new(),
            enabled: true,
            created_at: 0,
            updated_at: 0,
            signing_secret: None,
        };
        assert!(endpoint.wants(&WebhookEvent::new("channel_occupied", "private-x-orders")));
        assert!(!endpoint.wants(&WebhookEvent::new("channel_vacated", "private-x-orders")));
        assert!(!endpoint.wants(&WebhookEvent::new("channel_occupied", "x-orders")));
        assert!(!endpoint.wants(&WebhookEvent::new("channel_occupied", "private-x")));
    }
}
