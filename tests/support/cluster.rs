//! Cluster tests' support: several real nodes on one database and one Redis, each behind its
//! own TCP proxy to Redis (so a test can cut one node off, or all of them), with a key prefix
//! of their own so tests run in parallel on the machine's Redis.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reverb_pusher::settings::{Secret, Settings};

use crate::{Proxy, TestServer};

/// The Redis the cluster tests use (the machine's, on loopback).
pub fn redis_addr() -> SocketAddr {
    std::env::var("TEST_REDIS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:6379".into())
        .parse()
        .expect("TEST_REDIS_ADDR is host:port")
}

/// Heartbeat and lease short enough that a dead node is reaped within a few seconds.
pub const HEARTBEAT_MS: u64 = 250;
pub const LEASE_MS: u64 = 1500;

/// Nodes of one cluster.
pub struct TestCluster {
    pub nodes: Vec<TestServer>,
    /// Each node's path to Redis, in node order.
    pub proxies: Vec<Proxy>,
    /// The cluster's key prefix (unique per test).
    pub prefix: String,
}

/// Settings that make a node part of the test's cluster.
pub fn cluster_settings(s: &mut Settings, proxy: &Proxy, prefix: &str) {
    s.cluster_redis_url = Some(Secret(format!("redis://{}/", proxy.addr)));
    prefix.clone_into(&mut s.cluster_key_prefix);
    s.cluster_heartbeat_ms = HEARTBEAT_MS;
    s.cluster_lease_ms = LEASE_MS;
}

impl TestCluster {
    /// `n` nodes; the first creates the app (adjusted by `app`), the others load it.
    pub async fn start(n: usize, app: impl FnOnce(&mut reverb_pusher::apps::AppConfig)) -> Self {
        Self::start_with(n, |_| {}, app).await
    }

    /// `n` nodes with settings adjusted by `settings` (every node).
    pub async fn start_with(
        n: usize,
        settings: impl Fn(&mut Settings),
        app: impl FnOnce(&mut reverb_pusher::apps::AppConfig),
    ) -> Self {
        let prefix = format!("rp-test-{:016x}", rand_u64());
        let mut proxies = Vec::new();
        for _ in 0..n {
            proxies.push(Proxy::start(redis_addr()));
        }
        assert!(
            std::net::TcpStream::connect_timeout(&redis_addr(), Duration::from_secs(2)).is_ok(),
            "cluster tests need Redis at {} (set TEST_REDIS_ADDR)",
            redis_addr()
        );
        let first = TestServer::start_with(
            |s| {
                settings(s);
                cluster_settings(s, &proxies[0], &prefix);
            },
            app,
        )
        .await;
        let mut nodes = vec![first];
        for proxy in &proxies[1..] {
            let node = nodes[0].join(|s| cluster_settings(s, proxy, &prefix)).await;
            nodes.push(node);
        }
        wait_subscribed(&prefix, &nodes[0].app.id, n).await;
        Self {
            nodes,
            proxies,
            prefix,
        }
    }

    pub fn node(&self, i: usize) -> &TestServer {
        &self.nodes[i]
    }

    /// One more node, with the first node's settings and a proxy of its own.
    pub async fn add_node(&mut self) -> &TestServer {
        let proxy = Proxy::start(redis_addr());
        let prefix = self.prefix.clone();
        let node = self.nodes[0]
            .join(|s| cluster_settings(s, &proxy, &prefix))
            .await;
        self.proxies.push(proxy);
        self.nodes.push(node);
        wait_subscribed(&self.prefix, &self.nodes[0].app.id, self.nodes.len()).await;
        self.nodes.last().expect("just added")
    }

    /// Shuts every node down, then removes the test's keys from Redis.
    pub async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
        forget_keys(&self.prefix).await;
    }
}

/// Waits until `n` nodes listen to the app's cluster channel (a node subscribes as its
/// supervisor starts, just after the node is up).
pub async fn wait_subscribed(prefix: &str, app_id: &str, n: usize) {
    let client = redis::Client::open(format!("redis://{}/", redis_addr())).expect("redis url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("cluster tests need Redis");
    let channel = format!("{prefix}:v1:a:{app_id}:ev");
    eventually(
        Duration::from_secs(10),
        "every node listens to the app",
        || {
            let mut con = con.clone();
            let channel = channel.clone();
            async move {
                let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(&channel)
                    .query_async(&mut con)
                    .await
                    .unwrap_or_default();
                counts.first().is_some_and(|(_, c)| *c >= n)
            }
        },
    )
    .await;
    let _ = &mut con;
}

/// Deletes every key of a test prefix.
pub async fn forget_keys(prefix: &str) {
    let Ok(client) = redis::Client::open(format!("redis://{}/", redis_addr())) else {
        return;
    };
    let Ok(mut con) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut con)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("UNLINK").arg(keys).query_async(&mut con).await;
    }
}

/// Waits until `check` holds, polling; panics with `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
