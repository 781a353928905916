//! Reading statistics back: stored rows → series points, period summaries, the per-app table
//! and the monthly usage report, plus their CSV forms. The grouping and summing are pure
//! functions over rows; [`Reader`] only decides which rows to load ([`super::schedule::layers`]).
//!
//! Rows of different nodes for the same bucket are first merged along nodes (counters and
//! gauges add), then buckets are merged along time into the requested step.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use shared::stats::{
    resolution_for, Along, AppStatsRow, Counts, StatsPoint, StatsSeries, StatsSummary, UsageRow,
    WeekHour, DAY, HOUR, MINUTE, SERVER,
};

use super::schedule::{floor, layers};
use crate::db::stats::StatKey;
use crate::db::{Db, DbError};

/// Rows of one app (or the server) merged along nodes: bucket start → (resolution, counts).
pub type Buckets = BTreeMap<i64, (i64, Counts)>;

/// Merges rows of the same bucket from different nodes.
pub fn merge_nodes(rows: impl IntoIterator<Item = (StatKey, Counts)>) -> Buckets {
    let mut buckets = Buckets::new();
    for (key, counts) in rows {
        buckets
            .entry(key.bucket_start)
            .or_insert((key.resolution, Counts::default()))
            .1
            .merge(&counts, Along::Nodes);
    }
    buckets
}

/// One point per `step` over `[from, to)` (`from` aligned to the step), zeros where nothing
/// was stored; the point holding `now` is flagged in progress.
pub fn points(buckets: &Buckets, from: i64, to: i64, step: i64, now: i64) -> Vec<StatsPoint> {
    let mut out: Vec<StatsPoint> = Vec::new();
    let mut t = floor(from, step);
    while t < to {
        out.push(StatsPoint {
            t,
            in_progress: t <= now && now < t + step,
            counts: Counts::default(),
        });
        t += step;
    }
    let first = floor(from, step);
    for (start, (_, counts)) in buckets.range(first..to) {
        let i = usize::try_from((start - first) / step).unwrap_or(usize::MAX);
        if let Some(point) = out.get_mut(i) {
            point.counts.merge(counts, Along::Time);
        }
    }
    out
}

/// Every bucket merged along time.
pub fn total(buckets: &Buckets) -> Counts {
    let mut sum = Counts::default();
    for (_, counts) in buckets.values() {
        sum.merge(counts, Along::Time);
    }
    sum
}

/// Day of the week of a unix time, 0 = Monday (1970-01-01 was a Thursday).
pub const fn weekday(t: i64) -> u8 {
    ((t.div_euclid(DAY) + 3).rem_euclid(7)) as u8
}

/// Totals, peaks and busiest hours of `buckets` over `[from, to)`; `server` holds the server
/// rows of the same period (their samples say how long the server was up).
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
pub fn summary(
    app_id: &str,
    buckets: &Buckets,
    server: &Buckets,
    from: i64,
    to: i64,
) -> StatsSummary {
    let totals = total(buckets);
    // The finest bucket that holds the peak (rows of a finer resolution come later in a
    // range, so among equal peaks prefer the finest, then the earliest).
    let peak_at = buckets
        .iter()
        .filter(|(_, (_, c))| {
            c.connections_peak == totals.connections_peak && c.connections_peak > 0
        })
        .min_by_key(|(t, (res, _))| (*res, **t))
        .map(|(t, _)| *t);
    let mut by_hour = [0_i64; 24];
    let mut by_week_hour = [0_i64; 7 * 24];
    for (t, (res, c)) in buckets {
        if *res >= DAY {
            continue; // a day row has no hour of the day
        }
        let hour = usize::try_from(t.rem_euclid(DAY) / HOUR).unwrap_or(0);
        by_hour[hour] += c.pusher_messages();
        by_week_hour[usize::from(weekday(*t)) * 24 + hour] += c.pusher_messages();
    }
    let busiest = |counts: &[i64]| {
        let (i, n) = counts
            .iter()
            .enumerate()
            .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))?;
        (*n > 0).then_some(i)
    };
    let seconds = (to - from).max(1);
    let sampled = total(server).samples;
    StatsSummary {
        app_id: app_id.to_owned(),
        from,
        to,
        totals,
        pusher_messages: totals.pusher_messages(),
        bandwidth_bytes: totals.bandwidth_bytes(),
        connections_avg: (totals.connections_avg() * 100.0).round() / 100.0,
        connections_peak_at: peak_at,
        busiest_hour_of_day: busiest(&by_hour).map(|h| h as u8),
        busiest_hour_of_week: busiest(&by_week_hour).map(|i| WeekHour {
            weekday: (i / 24) as u8,
            hour: (i % 24) as u8,
        }),
        coverage_pct: ((sampled as f64 / seconds as f64) * 10_000.0)
            .round()
            .min(10_000.0)
            / 100.0,
    }
}

/// One app's line of a usage report.
pub fn usage_row(app_id: &str, name: &str, summary: &StatsSummary) -> UsageRow {
    let c = &summary.totals;
    UsageRow {
        app_id: app_id.to_owned(),
        app_name: name.to_owned(),
        connections_peak: c.connections_peak,
        connections_peak_at: summary.connections_peak_at,
        connections_avg: summary.connections_avg,
        connection_minutes: (c.connection_minutes() * 100.0).round() / 100.0,
        connections_opened: c.connections_opened,
        messages_in_api: c.messages_in_api,
        messages_in_client: c.messages_in_client,
        messages_out: c.messages_out,
        messages_out_presence: c.messages_out_presence,
        pusher_messages: c.pusher_messages(),
        ws_bytes_in: c.ws_bytes_in,
        ws_bytes_out: c.ws_bytes_out,
        http_bytes_in: c.http_bytes_in,
        http_bytes_out: c.http_bytes_out,
        bandwidth_bytes: c.bandwidth_bytes(),
        api_requests: c.api_requests,
        api_errors: c.api_errors(),
        rate_limited: c.rate_limited,
        webhooks_sent: c.webhooks_sent,
        webhooks_failed: c.webhooks_failed,
        coverage_pct: summary.coverage_pct,
    }
}

/// ISO 8601 UTC (`2026-11-30T14:05:00Z`) of a unix time.
pub fn iso(t: i64) -> String {
    let day = t.div_euclid(DAY);
    let secs = t.rem_euclid(DAY);
    let (y, m, d) = civil(day);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// (year, month, day) of days since 1970-01-01.
pub const fn civil(day: i64) -> (i64, u32, u32) {
    let (year, month) = crate::ratelimit::quota::month_of(day);
    let first = crate::ratelimit::quota::first_of_month(day);
    (year, month, (day - first + 1) as u32)
}

/// `YYYY-MM` → the month's `[start, end)` in unix seconds.
pub fn month_range(month: &str) -> Option<(i64, i64)> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
        return None;
    }
    // days_from_civil (Howard Hinnant), as in the quota's calendar.
    let days = |y: i64, m: i64| {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    };
    let start = days(y, m) * DAY;
    let end = if m == 12 {
        days(y + 1, 1)
    } else {
        days(y, m + 1)
    } * DAY;
    Some((start, end))
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// A series as CSV: `time,t,<every field>,pusher_messages,bandwidth_bytes`, one line per point.
pub fn series_csv(series: &StatsSeries) -> String {
    let mut out = String::from("time,t,in_progress");
    for f in Counts::FIELDS {
        out.push(',');
        out.push_str(f);
    }
    out.push_str(",pusher_messages,bandwidth_bytes\r\n");
    for p in &series.points {
        let _ = write!(out, "{},{},{}", iso(p.t), p.t, p.in_progress);
        for v in p.counts.values() {
            let _ = write!(out, ",{v}");
        }
        let _ = write!(
            out,
            ",{},{}\r\n",
            p.counts.pusher_messages(),
            p.counts.bandwidth_bytes()
        );
    }
    out
}

/// A usage report's rows as CSV (one header line, one line per app).
pub fn usage_csv(month: &str, rows: &[UsageRow]) -> String {
    let mut out = String::from(
        "month,app_id,app_name,connections_peak,connections_peak_at,connections_avg,\
         connection_minutes,connections_opened,messages_in_api,messages_in_client,messages_out,\
         messages_out_presence,pusher_messages,ws_bytes_in,ws_bytes_out,http_bytes_in,\
         http_bytes_out,bandwidth_bytes,api_requests,api_errors,rate_limited,webhooks_sent,\
         webhooks_failed,coverage_pct\r\n",
    );
    for r in rows {
        let _ = write!(
            out,
            "{month},{},{},{},{},{:.2},{:.2},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.2}\r\n",
            csv_field(&r.app_id),
            csv_field(&r.app_name),
            r.connections_peak,
            r.connections_peak_at.map(iso).unwrap_or_default(),
            r.connections_avg,
            r.connection_minutes,
            r.connections_opened,
            r.messages_in_api,
            r.messages_in_client,
            r.messages_out,
            r.messages_out_presence,
            r.pusher_messages,
            r.ws_bytes_in,
            r.ws_bytes_out,
            r.http_bytes_in,
            r.http_bytes_out,
            r.bandwidth_bytes,
            r.api_requests,
            r.api_errors,
            r.rate_limited,
            r.webhooks_sent,
            r.webhooks_failed,
            r.coverage_pct,
        );
    }
    out
}

/// Loads rows for queries (blocking: database calls).
pub struct Reader<'a> {
    pub db: &'a Db,
    pub now: i64,
}

impl Reader<'_> {
    /// One app's (or the server's, `*`) rows over `[from, to)` grouped from `resolution`,
    /// every node merged.
    pub fn buckets(
        &self,
        app_id: &str,
        resolution: i64,
        from: i64,
        to: i64,
    ) -> Result<Buckets, DbError> {
        let mut rows = Vec::new();
        for (res, a, b) in layers(resolution, from, to, self.now) {
            rows.extend(self.db.app_stats(app_id, res, a, b)?);
        }
        Ok(merge_nodes(rows))
    }

    /// Every app's rows (not the server's), by app.
    pub fn all_apps(
        &self,
        resolution: i64,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, Buckets>, DbError> {
        let mut by_app: BTreeMap<String, Vec<(StatKey, Counts)>> = BTreeMap::new();
        for (res, a, b) in layers(resolution, from, to, self.now) {
            for (key, counts) in self.db.all_app_stats(res, a, b)? {
                by_app
                    .entry(key.app_id.clone())
                    .or_default()
                    .push((key, counts));
            }
        }
        Ok(by_app
            .into_iter()
            .map(|(id, rows)| (id, merge_nodes(rows)))
            .collect())
    }

    /// A series at `step` seconds.
    pub fn series(
        &self,
        app_id: &str,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<StatsSeries, DbError> {
        let from = floor(from, step);
        let buckets = self.buckets(app_id, resolution_for(step), from, to)?;
        Ok(StatsSeries {
            app_id: app_id.to_owned(),
            from,
            to,
            step_seconds: step,
            points: points(&buckets, from, to, step, self.now),
        })
    }

    /// The summary of `[from, to)` (peaks at the finest resolution still stored).
    pub fn summary(&self, app_id: &str, from: i64, to: i64) -> Result<StatsSummary, DbError> {
        let res = finest(from, self.now);
        let buckets = self.buckets(app_id, res, from, to)?;
        let server = if app_id == SERVER {
            buckets.clone()
        } else {
            self.buckets(SERVER, res, from, to)?
        };
        Ok(summary(app_id, &buckets, &server, from, to))
    }

    /// The per-app table of `[from, to)`.
    pub fn table(&self, from: i64, to: i64) -> Result<BTreeMap<String, Counts>, DbError> {
        let res = finest(from, self.now).max(table_step(to - from));
        Ok(self
            .all_apps(res, from, to)?
            .iter()
            .map(|(id, b)| (id.clone(), total(b)))
            .collect())
    }
}

/// The resolution that a per-app table of a range this long is summed from.
pub const fn table_step(range: i64) -> i64 {
    if range <= DAY {
        MINUTE
    } else if range <= 40 * DAY {
        HOUR
    } else {
        DAY
    }
}

/// The finest resolution kept for a period starting at `from`: minutes for the last 7 days,
/// hours before that.
pub const fn finest(from: i64, now: i64) -> i64 {
    if now - from <= 7 * DAY {
        MINUTE
    } else {
        HOUR
    }
}

/// An app table line.
pub fn table_row(
    app_id: &str,
    name: &str,
    enabled: bool,
    connections_now: i64,
    totals: Counts,
) -> AppStatsRow {
    AppStatsRow {
        app_id: app_id.to_owned(),
        name: name.to_owned(),
        enabled,
        connections_now,
        pusher_messages: totals.pusher_messages(),
        bandwidth_bytes: totals.bandwidth_bytes(),
        totals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(res: i64, t: i64, node: &str) -> StatKey {
        StatKey {
            app_id: "a".into(),
            resolution: res,
            bucket_start: t,
            node: node.into(),
        }
    }

    fn c(peak: i64, out: i64) -> Counts {
        Counts {
            samples: 60,
            connections_peak: peak,
            connections_min: peak,
            connections_sum: 60 * peak,
            messages_out: out,
            ..Counts::default()
        }
    }

    #[test]
    fn points_cover_every_step_and_merge_nodes_then_time() {
        let rows = vec![
            (key(MINUTE, 0, "n1"), c(2, 1)),
            (key(MINUTE, 0, "n2"), c(3, 1)),
            (key(MINUTE, 60, "n1"), c(1, 5)),
            (key(MINUTE, 240, "n1"), c(9, 1)),
        ];
        let buckets = merge_nodes(rows);
        let p = points(&buckets, 0, 300, 120, 250);
        assert_eq!(p.iter().map(|p| p.t).collect::<Vec<_>>(), [0, 120, 240]);
        // 0-120: minute 0 (two nodes: 5 connections) and minute 60 (1): peak 5, 7 messages.
        assert_eq!(
            (p[0].counts.connections_peak, p[0].counts.messages_out),
            (5, 7)
        );
        assert_eq!(p[0].counts.samples, 120);
        assert_eq!(p[1].counts, Counts::default(), "nothing stored: zeros");
        assert!(p[2].in_progress && !p[1].in_progress);
    }

    #[test]
    fn summaries_find_the_peak_and_the_busiest_hours() {
        let monday_9 = 4 * DAY + 9 * HOUR; // 1970-01-05 was a Monday
        assert_eq!(weekday(monday_9), 0);
        let buckets = merge_nodes(vec![
            (key(MINUTE, monday_9, "n"), c(4, 100)),
            (key(MINUTE, monday_9 + 60, "n"), c(7, 1)),
            (key(MINUTE, monday_9 + HOUR, "n"), c(7, 50)),
        ]);
        let server = merge_nodes(vec![(key(MINUTE, monday_9, "n"), c(0, 0))]);
        let s = summary("a", &buckets, &server, monday_9, monday_9 + 2 * HOUR);
        assert_eq!(s.totals.connections_peak, 7);
        assert_eq!(
            s.connections_peak_at,
            Some(monday_9 + 60),
            "the first minute at 7"
        );
        assert_eq!(s.busiest_hour_of_day, Some(9));
        assert_eq!(
            s.busiest_hour_of_week,
            Some(WeekHour {
                weekday: 0,
                hour: 9
            })
        );
        assert_eq!(s.pusher_messages, 151);
        // 60 sampled seconds of 7200.
        assert!((s.coverage_pct - 0.83).abs() < 1e-9, "{}", s.coverage_pct);
    }

    #[test]
    fn calendar_helpers_match_known_dates() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_796_083_199), "2026-11-30T23:59:59Z");
        let (start, end) = month_range("2024-02").unwrap();
        assert_eq!(iso(start), "2024-02-01T00:00:00Z");
        assert_eq!((end - start) / DAY, 29);
        let (_, end) = month_range("2026-12").unwrap();
        assert_eq!(iso(end), "2027-01-01T00:00:00Z");
        for bad in ["2026-13", "2026-1", "26-01", "x", "2026-00"] {
            assert!(month_range(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn csv_has_one_header_and_quotes_what_needs_it() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        let series = StatsSeries {
            app_id: "a".into(),
            from: 0,
            to: 60,
            step_seconds: 60,
            points: vec![StatsPoint {
                t: 0,
                in_progress: false,
                counts: c(2, 3),
            }],
        };
        let csv = series_csv(&series);
        let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2);
        let header: Vec<&str> = lines[0].split(',').collect();
        let values: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(header.len(), values.len());
        let at = |name: &str| values[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(at("time"), "1970-01-01T00:00:00Z");
        assert_eq!(at("messages_out"), "3");
        assert_eq!(at("pusher_messages"), "3");
        let usage = usage_csv(
            "2026-11",
            &[usage_row(
                "a",
                "My, app",
                &summary(
                    "a",
                    &merge_nodes(vec![(key(MINUTE, 0, "n"), c(2, 3))]),
                    &Buckets::new(),
                    0,
                    60,
                ),
            )],
        );
        assert!(
            usage.contains("2026-11,a,\"My, app\",2,1970-01-01T00:00:00Z,2.00,2.00,"),
            "{usage}"
        );
    }
}
