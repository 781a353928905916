//! The Pusher REST API under `/apps/{app_id}/`: signed requests to trigger events and to read
//! channel state. Errors are JSON `{error, message}` with 400/401/403/404/413, and 429 (with
//! `Retry-After`) over the app's rate limits or message quota. A request under a rate limit
//! gets `X-RateLimit-Limit` (per second), `X-RateLimit-Remaining` and `X-RateLimit-Reset`
//! (seconds until the full burst is available again).
//!
//! On a single node the channel reads (`GET /channels`, `GET /channels/{name}`, a trigger's
//! `info`) answer from the app's channel index on the worker serving the request, without
//! asking the supervisor (see `ChannelIndex`); a presence roster and a cached event are asked of
//! the channel's actor.
//!
//! In cluster mode every event also goes to the other nodes, and the reads answer the
//! cluster's figures (one Redis round trip, never waiting on other nodes); while the cluster
//! is degraded they answer this node's own, with `X-Reverb-Pusher-Cluster: degraded`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use actix::dev::SendError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use shared::channel::USER_CHANNEL_PREFIX;
use shared::{ChannelKind, ChannelName};

use crate::actors::directory::AppHandle;
use crate::actors::messages::{ChannelCounts, GetCache, GetUsers, PublishEvents, TerminateUser};
use crate::apps::AppConfig;
use crate::db::now_unix;
use crate::error::ApiError;
use crate::events::{Kind, Limit};
use crate::protocol::publish::{tag_request, validate_event, EventBody, Info, OutgoingEvent};
use crate::protocol::signatures as auth;
use crate::ratelimit::{quota, whole_seconds, Gate, QuotaPeriod, Verdict};
use crate::state::AppState;

/// Reads the body up to the configured size; larger bodies are a 413.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("Could not read the request body"))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(format!(
                "The request body exceeds {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Finds the app and checks the request signature.
fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    app_id: &str,
    body: &[u8],
) -> Result<(Arc<AppHandle>, Arc<AppConfig>), ApiError> {
    let app = state
        .directory
        .by_id(app_id)
        .ok_or_else(|| ApiError::not_found(format!("No app with id {app_id}")))?;
    let config = app.config.load_full();
    let query = query_pairs(req.query_string());
    let now = now_unix();
    auth::verify_request(
        req.method().as_str(),
        req.uri().path(),
        &query,
        body,
        &config.key,
        &config.signing_secrets(now),
        now,
    )
    .map_err(|e| {
        tracing::info!(app_id, reason = %e, "REST request refused");
        state
            .node
            .metrics
            .rejected(crate::metrics::Rejected::RestAuth);
        ApiError::unauthorized(e.to_string())
    })?;
    if !config.enabled {
        return Err(ApiError::forbidden("The app is disabled"));
    }
    Ok((app, config))
}

/// Takes `n` from one of the app's REST gates, or refuses with 429 and `Retry-After`.
fn admit(
    app: &AppHandle,
    gate: &Gate,
    rate: u32,
    n: u32,
    limit: Limit,
    what: &str,
) -> Result<Verdict, ApiError> {
    let verdict = gate.check_n(rate, n);
    let Verdict::Refused {
        limit: max,
        retry_after,
        too_large,
    } = verdict
    else {
        return Ok(verdict);
    };
    app.rate_limited(None, limit);
    let message = if too_large {
        format!("This request holds {n} {what}, more than the app's limit of {max} per second")
    } else {
        format!("Rate limit exceeded: the app accepts at most {max} {what} per second")
    };
    Err(
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .retry_after(whole_seconds(retry_after).max(1)),
    )
}

/// Refuses an event trigger once the app has used its daily or monthly message quota.
async fn within_quota(
    state: &AppState,
    app: &Arc<AppHandle>,
    config: &AppConfig,
) -> Result<(), ApiError> {
    let limits = &config.limits;
    if limits.max_messages_per_day == 0 && limits.max_messages_per_month == 0 {
        return Ok(());
    }
    if !app.metrics.usage.is_loaded() {
        // Just started: what earlier runs counted today must be read before deciding.
        // With the database down, the count of this run alone decides (the keeper keeps
        // trying): refusing every event until it is back would be worse.
        let handle = app.clone();
        if let Err(e) = crate::db::blocking(&state.db, move |db| quota::load(db, &[handle])).await {
            tracing::warn!(app_id = %config.id, error = %e, "cannot read stored message usage");
        }
    }
    let status = app.metrics.usage.status(
        now_unix(),
        limits.max_messages_per_day,
        limits.max_messages_per_month,
    );
    let Some(period) = status.over else {
        return Ok(());
    };
    let (limit, message) = match period {
        QuotaPeriod::Day => (
            Limit::DailyQuota,
            format!(
                "Over quota: the app has used its {} messages for today; the quota starts again at 00:00 UTC",
                limits.max_messages_per_day
            ),
        ),
        QuotaPeriod::Month => (
            Limit::MonthlyQuota,
            format!(
                "Over quota: the app has used its {} messages for this month; the quota starts again on the 1st (UTC)",
                limits.max_messages_per_month
            ),
        ),
    };
    app.rate_limited(None, limit);
    Err(
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "over_quota", message)
            .retry_after(status.resets_in_secs.unwrap_or(1)),
    )
}

/// Adds the `X-RateLimit-*` headers of an admitted request (none when no limit is set).
fn rate_headers(mut response: HttpResponse, verdict: Verdict) -> HttpResponse {
    if let Verdict::Allowed {
        limit,
        remaining,
        reset,
    } = verdict
    {
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-ratelimit-limit", u64::from(limit)),
            ("x-ratelimit-remaining", u64::from(remaining)),
            ("x-ratelimit-reset", whole_seconds(reset)),
        ] {
            headers.insert(
                actix_web::http::header::HeaderName::from_static(name),
                actix_web::http::header::HeaderValue::from(value),
            );
        }
    }
    response
}

/// The query's decoded `(name, value)` pairs. What the SDKs sign is plain text (hex digits,
/// numbers, `1.0`, channel prefixes), so such a query is split in place, borrowing every
/// part; one with escapes (`%` or `+`) goes through the decoder. Splitting in place cost a
/// ninth of what decoding did, on the busiest path of the API.
fn query_pairs(query: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    if query.contains(['%', '+']) {
        return form_urlencoded::parse(query.as_bytes()).collect();
    }
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (Cow::Borrowed(name), Cow::Borrowed(value))
        })
        .collect()
}

fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    query_pairs(req.query_string())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Hands events to the app's supervisor. Usually without waiting for its answer (its mailbox
/// keeps the order, so a later request still sees them handled first); when the mailbox is
/// full the request waits for room, which is the back-pressure on a flood of triggers.
///
/// Events that nobody on this node can receive are dropped here instead: many apps trigger on
/// every change whether or not anyone listens, and each hand-over wakes the supervisor's
/// thread. While the debug console watches the app, everything goes through, so that it shows
/// every API message. (A cluster adapter would forward these to the other nodes instead.)
async fn publish(app: &AppHandle, mut events: Vec<OutgoingEvent>) -> Result<(), ApiError> {
    // The other nodes get every event: whether they have listeners only they know.
    app.publish_remote(&events);
    if !app.events.wants(Kind::ApiEvent) {
        events.retain(|event| may_reach_someone(app, &event.channel));
        if events.is_empty() {
            return Ok(());
        }
    }
    match app.supervisor.try_send(PublishEvents(events)) {
        Ok(()) => Ok(()),
        Err(SendError::Full(msg)) => app.supervisor.send(msg).await.map_err(mailbox_error),
        Err(SendError::Closed(_)) => Err(ApiError::internal()),
    }
}

/// False only for a channel without an actor here that is neither a cache channel (whose event
/// waits for the next subscriber) nor a user's channel (delivered by sign-in, not by
/// subscription). A subscription completing at the same moment may or may not see the event,
/// as it could if the supervisor had handled it first; one that completed before the request
/// is in the index already.
fn may_reach_someone(app: &AppHandle, channel: &str) -> bool {
    channel.starts_with(USER_CHANNEL_PREFIX)
        || ChannelName::classify(channel).cache
        || app.channels.contains(channel)
}

/// Marks a response answered from this node's figures because the cluster is degraded.
fn cluster_header(mut response: HttpResponse, local_only: bool) -> HttpResponse {
    if local_only {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-reverb-pusher-cluster"),
            actix_web::http::header::HeaderValue::from_static("degraded"),
        );
    }
    response
}

/// The counts of the named channels: the cluster's, or this node's (`true`) when the cluster
/// is degraded or off... (`false` for a single node: its figures are the whole truth).
async fn channel_counts(
    app: &AppHandle,
    channels: Vec<String>,
) -> Result<(Vec<ChannelCounts>, bool), ApiError> {
    if let Some(link) = &app.cluster {
        if let Ok(counts) = link.counts(&channels).await {
            let counts = counts
                .into_iter()
                .map(|c| ChannelCounts {
                    subscriptions: c.subscriptions,
                    users: c.users,
                })
                .collect();
            return Ok((counts, false));
        }
    }
    let counts = channels
        .iter()
        .map(|name| app.channels.counts(name))
        .collect();
    Ok((counts, app.cluster.is_some()))
}

/// `200 {}`, the answer to a trigger that asked for no channel info (written as it is: the
/// busiest answer of the API).
fn empty_object() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body("{}")
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))
}

fn mailbox_error<E>(_: E) -> ApiError {
    ApiError::internal()
}

/// `POST /apps/{app_id}/events`
pub async fn trigger_event(
    req: HttpRequest,
    payload: web::Payload,
    app_id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.settings.max_request_body_bytes).await?;
    let (app, config) = authenticate(&req, &state, &app_id, &body)?;
    let (mut events, info) = validate_event(&config, parse_json(&body)?)?;
    let verdict = admit_events(&state, &app, &config, events.len()).await?;
    let request_id = tag_request(&mut events);
    tracing::debug!(app_id = %config.id, %request_id, channels = events.len(), "REST trigger");
    if !info.any() {
        publish(&app, events).await?;
        return Ok(rate_headers(empty_object(), verdict));
    }
    let channels: Vec<String> = events.iter().map(|e| e.channel.clone()).collect();
    publish(&app, events).await?;
    let (counts, local_only) = channel_counts(&app, channels.clone()).await?;
    let rendered: Map<String, Value> = channels
        .iter()
        .zip(counts)
        .map(|(channel, c)| {
            (
                channel.clone(),
                info.render(channel, c.subscriptions, c.users),
            )
        })
        .collect();
    Ok(cluster_header(
        rate_headers(
            HttpResponse::Ok().json(json!({ "channels": rendered })),
            verdict,
        ),
        local_only,
    ))
}

/// The quota and the backend-events rate for `n` accepted events (one per channel of each
/// event); on success they count as `n` messages.
async fn admit_events(
    state: &AppState,
    app: &Arc<AppHandle>,
    config: &AppConfig,
    n: usize,
) -> Result<Verdict, ApiError> {
    within_quota(state, app, config).await?;
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    let verdict = admit(
        app,
        &app.limiters.backend_events,
        config.limits.max_backend_events_per_second,
        n,
        Limit::BackendEvents,
        "events",
    )?;
    app.metrics.api_events_accepted(n as usize);
    Ok(verdict)
}

#[derive(Debug, Deserialize)]
struct BatchBody {
    batch: Vec<EventBody>,
}

/// `POST /apps/{app_id}/batch_events`
pub async fn trigger_batch(
    req: HttpRequest,
    payload: web::Payload,
    app_id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.settings.max_request_body_bytes).await?;
    let (app, config) = authenticate(&req, &state, &app_id, &body)?;
    let batch: BatchBody = parse_json(&body)?;
    let max = config.limits.max_event_batch_size as usize;
    if batch.batch.is_empty() || batch.batch.len() > max {
        return Err(ApiError::bad_request(format!(
            "A batch must hold between 1 and {max} events"
        )));
    }
    let mut all = Vec::new();
    let mut infos = Vec::new();
    for item in batch.batch {
        if item.channels.is_some() {
            return Err(ApiError::bad_request("Each batch item names one channel"));
        }
        let (events, info) = validate_event(&config, item)?;
        infos.push((events[0].channel.clone(), info));
        all.extend(events);
    }
    let verdict = admit_events(&state, &app, &config, all.len()).await?;
    let request_id = tag_request(&mut all);
    tracing::debug!(app_id = %config.id, %request_id, events = all.len(), "REST batch trigger");
    publish(&app, all).await?;
    if !infos.iter().any(|(_, info)| info.any()) {
        return Ok(rate_headers(empty_object(), verdict));
    }
    let names = infos.iter().map(|(c, _)| c.clone()).collect();
    let (counts, local_only) = channel_counts(&app, names).await?;
    let rendered: Vec<Value> = infos
        .iter()
        .zip(counts)
        .map(|((channel, info), c)| info.render(channel, c.subscriptions, c.users))
        .collect();
    Ok(cluster_header(
        rate_headers(
            HttpResponse::Ok().json(json!({ "batch": rendered })),
            verdict,
        ),
        local_only,
    ))
}

/// `GET /apps/{app_id}/channels`
pub async fn list_channels(
    req: HttpRequest,
    app_id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (app, config) = authenticate(&req, &state, &app_id, b"")?;
    let verdict = admit_read(&app, &config)?;
    let prefix = query_param(&req, "filter_by_prefix").filter(|p| !p.is_empty());
    let info = Info::parse(query_param(&req, "info").as_deref())?;
    if info.cache {
        return Err(ApiError::bad_request(
            "info=cache is only available for a single channel",
        ));
    }
    if info.user_count
        && !prefix
            .as_deref()
            .is_some_and(|p| p.starts_with("presence-"))
    {
        return Err(ApiError::bad_request(
            "user_count is only available for presence channels: use filter_by_prefix=presence-",
        ));
    }
    let cluster = match &app.cluster {
        Some(link) => link.occupied(prefix.as_deref()).await.ok(),
        None => None,
    };
    let local_only = app.cluster.is_some() && cluster.is_none();
    let list = match cluster {
        Some(list) => list
            .into_iter()
            .map(|(name, c)| {
                let counts = ChannelCounts {
                    subscriptions: c.subscriptions,
                    users: c.users,
                };
                (name, counts)
            })
            .collect(),
        None => app.channels.occupied(prefix.as_deref()),
    };
    let channels: BTreeMap<String, Value> = list
        .into_iter()
        .map(|(name, counts)| {
            let rendered = info.render(&name, counts.subscriptions, counts.users);
            (name, rendered)
        })
        .collect();
    Ok(cluster_header(
        rate_headers(
            HttpResponse::Ok().json(json!({ "channels": channels })),
            verdict,
        ),
        local_only,
    ))
}

/// The read-requests rate of a `GET`.
fn admit_read(app: &AppHandle, config: &AppConfig) -> Result<Verdict, ApiError> {
    admit(
        app,
        &app.limiters.read_requests,
        config.limits.max_read_requests_per_second,
        1,
        Limit::ReadRequests,
        "read requests",
    )
}

fn path_channel<'a>(config: &AppConfig, name: &'a str) -> Result<ChannelName<'a>, ApiError> {
    ChannelName::parse(name, config.limits.max_channel_name_length as usize)
        .map_err(|e| ApiError::bad_request(format!("Invalid channel {name:?}: {e}")))
}

/// `GET /apps/{app_id}/channels/{channel_name}`
pub async fn get_channel(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, channel) = path.into_inner();
    let (app, config) = authenticate(&req, &state, &app_id, b"")?;
    let verdict = admit_read(&app, &config)?;
    let name = path_channel(&config, &channel)?;
    let info = Info::parse(query_param(&req, "info").as_deref())?;
    if info.user_count && name.kind != ChannelKind::Presence {
        return Err(ApiError::bad_request(
            "user_count is only available for presence channels",
        ));
    }
    if info.cache && !name.cache {
        return Err(ApiError::bad_request(
            "cache is only available for cache channels",
        ));
    }
    let (mut counts, mut local_only) = channel_counts(&app, vec![channel.clone()]).await?;
    let counts = counts.pop().unwrap_or_default();
    let mut out = Map::new();
    out.insert("occupied".into(), (counts.subscriptions > 0).into());
    if let Value::Object(attrs) = info.render(&channel, counts.subscriptions, counts.users) {
        out.extend(attrs);
    }
    if info.cache {
        let from_cluster = match &app.cluster {
            Some(link) => link.cache_get(&channel).await.ok(),
            None => None,
        };
        local_only |= app.cluster.is_some() && from_cluster.is_none();
        let cached = match from_cluster {
            Some(cached) => cached.map(|(_, data, ttl)| (data, ttl.as_secs().max(1))),
            None => app
                .supervisor
                .send(GetCache(channel.clone()))
                .await
                .map_err(mailbox_error)?,
        };
        out.insert(
            "cache".into(),
            cached.map_or(
                Value::Null,
                |(data, ttl)| json!({ "data": data, "ttl": ttl }),
            ),
        );
    }
    Ok(cluster_header(
        rate_headers(HttpResponse::Ok().json(out), verdict),
        local_only,
    ))
}

/// `GET /apps/{app_id}/channels/{channel_name}/users`
pub async fn list_channel_users(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, channel) = path.into_inner();
    let (app, config) = authenticate(&req, &state, &app_id, b"")?;
    let verdict = admit_read(&app, &config)?;
    if !path_channel(&config, &channel)?.is_presence() {
        return Err(ApiError::bad_request(
            "The channel must be a presence channel.",
        ));
    }
    let cluster = match &app.cluster {
        Some(link) => link.roster(&channel).await.ok(),
        None => None,
    };
    let local_only = app.cluster.is_some() && cluster.is_none();
    let users = match cluster {
        Some(roster) => roster.into_iter().map(|(id, _)| id).collect(),
        None => app
            .supervisor
            .send(GetUsers(channel))
            .await
            .map_err(mailbox_error)?,
    };
    let users: Vec<Value> = users.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(cluster_header(
        rate_headers(HttpResponse::Ok().json(json!({ "users": users })), verdict),
        local_only,
    ))
}

/// `POST /apps/{app_id}/users/{user_id}/terminate_connections`
pub async fn terminate_user_connections(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, user_id) = path.into_inner();
    let body = read_body(payload, state.settings.max_request_body_bytes).await?;
    let (app, _) = authenticate(&req, &state, &app_id, &body)?;
    if user_id.is_empty() {
        return Err(ApiError::bad_request("Missing user id"));
    }
    if let Some(link) = &app.cluster {
        link.publish_terminate(&user_id);
    }
    app.supervisor
        .send(TerminateUser(user_id))
        .await
        .map_err(mailbox_error)?;
    Ok(empty_object())
}

#[cfg(test)]
mod tests {
    use super::query_pairs;

    /// In place or decoded, the pairs are those `form_urlencoded` gives.
    #[test]
    fn query_pairs_are_those_of_the_decoder() {
        for query in [
            "",
            "auth_key=k&auth_timestamp=1&auth_version=1.0&body_md5=ab&auth_signature=cd",
            "a=1&&b=&c&=d&e=f=g&",
            "filter_by_prefix=presence-&info=user_count,subscription_count",
            "filter_by_prefix=presence%2D&info=user_count%2Csubscription_count",
            "a+b=c+d&e%20f=%ZZ&%C3%A9=%E9",
        ] {
            let decoded: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
            assert_eq!(query_pairs(query), decoded, "{query}");
        }
    }
}
