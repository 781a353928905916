//! Apps: list (with live connection counts), create (with generated or kept credentials),
//! import from another server's file, read, update, rotate secret, delete.
//!
//! Reads show the live, in-memory configuration. Writes are thin: they hand the request to
//! [`crate::apps::AppService`], which stores the change (compare-and-swap on the app's version),
//! records it in the audit log and applies it to that app's supervisor, and answer with the
//! stored version that won.

use actix_web::{web, HttpResponse};
use shared::admin::{App, AppPatch, ErrorBody, NewApp, RotateSecretRequest};
use shared::transfer::{ImportReport, ImportRequest};

use super::auth::Principal;
use crate::apps::service::app_dto;
use crate::apps::transfer::apply::ImportError;
use crate::apps::transfer::TransferError;
use crate::apps::{AppConfig, ChosenCredentials};
use crate::error::ApiError;
use crate::state::AppState;

/// The API's view of a live app: its settings, its open connections (the cluster's in cluster
/// mode, this node's while the cluster is degraded) and its message usage.
async fn view(state: &AppState, config: &AppConfig) -> App {
    let Some(handle) = state.directory.by_id(&config.id) else {
        return app_dto(config, 0);
    };
    let cluster = match &handle.cluster {
        Some(link) => link.connection_total().await.ok(),
        None => None,
    };
    let connections = match cluster {
        Some(total) => total,
        // The sessions' own gauge: current without a message to the supervisor, which may not
        // know a connection for its first second (`Session::announce`).
        None => usize::try_from(handle.metrics.connections.get()).unwrap_or(0),
    };
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

/// Creates an app. Its id, key and secret are generated (numeric id, random key and secret)
/// unless given: an app moving from another server keeps its credentials, so its clients need
/// no change. A given id or key that another app has is 409 with `field` naming it; one that
/// is not acceptable is 422. Limits left out take the server's `[default_app_limits]`.
#[utoipa::path(post, path = "/admin/api/apps", tag = "apps", request_body = NewApp,
    responses((status = 201, body = App), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The id or key (`field`) belongs to another app"),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn create_app(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<NewApp>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let credentials = ChosenCredentials {
        id: body.id,
        key: body.key,
        secret: body.secret,
    };
    let config = state
        .apps
        .create_with(&principal.actor(), &body.name, &credentials, &body.settings)
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

/// Imports apps from the text of another server's file (soketi, sockudo, Reverb,
/// laravel-websockets, a Pusher CSV; `format` detected when absent): creates or updates each
/// app by id with its credentials and every setting this server maps, and reports per app what
/// could not be mapped. With `dry_run` only the plan is returned. A plan with conflicts or
/// invalid entries changes nothing (422, with the report); importing the same file twice
/// changes nothing the second time (every app "unchanged").
#[utoipa::path(post, path = "/admin/api/apps/import", tag = "apps", request_body = ImportRequest,
    responses((status = 200, body = ImportReport, description = "The plan (dry run) or what was done"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "An app changed during the import; `report` says which"),
        (status = 422, body = ErrorBody, description = "The file cannot be read, or its plan has problems (`report`)"),
        (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn import_apps(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<ImportRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let report = match state
        .apps
        .import(&principal.actor(), &body.text, body.format, body.dry_run)
        .await
    {
        Ok(report) => report,
        Err(ImportError::File(e)) => {
            let field = if matches!(e, TransferError::Undetected(_)) {
                "format"
            } else {
                "text"
            };
            return Err(ApiError::validation(field, e.to_string()));
        }
        Err(ImportError::App(e)) => return Err(e.into()),
    };
    let problems = report.problems();
    if problems == 0 {
        return Ok(HttpResponse::Ok().json(report));
    }
    let (status, kind, message) = if report.applied {
        (
            actix_web::http::StatusCode::CONFLICT,
            "import_conflict",
            format!("{problems} app(s) changed during the import and were not imported; the others were"),
        )
    } else {
        (
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "import_refused",
            format!("{problems} app(s) cannot be imported as they are; nothing was changed"),
        )
    };
    Ok(HttpResponse::build(status)
        .json(serde_json::json!({ "error": kind, "message": message, "report": report })))
}
