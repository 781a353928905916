//! Storage on the backend named by `TEST_DATABASE_URL` (SQLite when unset): secrets at rest,
//! concurrent start-up, and a database outage that connected clients never notice.

use std::net::ToSocketAddrs;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use reverb_pusher::db::crypto::MasterKey;
use reverb_pusher::db::{Db, DbError, KeySource, PoolOptions};
use reverb_pusher_tests::{Proxy, TestDb, TestServer};

#[actix_rt::test]
async fn secret_column_holds_no_plaintext() {
    let server = TestServer::start().await;
    let stored = server.server.db.stored_secret(&server.app.id).unwrap();
    assert!(stored.starts_with("enc:v1:"), "{stored}");
    assert!(!stored.contains(&server.app.secret));
    // And the server still signs with the real secret.
    assert_eq!(server.rest().trigger("c", "e", "d").await.status, 200);
}

#[test]
fn two_nodes_starting_together_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(dir.path());
    let key = MasterKey::generate();
    let nodes: Vec<_> = (0..2)
        .map(|i| {
            let (url, key, file) = (
                db.url.clone(),
                key.clone(),
                dir.path().join(format!("k{i}")),
            );
            std::thread::spawn(move || {
                Db::open(
                    &url,
                    PoolOptions::default(),
                    &KeySource {
                        key: Some(key),
                        file,
                    },
                )
            })
        })
        .collect();
    let opened: Vec<Db> = nodes
        .into_iter()
        .map(|n| n.join().unwrap().expect("node starts"))
        .collect();
    let app = reverb_pusher::apps::AppConfig::generate("shared");
    opened[0].insert_app(&app).unwrap();
    assert_eq!(opened[1].list_apps().unwrap(), vec![app]);
}

/// Host and port of the database server named by `TEST_DATABASE_URL`.
fn database_server(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let host_port = rest
        .rsplit_once('@')
        .map_or(rest, |(_, h)| h)
        .split('/')
        .next()
        .unwrap();
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else if url.starts_with("postgres") {
        format!("{host_port}:5432")
    } else {
        format!("{host_port}:3306")
    };
    with_port.to_socket_addrs().unwrap().next().unwrap()
}

#[actix_rt::test]
async fn database_outage_leaves_clients_working_and_writes_recover() {
    let backend = reverb_pusher_tests::database::backend();
    let mut proxy = None;
    let server = if backend == "sqlite" {
        TestServer::start_with(|s| s.database_timeout_secs = 1, |_| {}).await
    } else {
        let target = database_server(&std::env::var("TEST_DATABASE_URL").unwrap());
        let p = Proxy::start(target);
        let addr = p.addr;
        proxy = Some(p);
        TestServer::start_with(
            move |s| {
                s.database_timeout_secs = 1;
                let (scheme, rest) = s.database_url.split_once("://").unwrap();
                let (auth, tail) = rest.rsplit_once('@').map_or(("", rest), |(a, t)| (a, t));
                let path = tail.split_once('/').unwrap().1;
                let auth = if auth.is_empty() {
                    String::new()
                } else {
                    format!("{auth}@")
                };
                s.database_url = format!("{scheme}://{auth}{addr}/{path}");
            },
            |_| {},
        )
        .await
    };
    let mut client = server.connect().await;
    client.subscribe("ops").await;
    let admin = server.admin_logged_in().await;
    let token = admin
        .post("/tokens", serde_json::json!({"name": "ops"}))
        .await
        .body["token"]
        .clone();
    let bot = reverb_pusher_tests::Admin {
        bearer: token.as_str().map(str::to_owned),
        ..server.admin()
    };
    let app_path = format!("/apps/{}", server.app.id);

    // The outage: the proxy drops every database connection (server backends), or another
    // process holds SQLite's write lock.
    let lock = if backend == "sqlite" {
        let path = server.database_url.strip_prefix("sqlite://").unwrap();
        let mut conn = reverb_pusher_tests::database::sqlite_connection(path);
        conn.batch_execute("BEGIN EXCLUSIVE").unwrap();
        Some(conn)
    } else {
        proxy.as_ref().unwrap().cut();
        None
    };

    let mut changed = server.app.clone();
    changed.name = "renamed during the outage".into();
    let write = server.server.update_app(changed.clone()).await;
    assert!(matches!(write, Err(DbError::Unavailable(_))), "{write:?}");
    let api_error = reverb_pusher::error::ApiError::from(write.unwrap_err());
    assert_eq!(api_error.status.as_u16(), 503);
    // Through the admin API: a clear 503, for the write and for the token check alike.
    let refused = bot
        .patch(&app_path, serde_json::json!({"name": "via the API"}))
        .await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (503, Some("database_unavailable"))
    );

    // Connected clients keep working from the in-memory configuration.
    assert_eq!(
        server.rest().trigger("ops", "still-here", "1").await.status,
        200
    );
    assert_eq!(client.expect_event("still-here").await["data"], "1");
    let mut late = server.connect().await;
    assert_eq!(
        late.subscribe("ops").await["event"],
        "pusher_internal:subscription_succeeded"
    );

    // The database comes back: the same write succeeds, with no restart.
    if let Some(mut conn) = lock {
        conn.batch_execute("ROLLBACK").unwrap();
    } else {
        proxy.as_ref().unwrap().restore();
    }
    let mut recovered = false;
    for _ in 0..20 {
        if server.server.update_app(changed.clone()).await.is_ok() {
            recovered = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "writes did not recover");
    let mut api_recovered = false;
    for _ in 0..20 {
        if bot
            .patch(&app_path, serde_json::json!({"name": "via the API"}))
            .await
            .status
            == 200
        {
            api_recovered = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(api_recovered, "admin API writes did not recover");
    // Through the blocking pool: this thread also runs the proxy.
    let stored = reverb_pusher::blocking(&server.server.db, Db::list_apps)
        .await
        .unwrap();
    assert_eq!(stored[0].name, "via the API");
}

/// What [`migrations`] does with the backend's migrations.
#[derive(Clone, Copy)]
enum Migrations {
    /// Apply the first n, as an older version did.
    RunFirst(usize),
    /// Undo the newest applied one (its `down.sql`).
    RevertLast,
}

/// Runs or reverts migrations of the backend under test directly, without the server.
fn migrations(url: &str, action: Migrations) {
    use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
    #[cfg(feature = "postgres")]
    const POSTGRES: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
    #[cfg(feature = "mysql")]
    const MYSQL: EmbeddedMigrations = embed_migrations!("../migrations/mysql");
    const SQLITE: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
    fn run<C: MigrationHarness<B>, B: diesel::backend::Backend>(
        conn: &mut C,
        migrations: impl Fn() -> EmbeddedMigrations,
        action: Migrations,
    ) {
        match action {
            Migrations::RunFirst(count) => {
                for _ in 0..count {
                    conn.run_next_migration(migrations()).unwrap();
                }
            }
            Migrations::RevertLast => {
                conn.revert_last_migration(migrations()).unwrap();
            }
        }
    }
    match reverb_pusher_tests::database::backend() {
        #[cfg(feature = "postgres")]
        "postgres" => run(
            &mut diesel::PgConnection::establish(url).unwrap(),
            || POSTGRES,
            action,
        ),
        #[cfg(feature = "mysql")]
        "mysql" => run(
            &mut diesel::MysqlConnection::establish(url).unwrap(),
            || MYSQL,
            action,
        ),
        _ => run(
            &mut reverb_pusher_tests::database::sqlite_connection(
                url.strip_prefix("sqlite://").unwrap(),
            ),
            || SQLITE,
            action,
        ),
    }
}

/// Runs one statement on the database under test.
fn execute(url: &str, sql: &str) {
    use diesel::RunQueryDsl;
    match reverb_pusher_tests::database::backend() {
        #[cfg(feature = "postgres")]
        "postgres" => diesel::sql_query(sql)
            .execute(&mut diesel::PgConnection::establish(url).unwrap())
            .unwrap(),
        #[cfg(feature = "mysql")]
        "mysql" => diesel::sql_query(sql)
            .execute(&mut diesel::MysqlConnection::establish(url).unwrap())
            .unwrap(),
        _ => diesel::sql_query(sql)
            .execute(&mut reverb_pusher_tests::database::sqlite_connection(
                url.strip_prefix("sqlite://").unwrap(),
            ))
            .unwrap(),
    };
}

/// Issue 13: the eleven limit columns became one JSON column with a version; rows written by
/// the older schema keep every value, and the limits added since take their defaults.
#[test]
fn limits_stored_in_columns_survive_the_move_to_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(dir.path());
    // The schema before the change: create_apps, admin_model, admin_sessions.
    migrations(&db.url, Migrations::RunFirst(3));
    execute(
        &db.url,
        "INSERT INTO apps (id, name, app_key, secret, allowed_origins, created_at, updated_at, \
         max_connections, max_client_events_per_second, max_event_payload_bytes, \
         cache_ttl_secs) \
         VALUES ('1', 'old', 'oldkey', 'oldsecret', '[\"https://a.test\"]', 0, 0, 42, 0, 2048, 99)",
    );
    let keys = KeySource {
        key: None,
        file: dir.path().join("master.key"),
    };
    let apps = Db::open(&db.url, PoolOptions::default(), &keys)
        .unwrap()
        .list_apps()
        .unwrap();
    let expected = shared::limits::AppLimits {
        max_connections: 42,
        max_client_events_per_second: 0,
        max_event_payload_bytes: 2048,
        cache_ttl_secs: 99,
        ..shared::limits::AppLimits::default()
    };
    assert_eq!(apps.len(), 1);
    assert_eq!(
        (
            apps[0].limits.clone(),
            apps[0].version,
            apps[0].secret.as_str(),
            apps[0].allowed_origins.clone()
        ),
        (
            expected.clone(),
            1,
            "oldsecret",
            vec!["https://a.test".to_owned()]
        )
    );

    // Down and up again: the columns get their values back from the JSON, and return to it.
    migrations(&db.url, Migrations::RevertLast);
    let again = Db::open(&db.url, PoolOptions::default(), &keys)
        .unwrap()
        .list_apps()
        .unwrap();
    assert_eq!(again[0].limits, expected);
}

/// One stored app that cannot be read (its row edited by hand) is left out, reported once;
/// it does not keep a server from starting or the other apps from running.
#[actix_rt::test]
async fn an_unreadable_app_row_does_not_keep_the_others_from_running() {
    let server = TestServer::start().await;
    let broken = server.server.create_app("broken").await.unwrap();
    execute(
        &server.database_url,
        &format!(
            "UPDATE apps SET limits = 'not json', version = version + 1 WHERE id = '{}'",
            broken.id
        ),
    );
    // A second server on the same database starts, with the readable app.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = reverb_pusher::start(server.settings.clone(), listener)
        .await
        .expect("a server starts despite one unreadable app");
    assert!(other.directory.by_id(&server.app.id).is_some());
    assert!(other.directory.by_id(&broken.id).is_none());
    let url = format!("ws://{}/app/{}?protocol=7", other.addr, server.app.key);
    reverb_pusher_tests::Client::open(&url)
        .await
        .established()
        .await;
    // The first server keeps running the broken app as it was, and everything else.
    assert_eq!(server.rest().trigger("c", "e", "d").await.status, 200);
    assert!(server.server.directory.by_id(&broken.id).is_some());
}
