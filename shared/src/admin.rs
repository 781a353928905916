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
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub max_connections: Option<u32>,
    pub max_client_events_per_second: Option<u32>,
    pub max_channel_name_length: Option<u32>,
    pub max_event_name_length: Option<u32>,
    pub max_event_payload_bytes: Option<u32>,
    pub max_event_channels_at_once: Option<u32>,
    pub max_event_batch_size: Option<u32>,
    pub max_presence_members: Option<u32>,
    pub max_presence_member_size_bytes: Option<u32>,
    pub max_user_id_length: Option<u32>,
    pub cache_ttl_secs: Option<u32>,
}

/// An app with its credentials and settings.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub allowed_origins: Option<Vec<String>>,
    pub client_events: Option<bool>,
    pub require_user_auth: Option<bool>,
    pub user_auth_timeout_secs: Option<u32>,
    pub watchlist_events: Option<bool>,
    pub subscription_count_events: Option<bool>,
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
