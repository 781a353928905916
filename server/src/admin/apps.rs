//! Apps: list (with live connection counts), create, read, update, rotate secret, delete.
//!
//! Reads show the live, in-memory configuration. Writes are thin: they hand the request to
//! [`crate::apps::AppService`], which stores the change (compare-and-swap on the app's version),
//! records it in the audit log and applies it to that app's supervisor, and answer with the
//! stored version that won.

use actix_web::{web, HttpResponse};
use shared::admin::{App, AppPatch, ErrorBody, NewApp, RotateSecretRequest};

use super::auth::Principal;
use crate::actors::messages::ConnectionCount;
use crate::apps::service::app_dto;
use crate::apps::AppConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The API's view of a live app: its settings, its open connections on this node and its
/// message usage.
async fn view(state: &AppState, config: &AppConfig) -> App {
    let Some(handle) = state.directory.by_id(&config.id) else {
        return app_dto(config, 0);
    };
    let connections = handle.supervisor.send(ConnectionCount).await.unwrap_or(0);
    let mut app = app_dto(config, connections);
    let limits = &config.limits;
    app.usage = handle
        .metrics
        .usage
        .status(
            crate::db::now_unix(),
            limits.max_messages_per_day,
            limits.max_messages_per_month,
        )
        .usage();
    app
}

fn live(state: &AppState, id: &str) -> Result<AppConfig, ApiError> {
    state
        .directory
        .by_id(id)
        .map(|h| (*h.config.load_full()).clone())
        .ok_or_else(|| ApiError::not_found(format!("No app with id {id}")))
}

/// The answer to a write: the stored app with its connections on this node.
async fn written(state: &AppState, config: &AppConfig) -> HttpResponse {
    HttpResponse::Ok().json(view(state, config).await)
}

/// Every app with its open connections on this node, by name.
#[utoipa::path(get, path = "/admin/api/apps", tag = "apps",
    responses((status = 200, body = [App]), (status = 401, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn list_apps(_: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut configs: Vec<AppConfig> = state
        .directory
        .all()
        .iter()
        .map(|h| (*h.config.load_full()).clone())
        .collect();
    configs.sort_by(|a, b| (a.name.to_lowercase(), &a.id).cmp(&(b.name.to_lowercase(), &b.id)));
    let mut apps = Vec::with_capacity(configs.len());
    for config in &configs {
        apps.push(view(&state, config).await);
    }
    Ok(HttpResponse::Ok().json(apps))
}

/// Creates an app with fresh credentials (numeric id, random key and secret). Limits left out
/// take the server's `[default_app_limits]`.
#[utoipa::path(post, path = "/admin/api/apps", tag = "apps", request_body = NewApp,
    responses((status = 201, body = App), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn create_app(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<NewApp>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let config = state
        .apps
        .create(&principal.actor(), &body.name, &body.settings)
        .await?;
    Ok(HttpResponse::Created().json(app_dto(&config, 0)))
}

/// One app with its credentials.
#[utoipa::path(get, path = "/admin/api/apps/{id}", tag = "apps",
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = App), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn get_app(
    _: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let config = live(&state, &id)?;
    Ok(HttpResponse::Ok().json(view(&state, &config).await))
}

/// Changes settings. Disabling closes the app's connections (4003); origins apply to new
/// connections; limits apply at once. Concurrent changes of different fields all survive
/// (each is applied to the latest stored version); 409 only if the app kept changing.
#[utoipa::path(patch, path = "/admin/api/apps/{id}", tag = "apps", request_body = AppPatch,
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = App), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn update_app(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<AppPatch>,
) -> Result<HttpResponse, ApiError> {
    let config = state
        .apps
        .update(&principal.actor(), &id, body.into_inner())
        .await?;
    Ok(written(&state, &config).await)
}

/// Replaces the secret. With a grace period the old one keeps signing until it ends.
#[utoipa::path(post, path = "/admin/api/apps/{id}/rotate-secret", tag = "apps", request_body = RotateSecretRequest,
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = App, description = "The app with its new secret"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn rotate_app_secret(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Option<web::Json<RotateSecretRequest>>,
) -> Result<HttpResponse, ApiError> {
    let grace = body.and_then(|b| b.grace_period_secs).unwrap_or(0);
    let config = state
        .apps
        .rotate_secret(&principal.actor(), &id, grace)
        .await?;
    Ok(written(&state, &config).await)
}

/// Deletes an app; its connections are closed with 4001.
#[utoipa::path(delete, path = "/admin/api/apps/{id}", tag = "apps",
    params(("id" = String, Path, description = "App id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn delete_app(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.apps.delete(&principal.actor(), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
