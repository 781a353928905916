//! The debug console feed (`GET /admin/api/apps/{id}/debug`, server-sent events) and the event
//! creator (`POST /admin/api/apps/{id}/events`): what a watcher sees of one app, and only that
//! app.

use std::time::Duration;

use futures_util::StreamExt;
use reverb_pusher_tests::{Admin, TestServer, WAIT};
use serde_json::json;
use shared::admin::{DebugEvent, DebugKind};

/// A reader of one app's debug stream.
struct Watch {
    response: awc::ClientResponse,
    buffer: String,
}

impl Watch {
    async fn open(admin: &Admin, app_id: &str) -> Self {
        let mut request = awc::Client::new()
            .get(format!("{}/apps/{app_id}/debug", admin.base))
            .timeout(Duration::from_secs(60));
        if let Some(cookie) = &admin.cookie {
            request = request.insert_header(("cookie", cookie.clone()));
        }
        let response = request.send().await.expect("debug stream");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        let mut watch = Self {
            response,
            buffer: String::new(),
        };
        // The stream is open once its first chunk (the retry hint) arrived.
        watch.fill().await;
        watch
    }

    async fn fill(&mut self) {
        let chunk = tokio::time::timeout(WAIT, self.response.next())
            .await
            .expect("a chunk in time")
            .expect("the stream stays open")
            .expect("a readable chunk");
        self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }

    /// The next entry (keep-alive comments skipped).
    async fn next(&mut self) -> DebugEvent {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let message: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = message.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(data).expect("a DebugEvent");
                }
            }
            self.fill().await;
        }
    }

    /// Skips entries until one of this kind arrives.
    async fn expect(&mut self, kind: DebugKind) -> DebugEvent {
        loop {
            let event = self.next().await;
            if event.kind == kind {
                return event;
            }
        }
    }
}

#[actix_rt::test]
async fn the_console_shows_an_apps_activity_live() {
    let server = TestServer::start_with(|_| {}, |app| app.client_events = true).await;
    let admin = server.admin_logged_in().await;
    let mut watch = Watch::open(&admin, &server.app.id).await;

    let mut client = server.connect().await;
    let connected = watch.expect(DebugKind::Connection).await;
    assert_eq!(
        connected.socket_id.as_deref(),
        Some(client.socket_id.as_str())
    );

    let channel = "private-room";
    let auth = server.auth_private(&client.socket_id, channel);
    client
        .subscribe_with(json!({"channel": channel, "auth": auth}))
        .await;
    let subscribed = watch.expect(DebugKind::Subscribed).await;
    assert_eq!(subscribed.channel.as_deref(), Some(channel));

    client
        .send(json!({"event": "client-typing", "channel": channel, "data": {"who": "ada"}}))
        .await;
    let client_event = watch.expect(DebugKind::ClientEvent).await;
    assert_eq!(client_event.event.as_deref(), Some("client-typing"));
    assert_eq!(client_event.data.as_deref(), Some(r#"{"who":"ada"}"#));

    assert_eq!(
        server
            .rest()
            .trigger(channel, "rest-event", "from rest")
            .await
            .status,
        200
    );
    let api = watch.expect(DebugKind::ApiMessage).await;
    assert_eq!(
        (
            api.channel.as_deref(),
            api.event.as_deref(),
            api.data.as_deref()
        ),
        (Some(channel), Some("rest-event"), Some("from rest"))
    );

    // A refused subscription is an error entry naming the channel.
    client
        .subscribe_with(json!({"channel": "private-other", "auth": "bad:signature"}))
        .await;
    let refused = watch.expect(DebugKind::Error).await;
    assert_eq!(refused.channel.as_deref(), Some("private-other"));
    assert_eq!(refused.code, Some(401));

    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
        .await;
    assert_eq!(
        watch
            .expect(DebugKind::Unsubscribed)
            .await
            .channel
            .as_deref(),
        Some(channel)
    );

    client.close().await;
    let gone = watch.expect(DebugKind::Disconnection).await;
    assert_eq!(gone.socket_id.as_deref(), Some(client.socket_id.as_str()));
    assert_eq!(gone.code, Some(1000));
}

#[actix_rt::test]
async fn the_event_creator_reaches_subscribers_with_the_rest_apis_rules() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let path = format!("/apps/{}/events", server.app.id);
    let mut client = server.connect().await;
    client.subscribe("news").await;

    let sent = admin
        .post(
            &path,
            json!({"channel": "news", "event": "headline", "data": "{\"n\":1}"}),
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    assert_eq!(sent.body, json!({"subscription_count": 1}));
    let frame = client.expect_event("headline").await;
    assert_eq!(
        (frame["channel"].as_str(), frame["data"].as_str()),
        (Some("news"), Some("{\"n\":1}"))
    );

    let bad_channel = admin
        .post(
            &path,
            json!({"channel": "no spaces", "event": "e", "data": "{}"}),
        )
        .await;
    assert_eq!(bad_channel.status, 400, "{:?}", bad_channel.body);
    let too_big = admin
        .post(
            &path,
            json!({"channel": "news", "event": "e", "data": "x".repeat(20_000)}),
        )
        .await;
    assert_eq!(too_big.status, 413);
    let missing = admin
        .post(
            "/apps/0/events",
            json!({"channel": "news", "event": "e", "data": "{}"}),
        )
        .await;
    assert_eq!(missing.status, 404);

    // A write: the CSRF token is required with a session cookie.
    let mut no_csrf = admin.clone();
    no_csrf.csrf = None;
    let refused = no_csrf
        .post(
            &path,
            json!({"channel": "news", "event": "e", "data": "{}"}),
        )
        .await;
    assert_eq!(refused.status, 403);
    client.expect_silence().await;
}

#[actix_rt::test]
async fn the_console_needs_a_login_and_an_existing_app() {
    let server = TestServer::start().await;
    let anonymous = server
        .admin()
        .get(&format!("/apps/{}/debug", server.app.id))
        .await;
    assert_eq!(anonymous.status, 401);
    let admin = server.admin_logged_in().await;
    assert_eq!(admin.get("/apps/0/debug").await.status, 404);
}

#[actix_rt::test]
async fn a_watcher_sees_only_its_own_app_and_the_stream_ends_with_the_app() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let other = admin.post("/apps", json!({"name": "other"})).await.body;
    let other_id = other["id"].as_str().unwrap().to_owned();
    let mut watch = Watch::open(&admin, &other_id).await;

    // Activity on the first app does not reach the other app's console.
    let mut client = server.connect().await;
    client.subscribe("news").await;
    let mut rest = server.rest();
    rest.app_id.clone_from(&other_id);
    rest.key = other["key"].as_str().unwrap().to_owned();
    rest.secret = other["secret"].as_str().unwrap().to_owned();
    assert_eq!(rest.trigger("elsewhere", "ping", "1").await.status, 200);
    let first = watch.next().await;
    assert_eq!(
        (first.kind, first.channel.as_deref()),
        (DebugKind::ApiMessage, Some("elsewhere")),
        "the first entry is the other app's own event"
    );

    assert_eq!(admin.delete(&format!("/apps/{other_id}")).await.status, 204);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.response.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends when its app is deleted");
}
