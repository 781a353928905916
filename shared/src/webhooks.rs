//! The webhook bodies of the admin API (`/admin/api/apps/{id}/webhooks…`): endpoints with
//! their circuit breaker and delivery statistics, the delivery log and replay. Shared by the
//! server (which serves them), the panel (which shows them) and the tests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Every event type, as endpoints name them.
pub const EVENT_TYPES: [&str; 7] = [
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
    "subscription_count",
];

/// Shortest and longest signing secret an admin may set.
pub const SIGNING_SECRET_LEN: (usize, usize) = (16, 128);

/// A webhook endpoint of an app.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    /// Which events it receives: `channel_occupied`, `channel_vacated`, `member_added`,
    /// `member_removed`, `client_event`, `cache_miss`, `subscription_count`.
    pub event_types: Vec<String>,
    /// Only channels whose name starts with this.
    pub channel_prefix: Option<String>,
    /// Only channels whose name ends with this.
    pub channel_suffix: Option<String>,
    /// Extra request headers; `Content-Type`, `X-Pusher-Key` and `X-Pusher-Signature` are the
    /// server's own and cannot be set here.
    pub headers: BTreeMap<String, String>,
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// The endpoint's own signing secret, only in the answer to the request that set or
    /// generated it (it is never shown again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// The last characters of the endpoint's own signing secret (`••••abcd`); `null` when
    /// requests are signed with the app secret.
    pub signing_secret_hint: Option<String>,
    /// The endpoint's circuit breaker on this node.
    pub breaker: BreakerInfo,
    /// Its deliveries created in the last 24 hours, by state.
    pub stats: DeliveryStats,
}

/// An endpoint's circuit breaker: `closed` (requests flow), `open` (paused after consecutive
/// failures until `retry_at_ms`) or `half_open` (one probe request decides).
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerInfo {
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Consecutive failed requests.
    pub consecutive_failures: u32,
    /// When an open breaker lets a probe through (unix milliseconds).
    pub retry_at_ms: Option<i64>,
    /// How often it opened since the server started.
    pub opens: u64,
}

impl Default for BreakerInfo {
    fn default() -> Self {
        Self {
            state: "closed".into(),
            consecutive_failures: 0,
            retry_at_ms: None,
            opens: 0,
        }
    }
}

/// Deliveries of one endpoint by state, over a period.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryStats {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
    pub dead: i64,
    /// `delivered` out of the finished ones (`delivered + failed + dead`); `null` when none
    /// finished.
    pub success_rate: Option<f64>,
}

/// A new endpoint, or a change of one (fields left out keep their value; a new endpoint needs
/// `url` and `event_types`, and is enabled unless told otherwise). An empty prefix or suffix
/// removes that filter.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Sets the endpoint's own signing secret (16 to 128 printable ASCII characters, no
    /// spaces); an empty string removes it, so requests are signed with the app secret again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// `true` generates a new random signing secret (returned once, in this answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_signing_secret: Option<bool>,
}

/// One webhook request (a batch of events for one endpoint) and what became of it.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: String,
    pub endpoint_id: String,
    /// When it was created (unix milliseconds).
    pub created_at_ms: i64,
    /// `pending` (waiting or being retried), `delivered`, `failed` (refused by the endpoint,
    /// not retried) or `dead` (retries ran out).
    pub state: String,
    pub events: i32,
    /// The request body as sent.
    pub body: String,
    pub attempts: i32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at_ms: Option<i64>,
    pub last_attempt_at_ms: Option<i64>,
    /// The last answer's HTTP status.
    pub status_code: Option<i32>,
    pub latency_ms: Option<i64>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The first bytes of the last answer.
    pub response: Option<String>,
}

/// How many deliveries were put back in the outbox.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayResult {
    pub replayed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_sends_only_what_is_set() {
        let input = WebhookEndpointInput {
            enabled: Some(false),
            ..WebhookEndpointInput::default()
        };
        assert_eq!(
            serde_json::to_string(&input).unwrap(),
            r#"{"enabled":false}"#
        );
        assert!(serde_json::from_str::<WebhookEndpointInput>(r#"{"secret":"x"}"#).is_err());
    }
}
