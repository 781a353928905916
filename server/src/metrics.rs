//! Prometheus metrics. Labels stay bounded: an app id, a close code, a message kind, an HTTP
//! route pattern and status, a refusal reason - never a channel or a user.
//!
//! Hot paths hold pre-resolved per-app handles ([`AppMetrics`]), so counting a delivery is a
//! plain atomic add, not a label lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::events::Limit;
use crate::ratelimit::Usage;
use crate::stats::AppStats;

/// Every metric of the node.
pub struct Metrics {
    registry: Registry,
    connections: IntGaugeVec,
    connections_opened: IntCounterVec,
    connections_closed: IntCounterVec,
    messages_received: IntCounterVec,
    messages_sent: IntCounterVec,
    bytes_received: IntCounterVec,
    bytes_sent: IntCounterVec,
    subscriptions: IntGaugeVec,
    channels: IntGaugeVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    rejected: IntCounterVec,
    rate_limited: IntCounterVec,
    untracked_addresses: IntCounter,
    webhooks: IntCounterVec,
    webhook_latency: prometheus::Histogram,
    webhook_outbox: IntGauge,
    webhook_paused: IntGauge,
    /// Webhook requests sent and failed per app, for statistics (the Prometheus vector has no
    /// read that leaves an absent series absent). One entry per app that had a webhook.
    webhook_totals: Mutex<HashMap<String, [u64; 2]>>,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help).namespace("reverb_pusher"), labels)
        .expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help).namespace("reverb_pusher"), labels)
        .expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

impl Metrics {
    /// Adds a collector owned by another module (the cluster's metrics) to this registry.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        self.registry.register(collector).expect("unique metric");
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "REST and admin API latency",
            )
            .namespace("reverb_pusher")
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["endpoint"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("unique metric");
        let webhook_latency = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "webhook_delivery_duration_seconds",
                "Time from sending a webhook request to its answer",
            )
            .namespace("reverb_pusher")
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(webhook_latency.clone()))
            .expect("unique metric");
        let webhook_outbox = IntGauge::with_opts(
            Opts::new(
                "webhook_outbox",
                "Webhook deliveries waiting in the database outbox",
            )
            .namespace("reverb_pusher"),
        )
        .expect("valid metric");
        registry
            .register(Box::new(webhook_outbox.clone()))
            .expect("unique metric");
        let webhook_paused = IntGauge::with_opts(
            Opts::new(
                "webhook_endpoints_paused",
                "Webhook endpoints whose circuit breaker is open or half-open",
            )
            .namespace("reverb_pusher"),
        )
        .expect("valid metric");
        registry
            .register(Box::new(webhook_paused.clone()))
            .expect("unique metric");
        Self {
            webhook_paused,
            webhooks: counter(
                r,
                "webhooks_total",
                "Webhook events queued and dropped, requests sent, failed, retried and dead, and circuit breakers opened",
                &["app_id", "outcome"],
            ),
            webhook_latency,
            webhook_outbox,
            webhook_totals: Mutex::default(),
            connections: gauge(r, "connections", "Open WebSocket connections", &["app_id"]),
            connections_opened: counter(
                r,
                "connections_opened_total",
                "WebSocket connections accepted",
                &["app_id"],
            ),
            connections_closed: counter(
                r,
                "connections_closed_total",
                "WebSocket connections closed, by close code",
                &["app_id", "code"],
            ),
            messages_received: counter(
                r,
                "ws_messages_received_total",
                "Frames received from clients, by kind",
                &["app_id", "kind"],
            ),
            messages_sent: counter(
                r,
                "ws_messages_sent_total",
                "Frames sent to clients, by kind",
                &["app_id", "kind"],
            ),
            bytes_received: counter(
                r,
                "ws_bytes_received_total",
                "Bytes of frames received from clients",
                &["app_id"],
            ),
            bytes_sent: counter(
                r,
                "ws_bytes_sent_total",
                "Bytes of frames queued to clients",
                &["app_id"],
            ),
            subscriptions: gauge(r, "subscriptions", "Channel subscriptions", &["app_id"]),
            channels: gauge(
                r,
                "channels",
                "Occupied channels (and cache channels holding an event)",
                &["app_id"],
            ),
            http_requests: counter(
                r,
                "http_requests_total",
                "REST and admin API requests, by route and status",
                &["endpoint", "status"],
            ),
            http_duration,
            rejected: counter(
                r,
                "rejected_total",
                "Refused actions, by reason",
                &["reason"],
            ),
            rate_limited: counter(
                r,
                "rate_limited_total",
                "Actions refused by an app's rate limit or message quota, by app and limit",
                &["app_id", "limit"],
            ),
            untracked_addresses: {
                let c = IntCounter::with_opts(
                    Opts::new(
                        "rate_limit_untracked_addresses_total",
                        "New connections let through uncounted because an app's table of client addresses was full",
                    )
                    .namespace("reverb_pusher"),
                )
                .expect("valid metric");
                registry
                    .register(Box::new(c.clone()))
                    .expect("unique metric");
                c
            },
            registry,
        }
    }
}

/// What kind of client frame was received.
#[derive(Debug, Clone, Copy)]
pub enum Received {
    Ping,
    Subscribe,
    Unsubscribe,
    Signin,
    ClientEvent,
    Other,
}

/// A node-wide refusal reason.
#[derive(Debug, Clone, Copy)]
pub enum Rejected {
    UnknownApp,
    AppDisabled,
    AppOverQuota,
    OverCapacity,
    Draining,
    Origin,
    Protocol,
    SubscriptionAuth,
    /// A subscription over the per-connection or per-app channel cap.
    SubscriptionLimit,
    ClientEvent,
    ClientEventRateLimit,
    SlowConsumer,
    RestAuth,
    /// A new connection over one of the app's connection rates.
    RateLimited,
}

impl Rejected {
    fn label(self) -> &'static str {
        match self {
            Self::UnknownApp => "unknown_app",
            Self::AppDisabled => "app_disabled",
            Self::AppOverQuota => "app_over_quota",
            Self::OverCapacity => "over_capacity",
            Self::Draining => "draining",
            Self::Origin => "origin",
            Self::Protocol => "protocol",
            Self::SubscriptionAuth => "subscription_auth",
            Self::SubscriptionLimit => "subscription_limit",
            Self::ClientEvent => "client_event",
            Self::ClientEventRateLimit => "client_event_rate_limit",
            Self::SlowConsumer => "slow_consumer",
            Self::RestAuth => "rest_auth",
            Self::RateLimited => "rate_limited",
        }
    }
}

impl Metrics {
    /// The handles one app's actors count with.
    pub fn for_app(&self, app_id: &str) -> AppMetrics {
        let kind = |kind: &str| self.messages_received.with_label_values(&[app_id, kind]);
        AppMetrics {
            app_id: app_id.to_owned(),
            connections: self.connections.with_label_values(&[app_id]),
            opened: self.connections_opened.with_label_values(&[app_id]),
            received: [
                kind("ping"),
                kind("subscribe"),
                kind("unsubscribe"),
                kind("signin"),
                kind("client_event"),
                kind("other"),
            ],
            sent_events: self.messages_sent.with_label_values(&[app_id, "event"]),
            sent_client_events: self
                .messages_sent
                .with_label_values(&[app_id, "client_event"]),
            sent_protocol: self.messages_sent.with_label_values(&[app_id, "protocol"]),
            bytes_in: self.bytes_received.with_label_values(&[app_id]),
            bytes_out: self.bytes_sent.with_label_values(&[app_id]),
            subscriptions: self.subscriptions.with_label_values(&[app_id]),
            channels: self.channels.with_label_values(&[app_id]),
            closed: self.connections_closed.clone(),
            rate_limited: self.rate_limited.clone(),
            untracked_addresses: self.untracked_addresses.clone(),
            usage: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// Forgets a deleted app's series.
    pub fn remove_app(&self, app_id: &str) {
        self.webhook_totals_lock().remove(app_id);
        let _ = self.connections.remove_label_values(&[app_id]);
        let _ = self.connections_opened.remove_label_values(&[app_id]);
        let _ = self.bytes_received.remove_label_values(&[app_id]);
        let _ = self.bytes_sent.remove_label_values(&[app_id]);
        let _ = self.subscriptions.remove_label_values(&[app_id]);
        let _ = self.channels.remove_label_values(&[app_id]);
        for kind in [
            "ping",
            "subscribe",
            "unsubscribe",
            "signin",
            "client_event",
            "other",
        ] {
            let _ = self.messages_received.remove_label_values(&[app_id, kind]);
        }
        for kind in ["event", "client_event", "protocol"] {
            let _ = self.messages_sent.remove_label_values(&[app_id, kind]);
        }
        for limit in Limit::ALL {
            let _ = self
                .rate_limited
                .remove_label_values(&[app_id, limit.label()]);
        }
    }

    pub fn rejected(&self, reason: Rejected) {
        self.rejected.with_label_values(&[reason.label()]).inc();
    }

    pub fn http_request(&self, endpoint: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[endpoint])
            .observe(seconds);
    }

    /// Counts webhook events (`queued`, `dropped`), requests (`sent`, `failed`, `retried`,
    /// `dead`) or circuit breaker openings (`breaker_opened`) of an app.
    pub fn webhooks(&self, app_id: &str, outcome: &str, n: u64) {
        self.webhooks
            .with_label_values(&[app_id, outcome])
            .inc_by(n);
        let slot = match outcome {
            "sent" => 0,
            "failed" => 1,
            _ => return,
        };
        self.webhook_totals_lock()
            .entry(app_id.to_owned())
            .or_default()[slot] += n;
    }

    fn webhook_totals_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, [u64; 2]>> {
        // Each entry is two whole numbers: valid after any panic.
        self.webhook_totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Webhook requests `[sent, failed]` of an app so far.
    pub fn webhook_totals(&self, app_id: &str) -> [u64; 2] {
        self.webhook_totals_lock()
            .get(app_id)
            .copied()
            .unwrap_or_default()
    }

    pub fn webhook_latency(&self, seconds: f64) {
        self.webhook_latency.observe(seconds);
    }

    pub fn webhook_outbox(&self, depth: i64) {
        self.webhook_outbox.set(depth);
    }

    pub fn webhook_paused(&self, endpoints: i64) {
        self.webhook_paused.set(endpoints);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// One app's pre-resolved metric handles.
#[derive(Clone)]
pub struct AppMetrics {
    app_id: String,
    pub connections: IntGauge,
    pub opened: IntCounter,
    received: [IntCounter; 6],
    pub sent_events: IntCounter,
    pub sent_client_events: IntCounter,
    pub sent_protocol: IntCounter,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub subscriptions: IntGauge,
    pub channels: IntGauge,
    closed: IntCounterVec,
    rate_limited: IntCounterVec,
    pub untracked_addresses: IntCounter,
    /// Messages as Pusher counts them, for the app's quota.
    pub usage: Arc<Usage>,
    /// The statistics counters no metric above holds (see [`crate::stats::counters`]).
    pub stats: Arc<AppStats>,
}

impl AppMetrics {
    pub fn received(&self, kind: Received, bytes: usize) {
        self.received[kind as usize].inc();
        self.bytes_in.inc_by(bytes as u64);
    }

    /// `count` copies of a frame of `bytes` were queued.
    pub fn sent(&self, counter: &IntCounter, count: usize, bytes: usize) {
        counter.inc_by(count as u64);
        self.bytes_out.inc_by((count * bytes) as u64);
    }

    /// Something was refused by one of the app's limits.
    pub fn rate_limited(&self, limit: Limit) {
        self.stats.rate_limited();
        self.rate_limited
            .with_label_values(&[&self.app_id, limit.label()])
            .inc();
    }

    /// `count` messages in Pusher's sense (see [`crate::ratelimit::quota`]): events accepted
    /// or delivered.
    pub fn messages(&self, count: usize) {
        self.usage.add(count as u64);
    }

    /// A connection was accepted: counted, and the app's peak raised if it is one.
    pub fn connection_opened(&self) {
        self.connections.inc();
        self.opened.inc();
        self.stats.connection_opened(self.connections.get());
    }

    /// A client event was accepted: one message (quota) and one client event in.
    pub fn client_event_accepted(&self) {
        self.messages(1);
        self.stats.client_event();
    }

    /// `n` REST events were accepted (one per event and channel): `n` messages and API events.
    pub fn api_events_accepted(&self, n: usize) {
        self.messages(n);
        self.stats.api_events(n as u64);
    }

    pub fn closed(&self, code: Option<u16>) {
        self.stats.connection_closed(code);
        // A client chooses its close code: the label set stays bounded whatever it sends.
        let code = shared::codes::close_code_label(code);
        self.closed.with_label_values(&[&self.app_id, code]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_bounded_labels() {
        let metrics = Metrics::default();
        let app = metrics.for_app("42");
        app.opened.inc();
        app.received(Received::Subscribe, 10);
        app.closed(Some(4200));
        metrics.rejected(Rejected::UnknownApp);
        metrics.http_request("/apps/{app_id}/events", 200, 0.001);
        let text = metrics.render();
        assert!(
            text.contains("reverb_pusher_connections_opened_total{app_id=\"42\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("reverb_pusher_connections_closed_total{app_id=\"42\",code=\"4200\"} 1")
        );
        assert!(text.contains("reverb_pusher_rejected_total{reason=\"unknown_app\"} 1"));
        // Codes a client makes up all land on one label.
        for code in 3000..3100 {
            app.closed(Some(code));
        }
        let text = metrics.render();
        assert!(
            text.contains(
                "reverb_pusher_connections_closed_total{app_id=\"42\",code=\"other\"} 100"
            ),
            "{text}"
        );
        assert_eq!(text.matches("connections_closed_total{").count(), 2);
        assert!(text.contains("reverb_pusher_http_request_duration_seconds_bucket"));
        metrics.remove_app("42");
        assert!(!metrics
            .render()
            .contains("connections_opened_total{app_id=\"42\"}"));
    }

    /// Every reason, by an exhaustive match: a new reason fails to compile here until it is
    /// listed, and then the reference test below asks for it in the docs.
    fn all_reasons() -> Vec<Rejected> {
        use Rejected::*;
        let all = vec![
            UnknownApp,
            AppDisabled,
            AppOverQuota,
            OverCapacity,
            Draining,
            Origin,
            Protocol,
            SubscriptionAuth,
            SubscriptionLimit,
            ClientEvent,
            ClientEventRateLimit,
            SlowConsumer,
            RestAuth,
            RateLimited,
        ];
        for reason in &all {
            match reason {
                UnknownApp | AppDisabled | AppOverQuota | OverCapacity | Draining | Origin
                | Protocol | SubscriptionAuth | SubscriptionLimit | ClientEvent
                | ClientEventRateLimit | SlowConsumer | RestAuth | RateLimited => {}
            }
        }
        all
    }

    #[test]
    fn every_metric_and_label_is_in_the_metrics_reference() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/src/operations/metrics.md"
        );
        let doc = std::fs::read_to_string(path).unwrap();
        let metrics = Metrics::default();
        let app = metrics.for_app("42");
        for kind in [
            Received::Ping,
            Received::Subscribe,
            Received::Unsubscribe,
            Received::Signin,
            Received::ClientEvent,
            Received::Other,
        ] {
            app.received(kind, 1);
        }
        for counter in [
            &app.sent_events,
            &app.sent_client_events,
            &app.sent_protocol,
        ] {
            app.sent(counter, 1, 1);
        }
        app.connections.inc();
        app.opened.inc();
        app.subscriptions.inc();
        app.channels.inc();
        app.closed(Some(4200));
        for reason in all_reasons() {
            metrics.rejected(reason);
        }
        for limit in Limit::ALL {
            app.rate_limited(limit);
        }
        app.untracked_addresses.inc();
        for outcome in [
            "queued",
            "dropped",
            "sent",
            "failed",
            "retried",
            "dead",
            "breaker_opened",
        ] {
            metrics.webhooks("42", outcome, 1);
        }
        metrics.webhook_latency(0.01);
        metrics.webhook_outbox(1);
        metrics.webhook_paused(1);
        metrics.http_request("/apps/:app_id/events", 200, 0.001);
        let text = metrics.render();
        let mut names = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                names += 1;
                assert!(
                    doc.contains(&format!("`{name}`")),
                    "{name} is missing from docs/src/operations/metrics.md"
                );
            } else if let Some((_, labels)) = line.split_once('{') {
                let labels = labels.split_once('}').unwrap().0;
                for pair in labels.split(',') {
                    let (key, value) = pair.split_once('=').unwrap();
                    let value = value.trim_matches('"');
                    if key == "le" {
                        continue; // a histogram bucket's bound, Prometheus' own label
                    }
                    assert!(
                        doc.contains(&format!("`{key}`")),
                        "label {key} undocumented"
                    );
                    if matches!(key, "kind" | "reason" | "limit" | "outcome") {
                        assert!(
                            doc.contains(&format!("`{value}`")),
                            "{key}=\"{value}\" is missing from docs/src/operations/metrics.md"
                        );
                    }
                }
            }
        }
        assert_eq!(names, 18, "{text}");
    }
}
