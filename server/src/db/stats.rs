//! Statistics storage: the `app_stats` table (one row per app, resolution, bucket and node).
//! See [`crate::stats`] for what writes it and when.
//!
//! Every write is read-merge-write inside one transaction, with the merge rules of
//! [`shared::stats::Counts::merge`] applied in Rust: that works the same on all three backends
//! (no backend-specific upsert with `GREATEST`/`VALUES()`), and a node only ever writes its own
//! minute rows, so nothing else races it for them. Rollups overwrite the coarser row from the
//! finer ones, so running one twice gives the same result.

use std::collections::BTreeMap;

use diesel::prelude::*;
use shared::stats::{Along, Counts};

use super::schema::app_stats;
use super::{Db, DbError};

/// App ids per `IN (...)` list.
const IN_CHUNK: usize = 500;

/// Buckets of one (resolution, bucket, node), by app.
type Group<'a> = Vec<(&'a StatKey, &'a Counts)>;

/// Where a row belongs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatKey {
    pub app_id: String,
    pub resolution: i64,
    pub bucket_start: i64,
    pub node: String,
}

/// A row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = app_stats)]
struct StatRow {
    app_id: String,
    resolution: i64,
    bucket_start: i64,
    node: String,
    samples: i64,
    connections_peak: i64,
    connections_min: i64,
    connections_sum: i64,
    channels_peak: i64,
    connections_opened: i64,
    connections_closed: i64,
    closed_error: i64,
    closed_backoff: i64,
    closed_reconnect: i64,
    subscriptions: i64,
    messages_in_api: i64,
    messages_in_client: i64,
    messages_out: i64,
    messages_out_client: i64,
    messages_out_presence: i64,
    messages_out_system: i64,
    ws_bytes_in: i64,
    ws_bytes_out: i64,
    http_bytes_in: i64,
    http_bytes_out: i64,
    api_requests: i64,
    api_errors_4xx: i64,
    api_errors_5xx: i64,
    rate_limited: i64,
    errors_sent: i64,
    webhooks_sent: i64,
    webhooks_failed: i64,
}

/// Writes the struct's fields in and out of a [`Counts`] (the one list besides the schema).
macro_rules! convert {
    ($($f:ident),+ $(,)?) => {
        impl StatRow {
            fn new(key: StatKey, c: &Counts) -> Self {
                Self {
                    app_id: key.app_id,
                    resolution: key.resolution,
                    bucket_start: key.bucket_start,
                    node: key.node,
                    $($f: c.$f,)+
                }
            }

            fn split(self) -> (StatKey, Counts) {
                let key = StatKey {
                    app_id: self.app_id,
                    resolution: self.resolution,
                    bucket_start: self.bucket_start,
                    node: self.node,
                };
                (key, Counts { $($f: self.$f,)+ })
            }
        }
    };
}

convert!(
    samples,
    connections_peak,
    connections_min,
    connections_sum,
    channels_peak,
    connections_opened,
    connections_closed,
    closed_error,
    closed_backoff,
    closed_reconnect,
    subscriptions,
    messages_in_api,
    messages_in_client,
    messages_out,
    messages_out_client,
    messages_out_presence,
    messages_out_system,
    ws_bytes_in,
    ws_bytes_out,
    http_bytes_in,
    http_bytes_out,
    api_requests,
    api_errors_4xx,
    api_errors_5xx,
    rate_limited,
    errors_sent,
    webhooks_sent,
    webhooks_failed,
);

/// Inserts rows one statement each (Diesel's multi-backend connection has no batch insert),
/// inside the caller's transaction.
fn insert(conn: &mut super::DbConn, rows: Vec<StatRow>) -> QueryResult<()> {
    for row in &rows {
        diesel::insert_into(app_stats::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

impl Db {
    /// Adds buckets into the stored rows of their keys (creating the rows that do not exist
    /// yet), all in one transaction: counters add, peaks take the highest (see the module
    /// documentation). Used for this node's minute rows.
    pub fn add_stats(&self, rows: &BTreeMap<StatKey, Counts>) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        // Grouped by everything but the app, so that each group is one indexed read.
        let mut groups: BTreeMap<(i64, i64, &str), Group<'_>> = BTreeMap::new();
        for (key, counts) in rows {
            groups
                .entry((key.resolution, key.bucket_start, key.node.as_str()))
                .or_default()
                .push((key, counts));
        }
        self.conn()?.transaction(|conn| {
            for ((resolution, bucket, node), group) in groups {
                let mut merged: BTreeMap<StatKey, Counts> = BTreeMap::new();
                let ids: Vec<&str> = group.iter().map(|(k, _)| k.app_id.as_str()).collect();
                for ids in ids.chunks(IN_CHUNK) {
                    let stored = app_stats::table
                        .filter(app_stats::resolution.eq(resolution))
                        .filter(app_stats::bucket_start.eq(bucket))
                        .filter(app_stats::node.eq(node))
                        .filter(app_stats::app_id.eq_any(ids))
                        .select(StatRow::as_select());
                    for row in stored.load(conn)? {
                        let (key, counts) = row.split();
                        merged.insert(key, counts);
                    }
                    diesel::delete(
                        app_stats::table
                            .filter(app_stats::resolution.eq(resolution))
                            .filter(app_stats::bucket_start.eq(bucket))
                            .filter(app_stats::node.eq(node))
                            .filter(app_stats::app_id.eq_any(ids)),
                    )
                    .execute(conn)?;
                }
                for (key, counts) in group {
                    merged
                        .entry(key.clone())
                        .or_default()
                        .merge(counts, Along::Time);
                }
                insert(
                    conn,
                    merged
                        .into_iter()
                        .map(|(k, c)| StatRow::new(k, &c))
                        .collect(),
                )?;
            }
            Ok(())
        })
    }

    /// Recomputes the `resolution` rows of the bucket starting at `bucket` from the rows of
    /// `finer` resolution inside it (per app and node), replacing what was stored. Returns the
    /// rows written.
    pub fn roll_up_stats(
        &self,
        finer: i64,
        resolution: i64,
        bucket: i64,
    ) -> Result<usize, DbError> {
        self.conn()?.transaction(|conn| {
            let rows = app_stats::table
                .filter(app_stats::resolution.eq(finer))
                .filter(app_stats::bucket_start.ge(bucket))
                .filter(app_stats::bucket_start.lt(bucket + resolution))
                .select(StatRow::as_select())
                .load(conn)?;
            let mut merged: BTreeMap<StatKey, Counts> = BTreeMap::new();
            for row in rows {
                let (key, counts) = row.split();
                let key = StatKey {
                    resolution,
                    bucket_start: bucket,
                    ..key
                };
                merged.entry(key).or_default().merge(&counts, Along::Time);
            }
            diesel::delete(
                app_stats::table
                    .filter(app_stats::resolution.eq(resolution))
                    .filter(app_stats::bucket_start.eq(bucket)),
            )
            .execute(conn)?;
            let n = merged.len();
            insert(
                conn,
                merged
                    .into_iter()
                    .map(|(k, c)| StatRow::new(k, &c))
                    .collect(),
            )?;
            Ok(n)
        })
    }

    /// Deletes the `resolution` rows of buckets before `before`. Returns how many.
    pub fn prune_stats(&self, resolution: i64, before: i64) -> Result<usize, DbError> {
        Ok(diesel::delete(
            app_stats::table
                .filter(app_stats::resolution.eq(resolution))
                .filter(app_stats::bucket_start.lt(before)),
        )
        .execute(&mut self.conn()?)?)
    }

    /// The stored rows of one app (or `*`, the server) at `resolution` in `[from, to)`, every
    /// node, as `(bucket start, node, counts)`.
    pub fn app_stats(
        &self,
        app_id: &str,
        resolution: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<(StatKey, Counts)>, DbError> {
        let rows = app_stats::table
            .filter(app_stats::app_id.eq(app_id))
            .filter(app_stats::resolution.eq(resolution))
            .filter(app_stats::bucket_start.ge(from))
            .filter(app_stats::bucket_start.lt(to))
            .select(StatRow::as_select())
            .load(&mut self.conn()?)?;
        Ok(rows.into_iter().map(StatRow::split).collect())
    }

    /// The stored rows of every app (not the server's) at `resolution` in `[from, to)`.
    pub fn all_app_stats(
        &self,
        resolution: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<(StatKey, Counts)>, DbError> {
        let rows = app_stats::table
            .filter(app_stats::resolution.eq(resolution))
            .filter(app_stats::bucket_start.ge(from))
            .filter(app_stats::bucket_start.lt(to))
            .filter(app_stats::app_id.ne(shared::stats::SERVER))
            .select(StatRow::as_select())
            .load(&mut self.conn()?)?;
        Ok(rows.into_iter().map(StatRow::split).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::stats::{HOUR, MINUTE};

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        let keys = crate::db::KeySource {
            key: None,
            file: dir.path().join("master.key"),
        };
        let db = Db::open(&url, crate::db::PoolOptions::default(), &keys).unwrap();
        (dir, db)
    }

    fn key(app: &str, resolution: i64, bucket: i64, node: &str) -> StatKey {
        StatKey {
            app_id: app.into(),
            resolution,
            bucket_start: bucket,
            node: node.into(),
        }
    }

    fn counts(samples: i64, peak: i64, out: i64) -> Counts {
        Counts {
            samples,
            connections_peak: peak,
            connections_min: peak,
            connections_sum: peak * samples,
            messages_out: out,
            ..Counts::default()
        }
    }

    #[test]
    fn writes_accumulate_into_the_same_bucket() {
        let (_dir, db) = db();
        let k = key("a", MINUTE, 120, "n1");
        db.add_stats(&BTreeMap::from([(k.clone(), counts(30, 5, 10))]))
            .unwrap();
        // A second write of the same minute (the rest of it, or a restart) adds up.
        db.add_stats(&BTreeMap::from([
            (k.clone(), counts(30, 3, 4)),
            (key("b", MINUTE, 120, "n1"), counts(1, 1, 1)),
        ]))
        .unwrap();
        let rows = db.app_stats("a", MINUTE, 0, 1000).unwrap();
        assert_eq!(rows.len(), 1);
        let c = rows[0].1;
        assert_eq!(
            (c.samples, c.connections_peak, c.connections_min),
            (60, 5, 3)
        );
        assert_eq!(c.messages_out, 14);
        assert_eq!(db.all_app_stats(MINUTE, 0, 1000).unwrap().len(), 2);
    }

    #[test]
    fn rollups_merge_per_node_and_rerunning_changes_nothing() {
        let (_dir, db) = db();
        let hour = 10 * HOUR;
        let mut rows = BTreeMap::new();
        for m in 0..60 {
            rows.insert(key("a", MINUTE, hour + m * MINUTE, "n1"), counts(60, m, 1));
            rows.insert(key("a", MINUTE, hour + m * MINUTE, "n2"), counts(60, 1, 2));
        }
        // A minute of the next hour is not part of it.
        rows.insert(key("a", MINUTE, hour + HOUR, "n1"), counts(60, 99, 100));
        db.add_stats(&rows).unwrap();
        assert_eq!(db.roll_up_stats(MINUTE, HOUR, hour).unwrap(), 2);
        let first = db.app_stats("a", HOUR, hour, hour + 1).unwrap();
        assert_eq!(db.roll_up_stats(MINUTE, HOUR, hour).unwrap(), 2);
        let again = db.app_stats("a", HOUR, hour, hour + 1).unwrap();
        assert_eq!(first, again);
        let n1 = &first.iter().find(|(k, _)| k.node == "n1").unwrap().1;
        assert_eq!(
            (n1.samples, n1.connections_peak, n1.messages_out),
            (3600, 59, 60)
        );
        let n2 = &first.iter().find(|(k, _)| k.node == "n2").unwrap().1;
        assert_eq!(n2.messages_out, 120);
    }

    #[test]
    fn pruning_deletes_only_older_rows_of_one_resolution() {
        let (_dir, db) = db();
        let rows = BTreeMap::from([
            (key("a", MINUTE, 0, "n"), counts(1, 1, 1)),
            (key("a", MINUTE, 600, "n"), counts(1, 1, 1)),
            (key("a", HOUR, 0, "n"), counts(1, 1, 1)),
        ]);
        db.add_stats(&rows).unwrap();
        assert_eq!(db.prune_stats(MINUTE, 600).unwrap(), 1);
        assert_eq!(db.app_stats("a", MINUTE, 0, 10_000).unwrap().len(), 1);
        assert_eq!(db.app_stats("a", HOUR, 0, 10_000).unwrap().len(), 1);
    }
}
