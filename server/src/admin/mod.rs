//! The admin JSON API under `/admin/api/`: admin users and login, API tokens, apps (changed
//! live through their supervisors), the audit log, and the OpenAPI document that describes it.
//!
//! Reads of apps show the live, in-memory configuration. Every write goes to the database first
//! (503 if it is down, and then nothing changes), with its audit record, and only then to the
//! app's supervisor, where it takes effect; for apps, `crate::apps::AppService` does all three.

pub mod apps;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod console;
pub mod login;
pub mod stats;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod webhooks;

use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpRequest, HttpResponse};
use shared::admin as dto;
use shared::transfer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::db::{Db, DbError};
use crate::error::ApiError;

/// Admin-side state that lives in memory: the login throttle, the hashing cap, the setup token
/// and the revocation counter.
#[derive(Default)]
pub struct AdminState {
    pub throttle: throttle::LoginThrottle,
    pub hashing: throttle::Hashing,
    pub setup: auth::SetupToken,
    /// Where the setup token is written when stderr is not a terminal.
    pub setup_file: std::path::PathBuf,
    /// Moves whenever a session or token ends (logout, revocation, password change, user
    /// deleted), so that open debug streams check their own credential at once.
    pub revocations: std::sync::atomic::AtomicU64,
}

impl AdminState {
    /// Records that some credential ended.
    pub fn revoked(&self) {
        self.revocations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The revocation count, to compare with a later one.
    pub fn revocation_count(&self) -> u64 {
        self.revocations.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Largest admin API request body.
const MAX_BODY: usize = 64 * 1024;
/// Largest import request: a file of a few thousand apps.
const MAX_IMPORT_BODY: usize = 4 * 1024 * 1024;

/// JSON bodies up to `limit` bytes, with errors in the API's shape.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, req| json_error(err, req, limit))
}

fn json_error(err: JsonPayloadError, _: &HttpRequest, limit: usize) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            e.to_string(),
        ),
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::too_large(format!("The request body exceeds {limit} bytes"))
        }
        JsonPayloadError::ContentType => ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send JSON with Content-Type: application/json",
        ),
        other => ApiError::bad_request(format!("Invalid JSON body: {other}")),
    };
    api.into()
}

/// The admin route table; registered before the SPA's catch-all under `/admin/`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/api")
            .app_data(json_config(MAX_BODY))
            .route("/openapi.json", web::get().to(openapi))
            .route("/setup", web::get().to(login::setup_status))
            .route("/setup", web::post().to(login::setup))
            .route("/login", web::post().to(login::login))
            .route("/logout", web::post().to(login::logout))
            .route("/me", web::get().to(login::me))
            .route("/users", web::get().to(users::list_users))
            .route("/users", web::post().to(users::create_user))
            .route("/users/{id}", web::patch().to(users::update_user))
            .route("/users/{id}", web::delete().to(users::delete_user))
            .route("/tokens", web::get().to(tokens::list_tokens))
            .route("/tokens", web::post().to(tokens::create_token))
            .route("/tokens/{id}", web::delete().to(tokens::revoke_token))
            .route("/apps", web::get().to(apps::list_apps))
            .route("/apps", web::post().to(apps::create_app))
            .service(
                web::resource("/apps/import")
                    .app_data(json_config(MAX_IMPORT_BODY))
                    .route(web::post().to(apps::import_apps)),
            )
            .route("/apps/{id}", web::get().to(apps::get_app))
            .route("/apps/{id}", web::patch().to(apps::update_app))
            .route("/apps/{id}", web::delete().to(apps::delete_app))
            .route(
                "/apps/{id}/rotate-secret",
                web::post().to(apps::rotate_app_secret),
            )
            .route("/apps/{id}/debug", web::get().to(console::stream))
            .route("/apps/{id}/events", web::post().to(console::trigger))
            .route(
                "/apps/{id}/webhooks",
                web::get().to(webhooks::list_endpoints),
            )
            .route(
                "/apps/{id}/webhooks",
                web::post().to(webhooks::create_endpoint),
            )
            .route(
                "/apps/{id}/webhooks/{endpoint_id}",
                web::patch().to(webhooks::update_endpoint),
            )
            .route(
                "/apps/{id}/webhooks/{endpoint_id}",
                web::delete().to(webhooks::delete_endpoint),
            )
            .route(
                "/apps/{id}/webhooks/{endpoint_id}/test",
                web::post().to(webhooks::test_endpoint),
            )
            .route(
                "/apps/{id}/webhook-deliveries",
                web::get().to(webhooks::list_deliveries),
            )
            .route(
                "/apps/{id}/webhook-deliveries/replay",
                web::post().to(webhooks::replay_dead),
            )
            .route(
                "/apps/{id}/webhook-deliveries/{delivery_id}/replay",
                web::post().to(webhooks::replay_one),
            )
            .route("/audit", web::get().to(audit::list_audit))
            .route("/cluster", web::get().to(cluster::status))
            .route("/stats/series", web::get().to(stats::server_series))
            .route("/stats/summary", web::get().to(stats::server_summary))
            .route("/stats/apps", web::get().to(stats::app_table))
            .route("/stats/usage/{month}", web::get().to(stats::server_usage))
            .route("/stats/health", web::get().to(stats::server_health))
            .route("/stats/live", web::get().to(stats::live))
            .route("/apps/{id}/stats/series", web::get().to(stats::app_series))
            .route(
                "/apps/{id}/stats/summary",
                web::get().to(stats::app_summary),
            )
            .route(
                "/apps/{id}/stats/usage/{month}",
                web::get().to(stats::app_usage),
            )
            .route(
                "/apps/{id}/stats/errors",
                web::get().to(stats::recent_errors),
            )
            .default_service(web::to(|| async {
                actix_web::ResponseError::error_response(&ApiError::not_found(
                    "No such admin API route",
                ))
            })),
    );
}

/// An audit record of one change (see [`AuditRow::new`]).
pub use crate::db::admin::AuditRow;

/// Runs a change and its audit record on the blocking pool.
pub async fn write<T, F>(db: &Db, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&Db) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    Ok(crate::db::blocking(db, f).await?)
}

/// Checks a required text field's length.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::validation(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(AdminApiDoc::openapi())
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "Set by POST /admin/api/login; writes also need the X-CSRF-Token header",
            ))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document of the admin API, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Reverb Pusher admin API",
        description = "Manage apps, admin users, API tokens and read the audit log. Authenticate with the session cookie from /login (send X-CSRF-Token on writes) or with Authorization: Bearer <API token>. Errors are {error, message, field?}."
    ),
    paths(
        login::setup_status, login::setup, login::login, login::logout, login::me,
        users::list_users, users::create_user, users::update_user, users::delete_user,
        tokens::list_tokens, tokens::create_token, tokens::revoke_token,
        apps::list_apps, apps::create_app, apps::import_apps, apps::get_app, apps::update_app, apps::delete_app,
        apps::rotate_app_secret, console::stream, console::trigger,
        audit::list_audit, cluster::status,
        webhooks::list_endpoints, webhooks::create_endpoint, webhooks::update_endpoint,
        webhooks::delete_endpoint, webhooks::test_endpoint, webhooks::list_deliveries,
        webhooks::replay_dead, webhooks::replay_one,
        stats::server_series, stats::app_series, stats::server_summary, stats::app_summary,
        stats::app_table, stats::server_usage, stats::app_usage, stats::recent_errors,
        stats::server_health, stats::live,
    ),
    components(schemas(
        dto::ErrorBody, dto::SetupStatus, dto::SetupRequest, dto::LoginRequest, dto::SessionInfo,
        dto::User, dto::NewUser, dto::UserPatch, dto::ApiToken, dto::NewApiToken,
        dto::CreatedApiToken, dto::App, dto::AppLimits, dto::AppLimitsPatch, dto::AppPatch,
        dto::NewApp, dto::RotateSecretRequest, dto::AuditEntry, dto::AuditPage,
        dto::DebugKind, dto::DebugEvent, dto::TriggerEventRequest, dto::TriggerEventResult,
        dto::AppUsage, dto::QuotaPeriod, dto::ClusterNode, dto::ClusterStatus,
        transfer::Format, transfer::ImportRequest, transfer::ImportAction,
        transfer::ImportedAppReport, transfer::ImportReport,
        webhooks::WebhookEndpoint, webhooks::WebhookEndpointInput, webhooks::WebhookDelivery,
        webhooks::ReplayResult, webhooks::BreakerInfo, webhooks::DeliveryStats,
        webhooks::ReplayResult,
        shared::stats::Counts, shared::stats::StatsPoint, shared::stats::StatsSeries,
        shared::stats::WeekHour, shared::stats::StatsSummary, shared::stats::AppStatsRow,
        shared::stats::AppStatsTable, shared::stats::UsageRow, shared::stats::UsageReport,
        shared::stats::LiveStats, shared::stats::ServerHealth, shared::stats::RecentError,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "session", description = "First-run setup, login and logout"),
        (name = "users", description = "Admin users (every user is an admin)"),
        (name = "tokens", description = "API tokens for automation"),
        (name = "apps", description = "Apps; every change applies at once to that app only"),
        (name = "audit", description = "The log of configuration changes"),
        (name = "cluster", description = "Cluster mode: the nodes sharing this server's apps"),
        (name = "webhooks", description = "Webhook endpoints, the delivery log, dead letters and replay"),
        (name = "stats", description = "Statistics: time series, peaks, per-app totals, monthly usage, recent errors, health and live numbers"),
    )
)]
pub struct AdminApiDoc;
