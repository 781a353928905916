//! Statistics: known traffic in, exact counts and bytes out of the admin API after the sampler
//! has written them; the exports agree with the API; rollups and pruning on this backend; a
//! database outage loses no sample; a cluster's peaks are its own.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use reverb_pusher::db::stats::StatKey;
use reverb_pusher_tests::cluster::TestCluster;
use reverb_pusher_tests::{Admin, Client, Proxy, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD, QUIET};
use serde_json::{json, Value};
use shared::stats::{Counts, HOUR, MINUTE};

/// Statistics written every second, under a known node name.
fn fast_stats(s: &mut reverb_pusher::settings::Settings) {
    s.stats_sample_secs = 1;
    s.stats_node = "test-node".into();
}

/// Reads frames until none arrives for a moment (so every byte sent is counted).
async fn drain(client: &mut Client) {
    while client.next_within(QUIET).await.is_some() {}
}

/// Polls `path` until `done` holds for its body (or fails after 15 s with the last body).
async fn wait_for(admin: &Admin, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = admin.get(path).await;
        if r.status == 200 && done(&r.body) {
            return r.body;
        }
        assert!(Instant::now() < deadline, "{path}: {} {}", r.status, r.body);
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn private(server: &TestServer, client: &mut Client, channel: &str) {
    let auth = server.auth_private(&client.socket_id, channel);
    let ok = client
        .subscribe_with(json!({"channel": channel, "auth": auth}))
        .await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
}

#[actix_rt::test]
async fn known_traffic_reads_back_as_exact_counts_and_bytes() {
    let server = TestServer::start_with(fast_stats, |_| {}).await;
    let admin = server.admin_logged_in().await;
    let rest = server.rest();
    // The sampler has seen the app (its recent-errors list starts then).
    wait_for(
        &admin,
        &format!("/apps/{}/stats/summary?range=1h", server.app.id),
        |b| b["coverage_pct"].as_f64() > Some(0.0),
    )
    .await;

    // N = 3 connections on one private channel.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = server.connect().await;
        private(&server, &mut c, "private-room").await;
        clients.push(c);
    }
    // M = 4 client events from the first: each goes to the 2 others.
    for i in 0..4 {
        clients[0]
            .send(json!({"event": "client-move", "channel": "private-room", "data": {"i": i}}))
            .await;
    }
    // K = 5 REST events of known size: each goes to all 3.
    let mut http_in = 0;
    for i in 0..5 {
        let body =
            json!({"name": "tick", "channel": "private-room", "data": format!("payload-{i:04}")});
        http_in += i64::try_from(body.to_string().len()).unwrap();
        let r = rest.post("/events", &body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // One request with a bad signature: a 401 that counts as a request and a 4xx.
    let path = format!("/apps/{}/events", server.app.id);
    let mut bad = awc::Client::new()
        .post(server.http_url(&format!(
            "{path}?auth_key=x&auth_timestamp=1&auth_version=1.0&auth_signature=00"
        )))
        .insert_header(("content-type", "application/json"))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    let bad_body = i64::try_from(bad.body().await.unwrap().len()).unwrap();
    http_in += 2;
    // One refused client event (on a public channel): a pusher:error.
    clients[1].subscribe("public").await;
    clients[1]
        .send(json!({"event": "client-x", "channel": "public", "data": {}}))
        .await;
    clients[1].expect_event("pusher:error").await;
    for c in &mut clients {
        drain(c).await;
    }
    let ws_in: u64 = clients.iter().map(|c| c.text_bytes_sent).sum();
    let ws_out: u64 = clients.iter().map(|c| c.text_bytes_received).sum();

    let summary = wait_for(
        &admin,
        &format!("/apps/{}/stats/summary?range=1h", server.app.id),
        |b| {
            b["totals"]["api_requests"] == 6
                && b["totals"]["ws_bytes_out"] == ws_out
                && b["totals"]["errors_sent"] == 1
        },
    )
    .await;
    let t = &summary["totals"];
    let expect = [
        ("connections_opened", 3),
        ("connections_peak", 3),
        ("subscriptions", 4),
        ("messages_in_client", 4),
        ("messages_in_api", 5),
        ("messages_out", 8 + 15),
        ("messages_out_client", 8),
        ("messages_out_presence", 0),
        ("api_requests", 6),
        ("api_errors_4xx", 1),
        ("api_errors_5xx", 0),
        ("http_bytes_in", http_in),
        ("http_bytes_out", 5 * 2 + bad_body),
        ("ws_bytes_in", i64::try_from(ws_in).unwrap()),
        ("ws_bytes_out", i64::try_from(ws_out).unwrap()),
        ("errors_sent", 1),
        ("connections_closed", 0),
    ];
    for (field, value) in expect {
        assert_eq!(t[field], value, "{field}: {summary}");
    }
    // Messages as Pusher counts them, and exactly what the quota counted.
    assert_eq!(summary["pusher_messages"], 5 + 4 + 23);
    let app = admin.get(&format!("/apps/{}", server.app.id)).await;
    assert_eq!(app.body["usage"]["messages_today"], 32, "{}", app.body);
    // The whole server's row holds the same (one app).
    let whole = wait_for(&admin, "/stats/summary?range=1h", |b| {
        b["totals"]["messages_out"] == 23
    })
    .await;
    assert_eq!(whole["totals"]["ws_bytes_out"], t["ws_bytes_out"]);
    assert_eq!(whole["totals"]["connections_peak"], 3);
    // The recent errors name the refusal.
    let errors = admin
        .get(&format!("/apps/{}/stats/errors", server.app.id))
        .await;
    assert_eq!(errors.body[0]["kind"], "error", "{}", errors.body);
    assert!(errors.body[0]["message"]
        .as_str()
        .unwrap()
        .contains("only be sent on private and presence channels"));

    // Closes are counted by class: a normal close, and the 4200s of a shutdown's drain.
    clients[2].close().await;
    wait_for(
        &admin,
        &format!("/apps/{}/stats/summary?range=1h", server.app.id),
        |b| b["totals"]["connections_closed"] == 1 && b["totals"]["closed_reconnect"] == 0,
    )
    .await;
    server.shutdown().await;
}

/// In a cluster a peak is the cluster's: the most connections (or occupied channels) at one
/// moment anywhere, not the sum of each node's own highest, which may have come at different
/// times.
#[actix_rt::test]
async fn a_clusters_peaks_are_its_own_not_the_sum_of_its_nodes() {
    let cluster = TestCluster::start_with(2, |s| s.stats_sample_secs = 1, |_| {}).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let admin = a.admin_logged_in().await;
    // First A alone: 3 connections, each on a channel of its own; then all gone.
    let mut first = Vec::new();
    for i in 0..3 {
        let mut client = a.connect().await;
        client.subscribe(&format!("first-{i}")).await;
        first.push(client);
    }
    drop(first);
    wait_for(&admin, &format!("/apps/{}", a.app.id), |app| {
        app["connections"] == 0
    })
    .await;
    // Then both at once: 2 connections on A and 4 on B, on 4 channels in all.
    let mut second = Vec::new();
    for (node, n) in [(a, 2), (b, 4)] {
        for i in 0..n {
            let mut client = node.connect().await;
            client.subscribe(&format!("second-{i}")).await;
            second.push(client);
        }
    }
    // The nodes' own peaks would add up to 3 + 4 connections and 3 + 4 channels.
    for path in [
        format!("/apps/{}/stats/summary?range=1h", a.app.id),
        "/stats/summary?range=1h".to_owned(),
    ] {
        let summary = wait_for(&admin, &path, |s| {
            let t = &s["totals"];
            t["connections_opened"] == 9
                && t["connections_peak"].as_i64() >= Some(6)
                && t["channels_peak"].as_i64() >= Some(4)
        })
        .await;
        assert_eq!(
            summary["totals"]["connections_peak"], 6,
            "{path}: {summary}"
        );
        assert_eq!(summary["totals"]["channels_peak"], 4, "{path}: {summary}");
        // Between the two, nothing was open anywhere.
        assert_eq!(summary["totals"]["connections_min"], 0, "{path}: {summary}");
    }
    drop(second);
    cluster.shutdown().await;
}

/// In a cluster the dashboard's live numbers are the cluster's on every node: connections add
/// up, a channel open on two nodes is one channel.
#[actix_rt::test]
async fn a_clusters_live_numbers_are_the_same_on_every_node() {
    let cluster = TestCluster::start_with(2, |s| s.stats_sample_secs = 1, |_| {}).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut clients = Vec::new();
    for (node, n) in [(a, 1), (b, 2)] {
        for _ in 0..n {
            let mut client = node.connect().await;
            client.subscribe("together").await;
            clients.push(client);
        }
    }
    let app = format!("/stats/live?app={}", a.app.id);
    a.admin_logged_in().await;
    for node in [a, b] {
        let mut admin = node.admin();
        admin.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        for path in ["/stats/live", app.as_str()] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let live = admin.first_event(path).await;
                if live["connections"] == 3 && live["channels"] == 1 {
                    break;
                }
                assert!(Instant::now() < deadline, "{path}: {live}");
                actix_rt::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    drop(clients);
    cluster.shutdown().await;
}

/// In a cluster an app's recent errors are every node's, read from any node, each naming the
/// node whose client it was.
#[actix_rt::test]
async fn a_clusters_recent_errors_are_listed_on_every_node() {
    let cluster = TestCluster::start_with(2, |s| s.stats_sample_secs = 1, |_| {}).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    // A client event on a public channel, refused on B.
    let mut client = b.connect().await;
    client.subscribe("public").await;
    client
        .send(json!({"event": "client-x", "channel": "public", "data": {}}))
        .await;
    client.expect_event("pusher:error").await;
    let b_node = b.server.cluster.as_ref().expect("cluster mode").node_id();
    let errors = wait_for(
        &a.admin_logged_in().await,
        &format!("/apps/{}/stats/errors", a.app.id),
        |list| list.as_array().is_some_and(|l| !l.is_empty()),
    )
    .await;
    assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
    assert_eq!(errors[0]["kind"], "error", "{errors}");
    assert_eq!(errors[0]["node"], b_node, "{errors}");
    assert!(errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("only be sent on private and presence channels"));
    drop(client);
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn exports_say_the_same_as_the_api() {
    let server = TestServer::start_with(fast_stats, |_| {}).await;
    let admin = server.admin_logged_in().await;
    let mut c = server.connect().await;
    c.subscribe("news").await;
    for i in 0..7 {
        assert_eq!(
            server
                .rest()
                .trigger("news", "e", &i.to_string())
                .await
                .status,
            200
        );
    }
    let app = &server.app.id;
    let json = wait_for(&admin, &format!("/apps/{app}/stats/series?range=1h"), |b| {
        b["points"].as_array().is_some_and(|p| {
            p.iter()
                .map(|p| p["messages_out"].as_i64().unwrap())
                .sum::<i64>()
                == 7
        })
    })
    .await;
    assert_eq!(json["step_seconds"], 60);
    assert_eq!(
        json["points"].as_array().unwrap().len(),
        61,
        "an hour and the running minute"
    );

    let csv = admin
        .get(&format!("/apps/{app}/stats/series?range=1h&format=csv"))
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(csv
        .headers
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("attachment"));
    let mut lines = csv.text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<HashMap<&str, &str>> = lines
        .map(|l| header.iter().copied().zip(l.split(',')).collect())
        .collect();
    assert_eq!(rows.len(), 61);
    for (row, point) in rows.iter().zip(json["points"].as_array().unwrap()) {
        assert_eq!(row["t"], point["t"].to_string());
        for field in Counts::FIELDS {
            assert_eq!(row[field], point[field].to_string(), "{field}");
        }
    }

    let month = {
        let summary = admin
            .get(&format!("/apps/{app}/stats/summary?range=1h"))
            .await;
        let to = summary.body["to"].as_i64().unwrap() - 1;
        reverb_pusher::stats::query::iso(to)[..7].to_owned()
    };
    let report = admin.get(&format!("/apps/{app}/stats/usage/{month}")).await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert_eq!(report.body["schema"], "reverb-pusher/usage/1");
    assert_eq!(report.body["complete"], false);
    let row = &report.body["apps"][0];
    assert_eq!(
        (
            row["app_id"].as_str(),
            row["messages_out"].as_i64(),
            row["messages_in_api"].as_i64()
        ),
        (Some(app.as_str()), Some(7), Some(7))
    );
    assert_eq!(row["pusher_messages"], 14);
    let all = admin.get(&format!("/stats/usage/{month}?format=csv")).await;
    let mut lines = all.text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let line: HashMap<&str, &str> = header
        .iter()
        .copied()
        .zip(lines.next().unwrap().split(','))
        .collect();
    assert_eq!(line["app_id"], app);
    assert_eq!(line["pusher_messages"], "14");
    assert_eq!(line["month"], month);

    // The per-app table, and bad requests in the API's error shape.
    let table = admin.get("/stats/apps?range=24h").await;
    assert_eq!(
        table.body["apps"][0]["totals"]["messages_out"], 7,
        "{}",
        table.body
    );
    assert_eq!(table.body["apps"][0]["connections_now"], 1);
    for bad in [
        "/stats/series?range=2w",
        "/stats/series?from=10&to=5",
        "/stats/usage/2026-13",
        "/stats/series?format=xml",
    ] {
        let r = admin.get(bad).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (422, Some("validation_failed")),
            "{bad}"
        );
    }
    assert_eq!(admin.get("/apps/nope/stats/series").await.status, 404);
    assert_eq!(server.admin().get("/stats/series").await.status, 401);
    let health = admin.get("/stats/health").await;
    assert_eq!(health.body["database"], "ok");
    assert_eq!(health.body["redis"], "not configured");
    assert_eq!(health.body["connections"], 1);
    assert_eq!(health.body["node"], "test-node");
    assert!(health.body["rss_bytes"].as_i64().unwrap() > 0);
    drop(c);
}

/// Hour rows rolled up from minute rows on this backend serve the longer ranges, and outlive
/// the minute rows they came from.
#[actix_rt::test]
async fn rollups_serve_long_ranges_after_the_minutes_are_pruned() {
    let server = TestServer::start_with(fast_stats, |_| {}).await;
    let admin = server.admin_logged_in().await;
    let db = server.server.db.clone();
    let app = server.app.id.clone();
    let now = reverb_pusher::db::now_unix();
    let hour = now - now.rem_euclid(HOUR) - 3 * 24 * HOUR;
    let mut rows = std::collections::BTreeMap::new();
    for m in 0..60 {
        for (node, peak) in [("n1", m), ("n2", 10)] {
            rows.insert(
                StatKey {
                    app_id: app.clone(),
                    resolution: MINUTE,
                    bucket_start: hour + m * MINUTE,
                    node: node.into(),
                },
                Counts {
                    samples: 60,
                    connections_peak: peak,
                    connections_min: peak,
                    connections_sum: 60 * peak,
                    messages_out: 2,
                    ..Counts::default()
                },
            );
        }
    }
    let written = rows.clone();
    reverb_pusher::blocking(&db, move |db| db.add_stats(&written))
        .await
        .unwrap();
    let rolled = reverb_pusher::blocking(&db, move |db| db.roll_up_stats(MINUTE, HOUR, hour))
        .await
        .unwrap();
    assert_eq!(rolled, 2, "one hour row per node");
    // Minutes older than two days go; the hour rows stay.
    let pruned =
        reverb_pusher::blocking(&db, move |db| db.prune_stats(MINUTE, now - 2 * 24 * HOUR))
            .await
            .unwrap();
    assert!(pruned >= 120, "{pruned}");
    let series = admin
        .get(&format!("/apps/{app}/stats/series?range=7d"))
        .await;
    assert_eq!(series.body["step_seconds"], 3600);
    let point = series.body["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["t"] == hour)
        .expect("the hour is in the range")
        .clone();
    // Counters add over minutes and nodes; the peak is n1's highest (59) plus n2's (10).
    assert_eq!(point["messages_out"], 240, "{point}");
    assert_eq!(point["connections_peak"], 69);
    assert_eq!(point["samples"], 3600);
    let minute_series = admin
        .get(&format!(
            "/apps/{app}/stats/series?from={hour}&to={}&step=60",
            hour + HOUR
        ))
        .await;
    let minute_total: i64 = minute_series.body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["messages_out"].as_i64().unwrap())
        .sum();
    assert_eq!(minute_total, 0, "the minute rows are gone");
}

/// The database server behind a URL (host and port).
fn database_server(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let host_port = rest
        .rsplit_once('@')
        .map_or(rest, |(_, h)| h)
        .split('/')
        .next()
        .unwrap();
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else if url.starts_with("postgres") {
        format!("{host_port}:5432")
    } else {
        format!("{host_port}:3306")
    };
    with_port.to_socket_addrs().unwrap().next().unwrap()
}

#[actix_rt::test]
async fn samples_wait_in_memory_while_the_database_is_down() {
    let backend = reverb_pusher_tests::database::backend();
    let mut proxy = None;
    let server = if backend == "sqlite" {
        TestServer::start_with(
            |s| {
                fast_stats(s);
                s.database_timeout_secs = 1;
            },
            |_| {},
        )
        .await
    } else {
        let target = database_server(&std::env::var("TEST_DATABASE_URL").unwrap());
        let p = Proxy::start(target);
        let addr = p.addr;
        proxy = Some(p);
        TestServer::start_with(
            move |s| {
                fast_stats(s);
                s.database_timeout_secs = 1;
                let (scheme, rest) = s.database_url.split_once("://").unwrap();
                let (auth, tail) = rest.rsplit_once('@').map_or(("", rest), |(a, t)| (a, t));
                let path = tail.split_once('/').unwrap().1;
                let auth = if auth.is_empty() {
                    String::new()
                } else {
                    format!("{auth}@")
                };
                s.database_url = format!("{scheme}://{auth}{addr}/{path}");
            },
            |_| {},
        )
        .await
    };
    let admin = server.admin_logged_in().await;
    let mut c = server.connect().await;
    c.subscribe("ops").await;

    let lock = if backend == "sqlite" {
        let path = server.database_url.strip_prefix("sqlite://").unwrap();
        let mut conn = reverb_pusher_tests::database::sqlite_connection(path);
        conn.batch_execute("BEGIN EXCLUSIVE").unwrap();
        Some(conn)
    } else {
        proxy.as_ref().unwrap().cut();
        None
    };
    for i in 0..9 {
        assert_eq!(
            server
                .rest()
                .trigger("ops", "during", &i.to_string())
                .await
                .status,
            200
        );
    }
    // The sampler keeps going; the rows wait (counted also while a write attempt holds them,
    // up to the database timeout).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (pending, dropped) = server.server.stats.pending();
        assert_eq!(dropped, 0);
        if pending > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing pending");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    // Let a few writes fail.
    actix_rt::time::sleep(Duration::from_millis(2500)).await;
    if let Some(mut conn) = lock {
        conn.batch_execute("ROLLBACK").unwrap();
    } else {
        proxy.as_ref().unwrap().restore();
    }
    let summary = wait_for(
        &admin,
        &format!("/apps/{}/stats/summary?range=1h", server.app.id),
        |b| b["totals"]["messages_in_api"] == 9,
    )
    .await;
    assert_eq!(summary["totals"]["messages_out"], 9);
    assert_eq!(server.server.stats.pending().1, 0);
}
