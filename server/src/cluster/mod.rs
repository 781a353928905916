//! Cluster mode: many nodes serving one set of apps, with Redis as the one shared truth.
//!
//! Off unless `cluster_redis_url` is set; a single process needs none of this.
//!
//! **Design** (see ARCHITECTURE.md and ../shared/CLUSTER.md for the alternatives weighed):
//! shared state lives in Redis, written by each node as its own *absolute* contribution through
//! Lua scripts ([`scripts`]) that fold it into the cluster totals and decide every 0 ↔ 1
//! transition atomically (occupied/vacated, member added/removed, the app's connection cap).
//! Events travel by pub/sub, one channel per app, as [`envelope`] messages; the node that
//! produced an event delivers it to its own sockets directly and ignores its echo, every other
//! node delivers it once to its own. Nodes never ask each other anything and never wait on
//! each other: a count is one Redis read, a presence join one script.
//!
//! **Liveness**: each node renews a lease in `<p>:nodes` every `cluster_heartbeat_ms`; every
//! node sweeps for leases past their deadline (Redis's clock, never the nodes'), claims a dead
//! node with `SET NX` (one survivor wins, no election) and reaps it in chunks through the same
//! transitions, so the others get `member_removed` for its users. A reaped node that comes back
//! is fenced (its scripts answer `-1`) until it re-registers and sends its state again.
//!
//! **Silent subscriber**: a pub/sub connection can stay open and deliver nothing (a NAT or
//! proxy that lost its state): no command fails, no disconnection is reported. So each beat the
//! node publishes a probe to a channel only it subscribes to; a probe not back within
//! [`probe_timeout`] degrades the node like a failed command, and the health loop replaces
//! both connections.
//!
//! **Outage**: a failed or slow (500 ms) command marks the node `Degraded`: it keeps serving
//! its own sockets and decides presence and counts locally, events bound for other nodes are
//! dropped and counted (pub/sub has no replay, and Pusher promises none). The health loop
//! reconnects with fresh connections, re-registers, and asks every app to send its state
//! again ([`Hooks::resync`]); the transitions that really happened meanwhile come out of the
//! scripts as events, once.
//!
//! Actors never import this module's internals: they hold an [`AppLink`] (one app's view) and
//! the server wires [`Hooks`] so that bus messages reach the app's supervisor.

pub mod envelope;
pub mod scripts;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushKind, Value};
use serde::Serialize;
use tokio::sync::mpsc;

pub use envelope::{Envelope, Message};
use scripts::Scripts;

/// How the cluster is configured (from the `cluster_*` settings).
#[derive(Debug, Clone)]
pub struct Config {
    pub redis_url: String,
    pub key_prefix: String,
    pub node_id: String,
    pub heartbeat: Duration,
    pub lease: Duration,
    /// This node's address, shown in the panel's node list.
    pub address: String,
    /// `webhook_vacate_delay_ms`: a channel or member back within it, on any node, cancels the
    /// delayed `channel_vacated`/`member_removed` webhook of the node that holds it.
    pub vacate_delay: Duration,
}

/// What the server does for the cluster: deliver bus messages to an app's supervisor, send
/// every app's local state again, announce what a reaper found, read local figures.
pub trait Hooks: Send + Sync + 'static {
    /// A message for an app from another node.
    fn deliver(&self, app_id: &str, envelope: Envelope);
    /// Every app sends its absolute local state again (after a reconnect or a reap).
    fn resync(&self);
    /// A dead node's reaping vacated channels and removed members of an app (cluster-wide
    /// transitions: for this node's webhooks and console, once).
    fn reaped(&self, app_id: &str, vacated: Vec<String>, removed: Vec<(String, String)>);
    /// An app changed in the database (reload it now).
    fn app_changed(&self, app_id: &str);
    /// Open connections on this node (for the node list).
    fn connections(&self) -> usize;
    /// Whether an app asks for `subscription_count` events (the reaper publishes them).
    fn wants_counts(&self, app_id: &str) -> bool;
}

/// Whether the cluster can be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
}

/// Why a cluster call did not happen; the caller decides locally instead.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("the cluster is degraded")]
    Degraded,
    #[error("this node was declared dead and is re-registering")]
    Fenced,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

struct ClusterMetrics {
    healthy: IntGauge,
    messages: IntCounterVec,
    errors: IntCounter,
    reaped: IntCounter,
    recoveries: IntCounter,
    latency: Histogram,
}

impl ClusterMetrics {
    fn new(metrics: &crate::metrics::Metrics) -> Self {
        let healthy = IntGauge::with_opts(
            Opts::new(
                "cluster_healthy",
                "1 while this node's Redis link works, 0 while degraded (cluster mode only)",
            )
            .namespace("reverb_pusher"),
        )
        .expect("valid metric");
        let messages = IntCounterVec::new(
            Opts::new(
                "cluster_messages_total",
                "Messages relayed through Redis: sent, received, dropped (degraded or queue full)",
            )
            .namespace("reverb_pusher"),
            &["direction"],
        )
        .expect("valid metric");
        let errors = IntCounter::with_opts(
            Opts::new(
                "cluster_redis_errors_total",
                "Redis commands that failed or timed out",
            )
            .namespace("reverb_pusher"),
        )
        .expect("valid metric");
        let reaped = IntCounter::with_opts(
            Opts::new(
                "cluster_dead_nodes_total",
                "Dead nodes this node reaped (their members removed, counts fixed)",
            )
            .namespace("reverb_pusher"),
        )
        .expect("valid metric");
        let recoveries = IntCounter::with_opts(
            Opts::new(
                "cluster_reconnects_total",
                "Times this node reconnected to Redis and sent its state again",
            )
            .namespace("reverb_pusher"),
        )
        .expect("valid metric");
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "cluster_redis_duration_seconds",
                "Round trip of the heartbeat script to Redis",
            )
            .namespace("reverb_pusher")
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5,
            ]),
        )
        .expect("valid metric");
        for direction in ["sent", "received", "dropped_out", "dropped_in"] {
            messages.with_label_values(&[direction]);
        }
        metrics.register(Box::new(healthy.clone()));
        metrics.register(Box::new(messages.clone()));
        metrics.register(Box::new(errors.clone()));
        metrics.register(Box::new(reaped.clone()));
        metrics.register(Box::new(recoveries.clone()));
        metrics.register(Box::new(latency.clone()));
        Self {
            healthy,
            messages,
            errors,
            reaped,
            recoveries,
            latency,
        }
    }
}

/// Bus messages waiting for the writer, and received ones waiting for delivery.
const QUEUE: usize = 65_536;
/// How long a reaper's claim on a dead node lasts without renewal.
const CLAIM_MS: u64 = 10_000;
/// Fields a reaper zeroes per script call, so Redis stays responsive.
const REAP_CHUNK: usize = 500;

struct Inner {
    config: Config,
    /// `<key_prefix>:v1`.
    prefix: String,
    scripts: Scripts,
    /// Commands and scripts; replaced with a fresh connection on recovery.
    cmd: ArcSwapOption<ConnectionManager>,
    /// The subscriber connection (RESP3 pushes); replaced with `cmd`.
    bus: tokio::sync::Mutex<Option<ConnectionManager>>,
    healthy: AtomicBool,
    /// Set when the node leaves: its loops end instead of reconnecting.
    stopped: AtomicBool,
    /// When the node last became healthy (sweeping waits a lease after it).
    healthy_since: Mutex<Instant>,
    /// Apps whose bus channel this node subscribes to.
    watched: Mutex<HashSet<String>>,
    hooks: OnceLock<Arc<dyn Hooks>>,
    outgoing: mpsc::Sender<(String, Vec<u8>)>,
    metrics: ClusterMetrics,
    started_ms: u64,
    /// The last heartbeat's Unix time in ms (for the node list of a degraded node).
    last_beat_ms: AtomicU64,
    /// The probe this node published last (sequence, when) and the last one that came back.
    probe_sent: Mutex<Option<(u64, Instant)>>,
    probe_seen: AtomicU64,
}

/// This node's handle on the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

pub use shared::admin::ClusterNode as NodeInfo;

/// How long an app's shared recent errors outlive the last one.
const ERRORS_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A node id of 12 random hex digits, unless the settings name one.
pub fn generate_node_id() -> String {
    let n: u64 = rand::random();
    format!("{:012x}", n & 0xffff_ffff_ffff)
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}

/// How long a probe may take to come back before the subscriber connection is taken for
/// silent: two beats, and never less than 2 s, so that a loaded machine is not mistaken for a
/// dead connection (each false alarm costs a reconnect and a resync).
fn probe_timeout(heartbeat: Duration) -> Duration {
    (heartbeat * 2).max(Duration::from_secs(2))
}

impl Cluster {
    /// Connects to Redis and starts this node's tasks (writer, receiver, heartbeat and sweep).
    /// Fails when Redis cannot be reached at start: a node should not join a cluster it cannot
    /// see (a later outage only degrades it).
    pub async fn start(
        config: Config,
        metrics: &crate::metrics::Metrics,
        hooks: Arc<dyn Hooks>,
    ) -> Result<Self, redis::RedisError> {
        let (outgoing, outgoing_rx) = mpsc::channel(QUEUE);
        let inner = Arc::new(Inner {
            prefix: format!("{}:v1", config.key_prefix),
            config,
            scripts: Scripts::new(),
            cmd: ArcSwapOption::empty(),
            bus: tokio::sync::Mutex::new(None),
            healthy: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            healthy_since: Mutex::new(Instant::now()),
            watched: Mutex::new(HashSet::new()),
            hooks: OnceLock::new(),
            outgoing,
            metrics: ClusterMetrics::new(metrics),
            started_ms: unix_ms(),
            last_beat_ms: AtomicU64::new(0),
            probe_sent: Mutex::new(None),
            probe_seen: AtomicU64::new(0),
        });
        let _ = inner.hooks.set(hooks);
        let cluster = Self(inner);
        let (received_tx, received_rx) = mpsc::channel(QUEUE);
        cluster.connect(received_tx.clone()).await?;
        match cluster.beat().await {
            Ok(_) => cluster.set_healthy(),
            Err(e) => return Err(into_redis(e)),
        }
        tracing::info!(
            node_id = %cluster.node_id(),
            prefix = %cluster.0.config.key_prefix,
            "cluster: joined"
        );
        actix_web::rt::spawn(cluster.clone().writer(outgoing_rx));
        actix_web::rt::spawn(cluster.clone().receiver(received_rx));
        actix_web::rt::spawn(cluster.clone().health_loop(received_tx));
        Ok(cluster)
    }

    pub fn node_id(&self) -> &str {
        &self.0.config.node_id
    }

    fn delay_ms(&self) -> u64 {
        u64::try_from(self.0.config.vacate_delay.as_millis()).unwrap_or(u64::MAX)
    }

    pub fn health(&self) -> Health {
        if self.0.healthy.load(Ordering::Acquire) {
            Health::Healthy
        } else {
            Health::Degraded
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.health() == Health::Healthy
    }

    /// One app's view of the cluster.
    pub fn app(&self, app_id: &str) -> AppLink {
        AppLink {
            cluster: self.clone(),
            app: Arc::from(app_id),
        }
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.0.prefix)
    }

    fn app_channel(&self, app_id: &str) -> String {
        self.key(&format!("a:{app_id}:ev"))
    }

    fn control_channel(&self) -> String {
        self.key("ctl")
    }

    /// The channel only this node subscribes to (its probes).
    fn probe_channel(&self) -> String {
        self.key(&format!("n:{}:in", self.node_id()))
    }

    /// Opens fresh command and subscriber connections, subscribing to the control channel and
    /// every watched app. Old connections are dropped (their tasks end with them).
    async fn connect(
        &self,
        received: mpsc::Sender<(String, Bytes)>,
    ) -> Result<(), redis::RedisError> {
        let info = self.0.config.redis_url.as_str().into_connection_info()?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(resp3);
        let client = redis::Client::open(info)?;
        let cmd = ConnectionManager::new_with_config(client.clone(), manager_config()).await?;
        let weak = Arc::downgrade(&self.0);
        let push = move |push: redis::PushInfo| -> Result<(), std::convert::Infallible> {
            // Never an error (redis-rs#1610: a failing sender can stop delivery for good).
            let Some(inner) = weak.upgrade() else {
                return Ok(());
            };
            match push.kind {
                PushKind::Message => {
                    if let [Value::BulkString(channel), Value::BulkString(payload), ..] =
                        push.data.as_slice()
                    {
                        let channel = String::from_utf8_lossy(channel).into_owned();
                        let payload = Bytes::copy_from_slice(payload);
                        if received.try_send((channel, payload)).is_err() {
                            inner
                                .metrics
                                .messages
                                .with_label_values(&["dropped_in"])
                                .inc();
                        }
                    }
                }
                PushKind::Disconnection if inner.healthy.swap(false, Ordering::AcqRel) => {
                    inner.metrics.healthy.set(0);
                    tracing::warn!("cluster: subscriber connection lost; degraded");
                }
                _ => {}
            }
            Ok(())
        };
        let mut bus = ConnectionManager::new_with_config(
            client,
            manager_config()
                .set_push_sender(push)
                .set_automatic_resubscription(),
        )
        .await?;
        bus.subscribe(self.control_channel()).await?;
        bus.subscribe(self.probe_channel()).await?;
        let watched: Vec<String> = self
            .0
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        for app in watched {
            bus.subscribe(self.app_channel(&app)).await?;
        }
        self.0.cmd.store(Some(Arc::new(cmd)));
        *self.0.bus.lock().await = Some(bus);
        Ok(())
    }

    fn cmd(&self) -> Result<ConnectionManager, Unavailable> {
        if !self.is_healthy() {
            return Err(Unavailable::Degraded);
        }
        self.0
            .cmd
            .load_full()
            .map(|c| (*c).clone())
            .ok_or(Unavailable::Degraded)
    }

    fn set_healthy(&self) {
        *self
            .0
            .healthy_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.healthy.store(true, Ordering::Release);
        self.0.metrics.healthy.set(1);
    }

    /// A Redis answer, with a failure degrading the node (see [`Self::failed`]).
    fn redis<T>(&self, result: Result<T, redis::RedisError>) -> Result<T, Unavailable> {
        result.map_err(|e| {
            let e = Unavailable::Redis(e);
            self.failed(&e);
            e
        })
    }

    /// A command failed: degrade (the health loop reconnects and resyncs).
    fn failed(&self, error: &Unavailable) {
        if let Unavailable::Redis(e) = error {
            self.0.metrics.errors.inc();
            if self.0.healthy.swap(false, Ordering::AcqRel) {
                self.0.metrics.healthy.set(0);
                tracing::warn!(error = %e, "cluster: Redis failed; degraded (serving local sockets only)");
            }
        }
        if matches!(error, Unavailable::Fenced) && self.0.healthy.swap(false, Ordering::AcqRel) {
            self.0.metrics.healthy.set(0);
            tracing::warn!("cluster: this node was declared dead; re-registering");
        }
    }

    /// Starts receiving an app's messages (its supervisor started here).
    pub fn watch(&self, app_id: &str) {
        let new = self
            .0
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(app_id.to_owned());
        if new {
            let (cluster, channel) = (self.clone(), self.app_channel(app_id));
            actix_web::rt::spawn(async move {
                if let Some(bus) = cluster.0.bus.lock().await.as_mut() {
                    if let Err(e) = bus.subscribe(&channel).await {
                        // Subscribed again by the recovery that follows.
                        cluster.failed(&Unavailable::Redis(e));
                    }
                }
            });
        }
    }

    /// Stops receiving an app's messages (its supervisor stopped here).
    pub fn unwatch(&self, app_id: &str) {
        let removed = self
            .0
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(app_id);
        if removed {
            let (cluster, channel) = (self.clone(), self.app_channel(app_id));
            actix_web::rt::spawn(async move {
                if let Some(bus) = cluster.0.bus.lock().await.as_mut() {
                    let _ = bus.unsubscribe(&channel).await;
                }
            });
        }
    }

    /// Queues a message for the other nodes; never waits. Dropped (and counted) while
    /// degraded or when the queue is full.
    fn send(&self, channel: String, envelope: &Envelope) {
        if !self.is_healthy()
            || self
                .0
                .outgoing
                .try_send((channel, envelope.encode()))
                .is_err()
        {
            self.0
                .metrics
                .messages
                .with_label_values(&["dropped_out"])
                .inc();
        }
    }

    /// Tells every node that an app changed in the database.
    pub fn announce_app_change(&self, app_id: &str) {
        let envelope = Envelope::new(
            self.node_id(),
            Message::AppChanged {
                app_id: app_id.to_owned(),
            },
        );
        self.send(self.control_channel(), &envelope);
    }

    /// Publishes queued messages, as many as are waiting in one pipeline.
    async fn writer(self, mut rx: mpsc::Receiver<(String, Vec<u8>)>) {
        let mut batch = Vec::with_capacity(256);
        while rx.recv_many(&mut batch, 256).await > 0 {
            let sent = batch.len() as u64;
            let mut pipe = redis::pipe();
            for (channel, payload) in batch.drain(..) {
                pipe.publish(channel, payload).ignore();
            }
            let result = match self.cmd() {
                Ok(mut cmd) => pipe
                    .query_async::<()>(&mut cmd)
                    .await
                    .map_err(Unavailable::from),
                Err(e) => Err(e),
            };
            let label = match result {
                Ok(()) => "sent",
                Err(e) => {
                    self.failed(&e);
                    "dropped_out"
                }
            };
            self.0
                .metrics
                .messages
                .with_label_values(&[label])
                .inc_by(sent);
        }
    }

    /// Hands received messages to the app's supervisor (through [`Hooks::deliver`]).
    async fn receiver(self, mut rx: mpsc::Receiver<(String, Bytes)>) {
        let app_prefix = self.key("a:");
        let control = self.control_channel();
        let probes = self.probe_channel();
        while let Some((channel, payload)) = rx.recv().await {
            let Ok(envelope) = Envelope::decode(&payload) else {
                tracing::warn!(%channel, "cluster: dropped a malformed message");
                continue;
            };
            if channel == probes {
                if let Message::Probe { seq } = envelope.message {
                    self.0.probe_seen.fetch_max(seq, Ordering::AcqRel);
                }
                continue;
            }
            if envelope.origin == self.node_id() {
                continue; // delivered here when it was sent
            }
            self.0
                .metrics
                .messages
                .with_label_values(&["received"])
                .inc();
            let Some(hooks) = self.0.hooks.get() else {
                continue;
            };
            if channel == control {
                if let Message::AppChanged { app_id } = &envelope.message {
                    hooks.app_changed(app_id);
                }
                continue;
            }
            if let Some(app_id) = channel
                .strip_prefix(&app_prefix)
                .and_then(|rest| rest.strip_suffix(":ev"))
            {
                hooks.deliver(app_id, envelope);
            }
        }
    }

    /// The heartbeat script: 1 = still registered, 0 = (re)joined now, 2 = being reaped.
    async fn beat(&self) -> Result<i64, Unavailable> {
        let mut cmd = self
            .0
            .cmd
            .load_full()
            .map(|c| (*c).clone())
            .ok_or(Unavailable::Degraded)?;
        let connections = self.0.hooks.get().map_or(0, |h| h.connections());
        let started = Instant::now();
        let answer: i64 = self
            .0
            .scripts
            .heartbeat
            .arg(&self.0.prefix)
            .arg(self.node_id())
            .arg(u64::try_from(self.0.config.lease.as_millis()).unwrap_or(u64::MAX))
            .arg(&self.0.config.address)
            .arg(env!("CARGO_PKG_VERSION"))
            .arg(self.0.started_ms)
            .arg(connections)
            .invoke_async(&mut cmd)
            .await?;
        self.0
            .metrics
            .latency
            .observe(started.elapsed().as_secs_f64());
        self.0.last_beat_ms.store(unix_ms(), Ordering::Relaxed);
        Ok(answer)
    }

    /// Heartbeats, recovery and sweeping, on one timer.
    async fn health_loop(self, received: mpsc::Sender<(String, Bytes)>) {
        let mut tick = tokio::time::interval(self.0.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.0.stopped.load(Ordering::Acquire) {
                return; // the node left the cluster (shutdown)
            }
            if self.is_healthy() {
                match self.beat().await {
                    Ok(1) => self.probe().await,
                    Ok(0) => {
                        // Reaped while we were away: our state was removed; send it again.
                        tracing::warn!(
                            "cluster: this node had been declared dead; sending its state again"
                        );
                        self.resync();
                    }
                    Ok(_) => self.failed(&Unavailable::Fenced),
                    Err(e) => self.failed(&e),
                }
            } else {
                self.recover(&received).await;
            }
            if self.is_healthy() {
                self.sweep().await;
            }
        }
    }

    /// Checks that the last probe came back, then publishes the next one. A probe still out
    /// after [`probe_timeout`] means the subscriber connection delivers nothing: degrade, so
    /// that the health loop replaces the connections and every app resyncs.
    async fn probe(&self) {
        let Some(seq) = self.next_probe() else {
            return;
        };
        // Published here, not through the writer: a probe is not a message for other nodes
        // (the relayed-messages metric does not count it).
        let probe = Envelope::new(self.node_id(), Message::Probe { seq });
        let published = match self.cmd() {
            Ok(mut cmd) => redis::cmd("PUBLISH")
                .arg(self.probe_channel())
                .arg(probe.encode())
                .query_async::<i64>(&mut cmd)
                .await
                .map_err(Unavailable::from),
            Err(e) => Err(e),
        };
        if let Err(e) = published {
            self.failed(&e);
        }
    }

    /// The sequence of the probe to publish now; `None` while the last one is still on its
    /// way, or when it was lost (the node is then degraded).
    fn next_probe(&self) -> Option<u64> {
        let mut sent = self
            .0
            .probe_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let seen = self.0.probe_seen.load(Ordering::Acquire);
        if let Some((seq, at)) = *sent {
            if seen < seq {
                if at.elapsed() < probe_timeout(self.0.config.heartbeat) {
                    return None; // still on its way
                }
                *sent = None;
                drop(sent);
                self.0.metrics.errors.inc();
                if self.0.healthy.swap(false, Ordering::AcqRel) {
                    self.0.metrics.healthy.set(0);
                    tracing::warn!(
                        "cluster: the subscriber connection stopped delivering (a probe did not come back); reconnecting"
                    );
                }
                return None;
            }
        }
        let seq = sent.map_or(0, |(seq, _)| seq).max(seen) + 1;
        *sent = Some((seq, Instant::now()));
        Some(seq)
    }

    /// Fresh connections, re-registration, then every app's state sent again.
    async fn recover(&self, received: &mpsc::Sender<(String, Bytes)>) {
        if let Err(e) = self.connect(received.clone()).await {
            tracing::debug!(error = %e, "cluster: Redis still unreachable");
            return;
        }
        // 2: still being reaped (wait for the reaper to finish); an error: still down.
        if !matches!(self.beat().await, Ok(0 | 1)) {
            return;
        }
        // A probe lost in the outage says nothing about the new subscriber connection.
        *self
            .0
            .probe_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.set_healthy();
        self.0.metrics.recoveries.inc();
        tracing::info!("cluster: Redis reachable again; sending this node's state");
        self.resync();
    }

    fn resync(&self) {
        if let Some(hooks) = self.0.hooks.get() {
            hooks.resync();
        }
    }

    /// Claims and reaps dead nodes. Waits a lease and a beat after this node became healthy,
    /// so that after an outage nobody reaps peers that had no chance to heartbeat yet.
    async fn sweep(&self) {
        let grace = self.0.config.lease + self.0.config.heartbeat;
        let since = *self
            .0
            .healthy_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if since.elapsed() < grace {
            return;
        }
        let Ok(mut cmd) = self.cmd() else { return };
        let won: Result<Vec<String>, _> = self
            .0
            .scripts
            .sweep
            .arg(&self.0.prefix)
            .arg(self.node_id())
            .arg(CLAIM_MS)
            .invoke_async(&mut cmd)
            .await;
        match won {
            Ok(won) => {
                for dead in won {
                    if let Err(e) = self.reap(&mut cmd, &dead).await {
                        // The claim lapses and another node (or this one) finishes the work.
                        tracing::warn!(node = %dead, error = %e, "cluster: reaping stopped");
                        self.failed(&Unavailable::Redis(e));
                        return;
                    }
                }
            }
            Err(e) => self.failed(&Unavailable::Redis(e)),
        }
    }

    async fn reap(&self, cmd: &mut ConnectionManager, dead: &str) -> Result<(), redis::RedisError> {
        tracing::warn!(node = %dead, "cluster: node stopped heartbeating; removing its members and counts");
        let apps_key = self.key(&format!("n:{dead}:apps"));
        let apps: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&apps_key)
            .query_async(cmd)
            .await?;
        let hooks = self.0.hooks.get().cloned();
        for app in apps {
            let counts = hooks.as_ref().is_some_and(|h| h.wants_counts(&app));
            loop {
                let out: Vec<String> = self
                    .0
                    .scripts
                    .reap_chunk
                    .arg(&self.0.prefix)
                    .arg(dead)
                    .arg(&app)
                    .arg(REAP_CHUNK)
                    .arg(self.node_id())
                    .arg(CLAIM_MS)
                    .arg(if counts { "1" } else { "0" })
                    .arg(self.delay_ms())
                    .invoke_async(cmd)
                    .await?;
                let Some((done, rest)) = out.split_first() else {
                    break;
                };
                if done == "-1" {
                    return Ok(()); // lost the claim: someone else finishes
                }
                let mut parts = rest.splitn(2, |s| s == "\n");
                let vacated = parts.next().unwrap_or_default().to_vec();
                let removed = parts
                    .next()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|f| {
                        f.split_once('\n')
                            .map(|(c, u)| (c.to_owned(), u.to_owned()))
                    })
                    .collect::<Vec<_>>();
                if let Some(hooks) = &hooks {
                    if !vacated.is_empty() || !removed.is_empty() {
                        hooks.reaped(&app, vacated, removed);
                    }
                }
                if done == "1" {
                    break;
                }
            }
        }
        let _: i64 = self
            .0
            .scripts
            .reap_done
            .arg(&self.0.prefix)
            .arg(dead)
            .arg(self.node_id())
            .invoke_async(cmd)
            .await?;
        self.0.metrics.reaped.inc();
        tracing::info!(node = %dead, "cluster: dead node reaped");
        Ok(())
    }

    /// Every node the cluster knows, alive or being reaped.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, Unavailable> {
        let mut cmd = self.cmd()?;
        let (alive, dead): (Vec<String>, Vec<String>) = redis::pipe()
            .cmd("ZRANGE")
            .arg(self.key("nodes"))
            .arg(0)
            .arg(-1)
            .cmd("ZRANGE")
            .arg(self.key("dead"))
            .arg(0)
            .arg(-1)
            .query_async(&mut cmd)
            .await
            .inspect_err(|e| self.failed(&Unavailable::Redis(e.clone())))?;
        let mut pipe = redis::pipe();
        let all: Vec<(&String, &str)> = alive
            .iter()
            .map(|n| (n, "alive"))
            .chain(dead.iter().map(|n| (n, "dead")))
            .collect();
        for (node, _) in &all {
            pipe.hgetall(self.key(&format!("node:{node}")));
        }
        let infos: Vec<std::collections::HashMap<String, String>> =
            pipe.query_async(&mut cmd).await?;
        Ok(all
            .into_iter()
            .zip(infos)
            .map(|((id, state), h)| {
                let num = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
                NodeInfo {
                    id: id.clone(),
                    address: h.get("addr").cloned().unwrap_or_default(),
                    version: h.get("version").cloned().unwrap_or_default(),
                    connections: num("conns"),
                    last_heartbeat_ms: num("beat"),
                    started_ms: num("started"),
                    state: state.to_owned(),
                }
            })
            .collect())
    }

    /// The cluster's statistics gauges of the minute that ended last and of the current one,
    /// for the whole cluster (`*`) and each of `apps`, while this node holds the lease to
    /// write them (`None` while another node does). See [`scripts`].
    pub async fn stats_gauges(
        &self,
        apps: &[String],
        lease: Duration,
    ) -> Result<Option<Vec<MinuteGauges>>, Unavailable> {
        let mut cmd = self.cmd()?;
        let answer: Vec<i64> = self.redis(
            self.0
                .scripts
                .gauges
                .arg(&self.0.prefix)
                .arg(self.node_id())
                .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX))
                .arg(apps)
                .invoke_async(&mut cmd)
                .await,
        )?;
        Ok(parse_gauges(&answer, apps))
    }

    /// Shares this node's live statistics (JSON, kept `keep`) and reads the other live nodes'
    /// and the cluster's occupied channels, of the whole cluster and of `apps`.
    pub async fn share_live(
        &self,
        mine: &str,
        keep: Duration,
        apps: &[String],
    ) -> Result<SharedLive, Unavailable> {
        let mut cmd = self.cmd()?;
        let (channels, others): (i64, Vec<String>) = self.redis(
            self.0
                .scripts
                .live
                .arg(&self.0.prefix)
                .arg(self.node_id())
                .arg(mine)
                .arg(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX))
                .invoke_async(&mut cmd)
                .await,
        )?;
        let mut pipe = redis::pipe();
        for app in apps {
            pipe.hlen(self.key(&format!("a:{app}:chans")));
        }
        let app_channels: Vec<i64> = if apps.is_empty() {
            Vec::new()
        } else {
            self.redis(pipe.query_async(&mut cmd).await)?
        };
        Ok(SharedLive {
            others,
            channels,
            app_channels: apps.iter().cloned().zip(app_channels).collect(),
        })
    }

    /// Adds `(app, error JSON)`s to their apps' shared recent-error lists (newest first, each
    /// trimmed to `keep`, forgotten a week after the last).
    pub async fn share_errors(
        &self,
        errors: &[(String, String)],
        keep: usize,
    ) -> Result<(), Unavailable> {
        if errors.is_empty() {
            return Ok(());
        }
        let mut cmd = self.cmd()?;
        let mut pipe = redis::pipe();
        let mut apps = HashSet::new();
        for (app, error) in errors {
            let key = self.key(&format!("a:{app}:errors"));
            pipe.lpush(&key, error).ignore();
            apps.insert(app);
        }
        // Trimmed after all the pushes: one app's batch may be longer than `keep`.
        for app in apps {
            let key = self.key(&format!("a:{app}:errors"));
            pipe.ltrim(&key, 0, isize::try_from(keep).unwrap_or(isize::MAX) - 1)
                .ignore();
            pipe.pexpire(&key, ERRORS_KEPT_MS).ignore();
        }
        self.redis(pipe.query_async::<()>(&mut cmd).await)
    }

    /// An app's shared recent errors (JSON), newest first, at most `keep`.
    pub async fn shared_errors(&self, app: &str, keep: usize) -> Result<Vec<String>, Unavailable> {
        let mut cmd = self.cmd()?;
        self.redis(
            redis::cmd("LRANGE")
                .arg(self.key(&format!("a:{app}:errors")))
                .arg(0)
                .arg(isize::try_from(keep).unwrap_or(isize::MAX) - 1)
                .query_async(&mut cmd)
                .await,
        )
    }

    /// This node's own entry, from memory (for a degraded node's panel).
    pub fn this_node(&self) -> NodeInfo {
        NodeInfo {
            id: self.node_id().to_owned(),
            address: self.0.config.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            connections: self.0.hooks.get().map_or(0, |h| h.connections() as u64),
            last_heartbeat_ms: self.0.last_beat_ms.load(Ordering::Relaxed),
            started_ms: self.0.started_ms,
            state: "alive".to_owned(),
        }
    }

    /// A clean stop: this node's lease and record go at once (its sockets are closed by then,
    /// so its contributions are zero), so nobody waits for the lease to run out.
    pub async fn leave(&self) {
        if let Ok(mut cmd) = self.cmd() {
            let _: Result<i64, _> = self
                .0
                .scripts
                .leave
                .arg(&self.0.prefix)
                .arg(self.node_id())
                .invoke_async(&mut cmd)
                .await;
        }
        self.0.stopped.store(true, Ordering::Release);
        self.0.healthy.store(false, Ordering::Release);
        self.0.cmd.store(None);
        *self.0.bus.lock().await = None;
    }
}

fn into_redis(e: Unavailable) -> redis::RedisError {
    match e {
        Unavailable::Redis(e) => e,
        other => redis::RedisError::from((redis::ErrorKind::Io, "cluster", other.to_string())),
    }
}

/// What a presence change did cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// Nothing changed for the others.
    None,
    /// The user's first connection anywhere.
    Added,
    /// The user's last connection anywhere left.
    Removed,
    /// The channel is full of other users (nothing was written).
    Full,
}

/// A presence change and, when asked, the cluster roster (user ids in join order, with info).
#[derive(Debug, Clone)]
pub struct PresenceReply {
    pub change: PresenceChange,
    pub roster: Option<Vec<(String, serde_json::Value)>>,
    /// On `Added` within the vacate delay of the user's leave: the node holding that leave's
    /// delayed `member_removed` (to cancel it instead of sending `member_added`).
    pub reclaimed_from: Option<String>,
}

/// A cluster count change: the total before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountChange {
    pub before: u64,
    pub after: u64,
    /// On 0 → n within the vacate delay: the node holding the delayed `channel_vacated`.
    pub reclaimed_from: Option<String>,
}

fn held(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::BulkString(b)) if !b.is_empty() => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        Some(Value::SimpleString(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Counts of one channel, cluster-wide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    pub subscriptions: usize,
    pub users: usize,
}

/// One app's view of the cluster: what its supervisor, channels, sessions and REST handlers
/// call. Every call fails fast with [`Unavailable`] while degraded; callers then decide with
/// local knowledge only.
#[derive(Clone)]
pub struct AppLink {
    cluster: Cluster,
    app: Arc<str>,
}

impl AppLink {
    pub fn node_id(&self) -> &str {
        self.cluster.node_id()
    }

    pub fn is_healthy(&self) -> bool {
        self.cluster.is_healthy()
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn key(&self, rest: &str) -> String {
        self.cluster.key(&format!("a:{}:{rest}", self.app))
    }

    fn publish(&self, message: Message) {
        let envelope = Envelope::new(self.node_id(), message);
        self.cluster
            .send(self.cluster.app_channel(&self.app), &envelope);
    }

    /// An API event for the other nodes' sockets.
    pub fn publish_event(&self, channel: &str, event: &str, data: &str, except: Option<&str>) {
        self.publish(Message::Event {
            channel: channel.to_owned(),
            except: except.map(str::to_owned),
            event: event.to_owned(),
            data: data.to_owned(),
        });
    }

    /// Tells `target` that a channel (or member) it holds a delayed vacate (removal) webhook for
    /// came back: it cancels the webhook.
    pub fn publish_reclaimed(&self, target: &str, channel: &str, user_id: Option<&str>) {
        self.publish(Message::Reclaimed {
            target: target.to_owned(),
            channel: channel.to_owned(),
            user_id: user_id.map(str::to_owned),
        });
    }

    /// A client event for the other nodes' subscribers (never back to `from`).
    pub fn publish_client_event(&self, channel: &str, from: &str, frame: &[u8]) {
        self.publish(Message::ClientEvent {
            channel: channel.to_owned(),
            from: from.to_owned(),
            frame: Bytes::copy_from_slice(frame),
        });
    }

    /// `terminate_connections` on every other node.
    pub fn publish_terminate(&self, user_id: &str) {
        self.publish(Message::Terminate {
            user_id: user_id.to_owned(),
        });
    }

    fn run<T>(&self, result: Result<T, redis::RedisError>) -> Result<T, Unavailable> {
        self.cluster.redis(result)
    }

    fn fenced(&self) -> Unavailable {
        let e = Unavailable::Fenced;
        self.cluster.failed(&e);
        e
    }

    /// Sets this node's subscriber count of a channel; the reply is the cluster total before
    /// and after. Publishes the new total to the other nodes when `publish_count`.
    pub async fn count_set(
        &self,
        channel: &str,
        local: usize,
        publish_count: bool,
    ) -> Result<CountChange, Unavailable> {
        let mut cmd = self.cluster.cmd()?;
        let reply: Vec<Value> = self.run(
            self.cluster
                .0
                .scripts
                .count_set
                .arg(&self.cluster.0.prefix)
                .arg(self.node_id())
                .arg(&*self.app)
                .arg(channel)
                .arg(local)
                .arg(if publish_count { "1" } else { "0" })
                .arg(self.cluster.delay_ms())
                .invoke_async(&mut cmd)
                .await,
        )?;
        match reply.as_slice() {
            [Value::Int(before), Value::Int(after), rest @ ..] => Ok(CountChange {
                before: u64::try_from(*before).unwrap_or(0),
                after: u64::try_from(*after).unwrap_or(0),
                reclaimed_from: held(rest.first()),
            }),
            _ => Err(self.fenced()),
        }
    }

    /// Sets how many of this node's sockets are `user_id` in a presence channel (0 = none).
    pub async fn presence_set(
        &self,
        channel: &str,
        user_id: &str,
        sockets: usize,
        info: &serde_json::Value,
        max_members: u32,
        want_roster: bool,
    ) -> Result<PresenceReply, Unavailable> {
        let mut cmd = self.cluster.cmd()?;
        let reply: Vec<Value> = self.run(
            self.cluster
                .0
                .scripts
                .presence_set
                .arg(&self.cluster.0.prefix)
                .arg(self.node_id())
                .arg(&*self.app)
                .arg(channel)
                .arg(user_id)
                .arg(sockets)
                .arg(info.to_string())
                .arg(max_members)
                .arg(if want_roster { "1" } else { "0" })
                .arg(self.cluster.delay_ms())
                .invoke_async(&mut cmd)
                .await,
        )?;
        let transition = match reply.first() {
            Some(Value::Int(t)) => *t,
            _ => return Err(self.fenced()),
        };
        let change = match transition {
            1 => PresenceChange::Added,
            2 => PresenceChange::Removed,
            -2 => PresenceChange::Full,
            -1 => return Err(self.fenced()),
            _ => PresenceChange::None,
        };
        let reclaimed_from = held(reply.get(1));
        let roster = match (reply.get(2), reply.get(3)) {
            (Some(ids), Some(infos)) => {
                let ids: Vec<String> =
                    self.run(redis::from_redis_value(ids.clone()).map_err(Into::into))?;
                let flat: Vec<String> =
                    self.run(redis::from_redis_value(infos.clone()).map_err(Into::into))?;
                // Inside a script HGETALL is a flat list of field, value.
                let infos: std::collections::HashMap<String, String> = flat
                    .chunks_exact(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect();
                Some(roster_of(ids, &infos))
            }
            _ => None,
        };
        Ok(PresenceReply {
            change,
            roster,
            reclaimed_from,
        })
    }

    /// What Redis holds as this node's contribution to the app: the channels it counts
    /// subscribers in, and the (channel, user) pairs it holds presence members for. A resync
    /// zeroes whatever of it is no longer true here.
    pub async fn own_state(&self) -> Result<(Vec<String>, Vec<(String, String)>), Unavailable> {
        let mut cmd = self.cluster.cmd()?;
        let base = self
            .cluster
            .key(&format!("n:{}:a:{}", self.node_id(), self.app));
        let (subs, pres): (Vec<String>, Vec<String>) = self.run(
            redis::pipe()
                .hkeys(format!("{base}:subs"))
                .hkeys(format!("{base}:pres"))
                .query_async(&mut cmd)
                .await,
        )?;
        let pres = pres
            .into_iter()
            .filter_map(|f| {
                f.split_once('\n')
                    .map(|(c, u)| (c.to_owned(), u.to_owned()))
            })
            .collect();
        Ok((subs, pres))
    }

    /// The cluster roster of a presence channel: user ids in join order, with their info.
    pub async fn roster(
        &self,
        channel: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, Unavailable> {
        let mut cmd = self.cluster.cmd()?;
        let base = self.key(&format!("p:{channel}"));
        // RESP3 answers HGETALL with a map.
        let (ids, infos): (Vec<String>, std::collections::HashMap<String, String>) = self.run(
            redis::pipe()
                .cmd("ZRANGE")
                .arg(format!("{base}:o"))
                .arg(0)
                .arg(-1)
                .cmd("HGETALL")
                .arg(format!("{base}:i"))
                .query_async(&mut cmd)
                .await,
        )?;
        Ok(roster_of(ids, &infos))
    }

    /// Admits one more connection of this app while the cluster total stays within `limit`
    /// (one script), or records one that closed (`delta = -1`).
    pub async fn connections(&self, delta: i64, limit: u32) -> Result<bool, Unavailable> {
        let mut cmd = self.cluster.cmd()?;
        let admitted: i64 = self.run(
            self.cluster
                .0
                .scripts
                .conns
                .arg(&self.cluster.0.prefix)
                .arg(self.node_id())
                .arg(&*self.app)
                .arg(delta)
                .arg(limit)
                .invoke_async(&mut cmd)
                .await,
        )?;
        match admitted {
            -1 => Err(self.fenced()),
            n => Ok(n == 1),
        }
    }

    /// Sets this node's connection count of the app (after a resync).
    pub async fn connections_set(&self, count: usize) -> Result<(), Unavailable> {
        let mut cmd = self.cluster.cmd()?;
        let answer: i64 = self.run(
            self.cluster
                .0
                .scripts
                .conns_set
                .arg(&self.cluster.0.prefix)
                .arg(self.node_id())
                .arg(&*self.app)
                .arg(count)
                .invoke_async(&mut cmd)
                .await,
        )?;
        if answer == -1 {
            return Err(self.fenced());
        }
        Ok(())
    }

    /// The app's open connections cluster-wide.
    pub async fn connection_total(&self) -> Result<usize, Unavailable> {
        let mut cmd = self.cluster.cmd()?;
        let values: Vec<usize> = self.run(
            redis::cmd("HVALS")
                .arg(self.key("conns"))
                .query_async(&mut cmd)
                .await,
        )?;
        Ok(values.iter().sum())
    }

    /// Cluster counts of the named channels (one round trip).
    pub async fn counts(&self, channels: &[String]) -> Result<Vec<ClusterCounts>, Unavailable> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = self.cluster.cmd()?;
        let (subs, users): (Vec<Option<usize>>, Vec<Option<usize>>) = self.run(
            redis::pipe()
                .cmd("HMGET")
                .arg(self.key("chans"))
                .arg(channels)
                .cmd("HMGET")
                .arg(self.key("users"))
                .arg(channels)
                .query_async(&mut cmd)
                .await,
        )?;
        Ok(subs
            .into_iter()
            .zip(users)
            .map(|(s, u)| ClusterCounts {
                subscriptions: s.unwrap_or(0),
                users: u.unwrap_or(0),
            })
            .collect())
    }

    /// Every occupied channel of the app with its cluster counts, sorted by name.
    pub async fn occupied(
        &self,
        prefix: Option<&str>,
    ) -> Result<Vec<(String, ClusterCounts)>, Unavailable> {
        let mut cmd = self.cluster.cmd()?;
        let (subs, users): (
            std::collections::HashMap<String, usize>,
            std::collections::HashMap<String, usize>,
        ) = self.run(
            redis::pipe()
                .hgetall(self.key("chans"))
                .hgetall(self.key("users"))
                .query_async(&mut cmd)
                .await,
        )?;
        let mut list: Vec<(String, ClusterCounts)> = subs
            .into_iter()
            .filter(|(name, n)| *n > 0 && prefix.is_none_or(|p| name.starts_with(p)))
            .map(|(name, subscriptions)| {
                let users = users.get(&name).copied().unwrap_or(0);
                (
                    name,
                    ClusterCounts {
                        subscriptions,
                        users,
                    },
                )
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(list)
    }

    /// Stores a cache channel's last event for every node (for `ttl`).
    pub fn cache_store(&self, channel: &str, event: &str, data: &str, ttl: Duration) {
        let Ok(mut cmd) = self.cluster.cmd() else {
            return;
        };
        let key = self.key(&format!("cache:{channel}"));
        let value = encode_cached(event, data);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let link = self.clone();
        actix_web::rt::spawn(async move {
            let result: Result<(), _> = redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query_async(&mut cmd)
                .await;
            let _ = link.run(result);
        });
    }

    /// A cache channel's last event (event name, data) and its remaining time to live.
    pub async fn cache_get(
        &self,
        channel: &str,
    ) -> Result<Option<(String, String, Duration)>, Unavailable> {
        let mut cmd = self.cluster.cmd()?;
        let key = self.key(&format!("cache:{channel}"));
        let (value, ttl): (Option<String>, i64) = self.run(
            redis::pipe()
                .get(&key)
                .cmd("PTTL")
                .arg(&key)
                .query_async(&mut cmd)
                .await,
        )?;
        Ok(value.and_then(|v| {
            let (event, data) = decode_cached(&v)?;
            let ttl = Duration::from_millis(u64::try_from(ttl).unwrap_or(0));
            Some((event, data, ttl))
        }))
    }
}

/// A roster: user ids in join order, each with its `user_info` (null if unreadable).
fn roster_of(
    ids: Vec<String>,
    infos: &std::collections::HashMap<String, String>,
) -> Vec<(String, serde_json::Value)> {
    ids.into_iter()
        .map(|id| {
            let info = infos
                .get(&id)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(serde_json::Value::Null);
            (id, info)
        })
        .collect()
}

/// A cached event as stored in Redis: the event name's length, a colon, the name, the data.
fn encode_cached(event: &str, data: &str) -> String {
    format!("{}:{event}{data}", event.len())
}

fn decode_cached(value: &str) -> Option<(String, String)> {
    let (len, rest) = value.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let event = rest.get(..len)?;
    Some((event.to_owned(), rest[len..].to_owned()))
}

/// What [`Cluster::share_live`] read.
#[derive(Debug, Clone, Default)]
pub struct SharedLive {
    /// The other live nodes' numbers, as they shared them.
    pub others: Vec<String>,
    /// Channels occupied anywhere in the cluster.
    pub channels: i64,
    /// The same for each app asked about.
    pub app_channels: Vec<(String, i64)>,
}

/// The cluster's gauges of one minute (Redis's clock), exact: read at every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteGauges {
    /// Unix seconds of the minute's start.
    pub minute: i64,
    /// `*` (the whole cluster) first, then the apps asked for, in that order.
    pub apps: Vec<(String, Gauges)>,
}

/// Highest and lowest connections, and most occupied channels, at any moment of a minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub connections_peak: i64,
    pub connections_min: i64,
    pub channels_peak: i64,
}

/// Reads the `gauges` script's answer: `{ended, current, then per minute, for `*` and each app:
/// connections high, connections low, channels high}`; `None` for `{}` (another node's lease)
/// or an answer of the wrong length.
fn parse_gauges(answer: &[i64], apps: &[String]) -> Option<Vec<MinuteGauges>> {
    let (minutes, values) = answer.split_at_checked(2)?;
    let names: Vec<&str> = std::iter::once(shared::stats::SERVER)
        .chain(apps.iter().map(String::as_str))
        .collect();
    if values.len() != minutes.len() * names.len() * 3 {
        return None;
    }
    Some(
        minutes
            .iter()
            .zip(values.chunks(names.len() * 3))
            .map(|(&minute, values)| MinuteGauges {
                minute,
                apps: names
                    .iter()
                    .zip(values.chunks(3))
                    .map(|(name, v)| {
                        let gauges = Gauges {
                            connections_peak: v[0],
                            connections_min: v[1],
                            channels_peak: v[2],
                        };
                        ((*name).to_owned(), gauges)
                    })
                    .collect(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_event_keeps_names_and_data_apart() {
        let stored = encode_cached("odd:name", "{\"a\":1}");
        assert_eq!(
            decode_cached(&stored),
            Some(("odd:name".into(), "{\"a\":1}".into()))
        );
        assert_eq!(decode_cached("x"), None);
        assert_eq!(decode_cached("9:short"), None);
    }

    #[test]
    fn gauges_are_read_per_minute_with_the_cluster_first() {
        let apps = vec!["a1".to_owned()];
        let answer = [60, 120, 9, 2, 4, 5, 2, 3, 8, 8, 1, 3, 3, 1];
        let minutes = parse_gauges(&answer, &apps).unwrap();
        assert_eq!(minutes.len(), 2);
        assert_eq!(minutes[0].minute, 60);
        assert_eq!(
            minutes[0].apps,
            vec![
                ("*".to_owned(), gauge(9, 2, 4)),
                ("a1".to_owned(), gauge(5, 2, 3))
            ]
        );
        assert_eq!(minutes[1].minute, 120);
        assert_eq!(minutes[1].apps[1], ("a1".to_owned(), gauge(3, 3, 1)));
        // Another node's lease, or an answer that does not fit the apps asked for.
        assert_eq!(parse_gauges(&[], &apps), None);
        assert_eq!(parse_gauges(&answer[..13], &apps), None);
    }

    fn gauge(connections_peak: i64, connections_min: i64, channels_peak: i64) -> Gauges {
        Gauges {
            connections_peak,
            connections_min,
            channels_peak,
        }
    }

    #[test]
    fn generated_node_ids_are_short_and_distinct() {
        let a = generate_node_id();
        assert_eq!(a.len(), 12);
        assert_ne!(a, generate_node_id());
    }
}
