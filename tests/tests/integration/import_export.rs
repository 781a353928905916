//! Issue 19, moving in without touching clients: apps created with the credentials they had
//! elsewhere, and `app import` / `app export` of the formats of the servers people leave
//! (fixtures in `tests/fixtures/import/`). Each imported app is then used the way its clients
//! use it: a WebSocket client connects with the imported key, and a REST trigger signed with
//! the imported secret reaches it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use reverb_pusher::apps::transfer::{self, Format};
use reverb_pusher_tests::{Admin, Client, Received, Rest, TestServer, WAIT};
use serde_json::{json, Value};

/// An app's id, key and secret.
type Credentials = (&'static str, &'static str, &'static str);

/// The fixtures and what each holds: its format and the apps in it.
const FIXTURES: &[(&str, Format, &[Credentials])] = &[
    (
        "soketi.json",
        Format::Soketi,
        &[("soketi-1", "soketi-key-1", "soketi-secret-1")],
    ),
    (
        "soketi-sql.json",
        Format::SoketiSqlJson,
        &[("4201", "sql-json-key", "sql-json-secret")],
    ),
    (
        "soketi-sql.csv",
        Format::SoketiSqlCsv,
        &[("4202", "sql-csv-key", "sql-csv-secret")],
    ),
    (
        "sockudo.json",
        Format::Sockudo,
        &[("sockudo-1", "sockudo-key", "sockudo-secret")],
    ),
    (
        "reverb.env",
        Format::ReverbEnv,
        &[("448113", "qnyn8aawr0dxc2rxzdsd", "kzz1fdrbbfoqx0lnvs1a")],
    ),
    (
        "reverb.json",
        Format::ReverbJson,
        &[("reverb-json", "reverb-json-key", "reverb-json-secret")],
    ),
    (
        "laravel-websockets.json",
        Format::LaravelWebsockets,
        &[("lws-1", "lws-key", "lws-secret-123")],
    ),
    (
        "pusher.csv",
        Format::PusherCsv,
        &[
            ("1234567", "0123456789abcdef0123", "fedcba9876543210fedc"),
            ("1234568", "1123456789abcdef0123", "aedcba9876543210fedc"),
        ],
    ),
];

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/import")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture")
}

/// A signed REST client for an app with these credentials.
fn rest(server: &TestServer, id: &str, key: &str, secret: &str) -> Rest {
    Rest {
        base: server.http_url(""),
        app_id: id.to_owned(),
        key: key.to_owned(),
        secret: secret.to_owned(),
    }
}

/// A client connects with `key` (waiting up to `within` for the app to be running), and an
/// event triggered with `secret` reaches it.
async fn used_by_clients(
    server: &TestServer,
    (id, key, secret): (&str, &str, &str),
    within: Duration,
) {
    let deadline = Instant::now() + within;
    let mut client = loop {
        let mut client = Client::open(&server.ws_url(key)).await;
        if let Some(Received::Json(frame)) = client.next_within(WAIT).await {
            if frame["event"] == "pusher:connection_established" {
                break client;
            }
        }
        assert!(Instant::now() < deadline, "app {id}: key {key} refused");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    let subscribed = client.subscribe("moving-in").await;
    assert_eq!(
        subscribed["event"], "pusher_internal:subscription_succeeded",
        "{subscribed}"
    );
    let sent = rest(server, id, key, secret)
        .trigger("moving-in", "arrived", r#"{"from":"elsewhere"}"#)
        .await;
    assert_eq!(sent.status, 200, "app {id}: {:?}", sent.body);
    let event = client.expect_event("arrived").await;
    assert_eq!(event["data"], r#"{"from":"elsewhere"}"#);
}

async fn import(admin: &Admin, text: &str, format: Option<Format>, dry_run: bool) -> (u16, Value) {
    let response = admin
        .post(
            "/apps/import",
            json!({"text": text, "format": format, "dry_run": dry_run}),
        )
        .await;
    (response.status, response.body)
}

fn actions(report: &Value) -> Vec<String> {
    report["apps"]
        .as_array()
        .unwrap_or_else(|| panic!("no apps in {report}"))
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn audit_total(admin: &Admin) -> u64 {
    admin.get("/audit").await.body["total"].as_u64().unwrap()
}

#[actix_rt::test]
async fn issue_19_apps_keep_the_credentials_they_are_created_with() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let kept = ("1234500", "0123456789abcdef9999", "fedcba9876543210aaaa");
    let created = admin
        .post(
            "/apps",
            json!({"name": "From Pusher", "id": kept.0, "key": kept.1, "secret": kept.2}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(
        (
            &created.body["id"],
            &created.body["key"],
            &created.body["secret"]
        ),
        (&json!(kept.0), &json!(kept.1), &json!(kept.2))
    );
    used_by_clients(&server, kept, WAIT).await;

    // Left out, the credentials are generated as before.
    let generated = admin
        .post("/apps", json!({"name": "fresh", "key": "only-the-key"}))
        .await;
    assert_eq!(generated.status, 201);
    assert!(generated.body["id"]
        .as_str()
        .unwrap()
        .chars()
        .all(|c| c.is_ascii_digit()));
    assert_eq!(generated.body["key"], "only-the-key");
    assert_eq!(generated.body["secret"].as_str().unwrap().len(), 32);

    // Each refusal names its field; nothing is created.
    let long_id = "1".repeat(33);
    let refusals = [
        (json!({"name": "x", "key": "bad:key"}), 422, "key"),
        (json!({"name": "x", "key": "has space"}), 422, "key"),
        (json!({"name": "x", "id": long_id}), 422, "id"),
        (json!({"name": "x", "id": "a/b"}), 422, "id"),
        (json!({"name": "x", "key": "k".repeat(65)}), 422, "key"),
        (json!({"name": "x", "secret": "short"}), 422, "secret"),
        (json!({"name": "x", "secret": "has a space"}), 422, "secret"),
        (json!({"name": "x", "id": kept.0}), 409, "id"),
        (json!({"name": "x", "key": kept.1}), 409, "key"),
        (json!({"name": "x", "key": server.app.key}), 409, "key"),
    ];
    for (body, status, field) in refusals {
        let refused = admin.post("/apps", body.clone()).await;
        assert_eq!(refused.status, status, "{body}: {:?}", refused.body);
        assert_eq!(refused.body["field"], field, "{body}: {:?}", refused.body);
        let kind = if status == 409 {
            "conflict"
        } else {
            "validation_failed"
        };
        assert_eq!(refused.body["error"], kind, "{body}");
        assert!(
            !refused.body["message"].as_str().unwrap().contains("short"),
            "no secret echoed"
        );
    }
    assert_eq!(
        refused_conflict_message(&admin, json!({"name": "x", "key": kept.1})).await,
        "another app uses this key already"
    );
    let apps = admin.get("/apps").await.body;
    assert_eq!(apps.as_array().unwrap().len(), 3, "{apps}");
}

async fn refused_conflict_message(admin: &Admin, body: Value) -> String {
    admin.post("/apps", body).await.body["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Two requests race for one key: the database's unique constraint lets exactly one win, and
/// the other is told which field collided.
#[actix_rt::test]
async fn issue_19_a_race_for_one_key_has_one_winner() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let bodies: Vec<Value> = (0..6)
        .map(|i| json!({"name": format!("racer {i}"), "key": "contested-key"}))
        .collect();
    let responses =
        futures_util::future::join_all(bodies.iter().map(|b| admin.post("/apps", b.clone()))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    for lost in responses.iter().filter(|r| r.status != 201) {
        assert_eq!(
            (lost.status, &lost.body["field"]),
            (409, &json!("key")),
            "{:?}",
            lost.body
        );
    }
}

#[actix_rt::test]
async fn issue_19_every_format_imports_and_clients_keep_working() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    for (file, format, apps) in FIXTURES {
        let text = fixture(file);
        // A dry run, with the format detected: the plan, and no change at all.
        let audit_before = audit_total(&admin).await;
        let (status, plan) = import(&admin, &text, None, true).await;
        assert_eq!(status, 200, "{file}: {plan}");
        assert_eq!(plan["format"], format.name(), "{file}");
        assert_eq!(plan["applied"], false);
        assert!(
            actions(&plan).iter().all(|a| a == "create"),
            "{file}: {plan}"
        );
        assert_eq!(
            audit_total(&admin).await,
            audit_before,
            "{file}: the dry run wrote"
        );
        for (id, ..) in *apps {
            assert_eq!(
                admin.get(&format!("/apps/{id}")).await.status,
                404,
                "{file}: dry run created {id}"
            );
        }

        let (status, done) = import(&admin, &text, None, false).await;
        assert_eq!(status, 200, "{file}: {done}");
        assert_eq!(done["applied"], true);
        assert!(
            !done.to_string().contains(apps[0].2),
            "{file}: the report shows a secret"
        );
        for app in *apps {
            // Applied live by the admin API: usable at once.
            used_by_clients(&server, *app, Duration::ZERO).await;
        }

        // The same file again: every app unchanged, nothing written.
        let audit_after = audit_total(&admin).await;
        let (status, again) = import(&admin, &text, Some(*format), false).await;
        assert_eq!(status, 200, "{file}: {again}");
        assert!(
            actions(&again).iter().all(|a| a == "unchanged"),
            "{file}: {again}"
        );
        assert_eq!(
            audit_total(&admin).await,
            audit_after,
            "{file}: a repeated import wrote"
        );
    }

    // The settings of the fixtures arrived, and what has no counterpart was reported.
    let soketi = admin.get("/apps/soketi-1").await.body;
    assert_eq!(soketi["limits"]["max_connections"], 100);
    assert_eq!(soketi["limits"]["max_event_payload_bytes"], 20 * 1024);
    assert_eq!(soketi["limits"]["max_presence_member_size_bytes"], 2 * 1024);
    assert_eq!(soketi["limits"]["max_client_events_per_second"], 20);
    assert_eq!(soketi["limits"]["max_backend_events_per_second"], 100);
    let lws = admin.get("/apps/lws-1").await.body;
    assert_eq!(
        (&lws["name"], &lws["client_events"]),
        (&json!("Legacy app"), &json!(false))
    );
    assert_eq!(lws["limits"]["max_connections"], 500);
    assert_eq!(admin.get("/apps/1234568").await.body["name"], "Shop US");
    let (_, plan) = import(&admin, &fixture("soketi.json"), None, true).await;
    let unmapped: Vec<&str> = plan["apps"][0]["unmapped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(unmapped.len(), 1, "{unmapped:?}");
    assert!(unmapped[0].starts_with("webhooks = "), "{unmapped:?}");

    // The imports are in the audit log, secrets masked.
    let audit = admin.get("/audit").await.body;
    let text = audit.to_string();
    assert!(text.contains("app.import"), "{text}");
    assert!(!text.contains("soketi-secret-1"));
}

#[actix_rt::test]
async fn issue_19_an_import_with_a_conflict_changes_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    // The second app of the file wants the key of the server's own app.
    let text = format!(
        "id,key,secret,name\n900001,free-key,secret-one-1,One\n900002,{},secret-two-2,Two\n",
        server.app.key
    );
    let (status, body) = import(&admin, &text, None, false).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "import_refused");
    assert_eq!(actions(&body["report"]), ["create", "conflict"]);
    assert_eq!(
        body["report"]["apps"][1]["message"],
        format!("the key belongs to app {}", server.app.id)
    );
    assert_eq!(
        admin.get("/apps/900001").await.status,
        404,
        "nothing was created"
    );

    // An unreadable file, an undetectable one and a bad format name are clear errors.
    let (status, body) = import(&admin, "{not json", None, false).await;
    assert_eq!((status, &body["field"]), (422, &json!("text")), "{body}");
    let (status, body) = import(&admin, "just words", None, false).await;
    assert_eq!((status, &body["field"]), (422, &json!("format")), "{body}");
    let bad = admin
        .post("/apps/import", json!({"text": "x", "format": "pusher-xml"}))
        .await;
    assert_eq!(bad.status, 422, "{:?}", bad.body);
}

/// Export, then import the result: nothing to do, for every format. And an export without
/// secrets never carries one, and cannot create apps elsewhere (updates keep their secret).
#[actix_rt::test]
async fn issue_19_export_then_import_is_identity() {
    let server = TestServer::start().await;
    let admin = server.admin_logged_in().await;
    let patched = admin
        .patch(
            &format!("/apps/{}", server.app.id),
            json!({
                "name": "Shop, \"EU\"",
                "client_events": false,
                "allowed_origins": ["https://shop.test"],
                "limits": {"max_connections": 77, "max_event_payload_bytes": 3000,
                           "max_presence_member_size_bytes": 1500}
            }),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let other = admin
        .post(
            "/apps",
            json!({"name": "second", "id": "second-app", "key": "second-key"}),
        )
        .await;
    assert_eq!(other.status, 201);
    let stored = server.server.apps.list().await.unwrap();
    for format in Format::ALL {
        let apps = if format == Format::ReverbEnv {
            &stored[..1]
        } else {
            &stored[..]
        };
        let text = transfer::export(apps, format, true).unwrap();
        let (status, report) = import(&admin, &text, Some(format), true).await;
        assert_eq!(status, 200, "{format}: {report}");
        assert!(
            actions(&report).iter().all(|a| a == "unchanged"),
            "{format}: {report}\n{text}"
        );
        assert!(
            report["apps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["unmapped"] == json!([])),
            "{format}: {report}"
        );

        let hidden = transfer::export(apps, format, false).unwrap();
        assert!(!hidden.contains(&server.app.secret), "{format}");
        let (status, report) = import(&admin, &hidden, Some(format), true).await;
        assert_eq!(status, 200, "{format}: {report}");
        assert!(
            actions(&report).iter().all(|a| a == "unchanged"),
            "{format}: {report}"
        );
    }

    // Into a new server: the apps arrive as they were, for what the format carries.
    let fresh = TestServer::start().await;
    let fresh_admin = fresh.admin_logged_in().await;
    let text = transfer::export(&stored, Format::LaravelWebsockets, true).unwrap();
    let (status, report) = import(&fresh_admin, &text, None, false).await;
    assert_eq!(status, 200, "{report}");
    let moved = fresh_admin
        .get(&format!("/apps/{}", server.app.id))
        .await
        .body;
    for field in ["name", "key", "secret", "client_events", "allowed_origins"] {
        assert_eq!(moved[field], patched.body[field], "{field}");
    }
    assert_eq!(moved["limits"]["max_connections"], 77);
    let hidden = transfer::export(&stored, Format::PusherCsv, false).unwrap();
    let other_server = TestServer::start().await;
    let (status, report) =
        import(&other_server.admin_logged_in().await, &hidden, None, false).await;
    assert_eq!(status, 422, "{report}");
    assert!(report["report"]["apps"][0]["message"]
        .as_str()
        .unwrap()
        .contains("--with-secrets"));
}

/// Runs `reverb-pusher ARGS` in-process against the server's database, as a person would.
async fn cli(server: &TestServer, dir: &std::path::Path, args: &[&str]) -> ExitCode {
    let config = dir.join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = {:?}\nmaster_key_file = {:?}\n",
            server.settings.database_url, server.settings.master_key_file
        ),
    )
    .unwrap();
    let mut argv: Vec<String> = vec![
        "reverb-pusher".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    // The CLI runs its own runtime: off this test's.
    actix_web::rt::task::spawn_blocking(move || reverb_pusher::cli::run(argv))
        .await
        .unwrap()
}

#[actix_rt::test]
async fn issue_19_cli_create_import_export_and_exit_codes() {
    let server = TestServer::start_with(|s| s.app_sync_interval_ms = 100, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let kept = ("777001", "cli-kept-key", "cli-kept-secret");
    let create = [
        "app", "create", "--name", "kept", "--id", kept.0, "--key", kept.1, "--secret", kept.2,
    ];
    assert_eq!(cli(&server, dir.path(), &create).await, ExitCode::SUCCESS);
    used_by_clients(&server, kept, Duration::from_secs(5)).await;
    // The same id or key again, or a bad one: a message and a non-zero exit, nothing stored.
    assert_eq!(cli(&server, dir.path(), &create).await, ExitCode::FAILURE);
    let taken_key = ["app", "create", "--name", "x", "--key", kept.1];
    assert_eq!(
        cli(&server, dir.path(), &taken_key).await,
        ExitCode::FAILURE
    );
    let bad_key = ["app", "create", "--name", "x", "--key", "a:b"];
    assert_eq!(cli(&server, dir.path(), &bad_key).await, ExitCode::FAILURE);
    assert_eq!(server.server.apps.list().await.unwrap().len(), 2);

    // Import: a dry run changes nothing; the real one is picked up by the running server.
    let file = fixture_path("pusher.csv").display().to_string();
    let dry = ["app", "import", &file, "--dry-run"];
    assert_eq!(cli(&server, dir.path(), &dry).await, ExitCode::SUCCESS);
    assert_eq!(
        server.server.apps.list().await.unwrap().len(),
        2,
        "the dry run created apps"
    );
    assert_eq!(
        cli(&server, dir.path(), &["app", "import", &file]).await,
        ExitCode::SUCCESS
    );
    for app in FIXTURES.iter().find(|f| f.0 == "pusher.csv").unwrap().2 {
        used_by_clients(&server, *app, Duration::from_secs(5)).await;
    }
    let versions = |apps: Vec<reverb_pusher::apps::AppConfig>| -> Vec<(String, i64)> {
        apps.into_iter().map(|a| (a.id, a.version)).collect()
    };
    let before = versions(server.server.apps.list().await.unwrap());
    assert_eq!(
        cli(
            &server,
            dir.path(),
            &["app", "import", &file, "--format", "pusher-csv"]
        )
        .await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        versions(server.server.apps.list().await.unwrap()),
        before,
        "a second import changed apps"
    );

    // Refused imports: an unreadable file, a missing one, a conflicting one, an unknown format.
    let conflict = dir.path().join("conflict.csv");
    std::fs::write(
        &conflict,
        format!("999001,{},some-secret-1,Taken\n", kept.1),
    )
    .unwrap();
    let conflict = conflict.display().to_string();
    let garbage = dir.path().join("garbage.txt");
    std::fs::write(&garbage, "nothing to see").unwrap();
    let garbage = garbage.display().to_string();
    assert_eq!(
        cli(&server, dir.path(), &["app", "import", &conflict]).await,
        ExitCode::FAILURE
    );
    assert_eq!(
        cli(&server, dir.path(), &["app", "import", &garbage]).await,
        ExitCode::FAILURE
    );
    assert_eq!(
        cli(&server, dir.path(), &["app", "import", "/no/such/file"]).await,
        ExitCode::FAILURE
    );
    assert_eq!(
        cli(
            &server,
            dir.path(),
            &["app", "import", &file, "--format", "xml"]
        )
        .await,
        ExitCode::from(2)
    );
    assert_eq!(versions(server.server.apps.list().await.unwrap()), before);

    // Export: secrets only with the flag; the file written 0600; reverb-env holds one app.
    let out = dir.path().join("apps.json");
    let out_s = out.display().to_string();
    let export = ["app", "export", "--format", "soketi", "--output", &out_s];
    assert_eq!(cli(&server, dir.path(), &export).await, ExitCode::SUCCESS);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains(kept.1) && !text.contains(kept.2), "{text}");
    std::fs::remove_file(&out).unwrap();
    let with = [
        "app",
        "export",
        "--format",
        "soketi",
        "--with-secrets",
        "--output",
        &out_s,
    ];
    assert_eq!(cli(&server, dir.path(), &with).await, ExitCode::SUCCESS);
    assert!(std::fs::read_to_string(&out).unwrap().contains(kept.2));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (format, _) = transfer::parse(&std::fs::read_to_string(&out).unwrap(), None).unwrap();
    assert_eq!(format, Format::Soketi);
    assert_eq!(
        cli(
            &server,
            dir.path(),
            &["app", "export", "--format", "reverb-env"]
        )
        .await,
        ExitCode::FAILURE
    );
    assert_eq!(
        cli(
            &server,
            dir.path(),
            &["app", "export", "--format", "reverb-env", "--app", kept.0]
        )
        .await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        cli(
            &server,
            dir.path(),
            &["app", "export", "--format", "soketi", "--app", "nope"]
        )
        .await,
        ExitCode::FAILURE
    );
    // The export imports back with nothing to do.
    assert_eq!(
        cli(&server, dir.path(), &["app", "import", &out_s]).await,
        ExitCode::SUCCESS
    );
    assert_eq!(versions(server.server.apps.list().await.unwrap()), before);
}
