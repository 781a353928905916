//! Webhooks against a real HTTP receiver on a loopback port: Pusher's exact body and headers
//! with a valid signature for every event type, filters and custom headers, batching, the
//! delay before `channel_vacated`/`member_removed` and its cancellation, retries, the
//! dead-letter list and replay, and pending deliveries surviving a restart; an endpoint's own
//! signing secret; the circuit breaker that pauses a hanging endpoint while a healthy one stays
//! timely; events waiting in memory through a database outage (and dropped, counted, beyond
//! their bound); the delivery log pruned by count.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reverb_pusher::settings::Settings;
use reverb_pusher_tests::{hmac_hex, Admin, Client, DbOutage, TestServer};
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

/// An address where nothing listens yet, on a loopback address of the calling test's own
/// (`127.77.0.{n}`). A port freed on 127.0.0.1 can be taken at once by another test's server,
/// which would then answer (404) the deliveries that were meant to find nobody.
fn vacant_address(n: u8) -> SocketAddr {
    let reserved = TcpListener::bind((Ipv4Addr::new(127, 77, 0, n), 0)).expect("bind");
    reserved.local_addr().unwrap()
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
    // The same events each time, stamped with the time each request was sent.
    assert_eq!(requests[0].events(), requests[2].events());
    assert!(requests[2].json()["time_ms"].as_i64() >= requests[0].json()["time_ms"].as_i64());
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
            // The horizon is this test's subject, not the breaker: at its default (open after
            // 5 failures, for 30 s) the endpoint would pause whenever a fifth attempt fits in
            // the second, and the row would wait for the probe, past this test's patience.
            s.webhook_breaker_failures = 0;
        },
        |_| {},
    )
    .await;
    // A port nobody listens on, for now.
    let addr = vacant_address(1);
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
    .await;
    let Some(dead) = dead else {
        panic!(
            "not dead-lettered: {:?}",
            deliveries(&admin, &server, "").await
        );
    };
    // Retried while the horizon allowed (usually several attempts; on a loaded machine the first
    // attempt can come so late that no retry fits: the retries are the 500 test's subject).
    assert!(dead[0]["attempts"].as_i64().unwrap() >= 1, "{dead:?}");
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
    let addr = vacant_address(2);
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

/// The app's endpoints in the admin API.
async fn endpoints(admin: &Admin, server: &TestServer) -> Vec<Value> {
    let response = admin
        .get(&format!("/apps/{}/webhooks", server.app.id))
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    response.body.as_array().expect("a list").clone()
}

/// One sample of the node's metrics (a count), 0 when absent.
fn metric(server: &TestServer, name_and_labels: &str) -> u64 {
    server
        .server
        .node
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[actix_rt::test]
async fn an_endpoint_with_its_own_secret_signs_with_it_and_never_shows_it_again() {
    let server = TestServer::start_with(fast, |_| {}).await;
    let receiver = Receiver::start();
    let admin = server.admin_logged_in().await;
    let created = add_endpoint(
        &admin,
        &server,
        json!({"url": receiver.url(), "event_types": ["channel_occupied"], "generate_signing_secret": true}),
    )
    .await;
    // Shown once, in the answer that generated it.
    let secret = created["signing_secret"]
        .as_str()
        .expect("the new secret")
        .to_owned();
    assert_eq!(secret.len(), 32);
    assert_ne!(secret, server.app.secret);
    assert_eq!(
        created["signing_secret_hint"],
        format!("••••{}", &secret[28..])
    );
    let id = created["id"].as_str().unwrap().to_owned();

    // Never again: not listed, not audited, not in the table in plain text.
    let listed = endpoints(&admin, &server).await;
    assert!(listed[0].get("signing_secret").is_none(), "{listed:?}");
    assert!(!Value::Array(listed.clone()).to_string().contains(&secret));
    assert!(listed[0]["signing_secret_hint"].is_string());
    let audit = admin.get("/audit").await;
    assert_eq!(audit.status, 200);
    assert!(audit.body.to_string().contains("webhook.create"));
    assert!(
        !audit.body.to_string().contains(&secret),
        "{:?}",
        audit.body
    );
    let db = server.server.db.clone();
    let stored_id = id.clone();
    let stored = reverb_pusher::blocking(&db, move |db| db.stored_webhook_secret(&stored_id))
        .await
        .unwrap()
        .expect("a sealed secret");
    assert!(stored.starts_with("enc:v1:"), "{stored}");
    assert!(!stored.contains(&secret));

    // Requests are signed with it, not with the app secret.
    let mut client = server.connect().await;
    client.subscribe("own-secret").await;
    let requests = receiver.wait_for(1).await;
    assert_eq!(
        requests[0].headers["x-pusher-signature"],
        hmac_hex(&secret, &requests[0].body)
    );
    assert_ne!(
        requests[0].headers["x-pusher-signature"],
        hmac_hex(&server.app.secret, &requests[0].body)
    );
    assert_eq!(requests[0].headers["x-pusher-key"], server.app.key);

    // A chosen secret must be long enough; an empty one goes back to the app secret.
    let path = format!("/apps/{}/webhooks/{id}", server.app.id);
    let short = admin.patch(&path, json!({"signing_secret": "short"})).await;
    assert_eq!(short.status, 422, "{:?}", short.body);
    assert_eq!(short.body["field"], "signing_secret");
    let chosen = "a-chosen-secret-of-some-length";
    let set = admin.patch(&path, json!({"signing_secret": chosen})).await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(set.body["signing_secret"], chosen);
    client.subscribe("chosen-secret").await;
    let requests = receiver.wait_for(2).await;
    assert_eq!(
        requests[1].headers["x-pusher-signature"],
        hmac_hex(chosen, &requests[1].body)
    );
    let cleared = admin.patch(&path, json!({"signing_secret": ""})).await;
    assert_eq!(cleared.status, 200, "{:?}", cleared.body);
    assert!(cleared.body["signing_secret_hint"].is_null());
    assert!(cleared.body.get("signing_secret").is_none());
    client.subscribe("app-secret").await;
    let requests = receiver.wait_for(3).await;
    assert_signed(&server, &requests[2]);

    // The sealed secret opens again after a restart.
    let set = admin.patch(&path, json!({"signing_secret": chosen})).await;
    assert_eq!(set.status, 200);
    client.close().await;
    let server = server.restart().await;
    // The session is stored: the same admin, at the new port.
    let admin = Admin {
        base: server.http_url("/admin/api"),
        ..admin
    };
    let test = admin.post(&format!("{path}/test"), json!({})).await;
    assert_eq!(test.status, 202, "{:?}", test.body);
    let requests = receiver.wait_for(4).await;
    assert_eq!(
        requests[3].headers["x-pusher-signature"],
        hmac_hex(chosen, &requests[3].body)
    );
    receiver.stop().await;
}

/// A TCP listener that takes connections and never answers; counts them.
struct Hanging {
    addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hanging {
    fn start() -> Self {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, stopped) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        held.push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes the listener and every connection it holds.
    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

#[actix_rt::test]
async fn a_hanging_endpoint_is_paused_by_its_breaker_while_a_healthy_one_stays_timely() {
    let server = TestServer::start_with(
        |s| {
            fast(s);
            s.webhook_timeout_ms = 300;
            s.webhook_backoff_base_ms = 10;
            s.webhook_breaker_failures = 3;
            s.webhook_breaker_cooldown_ms = 1500;
        },
        |_| {},
    )
    .await;
    let hanging = Hanging::start();
    let healthy = Receiver::start();
    let admin = server.admin_logged_in().await;
    let down = add_endpoint(
        &admin,
        &server,
        json!({"url": format!("http://{}/hook", hanging.addr), "event_types": ["channel_occupied"], "channel_prefix": "down-"}),
    )
    .await;
    let down_id = down["id"].as_str().unwrap().to_owned();
    add_endpoint(
        &admin,
        &server,
        json!({"url": healthy.url(), "event_types": ["channel_occupied"], "channel_prefix": "up-"}),
    )
    .await;
    // Plenty of work for the hanging endpoint: twenty test events, each its own request.
    for _ in 0..20 {
        let test = admin
            .post(
                &format!("/apps/{}/webhooks/{down_id}/test", server.app.id),
                json!({}),
            )
            .await;
        assert_eq!(test.status, 202);
    }
    // Three failures in a row open its breaker; the admin API and the metrics show it.
    let open = wait_until(|| async {
        let list = endpoints(&admin, &server).await;
        let e = list.into_iter().find(|e| e["id"] == down_id.as_str())?;
        (e["breaker"]["state"] == "open").then_some(e)
    })
    .await
    .expect("the breaker opens");
    assert!(
        open["breaker"]["consecutive_failures"].as_u64() >= Some(3),
        "{open}"
    );
    assert!(open["breaker"]["retry_at_ms"].as_i64().is_some(), "{open}");
    // (Each test event lets one probe through at once, so it may have opened more than once.)
    let opens = open["breaker"]["opens"].as_u64().unwrap();
    assert!(opens >= 1, "{open}");
    let opened = format!(
        "reverb_pusher_webhooks_total{{app_id=\"{}\",outcome=\"breaker_opened\"}}",
        server.app.id
    );
    // A late probe may open it again meanwhile: the count lies between the two readings.
    let counted = metric(&server, &opened);
    assert_eq!(metric(&server, "reverb_pusher_webhook_endpoints_paused"), 1);
    // Requests to it that started before it opened may still be connecting; each ends within
    // the request timeout (300 ms), and only then is "not contacted" a fair question.
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    let now_open = endpoints(&admin, &server)
        .await
        .into_iter()
        .find(|e| e["id"] == down_id.as_str())
        .unwrap();
    let opens_now = now_open["breaker"]["opens"].as_u64().unwrap();
    assert!(
        (opens..=opens_now).contains(&counted),
        "{counted} not in {opens}..={opens_now}"
    );

    // While it is paused, the healthy endpoint gets each event at once, and the hanging one is
    // not contacted at all.
    let contacted = hanging.accepted();
    let mut client = server.connect().await;
    for i in 0..5 {
        let started = std::time::Instant::now();
        client.subscribe(&format!("up-{i}")).await;
        healthy
            .wait_for_events(&[json!({"name": "channel_occupied", "channel": format!("up-{i}")})])
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "delivery {i} took {:?}",
            started.elapsed()
        );
    }
    let paused = endpoints(&admin, &server).await;
    let still = paused.iter().find(|e| e["id"] == down_id.as_str()).unwrap();
    // Only if it is still the same pause: a probe after the cooldown (the machine may be slow)
    // would have reopened it with a new `retry_at_ms`.
    if still["breaker"]["state"] == "open"
        && still["breaker"]["retry_at_ms"] == now_open["breaker"]["retry_at_ms"]
    {
        assert_eq!(
            hanging.accepted(),
            contacted,
            "a paused endpoint is left alone"
        );
    }

    // After the cooldown one probe goes; it hangs too, so the breaker opens again.
    wait_until(|| async {
        let list = endpoints(&admin, &server).await;
        let e = list.into_iter().find(|e| e["id"] == down_id.as_str())?;
        (e["breaker"]["opens"] == opens + 1).then_some(())
    })
    .await
    .expect("the probe fails and the breaker opens again");
    assert_eq!(hanging.accepted(), contacted + 1, "exactly one probe");

    // The endpoint comes back on the same address: the next probe closes the breaker and the
    // waiting deliveries go.
    let addr = hanging.addr;
    hanging.stop();
    let back = Receiver::on(TcpListener::bind(addr).unwrap());
    back.wait_for(20).await;
    let closed = wait_until(|| async {
        let list = endpoints(&admin, &server).await;
        let e = list.into_iter().find(|e| e["id"] == down_id.as_str())?;
        (e["breaker"]["state"] == "closed" && e["stats"]["delivered"] == 20).then_some(e)
    })
    .await;
    let Some(closed) = closed else {
        panic!(
            "closed, all delivered: {:?} {:?}",
            endpoints(&admin, &server).await,
            deliveries(&admin, &server, "?state=pending").await
        );
    };
    assert_eq!(closed["breaker"]["consecutive_failures"], 0);
    assert_eq!(closed["stats"]["success_rate"], 1.0);
    assert_eq!(metric(&server, "reverb_pusher_webhook_endpoints_paused"), 0);
    back.stop().await;
    healthy.stop().await;
}

#[actix_rt::test]
async fn events_wait_in_memory_through_a_database_outage_up_to_their_bound() {
    let (server, mut outage) = DbOutage::server(
        |s| {
            fast(s);
            s.webhook_batch_window_ms = 0;
            s.webhook_max_buffered_events = 3;
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
    client.subscribe("before").await;
    receiver.wait_for(1).await;

    // While the database is away, channels are occupied; their events wait in memory.
    outage.cut();
    for i in 0..6 {
        client.subscribe(&format!("during-{i}")).await;
    }
    let dropped = format!(
        "reverb_pusher_webhooks_total{{app_id=\"{}\",outcome=\"dropped\"}}",
        server.app.id
    );
    // Beyond the bound of three, the oldest are dropped and counted.
    wait_until(|| async { (metric(&server, &dropped) >= 3).then_some(()) })
        .await
        .expect("events beyond the bound are dropped and counted");
    outage.restore();

    // Back: the newest three are delivered, the three oldest were dropped and counted; none
    // is lost silently. ("before" may come twice: at least once.)
    let newest = json!({"name": "channel_occupied", "channel": "during-5"});
    receiver.wait_for_events(&[newest]).await;
    let mut after: Vec<String> = receiver
        .requests()
        .iter()
        .flat_map(Received::events)
        .filter_map(|e| e["channel"].as_str().map(str::to_owned))
        .filter(|c| c != "before")
        .collect();
    after.sort();
    assert_eq!(after, ["during-3", "during-4", "during-5"]);
    assert_eq!(metric(&server, &dropped), 3);
    receiver.stop().await;
}

#[actix_rt::test]
async fn the_delivery_log_keeps_the_newest_deliveries_per_endpoint() {
    use reverb_pusher::db::webhooks::{DeliveryRow, DELIVERED, PENDING};
    let server = TestServer::start_with(
        |s| {
            fast(s);
            s.webhook_log_max_deliveries = 2;
        },
        |_| {},
    )
    .await;
    let receiver = Receiver::start();
    let admin = server.admin_logged_in().await;
    let a = add_endpoint(
        &admin,
        &server,
        json!({"url": receiver.url(), "event_types": ["channel_occupied"], "enabled": false}),
    )
    .await;
    let b = add_endpoint(
        &admin,
        &server,
        json!({"url": receiver.url(), "event_types": ["channel_occupied"], "enabled": false}),
    )
    .await;
    let row = |id: &str, endpoint: &Value, at: i64, state: &str| DeliveryRow {
        id: id.to_owned(),
        app_id: server.app.id.clone(),
        endpoint_id: endpoint["id"].as_str().unwrap().to_owned(),
        created_at_ms: at,
        body: "{}".into(),
        events: 1,
        state: state.into(),
        attempts: 1,
        next_attempt_at_ms: i64::MAX / 2,
        last_attempt_at_ms: Some(at),
        status_code: Some(200),
        latency_ms: Some(1),
        error: None,
        response: None,
    };
    let now = reverb_pusher::events::now_ms();
    let rows = vec![
        row("a1", &a, now - 5, DELIVERED),
        row("a2", &a, now - 4, DELIVERED),
        row("a3", &a, now - 3, DELIVERED),
        row("a4", &a, now - 3, DELIVERED),
        row("a0", &a, now - 10, PENDING),
        row("b1", &b, now - 9, DELIVERED),
    ];
    let db = server.server.db.clone();
    let pruned = reverb_pusher::blocking(&db, move |db| {
        db.enqueue_webhooks(&rows)?;
        db.prune_webhooks_by_count(2)
    })
    .await
    .unwrap();
    assert_eq!(pruned, 2);
    let mut left: Vec<String> = deliveries(&admin, &server, "")
        .await
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    left.sort();
    // The two newest finished ones of a (ties broken by id), its pending one, and b's.
    assert_eq!(left, ["a0", "a3", "a4", "b1"]);

    // The worker prunes with the setting: after a restart (it prunes when it starts with an
    // enabled endpoint), three more of b's leave two.
    let more = vec![
        row("b2", &b, now - 8, DELIVERED),
        row("b3", &b, now - 7, DELIVERED),
    ];
    reverb_pusher::blocking(&db, move |db| db.enqueue_webhooks(&more))
        .await
        .unwrap();
    let enable = admin
        .patch(
            &format!(
                "/apps/{}/webhooks/{}",
                server.app.id,
                b["id"].as_str().unwrap()
            ),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(enable.status, 200);
    let server = server.restart().await;
    // The session is stored: the same admin, at the new port.
    let admin = Admin {
        base: server.http_url("/admin/api"),
        ..admin
    };
    let left = wait_until(|| async {
        let log = deliveries(
            &admin,
            &server,
            &format!("?endpoint={}", b["id"].as_str().unwrap()),
        )
        .await;
        (log.len() == 2).then_some(log)
    })
    .await
    .expect("pruned to two");
    let ids: Vec<&str> = left.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["b3", "b2"]);
    receiver.stop().await;
}
