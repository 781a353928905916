//! Statistics in the admin API: time series (server and per app, JSON or CSV), period
//! summaries (totals, peaks and when, busiest hours), the per-app table, monthly usage
//! reports, each app's recent errors, the server's health and the live numbers as server-sent
//! events. What the numbers mean is written once, in `shared::stats`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;
use shared::admin::ErrorBody;
use shared::stats::{
    range_secs, step_for, AppStatsTable, LiveStats, RecentError, ServerHealth, StatsSeries,
    StatsSummary, UsageReport, DAY, MINUTE, SERVER,
};
use utoipa::IntoParams;

use super::auth::Principal;
use super::AdminState;
use crate::db::now_unix;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stats::health;
use crate::stats::query::{self, Reader};
use crate::stats::schedule::floor;

/// Longest range a request may ask for.
const MAX_RANGE: i64 = 400 * DAY;
/// Most points one series may have.
const MAX_POINTS: i64 = 1500;
/// A live stream ends after this long (the browser reconnects, and is authenticated again).
const LIVE_FOR: Duration = Duration::from_secs(300);

/// The period and form of a statistics request.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct RangeQuery {
    /// A named range ending now: `1h`, `24h`, `7d`, `30d` or `13mo` (default `24h`).
    /// Ignored when `from` is given.
    pub range: Option<String>,
    /// Start, unix seconds (inclusive).
    pub from: Option<i64>,
    /// End, unix seconds (exclusive; default now).
    pub to: Option<i64>,
    /// Seconds per point, a multiple of 60 (default: picked from the range, at most ~400
    /// points).
    pub step: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// A checked period: `[from, to)` and the step.
struct Period {
    from: i64,
    to: i64,
    step: i64,
    csv: bool,
}

fn period(q: &RangeQuery, now: i64) -> Result<Period, ApiError> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::validation("format", "format is json or csv")),
    };
    let check_step = |step: i64| {
        if step < MINUTE || step % MINUTE != 0 {
            return Err(ApiError::validation(
                "step",
                "step is a multiple of 60 seconds",
            ));
        }
        Ok(step)
    };
    let (from, to, step) = if let Some(from) = q.from {
        let to = q.to.unwrap_or(now + 1);
        if from >= to {
            return Err(ApiError::validation("from", "from must be before to"));
        }
        if to - from > MAX_RANGE {
            return Err(ApiError::validation("from", "a range is at most 400 days"));
        }
        (
            from,
            to,
            check_step(q.step.unwrap_or_else(|| step_for(to - from)))?,
        )
    } else {
        let name = q.range.as_deref().unwrap_or("24h");
        let secs = range_secs(name).ok_or_else(|| {
            ApiError::validation("range", "range is one of 1h, 24h, 7d, 30d, 13mo")
        })?;
        let step = check_step(q.step.unwrap_or_else(|| step_for(secs)))?;
        // The running bucket and the whole buckets of `secs` before it, so a named range
        // always has the same number of points (`1h`: 61), whatever the second it is asked
        // at; `now + 1 - secs` would lose the 61st point when `now + 1` falls on a minute.
        (floor(now, step) - secs, now + 1, step)
    };
    if (to - floor(from, step)) / step > MAX_POINTS {
        return Err(ApiError::validation(
            "step",
            format!("at most {MAX_POINTS} points: use a larger step"),
        ));
    }
    Ok(Period {
        from,
        to,
        step,
        csv,
    })
}

fn known_app(state: &AppState, id: &str) -> Result<(), ApiError> {
    state
        .directory
        .by_id(id)
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found(format!("No app with id {id}")))
}

fn csv_response(name: &str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(body)
}

async fn series_of(
    state: &AppState,
    app_id: String,
    q: &RangeQuery,
) -> Result<HttpResponse, ApiError> {
    let now = now_unix();
    let p = period(q, now)?;
    let (from, to, step) = (p.from, p.to, p.step);
    let name = app_id.clone();
    let series = crate::db::blocking(&state.db, move |db| {
        Reader { db, now }.series(&app_id, from, to, step)
    })
    .await?;
    if p.csv {
        let label = if name == SERVER {
            "server".to_owned()
        } else {
            format!("app-{name}")
        };
        let file = format!("stats-{label}-{}-{step}s.csv", query::iso(series.from));
        return Ok(csv_response(
            &file.replace(':', ""),
            query::series_csv(&series),
        ));
    }
    Ok(HttpResponse::Ok().json(series))
}

/// The whole server's time series (every field of `Counts` per point).
#[utoipa::path(get, path = "/admin/api/stats/series", tag = "stats", params(RangeQuery),
    responses((status = 200, body = StatsSeries, description = "JSON, or CSV with format=csv"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn server_series(
    _: Principal,
    state: web::Data<AppState>,
    q: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    series_of(&state, SERVER.to_owned(), &q).await
}

/// One app's time series.
#[utoipa::path(get, path = "/admin/api/apps/{id}/stats/series", tag = "stats",
    params(("id" = String, Path, description = "App id"), RangeQuery),
    responses((status = 200, body = StatsSeries, description = "JSON, or CSV with format=csv"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn app_series(
    _: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    known_app(&state, &id)?;
    series_of(&state, id.into_inner(), &q).await
}

async fn summary_of(
    state: &AppState,
    app_id: String,
    q: &RangeQuery,
) -> Result<StatsSummary, ApiError> {
    let now = now_unix();
    let p = period(q, now)?;
    let (from, to) = (p.from, p.to);
    Ok(crate::db::blocking(&state.db, move |db| {
        Reader { db, now }.summary(&app_id, from, to)
    })
    .await?)
}

/// The whole server's totals, peaks and busiest hours over a period.
#[utoipa::path(get, path = "/admin/api/stats/summary", tag = "stats", params(RangeQuery),
    responses((status = 200, body = StatsSummary), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn server_summary(
    _: Principal,
    state: web::Data<AppState>,
    q: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(summary_of(&state, SERVER.to_owned(), &q).await?))
}

/// One app's totals, peaks (highest concurrent connections and when) and busiest hours.
#[utoipa::path(get, path = "/admin/api/apps/{id}/stats/summary", tag = "stats",
    params(("id" = String, Path, description = "App id"), RangeQuery),
    responses((status = 200, body = StatsSummary), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn app_summary(
    _: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    known_app(&state, &id)?;
    Ok(HttpResponse::Ok().json(summary_of(&state, id.into_inner(), &q).await?))
}

/// Every app's totals over a period, with its open connections now. Apps deleted since
/// appear as `(deleted)` while their rows last.
#[utoipa::path(get, path = "/admin/api/stats/apps", tag = "stats", params(RangeQuery),
    responses((status = 200, body = AppStatsTable), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn app_table(
    _: Principal,
    state: web::Data<AppState>,
    q: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = now_unix();
    let p = period(&q, now)?;
    let (from, to) = (p.from, p.to);
    let mut totals =
        crate::db::blocking(&state.db, move |db| Reader { db, now }.table(from, to)).await?;
    let mut apps = Vec::new();
    for handle in state.directory.all() {
        let config = handle.config.load();
        let counts = totals.remove(&config.id).unwrap_or_default();
        apps.push(query::table_row(
            &config.id,
            &config.name,
            config.enabled,
            handle.metrics.connections.get(),
            counts,
        ));
    }
    for (id, counts) in totals {
        apps.push(query::table_row(&id, "(deleted)", false, 0, counts));
    }
    apps.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    Ok(HttpResponse::Ok().json(AppStatsTable { from, to, apps }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct FormatQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

async fn usage_report(
    state: &AppState,
    month: &str,
    only: Option<String>,
    format: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let csv = match format {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::validation("format", "format is json or csv")),
    };
    let (start, end) = query::month_range(month)
        .ok_or_else(|| ApiError::validation("month", "month is YYYY-MM"))?;
    let now = now_unix();
    let names: std::collections::HashMap<String, String> = state
        .directory
        .all()
        .iter()
        .map(|h| {
            let c = h.config.load();
            (c.id.clone(), c.name.clone())
        })
        .collect();
    let ids: Vec<String> = if let Some(id) = only {
        vec![id]
    } else {
        let mut ids: Vec<String> = names.keys().cloned().collect();
        let stored = crate::db::blocking(&state.db, move |db| {
            Reader { db, now }.table(start, end.min(now + 1).max(start + 1))
        })
        .await?;
        ids.extend(stored.into_keys());
        ids.sort();
        ids.dedup();
        ids
    };
    let rows = crate::db::blocking(&state.db, move |db| {
        let reader = Reader { db, now };
        ids.iter()
            .map(|id| {
                let s = reader.summary(id, start, end)?;
                let name = names.get(id).map_or("(deleted)", String::as_str);
                Ok(query::usage_row(id, name, &s))
            })
            .collect::<Result<Vec<_>, crate::db::DbError>>()
    })
    .await?;
    if csv {
        return Ok(csv_response(
            &format!("usage-{month}.csv"),
            query::usage_csv(month, &rows),
        ));
    }
    Ok(HttpResponse::Ok().json(UsageReport {
        schema: "reverb-pusher/usage/1".into(),
        month: month.to_owned(),
        period_start: start,
        period_end: end,
        complete: now >= end,
        generated_at: now,
        server_version: env!("CARGO_PKG_VERSION").into(),
        apps: rows,
    }))
}

/// Every app's usage in a calendar month (UTC): connections peak, messages, bandwidth.
#[utoipa::path(get, path = "/admin/api/stats/usage/{month}", tag = "stats",
    params(("month" = String, Path, description = "YYYY-MM"), FormatQuery),
    responses((status = 200, body = UsageReport, description = "JSON, or CSV with format=csv"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn server_usage(
    _: Principal,
    state: web::Data<AppState>,
    month: web::Path<String>,
    q: web::Query<FormatQuery>,
) -> Result<HttpResponse, ApiError> {
    usage_report(&state, &month, None, q.format.as_deref()).await
}

/// One app's usage in a calendar month (UTC).
#[utoipa::path(get, path = "/admin/api/apps/{id}/stats/usage/{month}", tag = "stats",
    params(("id" = String, Path, description = "App id"), ("month" = String, Path, description = "YYYY-MM"), FormatQuery),
    responses((status = 200, body = UsageReport, description = "JSON, or CSV with format=csv"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn app_usage(
    _: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<FormatQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, month) = path.into_inner();
    known_app(&state, &id)?;
    usage_report(&state, &month, Some(id), q.format.as_deref()).await
}

/// An app's last `pusher:error`s and refusals, newest first (at most 50; kept in memory, or in
/// cluster mode in Redis, shared by every node, each error naming its node).
#[utoipa::path(get, path = "/admin/api/apps/{id}/stats/errors", tag = "stats",
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = [RecentError]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn recent_errors(
    _: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    known_app(&state, &id)?;
    let errors = state
        .stats
        .recent_errors_of(state.cluster.as_ref(), &id)
        .await;
    Ok(HttpResponse::Ok().json(errors))
}

/// The server's health: uptime, version, CPU, memory, open files, connections against
/// capacity, database and Redis.
#[utoipa::path(get, path = "/admin/api/stats/health", tag = "stats",
    responses((status = 200, body = ServerHealth), (status = 401, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn server_health(
    _: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let db = state.db.clone();
    let database = web::block(move || db.ping(Duration::from_secs(1)))
        .await
        .is_ok_and(|r| r.is_ok());
    let process = web::block(health::process).await.unwrap_or_default();
    let uptime = now_unix() - state.stats.started_at();
    let (pending, dropped) = state.stats.pending();
    #[allow(clippy::cast_precision_loss)]
    let cpu_percent = CPU.percent(process.cpu_seconds, uptime as f64);
    Ok(HttpResponse::Ok().json(ServerHealth {
        version: env!("CARGO_PKG_VERSION").into(),
        node: state.stats.config().node.clone(),
        uptime_secs: uptime,
        cpu_percent,
        cpu_seconds: (process.cpu_seconds * 100.0).round() / 100.0,
        rss_bytes: process.rss_bytes,
        open_files: process.open_files,
        max_open_files: process.max_open_files,
        connections: i64::try_from(
            state
                .node
                .connections
                .load(std::sync::atomic::Ordering::Relaxed),
        )
        .unwrap_or(i64::MAX),
        max_connections: i64::try_from(state.settings.max_connections).unwrap_or(i64::MAX),
        database: if database { "ok" } else { "unavailable" }.into(),
        redis: "not configured".into(),
        stats_pending_rows: i64::try_from(pending).unwrap_or(i64::MAX),
        stats_dropped_rows: i64::try_from(dropped).unwrap_or(i64::MAX),
    }))
}

static CPU: std::sync::LazyLock<health::CpuMeter> =
    std::sync::LazyLock::new(health::CpuMeter::default);

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct LiveQuery {
    /// An app id for that app's numbers; the whole server's without.
    pub app: Option<String>,
}

struct LiveWatch {
    rx: tokio::sync::watch::Receiver<Arc<crate::stats::Live>>,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
    app: Option<String>,
    revocations: u64,
    until: Instant,
}

fn live_of(live: &crate::stats::Live, app: Option<&str>) -> LiveStats {
    match app {
        None => live.server.clone(),
        Some(id) => live.apps.get(id).cloned().unwrap_or_else(|| LiveStats {
            at_ms: live.server.at_ms,
            app_id: id.to_owned(),
            ..LiveStats::default()
        }),
    }
}

async fn next_live(mut w: LiveWatch) -> Option<(Result<Bytes, Infallible>, LiveWatch)> {
    // The stream ends when a credential was revoked anywhere, the server drains, or it is
    // old: the browser's EventSource reconnects, and that request is authenticated afresh.
    let ended = |w: &LiveWatch| {
        w.state
            .node
            .draining
            .load(std::sync::atomic::Ordering::Relaxed)
            || w.admin.revocation_count() != w.revocations
            || Instant::now() >= w.until
    };
    if ended(&w) {
        return None;
    }
    match tokio::time::timeout(Duration::from_secs(15), w.rx.changed()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return None,
        Err(_) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), w)),
    }
    if ended(&w) {
        return None;
    }
    let stats = live_of(&w.rx.borrow_and_update(), w.app.as_deref());
    let json = serde_json::to_string(&stats).unwrap_or_default();
    Some((Ok(Bytes::from(format!("data: {json}\n\n"))), w))
}

/// The live numbers, once a second, as `text/event-stream` (each `data:` a `LiveStats`).
#[utoipa::path(get, path = "/admin/api/stats/live", tag = "stats", params(LiveQuery),
    responses((status = 200, description = "Server-sent events, each `data:` a LiveStats", content_type = "text/event-stream", body = LiveStats),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn live(
    _: Principal,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
    q: web::Query<LiveQuery>,
) -> Result<HttpResponse, ApiError> {
    if let Some(id) = &q.app {
        known_app(&state, id)?;
    }
    if !state.settings.stats_enabled {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "stats_disabled",
            "Statistics are turned off (stats_enabled = false)",
        ));
    }
    let rx = state.stats.live();
    let first = live_of(&rx.borrow(), q.app.as_deref());
    let hello = format!(
        "retry: 2000\ndata: {}\n\n",
        serde_json::to_string(&first).unwrap_or_default()
    );
    let watch = LiveWatch {
        rx,
        revocations: admin.revocation_count(),
        state,
        admin,
        app: q.into_inner().app,
        until: Instant::now() + LIVE_FOR,
    };
    let hello = futures_util::stream::once(async move { Ok::<_, Infallible>(Bytes::from(hello)) });
    let body =
        futures_util::StreamExt::chain(hello, futures_util::stream::unfold(watch, next_live));
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(range: Option<&str>, from: Option<i64>, to: Option<i64>, step: Option<i64>) -> RangeQuery {
        RangeQuery {
            range: range.map(Into::into),
            from,
            to,
            step,
            format: None,
        }
    }

    #[test]
    fn periods_are_checked_and_steps_picked_from_the_range() {
        let now = 1_796_083_200;
        let p = period(&q(Some("7d"), None, None, None), now).unwrap();
        assert_eq!((p.to - p.from, p.step), (7 * DAY + 1, 3600));
        // A named range is the running bucket and the whole ones before it: 61 points for
        // `1h` at every second of a minute, the last second included.
        for now in now..now + 60 {
            let p = period(&q(Some("1h"), None, None, None), now).unwrap();
            let points = query::points(&query::Buckets::new(), p.from, p.to, p.step, now);
            assert_eq!(points.len(), 61, "at {}s past the minute", now % 60);
            assert!(points[60].in_progress);
        }
        let p = period(&q(None, Some(now - 600), Some(now), None), now).unwrap();
        assert_eq!(p.step, 60);
        let field = |r: Result<Period, ApiError>| r.err().map(|e| e.status.as_u16());
        assert_eq!(
            field(period(&q(Some("2w"), None, None, None), now)),
            Some(422)
        );
        assert_eq!(
            field(period(&q(None, Some(now), Some(now), None), now)),
            Some(422)
        );
        assert_eq!(
            field(period(&q(None, Some(0), Some(now), None), now)),
            Some(422)
        );
        assert_eq!(
            field(period(&q(Some("1h"), None, None, Some(90)), now)),
            Some(422)
        );
        assert_eq!(
            field(period(&q(Some("13mo"), None, None, Some(60)), now)),
            Some(422)
        );
        let mut csv = q(Some("1h"), None, None, None);
        csv.format = Some("xml".into());
        assert_eq!(field(period(&csv, now)), Some(422));
    }
}
