//! Nothing a client sends can make the server hold unbounded resources, every WebSocket-level
//! mistake gets its RFC 6455 close code, and the server closes the TCP connection first.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reverb_pusher_tests::raw::{RawFrame, RawSocket, CLOSE, CONTINUATION, TEXT};
use reverb_pusher_tests::{Client, TestServer};
use serde_json::{json, Value};

fn subscribe_frame(channel: &str) -> String {
    json!({"event": "pusher:subscribe", "data": {"channel": channel}}).to_string()
}

/// The next text frame of a raw socket, as JSON.
async fn next_json(socket: &mut RawSocket) -> Value {
    loop {
        let RawFrame { opcode, payload } = socket.next_frame().await.expect("a frame");
        if opcode == TEXT {
            return serde_json::from_slice(&payload).expect("JSON");
        }
    }
}

async fn expect_json_event(socket: &mut RawSocket, event: &str) -> Value {
    loop {
        let frame = next_json(socket).await;
        if frame["event"] == event {
            return frame;
        }
    }
}

async fn raw_connection(server: &TestServer) -> RawSocket {
    let mut socket = RawSocket::connect(server.server.addr, &server.app.key).await;
    expect_json_event(&mut socket, "pusher:connection_established").await;
    socket
}

// The channel retire race (an empty channel with a publish in flight) is timing-dependent over
// sockets; `actors::channel::tests` replays it deterministically against the channel actor.

fn channel_actors(server: &TestServer) -> usize {
    let app = server.server.directory.by_id(&server.app.id).unwrap();
    app.channels.len()
}

async fn unsubscribe(client: &mut Client, channel: &str) {
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
        .await;
}

#[actix_rt::test]
async fn a_connection_may_hold_at_most_its_channel_cap_and_nothing_is_created_past_it() {
    let server =
        TestServer::start_with(|_| {}, |app| app.limits.max_channels_per_connection = 3).await;
    let mut client = server.connect().await;
    for i in 0..3 {
        let ok = client.subscribe(&format!("room-{i}")).await;
        assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    }
    let refused = client.subscribe("room-3").await;
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    assert_eq!(refused["channel"], "room-3");
    assert_eq!(refused["data"]["type"], "LimitReached");
    assert_eq!(refused["data"]["status"], 429);
    let text = refused["data"]["error"].as_str().unwrap();
    assert!(text.contains("at most 3 channels"), "{text}");
    assert_eq!(
        channel_actors(&server),
        3,
        "no actor for the refused channel"
    );

    unsubscribe(&mut client, "room-0").await;
    let ok = client.subscribe("room-3").await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
}

#[actix_rt::test]
async fn an_app_may_occupy_at_most_its_channel_cap() {
    let server = TestServer::start_with(|_| {}, |app| app.limits.max_channels = 2).await;
    let mut a = server.connect().await;
    a.subscribe("one").await;
    a.subscribe("two").await;
    let mut b = server.connect().await;
    let refused = b.subscribe("three").await;
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    assert_eq!(refused["data"]["status"], 429);
    let text = refused["data"]["error"].as_str().unwrap();
    assert!(text.contains("maximum of 2 occupied channels"), "{text}");
    // Channels that exist are still open to everyone.
    let ok = b.subscribe("two").await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    // A REST event for a cache channel nobody listens to would start a channel to hold it:
    // not past the cap either.
    let rest = server.rest();
    assert_eq!(rest.trigger("cache-three", "e", "{}").await.status, 200);
    // A channel listing goes through the same supervisor mailbox after the event.
    assert_eq!(rest.get("/channels", &[]).await.status, 200);
    assert_eq!(channel_actors(&server), 2);
}

#[actix_rt::test]
async fn a_private_join_refused_at_the_cap_does_not_count_as_authorized() {
    let server = TestServer::start_with(
        |_| {},
        |app| {
            app.limits.max_channels = 1;
            app.require_user_auth = true;
            app.user_auth_timeout_secs = 1;
        },
    )
    .await;
    let mut a = server.connect().await;
    let auth = server.auth_private(&a.socket_id, "private-a");
    a.subscribe_with(json!({"channel": "private-a", "auth": auth}))
        .await;
    let mut b = server.connect().await;
    let auth = server.auth_private(&b.socket_id, "private-b");
    let refused = b
        .subscribe_with(json!({"channel": "private-b", "auth": auth}))
        .await;
    assert_eq!(refused["data"]["status"], 429, "{refused}");
    b.expect_refusal(4009).await;
}

#[actix_rt::test]
async fn a_slow_reader_is_closed_at_its_byte_bound_and_its_socket_goes_with_it() {
    let server = TestServer::start_with(
        |s| {
            // Frames alone would allow 900 MB here; the byte bound must be what closes it.
            s.outbound_buffer_messages = 100_000;
            s.outbound_buffer_bytes = 64 * 1024;
        },
        |app| app.limits.max_event_payload_bytes = 20_000,
    )
    .await;
    // `slow` subscribes and then never reads again.
    let mut slow = raw_connection(&server).await;
    slow.send_text(&subscribe_frame("firehose")).await;
    expect_json_event(&mut slow, "pusher_internal:subscription_succeeded").await;
    let mut fast = server.connect().await;
    fast.subscribe("firehose").await;
    assert_eq!(server.server.node.connections.load(Ordering::Relaxed), 2);

    let payload = "x".repeat(16_000);
    let rest = server.rest();
    let mut sent = 0;
    while server.server.node.connections.load(Ordering::Relaxed) == 2 {
        assert!(
            sent < 3_000,
            "48 MB went to a reader that never reads, and it is still connected"
        );
        assert_eq!(rest.trigger("firehose", "big", &payload).await.status, 200);
        fast.expect_event("big").await;
        sent += 1;
    }
    // The session has gone; the socket follows within the disconnect timeout (1 s), although
    // the client still has not read what the server wrote.
    assert!(
        slow.server_closes_within(Duration::from_secs(5)).await,
        "the slow reader's socket outlived its session"
    );
    // Everyone else carries on.
    assert_eq!(rest.trigger("firehose", "after", "{}").await.status, 200);
    fast.expect_event("after").await;
}

#[actix_rt::test]
async fn after_the_close_handshake_the_server_closes_the_tcp_connection_first() {
    // A server that lingered until its disconnect timeout would hold the socket for 30 s.
    let server = TestServer::start_with(|s| s.client_disconnect_timeout_ms = 30_000, |_| {}).await;
    let mut socket = raw_connection(&server).await;
    socket.send_close(1000).await;
    assert_eq!(socket.close_code().await, Some(1000));
    assert!(
        socket.server_closes_within(Duration::from_secs(5)).await,
        "RFC 6455 7.1.1: the server closes the TCP connection once the handshake is done"
    );
}

#[actix_rt::test]
async fn close_codes_are_echoed_only_when_a_client_may_send_them() {
    let server = TestServer::start().await;
    for (sent, echoed) in [
        (1000, 1000),
        (4321, 4321),
        (1005, 1002),
        (1015, 1002),
        (5000, 1002),
    ] {
        let mut socket = raw_connection(&server).await;
        socket.send_close(sent).await;
        assert_eq!(
            socket.close_code().await,
            Some(echoed),
            "client sent {sent}"
        );
    }
    // Codes clients make up share one metrics label (4321 above, and these three).
    for code in [3001, 3002, 3003] {
        let mut socket = raw_connection(&server).await;
        socket.send_close(code).await;
        socket.close_code().await;
    }
    let deadline = std::time::Instant::now() + reverb_pusher_tests::WAIT;
    loop {
        let text = server.server.node.metrics.render();
        let other = format!(
            "reverb_pusher_connections_closed_total{{app_id=\"{}\",code=\"other\"}} 4",
            server.app.id
        );
        if text.contains(&other) {
            assert!(!text.contains("code=\"3001\""), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn closed_with(server: &TestServer, frames: &[(bool, u8, Vec<u8>, bool)]) -> Option<u16> {
    let mut socket = raw_connection(server).await;
    for (fin, opcode, payload, masked) in frames {
        socket.send_frame(*fin, *opcode, payload, *masked).await;
    }
    loop {
        let frame = socket.next_frame().await?;
        if frame.opcode == CLOSE {
            return frame.close_code();
        }
    }
}

#[actix_rt::test]
async fn websocket_level_mistakes_get_their_rfc_close_codes() {
    let server = TestServer::start_with(|s| s.max_frame_bytes = 2048, |_| {}).await;
    let half = vec![b'x'; 1500];
    let too_long = [
        (false, TEXT, half.clone(), true),
        (true, CONTINUATION, half, true),
    ];
    assert_eq!(
        closed_with(&server, &too_long).await,
        Some(1009),
        "a fragmented message over max_frame_bytes"
    );
    let one_big_frame = [(true, TEXT, vec![b'x'; 3000], true)];
    assert_eq!(closed_with(&server, &one_big_frame).await, Some(1009));
    let invalid_utf8 = [(true, TEXT, vec![b'"', 0xff, 0xfe, b'"'], true)];
    assert_eq!(closed_with(&server, &invalid_utf8).await, Some(1007));
    let unmasked = [(true, TEXT, b"{}".to_vec(), false)];
    assert_eq!(closed_with(&server, &unmasked).await, Some(1002));
    let stray_continuation = [(true, CONTINUATION, b"x".to_vec(), true)];
    assert_eq!(closed_with(&server, &stray_continuation).await, Some(1002));
    // The server is fine afterwards.
    server.connect().await;
}

#[actix_rt::test]
async fn auth_timestamps_at_the_extremes_of_i64_are_refused_with_401() {
    let server = TestServer::start().await;
    let rest = server.rest();
    let path = format!("/apps/{}/channels", server.app.id);
    for timestamp in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let query = rest.signed_query_at("GET", &path, &[], b"", &timestamp.to_string());
        let response = rest.raw("GET", &path, &query, Vec::new()).await;
        assert_eq!(response.status, 401, "{timestamp}: {:?}", response.body);
        let message = response.body["message"].as_str().unwrap_or_default();
        assert!(message.contains("Timestamp expired"), "{message}");
    }
    assert_eq!(rest.get("/channels", &[]).await.status, 200);
}
