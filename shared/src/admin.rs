//! Request and response bodies of the admin JSON API (`/admin/api/`), shared by the server,
//! the admin UI and the tests. With the `openapi` feature they also describe themselves for
//! the OpenAPI document of the server.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Every error: a stable kind to match on, a sentence for people, and for validation errors
/// the field at fault.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Whether the first account still has to be created.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupStatus {
    pub needed: bool,
}

/// Creates the first account with the one-time token from the server log.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupRequest {
    pub token: String,
    pub email: String,
    pub name: String,
    pub password: String,
}

#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// The signed-in user and the token to send as `X-CSRF-Token` with every write.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: User,
    /// Absent when authenticated with an API token (no CSRF check applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// An admin user. Every user is an admin.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password: String,
}

/// Changes to a user; absent fields stay as they are.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Your current password: required when you change your own password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// An API token as listed (never its value).
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    /// The user who created it; requests made with it act as that user.
    pub user_id: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewApiToken {
    pub name: String,
}

/// A new token: `token` is shown this once; send it as `Authorization: Bearer <token>`.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedApiToken {
    #[serde(flatten)]
    pub info: ApiToken,
    pub token: String,
}

/// Per-app limits. Zero means unlimited for `max_connections` and
/// `max_client_events_per_second`.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppLimits {
    pub max_connections: u32,
    pub max_client_events_per_second: u32,
    pub max_channel_name_length: u32,
    pub max_event_name_length: u32,
    pub max_event_payload_bytes: u32,
    pub max_event_channels_at_once: u32,
    pub max_event_batch_size: u32,
    pub max_presence_members: u32,
    pub max_presence_member_size_bytes: u32,
    pub max_user_id_length: u32,
    pub cache_ttl_secs: u32,
}

/// Changes to limits; absent fields stay as they are.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppLimitsPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_client_events_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_channel_name_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_name_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_payload_bytes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_channels_at_once: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_batch_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_presence_members: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_presence_member_size_bytes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_user_id_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_secs: Option<u32>,
}

/// An app with its credentials and settings.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub name: String,
    pub key: String,
    pub secret: String,
    pub enabled: bool,
    /// Origins allowed to connect: exact origins, `*`, or `*.example.com`. Empty means any.
    pub allowed_origins: Vec<String>,
    pub client_events: bool,
    /// "Authorized connections only": connections must sign in (or join a private or presence
    /// channel) within `user_auth_timeout_secs`.
    pub require_user_auth: bool,
    pub user_auth_timeout_secs: u32,
    pub watchlist_events: bool,
    pub subscription_count_events: bool,
    pub limits: AppLimits,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_expires_at: Option<i64>,
    /// Open connections on this node.
    pub connections: u64,
}

/// Changes to an app's settings; absent fields stay as they are.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_events: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_user_auth: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_auth_timeout_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchlist_events: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_count_events: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AppLimitsPatch>,
}

/// A new app: a name, and optionally any setting (the rest take their defaults).
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewApp {
    pub name: String,
    #[serde(flatten)]
    pub settings: AppPatch,
}

#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RotateSecretRequest {
    /// Seconds during which the old secret keeps signing (0 or absent: it stops at once).
    #[serde(default)]
    pub grace_period_secs: Option<u32>,
}

/// One recorded change.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    /// `user:<email>` or `token:<name> (user:<email>)`, or `setup` / `cli`.
    pub actor: String,
    /// For example `app.update`, `user.delete`, `token.create`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// The state before the change, secrets masked.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub before: Option<Value>,
    /// The state after the change, secrets masked.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub after: Option<Value>,
}

/// A page of the audit log, newest first.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

/// What happened, in an app's debug console.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DebugKind {
    Connection,
    Disconnection,
    Subscribed,
    Unsubscribed,
    /// An event triggered through the REST API or the panel's event creator.
    ApiMessage,
    ClientEvent,
    /// A `pusher:error` or subscription error sent to a client.
    Error,
    /// From the console itself, for example that events were skipped because it fell behind.
    Notice,
}

impl DebugKind {
    pub const ALL: [DebugKind; 8] = [
        DebugKind::Connection,
        DebugKind::Disconnection,
        DebugKind::Subscribed,
        DebugKind::Unsubscribed,
        DebugKind::ApiMessage,
        DebugKind::ClientEvent,
        DebugKind::Error,
        DebugKind::Notice,
    ];

    /// The label people read.
    pub fn label(self) -> &'static str {
        match self {
            DebugKind::Connection => "Connection",
            DebugKind::Disconnection => "Disconnection",
            DebugKind::Subscribed => "Subscribed",
            DebugKind::Unsubscribed => "Unsubscribed",
            DebugKind::ApiMessage => "API message",
            DebugKind::ClientEvent => "Client event",
            DebugKind::Error => "Error",
            DebugKind::Notice => "Notice",
        }
    }
}

/// One entry of an app's live debug stream (`GET /admin/api/apps/{id}/debug`, server-sent
/// events, one JSON object per `data:` line).
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub kind: DebugKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The close code of a disconnection, or the code of an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl DebugEvent {
    /// An entry of `kind` with every optional field empty.
    pub fn new(kind: DebugKind, at_ms: i64) -> Self {
        Self {
            at_ms,
            kind,
            socket_id: None,
            channel: None,
            event: None,
            data: None,
            code: None,
            message: None,
        }
    }
}

/// An event sent from the panel's event creator.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggerEventRequest {
    pub channel: String,
    pub event: String,
    /// Sent to subscribers as is (usually JSON text).
    pub data: String,
}

/// What the event creator reached.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerEventResult {
    /// Connections subscribed to the channel on this node when the event was sent.
    pub subscription_count: u64,
}

/// Shortest and longest admin password, checked by the server and, before sending, the panel.
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;
/// Longest app or user name.
pub const MAX_NAME: usize = 100;

/// One per-app limit: its field in `AppLimits`, a label and help for people, and its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSpec {
    pub field: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub min: u32,
    pub max: u32,
}

/// Every limit with the range the server accepts.
pub const LIMITS: [LimitSpec; 11] = [
    LimitSpec {
        field: "max_connections",
        label: "Max connections",
        help: "0 means unlimited",
        min: 0,
        max: 10_000_000,
    },
    LimitSpec {
        field: "max_client_events_per_second",
        label: "Client events per second, per connection",
        help: "0 means unlimited",
        min: 0,
        max: 100_000,
    },
    LimitSpec {
        field: "max_channel_name_length",
        label: "Max channel name length",
        help: "characters",
        min: 1,
        max: 1024,
    },
    LimitSpec {
        field: "max_event_name_length",
        label: "Max event name length",
        help: "characters",
        min: 1,
        max: 1024,
    },
    LimitSpec {
        field: "max_event_payload_bytes",
        label: "Max event payload",
        help: "bytes",
        min: 1,
        max: 10 * 1024 * 1024,
    },
    LimitSpec {
        field: "max_event_channels_at_once",
        label: "Channels per triggered event",
        help: "",
        min: 1,
        max: 1000,
    },
    LimitSpec {
        field: "max_event_batch_size",
        label: "Events per batch",
        help: "",
        min: 1,
        max: 1000,
    },
    LimitSpec {
        field: "max_presence_members",
        label: "Members per presence channel",
        help: "",
        min: 1,
        max: 100_000,
    },
    LimitSpec {
        field: "max_presence_member_size_bytes",
        label: "Presence member info size",
        help: "bytes",
        min: 1,
        max: 64 * 1024,
    },
    LimitSpec {
        field: "max_user_id_length",
        label: "Max user id length",
        help: "characters",
        min: 1,
        max: 1024,
    },
    LimitSpec {
        field: "cache_ttl_secs",
        label: "Cache channel TTL",
        help: "seconds",
        min: 1,
        max: 7 * 86_400,
    },
];

/// The range of a limit field (`None` for an unknown field).
pub fn limit_spec(field: &str) -> Option<&'static LimitSpec> {
    LIMITS.iter().find(|l| l.field == field)
}

/// The accepted range of the user-auth timeout, in seconds.
pub const USER_AUTH_TIMEOUT_SECS: (u32, u32) = (1, 86_400);

impl AppLimits {
    /// A limit's value by field name.
    pub fn get(&self, field: &str) -> Option<u32> {
        Some(match field {
            "max_connections" => self.max_connections,
            "max_client_events_per_second" => self.max_client_events_per_second,
            "max_channel_name_length" => self.max_channel_name_length,
            "max_event_name_length" => self.max_event_name_length,
            "max_event_payload_bytes" => self.max_event_payload_bytes,
            "max_event_channels_at_once" => self.max_event_channels_at_once,
            "max_event_batch_size" => self.max_event_batch_size,
            "max_presence_members" => self.max_presence_members,
            "max_presence_member_size_bytes" => self.max_presence_member_size_bytes,
            "max_user_id_length" => self.max_user_id_length,
            "cache_ttl_secs" => self.cache_ttl_secs,
            _ => return None,
        })
    }
}

impl AppLimitsPatch {
    /// Sets a limit by field name; false for an unknown field.
    pub fn set(&mut self, field: &str, value: u32) -> bool {
        let slot = match field {
            "max_connections" => &mut self.max_connections,
            "max_client_events_per_second" => &mut self.max_client_events_per_second,
            "max_channel_name_length" => &mut self.max_channel_name_length,
            "max_event_name_length" => &mut self.max_event_name_length,
            "max_event_payload_bytes" => &mut self.max_event_payload_bytes,
            "max_event_channels_at_once" => &mut self.max_event_channels_at_once,
            "max_event_batch_size" => &mut self.max_event_batch_size,
            "max_presence_members" => &mut self.max_presence_members,
            "max_presence_member_size_bytes" => &mut self.max_presence_member_size_bytes,
            "max_user_id_length" => &mut self.max_user_id_length,
            "cache_ttl_secs" => &mut self.cache_ttl_secs,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_is_reachable_by_name() {
        let mut patch = AppLimitsPatch::default();
        for spec in &LIMITS {
            assert!(spec.min <= spec.max, "{}", spec.field);
            assert!(patch.set(spec.field, spec.max), "{}", spec.field);
        }
        let json = serde_json::to_value(&patch).unwrap();
        let set = json
            .as_object()
            .unwrap()
            .values()
            .filter(|v| !v.is_null())
            .count();
        assert_eq!(
            set,
            LIMITS.len(),
            "every field of the patch is named in LIMITS"
        );
        let limits: AppLimits = serde_json::from_value(json).unwrap();
        for spec in &LIMITS {
            assert_eq!(limits.get(spec.field), Some(spec.max));
        }
    }
}
