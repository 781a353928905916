//! One database per test server. SQLite by default; with `TEST_DATABASE_URL` set to a
//! PostgreSQL or MySQL/MariaDB server, a fresh database is created there for each test server
//! and dropped afterwards, so tests and concurrent runs never share state.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The database under test, dropped (on server backends) when this guard goes.
pub struct TestDb {
    pub url: String,
    cleanup: Option<(String, String)>,
}

/// The backend named by `TEST_DATABASE_URL` (SQLite when unset).
pub fn backend() -> &'static str {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => "postgres",
        Ok(url) if url.starts_with("mysql") || url.starts_with("mariadb") => "mysql",
        _ => "sqlite",
    }
}

impl TestDb {
    pub fn create(dir: &Path) -> Self {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            return Self {
                url: format!("sqlite://{}", dir.join("test.db").display()),
                cleanup: None,
            };
        };
        let name = format!(
            "rp_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        execute(&admin_url, &format!("CREATE DATABASE {name}"));
        // Connection options (`?sslmode=disable`, say) apply to the test's database too.
        let (base, options) = admin_url
            .split_once('?')
            .map_or((admin_url.as_str(), String::new()), |(base, options)| {
                (base, format!("?{options}"))
            });
        let (server, _) = base
            .rsplit_once('/')
            .expect("TEST_DATABASE_URL names a database");
        Self {
            url: format!("{server}/{name}{options}"),
            cleanup: Some((admin_url, name)),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.cleanup.take() {
            let force = if backend() == "postgres" {
                " WITH (FORCE)"
            } else {
                ""
            };
            if backend() == "mysql" {
                // MySQL has no FORCE: a session of the server under test still in a transaction
                // there would hold the drop on a metadata lock (for a year, by default).
                end_sessions_on(&admin_url, &name);
            }
            execute(
                &admin_url,
                &format!("DROP DATABASE IF EXISTS {name}{force}"),
            );
        }
    }
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos % 1_000_000
}

/// A connection of the test's own to an SQLite file that a running server also writes: it
/// waits for the server's write lock (up to 10 s) instead of failing at once with "database is
/// locked", as a plain connection does (SQLite's default busy timeout is zero).
pub fn sqlite_connection(path: &str) -> diesel::SqliteConnection {
    use diesel::connection::{Connection, SimpleConnection};
    let mut conn = diesel::SqliteConnection::establish(path).expect("open the SQLite file");
    conn.batch_execute("PRAGMA busy_timeout = 10000")
        .expect("set the busy timeout");
    conn
}

/// Ends every MySQL session using database `name`.
#[allow(unused_variables)]
fn end_sessions_on(url: &str, name: &str) {
    #[cfg(feature = "mysql")]
    {
        use diesel::connection::{Connection, SimpleConnection};
        use diesel::{sql_types::BigInt, sql_types::Unsigned, QueryableByName, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Session {
            #[diesel(sql_type = Unsigned<BigInt>)]
            id: u64,
        }
        let url = url.replacen("mariadb://", "mysql://", 1);
        let mut conn =
            diesel::MysqlConnection::establish(&url).expect("connect to TEST_DATABASE_URL");
        let sessions: Vec<Session> = diesel::sql_query(format!(
            "SELECT id FROM information_schema.processlist WHERE db = '{name}'"
        ))
        .load(&mut conn)
        .expect("list sessions");
        for session in sessions {
            // Gone already is fine.
            let _ = conn.batch_execute(&format!("KILL {}", session.id));
        }
    }
}

/// Runs one administrative statement on the server named by `url`.
#[allow(unused_variables)]
fn execute(url: &str, sql: &str) {
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres") {
        use diesel::connection::{Connection, SimpleConnection};
        let mut conn = diesel::PgConnection::establish(url).expect("connect to TEST_DATABASE_URL");
        conn.batch_execute(sql).expect("administrative statement");
        return;
    }
    #[cfg(feature = "mysql")]
    if url.starts_with("mysql") || url.starts_with("mariadb") {
        use diesel::connection::{Connection, SimpleConnection};
        let url = url.replacen("mariadb://", "mysql://", 1);
        let mut conn =
            diesel::MysqlConnection::establish(&url).expect("connect to TEST_DATABASE_URL");
        conn.batch_execute(sql).expect("administrative statement");
        return;
    }
    panic!("TEST_DATABASE_URL {url:?} needs the tests' postgres/mysql feature");
}
