//! The per-app counters statistics need beyond the Prometheus metrics: each a plain atomic,
//! so counting costs one relaxed add on the hot path (no lock, no database, no label lookup).
//!
//! Only what no other counter already holds lives here (one owner per number): connections,
//! frames and WebSocket bytes received, deliveries by kind and Pusher-style messages are
//! counted by [`crate::metrics::AppMetrics`] and the quota's [`crate::ratelimit::Usage`], and
//! the sampler reads those. These are: the connection peak (an exact `fetch_max` after each
//! accepted connection), accepted API and client events, successful subscriptions, closes by
//! code class, refusals, errors sent, WebSocket bytes written (counted by the connection's response body,
//! once per chunk) and the REST API's requests, errors and bytes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// A close code's class, as Pusher's ranges group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseClass {
    /// 4000-4099 and 4300-4399: an error; reconnecting as is will not help.
    Error,
    /// 4100-4199: reconnect after a back-off.
    Backoff,
    /// 4200-4299: reconnect at once.
    Reconnect,
    /// Anything else (the client closed, the socket dropped).
    Other,
}

impl CloseClass {
    pub const fn of(code: Option<u16>) -> Self {
        match code {
            Some(4000..=4099 | 4300..=4399) => Self::Error,
            Some(4100..=4199) => Self::Backoff,
            Some(4200..=4299) => Self::Reconnect,
            _ => Self::Other,
        }
    }
}

/// One app's statistics counters (see the module documentation). Shared by every handle of
/// the app through [`crate::metrics::AppMetrics::stats`].
#[derive(Debug, Default)]
pub struct AppStats {
    connections_peak: AtomicI64,
    messages_in_api: AtomicU64,
    messages_in_client: AtomicU64,
    subscriptions: AtomicU64,
    /// Closed: all, error, back-off, reconnect.
    closed: [AtomicU64; 4],
    rate_limited: AtomicU64,
    errors_sent: AtomicU64,
    /// Payload bytes written to the app's sockets (each connection's body adds per chunk).
    ws_bytes_out: Arc<AtomicU64>,
    api_requests: AtomicU64,
    api_errors_4xx: AtomicU64,
    api_errors_5xx: AtomicU64,
    http_bytes_in: AtomicU64,
    http_bytes_out: AtomicU64,
}

/// The counters' values at one moment (monotonic, except the peak, which the sampler resets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsReading {
    pub messages_in_api: u64,
    pub messages_in_client: u64,
    pub subscriptions: u64,
    pub closed: u64,
    pub closed_error: u64,
    pub closed_backoff: u64,
    pub closed_reconnect: u64,
    pub rate_limited: u64,
    pub errors_sent: u64,
    pub ws_bytes_out: u64,
    pub api_requests: u64,
    pub api_errors_4xx: u64,
    pub api_errors_5xx: u64,
    pub http_bytes_in: u64,
    pub http_bytes_out: u64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl AppStats {
    /// A connection was accepted; `open` is the app's open connections right after it.
    pub fn connection_opened(&self, open: i64) {
        self.connections_peak.fetch_max(open, Ordering::Relaxed);
    }

    /// A connection closed with `code` (`None`: it just dropped).
    pub fn connection_closed(&self, code: Option<u16>) {
        add(&self.closed[0], 1);
        match CloseClass::of(code) {
            CloseClass::Error => add(&self.closed[1], 1),
            CloseClass::Backoff => add(&self.closed[2], 1),
            CloseClass::Reconnect => add(&self.closed[3], 1),
            CloseClass::Other => {}
        }
    }

    /// `n` REST events were accepted (one per event and channel).
    pub fn api_events(&self, n: u64) {
        add(&self.messages_in_api, n);
    }

    /// A client event was accepted.
    pub fn client_event(&self) {
        add(&self.messages_in_client, 1);
    }

    /// A subscription succeeded.
    pub fn subscribed(&self) {
        add(&self.subscriptions, 1);
    }

    /// A limit refused something.
    pub fn rate_limited(&self) {
        add(&self.rate_limited, 1);
    }

    /// A `pusher:error` or `pusher:subscription_error` was sent.
    pub fn error_sent(&self) {
        add(&self.errors_sent, 1);
    }

    /// A REST API request was answered with `status`.
    pub fn api_request(&self, status: u16, bytes_in: u64, bytes_out: u64) {
        add(&self.api_requests, 1);
        match status {
            400..=499 => add(&self.api_errors_4xx, 1),
            500..=599 => add(&self.api_errors_5xx, 1),
            _ => {}
        }
        add(&self.http_bytes_in, bytes_in);
        add(&self.http_bytes_out, bytes_out);
    }

    /// The counter a connection's response body adds its written payload bytes to.
    pub fn ws_bytes_out(&self) -> Arc<AtomicU64> {
        self.ws_bytes_out.clone()
    }

    /// The highest open-connection count since the last call, which restarts the peak at
    /// `open` (the count now).
    pub fn take_peak(&self, open: i64) -> i64 {
        self.connections_peak
            .swap(open, Ordering::Relaxed)
            .max(open)
    }

    pub fn read(&self) -> StatsReading {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsReading {
            messages_in_api: get(&self.messages_in_api),
            messages_in_client: get(&self.messages_in_client),
            subscriptions: get(&self.subscriptions),
            closed: get(&self.closed[0]),
            closed_error: get(&self.closed[1]),
            closed_backoff: get(&self.closed[2]),
            closed_reconnect: get(&self.closed[3]),
            rate_limited: get(&self.rate_limited),
            errors_sent: get(&self.errors_sent),
            ws_bytes_out: get(&self.ws_bytes_out),
            api_requests: get(&self.api_requests),
            api_errors_4xx: get(&self.api_errors_4xx),
            api_errors_5xx: get(&self.api_errors_5xx),
            http_bytes_in: get(&self.http_bytes_in),
            http_bytes_out: get(&self.http_bytes_out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_fall_into_pusher_ranges() {
        assert_eq!(CloseClass::of(Some(4001)), CloseClass::Error);
        assert_eq!(CloseClass::of(Some(4301)), CloseClass::Error);
        assert_eq!(CloseClass::of(Some(4100)), CloseClass::Backoff);
        assert_eq!(CloseClass::of(Some(4200)), CloseClass::Reconnect);
        assert_eq!(CloseClass::of(Some(1000)), CloseClass::Other);
        assert_eq!(CloseClass::of(None), CloseClass::Other);
        let stats = AppStats::default();
        for code in [Some(4001), Some(4100), Some(4201), Some(1000), None] {
            stats.connection_closed(code);
        }
        let r = stats.read();
        assert_eq!(
            (
                r.closed,
                r.closed_error,
                r.closed_backoff,
                r.closed_reconnect
            ),
            (5, 1, 1, 1)
        );
    }

    #[test]
    fn the_peak_is_exact_and_restarts_at_the_current_count() {
        let stats = AppStats::default();
        for open in [1, 2, 3] {
            stats.connection_opened(open);
        }
        // Two closed since: 1 open now, but 3 was reached.
        assert_eq!(stats.take_peak(1), 3);
        assert_eq!(stats.take_peak(1), 1);
    }

    #[test]
    fn api_requests_count_errors_by_class_and_bytes() {
        let stats = AppStats::default();
        stats.api_request(200, 10, 2);
        stats.api_request(429, 5, 50);
        stats.api_request(503, 0, 7);
        let r = stats.read();
        assert_eq!(
            (r.api_requests, r.api_errors_4xx, r.api_errors_5xx),
            (3, 1, 1)
        );
        assert_eq!((r.http_bytes_in, r.http_bytes_out), (15, 59));
    }
}
