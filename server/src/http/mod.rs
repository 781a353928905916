//! HTTP routes: the WebSocket entry point, the Pusher REST API, the embedded admin UI and the
//! embedded documentation site.

pub mod client;
pub mod docs;
pub mod rest;
pub mod ui;
pub mod ws;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use sha2::Digest;

use crate::error::ApiError;
use crate::state::AppState;
pub use client::{client_info, ClientInfo};

/// The route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Routes are tried in order, each a regex match: the REST API, the busiest, goes first.
    cfg.service(
        web::scope("/apps/{app_id}")
            .wrap(actix_web::middleware::from_fn(count_rest))
            .route("/events", web::post().to(rest::trigger_event))
            .route("/batch_events", web::post().to(rest::trigger_batch))
            .route("/channels", web::get().to(rest::list_channels))
            .route("/channels/{channel_name}", web::get().to(rest::get_channel))
            .route(
                "/channels/{channel_name}/users",
                web::get().to(rest::list_channel_users),
            )
            .route(
                "/users/{user_id}/terminate_connections",
                web::post().to(rest::terminate_user_connections),
            ),
    )
    .route("/app/{key}", web::get().to(ws::connect_app))
    .configure(crate::admin::configure)
    .route("/up", web::get().to(up))
    .route("/ready", web::get().to(ready))
    .route("/", web::get().to(ui::redirect_to_admin))
    .route("/admin", web::get().to(ui::redirect_to_admin))
    .route("/admin/{path:.*}", web::get().to(ui::serve))
    .route("/docs", web::get().to(docs::redirect_to_docs))
    .route("/docs/{path:.*}", web::get().to(docs::serve_docs))
    .default_service(web::to(not_found));
}

/// Routes served on the main port: everything, and `/metrics` unless it has its own port.
pub fn configure_main(metrics_on_main_port: bool) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        if metrics_on_main_port {
            cfg.route("/metrics", web::get().to(metrics_main_port));
        }
        configure(cfg);
    }
}

/// Whether a `/metrics` request may be answered. With `metrics_token` set, only with that
/// token. Without one, on the main port (which faces the internet) only a local peer whose
/// request no proxy relayed; on the separate metrics port, anyone who can reach it.
pub fn metrics_access(
    token: Option<&str>,
    authorization: Option<&str>,
    main_port: bool,
    local_unproxied: bool,
) -> Result<(), ApiError> {
    if let Some(token) = token {
        let expected = format!("Bearer {token}");
        let digest = |s: &str| sha2::Sha256::digest(s.as_bytes());
        return if authorization.map(digest) == Some(digest(&expected)) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "Send Authorization: Bearer <metrics_token>",
            ))
        };
    }
    if main_port && !local_unproxied {
        return Err(ApiError::forbidden(
            "Metrics on the main port answer local requests only; set metrics_token or metrics_port",
        ));
    }
    Ok(())
}

/// Whether the peer is on this host (127.0.0.0/8, `::1`) and no proxy header says it relays
/// someone else.
fn local_unproxied(req: &HttpRequest) -> bool {
    let relayed = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| req.headers().contains_key(*h));
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    !relayed && peer.is_some_and(|ip| ip.is_loopback())
}

fn serve_metrics(req: &HttpRequest, state: &AppState, main_port: bool) -> HttpResponse {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let token = state.settings.metrics_token.as_ref().map(|t| t.0.as_str());
    if let Err(e) = metrics_access(token, authorization, main_port, local_unproxied(req)) {
        return e.error_response();
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.node.metrics.render())
}

/// `GET /metrics` on the separate metrics port: behind `metrics_token` when one is set.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    serve_metrics(&req, &state, false)
}

/// `GET /metrics` on the main port: behind `metrics_token`, or local peers only without one.
async fn metrics_main_port(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    serve_metrics(&req, &state, true)
}

/// Readiness: not draining, and the database answers. 503 with the failing check otherwise;
/// the database's own error goes to the log only (it can name hosts, users and paths).
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let draining = state.node.draining.load(Ordering::Relaxed);
    let db = state.db.clone();
    let database = web::block(move || db.ping(Duration::from_secs(1)))
        .await
        .map_err(|_| crate::db::DbError::Unavailable("database check failed".into()))
        .and_then(|r| r);
    let ready = !draining && database.is_ok();
    let mut database_check = serde_json::json!({ "ok": database.is_ok() });
    if let Err(error) = &database {
        tracing::warn!(%error, "readiness: the database did not answer");
        database_check["error"] = "the database did not answer".into();
    }
    let mut checks =
        serde_json::json!({ "draining": { "ok": !draining }, "database": database_check });
    if let Some(cluster) = &state.cluster {
        // Reported, but not a reason to be unready: a degraded node still serves its own
        // sockets, and a Redis outage must not take every node out of the balancer at once.
        checks["cluster"] = serde_json::json!({
            "ok": cluster.is_healthy(),
            "state": cluster.health(),
            "node_id": cluster.node_id(),
        });
    }
    let body = serde_json::json!({ "ready": ready, "checks": checks });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The panel's security headers: no framing (clickjacking), a strict Content-Security-Policy
/// (scripts and styles from our own files only; `'wasm-unsafe-eval'` lets the page compile
/// the admin UI's WebAssembly), and no MIME sniffing. On every `/admin` response.
pub const PANEL_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the panel's security headers (see [`PANEL_CSP`]) to responses under `/admin`.
pub async fn panel_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::http::header::{self, HeaderValue};
    let panel = req.path() == "/admin" || req.path().starts_with("/admin/");
    let mut response = next.call(req).await?;
    if panel {
        let headers = response.headers_mut();
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PANEL_CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    Ok(response)
}

/// Counts and times REST and admin API requests, and logs them (admin calls at info level,
/// REST calls at debug: under load they are the traffic itself).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path();
    let admin = path.starts_with("/admin/api/");
    if !admin && !path.starts_with("/apps/") {
        return next.call(req).await;
    }
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().clone();
    // Admin lines name the client (parsed, so never raw header text): one line per call, a
    // failed login included, is what an operator or fail2ban needs.
    let client = match (&state, admin) {
        (Some(state), true) => {
            let info = client_info(req.request(), &state.settings.trusted_proxies);
            info.ip
                .parse::<std::net::IpAddr>()
                .map_or_else(|_| "unknown".to_owned(), |ip| ip.to_string())
        }
        _ => String::new(),
    };
    let response = next.call(req).await?;
    // `/apps/:app_id/events` rather than `{app_id}`: some exposition parsers trip on braces.
    let endpoint = response.request().match_pattern().map_or_else(
        || "unmatched".into(),
        |p| p.replace('{', ":").replace('}', ""),
    );
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(state) = state {
        state
            .node
            .metrics
            .http_request(&endpoint, status, elapsed.as_secs_f64());
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    if admin {
        tracing::info!(%method, %endpoint, status, ms, %client, "API call");
    } else if status >= 400 {
        tracing::info!(%method, %endpoint, status, ms, "API call");
    } else {
        tracing::debug!(%method, %endpoint, status, ms, "API call");
    }
    Ok(response)
}

/// Counts a Pusher REST API request in its app's statistics: the request, its status class
/// and its body bytes both ways (the request's `Content-Length`, the response's known size).
async fn count_rest(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let stats = req
        .app_data::<web::Data<AppState>>()
        .filter(|state| state.settings.stats_enabled)
        .and_then(|state| state.directory.stats_by_id(req.match_info().get("app_id")?));
    let Some(stats) = stats else {
        return next.call(req).await;
    };
    let bytes_in = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    let response = next.call(req).await?;
    let bytes_out = match response.response().body().size() {
        actix_web::body::BodySize::Sized(n) => n,
        _ => 0,
    };
    stats.api_request(response.status().as_u16(), bytes_in, bytes_out);
    Ok(response)
}

/// The plain-HTTP listener's only answer: the same URL on https.
pub fn redirect_to_https(req: &HttpRequest, tls_port: u16) -> HttpResponse {
    let host = req.connection_info().host().to_owned();
    let host = host
        .rsplit_once(':')
        .map_or(host.as_str(), |(h, _)| h)
        .to_owned();
    let port = if tls_port == 443 {
        String::new()
    } else {
        format!(":{tls_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    HttpResponse::PermanentRedirect()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("https://{host}{port}{path}"),
        ))
        .finish()
}

/// Liveness: the process answers HTTP.
async fn up() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> HttpResponse {
    ApiError::not_found("No such route").error_response()
}

#[cfg(test)]
mod tests {
    use super::metrics_access;

    #[test]
    fn metrics_need_the_token_or_a_local_unproxied_peer_on_the_main_port() {
        let status = |r: Result<(), crate::error::ApiError>| r.map_err(|e| e.status.as_u16());
        assert_eq!(status(metrics_access(None, None, true, true)), Ok(()));
        assert_eq!(status(metrics_access(None, None, true, false)), Err(403));
        assert_eq!(status(metrics_access(None, None, false, false)), Ok(()));
        let token = Some("t");
        assert_eq!(
            status(metrics_access(token, Some("Bearer t"), true, false)),
            Ok(())
        );
        assert_eq!(status(metrics_access(token, None, true, true)), Err(401));
        assert_eq!(
            status(metrics_access(token, Some("Bearer x"), false, true)),
            Err(401)
        );
    }
}
