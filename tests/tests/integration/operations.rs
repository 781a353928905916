//! Operations: readiness, graceful drain, Prometheus metrics.

use std::time::Duration;

use reverb_pusher_tests::raw::RawSocket;
use reverb_pusher_tests::{Client, TestServer};
use serde_json::json;

async fn get(url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut request = awc::Client::new().get(url);
    if let Some(token) = bearer {
        request = request.insert_header(("authorization", format!("Bearer {token}")));
    }
    let mut response = request.send().await.expect("request");
    let body = response.body().limit(4 << 20).await.expect("body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_rt::test]
async fn health_and_readiness() {
    let server = TestServer::start().await;
    let (status, body) = get(&server.http_url("/up"), None).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = get(&server.http_url("/ready"), None).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"ready": true, "checks": {"draining": {"ok": true}, "database": {"ok": true}}})
    );
}

#[actix_rt::test]
async fn a_client_that_connects_while_the_server_starts_is_served_once_its_app_is_loaded() {
    let server = TestServer::start().await;
    let key = server.app.key.clone();
    // The next process's port is open before it starts: a client's connection and upgrade wait
    // in the backlog while the apps load onto the HTTP workers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let early = actix_rt::spawn(async move {
        let mut socket = RawSocket::connect(addr, &key).await;
        let frame = socket.next_frame().await.expect("a frame");
        serde_json::from_slice::<serde_json::Value>(&frame.payload).expect("JSON")
    });
    let server = tokio::time::timeout(Duration::from_secs(30), server.restart_on(listener))
        .await
        .expect("the server starts while a client waits in the backlog");
    // Nothing was answered before the server had started: the workers accept only once every
    // app is loaded (and this thread, which runs the client, was busy starting it until now).
    assert!(!early.is_finished(), "answered before the apps were loaded");
    let first = early.await.unwrap();
    assert_eq!(first["event"], "pusher:connection_established", "{first}");
    server.connect().await.subscribe("after-start").await;
}

#[actix_rt::test]
async fn a_server_dropped_without_a_shutdown_stops_listening() {
    let server = TestServer::start().await;
    let addr = server.server.addr;
    drop(server);
    // It stops on its own thread: the port is released within moments, not at process exit.
    let mut refused = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused, "{addr} still accepts connections");
}

#[actix_rt::test]
async fn drain_flips_readiness_and_closes_everyone_with_4200() {
    let server = TestServer::start_with(|s| s.drain_window_secs = 2, |_| {}).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut c = server.connect().await;
        c.subscribe("room").await;
        clients.push(c);
    }
    // One that has only just connected and subscribed to nothing goes too.
    clients.push(server.connect().await);
    let ready_url = server.http_url("/ready");
    let ws_url = server.ws_url(&server.app.key);
    let shutdown = actix_rt::spawn(server.shutdown());
    actix_rt::time::sleep(Duration::from_millis(100)).await;

    let (status, body) = get(&ready_url, None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""draining":{"ok":false}"#), "{body}");
    Client::open(&ws_url).await.expect_refusal(4200).await;

    let started = std::time::Instant::now();
    for client in &mut clients {
        client.expect_refusal(4200).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "drained within the window"
    );
    shutdown.await.unwrap();
}

/// The value of one sample, by metric name and labels.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> u64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map_or(0, |s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v as u64,
            _ => u64::MAX,
        })
}

async fn scrape(server: &TestServer, token: Option<&str>) -> prometheus_parse::Scrape {
    let (status, body) = get(&server.http_url("/metrics"), token).await;
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

#[actix_rt::test]
async fn metrics_move_as_clients_connect_subscribe_and_receive() {
    let server = TestServer::start_with(
        |s| s.metrics_token = Some(reverb_pusher::settings::Secret("scrape-me".into())),
        |_| {},
    )
    .await;
    let (status, _) = get(&server.http_url("/metrics"), None).await;
    assert_eq!(status, 401, "the token is required when set");
    let app = server.app.id.as_str();
    let before = scrape(&server, Some("scrape-me")).await;
    assert_eq!(
        sample(&before, "reverb_pusher_connections", &[("app_id", app)]),
        0
    );

    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("news").await;
    b.subscribe("news").await;
    assert_eq!(
        server.rest().trigger("news", "e", "payload").await.status,
        200
    );
    a.expect_event("e").await;
    b.expect_event("e").await;
    Client::open(&server.ws_url("unknown"))
        .await
        .expect_refusal(4001)
        .await;

    let after = scrape(&server, Some("scrape-me")).await;
    assert_eq!(
        sample(&after, "reverb_pusher_connections", &[("app_id", app)]),
        2
    );
    assert_eq!(
        sample(
            &after,
            "reverb_pusher_connections_opened_total",
            &[("app_id", app)]
        ),
        2
    );
    assert_eq!(
        sample(&after, "reverb_pusher_subscriptions", &[("app_id", app)]),
        2
    );
    assert_eq!(
        sample(&after, "reverb_pusher_channels", &[("app_id", app)]),
        1
    );
    assert_eq!(
        sample(
            &after,
            "reverb_pusher_ws_messages_received_total",
            &[("app_id", app), ("kind", "subscribe")]
        ),
        2
    );
    assert_eq!(
        sample(
            &after,
            "reverb_pusher_ws_messages_sent_total",
            &[("app_id", app), ("kind", "event")]
        ),
        2
    );
    assert!(
        sample(
            &after,
            "reverb_pusher_ws_bytes_sent_total",
            &[("app_id", app)]
        ) > 0
    );
    assert_eq!(
        sample(
            &after,
            "reverb_pusher_rejected_total",
            &[("reason", "unknown_app")]
        ),
        1
    );
    assert_eq!(
        sample(
            &after,
            "reverb_pusher_http_requests_total",
            &[("endpoint", "/apps/:app_id/events"), ("status", "200")]
        ),
        1
    );
    assert!(after.samples.iter().any(|s| s.metric
        == "reverb_pusher_http_request_duration_seconds"
        || s.metric
            .starts_with("reverb_pusher_http_request_duration_seconds")));

    a.close().await;
    assert_eq!(
        a.expect_close().await,
        Some(1000),
        "the server answers a close frame"
    );
    for _ in 0..40 {
        let now = scrape(&server, Some("scrape-me")).await;
        if sample(&now, "reverb_pusher_connections", &[("app_id", app)]) == 1 {
            assert_eq!(
                sample(
                    &now,
                    "reverb_pusher_connections_closed_total",
                    &[("app_id", app), ("code", "1000")]
                ),
                1
            );
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the closed connection was not counted");
}

/// REST events for a channel without an actor on this node are dropped before they reach the
/// app's supervisor. What decides it, the supervisor's channel index, must follow a channel as
/// its actor is retired (the `channels` gauge drops) and started again by a new subscription.
#[actix_rt::test]
async fn events_reach_a_channel_that_was_retired_and_subscribed_again() {
    let server = TestServer::start_with(
        |s| s.metrics_token = Some(reverb_pusher::settings::Secret("scrape-me".into())),
        |_| {},
    )
    .await;
    let app = server.app.id.as_str();
    let rest = server.rest();
    let mut client = server.connect().await;

    assert_eq!(rest.trigger("lonely", "unheard", "0").await.status, 200);
    client.subscribe("lonely").await;
    assert_eq!(rest.trigger("lonely", "first", "1").await.status, 200);
    assert_eq!(client.recv().await["event"], "first");

    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": "lonely"}}))
        .await;
    let deadline = std::time::Instant::now() + reverb_pusher_tests::WAIT;
    loop {
        let metrics = scrape(&server, Some("scrape-me")).await;
        if sample(&metrics, "reverb_pusher_channels", &[("app_id", app)]) == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the channel is retired once its last subscriber left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rest.trigger("lonely", "unheard", "2").await.status, 200);

    client.subscribe("lonely").await;
    let response = rest
        .post(
            "/batch_events",
            &json!({"batch": [
                {"channel": "nobody-here", "name": "unheard", "data": "3"},
                {"channel": "lonely", "name": "second", "data": "4"},
            ]}),
        )
        .await;
    assert_eq!((response.status, response.body), (200, json!({})));
    let second = client.recv().await;
    assert_eq!(
        (&second["event"], &second["data"]),
        (&json!("second"), &json!("4"))
    );
    client.expect_silence().await;
}
