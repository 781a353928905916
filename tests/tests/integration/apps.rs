//! Issue 13, app configuration: concurrent edits of one app all survive and memory matches the
//! database; apps created or changed with the CLI (its `AppService`, no actor system, same
//! database) take effect in a running server without a restart; new apps take the server's
//! `[default_app_limits]`.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reverb_pusher::apps::service::app_dto;
use reverb_pusher::apps::AppService;
use reverb_pusher::db::Db;
use reverb_pusher_tests::{Client, Received, TestServer, WAIT};
use serde_json::{json, Value};
use shared::admin::{AppLimitsPatch, AppPatch};
use shared::limits::LIMITS;

/// How long a change made elsewhere may take to reach the running server in these tests.
const DEADLINE: Duration = Duration::from_secs(5);

/// The CLI's view: the same service the `app` commands use, on the server's database, with no
/// actor system behind it.
async fn cli(server: &TestServer) -> AppService {
    let s = server.settings.clone();
    let db = actix_web::web::block(move || {
        Db::open(&s.database_url, s.pool_options(), &s.key_source().unwrap())
    })
    .await
    .unwrap()
    .expect("the CLI opens the server's database");
    AppService::new(db, server.settings.default_app_limits.clone())
}

/// Connects with `key` once the app is running.
async fn connect_within(server: &TestServer, key: &str) -> Client {
    server.connect_within(key, DEADLINE).await
}

/// The refusal code a new connection with `key` gets once the deadline allows for it.
async fn refused_within(server: &TestServer, key: &str, code: u16) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut client = Client::open(&server.ws_url(key)).await;
        let frame = client.next_within(WAIT).await;
        if let Some(Received::Json(frame)) = &frame {
            if frame["event"] == "pusher:error" && frame["data"]["code"] == code {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "connections were not refused with {code} within {DEADLINE:?}: {frame:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A value in range that differs from the default.
fn changed(default: u32, max: u32) -> u32 {
    if default < max {
        default + 1
    } else {
        default - 1
    }
}

#[actix_rt::test]
async fn issue_13_concurrent_app_edits_all_survive_and_memory_matches_the_database() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let path = format!("/apps/{}", server.app.id);
    let mut patches: Vec<Value> = LIMITS
        .iter()
        .map(|spec| json!({"limits": {spec.field: changed(spec.default, spec.max)}}))
        .collect();
    patches.extend([
        json!({"name": "renamed"}),
        json!({"allowed_origins": ["https://a.test"]}),
        json!({"client_events": false}),
        json!({"require_user_auth": true}),
        json!({"user_auth_timeout_secs": 31}),
        json!({"watchlist_events": false}),
        json!({"subscription_count_events": true}),
        json!({"enabled": false}),
    ]);
    assert!(patches.len() >= 20);
    let requests = patches.len() + 1;
    let rotate_path = format!("{path}/rotate-secret");
    let rotate = admin.post(&rotate_path, json!({"grace_period_secs": 600}));
    let (responses, rotated) = futures_util::join!(
        join_all(patches.iter().map(|p| admin.patch(&path, p.clone()))),
        rotate
    );
    for (patch, response) in patches.iter().zip(&responses) {
        assert_eq!(response.status, 200, "{patch}: {:?}", response.body);
    }
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);

    let live = admin.get(&path).await.body;
    for spec in &LIMITS {
        assert_eq!(
            live["limits"][spec.field],
            changed(spec.default, spec.max),
            "{} was lost",
            spec.field
        );
    }
    assert_eq!(live["name"], "renamed");
    assert_eq!(live["allowed_origins"], json!(["https://a.test"]));
    assert_eq!(
        (
            &live["client_events"],
            &live["require_user_auth"],
            &live["user_auth_timeout_secs"],
            &live["watchlist_events"],
            &live["subscription_count_events"],
            &live["enabled"],
        ),
        (
            &json!(false),
            &json!(true),
            &json!(31),
            &json!(false),
            &json!(true),
            &json!(false)
        )
    );
    assert_ne!(live["secret"], server.app.secret.as_str(), "rotation lost");
    assert!(live["previous_secret_expires_at"].is_i64(), "{live}");
    // One stored version per change, and memory holds the last of them.
    assert_eq!(live["version"], 1 + i64::try_from(requests).unwrap());
    let stored = server.server.apps.get(&server.app.id).await.unwrap();
    let mut stored = serde_json::to_value(app_dto(&stored, 0)).unwrap();
    stored["connections"] = live["connections"].clone();
    assert_eq!(live, stored, "the live config differs from the stored row");
}

#[actix_rt::test]
async fn issue_13_apps_created_and_changed_with_the_cli_apply_without_a_restart() {
    let server = TestServer::start_with(|s| s.app_sync_interval_ms = 100, |_| {}).await;
    let cli = cli(&server).await;
    let app = cli
        .create("cli", "made with the CLI", &AppPatch::default())
        .await
        .unwrap();
    let mut client = connect_within(&server, &app.key).await;

    // A limit changed with the CLI reaches the live configuration.
    let limits = AppLimitsPatch {
        max_channels: Some(3),
        ..AppLimitsPatch::default()
    };
    let patch = AppPatch {
        limits: Some(limits),
        ..AppPatch::default()
    };
    cli.update("cli", &app.id, patch).await.unwrap();
    let admin = server.admin_logged_in().await;
    let deadline = Instant::now() + DEADLINE;
    while admin.get(&format!("/apps/{}", app.id)).await.body["limits"]["max_channels"] != 3 {
        assert!(
            Instant::now() < deadline,
            "the CLI's change was not applied"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }

    // Disabled with the CLI: the open connection is closed and new ones are refused.
    cli.set_enabled("cli", &app.id, false).await.unwrap();
    client.expect_refusal(4003).await;
    refused_within(&server, &app.key, 4003).await;
    // The server's own app was never touched.
    server.connect().await;

    // Enabled again, then deleted with the CLI.
    cli.set_enabled("cli", &app.id, true).await.unwrap();
    let mut client = connect_within(&server, &app.key).await;
    cli.delete("cli", &app.id).await.unwrap();
    client.expect_refusal(4001).await;
    refused_within(&server, &app.key, 4001).await;
    let listed = admin.get("/apps").await.body;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

#[actix_rt::test]
async fn new_apps_take_the_default_limits_from_the_settings() {
    let server = TestServer::start_with(
        |s| {
            s.default_app_limits.max_channels = 50;
            s.default_app_limits.max_connections = 7;
        },
        |_| {},
    )
    .await;
    let admin = server.admin_logged_in().await;
    let created = admin
        .post(
            "/apps",
            json!({"name": "defaults", "limits": {"max_connections": 9}}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let limits = &created.body["limits"];
    assert_eq!(
        (
            &limits["max_channels"],
            &limits["max_connections"],
            &limits["max_channels_per_connection"]
        ),
        (&json!(50), &json!(9), &json!(100))
    );
    assert_eq!(created.body["version"], 1);

    // The new limits are checked like every other, the field named.
    let id = created.body["id"].as_str().unwrap();
    let refused = admin
        .patch(
            &format!("/apps/{id}"),
            json!({"limits": {"max_channels_per_connection": 0, "max_channels": 5}}),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.body,
        json!({
            "error": "validation_failed",
            "message": "limits.max_channels_per_connection must be between 1 and 10000",
            "field": "limits.max_channels_per_connection",
        })
    );
    let unchanged = admin.get(&format!("/apps/{id}")).await.body;
    assert_eq!(
        unchanged["limits"]["max_channels"], 50,
        "nothing was changed"
    );
    assert_eq!(unchanged["version"], 1);

    // The CLI's service uses the same defaults.
    let made = cli(&server)
        .await
        .create("cli", "cli defaults", &AppPatch::default())
        .await
        .unwrap();
    assert_eq!(
        (made.limits.max_channels, made.limits.max_connections),
        (50, 7)
    );
}
