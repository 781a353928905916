//! Issue 13, the admin API and the HTTP surface around it: bounded password hashing, the login
//! throttle, password changes, revocation of open debug streams, the purge of expired
//! sessions, the panel's security headers, `/ready`, `/metrics` and the "last admin" rule.

use std::time::Duration;

use futures_util::StreamExt;
use reverb_pusher::db::admin::SessionRow;
use reverb_pusher::db::{now_unix, Db};
use reverb_pusher_tests::{Admin, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD, WAIT};
use serde_json::json;

/// A server that believes `X-Forwarded-For` from loopback, so that a test can act as many clients.
async fn behind_proxy() -> TestServer {
    TestServer::start_with(
        |s| s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()],
        |_| {},
    )
    .await
}

fn from(server: &TestServer, ip: &str) -> Admin {
    Admin {
        forwarded_for: Some(ip.to_owned()),
        ..server.admin()
    }
}

#[actix_rt::test]
async fn issue_13_password_hashing_is_bounded_and_a_flood_gets_429() {
    let server = behind_proxy().await;
    server.admin_logged_in().await;
    let attempts = (0..32).map(|i| {
        let client = from(&server, &format!("198.51.100.{i}"));
        async move {
            client
                .post(
                    "/login",
                    json!({"email": format!("user{i}@example.com"), "password": "wrong password"}),
                )
                .await
        }
    });
    let responses = futures_util::future::join_all(attempts).await;
    assert!(
        responses.iter().all(|r| r.status == 401 || r.status == 429),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let busy: Vec<_> = responses.iter().filter(|r| r.status == 429).collect();
    assert!(!busy.is_empty(), "hashes beyond the limit are refused");
    for response in busy {
        assert_eq!(response.body["error"], "busy", "{:?}", response.body);
        assert!(response.body["message"].is_string());
        assert!(response.headers.get("retry-after").is_some());
    }
}

#[actix_rt::test]
async fn issue_13_login_throttle_counts_per_address_and_per_account_separately() {
    let server = behind_proxy().await;
    server.admin_logged_in().await;

    // One address guessing across many accounts runs out of its own budget.
    let sprayer = from(&server, "203.0.113.7");
    for i in 0..20 {
        let email = format!("user{i}@example.com");
        let response = sprayer
            .post(
                "/login",
                json!({"email": email, "password": "wrong password"}),
            )
            .await;
        assert_eq!(response.status, 401, "attempt {i}: {:?}", response.body);
    }
    let refused = sprayer
        .post(
            "/login",
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (429, Some("too_many_attempts"))
    );
    assert!(refused.headers.get("retry-after").is_some());

    // Many addresses guessing one account lock that account, for everyone.
    for i in 0..5 {
        let response = from(&server, &format!("192.0.2.{i}"))
            .post(
                "/login",
                json!({"email": ADMIN_EMAIL, "password": "wrong password"}),
            )
            .await;
        assert_eq!(response.status, 401);
    }
    let locked = from(&server, "192.0.2.200")
        .post(
            "/login",
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(locked.status, 429, "{:?}", locked.body);
    // That address still has its own budget for other accounts.
    let other = from(&server, "192.0.2.200")
        .post(
            "/login",
            json!({"email": "someone@example.com", "password": "wrong password"}),
        )
        .await;
    assert_eq!(other.status, 401);
}

#[actix_rt::test]
async fn issue_13_own_password_change_needs_the_current_one_and_revokes_other_credentials() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let me = admin.get("/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut elsewhere = server.admin();
    assert_eq!(
        elsewhere.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status,
        200
    );
    let token = admin.post("/tokens", json!({"name": "ci"})).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bot = Admin {
        bearer: Some(token),
        ..server.admin()
    };
    let path = format!("/users/{me}");

    let missing = admin
        .patch(&path, json!({"password": "a brand new password"}))
        .await;
    assert_eq!(
        (missing.status, missing.body["field"].as_str()),
        (422, Some("current_password")),
        "{:?}",
        missing.body
    );
    let wrong = admin
        .patch(
            &path,
            json!({"password": "a brand new password", "current_password": "not the password"}),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.body["error"].as_str()),
        (403, Some("current_password_wrong"))
    );
    assert_eq!(bot.get("/apps").await.status, 200, "nothing changed yet");

    let changed = admin
        .patch(
            &path,
            json!({"password": "a brand new password", "current_password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(
        admin.get("/me").await.status,
        200,
        "the caller stays logged in"
    );
    assert_eq!(elsewhere.get("/me").await.status, 401, "other sessions end");
    assert_eq!(
        bot.get("/apps").await.status,
        401,
        "the user's tokens are revoked"
    );

    // Another admin's password: no current password, and their sessions and tokens end.
    let created = admin
        .post(
            "/users",
            json!({"email": "b@example.com", "name": "B", "password": "b's first password"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let b_id = created.body["id"].as_str().unwrap().to_owned();
    let mut b = server.admin();
    assert_eq!(
        b.login("b@example.com", "b's first password").await.status,
        200
    );
    let b_token = b.post("/tokens", json!({"name": "b"})).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_bot = Admin {
        bearer: Some(b_token),
        ..server.admin()
    };
    let reset = admin
        .patch(
            &format!("/users/{b_id}"),
            json!({"password": "set by the admin"}),
        )
        .await;
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    assert_eq!(b.get("/me").await.status, 401);
    assert_eq!(b_bot.get("/apps").await.status, 401);
}

/// Opens the debug stream of `app_id` as `admin` and reads its first chunk.
async fn open_debug(admin: &Admin, app_id: &str) -> awc::ClientResponse {
    let mut request = awc::Client::new()
        .get(format!("{}/apps/{app_id}/debug", admin.base))
        .timeout(Duration::from_secs(60));
    if let Some(cookie) = &admin.cookie {
        request = request.insert_header(("cookie", cookie.clone()));
    }
    if let Some(token) = &admin.bearer {
        request = request.insert_header(("authorization", format!("Bearer {token}")));
    }
    let mut response = request.send().await.expect("debug stream");
    assert_eq!(response.status().as_u16(), 200);
    let first = tokio::time::timeout(WAIT, response.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "the stream opens");
    response
}

/// Whether the stream ends within `within`.
async fn ends_within(response: &mut awc::ClientResponse, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        while let Some(Ok(_)) = response.next().await {}
    })
    .await
    .is_ok()
}

#[actix_rt::test]
async fn issue_13_debug_stream_ends_when_its_token_or_session_is_revoked() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let created = admin.post("/tokens", json!({"name": "watcher"})).await.body;
    let bot = Admin {
        bearer: created["token"].as_str().map(str::to_owned),
        ..server.admin()
    };
    let mut stream = open_debug(&bot, &server.app.id).await;
    let token_id = created["id"].as_str().unwrap();
    assert_eq!(
        admin.delete(&format!("/tokens/{token_id}")).await.status,
        204
    );
    assert!(
        ends_within(&mut stream, Duration::from_secs(5)).await,
        "the stream ends after the token is revoked"
    );

    let mut session = server.admin();
    assert_eq!(session.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    let mut stream = open_debug(&session, &server.app.id).await;
    assert_eq!(session.post("/logout", json!({})).await.status, 204);
    assert!(
        ends_within(&mut stream, Duration::from_secs(5)).await,
        "the stream ends after logout"
    );
}

#[actix_rt::test]
async fn issue_13_expired_sessions_are_purged_at_start() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let user_id = admin.get("/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let expired = SessionRow {
        token_hash: "expired-session-digest".into(),
        user_id,
        csrf_token: "csrf".into(),
        created_at: now_unix() - 100,
        expires_at: now_unix() - 10,
    };
    reverb_pusher::blocking(&server.server.db, move |db| db.insert_session(&expired))
        .await
        .unwrap();
    assert_eq!(sessions(&server.server.db).await, 2);

    // Another server on the same database purges at start.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = reverb_pusher::start(server.settings.clone(), listener)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while sessions(&server.server.db).await != 1 && std::time::Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sessions(&server.server.db).await,
        1,
        "only the live session is left"
    );
    assert_eq!(admin.get("/me").await.status, 200);
    other.shutdown().await;
}

async fn sessions(db: &Db) -> i64 {
    reverb_pusher::blocking(db, Db::count_sessions)
        .await
        .unwrap()
}

#[actix_rt::test]
async fn issue_13_panel_responses_forbid_framing_and_carry_a_strict_csp() {
    let server = TestServer::start().await;
    for path in [
        "/admin/",
        "/admin/apps",
        "/admin/api/setup",
        "/admin/api/me",
    ] {
        let response = awc::Client::new()
            .get(server.http_url(path))
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
}

#[actix_rt::test]
async fn issue_13_ready_does_not_leak_database_errors() {
    let server = TestServer::start_with(|s| s.database_pool_size = 1, |_| {}).await;
    let db = server.server.db.clone();
    // The pool's only connection is taken, so the readiness check times out.
    let conn = actix_web::web::block(move || db.conn())
        .await
        .unwrap()
        .expect("the pool's connection");
    let mut response = awc::Client::new()
        .get(server.http_url("/ready"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    drop(conn);
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        body["checks"]["database"],
        json!({"ok": false, "error": "the database did not answer"}),
        "{body}"
    );
}

#[actix_rt::test]
async fn issue_13_metrics_without_a_token_answer_only_local_peers() {
    let server = TestServer::start().await;
    let get = |forwarded: Option<&'static str>| {
        let mut request = awc::Client::new().get(server.http_url("/metrics"));
        if let Some(ip) = forwarded {
            request = request.insert_header(("x-forwarded-for", ip));
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(None).await, 200, "a local scraper needs no token");
    assert_eq!(
        get(Some("203.0.113.9")).await,
        403,
        "a request relayed by a local proxy is not local"
    );
}

#[actix_rt::test]
async fn issue_13_concurrent_deletes_never_remove_the_last_admin() {
    const USERS: usize = 6;
    let server = TestServer::start().await;
    let first = server.admin_logged_in().await;
    let mut admins = vec![first.clone()];
    let mut ids = vec![first.get("/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned()];
    for i in 1..USERS {
        let email = format!("admin{i}@example.com");
        let created = first
            .post(
                "/users",
                json!({"email": email, "name": format!("Admin {i}"), "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
        let mut admin = server.admin();
        assert_eq!(admin.login(&email, ADMIN_PASSWORD).await.status, 200);
        admins.push(admin);
    }
    // Each admin deletes the next one, all at once: with a check-then-delete, every delete
    // sees six users and all of them go.
    let deletes = (0..USERS).map(|i| {
        let admin = admins[i].clone();
        let target = ids[(i + 1) % USERS].clone();
        async move { admin.delete(&format!("/users/{target}")).await.status }
    });
    let statuses = futures_util::future::join_all(deletes).await;
    assert!(
        statuses.iter().all(|s| [204, 401, 404, 409].contains(s)),
        "{statuses:?}"
    );
    let left = reverb_pusher::blocking(&server.server.db, Db::count_users)
        .await
        .unwrap();
    assert!(left >= 1, "no admin left: {statuses:?}");
}
