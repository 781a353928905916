//! Persistent storage on SQLite, PostgreSQL or MySQL/MariaDB from one codebase.
//!
//! The backend is chosen **explicitly from the URL scheme** by [`DbUrl::parse`]; a mistyped
//! URL is an error, never a new SQLite file. Connections come from an r2d2 pool whose manager
//! opens exactly that backend (SQLite gets WAL, a busy timeout and foreign keys). Migrations for
//! each backend are embedded and applied at start-up under a cross-process lock, so several
//! nodes can start against one database at once. App secrets are stored encrypted under the
//! master key ([`crypto`]).
//!
//! Everything here blocks; callers on async threads go through [`crate::blocking`]. The protocol
//! hot path never calls into this module.

pub mod admin;
pub mod crypto;
pub mod schema;
pub mod stats;
pub mod webhooks;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as QueryError};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::apps::{AppConfig, AppLimits, PreviousSecret};
use crypto::{KeyError, MasterKey};
use schema::{app_usage, apps, meta};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/mysql");

/// Declares the connection enum for the backends this build includes (the derive does not
/// accept `#[cfg]` on variants).
macro_rules! any_connection {
    ($($variant:ident($conn:ty)),+ $(,)?) => {
        /// A connection to whichever backend the URL named.
        #[derive(diesel::MultiConnection)]
        pub enum AnyConnection {
            $($variant($conn)),+
        }
    };
}

#[cfg(all(feature = "postgres", feature = "mysql"))]
any_connection!(
    Sqlite(SqliteConnection),
    Postgres(diesel::PgConnection),
    Mysql(diesel::MysqlConnection),
);
#[cfg(all(feature = "postgres", not(feature = "mysql")))]
any_connection!(Sqlite(SqliteConnection), Postgres(diesel::PgConnection));
#[cfg(all(feature = "mysql", not(feature = "postgres")))]
any_connection!(Sqlite(SqliteConnection), Mysql(diesel::MysqlConnection));
#[cfg(not(any(feature = "postgres", feature = "mysql")))]
any_connection!(Sqlite(SqliteConnection));

pub type DbPool = Pool<Manager>;
pub type DbConn = PooledConnection<Manager>;

/// A storage failure, with a message safe to show (no secrets, no SQL).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH, postgres://... or mysql://...")]
    UnsupportedUrl(String),
    #[error("this build has no {0} support: rebuild with `--features {1}`")]
    BackendNotBuilt(&'static str, &'static str),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(QueryError),
    #[error("the value conflicts with an existing record")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("migration failed: {0}")]
    Migration(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<QueryError> for DbError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::NotFound => Self::NotFound,
            QueryError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::Conflict,
            QueryError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                Self::Unavailable(info.message().to_owned())
            }
            QueryError::BrokenTransactionManager => Self::Unavailable("connection lost".into()),
            // SQLite's form of an outage: another process holds the lock past the busy timeout.
            QueryError::DatabaseError(_, info) if info.message().contains("database is locked") => {
                Self::Unavailable("the database is locked".into())
            }
            other => Self::Query(other),
        }
    }
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Which database the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

/// A parsed database URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    pub backend: Backend,
    /// What the backend's driver is given: a file path for SQLite, the URL otherwise.
    target: String,
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted())
    }
}

impl DbUrl {
    /// Parses by scheme: `sqlite://PATH`, `sqlite:PATH` or a bare path; `postgres://` or
    /// `postgresql://`; `mysql://` or `mariadb://`. Anything else with a scheme is an error.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        let sqlite = |path: &str| -> Result<Self, DbError> {
            if path.is_empty() {
                return Err(DbError::UnsupportedUrl(url.to_owned()));
            }
            Ok(Self {
                backend: Backend::Sqlite,
                target: path.to_owned(),
            })
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            return sqlite(path);
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            return sqlite(path);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !cfg!(feature = "postgres") {
                return Err(DbError::BackendNotBuilt("PostgreSQL", "postgres"));
            }
            return Ok(Self {
                backend: Backend::Postgres,
                target: url.to_owned(),
            });
        }
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            if !cfg!(feature = "mysql") {
                return Err(DbError::BackendNotBuilt("MySQL/MariaDB", "mysql"));
            }
            let target = url.replacen("mariadb://", "mysql://", 1);
            return Ok(Self {
                backend: Backend::Mysql,
                target,
            });
        }
        if url.contains("://") || url.is_empty() {
            return Err(DbError::UnsupportedUrl(url.to_owned()));
        }
        sqlite(url)
    }

    /// The URL with any password hidden, for logs.
    pub fn redacted(&self) -> String {
        if self.backend == Backend::Sqlite {
            return format!("sqlite://{}", self.target);
        }
        match (self.target.split_once("://"), self.target.rfind('@')) {
            (Some((scheme, rest)), Some(_)) => {
                let (auth, host) = rest.rsplit_once('@').unwrap_or(("", rest));
                let user = auth.split_once(':').map_or(auth, |(u, _)| u);
                format!("{scheme}://{user}:***@{host}")
            }
            _ => self.target.clone(),
        }
    }
}

/// Opens connections of exactly the backend the URL named.
#[derive(Debug)]
pub struct Manager {
    url: DbUrl,
    /// SQLite waits this long for a lock, matching the pool's wait for a connection.
    busy_timeout: Duration,
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        use diesel::r2d2::Error as E;
        match self.url.backend {
            Backend::Sqlite => {
                let mut conn =
                    SqliteConnection::establish(&self.url.target).map_err(E::ConnectionError)?;
                // WAL lets readers work beside a writer; the busy timeout waits for a lock
                // instead of failing at once; foreign keys are off by default in SQLite.
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {}; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    self.busy_timeout.as_millis()
                ))
                .map_err(E::QueryError)?;
                Ok(AnyConnection::Sqlite(conn))
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => diesel::PgConnection::establish(&self.url.target)
                .map(AnyConnection::Postgres)
                .map_err(E::ConnectionError),
            #[cfg(feature = "mysql")]
            Backend::Mysql => diesel::MysqlConnection::establish(&self.url.target)
                .map(AnyConnection::Mysql)
                .map_err(E::ConnectionError),
            #[allow(unreachable_patterns)]
            _ => unreachable!("DbUrl::parse refuses backends this build lacks"),
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_size: u32,
    /// How long a caller waits for a connection before the operation fails as unavailable.
    pub timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Opens the pool (connecting at once, so a wrong URL fails the start) and migrates.
pub fn open_pool(url: &str, options: PoolOptions) -> Result<DbPool, DbError> {
    let url = DbUrl::parse(url)?;
    if url.backend == Backend::Sqlite && url.target != ":memory:" {
        if let Some(parent) = Path::new(&url.target)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                DbError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
    }
    let pool = Pool::builder()
        .max_size(options.max_size)
        // Idle connections are opened on demand: an outage at start-up is reported once, and
        // the pool does not keep redialling a database nobody is using.
        .min_idle(Some(0))
        .connection_timeout(options.timeout)
        .build(Manager {
            url,
            busy_timeout: options.timeout,
        })
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let mut conn = pool.get()?;
    migrate(&mut conn)?;
    drop(conn);
    Ok(pool)
}

/// Applies pending migrations under a lock that other nodes starting at the same time respect.
pub fn migrate(conn: &mut AnyConnection) -> Result<(), DbError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    match conn {
        AnyConnection::Sqlite(c) => c.immediate_transaction(|c| {
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|_| ())
                .map_err(failed)
        }),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(c) => {
            // Session-level advisory lock: a second node waits here, then finds nothing to do.
            diesel::sql_query("SELECT pg_advisory_lock(7270737031)").execute(c)?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|_| ())
                .map_err(failed);
            diesel::sql_query("SELECT pg_advisory_unlock(7270737031)").execute(c)?;
            result
        }
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => {
            #[derive(QueryableByName)]
            struct Lock {
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
                got: Option<i32>,
            }
            let lock: Lock =
                diesel::sql_query("SELECT GET_LOCK('reverb_pusher_migrations', 60) AS got")
                    .get_result(c)?;
            if lock.got != Some(1) {
                return Err(DbError::Migration(
                    "timed out waiting for another node's migration".into(),
                ));
            }
            let result = c
                .run_pending_migrations(MYSQL_MIGRATIONS)
                .map(|_| ())
                .map_err(failed);
            diesel::sql_query("SELECT RELEASE_LOCK('reverb_pusher_migrations') AS got")
                .get_result::<Lock>(c)?;
            result
        }
    }
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An app as stored: the identity that never changes, and the fields a change rewrites.
#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = apps)]
struct AppRow {
    id: String,
    created_at: i64,
    #[diesel(embed)]
    fields: AppFields,
}

/// Every column an app change rewrites (the changeset of a compare-and-swap update).
///
/// The limits are one JSON object in one text column, (de)serialised with
/// `shared::limits::AppLimits`, not one column per limit: the server never queries a single
/// limit in SQL, it always loads and stores the set as a whole, and a JSON column means the
/// list of limits is written down once (in `shared::limits`) instead of again in the schema, the
/// migrations of three backends and two hand-written conversions. A row stored before a limit
/// existed reads it as its default (`#[serde(default)]`), so adding a limit needs no data
/// migration at all.
#[derive(Debug, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = apps)]
#[diesel(treat_none_as_null = true)]
struct AppFields {
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
    limits: String,
    version: i64,
    updated_at: i64,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<i64>,
}

fn to_u32(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The associated data that binds an app's encrypted secret to its row.
fn secret_context(app_id: &str) -> String {
    format!("app:{app_id}")
}

fn previous_secret_context(app_id: &str) -> String {
    format!("app-previous:{app_id}")
}

impl AppRow {
    fn into_config(self, key: &MasterKey) -> Result<AppConfig, DbError> {
        let f = self.fields;
        let secret = key.decrypt(&f.secret, &secret_context(&self.id))?;
        let previous_secret = match (f.previous_secret, f.previous_secret_expires_at) {
            (Some(stored), Some(expires_at)) => Some(PreviousSecret {
                secret: key.decrypt(&stored, &previous_secret_context(&self.id))?,
                expires_at,
            }),
            _ => None,
        };
        let limits: AppLimits = serde_json::from_str(&f.limits)
            .map_err(|e| DbError::Query(QueryError::DeserializationError(Box::new(e))))?;
        Ok(AppConfig {
            id: self.id,
            name: f.name,
            key: f.app_key,
            secret,
            previous_secret,
            enabled: f.enabled,
            allowed_origins: serde_json::from_str(&f.allowed_origins).unwrap_or_default(),
            client_events: f.client_events,
            require_user_auth: f.require_user_auth,
            user_auth_timeout_secs: to_u32(f.user_auth_timeout_secs),
            watchlist_events: f.watchlist_events,
            subscription_count_events: f.subscription_count_events,
            limits,
            version: f.version,
        })
    }

    fn from_config(c: &AppConfig, key: &MasterKey, created_at: i64, updated_at: i64) -> Self {
        Self {
            id: c.id.clone(),
            created_at,
            fields: AppFields::from_config(c, key, updated_at),
        }
    }
}

impl AppFields {
    fn from_config(c: &AppConfig, key: &MasterKey, updated_at: i64) -> Self {
        Self {
            name: c.name.clone(),
            app_key: c.key.clone(),
            secret: key.encrypt(&c.secret, &secret_context(&c.id)),
            enabled: c.enabled,
            allowed_origins: serde_json::to_string(&c.allowed_origins)
                .unwrap_or_else(|_| "[]".into()),
            client_events: c.client_events,
            require_user_auth: c.require_user_auth,
            user_auth_timeout_secs: to_i32(c.user_auth_timeout_secs),
            watchlist_events: c.watchlist_events,
            subscription_count_events: c.subscription_count_events,
            limits: serde_json::to_string(&c.limits).unwrap_or_else(|_| "{}".into()),
            version: c.version,
            updated_at,
            previous_secret: c
                .previous_secret
                .as_ref()
                .map(|p| key.encrypt(&p.secret, &previous_secret_context(&c.id))),
            previous_secret_expires_at: c.previous_secret.as_ref().map(|p| p.expires_at),
        }
    }
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub struct KeySource {
    /// Set in the settings; takes precedence over the file.
    pub key: Option<MasterKey>,
    /// Read if it exists; created (0600) on a fresh database otherwise.
    pub file: std::path::PathBuf,
}

const KEY_CHECK: &str = "master_key_check";
const KEY_CHECK_PLAINTEXT: &str = "reverb-pusher";

/// The storage handle: a pool and the master key that seals the secrets in it.
#[derive(Clone)]
pub struct Db {
    pub pool: DbPool,
    key: Arc<MasterKey>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

/// One app as [`Db::get_apps`] read it: its id, and its configuration or why its row could not
/// be decoded.
pub type LoadedApp = (String, Result<AppConfig, DbError>);

impl Db {
    /// Opens and migrates the database, resolves the master key and checks that it matches,
    /// and encrypts any secrets an older version stored in plain text.
    pub fn open(url: &str, options: PoolOptions, keys: &KeySource) -> Result<Self, DbError> {
        let pool = open_pool(url, options)?;
        let mut conn = pool.get()?;
        let key = resolve_key(&mut conn, keys)?;
        encrypt_legacy_secrets(&mut conn, &key)?;
        drop(conn);
        Ok(Self {
            pool,
            key: Arc::new(key),
        })
    }

    pub fn conn(&self) -> Result<DbConn, DbError> {
        Ok(self.pool.get()?)
    }

    /// Checks that the database answers within `timeout`.
    pub fn ping(&self, timeout: Duration) -> Result<(), DbError> {
        let mut conn = self.pool.get_timeout(timeout)?;
        conn.ping().map_err(DbError::from)
    }

    /// Every app, oldest first.
    pub fn list_apps(&self) -> Result<Vec<AppConfig>, DbError> {
        let rows = apps::table
            .order((apps::created_at.asc(), apps::id.asc()))
            .select(AppRow::as_select())
            .load(&mut self.conn()?)?;
        rows.into_iter().map(|r| r.into_config(&self.key)).collect()
    }

    /// One app; [`DbError::NotFound`] if there is none.
    pub fn get_app(&self, id: &str) -> Result<AppConfig, DbError> {
        apps::table
            .find(id)
            .select(AppRow::as_select())
            .first(&mut self.conn()?)?
            .into_config(&self.key)
    }

    /// The named apps in one query (see [`LoadedApp`]), each decoded on its own: one row that cannot be read (edited
    /// by hand, a sealed secret that does not open) is an error for that app only. Ids with no
    /// row are left out.
    pub fn get_apps(&self, ids: &[String]) -> Result<Vec<LoadedApp>, DbError> {
        let rows = apps::table
            .filter(apps::id.eq_any(ids))
            .select(AppRow::as_select())
            .load(&mut self.conn()?)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.id.clone(), r.into_config(&self.key)))
            .collect())
    }

    /// Every app's id and stored version: what a running server compares with its memory.
    pub fn app_versions(&self) -> Result<Vec<(String, i64)>, DbError> {
        Ok(apps::table
            .select((apps::id, apps::version))
            .load(&mut self.conn()?)?)
    }

    /// Stores a new app at its `version` (its id and key must be unused: [`DbError::Conflict`]
    /// otherwise).
    pub fn insert_app(&self, app: &AppConfig) -> Result<(), DbError> {
        let now = now_unix();
        diesel::insert_into(apps::table)
            .values(AppRow::from_config(app, &self.key, now, now))
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    /// Stores a changed app (every field but the creation time) if the stored row is still at
    /// version `expected`: a compare-and-swap. `app.version` is the version written. Returns
    /// false when another writer changed the row first; [`DbError::NotFound`] when it is gone.
    pub fn update_app_if(&self, app: &AppConfig, expected: i64) -> Result<bool, DbError> {
        let mut conn = self.conn()?;
        let changed = diesel::update(
            apps::table
                .filter(apps::id.eq(&app.id))
                .filter(apps::version.eq(expected)),
        )
        .set(AppFields::from_config(app, &self.key, now_unix()))
        .execute(&mut conn)?;
        if changed == 0 {
            // Lost the race, or the app was deleted.
            apps::table
                .find(&app.id)
                .select(apps::id)
                .first::<String>(&mut conn)?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Deletes an app, its usage counts and its webhooks (endpoints and deliveries);
    /// [`DbError::NotFound`] if there was none.
    pub fn delete_app(&self, id: &str) -> Result<(), DbError> {
        self.conn()?.transaction(|conn| {
            let deleted = diesel::delete(apps::table.find(id)).execute(conn)?;
            if deleted == 0 {
                return Err(DbError::NotFound);
            }
            diesel::delete(app_usage::table.filter(app_usage::app_id.eq(id))).execute(conn)?;
            diesel::delete(
                schema::webhook_deliveries::table.filter(schema::webhook_deliveries::app_id.eq(id)),
            )
            .execute(conn)?;
            diesel::delete(
                schema::webhook_endpoints::table.filter(schema::webhook_endpoints::app_id.eq(id)),
            )
            .execute(conn)?;
            Ok(())
        })
    }

    /// The stored message counts `(app id, day, messages)` of the given apps from `from_day`
    /// (days since 1970-01-01, UTC) on.
    pub fn usage_since(
        &self,
        ids: &[String],
        from_day: i64,
    ) -> Result<Vec<(String, i64, u64)>, DbError> {
        let rows: Vec<(String, i64, i64)> = app_usage::table
            .filter(app_usage::app_id.eq_any(ids))
            .filter(app_usage::day.ge(from_day))
            .select((app_usage::app_id, app_usage::day, app_usage::messages))
            .load(&mut self.conn()?)?;
        Ok(rows
            .into_iter()
            .map(|(id, day, n)| (id, day, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Adds message counts `(app id, day, messages)`, all in one transaction: each row is
    /// increased, or created when it does not exist yet.
    pub fn add_usage(&self, rows: &[(String, i64, u64)]) -> Result<(), DbError> {
        self.conn()?.transaction(|conn| {
            for (id, day, n) in rows {
                let n = i64::try_from(*n).unwrap_or(i64::MAX);
                let row = app_usage::table.find((id, day));
                let updated = diesel::update(row)
                    .set(app_usage::messages.eq(app_usage::messages + n))
                    .execute(conn)?;
                if updated == 0 {
                    diesel::insert_into(app_usage::table)
                        .values((
                            app_usage::app_id.eq(id),
                            app_usage::day.eq(day),
                            app_usage::messages.eq(n),
                        ))
                        .execute(conn)?;
                }
            }
            Ok(())
        })
    }

    /// The raw stored secret column of an app (tests prove it holds no plaintext).
    pub fn stored_secret(&self, id: &str) -> Result<String, DbError> {
        Ok(apps::table
            .find(id)
            .select(apps::secret)
            .first(&mut self.conn()?)?)
    }

    /// Re-encrypts every secret under `new` in one transaction and returns a handle using it.
    /// The caller stores the new key (file or setting) before using the returned handle.
    pub fn rotate_master_key(&self, new: MasterKey) -> Result<Self, DbError> {
        let old = self.key.clone();
        self.conn()?.transaction::<_, DbError, _>(|conn| {
            let rows: Vec<AppRow> = apps::table.select(AppRow::as_select()).load(conn)?;
            for row in rows {
                let app = row.into_config(&old)?;
                // The same version: re-sealing changes no setting, so nothing needs re-applying.
                diesel::update(apps::table.find(&app.id))
                    .set(AppFields::from_config(&app, &new, now_unix()))
                    .execute(conn)?;
            }
            Db::reseal_webhook_secrets(conn, &old, &new)?;
            diesel::update(meta::table.find(KEY_CHECK))
                .set(meta::value.eq(new.encrypt(KEY_CHECK_PLAINTEXT, KEY_CHECK)))
                .execute(conn)?;
            Ok(())
        })?;
        Ok(Self {
            pool: self.pool.clone(),
            key: Arc::new(new),
        })
    }
}

/// Finds the master key and proves it is the one this database was sealed with.
fn resolve_key(conn: &mut DbConn, keys: &KeySource) -> Result<MasterKey, DbError> {
    let check: Option<String> = meta::table
        .find(KEY_CHECK)
        .select(meta::value)
        .first(conn)
        .optional()?;
    let key = match (&keys.key, MasterKey::read_file(&keys.file)?) {
        (Some(key), _) => key.clone(),
        (None, Some(key)) => key,
        (None, None) => {
            let app_count: i64 = apps::table.count().get_result(conn)?;
            if check.is_some() || app_count > 0 && any_encrypted(conn)? {
                return Err(KeyError::Missing(keys.file.display().to_string()).into());
            }
            let key = MasterKey::generate();
            key.write_new_file(&keys.file)?;
            tracing::info!(file = %keys.file.display(), "created a new master key file (mode 0600); back it up");
            key
        }
    };
    let stored = if let Some(stored) = check {
        stored
    } else {
        let sealed = key.encrypt(KEY_CHECK_PLAINTEXT, KEY_CHECK);
        let inserted = diesel::insert_into(meta::table)
            .values((meta::name.eq(KEY_CHECK), meta::value.eq(&sealed)))
            .execute(conn)
            .map_err(DbError::from);
        match inserted {
            Ok(_) => sealed,
            // Another node sealed the database first: its key must be ours too.
            Err(DbError::Conflict) => meta::table
                .find(KEY_CHECK)
                .select(meta::value)
                .first(conn)?,
            Err(e) => return Err(e),
        }
    };
    key.decrypt(&stored, KEY_CHECK)
        .map_err(|_| KeyError::Mismatch)?;
    Ok(key)
}

fn any_encrypted(conn: &mut DbConn) -> Result<bool, DbError> {
    let secrets: Vec<String> = apps::table.select(apps::secret).load(conn)?;
    Ok(secrets.iter().any(|s| crypto::is_encrypted(s)))
}

/// Databases written before secrets were encrypted hold them in plain text: seal them now.
fn encrypt_legacy_secrets(conn: &mut DbConn, key: &MasterKey) -> Result<(), DbError> {
    let rows: Vec<(String, String)> = apps::table.select((apps::id, apps::secret)).load(conn)?;
    for (id, secret) in rows.into_iter().filter(|(_, s)| !crypto::is_encrypted(s)) {
        diesel::update(apps::table.find(&id))
            .set(apps::secret.eq(key.encrypt(&secret, &secret_context(&id))))
            .execute(conn)?;
        tracing::info!(app_id = %id, "encrypted a plaintext app secret left by an older version");
    }
    Ok(())
}

/// Runs blocking database work on the blocking pool, off the async threads.
pub async fn blocking<T, F>(db: &Db, f: F) -> Result<T, DbError>
where
    F: FnOnce(&Db) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    let db = db.clone();
    actix_web::web::block(move || f(&db))
        .await
        .map_err(|_| DbError::Unavailable("database worker failed".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_is_explicit() {
        let sqlite = |u: &str| DbUrl::parse(u).unwrap().target;
        assert_eq!(sqlite("sqlite://data/x.db"), "data/x.db");
        assert_eq!(sqlite("sqlite::memory:"), ":memory:");
        assert_eq!(sqlite("x.db"), "x.db");
        assert!(matches!(
            DbUrl::parse("postgress://localhost/db"),
            Err(DbError::UnsupportedUrl(_))
        ));
        assert!(matches!(
            DbUrl::parse("mysq://x"),
            Err(DbError::UnsupportedUrl(_))
        ));
        assert!(DbUrl::parse("").is_err());
        assert!(DbUrl::parse("sqlite://").is_err());
        let pg = DbUrl::parse("postgres://u:pw@h/db");
        if cfg!(feature = "postgres") {
            assert_eq!(pg.unwrap().redacted(), "postgres://u:***@h/db");
        } else {
            assert!(matches!(pg, Err(DbError::BackendNotBuilt(..))));
        }
    }

    fn keys(dir: &Path) -> KeySource {
        KeySource {
            key: None,
            file: dir.join("master.key"),
        }
    }

    #[test]
    fn apps_round_trip_with_encrypted_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        let db = Db::open(&url, PoolOptions::default(), &keys(dir.path())).unwrap();
        let mut app = AppConfig::generate("one");
        app.allowed_origins = vec!["*.example.com".into()];
        db.insert_app(&app).unwrap();
        assert_eq!(db.list_apps().unwrap(), vec![app.clone()]);
        assert!(!db.stored_secret(&app.id).unwrap().contains(&app.secret));
        app.enabled = false;
        app.limits.max_connections = 5;
        app.limits.max_channels = 9;
        app.previous_secret = Some(PreviousSecret {
            secret: "old".into(),
            expires_at: 99,
        });
        app.version = 2;
        assert!(db.update_app_if(&app, 1).unwrap());
        assert_eq!(db.get_app(&app.id).unwrap(), app);
        assert_eq!(db.app_versions().unwrap(), vec![(app.id.clone(), 2)]);
        // A writer that read version 1 loses: its change is not stored.
        let mut stale = app.clone();
        stale.name = "stale".into();
        assert!(!db.update_app_if(&stale, 1).unwrap());
        assert_eq!(db.list_apps().unwrap(), vec![app.clone()]);
        assert!(matches!(db.insert_app(&app), Err(DbError::Conflict)));
        db.delete_app(&app.id).unwrap();
        assert!(matches!(db.delete_app(&app.id), Err(DbError::NotFound)));
        assert!(matches!(db.update_app_if(&app, 2), Err(DbError::NotFound)));
    }

    #[test]
    fn missing_or_wrong_master_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        let db = Db::open(&url, PoolOptions::default(), &keys(dir.path())).unwrap();
        db.insert_app(&AppConfig::generate("a")).unwrap();
        drop(db);
        let wrong = KeySource {
            key: Some(MasterKey::generate()),
            file: dir.path().join("master.key"),
        };
        assert!(matches!(
            Db::open(&url, PoolOptions::default(), &wrong),
            Err(DbError::Key(KeyError::Mismatch))
        ));
        let missing = KeySource {
            key: None,
            file: dir.path().join("elsewhere.key"),
        };
        assert!(matches!(
            Db::open(&url, PoolOptions::default(), &missing),
            Err(DbError::Key(KeyError::Missing(_)))
        ));
        Db::open(&url, PoolOptions::default(), &keys(dir.path())).unwrap();
    }

    #[test]
    fn master_key_rotation_re_encrypts_everything() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        let db = Db::open(&url, PoolOptions::default(), &keys(dir.path())).unwrap();
        let app = AppConfig::generate("a");
        db.insert_app(&app).unwrap();
        let before = db.stored_secret(&app.id).unwrap();
        let new = MasterKey::generate();
        let rotated = db.rotate_master_key(new.clone()).unwrap();
        assert_ne!(rotated.stored_secret(&app.id).unwrap(), before);
        assert_eq!(rotated.list_apps().unwrap(), vec![app]);
        drop((db, rotated));
        let with_new = KeySource {
            key: Some(new),
            file: dir.path().join("master.key"),
        };
        Db::open(&url, PoolOptions::default(), &with_new).unwrap();
        assert!(Db::open(&url, PoolOptions::default(), &keys(dir.path())).is_err());
    }

    #[test]
    fn an_older_database_is_migrated_and_its_plaintext_secrets_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db").display().to_string();
        // The first schema version, with a secret stored the way it stored them: in clear.
        let mut conn = SqliteConnection::establish(&path).unwrap();
        conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        diesel::sql_query(
            "INSERT INTO apps (id, name, app_key, secret, created_at, updated_at, \
             max_connections, cache_ttl_secs) \
             VALUES ('1', 'old', 'oldkey', 'plainsecret', 0, 0, 42, 99)",
        )
        .execute(&mut conn)
        .unwrap();
        drop(conn);
        let db = Db::open(&path, PoolOptions::default(), &keys(dir.path())).unwrap();
        let apps = db.list_apps().unwrap();
        assert_eq!(
            (apps[0].key.as_str(), apps[0].secret.as_str()),
            ("oldkey", "plainsecret")
        );
        assert!(crypto::is_encrypted(&db.stored_secret("1").unwrap()));
        // The limits columns became one JSON object without losing a value; limits added
        // since take their defaults.
        let expected = AppLimits {
            max_connections: 42,
            cache_ttl_secs: 99,
            ..AppLimits::default()
        };
        assert_eq!((apps[0].limits.clone(), apps[0].version), (expected, 1));
    }
}
