//! Presence channels: roster, member events per user (not per connection), limits, sign-in.

use reverb_pusher_tests::{data, Client, TestServer};
use serde_json::{json, Value};

async fn join(server: &TestServer, client: &mut Client, channel: &str, member: Value) -> Value {
    let (auth, channel_data) = server.auth_presence(&client.socket_id, channel, &member);
    client
        .subscribe_with(json!({"channel": channel, "auth": auth, "channel_data": channel_data}))
        .await
}

#[actix_rt::test]
async fn roster_and_member_events() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let ok = join(
        &server,
        &mut alice,
        "presence-room",
        json!({"user_id": "a", "user_info": {"name": "Alice"}}),
    )
    .await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(
        data(&ok),
        json!({"presence": {"ids": ["a"], "hash": {"a": {"name": "Alice"}}, "count": 1}})
    );

    let mut bob = server.connect().await;
    let ok = join(&server, &mut bob, "presence-room", json!({"user_id": "b"})).await;
    let roster = data(&ok);
    assert_eq!(roster["presence"]["count"], 2);
    assert_eq!(roster["presence"]["hash"]["b"], json!({}));
    let added = alice.expect_event("pusher_internal:member_added").await;
    assert_eq!(data(&added), json!({"user_id": "b", "user_info": {}}));
    bob.expect_silence().await;

    // Bob's second connection: nobody is told.
    let mut bob2 = server.connect().await;
    let ok = join(&server, &mut bob2, "presence-room", json!({"user_id": "b"})).await;
    assert_eq!(data(&ok)["presence"]["count"], 2);
    alice.expect_silence().await;

    drop(bob);
    alice.expect_silence().await;
    drop(bob2);
    let removed = alice.expect_event("pusher_internal:member_removed").await;
    assert_eq!(data(&removed), json!({"user_id": "b"}));
}

#[actix_rt::test]
async fn numeric_user_ids_are_emitted_as_strings() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let ok = join(
        &server,
        &mut a,
        "presence-n",
        json!({"user_id": 10, "user_info": {"x": 1}}),
    )
    .await;
    assert_eq!(data(&ok)["presence"]["ids"], json!(["10"]));
    let mut b = server.connect().await;
    join(&server, &mut b, "presence-n", json!({"user_id": 11})).await;
    let added = a.expect_event("pusher_internal:member_added").await;
    assert_eq!(data(&added)["user_id"], "11");
    let users = server.rest().get("/channels/presence-n/users", &[]).await;
    assert_eq!(users.body, json!({"users": [{"id": "10"}, {"id": "11"}]}));
}

#[actix_rt::test]
async fn member_limit_and_user_info_size() {
    let server = TestServer::start_with(
        |_| {},
        |app| {
            app.limits.max_presence_members = 1;
            app.limits.max_presence_member_size_bytes = 50;
        },
    )
    .await;
    let mut a = server.connect().await;
    join(&server, &mut a, "presence-full", json!({"user_id": "a"})).await;
    let mut b = server.connect().await;
    let refused = join(&server, &mut b, "presence-full", json!({"user_id": "b"})).await;
    assert_eq!(refused["event"], "pusher:subscription_error");
    assert_eq!(refused["data"]["type"], "LimitReached");
    // The same user again is not a new member.
    let again = join(&server, &mut b, "presence-full", json!({"user_id": "a"})).await;
    assert_eq!(again["event"], "pusher_internal:subscription_succeeded");

    let big = json!({"user_id": "c", "user_info": {"bio": "x".repeat(100)}});
    let mut c = server.connect().await;
    let refused = join(&server, &mut c, "presence-other", big).await;
    assert_eq!(refused["data"]["type"], "LimitReached");
}

#[actix_rt::test]
async fn presence_through_the_signed_in_user() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    // Without sign-in and without channel_data there is nobody to be.
    let auth = server.auth_private(&client.socket_id, "presence-si");
    let refused = client
        .subscribe_with(json!({"channel": "presence-si", "auth": auth}))
        .await;
    assert_eq!(refused["event"], "pusher:subscription_error");

    let (auth, user_data) = server.auth_user(
        &client.socket_id,
        &json!({"id": "u1", "user_info": {"name": "U"}}),
    );
    client
        .send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
    client.expect_event("pusher:signin_success").await;
    let auth = server.auth_private(&client.socket_id, "presence-si");
    let ok = client
        .subscribe_with(json!({"channel": "presence-si", "auth": auth}))
        .await;
    assert_eq!(data(&ok)["presence"]["hash"], json!({"u1": {"name": "U"}}));
}

#[actix_rt::test]
async fn bad_channel_data_is_refused() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let channel = "presence-bad";
    let channel_data = r#"{"user_info":{}}"#;
    let auth = reverb_pusher_tests::token(
        &server.app,
        &format!("{}:{channel}:{channel_data}", client.socket_id),
    );
    let refused = client
        .subscribe_with(json!({"channel": channel, "auth": auth, "channel_data": channel_data}))
        .await;
    assert_eq!(refused["event"], "pusher:subscription_error");
}
