//! Per-app statistics with history: counters on the hot path, a sampler that folds them into
//! one bucket per app and minute, a writer that stores the buckets (and rolls them up into
//! hours and days, and prunes them), the live numbers for the dashboard, and each app's
//! recent errors.
//!
//! - **Counting** costs one relaxed atomic add where something happens ([`counters`], and the
//!   Prometheus per-app counters and quota count that already exist: the sampler reads those,
//!   it does not count twice).
//! - **Sampling**: once a second the sampler reads every app's counters (a few dozen atomic
//!   loads per app, O(apps), never O(connections)), adds the differences and a gauge sample
//!   (open connections, occupied channels, the exact connection peak since the last second)
//!   into the app's bucket for the current minute, and a whole-server bucket (app id `*`), and
//!   publishes the live numbers (rates over the last 10 seconds) for the dashboard's SSE stream.
//!   It also drains each app's `pusher:error` and refusal events from the app event stream
//!   (a bounded queue, registered when the sampler first sees the app) into the app's
//!   recent-errors list, which is a view for people; the counts come from the counters. In a
//!   cluster the lists are shared: each node adds its own to one list per app in Redis (every
//!   second, newest first, trimmed to [`RECENT_ERRORS`]) and the API reads that one.
//! - **Writing**: every `stats_sample_secs` (and when a minute ends) the buckets with any
//!   activity or open connection go to a pending map, and the writer adds the whole map to the
//!   database in one transaction (read-merge-write, [`crate::db::stats`]): 1,000 apps are one
//!   write. While the database is down the map waits in memory, at most
//!   [`MAX_PENDING_ROWS`] buckets (the oldest are dropped, counted and logged beyond that).
//! - **Rollups and pruning** ([`schedule`]): each hour and day is rolled up once it ended, and
//!   expired rows are deleted once an hour, in the writer, after its write.
//! - **Cluster**: rows carry this node's name (`stats_node`, else the cluster node id in cluster
//!   mode, else the host name), each node writes only its own rows, and every query merges the
//!   nodes' rows of a bucket, so counters are exact sums. Peaks and minimums are not sums (two
//!   nodes peaking at different seconds), so in a cluster the nodes leave them out of their
//!   rows, and one node at a time (a lease in Redis) writes the cluster's own, as the rows of
//!   node `*` ([`cluster`]): Redis records them at every change of a cluster total, which
//!   makes them exact. A node that lost Redis during a bucket keeps its own gauges in that row,
//!   so a minute with an outage shows an upper bound instead of nothing.

mod cluster;
pub mod counters;
pub mod health;
pub mod query;
pub mod reading;
pub mod schedule;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shared::stats::{Along, Counts, LiveStats, RecentError, MINUTE, SERVER};
use tokio::sync::watch;

pub use counters::AppStats;
use reading::Raw;
use schedule::{Dirty, Retention};

use crate::actors::directory::Directory;
use crate::cluster::Cluster;
use crate::db::stats::StatKey;
use crate::db::Db;
use crate::events::{AppEvent, AppEvents, Kind, Kinds, Queue};
use crate::metrics::AppMetrics;
use crate::node::NodeState;
use crate::settings::Settings;

/// Buckets kept in memory while the database is down (a few hundred bytes each).
pub const MAX_PENDING_ROWS: usize = 50_000;
/// Recent errors kept per app.
pub const RECENT_ERRORS: usize = 50;
/// Recent errors waiting to be shared with the cluster.
const MAX_UNSHARED: usize = 1000;
/// Events waiting between an app's hot path and the sampler (errors and refusals only).
const QUEUE_CAPACITY: usize = 1024;
/// Seconds the live rates average over.
const LIVE_WINDOW: usize = 10;
/// How often the node holding the cluster's gauge lease reads them (at most; it follows
/// `stats_sample_secs` when that is shorter), so that a minute's final values land soon after
/// it ends. The lease lasts three rounds: a dead holder is replaced within it.
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// The node name of the cluster's own gauge rows.
pub const CLUSTER_NODE: &str = "*";

/// What the statistics need from the settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub enabled: bool,
    pub node: String,
    /// Cluster mode: recent errors are shared through Redis, gauges are the cluster's.
    pub cluster: bool,
    pub flush_every: Duration,
    pub retention: Retention,
}

impl Config {
    pub fn from_settings(settings: &Settings) -> Self {
        let days = |d: u64| {
            i64::try_from(d)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(86_400)
        };
        Self {
            enabled: settings.stats_enabled,
            node: if settings.stats_node.is_empty() {
                health::host_name()
            } else {
                settings.stats_node.clone()
            },
            cluster: false,
            flush_every: Duration::from_secs(settings.stats_sample_secs.max(1)),
            retention: Retention {
                minutes: days(settings.stats_minute_retention_days),
                hours: days(settings.stats_hour_retention_days),
                days: days(settings.stats_day_retention_days),
            },
        }
    }
}

/// The live numbers of the last second: the server's and each app's.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub server: LiveStats,
    pub apps: HashMap<String, LiveStats>,
}

struct Inner {
    config: Config,
    pending: Mutex<BTreeMap<StatKey, Counts>>,
    /// Rows a write in progress holds out of `pending` (they go back if it fails).
    writing: AtomicUsize,
    dropped_rows: AtomicU64,
    /// What the dashboard shows: this node's numbers, or in a cluster the cluster's.
    live: watch::Sender<Arc<Live>>,
    /// This node's own numbers (the sampler's).
    local: watch::Sender<Arc<Live>>,
    recent: Mutex<HashMap<String, VecDeque<RecentError>>>,
    /// In cluster mode, recent errors not yet shared through Redis (at most [`MAX_UNSHARED`]).
    unshared: Mutex<Vec<(String, RecentError)>>,
    started_at: i64,
}

/// The statistics service (cheap to clone): live numbers, recent errors, pending rows.
#[derive(Clone)]
pub struct Stats(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every guarded value stays whole: updates are single inserts and removals.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stats {
    pub fn new(config: Config) -> Self {
        Self(Arc::new(Inner {
            config,
            pending: Mutex::default(),
            writing: AtomicUsize::new(0),
            dropped_rows: AtomicU64::new(0),
            live: watch::channel(Arc::new(Live::default())).0,
            local: watch::channel(Arc::new(Live::default())).0,
            recent: Mutex::default(),
            unshared: Mutex::default(),
            started_at: crate::db::now_unix(),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// When the server started (unix seconds).
    pub fn started_at(&self) -> i64 {
        self.0.started_at
    }

    /// The live numbers, updated every second.
    pub fn live(&self) -> watch::Receiver<Arc<Live>> {
        self.0.live.subscribe()
    }

    /// An app's recent errors and refusals, newest first.
    pub fn recent_errors(&self, app_id: &str) -> Vec<RecentError> {
        lock(&self.0.recent)
            .get(app_id)
            .map(|q| q.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Buckets waiting for the database, and buckets dropped because it stayed down.
    pub fn pending(&self) -> (usize, u64) {
        (
            // With the rows a write in progress holds: during an outage each attempt holds them
            // for up to the database timeout, and they would otherwise read as none.
            lock(&self.0.pending).len() + self.0.writing.load(Ordering::Relaxed),
            self.0.dropped_rows.load(Ordering::Relaxed),
        )
    }

    /// Adds buckets to the pending map, dropping the oldest beyond [`MAX_PENDING_ROWS`].
    fn queue_rows(&self, rows: impl IntoIterator<Item = (StatKey, Counts)>) {
        let mut pending = lock(&self.0.pending);
        for (key, counts) in rows {
            pending.entry(key).or_default().merge(&counts, Along::Time);
        }
        let mut dropped = 0;
        while pending.len() > MAX_PENDING_ROWS {
            // Keys sort by app first; find the oldest bucket instead.
            let oldest = pending
                .keys()
                .min_by_key(|k| k.bucket_start)
                .cloned()
                .expect("not empty");
            pending.remove(&oldest);
            dropped += 1;
        }
        drop(pending);
        if dropped > 0 {
            self.0.dropped_rows.fetch_add(dropped, Ordering::Relaxed);
            tracing::error!(
                dropped,
                "statistics dropped: the database was down for too long"
            );
        }
    }

    /// Writes the pending buckets in one transaction (blocking). On failure they go back.
    /// Returns the minute buckets written.
    pub fn write_pending(&self, db: &Db) -> Result<Vec<i64>, crate::db::DbError> {
        let rows = std::mem::take(&mut *lock(&self.0.pending));
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.0.writing.store(rows.len(), Ordering::Relaxed);
        let written = db.add_stats(&rows);
        let result = match written {
            Ok(()) => {
                let mut minutes: Vec<i64> = rows.keys().map(|k| k.bucket_start).collect();
                minutes.dedup();
                Ok(minutes)
            }
            Err(e) => {
                self.queue_rows(rows);
                Err(e)
            }
        };
        // After the rows are back (on failure), so that they never read as none meanwhile.
        self.0.writing.store(0, Ordering::Relaxed);
        result
    }

    fn record_error(&self, app_id: &str, mut error: RecentError) {
        if self.0.config.cluster {
            error.node = Some(self.0.config.node.clone());
            let mut unshared = lock(&self.0.unshared);
            // Redis is down for long: the oldest go unshared (each node still lists its own).
            if unshared.len() >= MAX_UNSHARED {
                unshared.remove(0);
            }
            unshared.push((app_id.to_owned(), error.clone()));
        }
        let mut recent = lock(&self.0.recent);
        let list = recent.entry(app_id.to_owned()).or_default();
        if list.len() >= RECENT_ERRORS {
            list.pop_front();
        }
        list.push_back(error);
    }

    /// An app's recent errors: in a cluster (while Redis answers) every node's, from the
    /// shared list; else this node's.
    pub async fn recent_errors_of(
        &self,
        cluster: Option<&Cluster>,
        app_id: &str,
    ) -> Vec<RecentError> {
        if let Some(cluster) = cluster.filter(|c| c.is_healthy()) {
            if let Ok(shared) = cluster.shared_errors(app_id, RECENT_ERRORS).await {
                return shared
                    .iter()
                    .filter_map(|json| serde_json::from_str(json).ok())
                    .collect();
            }
        }
        self.recent_errors(app_id)
    }

    /// Shares the errors recorded since the last call with the cluster; they wait for the next
    /// call when Redis does not take them.
    async fn share_errors(&self, cluster: &Cluster) {
        let errors = std::mem::take(&mut *lock(&self.0.unshared));
        if errors.is_empty() {
            return;
        }
        let encoded: Vec<(String, String)> = errors
            .iter()
            .filter_map(|(app, e)| Some((app.clone(), serde_json::to_string(e).ok()?)))
            .collect();
        if cluster.share_errors(&encoded, RECENT_ERRORS).await.is_err() {
            let mut unshared = lock(&self.0.unshared);
            let newer = std::mem::replace(&mut *unshared, errors);
            unshared.extend(newer);
            let excess = unshared.len().saturating_sub(MAX_UNSHARED);
            unshared.drain(..excess);
        }
    }

    fn forget_app(&self, app_id: &str) {
        lock(&self.0.recent).remove(app_id);
    }
}

/// What the sampler keeps per app.
struct Tracked {
    metrics: AppMetrics,
    /// The app's `pusher:error`s and refusals (their registrations live as long as these).
    errors: Queue,
    refusals: Queue,
    last: Raw,
    /// The current bucket (this minute, since the last flush).
    bucket: Counts,
    /// The last seconds' changes, for live rates.
    window: VecDeque<Counts>,
    connections: i64,
    channels: i64,
    /// The app is still in the directory (cleared, then set again each second).
    present: bool,
}

impl Tracked {
    fn new(metrics: AppMetrics, events: &AppEvents) -> Self {
        let errors = events.queue(Kinds::of(&[Kind::Error]), QUEUE_CAPACITY);
        let refusals = events.queue(Kinds::of(&[Kind::RateLimited]), QUEUE_CAPACITY);
        Self {
            metrics,
            errors,
            refusals,
            last: Raw::default(),
            bucket: Counts::default(),
            window: VecDeque::with_capacity(LIVE_WINDOW),
            connections: 0,
            channels: 0,
            present: true,
        }
    }

    /// Reads the counters: one second's changes (and the gauges, if `gauges`).
    fn sample(&mut self, stats: &Stats, app_id: &str, webhooks: [u64; 2], gauges: bool) -> Counts {
        while let Some(event) = self.errors.try_recv() {
            if let AppEvent::Error {
                socket_id,
                channel,
                code,
                message,
            } = &event.event
            {
                stats.record_error(
                    app_id,
                    RecentError {
                        at_ms: event.at_ms,
                        kind: "error".into(),
                        socket_id: Some(socket_id.clone()),
                        channel: channel.clone(),
                        code: *code,
                        message: message.clone(),
                        node: None,
                    },
                );
            }
        }
        while let Some(event) = self.refusals.try_recv() {
            if let AppEvent::RateLimited { socket_id, limit } = &event.event {
                stats.record_error(
                    app_id,
                    RecentError {
                        at_ms: event.at_ms,
                        kind: "rate_limited".into(),
                        socket_id: socket_id.clone(),
                        channel: None,
                        code: None,
                        message: format!("refused by the {} limit", limit.label()),
                        node: None,
                    },
                );
            }
        }
        let now = Raw::read(&self.metrics, webhooks).derive(&self.last);
        let mut second = reading::delta(&self.last, &now);
        self.last = now;
        if gauges {
            let open = self.metrics.connections.get();
            let peak = self.metrics.stats.take_peak(open);
            self.channels = self.metrics.channels.get();
            self.connections = open;
            second.merge(&reading::gauges(open, peak, self.channels), Along::Time);
        }
        self.bucket.merge(&second, Along::Time);
        if self.window.len() == LIVE_WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(second);
        second
    }

    fn live(&self, app_id: &str, at_ms: i64) -> LiveStats {
        live_stats(app_id, at_ms, self.connections, self.channels, &self.window)
    }
}

#[allow(clippy::cast_precision_loss)]
fn live_stats(
    app_id: &str,
    at_ms: i64,
    connections: i64,
    channels: i64,
    window: &VecDeque<Counts>,
) -> LiveStats {
    let mut sum = Counts::default();
    for s in window {
        sum.merge(s, Along::Time);
    }
    let secs = window.len().max(1) as f64;
    let rate = |v: i64| (v as f64 / secs * 100.0).round() / 100.0;
    LiveStats {
        at_ms,
        app_id: app_id.to_owned(),
        connections,
        channels,
        messages_in_per_sec: rate(sum.messages_in_api + sum.messages_in_client),
        messages_out_per_sec: rate(sum.messages_out),
        api_requests_per_sec: rate(sum.api_requests),
        errors_per_sec: rate(sum.problems()),
        bytes_in_per_sec: rate(sum.ws_bytes_in + sum.http_bytes_in),
        bytes_out_per_sec: rate(sum.ws_bytes_out + sum.http_bytes_out),
    }
}

/// The sampler's memory.
struct Sampler {
    stats: Stats,
    directory: Directory,
    node: Arc<NodeState>,
    apps: HashMap<String, Tracked>,
    server: Counts,
    server_window: VecDeque<Counts>,
    /// The minute the current buckets belong to.
    minute: i64,
    last_flush: i64,
    /// In a cluster, the gauges in this node's rows are the cluster's job ([`cluster`]).
    cluster: Option<Cluster>,
    /// The cluster was degraded at some second of the current buckets: they keep their gauges.
    degraded: bool,
}

impl Sampler {
    /// One second: sample every app; at a minute's end or a flush, move buckets to pending.
    fn tick(&mut self, now_ms: i64, gauges: bool) {
        let now = now_ms.div_euclid(1000);
        let minute = schedule::floor(now, MINUTE);
        if minute != self.minute || now - self.last_flush >= flush_secs(&self.stats) {
            self.flush();
            self.minute = minute;
            self.last_flush = now;
        }
        if self.cluster.as_ref().is_some_and(|c| !c.is_healthy()) {
            self.degraded = true;
        }
        for tracked in self.apps.values_mut() {
            tracked.present = false;
        }
        let mut second = Counts::default();
        let (mut open, mut channels, mut top_peak) = (0, 0, 0);
        for handle in self.directory.all() {
            let id = handle.config.load().id.clone();
            let tracked = match self.apps.get_mut(&id) {
                Some(t) if Arc::ptr_eq(&t.metrics.stats, &handle.metrics.stats) => t,
                _ => {
                    // New, or deleted and created again: a fresh start (its metrics are new).
                    if let Some(mut old) = self.apps.remove(&id) {
                        old.sample(
                            &self.stats,
                            &id,
                            self.node.metrics.webhook_totals(&id),
                            false,
                        );
                        self.stats.queue_rows(bucket_row(
                            &self.stats,
                            &id,
                            self.minute,
                            &old.bucket,
                        ));
                    }
                    self.apps
                        .entry(id.clone())
                        .or_insert_with(|| Tracked::new(handle.metrics.clone(), &handle.events))
                }
            };
            tracked.present = true;
            let webhooks = self.node.metrics.webhook_totals(&id);
            let s = tracked.sample(&self.stats, &id, webhooks, gauges);
            top_peak = top_peak.max(s.connections_peak);
            second.merge(&counters_only(s), Along::Time);
            open += tracked.connections;
            channels += tracked.channels;
        }
        // Apps that stopped: their last counts go into this minute, then they are forgotten.
        let gone: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, t)| !t.present)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(mut old) = self.apps.remove(&id) {
                let webhooks = self.node.metrics.webhook_totals(&id);
                old.sample(&self.stats, &id, webhooks, false);
                self.stats
                    .queue_rows(bucket_row(&self.stats, &id, self.minute, &old.bucket));
                self.stats.forget_app(&id);
            }
        }
        if gauges {
            second.merge(
                &reading::gauges(open, top_peak.max(open), channels),
                Along::Time,
            );
        }
        self.server.merge(&second, Along::Time);
        if self.server_window.len() == LIVE_WINDOW {
            self.server_window.pop_front();
        }
        self.server_window.push_back(second);
        let live = Live {
            server: live_stats(SERVER, now_ms, open, channels, &self.server_window),
            apps: self
                .apps
                .iter()
                .map(|(id, t)| (id.clone(), t.live(id, now_ms)))
                .collect(),
        };
        let live = Arc::new(live);
        if !self.stats.0.config.cluster {
            self.stats.0.live.send_replace(live.clone());
        }
        // In a cluster the cluster task adds the other nodes' and publishes that.
        self.stats.0.local.send_replace(live);
    }

    /// Moves every bucket with something in it to the pending map.
    fn flush(&mut self) {
        let mut rows = Vec::new();
        for (id, tracked) in &mut self.apps {
            let bucket = std::mem::take(&mut tracked.bucket);
            rows.extend(bucket_row(&self.stats, id, self.minute, &bucket));
        }
        let server = std::mem::take(&mut self.server);
        if server.samples > 0 || !server.is_idle() {
            // The server row is written even when idle: its samples say the server was up.
            rows.push((key(&self.stats, SERVER, self.minute), server));
        }
        if self.cluster.is_some() && !self.degraded {
            for (_, counts) in &mut rows {
                *counts = without_gauges(*counts);
            }
        }
        self.degraded = self.cluster.as_ref().is_some_and(|c| !c.is_healthy());
        self.stats.queue_rows(rows);
    }
}

/// A bucket's counters without its gauges (apps' gauges do not add up to the server's).
fn counters_only(c: Counts) -> Counts {
    Counts {
        samples: 0,
        connections_peak: 0,
        connections_min: 0,
        connections_sum: 0,
        channels_peak: 0,
        ..c
    }
}

/// A node's bucket without the gauges that only the cluster can know (peaks and minimums);
/// the samples and the connection sum add up across nodes and stay.
fn without_gauges(c: Counts) -> Counts {
    Counts {
        connections_peak: 0,
        connections_min: 0,
        channels_peak: 0,
        ..c
    }
}

fn flush_secs(stats: &Stats) -> i64 {
    i64::try_from(stats.config().flush_every.as_secs()).unwrap_or(60)
}

fn key(stats: &Stats, app_id: &str, minute: i64) -> StatKey {
    StatKey {
        app_id: app_id.to_owned(),
        resolution: MINUTE,
        bucket_start: minute,
        node: stats.config().node.clone(),
    }
}

fn bucket_row(
    stats: &Stats,
    app_id: &str,
    minute: i64,
    bucket: &Counts,
) -> Option<(StatKey, Counts)> {
    (!bucket.is_idle()).then(|| (key(stats, app_id, minute), *bucket))
}

/// The running statistics: the sampler and the writer.
pub struct Running {
    sampler: actix_web::rt::task::JoinHandle<()>,
    writer: actix_web::rt::task::JoinHandle<()>,
    gauges: Option<actix_web::rt::task::JoinHandle<()>>,
    state: Arc<Mutex<Option<Sampler>>>,
    stats: Stats,
    db: Db,
}

/// Starts the sampler (every second) and the writer (every `stats_sample_secs`), and in a
/// cluster the task that shares recent errors and writes the cluster's gauges while this node
/// holds their lease.
pub fn start(
    stats: &Stats,
    db: Db,
    directory: Directory,
    node: Arc<NodeState>,
    cluster: Option<Cluster>,
) -> Running {
    let now = crate::db::now_unix();
    let gauges = cluster
        .clone()
        .map(|c| actix_web::rt::spawn(cluster::run(stats.clone(), directory.clone(), c)));
    let sampler = Sampler {
        stats: stats.clone(),
        directory,
        node,
        apps: HashMap::new(),
        server: Counts::default(),
        server_window: VecDeque::new(),
        minute: schedule::floor(now, MINUTE),
        last_flush: now,
        cluster,
        degraded: false,
    };
    let state = Arc::new(Mutex::new(Some(sampler)));
    let ticking = state.clone();
    let sampler = actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some(s) = lock(&ticking).as_mut() {
                s.tick(crate::events::now_ms(), true);
            }
        }
    });
    let writer = {
        let (stats, db) = (stats.clone(), db.clone());
        actix_web::rt::spawn(async move {
            let mut dirty = Dirty::at_start(crate::db::now_unix());
            let mut pruned_at = 0;
            let mut tick = actix_web::rt::time::interval(stats.config().flush_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (s, d) = (stats.clone(), db.clone());
                let round = actix_web::web::block(move || {
                    let done = maintain(&s, &d, &mut dirty, &mut pruned_at, crate::db::now_unix());
                    (dirty, pruned_at, done)
                })
                .await;
                match round {
                    Ok((d, p, _)) => {
                        dirty = d;
                        pruned_at = p;
                    }
                    Err(_) => {
                        dirty = Dirty::at_start(crate::db::now_unix());
                    }
                }
            }
        })
    };
    Running {
        sampler,
        writer,
        gauges,
        state,
        stats: stats.clone(),
        db,
    }
}

/// One writer round (blocking): write what is pending, roll up what is due, prune once an
/// hour. Returns whether the database took the write.
pub fn maintain(stats: &Stats, db: &Db, dirty: &mut Dirty, pruned_at: &mut i64, now: i64) -> bool {
    match stats.write_pending(db) {
        Ok(minutes) => {
            for m in minutes {
                dirty.minute_written(m);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot write statistics; keeping them for the next round");
            return false;
        }
    }
    let mut due = dirty.take_due(now).into_iter();
    while let Some(rollup) = due.next() {
        if let Err(e) = db.roll_up_stats(rollup.finer, rollup.resolution, rollup.bucket) {
            // The database is likely down: the rest wait for the next round too.
            tracing::warn!(error = %e, bucket = rollup.bucket, "statistics rollup failed; retrying");
            dirty.failed(rollup);
            due.for_each(|r| dirty.failed(r));
            return true;
        }
    }
    if now - *pruned_at >= 3600 {
        *pruned_at = now;
        for (resolution, before) in stats.config().retention.cutoffs(now) {
            match db.prune_stats(resolution, before) {
                Ok(0) => {}
                Ok(n) => tracing::info!(resolution, rows = n, "expired statistics deleted"),
                Err(e) => tracing::warn!(error = %e, "statistics pruning failed"),
            }
        }
    }
    true
}

impl Running {
    /// Stops sampling, then moves the last buckets to pending and writes them (at shutdown).
    pub async fn stop(self) {
        self.sampler.abort();
        self.writer.abort();
        if let Some(gauges) = &self.gauges {
            gauges.abort();
        }
        if let Some(mut sampler) = lock(&self.state).take() {
            // The last partial second's counters (no gauge sample: the second is not whole).
            sampler.tick(crate::events::now_ms(), false);
            sampler.flush();
        }
        let (stats, db) = (self.stats.clone(), self.db.clone());
        let _ = actix_web::web::block(move || stats.write_pending(&db)).await;
    }
}
