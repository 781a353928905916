//! The debug console's server side: a live stream of one app's activity as server-sent events,
//! and the event creator that sends an event to a channel from the panel.
//!
//! A stream lives as long as the credential that opened it: it checks that credential again
//! as soon as any session or token ends on this server, and every [`RECHECK_EVERY`] anyway
//! (expiry, changes made by another node).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use shared::admin::{DebugEvent, DebugKind, ErrorBody, TriggerEventRequest, TriggerEventResult};
use tokio::sync::broadcast::error::RecvError;

use super::auth::Principal;
use super::AdminState;
use crate::actors::messages::PublishEvents;
use crate::error::ApiError;
use crate::events::{now_ms, Watcher};
use crate::state::AppState;

/// How often an idle stream checks whether it should end (server draining, app deleted).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Idle checks between keep-alive comments, so that proxies do not time the stream out.
const KEEPALIVE_CHECKS: u32 = 15;
/// How often a stream checks its credential when no revocation was seen meanwhile.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

struct Watch {
    rx: Watcher,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
    app_id: String,
    idle_checks: u32,
    principal: Principal,
    /// The revocation count when the credential was last checked, and when that was.
    checked: (u64, Instant),
}

impl Watch {
    /// Whether the stream's credential still works; checked only when something was revoked
    /// since the last check, or that check is old. A database error keeps the stream.
    async fn credential_ok(&mut self) -> bool {
        let revocations = self.admin.revocation_count();
        if revocations == self.checked.0 && self.checked.1.elapsed() < RECHECK_EVERY {
            return true;
        }
        self.checked = (revocations, Instant::now());
        let principal = self.principal.clone();
        crate::db::blocking(&self.state.db, move |db| principal.still_valid(db))
            .await
            .unwrap_or(true)
    }
}

fn sse_data(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

fn notice(message: String) -> Bytes {
    let mut event = DebugEvent::new(DebugKind::Notice, now_ms());
    event.message = Some(message);
    sse_data(&serde_json::to_string(&event).unwrap_or_default())
}

/// The next chunk of the stream, or `None` when it should end.
async fn next_chunk(mut watch: Watch) -> Option<(Result<Bytes, Infallible>, Watch)> {
    loop {
        if watch.state.node.draining.load(Ordering::Relaxed)
            || watch.state.directory.by_id(&watch.app_id).is_none()
            || !watch.credential_ok().await
        {
            return None;
        }
        tokio::select! {
            received = watch.rx.recv() => {
                watch.idle_checks = 0;
                let chunk = match received {
                    Ok(json) => sse_data(&json),
                    Err(RecvError::Lagged(skipped)) => notice(format!(
                        "{skipped} entries were skipped because the console fell behind"
                    )),
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(chunk), watch));
            }
            () = tokio::time::sleep(CHECK_EVERY) => {
                watch.idle_checks += 1;
                if watch.idle_checks >= KEEPALIVE_CHECKS {
                    watch.idle_checks = 0;
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), watch));
                }
            }
        }
    }
}

/// The app's live activity as `text/event-stream`: one `DebugEvent` as JSON per message, from
/// the moment of the request on. Nothing is recorded while nobody watches.
#[utoipa::path(get, path = "/admin/api/apps/{id}/debug", tag = "apps",
    params(("id" = String, Path, description = "App id")),
    responses(
        (status = 200, description = "Server-sent events, each `data:` a DebugEvent", content_type = "text/event-stream", body = DebugEvent),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn stream(
    principal: Principal,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let app = state
        .directory
        .by_id(&id)
        .ok_or_else(|| ApiError::not_found(format!("No app with id {id}")))?;
    let watch = Watch {
        rx: app.events.watch(),
        state: state.clone(),
        // No baseline yet: the first idle check looks at the credential again, so that a
        // revocation between the extractor's check and now is not missed.
        checked: (u64::MAX, Instant::now()),
        admin,
        app_id: id.into_inner(),
        idle_checks: 0,
        principal,
    };
    // The first chunk goes out at once so that the browser reports the stream open.
    let hello = futures_util::stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(b"retry: 3000\n: watching\n\n"))
    });
    let body =
        futures_util::StreamExt::chain(hello, futures_util::stream::unfold(watch, next_chunk));
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx would otherwise buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// Sends an event to a channel, as the REST API would (same limits and checks).
#[utoipa::path(post, path = "/admin/api/apps/{id}/events", tag = "apps",
    params(("id" = String, Path, description = "App id")),
    request_body = TriggerEventRequest,
    responses((status = 200, body = TriggerEventResult), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn trigger(
    _: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<TriggerEventRequest>,
) -> Result<HttpResponse, ApiError> {
    let app = state
        .directory
        .by_id(&id)
        .ok_or_else(|| ApiError::not_found(format!("No app with id {id}")))?;
    let config = app.config.load_full();
    let TriggerEventRequest {
        channel,
        event,
        data,
    } = body.into_inner();
    let events = crate::protocol::publish::panel_event(&config, channel.clone(), event, data)?;
    app.publish_remote(&events);
    app.supervisor
        .send(PublishEvents(events))
        .await
        .map_err(|_| ApiError::internal())?;
    let subscription_count = app.channels.counts(&channel).subscriptions as u64;
    Ok(HttpResponse::Ok().json(TriggerEventResult { subscription_count }))
}
