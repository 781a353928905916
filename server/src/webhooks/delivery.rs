//! The delivery worker: claims due outbox rows, POSTs them and records each outcome in its row
//! (see the module documentation of [`crate::webhooks`]).
//!
//! A request carries exactly `Content-Type: application/json` (the Node SDK checks it),
//! `X-Pusher-Key` and `X-Pusher-Signature` (hex HMAC-SHA256 of the raw body under the
//! endpoint's own secret, or else the app's current one); an endpoint's custom headers go in
//! first and can never replace those three. The body's `time_ms` is the time of sending
//! ([`super::restamp`]), so late retries and replays still pass SDKs that refuse stale ones.
//!
//! Each endpoint has a circuit breaker ([`super::breaker`]): while it is open, the endpoint's
//! rows are left out of the claim, and endpoints at their concurrency bound are left out too,
//! so a failing or slow endpoint can never fill the claim and starve the others.
//! Redirects are not followed (a 3xx is a failure). Transport errors, timeouts, 5xx, 408 and
//! 429 are retried with exponential backoff and jitter (or after `Retry-After`) until the retry
//! horizon, counted from the row's creation, would be passed: then the row is `dead`. Any other
//! answer outside 2xx is `failed` at once. At most [`PER_ENDPOINT`] requests per endpoint and
//! [`IN_FLIGHT`] in all are in flight.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::PoisonError;
use std::time::Duration;

use actix_web::rt::time::Instant;

use super::breaker::{Breaker, BreakerState, Change, Permit};
use super::{restamp, sign, Webhooks, RESERVED_HEADERS};
use crate::db::webhooks::{Attempt, DeliveryRow, DEAD, DELIVERED, FAILED, PENDING};
use crate::db::Db;
use crate::events::now_ms;

/// Requests in flight to one endpoint.
pub const PER_ENDPOINT: usize = 4;
/// Requests in flight in all.
pub const IN_FLIGHT: usize = 64;
/// Rows read per claim.
const CLAIM: i64 = 200;
/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Bytes of a response kept in the delivery log.
const RESPONSE_BYTES: usize = 512;
/// How long a row of a disabled endpoint or an app not running here waits before it is looked
/// at again.
const PARKED: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Flight {
    rows: HashSet<String>,
    per_endpoint: HashMap<String, usize>,
}

/// The longest the worker sleeps without being woken: endpoints are reloaded this often, for
/// changes made by other processes and apps restarted here.
const REFRESH: Duration = Duration::from_secs(5);

/// Runs until [`Webhooks::shutdown`].
///
/// It does not poll: it sleeps until the earliest due delivery it may send, an open breaker's
/// probe, or [`REFRESH`], unless woken (new rows, a finished request, an endpoint change, a
/// replay). With no enabled endpoint anywhere it reads only the endpoints, every [`REFRESH`].
pub async fn run(webhooks: Webhooks) {
    let config = webhooks.config().clone();
    let client = awc::Client::builder()
        .disable_redirects()
        .timeout(config.timeout)
        .finish();
    let flight = Rc::new(RefCell::new(Flight::default()));
    let mut last_prune: Option<Instant> = None;
    let mut last_gauge: Option<Instant> = None;
    let mut last_refresh = Instant::now();
    loop {
        // Endpoints changed by another process, and apps restarted here, are picked up.
        if last_refresh.elapsed() >= REFRESH {
            last_refresh = Instant::now();
            if let Err(e) = webhooks.refresh().await {
                tracing::warn!(error = %e, "cannot reload the webhook endpoints");
            }
        }
        let mut wait = REFRESH.saturating_sub(last_refresh.elapsed());
        if webhooks.any_enabled() {
            if let Some(next) = claim(&webhooks, &client, &flight).await {
                wait = wait.min(next);
            }
            let now = Instant::now();
            if last_gauge.is_none_or(|at| now - at >= Duration::from_secs(5)) {
                last_gauge = Some(now);
                if let Ok(depth) = crate::db::blocking(webhooks.db(), Db::pending_webhooks).await {
                    webhooks.0.node.metrics.webhook_outbox(depth);
                }
            }
            if last_prune.is_none_or(|at| now - at >= PRUNE_EVERY) {
                last_prune = Some(now);
                prune(&webhooks).await;
            }
        }
        tokio::select! {
            () = webhooks.0.wake.notified() => {}
            () = actix_web::rt::time::sleep(wait.max(MIN_SLEEP)) => {}
            () = webhooks.0.stop.notified() => break,
        }
    }
}

/// How often the delivery log is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The shortest sleep between two claims (a floor against spinning on a clock edge).
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Deletes finished deliveries older than the retention, and beyond the most kept per endpoint.
pub async fn prune(webhooks: &Webhooks) {
    let config = webhooks.config();
    let before = now_ms() - i64::try_from(config.log_retention.as_millis()).unwrap_or(i64::MAX / 2);
    let keep = i64::try_from(config.log_max_deliveries).unwrap_or(i64::MAX);
    match crate::db::blocking(webhooks.db(), move |db| {
        Ok::<_, crate::db::DbError>(db.prune_webhooks(before)? + db.prune_webhooks_by_count(keep)?)
    })
    .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(deliveries = n, "pruned the webhook delivery log"),
        Err(e) => tracing::warn!(error = %e, "cannot prune the webhook delivery log"),
    }
}

/// What the breakers allow now: endpoints to leave out of the claim, and those that may send
/// one probe. Also sets the paused-endpoints gauge.
fn permits(webhooks: &Webhooks, flight: &Flight) -> (Vec<String>, HashSet<String>) {
    let now = now_ms();
    let mut skip: Vec<String> = flight
        .per_endpoint
        .iter()
        .filter(|(_, n)| **n >= PER_ENDPOINT)
        .map(|(id, _)| id.clone())
        .collect();
    let mut probes = HashSet::new();
    let mut breakers = webhooks
        .0
        .breakers
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for (id, breaker) in breakers.iter_mut() {
        match breaker.permit(now) {
            Permit::Flow => {}
            Permit::Probe if !flight.per_endpoint.contains_key(id) => {
                probes.insert(id.clone());
            }
            Permit::Probe | Permit::Paused => skip.push(id.clone()),
        }
    }
    webhooks.0.node.metrics.webhook_paused(paused(&breakers));
    (skip, probes)
}

/// Endpoints whose breaker is not closed (open, or half-open waiting on its probe).
fn paused(breakers: &HashMap<String, Breaker>) -> i64 {
    let n = breakers
        .values()
        .filter(|b| b.state() != BreakerState::Closed)
        .count();
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Starts requests for the due rows it may send; returns how long until the next such row is
/// due (or an open breaker lets a probe through), if anything is waiting.
async fn claim(
    webhooks: &Webhooks,
    client: &awc::Client,
    flight: &Rc<RefCell<Flight>>,
) -> Option<Duration> {
    if flight.borrow().rows.len() >= IN_FLIGHT {
        return None; // a finished request wakes the worker
    }
    let (skip, mut probes) = permits(webhooks, &flight.borrow());
    let busy: Vec<String> = flight.borrow().rows.iter().cloned().collect();
    // A row is claimed just before it is sent (below): due again after the request's timeout
    // and a margin, should this node die while sending it.
    let lease = i64::try_from((webhooks.config().timeout + Duration::from_secs(30)).as_millis())
        .unwrap_or(i64::MAX / 4);
    let rows = match crate::db::blocking(webhooks.db(), move |db| {
        let rows = db.due_webhooks(now_ms(), CLAIM, &skip, &busy)?;
        let next = db.next_webhook_due(&skip, &busy)?;
        Ok::<_, crate::db::DbError>((rows, next))
    })
    .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the webhook outbox");
            return Some(Duration::from_secs(1));
        }
    };
    let (rows, next_due) = rows;
    for row in rows {
        let probe;
        {
            let mut f = flight.borrow_mut();
            if f.rows.len() >= IN_FLIGHT {
                break;
            }
            if f.rows.contains(&row.id)
                || f.per_endpoint.get(&row.endpoint_id).copied().unwrap_or(0) >= PER_ENDPOINT
            {
                continue;
            }
            probe = probes.remove(&row.endpoint_id);
            f.rows.insert(row.id.clone());
            if probe {
                // The probe takes the endpoint's whole allowance: it goes alone.
                f.per_endpoint.insert(row.endpoint_id.clone(), PER_ENDPOINT);
                if let Some(b) = webhooks
                    .0
                    .breakers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_mut(&row.endpoint_id)
                {
                    b.probe_sent();
                }
            } else {
                *f.per_endpoint.entry(row.endpoint_id.clone()).or_default() += 1;
            }
        }
        let (webhooks, client, flight) = (webhooks.clone(), client.clone(), flight.clone());
        actix_web::rt::spawn(async move {
            let (id, endpoint_id) = (row.id.clone(), row.endpoint_id.clone());
            // Several nodes may share the outbox (cluster mode): only the one whose claim
            // takes the row sends it.
            let claim = vec![row.clone()];
            let claimed = crate::db::blocking(webhooks.db(), move |db| {
                db.claim_webhooks(claim, now_ms() + lease)
            })
            .await
            .is_ok_and(|rows| !rows.is_empty());
            if claimed {
                deliver(&webhooks, &client, row).await;
            }
            let mut f = flight.borrow_mut();
            f.rows.remove(&id);
            let left = f.per_endpoint.get_mut(&endpoint_id).map(|n| {
                *n = if probe { 0 } else { n.saturating_sub(1) };
                *n
            });
            if left == Some(0) {
                f.per_endpoint.remove(&endpoint_id);
            }
            drop(f);
            webhooks.wake();
        });
    }
    let now = now_ms();
    let until_due = next_due.map(|at| ms(at - now));
    let until_probe = webhooks
        .0
        .breakers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .filter_map(Breaker::retry_at_ms)
        .min()
        .map(|at| ms(at - now));
    until_due.into_iter().chain(until_probe).min()
}

fn ms(delta: i64) -> Duration {
    Duration::from_millis(u64::try_from(delta).unwrap_or(0))
}

/// What one request came to.
enum Outcome {
    Answered {
        status: u16,
        retry_after: Option<Duration>,
        response: Option<String>,
    },
    Transport(String),
}

async fn deliver(webhooks: &Webhooks, client: &awc::Client, row: DeliveryRow) {
    let now = now_ms();
    let parked = |error: &str| Attempt {
        state: PENDING,
        attempts: row.attempts,
        next_attempt_at_ms: now + i64::try_from(PARKED.as_millis()).unwrap_or(60_000),
        at_ms: now,
        status_code: None,
        latency_ms: None,
        error: Some(error.to_owned()),
        response: None,
    };
    let endpoint = webhooks.endpoint(&row.app_id, &row.endpoint_id);
    let app = webhooks.0.directory.by_id(&row.app_id);
    let attempt = match (endpoint, app) {
        (None, _) => Attempt {
            state: FAILED,
            ..parked("the endpoint no longer exists")
        },
        (Some(endpoint), _) if !endpoint.enabled => parked("the endpoint is disabled"),
        (_, None) => parked("the app is not running on this node"),
        (Some(endpoint), Some(app)) => {
            let (key, secret) = {
                let config = app.config.load();
                // The endpoint's own secret when it has one; else the app's, as Pusher does.
                let secret = endpoint
                    .signing_secret
                    .as_ref()
                    .map_or_else(|| config.secret.clone(), |s| s.0.clone());
                (config.key.clone(), secret)
            };
            let mut request = client.post(&endpoint.url);
            for (name, value) in &endpoint.headers {
                if !RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    request = request.insert_header((name.as_str(), value.as_str()));
                }
            }
            let body = restamp(&row.body, now_ms());
            let request = request
                .insert_header(("Content-Type", "application/json"))
                .insert_header(("X-Pusher-Key", key))
                .insert_header(("X-Pusher-Signature", sign(&secret, &body)));
            let started = Instant::now();
            let outcome = send(request, body, webhooks.config().timeout).await;
            let latency = started.elapsed();
            webhooks
                .0
                .node
                .metrics
                .webhook_latency(latency.as_secs_f64());
            trip(webhooks, &row, outcome.endpoint_failed());
            judge(webhooks, &row, outcome, latency)
        }
    };
    let id = row.id.clone();
    let recorded = attempt.clone();
    if let Err(e) = crate::db::blocking(webhooks.db(), move |db| {
        db.record_webhook_attempt(&id, &recorded)
    })
    .await
    {
        // The row stays pending as it was: it is sent again (at least once).
        tracing::warn!(error = %e, delivery = %row.id, "cannot record a webhook delivery");
    }
}

impl Outcome {
    /// Whether it says the endpoint is failing (for its circuit breaker): no answer, or one it
    /// would be retried after. An answer it chose (2xx, another 4xx) shows it is up.
    fn endpoint_failed(&self) -> bool {
        match self {
            Outcome::Transport(_) => true,
            Outcome::Answered { status, .. } => retryable(*status),
        }
    }
}

fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Records an attempt in its endpoint's breaker; an opening is counted and logged.
fn trip(webhooks: &Webhooks, row: &DeliveryRow, failed: bool) {
    let config = webhooks.config();
    let mut breakers = webhooks
        .0
        .breakers
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let change = breakers.entry(row.endpoint_id.clone()).or_default().record(
        !failed,
        now_ms(),
        config.breaker_failures,
        config.breaker_cooldown,
    );
    if change != Change::None {
        // Set under the lock, so whoever sees the breaker's new state sees the gauge agree
        // (the claim loop would only catch up on its next pass).
        webhooks.0.node.metrics.webhook_paused(paused(&breakers));
    }
    drop(breakers);
    match change {
        Change::None => {}
        Change::Opened => {
            webhooks
                .0
                .node
                .metrics
                .webhooks(&row.app_id, "breaker_opened", 1);
            tracing::warn!(app_id = %row.app_id, endpoint = %row.endpoint_id,
                cooldown_ms = u64::try_from(config.breaker_cooldown.as_millis()).unwrap_or(u64::MAX),
                "webhook endpoint paused: its circuit breaker opened after consecutive failures");
        }
        Change::Closed => {
            tracing::info!(app_id = %row.app_id, endpoint = %row.endpoint_id,
                "webhook endpoint resumed: its circuit breaker closed");
        }
    }
}

async fn send(request: awc::ClientRequest, body: String, timeout: Duration) -> Outcome {
    let mut response = match request.send_body(body).await {
        Ok(response) => response,
        Err(e) => return Outcome::Transport(e.to_string()),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let response =
        match actix_web::rt::time::timeout(timeout, response.body().limit(64 * 1024)).await {
            Ok(Ok(bytes)) => {
                let end = bytes.len().min(RESPONSE_BYTES);
                Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
            }
            _ => None,
        };
    Outcome::Answered {
        status,
        retry_after,
        response,
    }
}

/// The next state of a row after an attempt.
fn judge(webhooks: &Webhooks, row: &DeliveryRow, outcome: Outcome, latency: Duration) -> Attempt {
    let config = webhooks.config();
    let metrics = &webhooks.0.node.metrics;
    let now = now_ms();
    let attempts = row.attempts.saturating_add(1);
    let mut attempt = Attempt {
        state: DELIVERED,
        attempts,
        next_attempt_at_ms: now,
        at_ms: now,
        status_code: None,
        latency_ms: Some(i64::try_from(latency.as_millis()).unwrap_or(i64::MAX)),
        error: None,
        response: None,
    };
    let retry_after = match outcome {
        Outcome::Answered {
            status,
            retry_after,
            response,
        } => {
            attempt.status_code = Some(i32::from(status));
            attempt.response = response;
            if (200..300).contains(&status) {
                metrics.webhooks(&row.app_id, "sent", 1);
                return attempt;
            }
            if !retryable(status) {
                attempt.state = FAILED;
                attempt.error = Some(format!("HTTP {status}: not retried"));
                metrics.webhooks(&row.app_id, "failed", 1);
                tracing::info!(app_id = %row.app_id, endpoint = %row.endpoint_id, status,
                    "webhook refused by its endpoint");
                return attempt;
            }
            attempt.error = Some(format!("HTTP {status}"));
            retry_after
        }
        Outcome::Transport(error) => {
            attempt.error = Some(error);
            None
        }
    };
    let wait = retry_after.unwrap_or_else(|| backoff(config.backoff_base, attempts));
    let next = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
    let horizon =
        row.created_at_ms + i64::try_from(config.retry_horizon.as_millis()).unwrap_or(i64::MAX / 2);
    if next > horizon {
        attempt.state = DEAD;
        metrics.webhooks(&row.app_id, "dead", 1);
        tracing::warn!(app_id = %row.app_id, endpoint = %row.endpoint_id, attempts,
            error = attempt.error.as_deref().unwrap_or(""),
            "webhook dead-lettered: its retry horizon has passed");
    } else {
        attempt.state = PENDING;
        attempt.next_attempt_at_ms = next;
        metrics.webhooks(&row.app_id, "retried", 1);
    }
    attempt
}

/// The wait after the `attempts`-th failure: `base`·2^(attempts-1), at most [`MAX_BACKOFF`],
/// then a random point in its upper half (jitter, so failed endpoints are not hit in step).
fn backoff(base: Duration, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let full = base.saturating_mul(1 << exp).min(MAX_BACKOFF);
    let half = full / 2;
    half + full.mul_f64(rand::random::<f64>() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(1);
        for _ in 0..50 {
            let first = backoff(base, 1);
            assert!(
                first >= Duration::from_millis(500) && first <= base,
                "{first:?}"
            );
            let third = backoff(base, 3);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
            assert!(backoff(base, 40) <= MAX_BACKOFF);
        }
    }
}
