//! The admin JSON API: setup, login, permissions, users, tokens, apps with live effect on
//! running connections, the audit log and the OpenAPI document.

use reverb_pusher_tests::{Admin, Client, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::{json, Value};

#[actix_rt::test]
async fn first_run_setup_with_the_one_time_token() {
    let server = TestServer::start().await;
    let admin = server.admin();
    assert_eq!(admin.get("/setup").await.body, json!({"needed": true}));
    let token = server.server.admin.setup.current().unwrap();
    let body = |token: &str| json!({"token": token, "email": "a@example.com", "name": "A", "password": "long enough pw"});

    let wrong = admin.post("/setup", body("wrong")).await;
    assert_eq!(
        (wrong.status, wrong.body["error"].as_str()),
        (403, Some("setup_token_invalid"))
    );
    let weak = admin
        .post(
            "/setup",
            json!({"token": token, "email": "a@example.com", "name": "A", "password": "short"}),
        )
        .await;
    assert_eq!(
        (weak.status, weak.body["field"].as_str()),
        (422, Some("password"))
    );

    let created = admin.post("/setup", body(&token)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let cookie = created
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(created.body["csrf_token"].is_string());
    assert_eq!(created.body["user"]["email"], "a@example.com");

    assert_eq!(admin.get("/setup").await.body, json!({"needed": false}));
    assert_eq!(admin.post("/setup", body(&token)).await.status, 409);
}

#[actix_rt::test]
async fn login_logout_and_throttling() {
    let server = TestServer::start().await;
    server.admin_logged_in().await;
    let mut admin = server.admin();
    let wrong = admin.login(ADMIN_EMAIL, "wrong password").await;
    assert_eq!(
        (wrong.status, wrong.body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let unknown = admin.login("nobody@example.com", "whatever pw").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(
        admin
            .login(ADMIN_EMAIL.to_uppercase().as_str(), ADMIN_PASSWORD)
            .await
            .status,
        200
    );
    assert_eq!(admin.get("/me").await.body["user"]["email"], ADMIN_EMAIL);

    assert_eq!(admin.post("/logout", json!({})).await.status, 204);
    assert_eq!(admin.get("/me").await.status, 401);

    let mut attacker = server.admin();
    for _ in 0..5 {
        assert_eq!(attacker.login(ADMIN_EMAIL, "guess guess").await.status, 401);
    }
    let throttled = attacker.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.headers.get("retry-after").is_some());
}

#[actix_rt::test]
async fn permissions_cookie_csrf_and_tokens() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let anonymous = server.admin();
    assert_eq!(anonymous.get("/apps").await.status, 401);
    assert_eq!(
        anonymous.post("/apps", json!({"name": "x"})).await.status,
        401
    );

    let no_csrf = Admin {
        csrf: None,
        ..admin.clone()
    };
    let refused = no_csrf.post("/apps", json!({"name": "x"})).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (403, Some("csrf_token_invalid"))
    );
    let bad_csrf = Admin {
        csrf: Some("forged".into()),
        ..admin.clone()
    };
    assert_eq!(
        bad_csrf.post("/apps", json!({"name": "x"})).await.status,
        403
    );
    assert_eq!(
        no_csrf.get("/apps").await.status,
        200,
        "reads need no CSRF token"
    );

    let created = admin.post("/tokens", json!({"name": "ci"})).await;
    assert_eq!(created.status, 201);
    let value = created.body["token"].as_str().unwrap().to_owned();
    assert!(value.starts_with("rpt_"));
    let token_id = created.body["id"].as_str().unwrap().to_owned();
    let bot = Admin {
        bearer: Some(value.clone()),
        ..server.admin()
    };
    assert_eq!(
        bot.post("/apps", json!({"name": "from ci"})).await.status,
        201,
        "tokens need no CSRF"
    );
    let listed = admin.get("/tokens").await.body;
    assert_eq!(listed[0]["name"], "ci");
    assert!(listed[0]["last_used_at"].is_i64());
    assert!(
        !listed.to_string().contains(&value),
        "the token value is shown only once"
    );

    assert_eq!(
        admin.delete(&format!("/tokens/{token_id}")).await.status,
        204
    );
    assert_eq!(bot.get("/apps").await.status, 401);
    assert_eq!(
        admin.delete(&format!("/tokens/{token_id}")).await.status,
        404
    );
    let garbage = Admin {
        bearer: Some("rpt_nope".into()),
        ..server.admin()
    };
    assert_eq!(garbage.get("/apps").await.status, 401);
}

#[actix_rt::test]
async fn users_crud_and_nobody_deletes_themselves() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let me = admin.get("/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let created = admin
        .post(
            "/users",
            json!({"email": "Bob@Example.com", "name": "Bob", "password": "bobs password"}),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["email"], "bob@example.com");
    let bob = created.body["id"].as_str().unwrap().to_owned();
    let duplicate = admin
        .post(
            "/users",
            json!({"email": "bob@example.com", "name": "B2", "password": "another pw"}),
        )
        .await;
    assert_eq!(
        (duplicate.status, duplicate.body["error"].as_str()),
        (409, Some("email_taken"))
    );
    let invalid = admin
        .post(
            "/users",
            json!({"email": "no-at", "name": "X", "password": "long enough"}),
        )
        .await;
    assert_eq!(
        (invalid.status, invalid.body["field"].as_str()),
        (422, Some("email"))
    );
    let missing = admin
        .post("/users", json!({"email": "c@example.com"}))
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(admin.get("/users").await.body.as_array().unwrap().len(), 2);

    let renamed = admin
        .patch(
            &format!("/users/{bob}"),
            json!({"name": "Robert", "password": "new bob password"}),
        )
        .await;
    assert_eq!(
        (renamed.status, renamed.body["name"].as_str()),
        (200, Some("Robert"))
    );
    let mut as_bob = server.admin();
    assert_eq!(
        as_bob
            .login("bob@example.com", "bobs password")
            .await
            .status,
        401
    );
    assert_eq!(
        as_bob
            .login("bob@example.com", "new bob password")
            .await
            .status,
        200
    );
    assert_eq!(
        admin
            .patch("/users/nope", json!({"name": "x"}))
            .await
            .status,
        404
    );

    let self_delete = admin.delete(&format!("/users/{me}")).await;
    assert_eq!(
        (self_delete.status, self_delete.body["error"].as_str()),
        (403, Some("cannot_delete_self"))
    );
    let bob_self = as_bob.delete(&format!("/users/{bob}")).await;
    assert_eq!(bob_self.status, 403);
    assert_eq!(admin.delete(&format!("/users/{bob}")).await.status, 204);
    assert_eq!(
        as_bob.get("/me").await.status,
        401,
        "a deleted user's session ends"
    );
    assert_eq!(admin.delete(&format!("/users/{bob}")).await.status, 404);
}

fn app_of(response: &Value) -> (String, String, String) {
    (
        response["id"].as_str().unwrap().to_owned(),
        response["key"].as_str().unwrap().to_owned(),
        response["secret"].as_str().unwrap().to_owned(),
    )
}

#[actix_rt::test]
async fn apps_crud_with_validation() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let created = admin
        .post(
            "/apps",
            json!({"name": "Shop", "client_events": false, "limits": {"max_connections": 50}}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let (id, key, secret) = app_of(&created.body);
    assert!(id.chars().all(|c| c.is_ascii_digit()));
    assert!(key.len() >= 20 && secret.len() >= 32);
    assert_eq!(created.body["client_events"], false);
    assert_eq!(created.body["limits"]["max_connections"], 50);
    assert_eq!(created.body["limits"]["max_presence_members"], 100);

    let bad = admin.post("/apps", json!({"name": ""})).await;
    assert_eq!(
        (bad.status, bad.body["field"].as_str()),
        (422, Some("name"))
    );
    let bad = admin
        .patch(
            &format!("/apps/{id}"),
            json!({"allowed_origins": ["not an origin"]}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["field"].as_str()),
        (422, Some("allowed_origins"))
    );
    let bad = admin
        .patch(
            &format!("/apps/{id}"),
            json!({"limits": {"max_event_batch_size": 0}}),
        )
        .await;
    assert_eq!(bad.body["field"], "limits.max_event_batch_size");
    let bad = admin
        .patch(&format!("/apps/{id}"), json!({"enabled": "yes"}))
        .await;
    assert_eq!(bad.status, 422);

    let mut client = Client::open(&server.ws_url(&key)).await;
    client.established().await;
    let fetched = admin.get(&format!("/apps/{id}")).await;
    assert_eq!(
        (fetched.status, fetched.body["connections"].as_u64()),
        (200, Some(1))
    );
    let listed = admin.get("/apps").await.body;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Shop", "test"]);

    let updated = admin
        .patch(
            &format!("/apps/{id}"),
            json!({"name": "Shop 2", "limits": {"max_connections": 7}}),
        )
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(
        (
            updated.body["name"].as_str(),
            updated.body["limits"]["max_connections"].as_u64()
        ),
        (Some("Shop 2"), Some(7))
    );

    assert_eq!(admin.delete(&format!("/apps/{id}")).await.status, 204);
    assert_eq!(admin.get(&format!("/apps/{id}")).await.status, 404);
    assert_eq!(admin.delete(&format!("/apps/{id}")).await.status, 404);
    assert_eq!(admin.get("/no-such-route").await.status, 404);
}

/// A connection to `key` that is still alive: it answers a ping.
async fn alive(client: &mut Client) {
    client
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(
        client.expect_event("pusher:pong").await["event"],
        "pusher:pong"
    );
}

#[actix_rt::test]
async fn changes_apply_live_to_that_app_only() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let (a_id, a_key, a_secret) = app_of(&admin.post("/apps", json!({"name": "A"})).await.body);
    let (_, b_key, _) = app_of(&admin.post("/apps", json!({"name": "B"})).await.body);
    let mut b = Client::open(&server.ws_url(&b_key)).await;
    b.established().await;
    b.subscribe("b-news").await;

    // Disable: A's clients are closed with 4003 and new ones refused; B is untouched.
    let mut a = Client::open(&server.ws_url(&a_key)).await;
    a.established().await;
    assert_eq!(
        admin
            .patch(&format!("/apps/{a_id}"), json!({"enabled": false}))
            .await
            .status,
        200
    );
    a.expect_refusal(4003).await;
    Client::open(&server.ws_url(&a_key))
        .await
        .expect_refusal(4003)
        .await;
    alive(&mut b).await;
    admin
        .patch(&format!("/apps/{a_id}"), json!({"enabled": true}))
        .await;
    Client::open(&server.ws_url(&a_key))
        .await
        .established()
        .await;

    // Origins: new connections from other origins are refused.
    admin
        .patch(
            &format!("/apps/{a_id}"),
            json!({"allowed_origins": ["https://shop.test"]}),
        )
        .await;
    let url = server.ws_url(&a_key);
    Client::open_with(awc::Client::new().ws(&url).origin("https://evil.test"))
        .await
        .expect_refusal(4009)
        .await;
    Client::open_with(awc::Client::new().ws(&url).origin("https://shop.test"))
        .await
        .established()
        .await;
    Client::open_with(
        awc::Client::new()
            .ws(server.ws_url(&b_key))
            .origin("https://evil.test"),
    )
    .await
    .established()
    .await;

    // Limits apply at once.
    let mut holder = Client::open(&url).await;
    holder.established().await;
    admin
        .patch(
            &format!("/apps/{a_id}"),
            json!({"limits": {"max_connections": 1}}),
        )
        .await;
    Client::open(&url).await.expect_refusal(4004).await;
    drop(holder);
    admin
        .patch(
            &format!("/apps/{a_id}"),
            json!({"limits": {"max_connections": 0}}),
        )
        .await;

    // Rotation with a grace period: both secrets sign; without one only the new secret does.
    let mut rest = server.rest();
    rest.app_id.clone_from(&a_id);
    rest.key.clone_from(&a_key);
    rest.secret.clone_from(&a_secret);
    let rotated = admin
        .post(
            &format!("/apps/{a_id}/rotate-secret"),
            json!({"grace_period_secs": 3600}),
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, a_secret);
    assert!(rotated.body["previous_secret_expires_at"].is_i64());
    assert_eq!(
        rest.trigger("c", "e", "d").await.status,
        200,
        "old secret during the grace period"
    );
    let rotated = admin
        .post(&format!("/apps/{a_id}/rotate-secret"), json!({}))
        .await;
    let newest = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        rest.trigger("c", "e", "d").await.status,
        401,
        "old secret after a rotation without grace"
    );
    rest.secret = newest;
    assert_eq!(rest.trigger("c", "e", "d").await.status, 200);
    let bad = admin
        .post(
            &format!("/apps/{a_id}/rotate-secret"),
            json!({"grace_period_secs": 99_999_999}),
        )
        .await;
    assert_eq!(bad.status, 422);

    // Delete: A's clients are closed with 4001.
    let mut a = Client::open(&url).await;
    a.established().await;
    assert_eq!(admin.delete(&format!("/apps/{a_id}")).await.status, 204);
    a.expect_refusal(4001).await;
    Client::open(&url).await.expect_refusal(4001).await;

    // B never noticed any of it, and still receives events.
    alive(&mut b).await;
    let mut b_rest = server.rest();
    b_rest.app_id = admin
        .get("/apps")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|app| app["name"] == "B")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_app = admin.get(&format!("/apps/{}", b_rest.app_id)).await.body;
    b_rest.key = b_app["key"].as_str().unwrap().to_owned();
    b_rest.secret = b_app["secret"].as_str().unwrap().to_owned();
    assert_eq!(b_rest.trigger("b-news", "still", "here").await.status, 200);
    assert_eq!(b.expect_event("still").await["data"], "here");
}

#[actix_rt::test]
async fn audit_log_records_every_change_with_secrets_masked() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let (id, _, secret) = app_of(&admin.post("/apps", json!({"name": "Audited"})).await.body);
    admin
        .patch(&format!("/apps/{id}"), json!({"enabled": false}))
        .await;
    admin
        .post(&format!("/apps/{id}/rotate-secret"), json!({}))
        .await;
    let token = admin.post("/tokens", json!({"name": "bot"})).await.body;
    let bot = Admin {
        bearer: token["token"].as_str().map(str::to_owned),
        ..server.admin()
    };
    bot.delete(&format!("/apps/{id}")).await;

    let page = admin.get("/audit?per_page=50").await.body;
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "app.delete",
            "token.create",
            "app.rotate_secret",
            "app.update",
            "app.create",
            "user.create",
            // The harness's own app, created through the same service as every other.
            "app.create"
        ]
    );
    assert!(
        !page.to_string().contains(&secret),
        "secrets never reach the audit log"
    );
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(
        entries[0]["actor"],
        format!("token:bot (user:{ADMIN_EMAIL})")
    );
    assert_eq!(entries[3]["actor"], format!("user:{ADMIN_EMAIL}"));
    assert_eq!(
        (
            entries[3]["before"]["enabled"].as_bool(),
            entries[3]["after"]["enabled"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert_eq!(entries[3]["after"]["secret"], "***");
    assert_eq!(entries[6]["actor"], "server");
    assert_eq!(page["total"], 7);

    let second = admin.get("/audit?page=2&per_page=4").await.body;
    let actions: Vec<&str> = second["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["app.create", "user.create", "app.create"]);
    assert_eq!(admin.get("/audit?per_page=0").await.status, 422);
    assert_eq!(server.admin().get("/audit").await.status, 401);
}

#[actix_rt::test]
async fn openapi_document_lists_every_endpoint() {
    let server = TestServer::start().await;
    let doc = server.admin().get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with('3'));
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/admin/api/setup", &["get", "post"][..]),
        ("/admin/api/login", &["post"]),
        ("/admin/api/logout", &["post"]),
        ("/admin/api/me", &["get"]),
        ("/admin/api/users", &["get", "post"]),
        ("/admin/api/users/{id}", &["patch", "delete"]),
        ("/admin/api/tokens", &["get", "post"]),
        ("/admin/api/tokens/{id}", &["delete"]),
        ("/admin/api/apps", &["get", "post"]),
        ("/admin/api/apps/{id}", &["get", "patch", "delete"]),
        ("/admin/api/apps/{id}/rotate-secret", &["post"]),
        ("/admin/api/audit", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths[path].get(*method).is_some(),
                "{method} {path} missing"
            );
        }
    }
    let schemes = doc.body["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    assert!(schemes.contains_key("session") && schemes.contains_key("token"));
}
