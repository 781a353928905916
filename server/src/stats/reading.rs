//! One app's counters read at one moment, and the numbers of the interval between two
//! readings: pure, so the arithmetic is tested without a server.
//!
//! The sampler reads counters that other modules own (one owner per number): the quota's
//! running message count, the Prometheus per-app counters and the statistics atomics. Messages
//! delivered are what the quota counted minus what came in (API and client events); the
//! presence part of them is what is left after API and client-event deliveries. Those
//! counters are read a few nanoseconds apart while other threads add to them, so a difference
//! may briefly run ahead of its parts; it is kept as a running total that never goes down, so
//! an interval never shows a negative number and the totals over time are exact.

use shared::stats::Counts;

use super::counters::StatsReading;
use crate::metrics::AppMetrics;

/// Running totals of one app's counters (all monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Raw {
    /// Messages counted for the quota (API events in, client events in, deliveries).
    pub usage: u64,
    /// Deliveries of API events (REST, the panel, `sendToUser`).
    pub sent_events: u64,
    pub sent_client_events: u64,
    pub sent_protocol: u64,
    pub ws_bytes_in: u64,
    pub opened: u64,
    pub stats: StatsReading,
    pub webhooks_sent: u64,
    pub webhooks_failed: u64,
    /// Derived running totals (see the module documentation).
    pub messages_out: u64,
    pub messages_out_presence: u64,
}

impl Raw {
    /// Reads an app's counters; `webhooks` come from the node's metrics.
    pub fn read(metrics: &AppMetrics, webhooks: [u64; 2]) -> Self {
        Self {
            usage: metrics.usage.counted(),
            sent_events: metrics.sent_events.get(),
            sent_client_events: metrics.sent_client_events.get(),
            sent_protocol: metrics.sent_protocol.get(),
            ws_bytes_in: metrics.bytes_in.get(),
            opened: metrics.opened.get(),
            stats: metrics.stats.read(),
            webhooks_sent: webhooks[0],
            webhooks_failed: webhooks[1],
            messages_out: 0,
            messages_out_presence: 0,
        }
    }

    /// Fills the derived totals, never below the previous reading's.
    #[must_use]
    pub fn derive(mut self, previous: &Self) -> Self {
        let s = &self.stats;
        let out = self
            .usage
            .saturating_sub(s.messages_in_api + s.messages_in_client);
        self.messages_out = out.max(previous.messages_out);
        let presence = self
            .messages_out
            .saturating_sub(self.sent_events + self.sent_client_events);
        self.messages_out_presence = presence.max(previous.messages_out_presence);
        self
    }
}

fn d(now: u64, before: u64) -> i64 {
    i64::try_from(now.saturating_sub(before)).unwrap_or(i64::MAX)
}

/// The counters' change from `before` to `now` (both derived), as a bucket without gauges.
pub fn delta(before: &Raw, now: &Raw) -> Counts {
    let (a, b) = (&before.stats, &now.stats);
    Counts {
        connections_opened: d(now.opened, before.opened),
        connections_closed: d(b.closed, a.closed),
        closed_error: d(b.closed_error, a.closed_error),
        closed_backoff: d(b.closed_backoff, a.closed_backoff),
        closed_reconnect: d(b.closed_reconnect, a.closed_reconnect),
        subscriptions: d(b.subscriptions, a.subscriptions),
        messages_in_api: d(b.messages_in_api, a.messages_in_api),
        messages_in_client: d(b.messages_in_client, a.messages_in_client),
        messages_out: d(now.messages_out, before.messages_out),
        messages_out_client: d(now.sent_client_events, before.sent_client_events),
        messages_out_presence: d(now.messages_out_presence, before.messages_out_presence),
        messages_out_system: d(now.sent_protocol, before.sent_protocol),
        ws_bytes_in: d(now.ws_bytes_in, before.ws_bytes_in),
        ws_bytes_out: d(b.ws_bytes_out, a.ws_bytes_out),
        http_bytes_in: d(b.http_bytes_in, a.http_bytes_in),
        http_bytes_out: d(b.http_bytes_out, a.http_bytes_out),
        api_requests: d(b.api_requests, a.api_requests),
        api_errors_4xx: d(b.api_errors_4xx, a.api_errors_4xx),
        api_errors_5xx: d(b.api_errors_5xx, a.api_errors_5xx),
        rate_limited: d(b.rate_limited, a.rate_limited),
        errors_sent: d(b.errors_sent, a.errors_sent),
        webhooks_sent: d(now.webhooks_sent, before.webhooks_sent),
        webhooks_failed: d(now.webhooks_failed, before.webhooks_failed),
        ..Counts::default()
    }
}

/// One second's gauge sample as a bucket: `open` connections now, `peak` the most since the
/// last sample, `channels` occupied now.
pub fn gauges(open: i64, peak: i64, channels: i64) -> Counts {
    Counts {
        samples: 1,
        connections_peak: peak.max(open),
        connections_min: open,
        connections_sum: open,
        channels_peak: channels,
        ..Counts::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(usage: u64, api: u64, client: u64, events: u64, client_out: u64) -> Raw {
        Raw {
            usage,
            sent_events: events,
            sent_client_events: client_out,
            stats: StatsReading {
                messages_in_api: api,
                messages_in_client: client,
                ..StatsReading::default()
            },
            ..Raw::default()
        }
    }

    #[test]
    fn deliveries_and_presence_are_what_the_quota_counted_beyond_their_parts() {
        let start = Raw::default();
        // 1 API event to 50 subscribers, 2 client events to 3 others each, 4 member_added.
        let now = raw(1 + 50 + 2 + 6 + 4, 1, 2, 50, 6).derive(&start);
        let c = delta(&start, &now);
        assert_eq!((c.messages_in_api, c.messages_in_client), (1, 2));
        assert_eq!(c.messages_out, 60);
        assert_eq!(c.messages_out_client, 6);
        assert_eq!(c.messages_out_presence, 4);
        assert_eq!(c.pusher_messages(), 63);
    }

    #[test]
    fn a_part_read_ahead_of_the_total_never_makes_an_interval_negative() {
        let first = raw(10, 0, 0, 10, 0).derive(&Raw::default());
        // Read while a delivery of 5 was counted as sent but not yet as messages.
        let racing = raw(10, 0, 0, 15, 0).derive(&first);
        let c = delta(&first, &racing);
        assert_eq!((c.messages_out, c.messages_out_presence), (0, 0));
        // The next reading catches up: the totals are exact again.
        let settled = raw(15, 0, 0, 15, 0).derive(&racing);
        assert_eq!(delta(&first, &settled).messages_out, 5);
        assert_eq!(settled.messages_out_presence, 0);
    }

    #[test]
    fn gauges_keep_the_peak_between_samples() {
        let g = gauges(2, 7, 3);
        assert_eq!(
            (g.samples, g.connections_peak, g.connections_min),
            (1, 7, 2)
        );
        assert_eq!(gauges(5, 0, 0).connections_peak, 5);
    }
}
