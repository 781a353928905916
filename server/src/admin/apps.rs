//! Apps: list (with live connection counts), create, read, update, rotate secret, delete.
//! Each write is stored first, then handed to the app's supervisor, so it applies at once to
//! that app's connections and to no other app's.

use actix_web::{web, HttpResponse};
use serde_json::Value;
use shared::admin::{self as dto, App, AppPatch, ErrorBody, NewApp, RotateSecretRequest};
use shared::CloseCode;

use super::auth::Principal;
use super::{audit_row, text, write};
use crate::actors::messages::{ConnectionCount, StartApp, StopApp, UpdateApp};
use crate::apps::{new_secret, AppConfig, AppLimits, PreviousSecret};
use crate::db::now_unix;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest grace period for a rotated-out secret: 30 days.
const MAX_GRACE_SECS: u32 = 30 * 24 * 3600;

fn limits_dto(l: &AppLimits) -> dto::AppLimits {
    dto::AppLimits {
        max_connections: l.max_connections,
        max_client_events_per_second: l.max_client_events_per_second,
        max_channel_name_length: l.max_channel_name_length,
        max_event_name_length: l.max_event_name_length,
        max_event_payload_bytes: l.max_event_payload_bytes,
        max_event_channels_at_once: l.max_event_channels_at_once,
        max_event_batch_size: l.max_event_batch_size,
        max_presence_members: l.max_presence_members,
        max_presence_member_size_bytes: l.max_presence_member_size_bytes,
        max_user_id_length: l.max_user_id_length,
        cache_ttl_secs: l.cache_ttl_secs,
    }
}

pub fn app_dto(c: &AppConfig, connections: usize) -> App {
    App {
        id: c.id.clone(),
        name: c.name.clone(),
        key: c.key.clone(),
        secret: c.secret.clone(),
        enabled: c.enabled,
        allowed_origins: c.allowed_origins.clone(),
        client_events: c.client_events,
        require_user_auth: c.require_user_auth,
        user_auth_timeout_secs: c.user_auth_timeout_secs,
        watchlist_events: c.watchlist_events,
        subscription_count_events: c.subscription_count_events,
        limits: limits_dto(&c.limits),
        previous_secret_expires_at: c.previous_secret.as_ref().map(|p| p.expires_at),
        connections: connections as u64,
    }
}

/// The app as the audit log records it: secrets masked, no live counters.
fn audited(c: &AppConfig) -> Value {
    let mut value = serde_json::to_value(app_dto(c, 0)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("secret".into(), "***".into());
        map.remove("connections");
    }
    value
}

fn ranged(field: &'static str, value: u32, min: u32, max: u32) -> Result<u32, ApiError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::validation(
            field,
            format!("{field} must be between {min} and {max}"),
        ))
    }
}

fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let host = origin.strip_prefix("*.").unwrap_or(origin);
    let host = host.split_once("://").map_or(host, |(scheme, rest)| {
        if matches!(scheme, "http" | "https") {
            rest
        } else {
            ""
        }
    });
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// Applies a patch to a copy of the configuration, checking every field.
pub fn apply_patch(c: &mut AppConfig, p: AppPatch) -> Result<(), ApiError> {
    if let Some(name) = p.name {
        c.name = text("name", &name, dto::MAX_NAME)?;
    }
    if let Some(enabled) = p.enabled {
        c.enabled = enabled;
    }
    if let Some(origins) = p.allowed_origins {
        if origins.len() > 100 {
            return Err(ApiError::validation(
                "allowed_origins",
                "at most 100 origins",
            ));
        }
        let origins: Vec<String> = origins.iter().map(|o| o.trim().to_owned()).collect();
        if let Some(bad) = origins.iter().find(|o| !valid_origin(o)) {
            return Err(ApiError::validation(
                "allowed_origins",
                format!(
                    "{bad:?} is not an origin: use https://host[:port], a host, *.example.com or *"
                ),
            ));
        }
        c.allowed_origins = origins;
    }
    if let Some(v) = p.client_events {
        c.client_events = v;
    }
    if let Some(v) = p.require_user_auth {
        c.require_user_auth = v;
    }
    if let Some(v) = p.user_auth_timeout_secs {
        let (min, max) = dto::USER_AUTH_TIMEOUT_SECS;
        c.user_auth_timeout_secs = ranged("user_auth_timeout_secs", v, min, max)?;
    }
    if let Some(v) = p.watchlist_events {
        c.watchlist_events = v;
    }
    if let Some(v) = p.subscription_count_events {
        c.subscription_count_events = v;
    }
    if let Some(l) = p.limits {
        // The ranges live in `shared` so that the panel checks the same ones before sending.
        let check = |field: &'static str, value: u32| -> Result<u32, ApiError> {
            let spec = dto::limit_spec(field.trim_start_matches("limits."))
                .expect("every limit field is in shared::admin::LIMITS");
            ranged(field, value, spec.min, spec.max)
        };
        let t = &mut c.limits;
        if let Some(v) = l.max_connections {
            t.max_connections = check("limits.max_connections", v)?;
        }
        if let Some(v) = l.max_client_events_per_second {
            t.max_client_events_per_second = check("limits.max_client_events_per_second", v)?;
        }
        if let Some(v) = l.max_channel_name_length {
            t.max_channel_name_length = check("limits.max_channel_name_length", v)?;
        }
        if let Some(v) = l.max_event_name_length {
            t.max_event_name_length = check("limits.max_event_name_length", v)?;
        }
        if let Some(v) = l.max_event_payload_bytes {
            t.max_event_payload_bytes = check("limits.max_event_payload_bytes", v)?;
        }
        if let Some(v) = l.max_event_channels_at_once {
            t.max_event_channels_at_once = check("limits.max_event_channels_at_once", v)?;
        }
        if let Some(v) = l.max_event_batch_size {
            t.max_event_batch_size = check("limits.max_event_batch_size", v)?;
        }
        if let Some(v) = l.max_presence_members {
            t.max_presence_members = check("limits.max_presence_members", v)?;
        }
        if let Some(v) = l.max_presence_member_size_bytes {
            t.max_presence_member_size_bytes = check("limits.max_presence_member_size_bytes", v)?;
        }
        if let Some(v) = l.max_user_id_length {
            t.max_user_id_length = check("limits.max_user_id_length", v)?;
        }
        if let Some(v) = l.cache_ttl_secs {
            t.cache_ttl_secs = check("limits.cache_ttl_secs", v)?;
        }
    }
    Ok(())
}

async fn connections(state: &AppState, id: &str) -> usize {
    match state.directory.by_id(id) {
        Some(handle) => handle.supervisor.send(ConnectionCount).await.unwrap_or(0),
        None => 0,
    }
}

fn live(state: &AppState, id: &str) -> Result<AppConfig, ApiError> {
    state
        .directory
        .by_id(id)
        .map(|h| (*h.config.load_full()).clone())
        .ok_or_else(|| ApiError::not_found(format!("No app with id {id}")))
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
        apps.push(app_dto(config, connections(&state, &config.id).await));
    }
    Ok(HttpResponse::Ok().json(apps))
}

/// Creates an app with fresh credentials (numeric id, random key and secret).
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
    let mut config = AppConfig::generate(&text("name", &body.name, 100)?);
    apply_patch(&mut config, body.settings)?;
    let (stored, actor, after) = (config.clone(), principal.actor(), audited(&config));
    write(&state.db, move |db| {
        db.insert_app(&stored)?;
        db.insert_audit(&audit_row(
            actor,
            "app.create",
            "app",
            &stored.id,
            None,
            Some(after),
        ))
    })
    .await?;
    let _ = state.registry.send(StartApp(config.clone())).await;
    tracing::info!(app_id = %config.id, "app created");
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
    Ok(HttpResponse::Ok().json(app_dto(&config, connections(&state, &id).await)))
}

/// Changes settings. Disabling closes the app's connections (4003); origins apply to new
/// connections; limits apply at once.
#[utoipa::path(patch, path = "/admin/api/apps/{id}", tag = "apps", request_body = AppPatch,
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = App), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn update_app(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<AppPatch>,
) -> Result<HttpResponse, ApiError> {
    let before = live(&state, &id)?;
    let mut config = before.clone();
    apply_patch(&mut config, body.into_inner())?;
    store_and_apply(&state, principal.actor(), "app.update", &before, &config).await?;
    Ok(HttpResponse::Ok().json(app_dto(&config, connections(&state, &id).await)))
}

/// Stores a changed app with its audit record, then hands it to the supervisor.
async fn store_and_apply(
    state: &AppState,
    actor: String,
    action: &'static str,
    before: &AppConfig,
    after: &AppConfig,
) -> Result<(), ApiError> {
    let stored = after.clone();
    let (before_json, after_json) = (audited(before), audited(after));
    write(&state.db, move |db| {
        db.update_app(&stored)?;
        db.insert_audit(&audit_row(
            actor,
            action,
            "app",
            &stored.id,
            Some(before_json),
            Some(after_json),
        ))
    })
    .await?;
    let _ = state.registry.send(UpdateApp(after.clone())).await;
    tracing::info!(app_id = %after.id, action, "app changed");
    Ok(())
}

/// Replaces the secret. With a grace period the old one keeps signing until it ends.
#[utoipa::path(post, path = "/admin/api/apps/{id}/rotate-secret", tag = "apps", request_body = RotateSecretRequest,
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = App, description = "The app with its new secret"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn rotate_app_secret(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Option<web::Json<RotateSecretRequest>>,
) -> Result<HttpResponse, ApiError> {
    let grace = body.and_then(|b| b.grace_period_secs).unwrap_or(0);
    let grace = ranged("grace_period_secs", grace, 0, MAX_GRACE_SECS)?;
    let before = live(&state, &id)?;
    let mut config = before.clone();
    config.previous_secret = (grace > 0).then(|| PreviousSecret {
        secret: before.secret.clone(),
        expires_at: now_unix() + i64::from(grace),
    });
    config.secret = new_secret();
    store_and_apply(
        &state,
        principal.actor(),
        "app.rotate_secret",
        &before,
        &config,
    )
    .await?;
    Ok(HttpResponse::Ok().json(app_dto(&config, connections(&state, &id).await)))
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
    let before = live(&state, &id)?;
    let (actor, before_json, app_id) = (principal.actor(), audited(&before), before.id.clone());
    write(&state.db, move |db| {
        db.delete_app(&app_id)?;
        db.insert_audit(&audit_row(
            actor,
            "app.delete",
            "app",
            &app_id,
            Some(before_json),
            None,
        ))
    })
    .await?;
    let _ = state
        .registry
        .send(StopApp {
            id: before.id.clone(),
            code: CloseCode::AppNotFound,
            reason: "The app was deleted.".into(),
        })
        .await;
    tracing::info!(app_id = %before.id, "app deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_are_validated_per_field() {
        let mut app = AppConfig::generate("a");
        let bad = AppPatch {
            allowed_origins: Some(vec!["not an origin".into()]),
            ..AppPatch::default()
        };
        assert_eq!(
            apply_patch(&mut app, bad).unwrap_err().field,
            Some("allowed_origins")
        );
        let bad = AppPatch {
            limits: Some(dto::AppLimitsPatch {
                max_event_batch_size: Some(0),
                ..Default::default()
            }),
            ..AppPatch::default()
        };
        assert_eq!(
            apply_patch(&mut app, bad).unwrap_err().field,
            Some("limits.max_event_batch_size")
        );
        let good = AppPatch {
            allowed_origins: Some(vec![
                "https://a.test".into(),
                "*.example.com".into(),
                "*".into(),
                "b.test:8080".into(),
            ]),
            limits: Some(dto::AppLimitsPatch {
                max_connections: Some(5),
                ..Default::default()
            }),
            ..AppPatch::default()
        };
        apply_patch(&mut app, good).unwrap();
        assert_eq!(app.limits.max_connections, 5);
        assert!(audited(&app).to_string().contains("\"secret\":\"***\""));
        assert!(!audited(&app).to_string().contains(&app.secret));
    }
}
