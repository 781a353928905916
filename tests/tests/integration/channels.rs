//! Subscriptions: every channel type, name rules, duplicates, cache channels and counts.

use std::time::Duration;

use reverb_pusher_tests::{data, TestServer};
use serde_json::json;

#[actix_rt::test]
async fn public_subscription_succeeds_with_empty_data() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let frame = client.subscribe("my-channel").await;
    assert_eq!(
        frame,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "my-channel", "data": "{}"})
    );
}

#[actix_rt::test]
async fn private_subscription_needs_a_valid_signature() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let auth = server.auth_private(&client.socket_id, "private-a");
    let ok = client
        .subscribe_with(json!({"channel": "private-a", "auth": auth}))
        .await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");

    let wrong = server.auth_private(&client.socket_id, "private-other");
    let refused = client
        .subscribe_with(json!({"channel": "private-b", "auth": wrong}))
        .await;
    assert_eq!(refused["event"], "pusher:subscription_error");
    assert_eq!(refused["channel"], "private-b");
    assert_eq!(refused["data"]["type"], "AuthError");
    assert_eq!(refused["data"]["status"], 401);
    assert!(refused["data"]["error"]
        .as_str()
        .unwrap()
        .starts_with("Invalid signature"));

    let missing = client.subscribe_with(json!({"channel": "private-c"})).await;
    assert_eq!(missing["event"], "pusher:subscription_error");

    let signature = auth.split_once(':').unwrap().1;
    let wrong_key = client
        .subscribe_with(json!({"channel": "private-d", "auth": format!("otherkey:{signature}")}))
        .await;
    assert!(wrong_key["data"]["error"]
        .as_str()
        .unwrap()
        .contains("Invalid key"));
}

#[actix_rt::test]
async fn cache_variants_of_secure_channels_still_need_signatures() {
    // Regression: classifying "cache" before the security prefix skips authorisation.
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    for channel in [
        "private-cache-a",
        "presence-cache-a",
        "private-encrypted-cache-a",
    ] {
        let frame = client
            .subscribe_with(json!({"channel": channel, "auth": format!("{}:00", server.app.key), "channel_data": "{\"user_id\":\"1\"}"}))
            .await;
        assert_eq!(frame["event"], "pusher:subscription_error", "{channel}");
    }
    let auth = server.auth_private(&client.socket_id, "private-cache-a");
    let ok = client
        .subscribe_with(json!({"channel": "private-cache-a", "auth": auth}))
        .await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(client.recv().await["event"], "pusher:cache_miss");
}

#[actix_rt::test]
async fn encrypted_channels_relay_ciphertext_untouched() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let channel = "private-encrypted-secret";
    let auth = server.auth_private(&client.socket_id, channel);
    assert_eq!(
        client
            .subscribe_with(json!({"channel": channel, "auth": auth}))
            .await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let payload = r#"{"nonce":"bm9uY2Vub25jZW5vbmNlbm9uY2Vub25j","ciphertext":"Y2lwaGVy"}"#;
    assert_eq!(
        server
            .rest()
            .trigger(channel, "secret", payload)
            .await
            .status,
        200
    );
    let event = client.expect_event("secret").await;
    assert_eq!(event["data"], payload);
}

#[actix_rt::test]
async fn channel_names_are_validated() {
    let server =
        TestServer::start_with(|_| {}, |app| app.limits.max_channel_name_length = 20).await;
    let mut client = server.connect().await;
    for bad in ["has space", "#server-to-other", "", &"a".repeat(21)] {
        let frame = client.subscribe(bad).await;
        assert_eq!(frame["event"], "pusher:subscription_error", "{bad:?}");
        assert_eq!(frame["data"]["type"], "InvalidChannel");
    }
    assert_eq!(
        client.subscribe("ok-_=@,.;").await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

#[actix_rt::test]
async fn duplicate_subscribe_and_unknown_unsubscribe_are_errors() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe("dup").await;
    let frame = client.subscribe("dup").await;
    assert_eq!(frame["event"], "pusher:error");
    assert_eq!(
        frame["data"]["message"],
        "Existing subscription to channel dup"
    );
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": "never"}}))
        .await;
    let frame = client.recv().await;
    assert_eq!(frame["event"], "pusher:error");
    assert!(frame["data"]["message"]
        .as_str()
        .unwrap()
        .starts_with("No current subscription"));
}

#[actix_rt::test]
async fn unsubscribe_stops_delivery_and_allows_resubscribe() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe("news").await;
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": "news"}}))
        .await;
    // The unsubscribe is processed before this ping is answered.
    client
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    client.expect_event("pusher:pong").await;
    let occupied = server.rest().get("/channels/news", &[]).await;
    assert_eq!(occupied.body["occupied"], false);
    server.rest().trigger("news", "e", "d").await;
    client.expect_silence().await;
    assert_eq!(
        client.subscribe("news").await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

#[actix_rt::test]
async fn cache_channel_replays_last_event_or_reports_a_miss() {
    let server = TestServer::start_with(|_| {}, |app| app.limits.cache_ttl_secs = 1).await;
    let mut first = server.connect().await;
    first.subscribe("cache-prices").await;
    assert_eq!(
        first.recv().await,
        json!({"event": "pusher:cache_miss", "channel": "cache-prices"})
    );

    // Stored even when nobody is subscribed to the channel yet.
    server.rest().trigger("cache-empty", "price", "1").await;
    server.rest().trigger("cache-prices", "price", "42").await;
    assert_eq!(first.expect_event("price").await["data"], "42");

    let mut second = server.connect().await;
    second.subscribe("cache-prices").await;
    let replay = second.recv().await;
    assert_eq!(
        replay,
        json!({"event": "price", "channel": "cache-prices", "data": "42"})
    );
    second.subscribe("cache-empty").await;
    assert_eq!(second.recv().await["data"], "1");

    let info = server
        .rest()
        .get("/channels/cache-prices", &[("info", "cache")])
        .await;
    assert_eq!(info.body["cache"]["data"], "42");

    actix_rt::time::sleep(Duration::from_millis(1300)).await;
    let mut third = server.connect().await;
    third.subscribe("cache-prices").await;
    assert_eq!(third.recv().await["event"], "pusher:cache_miss");
}

#[actix_rt::test]
async fn subscription_count_is_broadcast_when_enabled() {
    let server = TestServer::start_with(|_| {}, |app| app.subscription_count_events = true).await;
    let mut a = server.connect().await;
    a.subscribe("counted").await;
    let count = a.expect_event("pusher_internal:subscription_count").await;
    assert_eq!(data(&count), json!({"subscription_count": 1}));
    let mut b = server.connect().await;
    b.subscribe("counted").await;
    assert_eq!(
        data(&a.expect_event("pusher_internal:subscription_count").await)["subscription_count"],
        2
    );
    drop(b);
    assert_eq!(
        data(&a.expect_event("pusher_internal:subscription_count").await)["subscription_count"],
        1
    );
}

#[actix_rt::test]
async fn subscription_count_is_silent_when_disabled() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("quiet").await;
    a.expect_silence().await;
}
