//! Cluster mode: several real nodes sharing one database and one Redis (each behind a proxy the
//! test can cut), a key prefix per test. What one node's client does, the others' clients see
//! exactly once; presence and counts are the cluster's; a dead node is cleaned up; a Redis
//! outage degrades nodes to local service and they recover without a restart.

use std::time::{Duration, Instant};

use reverb_pusher_tests::cluster::{eventually, TestCluster, LEASE_MS};
use reverb_pusher_tests::{data, Client, Received, TestServer};
use serde_json::{json, Value};

const SOON: Duration = Duration::from_secs(5);

async fn join(node: &TestServer, client: &mut Client, channel: &str, member: Value) -> Value {
    let (auth, channel_data) = node.auth_presence(&client.socket_id, channel, &member);
    client
        .subscribe_with(json!({"channel": channel, "auth": auth, "channel_data": channel_data}))
        .await
}

async fn private(node: &TestServer, client: &mut Client, channel: &str) -> Value {
    let auth = node.auth_private(&client.socket_id, channel);
    client
        .subscribe_with(json!({"channel": channel, "auth": auth}))
        .await
}

async fn sign_in(node: &TestServer, client: &mut Client, user_id: &str) {
    let (auth, user_data) = node.auth_user(&client.socket_id, &json!({ "id": user_id }));
    client
        .send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
    client.expect_event("pusher:signin_success").await;
}

/// `GET /channels/{name}` on a node, once the cluster's count settled to `subscriptions`.
async fn settled(node: &TestServer, channel: &str, subscriptions: u64) -> Value {
    let path = format!("/channels/{channel}");
    let mut last = Value::Null;
    let deadline = Instant::now() + SOON;
    while Instant::now() < deadline {
        let r = node
            .rest()
            .get(&path, &[("info", "subscription_count")])
            .await;
        if r.body["subscription_count"] == subscriptions {
            return r.body;
        }
        last = r.body;
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{channel} never reached {subscriptions} subscriptions: {last}");
}

#[actix_rt::test]
async fn events_from_any_node_reach_every_subscriber_once() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let mut on_a = a.connect().await;
    let mut on_b = b.connect().await;
    on_a.subscribe("news").await;
    on_b.subscribe("news").await;

    // A REST event through C, where nobody listens.
    assert_eq!(
        c.rest().trigger("news", "update", "{\"n\":1}").await.status,
        200
    );
    for client in [&mut on_a, &mut on_b] {
        let got = client.expect_event("update").await;
        assert_eq!(got["data"], "{\"n\":1}");
        client.expect_silence().await;
    }

    // The sender's socket is excluded even when it is on another node.
    let body =
        json!({"name": "update", "channel": "news", "data": "2", "socket_id": on_a.socket_id});
    assert_eq!(c.rest().post("/events", &body).await.status, 200);
    assert_eq!(on_b.expect_event("update").await["data"], "2");
    on_a.expect_silence().await;

    // A client event from B reaches A once and never comes back to B.
    private(b, &mut on_b, "private-room").await;
    private(a, &mut on_a, "private-room").await;
    private(c, &mut c.connect().await, "private-room").await;
    settled(a, "private-room", 2).await;
    on_b.send(json!({"event": "client-typing", "channel": "private-room", "data": {"x": 1}}))
        .await;
    let typing = on_a.expect_event("client-typing").await;
    assert_eq!(typing["data"], "{\"x\":1}", "as a local subscriber gets it");
    on_a.expect_silence().await;
    on_b.expect_silence().await;
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn users_are_reached_and_terminated_on_every_node() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let mut tab_b = b.connect().await;
    let mut tab_c = c.connect().await;
    sign_in(b, &mut tab_b, "u1").await;
    sign_in(c, &mut tab_c, "u1").await;

    // `sendToUser` through A, where the user has no socket: one copy per socket.
    let sent = a.rest().trigger("#server-to-user-u1", "note", "hi").await;
    assert_eq!(sent.status, 200);
    for tab in [&mut tab_b, &mut tab_c] {
        assert_eq!(tab.expect_event("note").await["data"], "hi");
        tab.expect_silence().await;
    }

    // `terminate_connections` through A closes the user's sockets on B and C.
    let r = a
        .rest()
        .post("/users/u1/terminate_connections", &json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(tab_b.expect_close().await, Some(4009));
    assert_eq!(tab_c.expect_close().await, Some(4009));
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn presence_is_the_clusters_roster_with_one_event_per_user() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let room = "presence-room";

    // U2 on C sees U1 arrive once, although U1 opens a tab on A and another on B.
    let mut u2 = c.connect().await;
    join(
        c,
        &mut u2,
        room,
        json!({"user_id": "u2", "user_info": {"n": 2}}),
    )
    .await;
    let mut u1_a = a.connect().await;
    let ok = join(
        a,
        &mut u1_a,
        room,
        json!({"user_id": "u1", "user_info": {"n": 1}}),
    )
    .await;
    assert_eq!(
        data(&ok)["presence"],
        json!({"ids": ["u2", "u1"], "hash": {"u2": {"n": 2}, "u1": {"n": 1}}, "count": 2}),
        "the roster on A lists the member on C"
    );
    let added = u2.expect_event("pusher_internal:member_added").await;
    assert_eq!(
        data(&added),
        json!({"user_id": "u1", "user_info": {"n": 1}})
    );
    let mut u1_b = b.connect().await;
    let ok = join(
        b,
        &mut u1_b,
        room,
        json!({"user_id": "u1", "user_info": {"n": 1}}),
    )
    .await;
    assert_eq!(data(&ok)["presence"]["count"], 2);
    u2.expect_silence().await;
    u1_a.expect_silence().await;

    // Every node lists both users.
    for node in [a, b, c] {
        let users = node
            .rest()
            .get(&format!("/channels/{room}/users"), &[])
            .await;
        assert_eq!(users.body, json!({"users": [{"id": "u2"}, {"id": "u1"}]}));
        let info = node
            .rest()
            .get(&format!("/channels/{room}"), &[("info", "user_count")])
            .await;
        assert_eq!(info.body["user_count"], 2);
    }

    // U1 closes the tab on A: still on B, nobody is told. Then the last one: one removal.
    u1_a.close().await;
    u2.expect_silence().await;
    u1_b.close().await;
    let removed = u2.expect_event("pusher_internal:member_removed").await;
    assert_eq!(data(&removed), json!({"user_id": "u1"}));
    u2.expect_silence().await;
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn two_nodes_racing_on_one_user_announce_it_once() {
    let cluster = TestCluster::start(2, |_| {}).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let room = "presence-race";
    let mut watcher = a.connect().await;
    join(a, &mut watcher, room, json!({"user_id": "w"})).await;
    for round in 0..10 {
        let mut on_a = a.connect().await;
        let mut on_b = b.connect().await;
        let member = json!({"user_id": "racer"});
        let (ja, jb) = futures_util::join!(
            join(a, &mut on_a, room, member.clone()),
            join(b, &mut on_b, room, member.clone())
        );
        assert_eq!(ja["event"], "pusher_internal:subscription_succeeded");
        assert_eq!(jb["event"], "pusher_internal:subscription_succeeded");
        let added = watcher.expect_event("pusher_internal:member_added").await;
        assert_eq!(data(&added)["user_id"], "racer", "round {round}");
        futures_util::join!(on_a.close(), on_b.close());
        let removed = watcher.expect_event("pusher_internal:member_removed").await;
        assert_eq!(data(&removed)["user_id"], "racer", "round {round}");
    }
    watcher.expect_silence().await;
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn the_member_limit_counts_users_on_every_node() {
    let cluster = TestCluster::start(2, |app| app.limits.max_presence_members = 2).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut one = a.connect().await;
    join(a, &mut one, "presence-full", json!({"user_id": "1"})).await;
    let mut two = b.connect().await;
    join(b, &mut two, "presence-full", json!({"user_id": "2"})).await;
    let mut three = a.connect().await;
    let refused = join(a, &mut three, "presence-full", json!({"user_id": "3"})).await;
    assert_eq!(refused["event"], "pusher:subscription_error");
    // A second tab of a member already in is not a new member.
    let mut two_again = a.connect().await;
    let ok = join(a, &mut two_again, "presence-full", json!({"user_id": "2"})).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn counts_are_the_clusters_on_every_node() {
    let cluster = TestCluster::start(3, |app| app.subscription_count_events = true).await;
    let mut clients = Vec::new();
    for i in 0..9 {
        let node = cluster.node(i % 3);
        let mut client = node.connect().await;
        client.subscribe("busy").await;
        clients.push(client);
    }
    for node in &cluster.nodes {
        let one = settled(node, "busy", 9).await;
        assert_eq!(one["occupied"], true);
        let all = node
            .rest()
            .get("/channels", &[("info", "subscription_count")])
            .await;
        assert_eq!(
            all.body,
            json!({"channels": {"busy": {"subscription_count": 9}}})
        );
    }
    // Every subscriber, on every node, is told the cluster's count.
    for client in &mut clients {
        let deadline = Instant::now() + SOON;
        loop {
            let frame = client
                .expect_event("pusher_internal:subscription_count")
                .await;
            if data(&frame)["subscription_count"] == 9 {
                break;
            }
            assert!(Instant::now() < deadline, "never told 9");
        }
    }
    // The panel's connection count is the cluster's too.
    let admin = cluster.node(1).admin_logged_in().await;
    let app = admin
        .get(&format!("/apps/{}", cluster.node(0).app.id))
        .await;
    assert_eq!(app.body["connections"], 9, "{:?}", app.body);
    drop(clients);
    for node in &cluster.nodes {
        let none = settled(node, "busy", 0).await;
        assert_eq!(none["occupied"], false);
    }
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn a_cache_channels_last_event_is_shared() {
    let cluster = TestCluster::start(2, |_| {}).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut first = b.connect().await;
    let miss = first.subscribe("cache-prices").await;
    assert_eq!(miss["event"], "pusher_internal:subscription_succeeded");
    first.expect_event("pusher:cache_miss").await;
    assert_eq!(
        a.rest().trigger("cache-prices", "price", "42").await.status,
        200
    );
    assert_eq!(first.expect_event("price").await["data"], "42");
    // A new subscriber on B gets it from the cluster's cache, and so does a REST read on A.
    let mut later = b.connect().await;
    later.subscribe("cache-prices").await;
    assert_eq!(later.expect_event("price").await["data"], "42");
    let cached = a
        .rest()
        .get("/channels/cache-prices", &[("info", "cache")])
        .await;
    assert_eq!(cached.body["cache"]["data"], "42");
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn an_app_disabled_on_one_node_closes_its_sockets_on_all() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let mut on_a = cluster.node(0).connect().await;
    let mut on_c = cluster.node(2).connect().await;
    let admin = cluster.node(1).admin_logged_in().await;
    let id = cluster.node(0).app.id.clone();
    let started = Instant::now();
    let r = admin
        .patch(&format!("/apps/{id}"), json!({"enabled": false}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(on_a.expect_close().await, Some(4003));
    assert_eq!(on_c.expect_close().await, Some(4003));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn max_connections_holds_across_the_cluster() {
    let cluster = TestCluster::start(3, |app| app.limits.max_connections = 4).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..7 {
        let node = cluster.node(i % 3);
        let mut client = Client::open(&node.ws_url(&node.app.key)).await;
        match client.recv().await["event"].as_str() {
            Some("pusher:connection_established") => open.push(client),
            _ => refused += 1,
        }
    }
    assert_eq!((open.len(), refused), (4, 3));
    // Room again once some leave, on whichever node.
    open.pop().unwrap().close().await;
    open.pop().unwrap().close().await;
    let node = cluster.node(2);
    eventually(SOON, "two more connect", || async {
        let mut c = Client::open(&node.ws_url(&node.app.key)).await;
        c.recv().await["event"] == "pusher:connection_established"
    })
    .await;
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn the_cluster_reports_its_nodes_and_health() {
    let cluster = TestCluster::start(2, |_| {}).await;
    let admin = cluster.node(0).admin_logged_in().await;
    let status = admin.get("/cluster").await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["enabled"], true);
    assert_eq!(status.body["state"], "healthy");
    assert_eq!(status.body["nodes"].as_array().unwrap().len(), 2);
    let ready = awc::Client::new()
        .get(cluster.node(1).http_url("/ready"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["cluster"]["state"], "healthy");
    // Its metrics are there, and documented.
    let metrics = awc::Client::new()
        .get(cluster.node(1).http_url("/metrics"))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics);
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/src/operations/metrics.md"
    ))
    .unwrap();
    let cluster_metrics: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE reverb_pusher_cluster_"))
        .map(|rest| rest.split(' ').next().unwrap())
        .collect();
    assert_eq!(cluster_metrics.len(), 6, "{text}");
    for name in cluster_metrics {
        assert!(
            doc.contains(&format!("`reverb_pusher_cluster_{name}`")),
            "{name}"
        );
    }
    assert!(text.contains("reverb_pusher_cluster_healthy 1"), "{text}");
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn a_redis_outage_degrades_to_local_service_and_recovers() {
    let cluster = TestCluster::start(2, |_| {}).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let room = "presence-outage";
    let mut stays_a = a.connect().await;
    join(a, &mut stays_a, room, json!({"user_id": "stays-a"})).await;
    let mut stays_b = b.connect().await;
    join(b, &mut stays_b, room, json!({"user_id": "stays-b"})).await;
    stays_a.expect_event("pusher_internal:member_added").await;

    for proxy in &cluster.proxies {
        proxy.cut();
    }
    // Readiness says so within a couple of heartbeats, but stays 200.
    eventually(SOON, "node A reports a degraded cluster", || async {
        let mut r = awc::Client::new()
            .get(a.http_url("/ready"))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        r.status() == 200 && body["checks"]["cluster"]["state"] == "degraded"
    })
    .await;
    // Local delivery goes on.
    let mut local = a.connect().await;
    local.subscribe("local").await;
    assert_eq!(a.rest().trigger("local", "still", "1").await.status, 200);
    assert_eq!(local.expect_event("still").await["data"], "1");
    // Meanwhile one user joins on A and one leaves on B.
    let mut newcomer = a.connect().await;
    join(a, &mut newcomer, room, json!({"user_id": "new-a"})).await;
    stays_b.close().await;

    for proxy in &cluster.proxies {
        proxy.restore();
    }
    // After recovery every node lists the true roster, and A's sockets learn that stays-b left.
    for node in [a, b] {
        eventually(
            Duration::from_secs(10),
            "the roster is the truth again",
            || async {
                let users = node
                    .rest()
                    .get(&format!("/channels/{room}/users"), &[])
                    .await;
                users.status == 200
                    && users.header("x-reverb-pusher-cluster").is_none()
                    && users.body == json!({"users": [{"id": "stays-a"}, {"id": "new-a"}]})
            },
        )
        .await;
    }
    let removed = stays_a.expect_event("pusher_internal:member_removed").await;
    assert_eq!(data(&removed)["user_id"], "stays-b");
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn a_subscriber_connection_gone_silent_is_noticed_by_its_probe_and_replaced() {
    let cluster = TestCluster::start(2, |_| {}).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut on_b = b.connect().await;
    on_b.subscribe("quiet").await;
    assert_eq!(a.rest().trigger("quiet", "before", "0").await.status, 200);
    assert_eq!(on_b.expect_event("before").await["data"], "0");

    // B's pub/sub connection stays open but nothing comes through any more (no error, no
    // disconnection: what a proxy or NAT that lost its state does). Its commands still work.
    let bus = subscriber_connection(&cluster.proxies[1]).await;
    assert!(cluster.proxies[1].silence(bus));
    // Events sent on A stop reaching B's socket until B's probe goes missing and B replaces
    // the connection; then they flow again (the ones in between are lost, as in any outage).
    let silenced = Instant::now();
    let mut sent = 0;
    'flowing: loop {
        sent += 1;
        let status = a
            .rest()
            .trigger("quiet", "after", &sent.to_string())
            .await
            .status;
        assert_eq!(status, 200);
        let until = Instant::now() + Duration::from_millis(300);
        while let Some(received) = on_b.next_within(until - Instant::now()).await {
            if matches!(&received, Received::Json(frame) if frame["event"] == "after") {
                break 'flowing;
            }
        }
        assert!(
            silenced.elapsed() < Duration::from_secs(15),
            "B never noticed that its subscriber connection went silent"
        );
    }
    assert!(sent > 1, "the silenced connection still delivered");
    // Delivery is whole again: the next event arrives at once.
    assert_eq!(a.rest().trigger("quiet", "later", "x").await.status, 200);
    assert_eq!(on_b.expect_event_within("later", SOON).await["data"], "x");
    cluster.shutdown().await;
}

/// The node's connection that Redis lists with subscriptions, among those through `proxy`.
async fn subscriber_connection(proxy: &reverb_pusher_tests::Proxy) -> std::net::SocketAddr {
    let client = redis::Client::open(format!(
        "redis://{}/",
        reverb_pusher_tests::cluster::redis_addr()
    ))
    .unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .unwrap();
    let ours = proxy.upstream_addrs();
    list.lines()
        .find_map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name).map(str::to_owned))
            };
            let addr: std::net::SocketAddr = field("addr=")?.parse().ok()?;
            let subs: u32 = field("sub=")?.parse().ok()?;
            (subs > 0 && ours.contains(&addr)).then_some(addr)
        })
        .expect("the node's subscriber connection goes through its proxy")
}

#[actix_rt::test]
async fn a_node_cut_off_for_longer_than_its_lease_is_reaped_then_announced_again() {
    let cluster = TestCluster::start(2, |_| {}).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let room = "presence-partition";
    let mut on_a = a.connect().await;
    join(a, &mut on_a, room, json!({"user_id": "on-a"})).await;
    let mut on_b = b.connect().await;
    join(b, &mut on_b, room, json!({"user_id": "on-b"})).await;
    on_a.expect_event("pusher_internal:member_added").await;

    // B alone loses Redis: A declares it dead after its lease and removes its member.
    cluster.proxies[1].cut();
    let started = Instant::now();
    let removed = on_a
        .expect_event_within(
            "pusher_internal:member_removed",
            Duration::from_millis(LEASE_MS * 4),
        )
        .await;
    assert_eq!(data(&removed)["user_id"], "on-b");
    eprintln!("partitioned node reaped after {:?}", started.elapsed());
    // B keeps serving its own socket meanwhile; back on Redis, it re-announces its user.
    cluster.proxies[1].restore();
    let added = on_a
        .expect_event_within("pusher_internal:member_added", Duration::from_secs(10))
        .await;
    assert_eq!(data(&added)["user_id"], "on-b");
    cluster.shutdown().await;
}

/// A node run as its own process (so that it can be killed with SIGKILL), on the cluster's
/// database, master key and Redis.
struct ProcessNode {
    child: std::process::Child,
    ws_url: String,
}

impl ProcessNode {
    async fn start(like: &TestServer, prefix: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = &like.settings;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_reverb-pusher-node"))
            .arg("serve")
            .env("REVERB_PUSHER_HOST", "127.0.0.1")
            .env("REVERB_PUSHER_PORT", port.to_string())
            .env("REVERB_PUSHER_DATABASE_URL", &like.database_url)
            .env("REVERB_PUSHER_MASTER_KEY_FILE", &s.master_key_file)
            .env(
                "REVERB_PUSHER_CLUSTER_REDIS_URL",
                format!("redis://{}/", reverb_pusher_tests::cluster::redis_addr()),
            )
            .env("REVERB_PUSHER_CLUSTER_KEY_PREFIX", prefix)
            .env(
                "REVERB_PUSHER_CLUSTER_HEARTBEAT_MS",
                s.cluster_heartbeat_ms.to_string(),
            )
            .env(
                "REVERB_PUSHER_CLUSTER_LEASE_MS",
                s.cluster_lease_ms.to_string(),
            )
            .env("REVERB_PUSHER_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the node binary starts");
        let node = Self {
            child,
            ws_url: format!(
                "ws://127.0.0.1:{port}/app/{}?protocol=7&client=js&version=8.4.0&flash=false",
                like.app.key
            ),
        };
        eventually(
            Duration::from_secs(20),
            "the node process listens",
            || async { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() },
        )
        .await;
        node
    }

    async fn connect(&self) -> Client {
        let mut client = Client::open(&self.ws_url).await;
        client.established().await;
        client
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_rt::test]
async fn a_killed_node_is_reaped_and_its_last_members_removed() {
    let cluster = TestCluster::start(2, |_| {}).await;
    let (a, c) = (cluster.node(0), cluster.node(1));
    let room = "presence-killed";
    let mut b = ProcessNode::start(a, &cluster.prefix).await;
    reverb_pusher_tests::cluster::wait_subscribed(&cluster.prefix, &a.app.id, 3).await;

    let mut watcher_c = c.connect().await;
    join(c, &mut watcher_c, room, json!({"user_id": "watcher"})).await;
    // U3 only on B; U1 on B and on A.
    let mut u3 = b.connect().await;
    join(a, &mut u3, room, json!({"user_id": "u3"})).await;
    let mut u1_b = b.connect().await;
    join(a, &mut u1_b, room, json!({"user_id": "u1"})).await;
    let mut u1_a = a.connect().await;
    join(a, &mut u1_a, room, json!({"user_id": "u1"})).await;
    for _ in 0..2 {
        watcher_c.expect_event("pusher_internal:member_added").await;
    }
    settled(a, room, 4).await;

    let killed = Instant::now();
    b.child.kill().expect("SIGKILL");
    let _ = b.child.wait();
    let removed = watcher_c
        .expect_event_within("pusher_internal:member_removed", Duration::from_secs(15))
        .await;
    assert_eq!(
        data(&removed)["user_id"],
        "u3",
        "only the user whose last socket was on B"
    );
    eprintln!("SIGKILL to member_removed: {:?}", killed.elapsed());
    watcher_c.expect_silence().await;
    u1_a.expect_event("pusher_internal:member_removed").await;
    // The counts forget B's sockets: the watcher and U1's tab on A remain.
    let counted = settled(c, room, 2).await;
    assert_eq!(counted["occupied"], true);
    let users = a.rest().get(&format!("/channels/{room}/users"), &[]).await;
    assert_eq!(
        users.body,
        json!({"users": [{"id": "watcher"}, {"id": "u1"}]})
    );
    drop(b);
    cluster.shutdown().await;
}

/// Webhook events a receiver got, by `name` (and channel/user), across all its requests.
#[derive(Clone, Default)]
struct Hooks(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);

impl Hooks {
    fn start(&self) -> String {
        let events = self.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = actix_web::HttpServer::new(move || {
            let events = events.clone();
            actix_web::App::new().default_service(actix_web::web::to(move |body: String| {
                let events = events.clone();
                async move {
                    let body: Value = serde_json::from_str(&body).unwrap();
                    let mut all = events.0.lock().unwrap();
                    all.extend(body["events"].as_array().unwrap().iter().cloned());
                    actix_web::HttpResponse::Ok().finish()
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_rt::spawn(server);
        url
    }

    fn named(&self, name: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == name)
            .cloned()
            .collect()
    }
}

/// A receiver, and two nodes that both start with an endpoint for it (occupancy and member
/// events, batches of 20 ms, the given vacate delay).
async fn two_nodes_with_an_endpoint(vacate_delay_ms: u64) -> (Hooks, TestCluster) {
    let hooks = Hooks::default();
    let url = hooks.start();
    let mut cluster = TestCluster::start_with(
        1,
        |s| {
            s.webhook_vacate_delay_ms = vacate_delay_ms;
            s.webhook_batch_window_ms = 20;
        },
        |_| {},
    )
    .await;
    let admin = cluster.node(0).admin_logged_in().await;
    let id = cluster.node(0).app.id.clone();
    let created = admin
        .post(
            &format!("/apps/{id}/webhooks"),
            json!({"url": url, "event_types": ["channel_occupied", "channel_vacated", "member_added", "member_removed"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    // The second node starts with the endpoint stored.
    cluster.add_node().await;
    (hooks, cluster)
}

#[actix_rt::test]
async fn occupancy_and_member_webhooks_are_sent_once_for_the_cluster() {
    let (hooks, cluster) = two_nodes_with_an_endpoint(0).await;
    let (a, b) = (cluster.node(0), cluster.node(1));

    // First subscribers on both nodes at once, and one user on both.
    let (mut on_a, mut on_b) = (a.connect().await, b.connect().await);
    let member = json!({"user_id": "both"});
    futures_util::join!(
        join(a, &mut on_a, "presence-hooked", member.clone()),
        join(b, &mut on_b, "presence-hooked", member.clone())
    );
    eventually(SOON, "occupied and added arrive", || async {
        !hooks.named("channel_occupied").is_empty() && !hooks.named("member_added").is_empty()
    })
    .await;
    futures_util::join!(on_a.close(), on_b.close());
    eventually(SOON, "vacated and removed arrive", || async {
        !hooks.named("channel_vacated").is_empty() && !hooks.named("member_removed").is_empty()
    })
    .await;
    // Nothing more comes: each once, although two nodes saw each change.
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    for name in [
        "channel_occupied",
        "member_added",
        "channel_vacated",
        "member_removed",
    ] {
        assert_eq!(
            hooks.named(name).len(),
            1,
            "{name}: {:?}",
            hooks.named(name)
        );
    }
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn a_killed_nodes_channels_and_members_are_reported_to_webhooks_once() {
    // Three nodes, all started with the endpoint stored; B is a process of its own.
    let (hooks, cluster) = two_nodes_with_an_endpoint(0).await;
    let id = cluster.node(0).app.id.clone();
    let a = cluster.node(0);
    let mut b = ProcessNode::start(a, &cluster.prefix).await;
    reverb_pusher_tests::cluster::wait_subscribed(&cluster.prefix, &id, 3).await;

    // A channel and a member that exist only on B.
    let mut plain = b.connect().await;
    plain.subscribe("only-on-b").await;
    let mut member = b.connect().await;
    join(
        a,
        &mut member,
        "presence-only-on-b",
        json!({"user_id": "u3"}),
    )
    .await;
    eventually(SOON, "B's occupied and added arrive", || async {
        hooks.named("channel_occupied").len() == 2 && hooks.named("member_added").len() == 1
    })
    .await;

    b.child.kill().expect("SIGKILL");
    let _ = b.child.wait();
    // One of the survivors reaps B: each vacated channel and the removed member, once.
    eventually(
        Duration::from_secs(15),
        "vacated and removed after the kill",
        || async {
            hooks.named("channel_vacated").len() >= 2 && !hooks.named("member_removed").is_empty()
        },
    )
    .await;
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    let mut vacated: Vec<String> = hooks
        .named("channel_vacated")
        .iter()
        .map(|e| e["channel"].as_str().unwrap_or_default().to_owned())
        .collect();
    vacated.sort();
    assert_eq!(vacated, ["only-on-b", "presence-only-on-b"]);
    let removed = hooks.named("member_removed");
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["user_id"], "u3");
    assert_eq!(removed[0]["channel"], "presence-only-on-b");
    drop(b);
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn a_reload_landing_on_another_node_sends_no_webhooks() {
    let (hooks, cluster) = two_nodes_with_an_endpoint(1000).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let member = json!({"user_id": "reloader"});

    let mut tab = a.connect().await;
    join(a, &mut tab, "presence-reload", member.clone()).await;
    eventually(SOON, "occupied and added arrive", || async {
        hooks.named("channel_occupied").len() == 1 && hooks.named("member_added").len() == 1
    })
    .await;
    // The page reloads and the new socket lands on B: within the delay, nothing is sent.
    tab.close().await;
    let mut reloaded = b.connect().await;
    join(b, &mut reloaded, "presence-reload", member.clone()).await;
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert!(
        hooks.named("channel_vacated").is_empty(),
        "{:?}",
        hooks.named("channel_vacated")
    );
    assert!(
        hooks.named("member_removed").is_empty(),
        "{:?}",
        hooks.named("member_removed")
    );
    assert_eq!(hooks.named("channel_occupied").len(), 1);
    assert_eq!(hooks.named("member_added").len(), 1);
    // Really gone: each once, after the delay.
    reloaded.close().await;
    eventually(SOON, "vacated and removed arrive", || async {
        hooks.named("channel_vacated").len() == 1 && hooks.named("member_removed").len() == 1
    })
    .await;
    cluster.shutdown().await;
}
