//! `GET /app/{key}`: upgrades to a WebSocket and hands it to a session actor.
//!
//! Every refusal is a proper Pusher refusal: the upgrade succeeds, then `pusher:error` and a
//! close frame with the code tell the client why and whether to reconnect.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use rand::Rng;
use shared::{frames, Closing};

use crate::actors::directory::AppHandle;
use crate::actors::outbox::{Bounds, Outbound, Outbox};
use crate::actors::session::{Heartbeat, Session};
use crate::actors::wakeup::Hub;
use crate::apps::AppLimits;
use crate::events::Limit;
use crate::http::client::{address_key, client_info};
use crate::metrics::Rejected;
use crate::ratelimit::AddressVerdict;
use crate::settings::Settings;
use crate::state::AppState;

/// Protocol versions this server speaks; a missing `protocol` counts as the newest.
const PROTOCOLS: std::ops::RangeInclusive<u32> = 4..=7;

/// A new socket id: two random decimal integers, the `\d+\.\d+` form every SDK validates.
fn socket_id() -> String {
    let mut rng = rand::rng();
    format!(
        "{}.{}",
        rng.random_range(1..u32::MAX),
        rng.random_range(1..u32::MAX)
    )
}

/// Whether the client speaks a protocol version this server does.
fn check_protocol(req: &HttpRequest) -> Result<(), Closing> {
    let Some((_, protocol)) =
        form_urlencoded::parse(req.query_string().as_bytes()).find(|(k, _)| k == "protocol")
    else {
        return Ok(());
    };
    match protocol.parse::<u32>() {
        Ok(p) if PROTOCOLS.contains(&p) => Ok(()),
        _ => Err(Closing::UnsupportedProtocol),
    }
}

/// Logs a refused connection. The key comes from the URL, percent-decoded: Debug formatting
/// escapes whatever it holds (newlines, terminal escapes), so it cannot forge log lines.
fn log_refused(key: &str, why: Closing) {
    tracing::info!(app_key = ?key, code = why.code().code(), reason = why.reason(), "connection refused");
}

/// The app's new-connection rates: per client address first (so that one address over its
/// rate does not use up the app's), then the app's. `None` when the connection may go on.
fn connection_rate(
    req: &HttpRequest,
    app: &AppHandle,
    limits: &AppLimits,
    settings: &Settings,
) -> Option<(Closing, Limit)> {
    let per_address = limits.max_new_connections_per_second_per_ip;
    if per_address > 0 {
        let ip = client_info(req, &settings.trusted_proxies).ip;
        match app
            .limiters
            .new_connections_by_address
            .check(per_address, &address_key(&ip))
        {
            AddressVerdict::Allowed => {}
            AddressVerdict::Untracked => app.metrics.untracked_addresses.inc(),
            AddressVerdict::Refused { .. } => {
                return Some((
                    Closing::AddressConnectionRate,
                    Limit::NewConnectionsPerAddress,
                ))
            }
        }
    }
    let per_app = limits.max_new_connections_per_second;
    (!app.limiters.new_connections.check(per_app).allowed())
        .then_some((Closing::AppConnectionRate, Limit::NewConnections))
}

pub async fn connect_app(
    req: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let settings = &state.settings;
    // actix-ws does the handshake and reads the client's frames; frames for the client go
    // through the outbox, whose body replaces actix-ws's writer (one queue, no extra task).
    // (`handle_stream` is our patch of actix-ws: no writer channel is made for us to ignore.)
    let (mut handshake, stream, closed) = actix_ws::handle_stream(&req, body)?;
    let bounds = Bounds {
        frames: settings.outbound_buffer_messages,
        bytes: settings.outbound_buffer_bytes,
    };
    let (outbox, body) = Outbox::new(bounds, closed);
    // This worker thread polls the body: broadcasts wake it through the thread's hub.
    outbox.wake_through(Hub::local());
    let response = HttpResponse::from(handshake.message_body(body)?).map_into_boxed_body();
    let stream = stream
        .max_frame_size(settings.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(settings.max_frame_bytes);
    let metrics = &state.node.metrics;
    let refuse = |why: Closing, rejected: Rejected| {
        log_refused(&key, why);
        metrics.rejected(rejected);
        outbox.send(frames::error(Some(why.code()), why.reason()).into());
        outbox.push(Outbound::Close(why.code().code(), why.reason().into()));
    };

    if state.node.draining.load(Ordering::Relaxed) {
        refuse(Closing::Draining, Rejected::Draining);
        return Ok(response);
    }
    if let Err(why) = check_protocol(&req) {
        refuse(why, Rejected::Protocol);
        return Ok(response);
    }
    let Some(app) = state.directory.by_key(&key) else {
        refuse(Closing::UnknownApp, Rejected::UnknownApp);
        return Ok(response);
    };
    {
        let config = app.config.load();
        let origin = req.headers().get("origin").and_then(|v| v.to_str().ok());
        if !config.origin_allowed(origin) {
            refuse(Closing::OriginNotAllowed, Rejected::Origin);
            return Ok(response);
        }
        if !config.enabled {
            refuse(Closing::AppDisabled, Rejected::AppDisabled);
            return Ok(response);
        }
        if let Some((why, limit)) = connection_rate(&req, &app, &config.limits, settings) {
            app.rate_limited(None, limit);
            refuse(why, Rejected::RateLimited);
            return Ok(response);
        }
    }
    let open = state.node.connections.fetch_add(1, Ordering::Relaxed);
    if settings.max_connections > 0 && open >= settings.max_connections {
        state.node.connections.fetch_sub(1, Ordering::Relaxed);
        refuse(Closing::NodeOverCapacity, Rejected::OverCapacity);
        return Ok(response);
    }
    let heartbeat = Heartbeat {
        activity: Duration::from_secs(settings.activity_timeout_secs),
        pong: Duration::from_secs(settings.pong_timeout_secs),
    };
    outbox.count_sent_bytes(app.metrics.stats.ws_bytes_out());
    // The session decrements the node counter when it stops.
    Session::new(socket_id(), app, outbox, state.node.clone(), heartbeat).start_with(stream);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_key_from_the_url_cannot_forge_log_lines() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let key = "k\n2026-11-30T00:00:00Z  INFO admin logged in\x1b[2J";
        tracing::subscriber::with_default(subscriber, || {
            super::log_refused(key, shared::Closing::UnknownApp);
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("app_key=\"k\\n2026"), "{text}");
    }

    #[test]
    fn socket_ids_match_the_sdk_pattern() {
        for _ in 0..100 {
            let id = super::socket_id();
            let (a, b) = id.split_once('.').unwrap();
            assert!(!a.is_empty() && a.chars().all(|c| c.is_ascii_digit()));
            assert!(!b.is_empty() && b.chars().all(|c| c.is_ascii_digit()));
        }
    }
}
