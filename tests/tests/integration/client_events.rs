//! Client events: who may send them, where, how often, and who receives them.

use reverb_pusher_tests::{Client, TestServer};
use serde_json::{json, Value};

async fn private(server: &TestServer, client: &mut Client, channel: &str) {
    let auth = server.auth_private(&client.socket_id, channel);
    let ok = client
        .subscribe_with(json!({"channel": channel, "auth": auth}))
        .await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
}

fn client_event(channel: &str, data: Value) -> Value {
    json!({"event": "client-typing", "channel": channel, "data": data})
}

#[actix_rt::test]
async fn delivered_to_others_never_echoed() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    private(&server, &mut a, "private-chat").await;
    private(&server, &mut b, "private-chat").await;
    a.send(client_event("private-chat", json!({"x": 1}))).await;
    let got = b.expect_event("client-typing").await;
    assert_eq!(got["channel"], "private-chat");
    assert_eq!(
        serde_json::from_str::<Value>(got["data"].as_str().unwrap()).unwrap(),
        json!({"x": 1})
    );
    assert!(got.get("user_id").is_none());
    a.expect_silence().await;
}

#[actix_rt::test]
async fn presence_client_events_carry_the_sender_user_id() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    for (client, id) in [(&mut a, "ua"), (&mut b, "ub")] {
        let (auth, cd) =
            server.auth_presence(&client.socket_id, "presence-p", &json!({"user_id": id}));
        client
            .subscribe_with(json!({"channel": "presence-p", "auth": auth, "channel_data": cd}))
            .await;
    }
    a.send(client_event("presence-p", json!("hi"))).await;
    let got = b.expect_event("client-typing").await;
    assert_eq!(got["user_id"], "ua");
    assert_eq!(got["data"], "hi");
}

#[actix_rt::test]
async fn refused_when_disabled_public_or_not_subscribed() {
    let server = TestServer::start_with(|_| {}, |app| app.client_events = false).await;
    let mut a = server.connect().await;
    private(&server, &mut a, "private-x").await;
    a.send(client_event("private-x", json!({}))).await;
    let err = a.expect_event("pusher:error").await;
    assert!(err["data"]["message"]
        .as_str()
        .unwrap()
        .contains("enable this feature"));

    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("public").await;
    a.send(client_event("public", json!({}))).await;
    let err = a.expect_event("pusher:error").await;
    assert!(err["data"]["message"]
        .as_str()
        .unwrap()
        .contains("private and presence"));
    a.send(client_event("private-elsewhere", json!({}))).await;
    let err = a.expect_event("pusher:error").await;
    assert!(err["data"]["message"]
        .as_str()
        .unwrap()
        .contains("not subscribed"));
}

#[actix_rt::test]
async fn rate_limit_answers_4301() {
    let server =
        TestServer::start_with(|_| {}, |app| app.limits.max_client_events_per_second = 5).await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    private(&server, &mut a, "private-r").await;
    private(&server, &mut b, "private-r").await;
    for _ in 0..6 {
        a.send(client_event("private-r", json!({}))).await;
    }
    let err = a.expect_event("pusher:error").await;
    assert_eq!(err["data"]["code"], 4301);
    for _ in 0..5 {
        b.expect_event("client-typing").await;
    }
    b.expect_silence().await;
    // The connection survives the refusal.
    a.send(json!({"event": "pusher:ping", "data": {}})).await;
    a.expect_event("pusher:pong").await;
}

#[actix_rt::test]
async fn oversized_payload_answers_4301() {
    let server =
        TestServer::start_with(|_| {}, |app| app.limits.max_event_payload_bytes = 100).await;
    let mut a = server.connect().await;
    private(&server, &mut a, "private-big").await;
    a.send(client_event("private-big", json!("x".repeat(101))))
        .await;
    assert_eq!(a.expect_event("pusher:error").await["data"]["code"], 4301);
}

#[actix_rt::test]
async fn client_event_sent_right_after_subscription_succeeded_is_accepted() {
    // Regression: the success frame used to reach the client before the session had recorded
    // the subscription, so an immediate client event was refused as "not subscribed".
    let server =
        TestServer::start_with(|_| {}, |app| app.limits.max_client_events_per_second = 0).await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    for i in 0..30 {
        let channel = format!("private-race-{i}");
        private(&server, &mut b, &channel).await;
        private(&server, &mut a, &channel).await;
        a.send(client_event(&channel, json!({"i": i}))).await;
        let got = b.recv().await;
        assert_eq!(
            (got["event"].as_str(), got["channel"].as_str()),
            (Some("client-typing"), Some(channel.as_str())),
            "{got}"
        );
    }
}
