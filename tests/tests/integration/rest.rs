//! The signed REST API: every endpoint, every error status.

use reverb_pusher_tests::TestServer;
use serde_json::json;

#[actix_rt::test]
async fn trigger_delivers_and_excludes_the_named_socket() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("orders").await;
    b.subscribe("orders").await;
    let rest = server.rest();
    let response = rest
        .post("/events", &json!({"name": "created", "channels": ["orders", "empty"], "data": "{\"id\":1}", "socket_id": a.socket_id}))
        .await;
    assert_eq!((response.status, response.body), (200, json!({})));
    assert_eq!(
        b.recv().await,
        json!({"event": "created", "channel": "orders", "data": "{\"id\":1}"})
    );
    a.expect_silence().await;
}

#[actix_rt::test]
async fn trigger_reports_info_attributes() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("pub").await;
    let (auth, cd) = server.auth_presence(&a.socket_id, "presence-x", &json!({"user_id": "1"}));
    a.subscribe_with(json!({"channel": "presence-x", "auth": auth, "channel_data": cd}))
        .await;
    let response = server
        .rest()
        .post("/events", &json!({"name": "e", "channels": ["pub", "presence-x"], "data": "d", "info": "user_count,subscription_count"}))
        .await;
    assert_eq!(
        response.body,
        json!({"channels": {"pub": {"subscription_count": 1}, "presence-x": {"user_count": 1, "subscription_count": 1}}})
    );
}

#[actix_rt::test]
async fn batch_events_deliver_with_index_aligned_info() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("b1").await;
    let rest = server.rest();
    let response = rest
        .post(
            "/batch_events",
            &json!({"batch": [
                {"channel": "b1", "name": "one", "data": "1", "info": "subscription_count"},
                {"channel": "b2", "name": "two", "data": "2"},
            ]}),
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body,
        json!({"batch": [{"subscription_count": 1}, {}]})
    );
    assert_eq!(a.recv().await["event"], "one");

    let plain = rest
        .post(
            "/batch_events",
            &json!({"batch": [{"channel": "b1", "name": "x", "data": "y"}]}),
        )
        .await;
    assert_eq!(plain.body, json!({}));

    let items: Vec<_> = (0..11)
        .map(|i| json!({"channel": "b1", "name": "e", "data": i.to_string()}))
        .collect();
    assert_eq!(
        rest.post("/batch_events", &json!({"batch": items}))
            .await
            .status,
        400
    );
}

#[actix_rt::test]
async fn channel_listing_and_details() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("room-1").await;
    b.subscribe("room-1").await;
    a.subscribe("other").await;
    for (client, id) in [(&mut a, "u1"), (&mut b, "u2")] {
        let (auth, cd) =
            server.auth_presence(&client.socket_id, "presence-lobby", &json!({"user_id": id}));
        client
            .subscribe_with(json!({"channel": "presence-lobby", "auth": auth, "channel_data": cd}))
            .await;
    }
    let rest = server.rest();

    let all = rest.get("/channels", &[]).await;
    assert_eq!(
        all.body,
        json!({"channels": {"other": {}, "presence-lobby": {}, "room-1": {}}})
    );
    let rooms = rest
        .get(
            "/channels",
            &[
                ("filter_by_prefix", "room-"),
                ("info", "subscription_count"),
            ],
        )
        .await;
    assert_eq!(
        rooms.body,
        json!({"channels": {"room-1": {"subscription_count": 2}}})
    );
    let presence = rest
        .get(
            "/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    assert_eq!(
        presence.body,
        json!({"channels": {"presence-lobby": {"user_count": 2}}})
    );
    assert_eq!(
        rest.get("/channels", &[("info", "user_count")])
            .await
            .status,
        400
    );

    let room = rest
        .get("/channels/room-1", &[("info", "subscription_count")])
        .await;
    assert_eq!(
        room.body,
        json!({"occupied": true, "subscription_count": 2})
    );
    let lobby = rest
        .get(
            "/channels/presence-lobby",
            &[("info", "user_count,subscription_count")],
        )
        .await;
    assert_eq!(
        lobby.body,
        json!({"occupied": true, "user_count": 2, "subscription_count": 2})
    );
    assert_eq!(
        rest.get("/channels/nobody", &[]).await.body,
        json!({"occupied": false})
    );
    assert_eq!(
        rest.get("/channels/room-1", &[("info", "user_count")])
            .await
            .status,
        400
    );
    assert_eq!(
        rest.get("/channels/room-1", &[("info", "cache")])
            .await
            .status,
        400
    );
    assert_eq!(rest.get("/channels/room-1/users", &[]).await.status, 400);
    let users = rest.get("/channels/presence-lobby/users", &[]).await;
    assert_eq!(users.body, json!({"users": [{"id": "u1"}, {"id": "u2"}]}));
}

/// The channel reads answer from counts the channel stores before it confirms a subscription
/// (on the worker serving the read, without asking the channel): whoever has been sent
/// `subscription_succeeded` is counted by the very next read.
#[actix_rt::test]
async fn a_confirmed_subscription_is_counted_by_the_next_read() {
    let server = TestServer::start().await;
    let rest = server.rest();
    let mut clients = Vec::new();
    for n in 1..=8 {
        let mut client = server.connect().await;
        let confirmed = client.subscribe("counted").await;
        assert_eq!(confirmed["event"], "pusher_internal:subscription_succeeded");
        let read = rest
            .get("/channels/counted", &[("info", "subscription_count")])
            .await;
        assert_eq!(
            read.body,
            json!({"occupied": true, "subscription_count": n})
        );
        let user = json!({"user_id": format!("u{n}")});
        let (auth, cd) = server.auth_presence(&client.socket_id, "presence-counted", &user);
        let confirmed = client
            .subscribe_with(
                json!({"channel": "presence-counted", "auth": auth, "channel_data": cd}),
            )
            .await;
        assert_eq!(confirmed["event"], "pusher_internal:subscription_succeeded");
        let read = rest
            .get(
                "/channels",
                &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            )
            .await;
        assert_eq!(
            read.body,
            json!({"channels": {"presence-counted": {"user_count": n}}})
        );
        clients.push(client);
    }
}

#[actix_rt::test]
async fn signatures_are_verified() {
    let server = TestServer::start().await;
    let rest = server.rest();
    let path = format!("/apps/{}/events", server.app.id);
    let body = json!({"name": "e", "channel": "c", "data": "d"})
        .to_string()
        .into_bytes();

    let query = rest.signed_query("POST", &path, &[], &body);
    let tampered = query.replace("auth_signature=", "auth_signature=00");
    let response = rest.raw("POST", &path, &tampered, body.clone()).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.body["error"], "unauthorized");

    let other_body = json!({"name": "e", "channel": "c", "data": "other"})
        .to_string()
        .into_bytes();
    assert_eq!(
        rest.raw("POST", &path, &query, other_body).await.status,
        401
    );

    let old = rest.signed_query_at("POST", &path, &[], &body, "1000");
    let response = rest.raw("POST", &path, &old, body.clone()).await;
    assert_eq!(response.status, 401);
    assert!(response.body["message"]
        .as_str()
        .unwrap()
        .contains("Timestamp expired"));

    let mut wrong_secret = server.rest();
    wrong_secret.secret = "not-the-secret".into();
    assert_eq!(wrong_secret.trigger("c", "e", "d").await.status, 401);

    let mut wrong_app = server.rest();
    wrong_app.app_id = "999".into();
    assert_eq!(wrong_app.trigger("c", "e", "d").await.status, 404);

    assert_eq!(
        rest.raw(
            "GET",
            &format!("/apps/{}/channels", server.app.id),
            "",
            Vec::new()
        )
        .await
        .status,
        401
    );
    assert_eq!(rest.trigger("c", "e", "d").await.status, 200);
}

#[actix_rt::test]
async fn bad_events_get_400_and_413() {
    let server = TestServer::start().await;
    let rest = server.rest();
    assert_eq!(
        rest.post("/events", &json!({"channel": "c", "data": "d"}))
            .await
            .status,
        400
    );
    assert_eq!(
        rest.post("/events", &json!({"name": "e", "channel": "c"}))
            .await
            .status,
        400
    );
    assert_eq!(
        rest.post("/events", &json!({"name": "e", "data": "d"}))
            .await
            .status,
        400
    );
    assert_eq!(
        rest.post(
            "/events",
            &json!({"name": "e", "channel": "bad name", "data": "d"})
        )
        .await
        .status,
        400
    );
    let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    assert_eq!(
        rest.post(
            "/events",
            &json!({"name": "e", "channels": many, "data": "d"})
        )
        .await
        .status,
        400
    );
    let response = rest
        .post(
            "/events",
            &json!({"name": "e", "channel": "c", "data": "x".repeat(10 * 1024 + 1)}),
        )
        .await;
    assert_eq!(response.status, 413);
    assert_eq!(response.body["error"], "payload_too_large");
    let path = format!("/apps/{}/events", server.app.id);
    let query = rest.signed_query("POST", &path, &[], b"not json");
    assert_eq!(
        rest.raw("POST", &path, &query, b"not json".to_vec())
            .await
            .status,
        400
    );
}

#[actix_rt::test]
async fn disabled_app_gets_403() {
    let server = TestServer::start_with(|_| {}, |app| app.enabled = false).await;
    assert_eq!(server.rest().trigger("c", "e", "d").await.status, 403);
}

#[actix_rt::test]
async fn slow_consumer_is_closed_without_stalling_others() {
    let server = TestServer::start_with(
        |s| s.outbound_buffer_messages = 8,
        |app| {
            app.limits.max_event_payload_bytes = 60_000;
        },
    )
    .await;
    // `slow` never reads; its socket buffers fill up, then its queue, then it is dropped.
    let mut slow = server.connect().await;
    slow.subscribe("firehose").await;
    let mut fast = server.connect().await;
    fast.subscribe("firehose").await;
    let payload = "x".repeat(50_000);
    let rest = server.rest();
    let mut delivered_to_fast = 0;
    for _ in 0..400 {
        assert_eq!(rest.trigger("firehose", "big", &payload).await.status, 200);
        fast.expect_event("big").await;
        delivered_to_fast += 1;
    }
    assert_eq!(delivered_to_fast, 400);
    let mut received = 0;
    let code = loop {
        match slow.next_within(reverb_pusher_tests::WAIT).await {
            Some(reverb_pusher_tests::Received::Json(frame)) if frame["event"] == "big" => {
                received += 1;
            }
            Some(reverb_pusher_tests::Received::Json(_)) => {}
            Some(reverb_pusher_tests::Received::Closed(code)) => break code,
            None => panic!("slow consumer was never closed (got {received} events)"),
        }
    };
    assert!(received < 400, "the slow consumer got everything");
    assert!(code.is_none() || code == Some(4100), "{code:?}");
}

#[actix_rt::test]
async fn a_fan_out_at_full_speed_loses_nothing_keeps_each_channels_order_and_excludes_the_sender() {
    const PER_CHANNEL: usize = 150;
    // Two HTTP workers and two app threads: every delivery crosses threads, and the wake-ups of
    // one broadcast are handed to each worker at once.
    let server = TestServer::start_with(
        |s| {
            s.workers = 2;
            s.app_threads = 2;
        },
        |_| {},
    )
    .await;
    let channels: Vec<String> = (0..4).map(|c| format!("fan-{c}")).collect();
    let mut clients = Vec::new();
    for _ in 0..30 {
        let mut client = server.connect().await;
        for channel in &channels {
            client.subscribe(channel).await;
        }
        clients.push(client);
    }
    let mut sender = clients.pop().unwrap();
    // One publisher per channel, all at once, each as fast as its answers come: batches of ten,
    // every event naming the sender's socket to leave out.
    let rest = server.rest();
    let publishers = channels.iter().map(|channel| {
        let (rest, socket_id) = (&rest, sender.socket_id.clone());
        async move {
            for first in (0..PER_CHANNEL).step_by(10) {
                let batch: Vec<_> = (first..first + 10)
                    .map(|n| json!({"channel": channel, "name": "n", "data": n.to_string(), "socket_id": socket_id}))
                    .collect();
                let response = rest.post("/batch_events", &json!({"batch": batch})).await;
                assert_eq!(response.status, 200, "{:?}", response.body);
            }
        }
    });
    futures_util::future::join_all(publishers).await;

    for client in &mut clients {
        let mut seen = std::collections::HashMap::<String, Vec<usize>>::new();
        for _ in 0..channels.len() * PER_CHANNEL {
            let frame = client.expect_event("n").await;
            let n = frame["data"].as_str().unwrap().parse().unwrap();
            seen.entry(frame["channel"].as_str().unwrap().to_owned())
                .or_default()
                .push(n);
        }
        for channel in &channels {
            let expected: Vec<usize> = (0..PER_CHANNEL).collect();
            assert_eq!(seen[channel], expected, "{channel}: every event, in order");
        }
    }
    sender.expect_silence().await;
    clients[0].expect_silence().await;
}
