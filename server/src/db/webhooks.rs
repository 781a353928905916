//! Webhook storage: each app's endpoints, and the deliveries table that is both the durable
//! outbox (rows in state `pending`) and the delivery log (every other state). One table for
//! both means a delivery never has to move between tables: a worker claims a due `pending` row,
//! and its outcome is an update of that same row. See [`crate::webhooks`].

use diesel::prelude::*;

use super::schema::{webhook_deliveries, webhook_endpoints};
use super::{Db, DbError};

/// An endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
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
        Ok(webhook_endpoints::table
            .order((
                webhook_endpoints::created_at.asc(),
                webhook_endpoints::id.asc(),
            ))
            .select(EndpointRow::as_select())
            .load(&mut self.conn()?)?)
    }

    pub fn insert_webhook_endpoint(&self, row: &EndpointRow) -> Result<(), DbError> {
        diesel::insert_into(webhook_endpoints::table)
            .values(row)
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    /// Rewrites an endpoint; [`DbError::NotFound`] if the app has no such endpoint.
    pub fn update_webhook_endpoint(&self, row: &EndpointRow) -> Result<(), DbError> {
        let n = diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(&row.id))
                .filter(webhook_endpoints::app_id.eq(&row.app_id)),
        )
        .set(row)
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

    /// Up to `limit` pending deliveries due at `now_ms`, oldest due first.
    pub fn due_webhooks(&self, now_ms: i64, limit: i64) -> Result<Vec<DeliveryRow>, DbError> {
        Ok(webhook_deliveries::table
            .filter(webhook_deliveries::state.eq(PENDING))
            .filter(webhook_deliveries::next_attempt_at_ms.le(now_ms))
            .order((
                webhook_deliveries::next_attempt_at_ms.asc(),
                webhook_deliveries::id.asc(),
            ))
            .limit(limit)
            .select(DeliveryRow::as_select())
            .load(&mut self.conn()?)?)
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
}
