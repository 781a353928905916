//! Webhooks against a real HTTP receiver on a loopback port: Pusher's exact body and headers
//! with a valid signature for every event type, filters and custom headers, batching, the
//! delay before `channel_vacated`/`member_removed` and its cancellation, retries, the
//! dead-letter list and replay, and pending deliveries surviving a restart.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reverb_pusher::settings::Settings;
use reverb_pusher_tests::{hmac_hex, Admin, Client, TestServer};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    fn events(&self) -> Vec<Value> {
        self.json()["events"].as_array().expect("events").clone()
    }
}

#[derive(Default)]
struct Log {
    requests: Vec<Received>,
    /// Statuses to answer with, in order; 200 once they run out.
    replies: VecDeque<u16>,
}

/// An HTTP server that records every request and answers as told.
struct Receiver {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    fn start() -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").expect("bind"))
    }

    fn on(listener: TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        let server = HttpServer::new(move || {
            let log = shared.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: String| {
                let log = log.clone();
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                        .collect();
                    let mut log = log.lock().unwrap();
                    log.requests.push(Received { headers, body });
                    let status = log.replies.pop_front().unwrap_or(200);
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .body(format!("answered {status}"))
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { addr, log, handle }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn reply_with(&self, statuses: &[u16]) {
        self.log.lock().unwrap().replies.extend(statuses);
    }

    fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests came.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let got = wait_until(|| {
            let requests = self.requests();
            async move { (requests.len() >= n).then_some(requests) }
        })
        .await;
        got.unwrap_or_else(|| panic!("{n} webhook requests expected, got {:?}", self.requests()))
    }

    /// Waits until the events received, in order, include `expected` (and returns them all).
    async fn wait_for_events(&self, expected: &[Value]) -> Vec<Value> {
        let got = wait_until(|| {
            let events: Vec<Value> = self.requests().iter().flat_map(Received::events).collect();
            let found = expected.iter().all(|e| events.contains(e));
            async move { found.then_some(events) }
        })
        .await;
        got.unwrap_or_else(|| {
            let events: Vec<Value> = self.requests().iter().flat_map(Received::events).collect();
            panic!("expected {expected:?} among {events:?}")
        })
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Polls a condition every 10 ms for at most [`WAIT`].
async fn wait_until<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pusher's headers, and a signature the app secret verifies.
fn assert_signed(server: &TestServer, request: &Received) {
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-pusher-key"], server.app.key);
    assert_eq!(
        request.headers["x-pusher-signature"],
        hmac_hex(&server.app.secret, &request.body),
        "signature of {}",
        request.body
    );
    let body = request.json();
    assert!(
        body["time_ms"].as_i64().unwrap() > 1_700_000_000_000,
        "{body}"
    );
}

fn fast(s: &mut Settings) {
    s.webhook_vacate_delay_ms = 0;
    s.webhook_batch_window_ms = 20;
    s.webhook_backoff_base_ms = 50;
}

async fn add_endpoint(admin: &Admin, server: &TestServer, body: Value) -> Value {
    let response = admin
        .post(&format!("/apps/{}/webhooks", server.app.id), body)
        .await;
    assert_eq!(response.status, 201, "{:?}", response.body);
    response.body
}

fn all_types() -> Value {
    json!([
        "channel_occupied",
        "channel_vacated",
        "member_added",
        "member_removed",
        "client_event",
        "cache_miss",
        "subscription_count"
    ])
}

async fn unsubscribe(client: &mut Client, channel: &str) {
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
        .await;
}

/// Subscribes and waits for this channel's success, skipping other frames (subscription
/// counts, cache misses, member events) that may come first.
async fn join(client: &mut Client, data: Value) {
    let channel = data["channel"].clone();
    client
        .send(json!({"event": "pusher:subscribe", "data": data}))
        .await;
    loop {
        let ok = client
            .expect_event("pusher_internal:subscription_succeeded")
            .await;
        if ok["channel"] == channel {
            return;
        }
    }
}

async fn presence(server: &TestServer, client: &mut Client, channel: &str, user: &str) {
    let member = json!({"user_id": user, "user_info": {}});
    let (auth, channel_data) = server.auth_presence(&client.socket_id, channel, &member);
    join(
        client,
        json!({"channel": channel, "auth": auth, "channel_data": channel_data}),
    )
    .await;
}

/// The app's deliveries in the admin API.
async fn deliveries(admin: &Admin, server: &TestServer, query: &str) -> Vec<Value> {
    let response = admin
        .get(&format!(
            "/apps/{}/webhook-deliveries{query}",
            server.app.id
        ))
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    response.body.as_array().unwrap().clone()
}

#[actix_rt::test]
async fn every_event_type_arrives_in_pushers_format_with_a_valid_signature() {
    let server = TestServer::start_with(fast, |app| app.subscription_count_events = true).await;
    let receiver = Receiver::start();
    let admin = server.admin_logged_in().await;
    add_endpoint(
        &admin,
        &server,
        json!({"url": receiver.url(), "event_types": all_types()}),
    )
    .await;

    let mut a = server.connect().await;
    let mut b = server.connect().await;
    // A public channel: occupied, and its subscription count.
    join(&mut a, json!({"channel": "my-channel"})).await;
    receiver
        .wait_for_events(&[
            json!({"name": "channel_occupied", "channel": "my-channel"}),
            json!({"name": "subscription_count", "channel": "my-channel", "subscription_count": 1}),
        ])
        .await;
    // A cache channel with nothing cached.
    join(&mut a, json!({"channel": "cache-prices"})).await;
    receiver
        .wait_for_events(&[json!({"name": "cache_miss", "channel": "cache-prices"})])
        .await;
    // Presence: members come and go; a client event there carries the user.
    presence(&server, &mut a, "presence-room", "alice").await;
    presence(&server, &mut b, "presence-room", "bob").await;
    a.send(json!({"event": "client-typing", "channel": "presence-room", "data": {"on": true}}))
        .await;
    b.expect_event("client-typing").await;
    unsubscribe(&mut b, "presence-room").await;
    unsubscribe(&mut a, "presence-room").await;
    let events = receiver
        .wait_for_events(&[
            json!({"name": "member_added", "channel": "presence-room", "user_id": "alice"}),
            json!({"name": "member_added", "channel": "presence-room", "user_id": "bob"}),
            json!({"name": "client_event", "channel": "presence-room", "event": "client-typing",
                "data": "{\"on\":true}", "socket_id": a.socket_id, "user_id": "alice"}),
            json!({"name": "member_removed", "channel": "presence-room", "user_id": "bob"}),
            json!({"name": "member_removed", "channel": "presence-room", "user_id": "alice"}),
            json!({"name": "channel_vacated", "channel": "presence-room"}),
        ])
        .await;
    assert!(
        events.contains(&json!({"name": "channel_occupied", "channel": "presence-room"})),
        "{events:?}"
    );
    // A private channel's client event has no user.
    let auth = server.auth_private(&a.socket_id, "private-x");
    join(&mut a, json!({"channel": "private-x", "auth": auth})).await;
    let auth = server.auth_private(&b.socket_id, "private-x");
    join(&mut b, json!({"channel": "private-x", "auth": auth})).await;
    b.send(json!({"event": "client-x", "channel": "private-x", "data": "plain text"}))
        .await;
    a.expect_event("client-x").await;
    receiver
        .wait_for_events(&[json!({"name": "client_event", "channel": "private-x",
            "event": "client-x", "data": "plain text", "socket_id": b.socket_id})])
        .await;
    // Every request is Pusher's, signed with the app secret.
    let requests = receiver.requests();
    for request in &requests {
        assert_signed(&server, request);
        assert_eq!(
            request.json().as_object().unwrap().len(),
            2,
            "{}",
            request.body
        );
    }
    // And the delivery log says so.
    let log = deliveries(&admin, &server, "").await;
    assert_eq!(log.len(), requests.len(), "{log:?}");
    assert!(
        log.iter()
            .all(|d| d["state"] == "delivered" && d["status_code"] == 200 && d["attempts"] == 1),
        "{log:?}"
    );
    receiver.stop().await;
}

#[actix_rt::test]
async fn filters_choose_events_and_custom_headers_never_replace_pushers() {
    let server = TestServer::start_with(fast, |_| {}).await;
    let receiver = Receiver::start();
    let admin = server.admin_logged_in().await;
    let refused = admin
        .post(
            &format!("/apps/{}/webhooks", server.app.id),
            json!({"url": receiver.url(), "event_types": ["channel_occupied"],
                "headers": {"X-Pusher-Signature": "forged"}}),
        )
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(refused.body["field"], "headers");
    let refused = admin
        .post(
            &format!("/apps/{}/webhooks", server.app.id),
            json!({"url": "ftp://example.com/", "event_types": ["channel_occupied"]}),
        )
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(refused.body["field"], "url");

    add_endpoint(
        &admin,
        &server,
        json!({"url": receiver.url(), "event_types": ["channel_occupied"],
            "channel_prefix": "private-", "channel_suffix": "-orders",
            "headers": {"Authorization": "Bearer abc", "X-Tenant": "t1"}}),
    )
    .await;
    let mut client = server.connect().await;
    for channel in ["eu-orders", "private-news", "private-eu-orders"] {
        if channel.starts_with("private-") {
            let auth = server.auth_private(&client.socket_id, channel);
            client
                .subscribe_with(json!({"channel": channel, "auth": auth}))
                .await;
        } else {
            client.subscribe(channel).await;
        }
    }
    unsubscribe(&mut client, "private-eu-orders").await;
    let requests = receiver.wait_for(1).await;
    assert_eq!(
        requests[0].events(),
        vec![json!({"name": "channel_occupied", "channel": "private-eu-orders"})]
    );
    assert_eq!(requests[0].headers["authorization"], "Bearer abc");
    assert_eq!(requests[0].headers["x-tenant"], "t1");
    assert_signed(&server, &requests[0]);
    // The vacated event and the other channels were filtered out: nothing else came.
    let log = deliveries(&admin, &server, "").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(receiver.requests().len(), 1);
    receiver.stop().await;
}

#[actix_rt::test]
async fn events_within_the_window_go_in_one_request() {
    let server = TestServer::start_with(
        |s| {
            fast(s);
            s.webhook_batch_window_ms = 300;
        },
        |_| {},
    )
    .await;
    let receiver = Receiver::start();
    let admin = server.admin_logged_in().await;
    add_endpoint(
        &admin,
        &server,
        json!({"url": receiver.url(), "event_types": ["channel_occupied"]}),
    )
    .await;
    let mut client = server.connect().await;
    for channel in ["a", "b", "c"] {
        client.subscribe(channel).await;
    }
    let requests = receiver.wait_for(1).await;
    assert_eq!(
        requests[0].events(),
        vec![
            json!({"name": "channel_occupied", "channel": "a"}),
            json!({"name": "channel_occupied", "channel": "b"}),
            json!({"name": "channel_occupied", "channel": "c"}),
        ]
    );
    assert_signed(&server, &requests[0]);
    receiver.stop().await;
}

#[actix_rt::test]
async fn vacated_and_removed_wait_and_a_quick_return_sends_nothing() {
    let server = TestServer::start_with(
        |s| {
            fast(s);
            s.webhook_vacate_delay_ms = 400;
        },
        |_| {},
    )
    .await;
    let receiver = Receiver::start();
    let admin = server.admin_logged_in().await;
    add_endpoint(
        &admin,
        &server,
        json!({"url": receiver.url(), "event_types": all_types()}),
    )
    .await;
    let mut client = server.connect().await;
    presence(&server, &mut client, "presence-page", "u1").await;
    receiver.wait_for(1).await;
    // A page reload: gone and back within the delay.
    unsubscribe(&mut client, "presence-page").await;
    presence(&server, &mut client, "presence-page", "u1").await;
    // Then gone for good.
    unsubscribe(&mut client, "presence-page").await;
    let left = std::time::Instant::now();
    let mut events = receiver
        .wait_for_events(&[json!({"name": "channel_vacated", "channel": "presence-page"})])
        .await;
    assert!(
        left.elapsed() >= Duration::from_millis(350),
        "sent after {:?}",
        left.elapsed()
    );
    // Occupied and added come together, in either order; then removed and vacated.
    events[..2].sort_by_key(ToString::to_string);
    assert_eq!(
        events,
        vec![
            json!({"name": "channel_occupied", "channel": "presence-page"}),
            json!({"name": "member_added", "channel": "presence-page", "user_id": "u1"}),
            json!({"name": "member_removed", "channel": "presence-page", "user_id": "u1"}),
            json!({"name": "channel_vacated", "channel": "presence-page"}),
        ]
    );
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_500_is_retried_until_delivered_and_a_400_is_not_retried() {
    let server = TestServer::start_with(fast, |_| {}).await;
    let receiver = Receiver::start();
    receiver.reply_with(&[500, 503]);
    let admin = server.admin_logged_in().await;
    let endpoint = add_endpoint(
        &admin,
        &server,
        json!({"url": receiver.url(), "event_types": ["channel_occupied"]}),
    )
    .await;
    let mut client = server.connect().await;
    client.subscribe("retried").await;
    let requests = receiver.wait_for(3).await;
    assert_eq!(requests[0].body, requests[2].body);
    assert_signed(&server, &requests[2]);
    let log = wait_until(|| async {
        let log = deliveries(&admin, &server, "").await;
        (log.len() == 1 && log[0]["state"] == "delivered").then_some(log)
    })
    .await
    .expect("delivered");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["status_code"], 200);
    assert_eq!(log[0]["response"], "answered 200");
    assert_eq!(log[0]["endpoint_id"], endpoint["id"]);

    receiver.reply_with(&[400]);
    client.subscribe("refused").await;
    let failed = wait_until(|| async {
        let log = deliveries(&admin, &server, "?state=failed").await;
        (!log.is_empty()).then_some(log)
    })
    .await
    .expect("failed");
    assert_eq!(failed[0]["attempts"], 1);
    assert_eq!(failed[0]["status_code"], 400);
    assert_eq!(receiver.requests().len(), 4);
    let metrics = server.server.node.metrics.render();
    let sample = format!(
        "reverb_pusher_webhooks_total{{app_id=\"{}\",outcome=\"retried\"}} 2",
        server.app.id
    );
    assert!(metrics.contains(&sample), "{metrics}");
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_receiver_down_past_the_horizon_dead_letters_and_replay_delivers() {
    let server = TestServer::start_with(
        |s| {
            fast(s);
            s.webhook_retry_horizon_secs = 1;
        },
        |_| {},
    )
    .await;
    // A port nobody listens on, for now.
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let admin = server.admin_logged_in().await;
    add_endpoint(
        &admin,
        &server,
        json!({"url": format!("http://{addr}/hook"), "event_types": ["channel_occupied"]}),
    )
    .await;
    let mut client = server.connect().await;
    client.subscribe("lost").await;
    let dead = wait_until(|| async {
        let log = deliveries(&admin, &server, "?state=dead").await;
        (!log.is_empty()).then_some(log)
    })
    .await
    .expect("dead-lettered");
    assert!(dead[0]["attempts"].as_i64().unwrap() >= 2, "{dead:?}");
    assert!(dead[0]["error"].as_str().is_some(), "{dead:?}");

    let receiver = Receiver::on(TcpListener::bind(addr).unwrap());
    let replayed = admin
        .post(
            &format!("/apps/{}/webhook-deliveries/replay", server.app.id),
            json!({}),
        )
        .await;
    assert_eq!(replayed.status, 200, "{:?}", replayed.body);
    assert_eq!(replayed.body["replayed"], 1);
    let requests = receiver.wait_for(1).await;
    assert_eq!(
        requests[0].events(),
        vec![json!({"name": "channel_occupied", "channel": "lost"})]
    );
    assert_signed(&server, &requests[0]);
    wait_until(|| async {
        let log = deliveries(&admin, &server, "?state=delivered").await;
        (log.len() == 1).then_some(())
    })
    .await
    .expect("delivered after replay");
    receiver.stop().await;
}

#[actix_rt::test]
async fn pending_deliveries_and_held_back_events_survive_a_restart() {
    let server = TestServer::start_with(
        |s| {
            fast(s);
            s.webhook_backoff_base_ms = 100;
            s.webhook_vacate_delay_ms = 60_000;
        },
        |_| {},
    )
    .await;
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let admin = server.admin_logged_in().await;
    add_endpoint(
        &admin,
        &server,
        json!({"url": format!("http://{addr}/hook"), "event_types": ["channel_occupied", "channel_vacated"]}),
    )
    .await;
    let mut client = server.connect().await;
    client.subscribe("durable").await;
    unsubscribe(&mut client, "durable").await;
    // The occupied event is in the outbox, failing; the vacated one is held back in memory.
    wait_until(|| async {
        let log = deliveries(&admin, &server, "?state=pending").await;
        log.first()
            .is_some_and(|d| d["attempts"].as_i64() >= Some(1))
            .then_some(())
    })
    .await
    .expect("a failing pending delivery");
    client.close().await;
    let server = server.restart().await;
    let receiver = Receiver::on(TcpListener::bind(addr).unwrap());
    receiver
        .wait_for_events(&[
            json!({"name": "channel_occupied", "channel": "durable"}),
            json!({"name": "channel_vacated", "channel": "durable"}),
        ])
        .await;
    for request in receiver.requests() {
        assert_signed(&server, &request);
    }
    receiver.stop().await;
}

#[actix_rt::test]
async fn deleting_an_app_deletes_its_webhooks() {
    let server = TestServer::start_with(fast, |_| {}).await;
    let receiver = Receiver::start();
    let admin = server.admin_logged_in().await;
    let endpoint = add_endpoint(
        &admin,
        &server,
        json!({"url": receiver.url(), "event_types": ["channel_occupied"]}),
    )
    .await;
    let test = admin
        .post(
            &format!(
                "/apps/{}/webhooks/{}/test",
                server.app.id,
                endpoint["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(test.status, 202, "{:?}", test.body);
    let requests = receiver.wait_for(1).await;
    assert_eq!(
        requests[0].events(),
        vec![json!({"name": "channel_occupied", "channel": "reverb-pusher-test"})]
    );
    assert_signed(&server, &requests[0]);
    let deleted = admin.delete(&format!("/apps/{}", server.app.id)).await;
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    let db = server.server.db.clone();
    let (endpoints, deliveries) = reverb_pusher::blocking(&db, move |db| {
        Ok((
            db.webhook_endpoints()?,
            db.webhook_deliveries(&server.app.id, None, None, 10)?,
        ))
    })
    .await
    .unwrap();
    assert!(endpoints.is_empty(), "{endpoints:?}");
    assert!(deliveries.is_empty(), "{deliveries:?}");
    receiver.stop().await;
}
