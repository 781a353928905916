//! Per-app statistics: the numbers stored for each app and time bucket ([`Counts`]), how two
//! buckets merge, the numbers derived from them, and the admin API's statistics bodies.
//!
//! Every number has one definition, here (the field docs are the definitions the docs page
//! repeats); the JSON API, the CSV export and the panel all read these fields and call the
//! same derived functions, so the three always agree.
//!
//! Merging is what makes rollups, query-time grouping and cluster sums exact:
//! - over **time** (minutes into an hour, hours into a day): counters add, peaks take the
//!   highest, minimums the lowest, and `samples` add, so a mean is always
//!   `connections_sum / samples`, never an average of averages;
//! - over **nodes** (the same bucket written by several cluster nodes): counters add, and so do
//!   the gauges, while `samples` take the highest (the nodes sampled the same seconds). Gauges
//!   add because in a cluster only one row of a bucket has them: the cluster's own (node `*`,
//!   read from Redis, where every change of a cluster total is seen); the nodes leave them at 0
//!   (see the server's `stats` module). A node that lost Redis keeps its own, and the sum is
//!   then an upper bound.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// How a field merges (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// A counter: adds.
    Sum,
    /// The number of 1-second gauge samples: adds over time, highest over nodes.
    Samples,
    /// A gauge's highest value: highest over time, adds over nodes.
    Peak,
    /// A gauge's lowest sample: lowest over time (buckets without samples ignored), adds over
    /// nodes.
    Min,
}

/// What two buckets are merged along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Along {
    /// Consecutive buckets of one node (rollups, grouping into wider steps).
    Time,
    /// The same bucket from different nodes.
    Nodes,
}

fn merge_value(merge: Merge, along: Along, a: i64, b: i64, a_samples: i64, b_samples: i64) -> i64 {
    match (merge, along) {
        (Merge::Sum, _)
        | (Merge::Peak | Merge::Min, Along::Nodes)
        | (Merge::Samples, Along::Time) => a.saturating_add(b),
        (Merge::Samples, Along::Nodes) | (Merge::Peak, Along::Time) => a.max(b),
        (Merge::Min, Along::Time) => match (a_samples, b_samples) {
            (0, _) => b,
            (_, 0) => a,
            _ => a.min(b),
        },
    }
}

macro_rules! counts {
    ($($(#[doc = $doc:literal])+ $name:ident: $merge:ident,)+) => {
        /// One app's (or the whole server's) numbers for one time bucket. Field names are the
        /// API's, the CSV columns and the database columns.
        #[cfg_attr(feature = "openapi", derive(ToSchema))]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Counts {
            $($(#[doc = $doc])+ #[serde(default)] pub $name: i64,)+
        }

        impl Counts {
            /// Every field, in declaration (and CSV column) order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($name)),+];
            /// How each field merges, in the same order.
            pub const MERGES: &'static [Merge] = &[$(Merge::$merge),+];

            /// The values in [`Self::FIELDS`] order.
            pub fn values(&self) -> Vec<i64> {
                vec![$(self.$name),+]
            }

            /// One field by name.
            pub fn get(&self, field: &str) -> Option<i64> {
                match field {
                    $(stringify!($name) => Some(self.$name),)+
                    _ => None,
                }
            }

            /// Adds `other` into `self` along time or nodes (see the module documentation).
            pub fn merge(&mut self, other: &Self, along: Along) {
                let (sa, sb) = (self.samples, other.samples);
                $(self.$name = merge_value(Merge::$merge, along, self.$name, other.$name, sa, sb);)+
            }
        }
    };
}

counts! {
    /// 1-second gauge samples taken in the bucket (60 in a full minute): how long the server
    /// was up and counting; coverage is `samples / seconds`.
    samples: Samples,
    /// Highest number of open connections at any moment (each connection is counted from
    /// `pusher:connection_established` until it closes).
    connections_peak: Peak,
    /// Lowest 1-second sample of open connections (in cluster mode: the lowest cluster-wide
    /// count at any moment, recorded by Redis at every change).
    connections_min: Min,
    /// Sum of the 1-second samples of open connections: `connections_sum / samples` is the
    /// mean, `connections_sum / 60` the connection-minutes.
    connections_sum: Sum,
    /// Most occupied channels (with an actor on the node) at any 1-second sample (in cluster
    /// mode: the most channels with a subscriber anywhere in the cluster at any moment).
    channels_peak: Peak,
    /// Connections established.
    connections_opened: Sum,
    /// Connections closed, for any reason.
    connections_closed: Sum,
    /// Of those, closed with a 4000-4099 or 4300-4399 code (an error: do not reconnect as is).
    closed_error: Sum,
    /// Closed with a 4100-4199 code (over capacity or too slow: reconnect after a back-off).
    closed_backoff: Sum,
    /// Closed with a 4200-4299 code (reconnect at once: restarts, drains, pong timeouts).
    closed_reconnect: Sum,
    /// Successful subscriptions (`pusher_internal:subscription_succeeded` sent).
    subscriptions: Sum,
    /// Events accepted by the REST API, one per event and channel (a trigger to 3 channels is
    /// 3, a batch of 10 is 10).
    messages_in_api: Sum,
    /// Client events accepted from connections.
    messages_in_client: Sum,
    /// Events delivered to connections (one per event and receiving connection): API events,
    /// client events and presence `member_added`/`member_removed`. Protocol frames are not
    /// messages.
    messages_out: Sum,
    /// The part of `messages_out` that is client events.
    messages_out_client: Sum,
    /// The part of `messages_out` that is presence `member_added`/`member_removed`.
    messages_out_presence: Sum,
    /// Protocol frames a connection sent its client (`connection_established`, `pong`,
    /// `pusher:error`, `subscription_error`, `signin_success`); not messages.
    messages_out_system: Sum,
    /// WebSocket payload bytes received (every frame; no frame headers or TLS).
    ws_bytes_in: Sum,
    /// WebSocket payload bytes sent (every frame written to a socket).
    ws_bytes_out: Sum,
    /// Pusher REST API request body bytes.
    http_bytes_in: Sum,
    /// Pusher REST API response body bytes.
    http_bytes_out: Sum,
    /// Pusher REST API requests for the app (signed or not), any outcome.
    api_requests: Sum,
    /// Of those, answered 4xx.
    api_errors_4xx: Sum,
    /// Of those, answered 5xx.
    api_errors_5xx: Sum,
    /// Operations refused by a rate limit or message quota (client events, subscriptions,
    /// new connections, REST events and reads).
    rate_limited: Sum,
    /// `pusher:error` and `pusher:subscription_error` frames sent to the app's connections.
    errors_sent: Sum,
    /// Webhook requests answered 2xx.
    webhooks_sent: Sum,
    /// Webhook attempts that failed (each retry counts).
    webhooks_failed: Sum,
}

impl Counts {
    /// Messages as Pusher counts them (and as the message quota counts them): one per API
    /// event and channel, one per client event, one per delivery.
    pub fn pusher_messages(&self) -> i64 {
        self.messages_in_api + self.messages_in_client + self.messages_out
    }

    /// WebSocket and REST bytes, both ways.
    pub fn bandwidth_bytes(&self) -> i64 {
        self.ws_bytes_in + self.ws_bytes_out + self.http_bytes_in + self.http_bytes_out
    }

    /// Mean open connections over the sampled seconds.
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    pub fn connections_avg(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.connections_sum as f64 / self.samples as f64
        }
    }

    /// Connections integrated over time, in connection-minutes.
    #[allow(clippy::cast_precision_loss)]
    pub fn connection_minutes(&self) -> f64 {
        self.connections_sum as f64 / 60.0
    }

    /// API errors (4xx and 5xx).
    pub fn api_errors(&self) -> i64 {
        self.api_errors_4xx + self.api_errors_5xx
    }

    /// Share of API requests answered with an error, 0 to 1.
    #[allow(clippy::cast_precision_loss)]
    pub fn api_error_rate(&self) -> f64 {
        if self.api_requests == 0 {
            0.0
        } else {
            self.api_errors() as f64 / self.api_requests as f64
        }
    }

    /// Problems: API errors, refusals, webhook failures and errors sent.
    pub fn problems(&self) -> i64 {
        self.api_errors() + self.rate_limited + self.webhooks_failed + self.errors_sent
    }

    /// Whether the bucket holds nothing worth a row (no traffic, no open connection).
    pub fn is_idle(&self) -> bool {
        self.values()
            .iter()
            .zip(Self::FIELDS)
            .all(|(v, f)| *v == 0 || matches!(*f, "samples"))
    }

    /// A field or a derived number by name (what series and exports may ask for).
    #[allow(clippy::cast_possible_truncation)]
    pub fn metric(&self, name: &str) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        let whole = |v: i64| Some(v as f64);
        match name {
            "pusher_messages" => whole(self.pusher_messages()),
            "bandwidth_bytes" => whole(self.bandwidth_bytes()),
            "connections_avg" => Some(self.connections_avg()),
            "connection_minutes" => Some(self.connection_minutes()),
            "api_errors" => whole(self.api_errors()),
            "problems" => whole(self.problems()),
            other => self.get(other).and_then(whole),
        }
    }
}

/// Derived numbers that series and exports may name besides the stored fields.
pub const DERIVED: &[&str] = &[
    "pusher_messages",
    "bandwidth_bytes",
    "connections_avg",
    "connection_minutes",
    "api_errors",
    "problems",
];

/// The id of the whole-server rows (not an app id: app ids never contain `*`).
pub const SERVER: &str = "*";

/// The resolutions rows are stored at, in seconds.
pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// The step of a series over `range_secs` (at most about 400 points): 1 hour of minutes,
/// 24 hours of quarter hours, 7 days of hours, 31 days of 6 hours, then days.
pub const fn step_for(range_secs: i64) -> i64 {
    if range_secs <= HOUR {
        MINUTE
    } else if range_secs <= DAY {
        15 * MINUTE
    } else if range_secs <= 7 * DAY {
        HOUR
    } else if range_secs <= 31 * DAY {
        6 * HOUR
    } else {
        DAY
    }
}

/// The stored resolution a step is grouped from.
pub const fn resolution_for(step: i64) -> i64 {
    if step < HOUR || step % HOUR != 0 {
        MINUTE
    } else if step < DAY || step % DAY != 0 {
        HOUR
    } else {
        DAY
    }
}

/// A named range the panel offers: its length in seconds.
pub fn range_secs(name: &str) -> Option<i64> {
    match name {
        "1h" => Some(HOUR),
        "24h" => Some(DAY),
        "7d" => Some(7 * DAY),
        "30d" => Some(30 * DAY),
        "13mo" => Some(396 * DAY),
        _ => None,
    }
}

/// One bucket of a series: its start (unix seconds, UTC) and numbers.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsPoint {
    /// Bucket start, unix seconds (UTC).
    pub t: i64,
    /// The bucket is still running (the last one of a range that ends now).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_progress: bool,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A time series: one point per step from `from` (inclusive) to `to` (exclusive), every step
/// present (zeros where nothing happened).
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSeries {
    /// The app, or `*` for the whole server.
    pub app_id: String,
    pub from: i64,
    pub to: i64,
    pub step_seconds: i64,
    pub points: Vec<StatsPoint>,
}

/// An hour of the week (UTC): `weekday` 0 is Monday.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeekHour {
    pub weekday: u8,
    pub hour: u8,
}

/// Totals and peaks of a period.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSummary {
    pub app_id: String,
    pub from: i64,
    pub to: i64,
    pub totals: Counts,
    pub pusher_messages: i64,
    pub bandwidth_bytes: i64,
    pub connections_avg: f64,
    /// Start of the bucket (minute, or hour beyond the minutes kept) in which
    /// `totals.connections_peak` was reached.
    pub connections_peak_at: Option<i64>,
    /// The UTC hour of the day (0-23) with the most Pusher messages over the period.
    pub busiest_hour_of_day: Option<u8>,
    /// The UTC hour of the week with the most Pusher messages over the period.
    pub busiest_hour_of_week: Option<WeekHour>,
    /// Share of the period the server was up and counting, in percent.
    pub coverage_pct: f64,
}

/// One app's line in the per-app table.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatsRow {
    pub app_id: String,
    /// `(deleted)` for an app that no longer exists.
    pub name: String,
    pub enabled: bool,
    /// Open connections on this node now.
    pub connections_now: i64,
    pub totals: Counts,
    pub pusher_messages: i64,
    pub bandwidth_bytes: i64,
}

/// The per-app table of a period.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatsTable {
    pub from: i64,
    pub to: i64,
    pub apps: Vec<AppStatsRow>,
}

/// One app's line of a monthly usage report.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    pub app_id: String,
    pub app_name: String,
    pub connections_peak: i64,
    pub connections_peak_at: Option<i64>,
    pub connections_avg: f64,
    pub connection_minutes: f64,
    pub connections_opened: i64,
    pub messages_in_api: i64,
    pub messages_in_client: i64,
    pub messages_out: i64,
    pub messages_out_presence: i64,
    pub pusher_messages: i64,
    pub ws_bytes_in: i64,
    pub ws_bytes_out: i64,
    pub http_bytes_in: i64,
    pub http_bytes_out: i64,
    pub bandwidth_bytes: i64,
    pub api_requests: i64,
    pub api_errors: i64,
    pub rate_limited: i64,
    pub webhooks_sent: i64,
    pub webhooks_failed: i64,
    pub coverage_pct: f64,
}

/// A calendar month's usage (UTC), per app: for capacity planning and billing.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// `reverb-pusher/usage/1`.
    pub schema: String,
    /// `YYYY-MM`.
    pub month: String,
    pub period_start: i64,
    pub period_end: i64,
    /// False while the month is still running.
    pub complete: bool,
    pub generated_at: i64,
    pub server_version: String,
    pub apps: Vec<UsageRow>,
}

/// What the live tiles show, once a second over server-sent events. Rates are per second,
/// averaged over the last 10 seconds.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveStats {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The app, or `*` for the whole server.
    pub app_id: String,
    pub connections: i64,
    pub channels: i64,
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub api_requests_per_sec: f64,
    /// API errors, refusals, webhook failures and errors sent, per second.
    pub errors_per_sec: f64,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
}

/// The server's health strip.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerHealth {
    pub version: String,
    /// This node's name in statistics rows.
    pub node: String,
    pub uptime_secs: i64,
    /// CPU used by the process since the last health call (or since start), in percent of
    /// one core.
    pub cpu_percent: f64,
    /// CPU seconds used by the process since it started.
    pub cpu_seconds: f64,
    /// Resident memory in bytes (0 where unknown).
    pub rss_bytes: i64,
    pub open_files: i64,
    /// The soft limit on open files (0 where unknown).
    pub max_open_files: i64,
    pub connections: i64,
    /// `max_connections` (0: no limit).
    pub max_connections: i64,
    /// `ok` or `unavailable`.
    pub database: String,
    /// `not configured` until a cluster is configured.
    pub redis: String,
    /// Statistics rows waiting in memory for the database.
    pub stats_pending_rows: i64,
    /// Statistics rows dropped because the database stayed down too long.
    pub stats_dropped_rows: i64,
}

/// A recent error or refusal of an app, as its clients or API callers saw it.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentError {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `error` (a `pusher:error` or `subscription_error` sent) or `rate_limited`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The reason, as sent (or the limit's name).
    pub message: String,
    /// The node whose client it was (in cluster mode, where the list is the cluster's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(samples: i64, peak: i64, min: i64, sum: i64, out: i64) -> Counts {
        Counts {
            samples,
            connections_peak: peak,
            connections_min: min,
            connections_sum: sum,
            messages_out: out,
            ..Counts::default()
        }
    }

    #[test]
    fn over_time_counters_add_peaks_take_the_highest_and_means_stay_exact() {
        let mut hour = Counts::default();
        hour.merge(&minute(60, 10, 2, 300, 5), Along::Time);
        hour.merge(&minute(60, 4, 1, 120, 7), Along::Time);
        // A minute the server was down (no samples) does not pull the minimum to 0.
        hour.merge(&minute(0, 0, 0, 0, 0), Along::Time);
        assert_eq!(hour, minute(120, 10, 1, 420, 12));
        assert!((hour.connections_avg() - 3.5).abs() < 1e-9);
        assert!((hour.connection_minutes() - 7.0).abs() < 1e-9);
    }

    #[test]
    fn over_nodes_gauges_add_and_samples_do_not() {
        let mut both = minute(60, 10, 2, 300, 5);
        both.merge(&minute(60, 4, 1, 120, 7), Along::Nodes);
        assert_eq!(both, minute(60, 14, 3, 420, 12));
        assert!((both.connections_avg() - 7.0).abs() < 1e-9);
    }

    #[test]
    fn merging_in_any_order_gives_the_same_result() {
        let parts = [
            minute(60, 3, 1, 100, 1),
            minute(30, 9, 0, 90, 2),
            minute(60, 1, 1, 60, 3),
        ];
        let mut a = Counts::default();
        for p in &parts {
            a.merge(p, Along::Time);
        }
        let mut b = Counts::default();
        for p in parts.iter().rev() {
            b.merge(p, Along::Time);
        }
        assert_eq!(a, b);
    }

    #[test]
    fn pusher_messages_are_publishes_plus_deliveries() {
        // One event published to a channel with 50 subscribers is 51 messages.
        let c = Counts {
            messages_in_api: 1,
            messages_out: 50,
            ..Counts::default()
        };
        assert_eq!(c.pusher_messages(), 51);
        assert_eq!(c.metric("pusher_messages"), Some(51.0));
        assert_eq!(c.metric("messages_out"), Some(50.0));
        assert_eq!(c.metric("nonsense"), None);
    }

    #[test]
    fn field_lists_line_up_and_idle_buckets_are_recognised() {
        assert_eq!(Counts::FIELDS.len(), Counts::MERGES.len());
        assert_eq!(Counts::FIELDS.len(), Counts::default().values().len());
        assert_eq!(Counts::FIELDS.len(), 28);
        assert!(Counts {
            samples: 60,
            ..Counts::default()
        }
        .is_idle());
        assert!(!minute(60, 1, 1, 60, 0).is_idle());
        for f in DERIVED {
            assert!(!Counts::FIELDS.contains(f));
        }
    }

    #[test]
    fn steps_keep_series_short() {
        assert_eq!(step_for(HOUR), MINUTE);
        assert_eq!(step_for(DAY), 900);
        assert_eq!(step_for(7 * DAY), HOUR);
        assert_eq!(step_for(30 * DAY), 6 * HOUR);
        assert_eq!(step_for(396 * DAY), DAY);
        for name in ["1h", "24h", "7d", "30d", "13mo"] {
            let range = range_secs(name).unwrap();
            assert!(range / step_for(range) <= 400, "{name}");
        }
        assert_eq!(resolution_for(60), MINUTE);
        assert_eq!(resolution_for(900), MINUTE);
        assert_eq!(resolution_for(HOUR), HOUR);
        assert_eq!(resolution_for(6 * HOUR), HOUR);
        assert_eq!(resolution_for(DAY), DAY);
        assert_eq!(resolution_for(5400), MINUTE);
    }
}
