//! Connecting: handshake, liveness, refusals with the right Pusher codes.

use reverb_pusher_tests::{Client, Received, TestServer, WAIT};
use serde_json::json;

#[actix_rt::test]
async fn handshake_announces_socket_id_and_activity_timeout() {
    let server = TestServer::start().await;
    let mut client = Client::open(&server.ws_url(&server.app.key)).await;
    let data = client.established().await;
    let id = data["socket_id"].as_str().unwrap();
    let (a, b) = id.split_once('.').unwrap();
    assert!(a.chars().all(|c| c.is_ascii_digit()) && b.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(data["activity_timeout"], 120);
}

#[actix_rt::test]
async fn unknown_query_params_and_missing_protocol_are_accepted() {
    let server = TestServer::start().await;
    let url = format!("ws://{}/app/{}?foo=bar", server.server.addr, server.app.key);
    Client::open(&url).await.established().await;
}

#[actix_rt::test]
async fn ping_gets_pong() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(
        client.recv().await,
        json!({"event": "pusher:pong", "data": "{}"})
    );
}

#[actix_rt::test]
async fn protocol_level_ping_gets_pong() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.ping_protocol(b"hi").await;
}

#[actix_rt::test]
async fn unknown_app_key_is_refused_with_4001() {
    let server = TestServer::start().await;
    let mut client = Client::open(&server.ws_url("nope")).await;
    client.expect_refusal(4001).await;
}

#[actix_rt::test]
async fn disabled_app_is_refused_with_4003() {
    let server = TestServer::start_with(|_| {}, |app| app.enabled = false).await;
    let mut client = Client::open(&server.ws_url(&server.app.key)).await;
    client.expect_refusal(4003).await;
}

#[actix_rt::test]
async fn app_over_its_connection_limit_is_refused_with_4004() {
    let server = TestServer::start_with(|_| {}, |app| app.limits.max_connections = 1).await;
    let _first = server.connect().await;
    let mut second = Client::open(&server.ws_url(&server.app.key)).await;
    second.expect_refusal(4004).await;
}

#[actix_rt::test]
async fn node_over_capacity_is_refused_with_4100() {
    let server = TestServer::start_with(|s| s.max_connections = 1, |_| {}).await;
    let _first = server.connect().await;
    let mut second = Client::open(&server.ws_url(&server.app.key)).await;
    second.expect_refusal(4100).await;
}

#[actix_rt::test]
async fn old_or_malformed_protocol_versions_are_refused_with_4007() {
    let server = TestServer::start().await;
    for protocol in ["3", "abc", "8"] {
        let url = format!(
            "ws://{}/app/{}?protocol={protocol}",
            server.server.addr, server.app.key
        );
        Client::open(&url).await.expect_refusal(4007).await;
    }
    for protocol in ["4", "7"] {
        let url = format!(
            "ws://{}/app/{}?protocol={protocol}",
            server.server.addr, server.app.key
        );
        Client::open(&url).await.established().await;
    }
}

#[actix_rt::test]
async fn origins_are_checked_per_app() {
    let server = TestServer::start_with(
        |_| {},
        |app| {
            app.allowed_origins = vec!["https://good.test".into(), "*.example.com".into()];
        },
    )
    .await;
    let url = server.ws_url(&server.app.key);
    let request = awc::Client::new().ws(&url).origin("https://evil.test");
    Client::open_with(request).await.expect_refusal(4009).await;
    for origin in ["https://good.test", "https://app.example.com"] {
        let request = awc::Client::new().ws(&url).origin(origin);
        Client::open_with(request).await.established().await;
    }
}

#[actix_rt::test]
async fn malformed_json_and_unknown_events_do_not_kill_the_connection() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_text("{not json").await;
    let error = client.expect_event("pusher:error").await;
    assert!(error["data"]["code"].is_null());
    client.send(json!({"event": "hello"})).await;
    client.expect_event("pusher:error").await;
    client
        .send(json!({"event": "pusher:something_new", "data": {}}))
        .await;
    client
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(client.recv().await["event"], "pusher:pong");
}

#[actix_rt::test]
async fn subscribe_data_sent_as_a_string_is_understood() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client
        .send(json!({"event": "pusher:subscribe", "data": "{\"channel\":\"s\"}"}))
        .await;
    assert_eq!(
        client.recv().await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

#[actix_rt::test]
async fn silent_client_is_pinged_then_closed_with_4201() {
    let server = TestServer::start_with(
        |s| {
            s.activity_timeout_secs = 1;
            s.pong_timeout_secs = 1;
        },
        |_| {},
    )
    .await;
    let mut client = server.connect().await;
    let ping = client.recv().await;
    assert_eq!(ping["event"], "pusher:ping");
    client.expect_refusal(4201).await;
}

#[actix_rt::test]
async fn client_answering_pings_stays_connected() {
    let server = TestServer::start_with(
        |s| {
            s.activity_timeout_secs = 1;
            s.pong_timeout_secs = 1;
        },
        |_| {},
    )
    .await;
    let mut client = server.connect().await;
    for _ in 0..3 {
        assert_eq!(client.recv().await["event"], "pusher:ping");
        client
            .send(json!({"event": "pusher:pong", "data": {}}))
            .await;
    }
    client
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(
        client.expect_event("pusher:pong").await["event"],
        "pusher:pong"
    );
}

#[actix_rt::test]
async fn oversized_frame_closes_with_1009() {
    let server = TestServer::start_with(|s| s.max_frame_bytes = 2048, |_| {}).await;
    let mut client = server.connect().await;
    let big = json!({"event": "client-x", "channel": "private-a", "data": "x".repeat(4096)});
    client.send(big).await;
    assert_eq!(client.expect_close().await, Some(1009));
}

#[actix_rt::test]
async fn shutdown_tells_clients_to_reconnect_with_4200() {
    let server = TestServer::start_with(|s| s.drain_window_secs = 1, |_| {}).await;
    let mut client = server.connect().await;
    let shutdown = actix_rt::spawn(server.shutdown());
    client.expect_refusal(4200).await;
    shutdown.await.unwrap();
}

#[actix_rt::test]
async fn disabling_an_app_closes_its_clients_only() {
    let server = TestServer::start().await;
    let other = server.server.create_app("other").await.unwrap();
    let mut mine = server.connect().await;
    let mut theirs = Client::open(&server.ws_url(&other.key)).await;
    theirs.established().await;
    let mut disabled = server.app.clone();
    disabled.enabled = false;
    server.server.update_app(disabled).await.unwrap();
    mine.expect_refusal(4003).await;
    theirs
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(theirs.recv().await["event"], "pusher:pong");
    Client::open(&server.ws_url(&server.app.key))
        .await
        .expect_refusal(4003)
        .await;
}

#[actix_rt::test]
async fn a_closed_connection_frees_its_place() {
    let server = TestServer::start_with(|_| {}, |app| app.limits.max_connections = 1).await;
    let mut client = server.connect().await;
    client.close().await;
    assert!(matches!(
        client.next_within(WAIT).await,
        Some(Received::Closed(_))
    ));
    // The disconnect reaches the supervisor asynchronously.
    server.connect_within(&server.app.key, WAIT).await;
}

// A client that has not subscribed yet may not be known to its app's supervisor: it is told
// with the client's first subscribe, or after a second (`Session::announce`). These hold all
// the same.

#[actix_rt::test]
async fn connections_that_closed_before_subscribing_leave_no_count_behind() {
    let server = TestServer::start().await;
    for _ in 0..3 {
        let mut quiet = server.connect().await;
        quiet.close().await;
        assert!(matches!(
            quiet.next_within(WAIT).await,
            Some(Received::Closed(_))
        ));
    }
    let mut capped = server.app.clone();
    capped.limits.max_connections = 1;
    server.server.update_app(capped).await.unwrap();
    // The three are gone, so one place is free (their stops run asynchronously).
    server.connect_within(&server.app.key, WAIT).await;
}

#[actix_rt::test]
async fn a_disable_undone_at_once_still_closes_clients_that_have_not_subscribed() {
    let server = TestServer::start().await;
    let mut quiet = server.connect().await;
    let mut disabled = server.app.clone();
    disabled.enabled = false;
    let disabled = server.server.update_app(disabled).await.unwrap();
    let mut enabled = disabled.clone();
    enabled.enabled = true;
    server.server.update_app(enabled).await.unwrap();
    quiet.expect_refusal(4003).await;
    // New connections are welcome again.
    server.connect().await;
}

#[actix_rt::test]
async fn a_cap_set_after_clients_connected_does_not_close_them_when_they_subscribe() {
    let server = TestServer::start().await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    let mut capped = server.app.clone();
    capped.limits.max_connections = 1;
    server.server.update_app(capped).await.unwrap();
    // Both were admitted before the cap: it applies to new connections only.
    for client in [&mut first, &mut second] {
        let answer = client.subscribe("news").await;
        assert_eq!(
            answer["event"], "pusher_internal:subscription_succeeded",
            "{answer}"
        );
    }
    Client::open(&server.ws_url(&server.app.key))
        .await
        .expect_refusal(4004)
        .await;
}
