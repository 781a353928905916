//! Webhook storage: each app's endpoints, and the deliveries table that is both the durable
//! outbox (rows in state `pending`) and the delivery log (every other state). One table for
//! both means a delivery never has to move between tables: a worker claims a due `pending` row,
//! and its outcome is an update of that same row. See [`crate::webhooks`].
//!
//! An endpoint's own signing secret is sealed under the master key on its way into the
//! database and opened on its way out (bound to the endpoint's id, like app secrets), so rows
//! in memory hold it in plain text and the table never does.

use diesel::dsl::count_star;
use diesel::prelude::*;

use super::crypto::MasterKey;
use super::schema::{webhook_deliveries, webhook_endpoints};
use super::{Db, DbError};

/// An endpoint as stored (its signing secret opened).
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhook_endpoints)]
#[diesel(treat_none_as_null = true)]
pub struct EndpointRow {
    pub id: String,
    pub app_id: String,
    pub url: String,
    pub event_types: String,
    pub channel_prefix: Option<String>,
    pub channel_suffix: Option<String>,
    pub headers: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Plain text in memory, sealed in the table; `None` signs with the app secret.
    pub signing_secret: Option<String>,
}

impl std::fmt::Debug for EndpointRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRow")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("url", &self.url)
            .field("enabled", &self.enabled)
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// The associated data that binds an endpoint's sealed secret to its row.
fn secret_context(endpoint_id: &str) -> String {
    format!("webhook:{endpoint_id}")
}

impl EndpointRow {
    fn sealed(&self, key: &MasterKey) -> Self {
        Self {
            signing_secret: self
                .signing_secret
                .as_ref()
                .map(|s| key.encrypt(s, &secret_context(&self.id))),
            ..self.clone()
        }
    }

    fn opened(mut self, key: &MasterKey) -> Result<Self, DbError> {
        if let Some(stored) = self.signing_secret.take() {
            self.signing_secret = Some(key.decrypt(&stored, &secret_context(&self.id))?);
        }
        Ok(self)
    }
}

/// How many of one endpoint's deliveries are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub endpoint_id: String,
    pub state: String,
    pub count: i64,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub app_id: String,
    pub endpoint_id: String,
    pub created_at_ms: i64,
    pub body: String,
    pub events: i32,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at_ms: i64,
    pub last_attempt_at_ms: Option<i64>,
    pub status_code: Option<i32>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// The outcome of one attempt, written to its row.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub state: &'static str,
    pub attempts: i32,
    pub next_attempt_at_ms: i64,
    pub at_ms: i64,
    pub status_code: Option<i32>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    pub response: Option<String>,
}

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";
pub const DEAD: &str = "dead";

impl Db {
    /// Every endpoint of every app.
    pub fn webhook_endpoints(&self) -> Result<Vec<EndpointRow>, DbError> {
        webhook_endpoints::table
            .order((
                webhook_endpoints::created_at.asc(),
                webhook_endpoints::id.asc(),
            ))
            .select(EndpointRow::as_select())
            .load(&mut self.conn()?)?
            .into_iter()
            .map(|row| row.opened(&self.key))
            .collect()
    }

    pub fn insert_webhook_endpoint(&self, row: &EndpointRow) -> Result<(), DbError> {
        diesel::insert_into(webhook_endpoints::table)
            .values(&row.sealed(&self.key))
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    /// The raw stored signing secret of an endpoint (tests prove it holds no plaintext).
    pub fn stored_webhook_secret(&self, id: &str) -> Result<Option<String>, DbError> {
        Ok(webhook_endpoints::table
            .find(id)
            .select(webhook_endpoints::signing_secret)
            .first(&mut self.conn()?)?)
    }

    /// Rewrites an endpoint; [`DbError::NotFound`] if the app has no such endpoint.
    pub fn update_webhook_endpoint(&self, row: &EndpointRow) -> Result<(), DbError> {
        let n = diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(&row.id))
                .filter(webhook_endpoints::app_id.eq(&row.app_id)),
        )
        .set(&row.sealed(&self.key))
        .execute(&mut self.conn()?)?;
        if n == 0 {
            return Err(DbError::NotFound);
        }
        Ok(())
    }

    /// Deletes an endpoint and its deliveries.
    pub fn delete_webhook_endpoint(&self, app_id: &str, id: &str) -> Result<(), DbError> {
        self.conn()?.transaction(|conn| {
            let n = diesel::delete(
                webhook_endpoints::table
                    .filter(webhook_endpoints::id.eq(id))
                    .filter(webhook_endpoints::app_id.eq(app_id)),
            )
            .execute(conn)?;
            if n == 0 {
                return Err(DbError::NotFound);
            }
            diesel::delete(
                webhook_deliveries::table.filter(webhook_deliveries::endpoint_id.eq(id)),
            )
            .execute(conn)?;
            Ok(())
        })
    }

    /// Adds deliveries to the outbox, all in one transaction.
    pub fn enqueue_webhooks(&self, rows: &[DeliveryRow]) -> Result<(), DbError> {
        self.conn()?.transaction(|conn| {
            // One statement per row: MySQL and SQLite cap the bind parameters of one statement.
            for row in rows {
                diesel::insert_into(webhook_deliveries::table)
                    .values(row)
                    .execute(conn)?;
            }
            Ok(())
        })
    }

    /// Up to `limit` pending deliveries due at `now_ms`, oldest due first, leaving out the
    /// endpoints in `skip` (busy or paused, so that they cannot fill the claim) and the rows in
    /// `in_flight`.
    pub fn due_webhooks(
        &self,
        now_ms: i64,
        limit: i64,
        skip: &[String],
        in_flight: &[String],
    ) -> Result<Vec<DeliveryRow>, DbError> {
        let mut query = webhook_deliveries::table
            .filter(webhook_deliveries::state.eq(PENDING))
            .filter(webhook_deliveries::next_attempt_at_ms.le(now_ms))
            .into_boxed();
        if !skip.is_empty() {
            query = query.filter(webhook_deliveries::endpoint_id.ne_all(skip.to_vec()));
        }
        if !in_flight.is_empty() {
            query = query.filter(webhook_deliveries::id.ne_all(in_flight.to_vec()));
        }
        Ok(query
            .order((
                webhook_deliveries::next_attempt_at_ms.asc(),
                webhook_deliveries::id.asc(),
            ))
            .limit(limit)
            .select(DeliveryRow::as_select())
            .load(&mut self.conn()?)?)
    }

    /// Takes the rows for this node: each row's next attempt moves to `lease_until_ms` only if
    /// nobody moved it since it was read, so when several nodes share the outbox (cluster mode)
    /// exactly one of them sends each row. A node that dies while sending leaves the row due
    /// again at `lease_until_ms`, for another node (at least once).
    pub fn claim_webhooks(
        &self,
        rows: Vec<DeliveryRow>,
        lease_until_ms: i64,
    ) -> Result<Vec<DeliveryRow>, DbError> {
        let mut conn = self.conn()?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let taken = diesel::update(
                webhook_deliveries::table
                    .filter(webhook_deliveries::id.eq(&row.id))
                    .filter(webhook_deliveries::state.eq(PENDING))
                    .filter(webhook_deliveries::next_attempt_at_ms.eq(row.next_attempt_at_ms)),
            )
            .set(webhook_deliveries::next_attempt_at_ms.eq(lease_until_ms))
            .execute(&mut conn)?;
            if taken == 1 {
                claimed.push(row);
            }
        }
        Ok(claimed)
    }

    /// Records an attempt's outcome.
    pub fn record_webhook_attempt(&self, id: &str, a: &Attempt) -> Result<(), DbError> {
        diesel::update(webhook_deliveries::table.find(id))
            .set((
                webhook_deliveries::state.eq(a.state),
                webhook_deliveries::attempts.eq(a.attempts),
                webhook_deliveries::next_attempt_at_ms.eq(a.next_attempt_at_ms),
                webhook_deliveries::last_attempt_at_ms.eq(Some(a.at_ms)),
                webhook_deliveries::status_code.eq(a.status_code),
                webhook_deliveries::latency_ms.eq(a.latency_ms),
                webhook_deliveries::error.eq(a.error.as_deref()),
                webhook_deliveries::response.eq(a.response.as_deref()),
            ))
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    /// An app's most recent deliveries, newest first; only one endpoint's and only one state's
    /// when given.
    pub fn webhook_deliveries(
        &self,
        app_id: &str,
        endpoint_id: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, DbError> {
        let mut query = webhook_deliveries::table
            .filter(webhook_deliveries::app_id.eq(app_id))
            .into_boxed();
        if let Some(endpoint) = endpoint_id {
            query = query.filter(webhook_deliveries::endpoint_id.eq(endpoint.to_owned()));
        }
        if let Some(state) = state {
            query = query.filter(webhook_deliveries::state.eq(state.to_owned()));
        }
        Ok(query
            .order((
                webhook_deliveries::created_at_ms.desc(),
                webhook_deliveries::id.desc(),
            ))
            .limit(limit)
            .select(DeliveryRow::as_select())
            .load(&mut self.conn()?)?)
    }

    /// Puts dead (or failed) deliveries of an app back in the outbox, due now: one (`id`) or
    /// all dead ones. Returns how many.
    pub fn replay_webhooks(
        &self,
        app_id: &str,
        id: Option<&str>,
        now_ms: i64,
    ) -> Result<usize, DbError> {
        let mut query = diesel::update(webhook_deliveries::table)
            .filter(webhook_deliveries::app_id.eq(app_id))
            .into_boxed();
        query = match id {
            Some(id) => query
                .filter(webhook_deliveries::id.eq(id.to_owned()))
                .filter(webhook_deliveries::state.ne(PENDING)),
            None => query.filter(webhook_deliveries::state.eq(DEAD)),
        };
        // A replay starts a new retry horizon: it counts from the replay.
        Ok(query
            .set((
                webhook_deliveries::state.eq(PENDING),
                webhook_deliveries::attempts.eq(0),
                webhook_deliveries::next_attempt_at_ms.eq(now_ms),
                webhook_deliveries::created_at_ms.eq(now_ms),
            ))
            .execute(&mut self.conn()?)?)
    }

    /// Whether the app has a delivery with this id.
    pub fn webhook_delivery_exists(&self, app_id: &str, id: &str) -> Result<bool, DbError> {
        let n: i64 = webhook_deliveries::table
            .filter(webhook_deliveries::app_id.eq(app_id))
            .filter(webhook_deliveries::id.eq(id))
            .count()
            .get_result(&mut self.conn()?)?;
        Ok(n > 0)
    }

    /// When the earliest pending delivery is due (unix milliseconds), leaving out the same
    /// endpoints and rows as [`Db::due_webhooks`]; `None` if none is pending.
    pub fn next_webhook_due(
        &self,
        skip: &[String],
        in_flight: &[String],
    ) -> Result<Option<i64>, DbError> {
        let mut query = webhook_deliveries::table
            .filter(webhook_deliveries::state.eq(PENDING))
            .into_boxed();
        if !skip.is_empty() {
            query = query.filter(webhook_deliveries::endpoint_id.ne_all(skip.to_vec()));
        }
        if !in_flight.is_empty() {
            query = query.filter(webhook_deliveries::id.ne_all(in_flight.to_vec()));
        }
        Ok(query
            .select(diesel::dsl::min(webhook_deliveries::next_attempt_at_ms))
            .first(&mut self.conn()?)?)
    }

    /// How many of an app's deliveries created since `since_ms` are in each state, by endpoint.
    pub fn webhook_state_counts(
        &self,
        app_id: &str,
        since_ms: i64,
    ) -> Result<Vec<StateCount>, DbError> {
        let rows: Vec<(String, String, i64)> = webhook_deliveries::table
            .filter(webhook_deliveries::app_id.eq(app_id))
            .filter(webhook_deliveries::created_at_ms.ge(since_ms))
            .group_by((webhook_deliveries::endpoint_id, webhook_deliveries::state))
            .select((
                webhook_deliveries::endpoint_id,
                webhook_deliveries::state,
                count_star(),
            ))
            .load(&mut self.conn()?)?;
        Ok(rows
            .into_iter()
            .map(|(endpoint_id, state, count)| StateCount {
                endpoint_id,
                state,
                count,
            })
            .collect())
    }

    /// Pending deliveries (the outbox depth).
    pub fn pending_webhooks(&self) -> Result<i64, DbError> {
        Ok(webhook_deliveries::table
            .filter(webhook_deliveries::state.eq(PENDING))
            .count()
            .get_result(&mut self.conn()?)?)
    }

    /// Deletes finished deliveries created before `before_ms`. Returns how many.
    pub fn prune_webhooks(&self, before_ms: i64) -> Result<usize, DbError> {
        Ok(diesel::delete(
            webhook_deliveries::table
                .filter(webhook_deliveries::state.ne(PENDING))
                .filter(webhook_deliveries::created_at_ms.lt(before_ms)),
        )
        .execute(&mut self.conn()?)?)
    }

    /// Keeps at most `keep` finished deliveries per endpoint (the newest), deleting the rest.
    /// Returns how many were deleted.
    pub fn prune_webhooks_by_count(&self, keep: i64) -> Result<usize, DbError> {
        let mut conn = self.conn()?;
        let endpoints: Vec<String> = webhook_deliveries::table
            .filter(webhook_deliveries::state.ne(PENDING))
            .group_by(webhook_deliveries::endpoint_id)
            .having(count_star().gt(keep))
            .select(webhook_deliveries::endpoint_id)
            .load(&mut conn)?;
        let mut deleted = 0;
        for endpoint in endpoints {
            // The oldest row kept; everything finished before it (in the log's order) goes.
            let Some((at, id)): Option<(i64, String)> = webhook_deliveries::table
                .filter(webhook_deliveries::endpoint_id.eq(&endpoint))
                .filter(webhook_deliveries::state.ne(PENDING))
                .order((
                    webhook_deliveries::created_at_ms.desc(),
                    webhook_deliveries::id.desc(),
                ))
                .offset(keep.saturating_sub(1))
                .select((webhook_deliveries::created_at_ms, webhook_deliveries::id))
                .first(&mut conn)
                .optional()?
            else {
                continue;
            };
            deleted += diesel::delete(
                webhook_deliveries::table
                    .filter(webhook_deliveries::endpoint_id.eq(&endpoint))
                    .filter(webhook_deliveries::state.ne(PENDING))
                    .filter(
                        webhook_deliveries::created_at_ms.lt(at).or(
                            webhook_deliveries::created_at_ms
                                .eq(at)
                                .and(webhook_deliveries::id.lt(id)),
                        ),
                    ),
            )
            .execute(&mut conn)?;
        }
        Ok(deleted)
    }

    /// Seals every endpoint's signing secret under `new` (master key rotation; runs inside its
    /// transaction).
    pub(super) fn reseal_webhook_secrets(
        conn: &mut super::DbConn,
        old: &MasterKey,
        new: &MasterKey,
    ) -> Result<(), DbError> {
        let rows: Vec<(String, Option<String>)> = webhook_endpoints::table
            .filter(webhook_endpoints::signing_secret.is_not_null())
            .select((webhook_endpoints::id, webhook_endpoints::signing_secret))
            .load(conn)?;
        for (id, stored) in rows {
            let Some(stored) = stored else { continue };
            let plain = old.decrypt(&stored, &secret_context(&id))?;
            diesel::update(webhook_endpoints::table.find(&id))
                .set(
                    webhook_endpoints::signing_secret
                        .eq(Some(new.encrypt(&plain, &secret_context(&id)))),
                )
                .execute(conn)?;
        }
        Ok(())
    }
}
