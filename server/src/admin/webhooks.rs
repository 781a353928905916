//! An app's webhooks in the admin API: endpoints (list, create, change, delete, send a test
//! event), the delivery log (recent deliveries per app or endpoint, the dead letters) and
//! replay (one delivery, or every dead one).
//!
//! Endpoint changes are stored, audited and then applied to the running producers at once
//! ([`crate::webhooks::Webhooks::refresh`]).
//!
//! An endpoint's own signing secret is write-only: the answer to the request that set or
//! generated it carries it once; afterwards only a masked hint (its last four characters) is
//! shown, and the audit log never records it.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use shared::admin::ErrorBody;
pub use shared::webhooks::{
    BreakerInfo, DeliveryStats, ReplayResult, WebhookDelivery, WebhookEndpoint,
    WebhookEndpointInput,
};
use utoipa::IntoParams;

use super::auth::Principal;
use crate::db::admin::AuditRow;
use crate::db::webhooks::{DeliveryRow, StateCount, DEAD, DELIVERED, FAILED, PENDING};
use crate::db::{Db, DbError};
use crate::error::ApiError;
use crate::events::now_ms;
use crate::state::AppState;
use crate::webhooks::breaker::BreakerState;
use crate::webhooks::{self, Endpoint, SigningSecret, WebhookEvent, EVENT_TYPES, RESERVED_HEADERS};

/// Endpoints one app may have.
const MAX_ENDPOINTS: usize = 20;
/// Custom headers one endpoint may have.
const MAX_HEADERS: usize = 20;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only this endpoint's deliveries.
    pub endpoint: Option<String>,
    /// Only deliveries in this state (`pending`, `delivered`, `failed`, `dead`).
    pub state: Option<String>,
    /// At most this many, newest first (default 50, at most 500).
    pub limit: Option<i64>,
}

/// How far back the endpoint statistics look.
const STATS_PERIOD_MS: i64 = 24 * 3600 * 1000;

fn breaker_info(state: &AppState, endpoint_id: &str) -> BreakerInfo {
    let breaker = state.webhooks.breaker(endpoint_id);
    BreakerInfo {
        state: match breaker.state() {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
        .to_owned(),
        consecutive_failures: breaker.failures(),
        retry_at_ms: breaker.retry_at_ms(),
        opens: breaker.opens(),
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn stats_of(counts: &[StateCount], endpoint_id: &str) -> DeliveryStats {
    let mut stats = DeliveryStats::default();
    for c in counts.iter().filter(|c| c.endpoint_id == endpoint_id) {
        match c.state.as_str() {
            PENDING => stats.pending += c.count,
            DELIVERED => stats.delivered += c.count,
            FAILED => stats.failed += c.count,
            DEAD => stats.dead += c.count,
            _ => {}
        }
    }
    let finished = stats.delivered + stats.failed + stats.dead;
    stats.success_rate = (finished > 0).then(|| stats.delivered as f64 / finished as f64);
    stats
}

/// The endpoint as the API shows it, with its breaker and statistics.
fn shown(state: &AppState, e: &Endpoint, counts: &[StateCount]) -> WebhookEndpoint {
    WebhookEndpoint {
        breaker: breaker_info(state, &e.id),
        stats: stats_of(counts, &e.id),
        ..to_api(e)
    }
}

/// The app's delivery counts by endpoint and state, for [`shown`]; empty if the database
/// cannot say (the endpoints are still listed).
async fn counts_of(state: &AppState, app_id: &str) -> Vec<StateCount> {
    let app_id = app_id.to_owned();
    let since = now_ms() - STATS_PERIOD_MS;
    crate::db::blocking(&state.db, move |db| db.webhook_state_counts(&app_id, since))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot count webhook deliveries");
            Vec::new()
        })
}

/// The endpoint as stored and audited: no breaker or statistics, the secret only masked.
fn to_api(e: &Endpoint) -> WebhookEndpoint {
    WebhookEndpoint {
        signing_secret: None,
        signing_secret_hint: e.signing_secret.as_ref().map(SigningSecret::masked),
        breaker: BreakerInfo::default(),
        stats: DeliveryStats::default(),
        id: e.id.clone(),
        url: e.url.clone(),
        event_types: e.event_types.clone(),
        channel_prefix: e.channel_prefix.clone(),
        channel_suffix: e.channel_suffix.clone(),
        headers: e.headers.iter().cloned().collect(),
        enabled: e.enabled,
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

fn delivery_to_api(row: DeliveryRow) -> WebhookDelivery {
    WebhookDelivery {
        next_attempt_at_ms: (row.state == PENDING).then_some(row.next_attempt_at_ms),
        id: row.id,
        endpoint_id: row.endpoint_id,
        created_at_ms: row.created_at_ms,
        state: row.state,
        events: row.events,
        body: row.body,
        attempts: row.attempts,
        last_attempt_at_ms: row.last_attempt_at_ms,
        status_code: row.status_code,
        latency_ms: row.latency_ms,
        error: row.error,
        response: row.response,
    }
}

fn app_exists(state: &AppState, app_id: &str) -> Result<(), ApiError> {
    if state.directory.by_id(app_id).is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("No app with id {app_id}")))
    }
}

fn endpoint_of(state: &AppState, app_id: &str, id: &str) -> Result<Endpoint, ApiError> {
    state
        .webhooks
        .endpoints_of(app_id)
        .iter()
        .find(|e| e.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No webhook endpoint with id {id}")))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Applies an input to an endpoint and checks the result.
fn apply(
    state: &AppState,
    endpoint: &mut Endpoint,
    input: WebhookEndpointInput,
) -> Result<(), ApiError> {
    if let Some(url) = input.url {
        let url = url.trim().to_owned();
        if url.len() > 2048 {
            return Err(ApiError::validation(
                "url",
                "url must be at most 2048 characters",
            ));
        }
        webhooks::validate_url(&url, state.webhooks.config().allow_private_targets)
            .map_err(|e| ApiError::validation("url", e.to_string()))?;
        endpoint.url = url;
    }
    if let Some(types) = input.event_types {
        if types.is_empty() {
            return Err(ApiError::validation(
                "event_types",
                "event_types must name at least one event type",
            ));
        }
        if let Some(unknown) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
            return Err(ApiError::validation(
                "event_types",
                format!(
                    "Unknown event type {unknown:?}; known: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        let mut types = types;
        types.sort();
        types.dedup();
        endpoint.event_types = types;
    }
    if let Some(prefix) = input.channel_prefix {
        endpoint.channel_prefix = non_empty(Some(prefix));
    }
    if let Some(suffix) = input.channel_suffix {
        endpoint.channel_suffix = non_empty(Some(suffix));
    }
    for (field, value) in [
        ("channel_prefix", &endpoint.channel_prefix),
        ("channel_suffix", &endpoint.channel_suffix),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > 200) {
            return Err(ApiError::validation(
                field,
                format!("{field} must be at most 200 characters"),
            ));
        }
    }
    if let Some(headers) = input.headers {
        if headers.len() > MAX_HEADERS {
            return Err(ApiError::validation(
                "headers",
                format!("At most {MAX_HEADERS} headers"),
            ));
        }
        for (name, value) in &headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ApiError::validation(
                    "headers",
                    format!("{name} is set by the server and cannot be replaced"),
                ));
            }
            if actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || actix_web::http::header::HeaderValue::from_str(value).is_err()
                || value.len() > 4096
            {
                return Err(ApiError::validation(
                    "headers",
                    format!("{name:?} is not a valid header name and value"),
                ));
            }
        }
        endpoint.headers = headers.into_iter().collect();
    }
    if let Some(enabled) = input.enabled {
        endpoint.enabled = enabled;
    }
    if let Some(secret) = input.signing_secret {
        let (min, max) = shared::webhooks::SIGNING_SECRET_LEN;
        if secret.is_empty() {
            endpoint.signing_secret = None;
        } else if secret.len() < min
            || secret.len() > max
            || !secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ApiError::validation(
                "signing_secret",
                format!("signing_secret must be {min} to {max} printable ASCII characters without spaces"),
            ));
        } else {
            endpoint.signing_secret = Some(SigningSecret(secret));
        }
    }
    if input.generate_signing_secret == Some(true) {
        endpoint.signing_secret = Some(SigningSecret::generate());
    }
    if endpoint.url.is_empty() {
        return Err(ApiError::validation("url", "url is required"));
    }
    if endpoint.event_types.is_empty() {
        return Err(ApiError::validation(
            "event_types",
            "event_types must name at least one event type",
        ));
    }
    Ok(())
}

fn audit(
    principal: &Principal,
    action: &str,
    endpoint: &Endpoint,
    before: Option<&Endpoint>,
    after: Option<&Endpoint>,
) -> AuditRow {
    let json = |e: &Endpoint| serde_json::to_value(to_api(e)).ok();
    AuditRow::new(
        principal.actor(),
        action,
        "webhook_endpoint",
        &endpoint.id,
        before.and_then(json),
        after.and_then(json),
    )
}

/// Applies the stored endpoints to the running producers; a failure is logged (the periodic
/// reload catches up), the change itself is stored.
async fn applied(state: &AppState) {
    if let Err(e) = state.webhooks.refresh().await {
        tracing::warn!(error = %e, "cannot reload the webhook endpoints");
    }
    // A new or re-enabled endpoint may have deliveries waiting.
    state.webhooks.wake();
}

/// An app's webhook endpoints.
#[utoipa::path(get, path = "/admin/api/apps/{id}/webhooks", tag = "webhooks",
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = [WebhookEndpoint]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn list_endpoints(
    _: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    app_exists(&state, &id)?;
    let counts = counts_of(&state, &id).await;
    let endpoints: Vec<WebhookEndpoint> = state
        .webhooks
        .endpoints_of(&id)
        .iter()
        .map(|e| shown(&state, e, &counts))
        .collect();
    Ok(HttpResponse::Ok().json(endpoints))
}

/// Adds a webhook endpoint. The URL must be http or https; loopback and private addresses only
/// when the server's `webhook_allow_private_targets` is on (the default).
#[utoipa::path(post, path = "/admin/api/apps/{id}/webhooks", tag = "webhooks",
    request_body = WebhookEndpointInput,
    params(("id" = String, Path, description = "App id")),
    responses((status = 201, body = WebhookEndpoint), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The app has the most endpoints it may have"),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn create_endpoint(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<WebhookEndpointInput>,
) -> Result<HttpResponse, ApiError> {
    app_exists(&state, &id)?;
    if state.webhooks.endpoints_of(&id).len() >= MAX_ENDPOINTS {
        return Err(ApiError::conflict(
            "too_many_endpoints",
            format!("An app may have at most {MAX_ENDPOINTS} webhook endpoints"),
        ));
    }
    let now = crate::db::now_unix();
    let mut endpoint = Endpoint {
        id: uuid::Uuid::now_v7().to_string(),
        app_id: id.into_inner(),
        url: String::new(),
        event_types: Vec::new(),
        channel_prefix: None,
        channel_suffix: None,
        headers: Vec::new(),
        enabled: true,
        created_at: now,
        updated_at: now,
        signing_secret: None,
    };
    let input = body.into_inner();
    let reveal = sets_secret(&input);
    apply(&state, &mut endpoint, input)?;
    let row = endpoint.to_row();
    let entry = audit(
        &principal,
        "webhook.create",
        &endpoint,
        None,
        Some(&endpoint),
    );
    super::write(&state.db, move |db| {
        db.insert_webhook_endpoint(&row)?;
        db.insert_audit(&entry)
    })
    .await?;
    applied(&state).await;
    Ok(HttpResponse::Created().json(answer(&state, &endpoint, reveal)))
}

/// Changes a webhook endpoint; fields left out keep their value.
#[utoipa::path(patch, path = "/admin/api/apps/{id}/webhooks/{endpoint_id}", tag = "webhooks",
    request_body = WebhookEndpointInput,
    params(("id" = String, Path, description = "App id"), ("endpoint_id" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = WebhookEndpoint), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn update_endpoint(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<WebhookEndpointInput>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, endpoint_id) = path.into_inner();
    app_exists(&state, &app_id)?;
    let before = endpoint_of(&state, &app_id, &endpoint_id)?;
    let mut endpoint = before.clone();
    let input = body.into_inner();
    let reveal = sets_secret(&input);
    apply(&state, &mut endpoint, input)?;
    endpoint.updated_at = crate::db::now_unix();
    let row = endpoint.to_row();
    let entry = audit(
        &principal,
        "webhook.update",
        &endpoint,
        Some(&before),
        Some(&endpoint),
    );
    super::write(&state.db, move |db| {
        db.update_webhook_endpoint(&row)?;
        db.insert_audit(&entry)
    })
    .await
    .map_err(|e| not_found_endpoint(e, &endpoint_id))?;
    applied(&state).await;
    // A changed endpoint (a new URL, say) starts over with a closed breaker.
    state.webhooks.nudge(&app_id, Some(&endpoint_id), true);
    Ok(HttpResponse::Ok().json(answer(&state, &endpoint, reveal)))
}

/// Whether the input sets or generates a signing secret (then the answer shows it, once).
fn sets_secret(input: &WebhookEndpointInput) -> bool {
    input.generate_signing_secret == Some(true)
        || input
            .signing_secret
            .as_deref()
            .is_some_and(|s| !s.is_empty())
}

/// The answer to a create or change: the endpoint, with its secret when this request set it.
fn answer(state: &AppState, endpoint: &Endpoint, reveal: bool) -> WebhookEndpoint {
    WebhookEndpoint {
        signing_secret: endpoint
            .signing_secret
            .as_ref()
            .filter(|_| reveal)
            .map(|s| s.0.clone()),
        ..shown(state, endpoint, &[])
    }
}

fn not_found_endpoint(e: ApiError, id: &str) -> ApiError {
    if e.status == actix_web::http::StatusCode::NOT_FOUND {
        ApiError::not_found(format!("No webhook endpoint with id {id}"))
    } else {
        e
    }
}

/// Deletes a webhook endpoint and its delivery log (pending deliveries included).
#[utoipa::path(delete, path = "/admin/api/apps/{id}/webhooks/{endpoint_id}", tag = "webhooks",
    params(("id" = String, Path, description = "App id"), ("endpoint_id" = String, Path, description = "Endpoint id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn delete_endpoint(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, endpoint_id) = path.into_inner();
    app_exists(&state, &app_id)?;
    let before = endpoint_of(&state, &app_id, &endpoint_id)?;
    let entry = audit(&principal, "webhook.delete", &before, Some(&before), None);
    let (app, id) = (app_id.clone(), endpoint_id.clone());
    super::write(&state.db, move |db| {
        db.delete_webhook_endpoint(&app, &id)?;
        db.insert_audit(&entry)
    })
    .await
    .map_err(|e| not_found_endpoint(e, &endpoint_id))?;
    applied(&state).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Queues a test request to one endpoint (whatever its filters): one `channel_occupied` event
/// for the channel `reverb-pusher-test`, signed and retried like any other. Answers with the
/// delivery, to follow in the log.
#[utoipa::path(post, path = "/admin/api/apps/{id}/webhooks/{endpoint_id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "App id"), ("endpoint_id" = String, Path, description = "Endpoint id")),
    responses((status = 202, body = WebhookDelivery), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn test_endpoint(
    _: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, endpoint_id) = path.into_inner();
    app_exists(&state, &app_id)?;
    let endpoint = endpoint_of(&state, &app_id, &endpoint_id)?;
    let now = now_ms();
    let row = DeliveryRow {
        id: uuid::Uuid::now_v7().to_string(),
        app_id,
        endpoint_id: endpoint.id,
        created_at_ms: now,
        body: webhooks::body(
            now,
            &[WebhookEvent::new("channel_occupied", "reverb-pusher-test")],
        ),
        events: 1,
        state: PENDING.into(),
        attempts: 0,
        next_attempt_at_ms: now,
        last_attempt_at_ms: None,
        status_code: None,
        latency_ms: None,
        error: None,
        response: None,
    };
    let stored = row.clone();
    super::write(&state.db, move |db| {
        db.enqueue_webhooks(std::slice::from_ref(&stored))
    })
    .await?;
    state
        .webhooks
        .nudge(&row.app_id, Some(&row.endpoint_id), false);
    Ok(HttpResponse::Accepted().json(delivery_to_api(row)))
}

/// An app's recent webhook deliveries, newest first: all, one endpoint's, or those in one
/// state (`?state=dead` is the dead-letter list).
#[utoipa::path(get, path = "/admin/api/apps/{id}/webhook-deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "App id"), DeliveryQuery),
    responses((status = 200, body = [WebhookDelivery]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn list_deliveries(
    _: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    app_exists(&state, &id)?;
    let query = query.into_inner();
    if let Some(s) = &query.state {
        if ![PENDING, DELIVERED, FAILED, DEAD].contains(&s.as_str()) {
            return Err(ApiError::validation(
                "state",
                "state must be pending, delivered, failed or dead",
            ));
        }
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let app_id = id.into_inner();
    let rows = super::write(&state.db, move |db: &Db| {
        db.webhook_deliveries(
            &app_id,
            query.endpoint.as_deref(),
            query.state.as_deref(),
            limit,
        )
    })
    .await?;
    let deliveries: Vec<WebhookDelivery> = rows.into_iter().map(delivery_to_api).collect();
    Ok(HttpResponse::Ok().json(deliveries))
}

/// Puts every dead delivery of the app back in the outbox, to be sent now with a fresh retry
/// horizon.
#[utoipa::path(post, path = "/admin/api/apps/{id}/webhook-deliveries/replay", tag = "webhooks",
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = ReplayResult), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn replay_dead(
    _: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    app_exists(&state, &id)?;
    let app_id = id.into_inner();
    let app = app_id.clone();
    let replayed = super::write(&state.db, move |db| {
        db.replay_webhooks(&app, None, now_ms())
    })
    .await?;
    state.webhooks.nudge(&app_id, None, false);
    Ok(HttpResponse::Ok().json(ReplayResult { replayed }))
}

/// Sends one finished delivery (dead, failed or delivered) again, now, with a fresh retry
/// horizon. 409 if it is still pending.
#[utoipa::path(post, path = "/admin/api/apps/{id}/webhook-deliveries/{delivery_id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "App id"), ("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 200, body = ReplayResult), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn replay_one(
    _: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, delivery_id) = path.into_inner();
    app_exists(&state, &app_id)?;
    let (app, id) = (app_id.clone(), delivery_id.clone());
    let (replayed, exists) = super::write(&state.db, move |db| {
        let n = db.replay_webhooks(&app, Some(&id), now_ms())?;
        let exists = n > 0 || db.webhook_delivery_exists(&app, &id)?;
        Ok::<_, DbError>((n, exists))
    })
    .await?;
    if replayed == 0 {
        return Err(if exists {
            ApiError::conflict("pending", "The delivery is still pending")
        } else {
            ApiError::not_found(format!("No webhook delivery with id {delivery_id}"))
        });
    }
    state.webhooks.nudge(&app_id, None, false);
    Ok(HttpResponse::Ok().json(ReplayResult { replayed }))
}
