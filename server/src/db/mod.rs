//! Persistent storage: the connection pool, embedded migrations and the app table.
//!
//! All functions here block; callers on async threads run them through `web::block` or
//! `spawn_blocking`. The protocol hot path never calls into this module.

pub mod schema;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::apps::{AppConfig, AppLimits};
use schema::apps;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

pub type DbPool = Pool<ConnectionManager<SqliteConnection>>;
pub type DbConn = PooledConnection<ConnectionManager<SqliteConnection>>;

/// A storage failure, with a message safe to show (no secrets, no SQL).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH (or a plain file path)")]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where an `SQLite` database lives, parsed from the configured URL. The scheme is explicit so
/// that a mistyped URL of another backend is an error instead of a new file with that name.
fn sqlite_path(url: &str) -> Result<String, DbError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(path.to_owned());
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        return Ok(path.to_owned());
    }
    if url.contains("://") || url.is_empty() {
        return Err(DbError::UnsupportedUrl(url.to_owned()));
    }
    Ok(url.to_owned())
}

/// Per-connection `SQLite` set-up: WAL for concurrent readers, a busy timeout instead of
/// immediate "database is locked" errors, and enforced foreign keys.
#[derive(Debug)]
struct SqliteSetup;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteSetup {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        diesel::sql_query(
            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
             PRAGMA synchronous = NORMAL;",
        )
        .execute(conn)
        .map(|_| ())
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens the pool and applies pending migrations.
pub fn connect(url: &str) -> Result<DbPool, DbError> {
    let path = sqlite_path(url)?;
    if path != ":memory:" {
        if let Some(parent) = std::path::Path::new(&path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| DbError::Folder {
                    path: parent.to_owned(),
                    source,
                })?;
            }
        }
    }
    let pool = Pool::builder()
        .max_size(4)
        .connection_timeout(Duration::from_secs(5))
        .connection_customizer(Box::new(SqliteSetup))
        .build(ConnectionManager::<SqliteConnection>::new(path))?;
    let mut conn = pool.get()?;
    migrate(&mut conn)?;
    drop(conn);
    Ok(pool)
}

/// Applies the embedded migrations that have not run yet.
pub fn migrate(conn: &mut SqliteConnection) -> Result<(), DbError> {
    conn.run_pending_migrations(SQLITE_MIGRATIONS)
        .map(|_| ())
        .map_err(|e| DbError::Migration(e.to_string()))
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Debug, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = apps)]
struct AppRow {
    id: String,
    name: String,
    app_key: String,
    secret: String,
    enabled: bool,
    allowed_origins: String,
    client_events: bool,
    require_user_auth: bool,
    user_auth_timeout_secs: i32,
    watchlist_events: bool,
    subscription_count_events: bool,
    max_connections: i32,
    max_client_events_per_second: i32,
    max_channel_name_length: i32,
    max_event_name_length: i32,
    max_event_payload_bytes: i32,
    max_event_channels_at_once: i32,
    max_event_batch_size: i32,
    max_presence_members: i32,
    max_presence_member_size_bytes: i32,
    max_user_id_length: i32,
    cache_ttl_secs: i32,
    created_at: i64,
    updated_at: i64,
}

fn to_u32(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl From<AppRow> for AppConfig {
    fn from(r: AppRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            key: r.app_key,
            secret: r.secret,
            enabled: r.enabled,
            allowed_origins: serde_json::from_str(&r.allowed_origins).unwrap_or_default(),
            client_events: r.client_events,
            require_user_auth: r.require_user_auth,
            user_auth_timeout_secs: to_u32(r.user_auth_timeout_secs),
            watchlist_events: r.watchlist_events,
            subscription_count_events: r.subscription_count_events,
            limits: AppLimits {
                max_connections: to_u32(r.max_connections),
                max_client_events_per_second: to_u32(r.max_client_events_per_second),
                max_channel_name_length: to_u32(r.max_channel_name_length),
                max_event_name_length: to_u32(r.max_event_name_length),
                max_event_payload_bytes: to_u32(r.max_event_payload_bytes),
                max_event_channels_at_once: to_u32(r.max_event_channels_at_once),
                max_event_batch_size: to_u32(r.max_event_batch_size),
                max_presence_members: to_u32(r.max_presence_members),
                max_presence_member_size_bytes: to_u32(r.max_presence_member_size_bytes),
                max_user_id_length: to_u32(r.max_user_id_length),
                cache_ttl_secs: to_u32(r.cache_ttl_secs),
            },
        }
    }
}

impl AppRow {
    fn from_config(c: &AppConfig, created_at: i64, updated_at: i64) -> Self {
        let l = &c.limits;
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            app_key: c.key.clone(),
            secret: c.secret.clone(),
            enabled: c.enabled,
            allowed_origins: serde_json::to_string(&c.allowed_origins)
                .unwrap_or_else(|_| "[]".into()),
            client_events: c.client_events,
            require_user_auth: c.require_user_auth,
            user_auth_timeout_secs: to_i32(c.user_auth_timeout_secs),
            watchlist_events: c.watchlist_events,
            subscription_count_events: c.subscription_count_events,
            max_connections: to_i32(l.max_connections),
            max_client_events_per_second: to_i32(l.max_client_events_per_second),
            max_channel_name_length: to_i32(l.max_channel_name_length),
            max_event_name_length: to_i32(l.max_event_name_length),
            max_event_payload_bytes: to_i32(l.max_event_payload_bytes),
            max_event_channels_at_once: to_i32(l.max_event_channels_at_once),
            max_event_batch_size: to_i32(l.max_event_batch_size),
            max_presence_members: to_i32(l.max_presence_members),
            max_presence_member_size_bytes: to_i32(l.max_presence_member_size_bytes),
            max_user_id_length: to_i32(l.max_user_id_length),
            cache_ttl_secs: to_i32(l.cache_ttl_secs),
            created_at,
            updated_at,
        }
    }
}

/// Every app, oldest first.
pub fn list_apps(conn: &mut DbConn) -> Result<Vec<AppConfig>, DbError> {
    let rows = apps::table
        .order(apps::created_at.asc())
        .select(AppRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(AppConfig::from).collect())
}

/// Stores a new app.
pub fn insert_app(conn: &mut DbConn, app: &AppConfig) -> Result<(), DbError> {
    let now = now_unix();
    diesel::insert_into(apps::table)
        .values(AppRow::from_config(app, now, now))
        .execute(conn)?;
    Ok(())
}

/// Stores a changed app (every field but the creation time).
pub fn update_app(conn: &mut DbConn, app: &AppConfig) -> Result<(), DbError> {
    let created: i64 = apps::table
        .find(&app.id)
        .select(apps::created_at)
        .first(conn)?;
    diesel::update(apps::table.find(&app.id))
        .set(AppRow::from_config(app, created, now_unix()))
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_is_explicit() {
        assert_eq!(sqlite_path("sqlite://data/x.db").unwrap(), "data/x.db");
        assert_eq!(sqlite_path("sqlite::memory:").unwrap(), ":memory:");
        assert_eq!(sqlite_path("x.db").unwrap(), "x.db");
        assert!(sqlite_path("postgress://localhost/db").is_err());
        assert!(sqlite_path("").is_err());
    }

    #[test]
    fn apps_round_trip() {
        let dir = std::env::temp_dir().join(format!("rp-db-{}", std::process::id()));
        let pool = connect(dir.join("t.db").to_str().unwrap()).unwrap();
        let mut conn = pool.get().unwrap();
        let mut app = AppConfig::generate("one");
        app.allowed_origins = vec!["*.example.com".into()];
        insert_app(&mut conn, &app).unwrap();
        assert_eq!(list_apps(&mut conn).unwrap(), vec![app.clone()]);
        app.enabled = false;
        app.limits.max_connections = 5;
        update_app(&mut conn, &app).unwrap();
        assert_eq!(list_apps(&mut conn).unwrap(), vec![app]);
        drop(conn);
        let _ = std::fs::remove_dir_all(dir);
    }
}
