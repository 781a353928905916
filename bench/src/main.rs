//! `reverb-pusher-bench`: a load generator that speaks the Pusher protocol to any compatible
//! server (WebSocket `/app/{key}` and the signed REST API), bounded in count and time.
//!
//! Scenarios: `connections` (hold N subscribed connections, measure server RSS per
//! connection), `fanout` (delivery latency from REST trigger to subscribers), `http` (REST
//! trigger throughput and latency), `churn` (connect/subscribe/unsubscribe/disconnect cycles,
//! RSS drift). Each prints a human summary and one JSON line. Give `--server-pid` to have the
//! server's RSS and CPU time read from `/proc` before and after. `webhooks` (webhook events per
//! second through a receiver built into the tool) lives in [`webhooks`]; the floors (`floor`,
//! `http-floor`, `ws-floor`: the same work without a Pusher server) in [`floor`].

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use reverb_pusher_bench::{
    bench_send_time, cpu_micros, now_nanos, rss_bytes, signed_query, Latencies, Percentiles,
};
use serde_json::{json, Value};

mod floor;
mod webhooks;

type Socket = actix_codec::Framed<BoxedSocket, Codec>;

#[derive(Parser)]
#[command(
    version,
    about = "Load generator for Pusher-protocol servers (bounded in count and time)"
)]
struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone)]
struct Target {
    /// The server's base URL (HTTP; WebSockets use the same host and port).
    #[arg(long, global = true, default_value = "http://127.0.0.1:6001")]
    url: String,
    #[arg(long, global = true, env = "PUSHER_APP_ID", default_value = "")]
    app_id: String,
    #[arg(long, global = true, env = "PUSHER_APP_KEY", default_value = "")]
    key: String,
    #[arg(
        long,
        global = true,
        env = "PUSHER_APP_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    secret: String,
    /// The server's process id: its RSS and CPU time are read from /proc before and after.
    /// Several (repeated, or separated by commas) for a cluster: their figures are summed.
    #[arg(long, global = true, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// `fanout`: spread the subscribers round-robin over these nodes' base URLs (a cluster);
    /// the publishers still use `--url`. Default: `--url` alone.
    #[arg(long, global = true, value_delimiter = ',')]
    subscriber_url: Vec<String>,
    /// Local source addresses 127.0.0.1..=127.0.0.N for the client sockets, so that more
    /// connections than one address's ephemeral ports can be opened.
    #[arg(long, global = true, default_value_t = 8)]
    source_addresses: u8,
}

#[derive(Subcommand)]
enum Scenario {
    /// Open N connections at a bounded rate, each subscribed to K channels, and hold them.
    Connections(ConnectionsArgs),
    /// N subscribers on C channels; P publishers trigger through the REST API.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        subscribers: u32,
        #[arg(long, default_value_t = 1)]
        channels: u32,
        #[arg(long, default_value_t = 1)]
        publishers: u32,
        /// Messages per second across all publishers; 0 = as fast as responses come back.
        #[arg(long, default_value_t = 5)]
        rate: u32,
        /// Seconds of publishing.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Size of each event's data in bytes.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        #[arg(long, default_value_t = 2000)]
        connect_rate: u32,
    },
    /// Signed REST triggers to a channel without subscribers, at a concurrency.
    Http {
        #[arg(long, default_value_t = 32)]
        concurrency: u32,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Every other request is `GET /channels` instead of a trigger.
        #[arg(long)]
        mix_get_channels: bool,
    },
    /// The kernel's cost of one delivery, without any server: this process opens N loopback
    /// TCP connections to itself and W writer threads write the same WebSocket frame a Pusher
    /// server would send to each of them, one blocking `write` per connection per round, while
    /// the same receivers as `fanout` read them. Reports the writers' CPU time per write and
    /// the delivery latency: what a server that makes one blocking write per delivery pays on
    /// this machine (one writing from an event loop can pay a little less).
    Floor {
        #[arg(long, default_value_t = 1000)]
        connections: u32,
        /// Writer threads (like a server's worker threads); each owns every W-th connection.
        #[arg(long, default_value_t = 2)]
        writers: u32,
        /// Rounds (one frame to every connection) per second; 0 = as fast as sockets take them.
        #[arg(long, default_value_t = 5)]
        rate: u32,
        /// Seconds of writing.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Size of each event's data in bytes.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        #[arg(long, default_value_t = 2000)]
        connect_rate: u32,
    },
    /// The cost of a REST request without any Pusher work: the tool starts a second copy of
    /// itself as a bare actix-web server (two workers; `POST /apps/{id}/events` reads the body
    /// and answers `{}`) on a free loopback port and runs the `http` scenario against it.
    HttpFloor {
        #[arg(long, default_value_t = 32)]
        concurrency: u32,
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// The bare server that `http-floor` starts.
    #[command(hide = true)]
    FloorServer {
        #[arg(long)]
        port: u16,
    },
    /// `connections` or `churn`, unchanged, against a bare WebSocket server that the tool
    /// starts as a second copy of itself: it answers the upgrade with
    /// `pusher:connection_established`, each subscribe with `subscription_succeeded`, pings idle
    /// connections and closes when the client does, and does nothing else (no channels, no
    /// apps). What the kernel and a minimal event loop cost per connection or cycle.
    WsFloor {
        /// Seconds of silence before the bare server pings a connection (the servers' activity
        /// timeout).
        #[arg(long, default_value_t = 15)]
        activity_timeout: u64,
        #[command(subcommand)]
        scenario: FloorScenario,
    },
    /// The bare server that `ws-floor` starts.
    #[command(hide = true)]
    WsFloorServer {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 15)]
        activity_timeout: u64,
    },
    /// One app floods the server (REST triggers as fast as they are answered, connections
    /// opened and dropped as fast as they are accepted or refused) while the target app's
    /// fan-out latency is measured; the same fan-out is measured quiet first. Give the flooding
    /// app with `--abuser-*`; its rate limits decide how much of the flood the server refuses.
    Abuse {
        #[arg(long, env = "ABUSER_APP_ID")]
        abuser_app_id: String,
        #[arg(long, env = "ABUSER_APP_KEY")]
        abuser_key: String,
        #[arg(long, env = "ABUSER_APP_SECRET", hide_env_values = true)]
        abuser_secret: String,
        /// The target app's subscribers (one channel).
        #[arg(long, default_value_t = 200)]
        subscribers: u32,
        /// The target app's events per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Seconds of each run (quiet, then flooded).
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Concurrent REST requests of the flood.
        #[arg(long, default_value_t = 16)]
        concurrency: u32,
        /// Concurrent connection loops of the flood.
        #[arg(long, default_value_t = 8)]
        connectors: u32,
    },
    /// Webhook events per second and server CPU per webhook event, through a receiver built
    /// into the tool (needs an admin API token).
    Webhooks(webhooks::Options),
    /// Connect, subscribe, unsubscribe and disconnect at a rate; RSS drift per cycle.
    Churn(ChurnArgs),
}

#[derive(Args, Clone, Copy)]
struct ConnectionsArgs {
    #[arg(long, default_value_t = 1000)]
    connections: u32,
    /// Connections opened per second.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Channels each connection subscribes to.
    #[arg(long, default_value_t = 1)]
    channels: u32,
    /// Distinct channel names the subscriptions spread over.
    #[arg(long, default_value_t = 100)]
    channel_pool: u32,
    /// Seconds to hold the connections open (pings answered).
    #[arg(long, default_value_t = 10)]
    hold: u64,
}

#[derive(Args, Clone, Copy)]
struct ChurnArgs {
    /// Cycles started per second.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    #[arg(long, default_value_t = 30)]
    duration: u64,
}

/// The scenarios `ws-floor` runs against its bare server.
#[derive(Subcommand)]
enum FloorScenario {
    /// `connections` against the bare server.
    Connections(ConnectionsArgs),
    /// `churn` against the bare server.
    Churn(ChurnArgs),
}

/// Longest wait for any one step (connect, subscribe, response).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long deliveries may still arrive after the last publish.
const DRAIN: Duration = Duration::from_secs(5);

/// The server's processes (one, or a cluster's nodes), read from /proc.
struct Server {
    pids: Vec<u32>,
}

#[derive(Clone, Copy, Default)]
struct Usage {
    rss: Option<u64>,
    cpu_us: Option<u64>,
}

impl Server {
    /// RSS and CPU time summed over the processes (`None` unless every one could be read).
    fn usage(&self) -> Usage {
        let sum = |read: fn(u32) -> Option<u64>| -> Option<u64> {
            if self.pids.is_empty() {
                return None;
            }
            self.pids.iter().map(|&pid| read(pid)).sum()
        };
        Usage {
            rss: sum(rss_bytes),
            cpu_us: sum(cpu_micros),
        }
    }
}

fn delta(after: Option<u64>, before: Option<u64>) -> Option<i64> {
    Some(i64::try_from(after?).ok()? - i64::try_from(before?).ok()?)
}

/// HTTP clients bound to the local source addresses, used round-robin.
struct Pool {
    clients: Vec<awc::Client>,
    next: Cell<usize>,
}

impl Pool {
    fn new(sources: u8) -> Self {
        let clients = (1..=sources.max(1))
            .map(|last| {
                let connector = awc::Connector::new()
                    .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                    .timeout(STEP_TIMEOUT)
                    .limit(0);
                awc::Client::builder()
                    .connector(connector)
                    .timeout(STEP_TIMEOUT)
                    .finish()
            })
            .collect();
        Self {
            clients,
            next: Cell::new(0),
        }
    }

    fn client(&self) -> &awc::Client {
        let i = self.next.get();
        self.next.set((i + 1) % self.clients.len());
        &self.clients[i]
    }
}

fn ws_url(target: &Target) -> String {
    ws_url_of(&target.url, target)
}

/// The WebSocket URL of the app on the node at `base_url`.
fn ws_url_of(base_url: &str, target: &Target) -> String {
    let base = base_url
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    format!(
        "{base}/app/{}?protocol=7&client=reverb-pusher-bench&version=1",
        target.key
    )
}

async fn next_json(socket: &mut Socket) -> Result<Value, String> {
    loop {
        match tokio::time::timeout(STEP_TIMEOUT, socket.next()).await {
            Err(_) => return Err("timed out".into()),
            Ok(None) => return Err("closed".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(Frame::Text(bytes)))) => {
                return serde_json::from_slice(&bytes).map_err(|e| e.to_string())
            }
            Ok(Some(Ok(Frame::Close(reason)))) => {
                return Err(format!("closed: {reason:?}"));
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn send(socket: &mut Socket, frame: &Value) -> Result<(), String> {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .map_err(|e| e.to_string())
}

/// Opens a connection and waits for `pusher:connection_established`.
async fn connect(client: &awc::Client, url: &str) -> Result<Socket, String> {
    let (_, mut socket) = tokio::time::timeout(
        STEP_TIMEOUT,
        client.ws(url).max_frame_size(1 << 20).connect(),
    )
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    loop {
        let frame = next_json(&mut socket).await?;
        match frame["event"].as_str() {
            Some("pusher:connection_established") => return Ok(socket),
            Some("pusher:error") => return Err(frame["data"].to_string()),
            _ => {}
        }
    }
}

async fn subscribe(socket: &mut Socket, channel: &str) -> Result<(), String> {
    send(
        socket,
        &json!({"event": "pusher:subscribe", "data": {"channel": channel}}),
    )
    .await?;
    loop {
        let frame = next_json(socket).await?;
        match frame["event"].as_str() {
            Some("pusher_internal:subscription_succeeded") if frame["channel"] == channel => {
                return Ok(())
            }
            Some("pusher:subscription_error" | "pusher:error") => {
                return Err(frame["data"].to_string())
            }
            _ => {}
        }
    }
}

/// What held connections report back.
#[derive(Default)]
struct Held {
    dropped: Cell<u64>,
    pings: Cell<u64>,
    delivered: Cell<u64>,
    latencies: RefCell<Latencies>,
}

/// Reads a held connection until it closes or `until`: answers pings, records the latency of
/// `bench` events from the send time in their data.
///
/// This loop runs once per delivery and shares the cores with the server under test, so it
/// stays cheap: one deadline timer for the connection's life, and `bench` events read without
/// a JSON parse (anything else, or a `bench` event in an unexpected form, is parsed in full).
async fn hold(mut socket: Socket, held: Rc<Held>, until: Instant) {
    let deadline = tokio::time::sleep_until(until.into());
    tokio::pin!(deadline);
    loop {
        let frame = tokio::select! {
            biased;
            frame = socket.next() => frame,
            () = &mut deadline => {
                let _ = socket.close().await;
                return;
            }
        };
        let frame = match frame {
            Some(Ok(Frame::Text(bytes))) => bytes,
            Some(Ok(Frame::Ping(payload))) => {
                let _ = socket.send(Message::Pong(payload)).await;
                continue;
            }
            Some(Ok(Frame::Close(_)) | Err(_)) | None => {
                held.dropped.set(held.dropped.get() + 1);
                return;
            }
            Some(Ok(_)) => continue,
        };
        let received = now_nanos();
        let sent = if let Some(sent) = bench_send_time(&frame) {
            Some(sent)
        } else {
            let Ok(frame) = serde_json::from_slice::<Value>(&frame) else {
                continue;
            };
            match frame["event"].as_str() {
                Some("pusher:ping") => {
                    held.pings.set(held.pings.get() + 1);
                    let _ = send(&mut socket, &json!({"event": "pusher:pong", "data": {}})).await;
                    None
                }
                Some("bench") => frame["data"]
                    .as_str()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    .and_then(|d| d["t"].as_u64()),
                _ => None,
            }
        };
        if let Some(sent) = sent {
            held.delivered.set(held.delivered.get() + 1);
            held.latencies
                .borrow_mut()
                .record(received.saturating_sub(sent));
        }
    }
}

/// Sends one signed REST request; `Ok(status)` or a transport error.
async fn rest(
    client: &awc::Client,
    target: &Target,
    method: &str,
    endpoint: &str,
    params: &[(&str, &str)],
    body: &[u8],
) -> Result<u16, String> {
    let path = format!("/apps/{}/{endpoint}", target.app_id);
    let timestamp = now_nanos() / 1_000_000_000;
    let query = signed_query(
        method,
        &path,
        params,
        body,
        &target.key,
        &target.secret,
        timestamp,
    );
    let url = format!("{}{path}?{query}", target.url);
    let request = if method == "POST" {
        client
            .post(url)
            .insert_header(("content-type", "application/json"))
            .send_body(body.to_vec())
    } else {
        client.get(url).send()
    };
    let mut response = request.await.map_err(|e| e.to_string())?;
    let _ = response.body().await;
    Ok(response.status().as_u16())
}

/// A `bench` event's data: the send time and padding up to `payload` bytes.
fn bench_data(payload: usize) -> String {
    let t = now_nanos();
    let head = format!("{{\"t\":{t},\"pad\":\"");
    let pad = payload.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

fn trigger_body(channel: &str, payload: usize) -> Vec<u8> {
    json!({"name": "bench", "channel": channel, "data": bench_data(payload)})
        .to_string()
        .into_bytes()
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "?".into(),
        |b| format!("{:.1} MiB", b as f64 / 1_048_576.0),
    )
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({"count": p.count, "p50_us": p.p50, "p90_us": p.p90, "p99_us": p.p99, "p999_us": p.p999, "max_us": p.max})
}

fn print_percentiles(what: &str, p: &Percentiles) {
    println!(
        "{what}: n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms",
        p.count,
        p.p50 / 1e3,
        p.p90 / 1e3,
        p.p99 / 1e3,
        p.p999 / 1e3,
        p.max / 1e3
    );
}

/// Opens `n` connections at `rate`/s, each subscribed to the channels `channels(i)` names, and
/// hands each to `hold` until `until`. Returns (opened, failed).
async fn open_many(
    pool: &Rc<Pool>,
    url: &str,
    n: u32,
    rate: u32,
    channels: impl Fn(u32) -> Vec<String> + 'static,
    held: &Rc<Held>,
    until: Rc<Cell<Instant>>,
) -> (u64, u64) {
    let opened = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0u64));
    let channels = Rc::new(channels);
    let gap = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticker = tokio::time::interval(gap);
    for i in 0..n {
        ticker.tick().await;
        let (pool, url, opened, failed, channels, held, until) = (
            pool.clone(),
            url.to_owned(),
            opened.clone(),
            failed.clone(),
            channels.clone(),
            held.clone(),
            until.clone(),
        );
        actix_rt::spawn(async move {
            let result = async {
                let mut socket = connect(pool.client(), &url).await?;
                for channel in channels(i) {
                    subscribe(&mut socket, &channel).await?;
                }
                Ok::<_, String>(socket)
            }
            .await;
            match result {
                Ok(socket) => {
                    opened.set(opened.get() + 1);
                    hold(socket, held, until.get()).await;
                }
                Err(e) => {
                    if failed.get() < 3 {
                        eprintln!("connection {i} failed: {e}");
                    }
                    failed.set(failed.get() + 1);
                }
            }
        });
    }
    let deadline = Instant::now() + STEP_TIMEOUT * 2;
    while opened.get() + failed.get() < u64::from(n) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (opened.get(), failed.get())
}

async fn connections(target: &Target, server: &Server, args: ConnectionsArgs) -> Value {
    let ConnectionsArgs {
        connections: n,
        rate,
        channels: per_conn,
        channel_pool: pool_size,
        hold: hold_secs,
    } = args;
    let pool = Rc::new(Pool::new(target.source_addresses));
    let before = server.usage();
    let held = Rc::new(Held::default());
    let until = Rc::new(Cell::new(Instant::now() + Duration::from_secs(3600)));
    let started = Instant::now();
    let pool_size = pool_size.max(1);
    let (opened, failed) = open_many(
        &pool,
        &ws_url(target),
        n,
        rate,
        move |i| {
            (0..per_conn)
                .map(|j| format!("bench-{}", (i * per_conn + j) % pool_size))
                .collect()
        },
        &held,
        until.clone(),
    )
    .await;
    let open_secs = started.elapsed().as_secs_f64();
    let loaded = server.usage();
    println!(
        "opened {opened} connections ({failed} failed) in {open_secs:.1}s; holding {hold_secs}s"
    );
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let dropped = held.dropped.get();
    let after = server.usage();
    until.set(Instant::now());
    let grown = delta(loaded.rss, before.rss);
    let per_conn_bytes = grown.map(|g| {
        if opened > 0 {
            g as f64 / opened as f64
        } else {
            0.0
        }
    });
    println!(
        "server RSS {} -> {} -> {} (after hold); {} per connection; dropped during hold: {dropped}",
        mib(before.rss),
        mib(loaded.rss),
        mib(after.rss),
        per_conn_bytes.map_or_else(|| "?".into(), |b| format!("{:.1} KiB", b / 1024.0)),
    );
    json!({
        "scenario": "connections", "connections": n, "opened": opened, "failed": failed,
        "dropped": dropped, "pings_answered": held.pings.get(), "channels_per_connection": per_conn,
        "open_secs": open_secs, "hold_secs": hold_secs,
        "rss_before": before.rss, "rss_loaded": loaded.rss, "rss_after_hold": after.rss,
        "rss_per_connection_bytes": per_conn_bytes,
        "server_cpu_us": delta(after.cpu_us, before.cpu_us),
    })
}

#[allow(clippy::too_many_arguments)]
async fn fanout(
    target: &Target,
    server: &Server,
    subscribers: u32,
    channels: u32,
    publishers: u32,
    rate: u32,
    duration: u64,
    payload: usize,
    connect_rate: u32,
) -> Value {
    let pool = Rc::new(Pool::new(target.source_addresses));
    let channels = channels.max(1);
    let held = Rc::new(Held::default());
    let until = Rc::new(Cell::new(Instant::now() + Duration::from_secs(3600)));
    // Subscriber i goes to node i mod K and channel i mod C, whichever node it is on.
    let nodes: Vec<String> = if target.subscriber_url.is_empty() {
        vec![ws_url(target)]
    } else {
        target
            .subscriber_url
            .iter()
            .map(|u| ws_url_of(u, target))
            .collect()
    };
    let k = u32::try_from(nodes.len()).unwrap_or(1);
    let (mut opened, mut failed) = (0, 0);
    for (node, url) in (0..k).zip(&nodes) {
        let share = (0..subscribers).filter(|i| i % k == node).count() as u32;
        let (o, f) = open_many(
            &pool,
            url,
            share,
            connect_rate,
            move |j| vec![format!("fanout-{}", (j * k + node) % channels)],
            &held,
            until.clone(),
        )
        .await;
        opened += o;
        failed += f;
    }
    println!(
        "{opened} subscribers on {channels} channels and {k} node(s) ({failed} failed); publishing for {duration}s"
    );
    // Subscribers per channel, to know how many deliveries each publish should make.
    let per_channel: Vec<u64> = (0..channels)
        .map(|c| u64::from((0..subscribers).filter(|i| i % channels == c).count() as u32))
        .collect();

    let before = server.usage();
    let published = Rc::new(Cell::new(0u64));
    let expected = Rc::new(Cell::new(0u64));
    let errors = Rc::new(Cell::new(0u64));
    let stop = Instant::now() + Duration::from_secs(duration);
    let publishers = publishers.max(1);
    let gap = (rate > 0).then(|| Duration::from_secs_f64(f64::from(publishers) / f64::from(rate)));
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let (pool, target, published, expected, errors, per_channel) = (
            pool.clone(),
            target.clone(),
            published.clone(),
            expected.clone(),
            errors.clone(),
            per_channel.clone(),
        );
        tasks.push(actix_rt::spawn(async move {
            let client = pool.client().clone();
            let mut ticker = gap.map(tokio::time::interval);
            let mut n = u64::from(p);
            while Instant::now() < stop {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                let channel = (n % u64::from(channels)) as usize;
                n += u64::from(publishers);
                let body = trigger_body(&format!("fanout-{channel}"), payload);
                match rest(&client, &target, "POST", "events", &[], &body).await {
                    Ok(200) => {
                        published.set(published.get() + 1);
                        expected.set(expected.get() + per_channel[channel]);
                    }
                    _ => errors.set(errors.get() + 1),
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let publish_secs = duration as f64;
    let drain_until = Instant::now() + DRAIN;
    while held.delivered.get() < expected.get() && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = server.usage();
    until.set(Instant::now());
    let delivered = held.delivered.get();
    let p = held.latencies.borrow().percentiles();
    let cpu = delta(after.cpu_us, before.cpu_us);
    let cpu_per_delivery = cpu.map(|c| {
        if delivered > 0 {
            c as f64 / delivered as f64
        } else {
            0.0
        }
    });
    println!(
        "published {} ({} errors), delivered {delivered}/{} ({:.0} deliveries/s), dropped {}",
        published.get(),
        errors.get(),
        expected.get(),
        delivered as f64 / publish_secs,
        held.dropped.get()
    );
    print_percentiles("delivery latency", &p);
    if let Some(c) = cpu_per_delivery {
        println!("server CPU: {c:.2} us per delivered message");
    }
    json!({
        "scenario": "fanout", "subscribers": subscribers, "opened": opened, "failed": failed,
        "nodes": k, "server_processes": server.pids.len(),
        "channels": channels, "publishers": publishers, "rate": rate, "payload_bytes": payload,
        "duration_secs": duration, "published": published.get(), "publish_errors": errors.get(),
        "expected": expected.get(), "delivered": delivered, "dropped": held.dropped.get(),
        "deliveries_per_sec": delivered as f64 / publish_secs,
        "latency": percentiles_json(&p), "server_cpu_us": cpu,
        "server_cpu_us_per_delivery": cpu_per_delivery,
    })
}

/// The flooding app's load in the `abuse` scenario.
#[derive(Clone, Copy)]
struct Flood {
    concurrency: u32,
    connectors: u32,
}

/// Counts of the flood: answered, refused (429 / a refused connection), failed otherwise.
#[derive(Default)]
struct FloodCounts {
    requests_ok: AtomicU64,
    requests_limited: AtomicU64,
    requests_failed: AtomicU64,
    connections_ok: AtomicU64,
    connections_refused: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Runs the flood against `abuser` on a thread of its own (its own actix system), so that the
/// flood does not queue behind, or delay, the measured app's receivers on the main thread;
/// until `stop` is set.
fn start_flood(
    abuser: &Target,
    flood: Flood,
    stop: &Arc<AtomicBool>,
    counts: &Arc<FloodCounts>,
) -> std::thread::JoinHandle<()> {
    let (abuser, stop, counts) = (abuser.clone(), stop.clone(), counts.clone());
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let pool = Rc::new(Pool::new(abuser.source_addresses));
            let mut tasks = Vec::new();
            for _ in 0..flood.concurrency.max(1) {
                let (pool, abuser, stop, counts) =
                    (pool.clone(), abuser.clone(), stop.clone(), counts.clone());
                tasks.push(actix_rt::spawn(async move {
                    let client = pool.client().clone();
                    let body = trigger_body("flood", 100);
                    while !stop.load(Ordering::Relaxed) {
                        match rest(&client, &abuser, "POST", "events", &[], &body).await {
                            Ok(200) => bump(&counts.requests_ok),
                            Ok(429) => bump(&counts.requests_limited),
                            _ => bump(&counts.requests_failed),
                        }
                    }
                }));
            }
            for _ in 0..flood.connectors {
                let (pool, url, stop, counts) =
                    (pool.clone(), ws_url(&abuser), stop.clone(), counts.clone());
                tasks.push(actix_rt::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match connect(pool.client(), &url).await {
                            Ok(socket) => {
                                bump(&counts.connections_ok);
                                drop(socket);
                            }
                            Err(_) => bump(&counts.connections_refused),
                        }
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        });
    })
}

/// The target app's fan-out, quiet and then while another app floods the server.
async fn abuse(
    target: &Target,
    abuser: &Target,
    server: &Server,
    subscribers: u32,
    rate: u32,
    duration: u64,
    flood: Flood,
) -> Value {
    println!("== quiet: {subscribers} subscribers, {rate} events/s for {duration}s ==");
    let quiet = fanout(target, server, subscribers, 1, 1, rate, duration, 100, 2000).await;
    println!("== flooded by app {} ==", abuser.app_id);
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(FloodCounts::default());
    let flooder = start_flood(abuser, flood, &stop, &counts);
    let flooded = fanout(target, server, subscribers, 1, 1, rate, duration, 100, 2000).await;
    stop.store(true, Ordering::Relaxed);
    let _ = actix_rt::task::spawn_blocking(move || flooder.join()).await;
    let p99 = |run: &Value| run["latency"]["p99_us"].as_f64().unwrap_or(f64::NAN);
    let ratio = p99(&flooded) / p99(&quiet);
    println!(
        "flood: {} requests answered, {} refused with 429, {} failed; {} connections accepted, {} refused",
        counts.requests_ok.load(Ordering::Relaxed),
        counts.requests_limited.load(Ordering::Relaxed),
        counts.requests_failed.load(Ordering::Relaxed),
        counts.connections_ok.load(Ordering::Relaxed),
        counts.connections_refused.load(Ordering::Relaxed)
    );
    println!(
        "target app p99: quiet {:.2} ms, flooded {:.2} ms ({ratio:.2}x)",
        p99(&quiet) / 1e3,
        p99(&flooded) / 1e3
    );
    json!({
        "scenario": "abuse", "quiet": quiet, "flooded": flooded, "p99_ratio": ratio,
        "flood": {
            "concurrency": flood.concurrency, "connectors": flood.connectors,
            "requests_ok": counts.requests_ok.load(Ordering::Relaxed),
            "requests_limited": counts.requests_limited.load(Ordering::Relaxed),
            "requests_failed": counts.requests_failed.load(Ordering::Relaxed),
            "connections_ok": counts.connections_ok.load(Ordering::Relaxed),
            "connections_refused": counts.connections_refused.load(Ordering::Relaxed),
        },
    })
}

async fn http(
    target: &Target,
    server: &Server,
    concurrency: u32,
    duration: u64,
    mix: bool,
) -> Value {
    let pool = Rc::new(Pool::new(target.source_addresses));
    let latencies = Rc::new(RefCell::new(Latencies::default()));
    let ok = Rc::new(Cell::new(0u64));
    let errors = Rc::new(Cell::new(0u64));
    let before = server.usage();
    let started = Instant::now();
    let stop = started + Duration::from_secs(duration);
    let mut tasks = Vec::new();
    for worker in 0..concurrency.max(1) {
        let (pool, target, latencies, ok, errors) = (
            pool.clone(),
            target.clone(),
            latencies.clone(),
            ok.clone(),
            errors.clone(),
        );
        tasks.push(actix_rt::spawn(async move {
            let client = pool.client().clone();
            let mut n = u64::from(worker);
            while Instant::now() < stop {
                n += 1;
                let sent = Instant::now();
                let result = if mix && n % 2 == 0 {
                    rest(&client, &target, "GET", "channels", &[], b"").await
                } else {
                    let body = trigger_body("bench-empty", 100);
                    rest(&client, &target, "POST", "events", &[], &body).await
                };
                match result {
                    Ok(200) => {
                        ok.set(ok.get() + 1);
                        latencies
                            .borrow_mut()
                            .record(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    }
                    Ok(status) => {
                        if errors.get() < 3 {
                            eprintln!("HTTP {status}");
                        }
                        errors.set(errors.get() + 1);
                    }
                    Err(e) => {
                        if errors.get() < 3 {
                            eprintln!("request failed: {e}");
                        }
                        errors.set(errors.get() + 1);
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let after = server.usage();
    let p = latencies.borrow().percentiles();
    let cpu = delta(after.cpu_us, before.cpu_us);
    let per_request = cpu.map(|c| {
        if ok.get() > 0 {
            c as f64 / ok.get() as f64
        } else {
            0.0
        }
    });
    println!(
        "{} requests ok, {} errors in {secs:.1}s: {:.0} requests/s at concurrency {concurrency}",
        ok.get(),
        errors.get(),
        ok.get() as f64 / secs
    );
    print_percentiles("request latency", &p);
    if let Some(c) = per_request {
        println!("server CPU: {c:.2} us per request");
    }
    json!({
        "scenario": "http", "concurrency": concurrency, "duration_secs": secs, "ok": ok.get(),
        "errors": errors.get(), "requests_per_sec": ok.get() as f64 / secs,
        "mix_get_channels": mix, "latency": percentiles_json(&p), "server_cpu_us": cpu,
        "server_cpu_us_per_request": per_request,
    })
}

async fn churn(target: &Target, server: &Server, args: ChurnArgs) -> Value {
    let ChurnArgs { rate, duration } = args;
    let pool = Rc::new(Pool::new(target.source_addresses));
    let url = ws_url(target);
    let cycles = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0u64));
    let before = server.usage();
    let started = Instant::now();
    let stop = started + Duration::from_secs(duration);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut started_cycles = 0u64;
    let mut i = 0u64;
    while Instant::now() < stop {
        ticker.tick().await;
        i += 1;
        started_cycles += 1;
        let (pool, url, cycles, failed) =
            (pool.clone(), url.clone(), cycles.clone(), failed.clone());
        actix_rt::spawn(async move {
            let result = async {
                let mut socket = connect(pool.client(), &url).await?;
                let channel = format!("churn-{}", i % 10);
                subscribe(&mut socket, &channel).await?;
                send(
                    &mut socket,
                    &json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}),
                )
                .await?;
                let _ = socket.close().await;
                Ok::<_, String>(())
            }
            .await;
            match result {
                Ok(()) => cycles.set(cycles.get() + 1),
                Err(e) => {
                    if failed.get() < 3 {
                        eprintln!("cycle failed: {e}");
                    }
                    failed.set(failed.get() + 1);
                }
            }
        });
    }
    let deadline = Instant::now() + STEP_TIMEOUT;
    while cycles.get() + failed.get() < started_cycles && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the server retire idle channels and finish closing before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.usage();
    let client = pool.client().clone();
    let leftover = leftover_channels(&client, target, "churn-").await;
    let drift = delta(after.rss, before.rss);
    let per_cycle = drift.map(|d| {
        if cycles.get() > 0 {
            d as f64 / cycles.get() as f64
        } else {
            0.0
        }
    });
    println!(
        "{} cycles ok, {} failed in {:.1}s; server RSS {} -> {} ({} bytes per cycle); leftover churn channels: {}",
        cycles.get(),
        failed.get(),
        started.elapsed().as_secs_f64(),
        mib(before.rss),
        mib(after.rss),
        per_cycle.map_or_else(|| "?".into(), |b| format!("{b:.2}")),
        leftover.map_or_else(|| "?".into(), |n| n.to_string()),
    );
    json!({
        "scenario": "churn", "rate": rate, "duration_secs": duration, "cycles": cycles.get(),
        "failed": failed.get(), "rss_before": before.rss, "rss_after": after.rss,
        "rss_drift_bytes": drift, "rss_drift_bytes_per_cycle": per_cycle,
        "leftover_channels": leftover, "server_cpu_us": delta(after.cpu_us, before.cpu_us),
    })
}

/// Occupied channels with the prefix, from `GET /channels` (None if it cannot be read).
async fn leftover_channels(client: &awc::Client, target: &Target, prefix: &str) -> Option<u64> {
    let path = format!("/apps/{}/channels", target.app_id);
    let timestamp = now_nanos() / 1_000_000_000;
    let params = [("filter_by_prefix", prefix)];
    let query = signed_query(
        "GET",
        &path,
        &params,
        b"",
        &target.key,
        &target.secret,
        timestamp,
    );
    let mut response = client
        .get(format!("{}{path}?{query}", target.url))
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    Some(body["channels"].as_object()?.len() as u64)
}

fn main() {
    let cli = Cli::parse();
    let needs_app = !matches!(
        cli.scenario,
        Scenario::Floor { .. }
            | Scenario::HttpFloor { .. }
            | Scenario::FloorServer { .. }
            | Scenario::WsFloor { .. }
            | Scenario::WsFloorServer { .. }
    );
    if cli.target.key.is_empty() && needs_app {
        eprintln!("error: give the app's key (--key or PUSHER_APP_KEY), and --app-id/--secret for REST scenarios");
        std::process::exit(2);
    }
    // Many sockets: take the whole open-file allowance.
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let server = Server {
        pids: cli.target.server_pid.clone(),
    };
    let target = cli.target.clone();
    let result = actix_rt::System::new().block_on(async move {
        match cli.scenario {
            Scenario::Connections(args) => connections(&target, &server, args).await,
            Scenario::Fanout {
                subscribers,
                channels,
                publishers,
                rate,
                duration,
                payload,
                connect_rate,
            } => {
                fanout(
                    &target,
                    &server,
                    subscribers,
                    channels,
                    publishers,
                    rate,
                    duration,
                    payload,
                    connect_rate,
                )
                .await
            }
            Scenario::Http {
                concurrency,
                duration,
                mix_get_channels,
            } => http(&target, &server, concurrency, duration, mix_get_channels).await,
            Scenario::Floor {
                connections,
                writers,
                rate,
                duration,
                payload,
                connect_rate,
            } => {
                floor::floor(
                    &target,
                    connections,
                    writers,
                    rate,
                    duration,
                    payload,
                    connect_rate,
                )
                .await
            }
            Scenario::HttpFloor {
                concurrency,
                duration,
            } => floor::http_floor(&target, concurrency, duration).await,
            Scenario::FloorServer { port } => floor::floor_server(port).await,
            Scenario::WsFloor {
                activity_timeout,
                scenario,
            } => floor::ws_floor(&target, scenario, activity_timeout).await,
            Scenario::WsFloorServer {
                port,
                activity_timeout,
            } => floor::ws_floor_server(port, activity_timeout).await,
            Scenario::Churn(args) => churn(&target, &server, args).await,
            Scenario::Webhooks(options) => webhooks::run(&target, &server, options).await,
            Scenario::Abuse {
                abuser_app_id,
                abuser_key,
                abuser_secret,
                subscribers,
                rate,
                duration,
                concurrency,
                connectors,
            } => {
                let abuser = Target {
                    app_id: abuser_app_id,
                    key: abuser_key,
                    secret: abuser_secret,
                    ..target.clone()
                };
                let flood = Flood {
                    concurrency,
                    connectors,
                };
                abuse(
                    &target,
                    &abuser,
                    &server,
                    subscribers,
                    rate,
                    duration,
                    flood,
                )
                .await
            }
        }
    });
    println!("{result}");
}
