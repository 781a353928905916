//! The `webhooks` scenario: webhook throughput and the server's CPU per webhook event.
//!
//! The tool starts its own receiver (a bare actix-web server on a free loopback port that
//! checks each request's `X-Pusher-Signature` with the app secret and counts events and
//! requests), adds an endpoint for it through the admin API (`--admin-token`, or an account's
//! `--admin-email` and `--admin-password`), and then has
//! `--connections` WebSocket connections each subscribe to a fresh channel and unsubscribe
//! again, as fast as the server answers, for `--duration` seconds: every cycle is one
//! `channel_occupied` and one `channel_vacated` webhook event. It waits for the last events
//! (the server's vacate delay and batching included), removes the endpoint and reports events
//! and requests per second, invalid signatures, and with `--server-pid` the server's CPU time
//! per webhook event (which includes the WebSocket work that caused it).

use std::cell::Cell;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Args;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{connect, delta, send, subscribe, ws_url, Pool, Server, Target};

#[derive(Args, Clone)]
pub struct Options {
    /// An admin API token (sent as `Authorization: Bearer`) to add and remove the endpoint.
    #[arg(long, env = "REVERB_PUSHER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Or an admin account to log in with.
    #[arg(long, env = "REVERB_PUSHER_ADMIN_EMAIL")]
    admin_email: Option<String>,
    #[arg(long, env = "REVERB_PUSHER_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Connections cycling subscribe/unsubscribe on channels of their own.
    #[arg(long, default_value_t = 50)]
    connections: u32,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Most seconds to wait for the last webhooks after the load (the server's vacate delay
    /// holds `channel_vacated` back, 3 s by default).
    #[arg(long, default_value_t = 15)]
    drain: u64,
}

/// What the receiver counted.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    events: AtomicU64,
    invalid: AtomicU64,
    /// When the last request came (since the load started).
    last: Mutex<Option<Instant>>,
}

fn valid(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(signature) = signature.and_then(|s| hex::decode(s).ok()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// Starts the receiver; its URL and a handle to stop it.
fn receiver(
    secret: String,
    counts: Arc<Counts>,
) -> std::io::Result<(String, actix_web::dev::ServerHandle)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        let (secret, counts) = (secret.clone(), counts.clone());
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let (secret, counts) = (secret.clone(), counts.clone());
            async move {
                let signature = req
                    .headers()
                    .get("x-pusher-signature")
                    .and_then(|v| v.to_str().ok());
                if !valid(&secret, &body, signature) {
                    counts.invalid.fetch_add(1, Ordering::Relaxed);
                }
                let events = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["events"].as_array().map(Vec::len))
                    .unwrap_or(0);
                counts.requests.fetch_add(1, Ordering::Relaxed);
                counts.events.fetch_add(events as u64, Ordering::Relaxed);
                *counts.last.lock().expect("not poisoned") = Some(Instant::now());
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok((format!("http://{addr}/webhooks"), handle))
}

/// How the tool signs in to the admin API.
enum Auth {
    Bearer(String),
    Session { cookie: String, csrf: String },
}

async fn sign_in(client: &awc::Client, target: &Target, options: &Options) -> Result<Auth, String> {
    if let Some(token) = &options.admin_token {
        return Ok(Auth::Bearer(token.clone()));
    }
    let (Some(email), Some(password)) = (&options.admin_email, &options.admin_password) else {
        return Err("give --admin-token, or --admin-email and --admin-password".into());
    };
    let mut response = client
        .post(format!("{}/admin/api/login", target.url))
        .send_json(&json!({"email": email, "password": password}))
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("login: HTTP {}", response.status()));
    }
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("login: no session cookie")?
        .to_owned();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    let csrf = body["csrf_token"].as_str().unwrap_or_default().to_owned();
    Ok(Auth::Session { cookie, csrf })
}

async fn admin(
    client: &awc::Client,
    target: &Target,
    auth: &Auth,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let url = format!("{}/admin/api{path}", target.url);
    let request = match method {
        "POST" => client.post(url),
        _ => client.delete(url),
    };
    let request = match auth {
        Auth::Bearer(token) => request.insert_header(("Authorization", format!("Bearer {token}"))),
        Auth::Session { cookie, csrf } => request
            .insert_header(("Cookie", cookie.as_str()))
            .insert_header(("X-CSRF-Token", csrf.as_str())),
    };
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response.body().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!(
            "{method} {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub async fn run(target: &Target, server: &Server, options: Options) -> Value {
    let counts = Arc::new(Counts::default());
    let (url, handle) = match receiver(target.secret.clone(), counts.clone()) {
        Ok(started) => started,
        Err(e) => return json!({"scenario": "webhooks", "error": e.to_string()}),
    };
    let pool = Rc::new(Pool::new(target.source_addresses));
    let client = pool.client().clone();
    let path = format!("/apps/{}/webhooks", target.app_id);
    let auth = match sign_in(&client, target, &options).await {
        Ok(auth) => auth,
        Err(e) => {
            handle.stop(false).await;
            return json!({"scenario": "webhooks", "error": e});
        }
    };
    let endpoint = match admin(
        &client,
        target,
        &auth,
        "POST",
        &path,
        Some(json!({
            "url": url,
            "event_types": ["channel_occupied", "channel_vacated"],
            "channel_prefix": "bench-hook-",
        })),
    )
    .await
    {
        Ok(endpoint) => endpoint["id"].as_str().unwrap_or_default().to_owned(),
        Err(e) => {
            handle.stop(false).await;
            return json!({"scenario": "webhooks", "error": e});
        }
    };

    let before = server.usage();
    let started = Instant::now();
    let stop = started + Duration::from_secs(options.duration);
    let cycles = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0u64));
    let ws = ws_url(target);
    let mut tasks = Vec::new();
    for c in 0..options.connections {
        let (pool, ws, cycles, failed) = (pool.clone(), ws.clone(), cycles.clone(), failed.clone());
        tasks.push(actix_rt::spawn(async move {
            let result = async {
                let mut socket = connect(pool.client(), &ws).await?;
                let mut i = 0u64;
                while Instant::now() < stop {
                    i += 1;
                    let channel = format!("bench-hook-{c}-{i}");
                    subscribe(&mut socket, &channel).await?;
                    send(
                        &mut socket,
                        &json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}),
                    )
                    .await?;
                    cycles.set(cycles.get() + 1);
                }
                Ok::<_, String>(())
            }
            .await;
            if let Err(e) = result {
                if failed.get() < 3 {
                    eprintln!("connection {c} failed: {e}");
                }
                failed.set(failed.get() + 1);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let load_secs = started.elapsed().as_secs_f64();
    let expected = cycles.get() * 2;
    let deadline = Instant::now() + Duration::from_secs(options.drain);
    while counts.events.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let after = server.usage();
    let last = counts
        .last
        .lock()
        .expect("not poisoned")
        .map_or(0.0, |at| (at - started).as_secs_f64());
    if let Err(e) = admin(
        &client,
        target,
        &auth,
        "DELETE",
        &format!("{path}/{endpoint}"),
        None,
    )
    .await
    {
        eprintln!("the endpoint was not removed: {e}");
    }
    handle.stop(false).await;

    let events = counts.events.load(Ordering::Relaxed);
    let requests = counts.requests.load(Ordering::Relaxed);
    let invalid = counts.invalid.load(Ordering::Relaxed);
    let per_sec = |n: u64| if last > 0.0 { n as f64 / last } else { 0.0 };
    let cpu = delta(after.cpu_us, before.cpu_us);
    let cpu_per_event = cpu
        .filter(|_| events > 0)
        .map(|us| us as f64 / events as f64);
    println!(
        "{} cycles in {load_secs:.1}s ({} connections failed); received {events} of {expected} webhook events in {requests} requests ({:.1} events per request) by {last:.1}s: {:.0} events/s, {:.0} requests/s; {invalid} invalid signatures; server CPU {} per webhook event",
        cycles.get(),
        failed.get(),
        if requests > 0 { events as f64 / requests as f64 } else { 0.0 },
        per_sec(events),
        per_sec(requests),
        cpu_per_event.map_or_else(|| "?".into(), |us| format!("{us:.1} µs")),
    );
    json!({
        "scenario": "webhooks", "connections": options.connections, "duration_secs": options.duration,
        "cycles": cycles.get(), "failed_connections": failed.get(), "expected_events": expected,
        "events": events, "requests": requests, "invalid_signatures": invalid,
        "seconds_to_last_webhook": last, "events_per_sec": per_sec(events),
        "requests_per_sec": per_sec(requests), "server_cpu_us": cpu,
        "server_cpu_us_per_event": cpu_per_event,
    })
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn signatures_are_checked() {
        // The vector of the server's own tests (Pusher's documented example).
        let body = br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test-channel"}]}"#;
        let signature = "5dd6562a9f744b72a688bcdfea41c14c2c56d12c44c99e32c08face4cc1e8aeb";
        assert!(valid("7ad3773142a6692b25b8", body, Some(signature)));
        assert!(!valid("another-secret", body, Some(signature)));
        assert!(!valid("7ad3773142a6692b25b8", body, None));
    }
}
