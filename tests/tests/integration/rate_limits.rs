//! Per-app rate limits and the message quota: under a limit nothing is refused, over it the
//! refusal is the protocol's own (close 4100, `pusher:error` 4301, `subscription_error` 429,
//! HTTP 429 with `Retry-After`), another app at the same moment is untouched, and a change in
//! the admin API applies to the next request.
//!
//! A rate of n per second admits a burst of n at once, then one every 1/n s; the tests work
//! inside the burst (a few milliseconds), far from the next token.

use reverb_pusher::apps::AppConfig;
use reverb_pusher_tests::{Admin, Client, Rest, TestServer};
use serde_json::{json, Value};

/// A second app on the same server, with default limits.
async fn other_app(server: &TestServer) -> AppConfig {
    server
        .server
        .add_app(AppConfig::generate("bystander"))
        .await
        .expect("second app")
}

fn rest_for(server: &TestServer, app: &AppConfig) -> Rest {
    Rest {
        base: server.http_url(""),
        app_id: app.id.clone(),
        key: app.key.clone(),
        secret: app.secret.clone(),
    }
}

async fn connect_to(server: &TestServer, app: &AppConfig) -> Client {
    let mut client = Client::open(&server.ws_url(&app.key)).await;
    client.established().await;
    client
}

async fn set_limits(admin: &Admin, server: &TestServer, limits: Value) {
    let response = admin
        .patch(
            &format!("/apps/{}", server.app.id),
            json!({ "limits": limits }),
        )
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
}

/// This app's `rate_limited_total` sample for a limit, from the node's metrics.
fn refusals(server: &TestServer, limit: &str) -> u64 {
    let text = server.server.node.metrics.render();
    let prefix = format!(
        "reverb_pusher_rate_limited_total{{app_id=\"{}\",limit=\"{limit}\"}} ",
        server.app.id
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn private(server: &TestServer, client: &mut Client, channel: &str) {
    let auth = server.auth_private(&client.socket_id, channel);
    let ok = client
        .subscribe_with(json!({"channel": channel, "auth": auth}))
        .await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
}

#[actix_rt::test]
async fn new_connections_over_the_apps_rate_are_closed_with_4100_and_other_apps_are_untouched() {
    let server =
        TestServer::start_with(|_| {}, |app| app.limits.max_new_connections_per_second = 2).await;
    let other = other_app(&server).await;
    let _a = server.connect().await;
    let _b = server.connect().await;
    let mut third = Client::open(&server.ws_url(&server.app.key)).await;
    let error = third.expect_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4100, "{error}");
    assert!(
        error["data"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many new connections to this app"),
        "{error}"
    );
    assert_eq!(third.expect_close().await, Some(4100));
    // The other app's connections are not counted against this one.
    for _ in 0..5 {
        connect_to(&server, &other).await;
    }
    assert_eq!(refusals(&server, "new_connections"), 1);

    // Lifted in the admin API: the next connection is accepted at once.
    let admin = server.admin_logged_in().await;
    set_limits(
        &admin,
        &server,
        json!({"max_new_connections_per_second": 0}),
    )
    .await;
    server.connect().await;
}

#[actix_rt::test]
async fn new_connections_per_client_address_count_the_forwarded_address_behind_a_trusted_proxy() {
    let server = TestServer::start_with(
        |s| s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()],
        |app| app.limits.max_new_connections_per_second_per_ip = 1,
    )
    .await;
    let from = |address: &'static str| {
        awc::Client::new()
            .ws(server.ws_url(&server.app.key))
            .set_header("x-forwarded-for", address)
    };
    let mut first = Client::open_with(from("203.0.113.7")).await;
    first.established().await;
    let mut again = Client::open_with(from("203.0.113.7")).await;
    again.expect_refusal(4100).await;
    // Another client behind the same proxy has its own allowance.
    let mut neighbour = Client::open_with(from("198.51.100.20")).await;
    neighbour.established().await;
    // Addresses of one IPv6 /64 are one client.
    let mut v6 = Client::open_with(from("2001:db8:1:2::1")).await;
    v6.established().await;
    let mut v6_again = Client::open_with(from("2001:db8:1:2::99")).await;
    v6_again.expect_refusal(4100).await;
    assert_eq!(refusals(&server, "new_connections_per_address"), 2);
}

#[actix_rt::test]
async fn rest_events_count_each_channel_and_batch_item_and_over_the_rate_get_429_with_retry_after()
{
    let server =
        TestServer::start_with(|_| {}, |app| app.limits.max_backend_events_per_second = 3).await;
    let rest = server.rest();
    let two_channels = rest
        .post(
            "/events",
            &json!({"name": "e", "channels": ["a", "b"], "data": "{}"}),
        )
        .await;
    assert_eq!(two_channels.status, 200, "{:?}", two_channels.body);
    assert_eq!(two_channels.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(two_channels.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(two_channels.header("x-ratelimit-reset"), Some("1"));
    let one = rest.trigger("a", "e", "{}").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.header("x-ratelimit-remaining"), Some("0"));

    let over = rest
        .post(
            "/batch_events",
            &json!({"batch": [{"name": "e", "channel": "a", "data": "{}"}]}),
        )
        .await;
    assert_eq!(over.status, 429, "{:?}", over.body);
    assert_eq!(over.body["error"], "rate_limited", "{:?}", over.body);
    assert!(over.body["message"]
        .as_str()
        .unwrap()
        .contains("at most 3 events per second"));
    assert_eq!(over.header("retry-after"), Some("1"));

    // A request larger than the whole burst can never pass, and says so.
    let too_big = rest
        .post(
            "/events",
            &json!({"name": "e", "channels": ["a", "b", "c", "d"], "data": "{}"}),
        )
        .await;
    assert_eq!(too_big.status, 429);
    assert!(too_big.body["message"]
        .as_str()
        .unwrap()
        .contains("holds 4 events"));

    // Another app triggers as it likes meanwhile.
    let other = other_app(&server).await;
    let other_rest = rest_for(&server, &other);
    for _ in 0..10 {
        let ok = other_rest.trigger("a", "e", "{}").await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("x-ratelimit-limit"), None, "no limit, no headers");
    }
    assert_eq!(refusals(&server, "backend_events"), 2);
}

#[actix_rt::test]
async fn read_requests_have_their_own_rate() {
    let server =
        TestServer::start_with(|_| {}, |app| app.limits.max_read_requests_per_second = 1).await;
    let rest = server.rest();
    let first = rest.get("/channels", &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-remaining"), Some("0"));
    let second = rest.get("/channels/news", &[]).await;
    assert_eq!(second.status, 429, "{:?}", second.body);
    assert!(second.body["message"]
        .as_str()
        .unwrap()
        .contains("read requests"));
    // Reads and events are separate budgets.
    assert_eq!(rest.trigger("news", "e", "{}").await.status, 200);

    let admin = server.admin_logged_in().await;
    set_limits(&admin, &server, json!({"max_read_requests_per_second": 0})).await;
    let lifted = rest.get("/channels", &[]).await;
    assert_eq!(lifted.status, 200);
    assert_eq!(lifted.header("x-ratelimit-limit"), None);
}

#[actix_rt::test]
async fn the_apps_client_event_total_is_shared_by_its_connections_and_may_close_the_sender() {
    let server = TestServer::start_with(
        |_| {},
        // One a second: the refusal below needs only that less than a second passes between
        // two sends, however loaded the machine running the tests is.
        |app| app.limits.max_app_client_events_per_second = 1,
    )
    .await;
    // Logged in first: a password hash takes long enough for the app's rate to refill.
    let admin = server.admin_logged_in().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    let mut listener = server.connect().await;
    for client in [&mut a, &mut b, &mut listener] {
        private(&server, client, "private-room").await;
    }
    let event = json!({"event": "client-x", "channel": "private-room", "data": {}});
    a.send(event.clone()).await;
    listener.expect_event("client-x").await;
    // b is far under its own rate (10/s), but the app has used its one: a's.
    b.send(event.clone()).await;
    let error = b.expect_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4301, "{error}");
    assert!(
        error["data"]["message"]
            .as_str()
            .unwrap()
            .contains("the app accepts at most 1 client events per second"),
        "{error}"
    );
    listener.expect_silence().await;
    assert_eq!(refusals(&server, "client_events"), 1);

    // The app now asks for senders over a limit to be closed. A burst goes over the rate
    // whenever it is sent.
    set_limits(&admin, &server, json!({"close_on_client_event_excess": 1})).await;
    for _ in 0..5 {
        b.send(event.clone()).await;
    }
    b.expect_refusal(4301).await;
    // The other connections stay.
    a.send(json!({"event": "pusher:ping", "data": {}})).await;
    a.expect_event("pusher:pong").await;
}

#[actix_rt::test]
async fn subscribe_attempts_are_limited_per_connection_and_per_app_with_subscription_error_429() {
    let server = TestServer::start_with(
        |_| {},
        |app| {
            app.limits.max_subscriptions_per_second_per_connection = 2;
            app.limits.max_subscriptions_per_second = 3;
        },
    )
    .await;
    let mut a = server.connect().await;
    assert_eq!(
        a.subscribe("one").await["event"],
        "pusher_internal:subscription_succeeded"
    );
    assert_eq!(
        a.subscribe("two").await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let refused = a.subscribe("three").await;
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    assert_eq!(refused["channel"], "three");
    assert_eq!(refused["data"]["type"], "LimitReached");
    assert_eq!(refused["data"]["status"], 429);
    assert!(refused["data"]["error"]
        .as_str()
        .unwrap()
        .contains("a connection may make at most 2 subscribe attempts per second"));

    // The refused attempt used none of the app's 3: one more connection gets one.
    let mut b = server.connect().await;
    assert_eq!(
        b.subscribe("four").await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let refused = b.subscribe("five").await;
    assert_eq!(refused["data"]["status"], 429, "{refused}");
    assert!(refused["data"]["error"]
        .as_str()
        .unwrap()
        .contains("the app accepts at most 3 subscribe attempts per second"));
    assert_eq!(refusals(&server, "subscriptions_per_connection"), 1);
    assert_eq!(refusals(&server, "subscriptions"), 1);

    // Another app subscribes freely.
    let other = other_app(&server).await;
    let mut c = connect_to(&server, &other).await;
    for i in 0..10 {
        let ok = c.subscribe(&format!("ch-{i}")).await;
        assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    }
}

#[actix_rt::test]
async fn the_daily_message_quota_counts_as_pusher_does_refuses_with_429_and_survives_a_restart() {
    let server = TestServer::start_with(|_| {}, |app| app.limits.max_messages_per_day = 4).await;
    let mut subscriber = server.connect().await;
    subscriber.subscribe("news").await;
    let rest = server.rest();
    // One event to one subscriber is two messages: the publish and the delivery.
    assert_eq!(rest.trigger("news", "e", "1").await.status, 200);
    subscriber.expect_event("e").await;
    assert_eq!(rest.trigger("news", "e", "2").await.status, 200);
    subscriber.expect_event("e").await;
    let over = rest.trigger("news", "e", "3").await;
    assert_eq!(over.status, 429, "{:?}", over.body);
    assert_eq!(over.body["error"], "over_quota");
    assert!(over.body["message"]
        .as_str()
        .unwrap()
        .contains("used its 4 messages for today"));
    let retry: u64 = over.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "until midnight UTC: {retry}");
    subscriber.expect_silence().await;
    assert_eq!(refusals(&server, "daily_message_quota"), 1);

    // The panel's API shows the usage and that the app is over quota.
    let admin = server.admin_logged_in().await;
    let app = admin.get(&format!("/apps/{}", server.app.id)).await;
    assert_eq!(app.body["usage"]["messages_today"], 4, "{:?}", app.body);
    assert_eq!(app.body["usage"]["over_quota"], "day");

    // A restart on the same database keeps the day's count (the first server writes it as
    // it stops; the new one reads it before its first decision).
    drop(subscriber);
    let server = server.restart().await;
    let rest = server.rest();
    let still_over = rest.trigger("news", "e", "4").await;
    assert_eq!(still_over.status, 429, "{:?}", still_over.body);

    // Raising the quota applies at once.
    let mut raised = server.app.clone();
    raised.limits.max_messages_per_day = 100;
    server.server.update_app(raised).await.expect("updated");
    assert_eq!(rest.trigger("news", "e", "5").await.status, 200);
    server.shutdown().await;
}
