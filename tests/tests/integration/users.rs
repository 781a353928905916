//! User authentication: sign-in, the per-user channel, sendToUser, terminate, watchlists and
//! "authorized connections only".

use reverb_pusher_tests::{Client, TestServer};
use serde_json::{json, Value};

async fn sign_in(server: &TestServer, client: &mut Client, user: Value) -> Value {
    let (auth, user_data) = server.auth_user(&client.socket_id, &user);
    client
        .send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
    client.recv().await
}

#[actix_rt::test]
async fn signin_succeeds_with_a_valid_signature_only() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let ok = sign_in(
        &server,
        &mut client,
        json!({"id": "42", "user_info": {"n": 1}}),
    )
    .await;
    assert_eq!(ok["event"], "pusher:signin_success");
    let echoed: Value = serde_json::from_str(ok["data"]["user_data"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["id"], "42");

    let mut other = server.connect().await;
    let user_data = json!({"id": "1"}).to_string();
    other
        .send(json!({"event": "pusher:signin", "data": {"auth": format!("{}:00", server.app.key), "user_data": user_data}}))
        .await;
    assert_eq!(
        other.expect_event("pusher:error").await["data"]["code"],
        4009
    );

    let no_id = sign_in(&server, &mut other, json!({"name": "x"})).await;
    assert_eq!(no_id["data"]["code"], 4009);
}

#[actix_rt::test]
async fn user_channel_is_only_for_its_user_and_send_to_user_reaches_all_their_connections() {
    let server = TestServer::start().await;
    let mut u1a = server.connect().await;
    let mut u1b = server.connect().await;
    let mut u2 = server.connect().await;
    sign_in(&server, &mut u1a, json!({"id": "u1"})).await;
    sign_in(&server, &mut u1b, json!({"id": "u1"})).await;
    sign_in(&server, &mut u2, json!({"id": "u2"})).await;

    assert_eq!(
        u1a.subscribe("#server-to-user-u1").await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let refused = u2.subscribe("#server-to-user-u1").await;
    assert_eq!(refused["event"], "pusher:subscription_error");

    let response = server
        .rest()
        .trigger("#server-to-user-u1", "note", "{\"m\":1}")
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(
        u1a.expect_event("note").await["channel"],
        "#server-to-user-u1"
    );
    assert_eq!(u1b.expect_event("note").await["data"], "{\"m\":1}");
    u2.expect_silence().await;
}

#[actix_rt::test]
async fn terminate_connections_closes_only_that_users_connections() {
    let server = TestServer::start().await;
    let mut u1 = server.connect().await;
    let mut u2 = server.connect().await;
    sign_in(&server, &mut u1, json!({"id": "bad"})).await;
    sign_in(&server, &mut u2, json!({"id": "good"})).await;
    let response = server
        .rest()
        .post("/users/bad/terminate_connections", &json!({}))
        .await;
    assert_eq!((response.status, response.body), (200, json!({})));
    u1.expect_refusal(4009).await;
    u2.send(json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(u2.recv().await["event"], "pusher:pong");
}

#[actix_rt::test]
async fn watchlist_reports_online_and_offline() {
    let server = TestServer::start().await;
    let mut watcher = server.connect().await;
    let ok = sign_in(
        &server,
        &mut watcher,
        json!({"id": "w", "watchlist": ["f1", "f2"]}),
    )
    .await;
    assert_eq!(ok["event"], "pusher:signin_success");
    let initial = watcher
        .expect_event("pusher_internal:watchlist_events")
        .await;
    assert_eq!(
        initial["data"]["events"],
        json!([{"name": "offline", "user_ids": ["f1", "f2"]}])
    );

    let mut friend = server.connect().await;
    sign_in(&server, &mut friend, json!({"id": "f1"})).await;
    let online = watcher
        .expect_event("pusher_internal:watchlist_events")
        .await;
    assert_eq!(
        online["data"]["events"],
        json!([{"name": "online", "user_ids": ["f1"]}])
    );

    drop(friend);
    let offline = watcher
        .expect_event("pusher_internal:watchlist_events")
        .await;
    assert_eq!(
        offline["data"]["events"],
        json!([{"name": "offline", "user_ids": ["f1"]}])
    );
}

#[actix_rt::test]
async fn authorized_connections_only() {
    let server = TestServer::start_with(
        |_| {},
        |app| {
            app.require_user_auth = true;
            app.user_auth_timeout_secs = 1;
        },
    )
    .await;
    let mut anonymous = server.connect().await;
    let mut signed = server.connect().await;
    let mut private = server.connect().await;
    sign_in(&server, &mut signed, json!({"id": "ok"})).await;
    let auth = server.auth_private(&private.socket_id, "private-z");
    private
        .subscribe_with(json!({"channel": "private-z", "auth": auth}))
        .await;

    let error = anonymous.expect_event("pusher:error").await;
    assert_eq!(
        error["data"]["message"],
        "Connection not authorized within timeout."
    );
    assert_eq!(anonymous.expect_close().await, Some(4009));
    for client in [&mut signed, &mut private] {
        client
            .send(json!({"event": "pusher:ping", "data": {}}))
            .await;
        assert_eq!(
            client.expect_event("pusher:pong").await["event"],
            "pusher:pong"
        );
    }
}
