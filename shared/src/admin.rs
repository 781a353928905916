//! Request and response bodies of the admin JSON API (`/admin/api/`), shared by the server,
//! the admin UI and the tests. With the `openapi` feature they also describe themselves for
//! the OpenAPI document of the server.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

pub use crate::limits::{
    limit_spec, AppLimits, AppLimitsPatch, LimitError, LimitSpec, LIMITS, LIMIT_COUNT,
};

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
    /// The stored revision: it increases with every change, from any node or the CLI.
    #[serde(default)]
    pub version: i64,
    /// Messages used against the app's message quotas.
    #[serde(default)]
    pub usage: AppUsage,
}

/// An app's messages, counted as Pusher counts them (one per API event and channel, one per
/// client event, one per event delivered to a connection), for its daily and monthly quotas.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppUsage {
    /// This UTC day.
    pub messages_today: u64,
    /// This UTC calendar month.
    pub messages_this_month: u64,
    /// The quota that is used up, if one is: API events are refused with 429 until it resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_quota: Option<QuotaPeriod>,
}

/// A quota period.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Day,
    Month,
}

/// Changes to an app's settings; absent fields stay as they are.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// A new app: a name, optionally the credentials it keeps from another server (generated when
/// absent; see `shared::credentials` for what is accepted), and optionally any setting (the
/// rest take their defaults).
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewApp {
    pub name: String,
    /// An existing app id to keep; generated (numeric) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// An existing app key to keep; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// An existing app secret to keep; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
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
    /// A rate limit or quota refused something (a connection, an event, a subscription, an
    /// API call); `message` names the limit.
    RateLimited,
    /// From the console itself, for example that events were skipped because it fell behind.
    Notice,
}

impl DebugKind {
    pub const ALL: [DebugKind; 9] = [
        DebugKind::Connection,
        DebugKind::Disconnection,
        DebugKind::Subscribed,
        DebugKind::Unsubscribed,
        DebugKind::ApiMessage,
        DebugKind::ClientEvent,
        DebugKind::Error,
        DebugKind::RateLimited,
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
            DebugKind::RateLimited => "Rate limited",
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

/// The accepted range of the user-auth timeout, in seconds.
pub const USER_AUTH_TIMEOUT_SECS: (u32, u32) = (1, 86_400);

/// One node of a cluster, as the panel lists it.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    pub id: String,
    /// The address the node listens on (as it reports it).
    pub address: String,
    pub version: String,
    /// Its open WebSocket connections (reported with each heartbeat).
    pub connections: u64,
    /// Unix time (ms, Redis's clock) of its last heartbeat.
    pub last_heartbeat_ms: u64,
    /// Unix time (ms) it started.
    pub started_ms: u64,
    /// `alive`, or `dead` (its lease ran out; the others are removing its members and counts).
    pub state: String,
}

/// Cluster mode as this node sees it.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// False on a single node (no `cluster_redis_url`).
    pub enabled: bool,
    /// The node that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// `healthy`, or `degraded` (Redis unreachable: this node serves its own sockets only, and
    /// the list holds this node alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub nodes: Vec<ClusterNode>,
}
