//! The message quota: how many messages an app used today and this month (UTC), counted as
//! Pusher counts them, and the loop that keeps the counts in the database.
//!
//! A message is one REST event accepted per channel it names (a batch item is one), one
//! client event accepted, and one event delivered to one connection (REST events, client
//! events, presence `member_added`/`member_removed`); protocol frames (`connection_established`,
//! ping/pong, subscription results, errors) are not messages. That is Pusher's rule: one event
//! published to 50 subscribers is 51 messages. (Pusher also counts webhook calls and REST
//! queries; webhook calls are not counted here yet, and REST queries have their own rate.)
//!
//! Counting is one atomic add on the hot path ([`Usage::add`]). The counts per period are
//! folded from that counter under a small lock only when somebody asks (a REST publish checks
//! the quota) and once a second by the keeper, so the quota check is exact to the last message
//! counted. A day's count is attributed to the day it was folded in, so at midnight up to one
//! second of traffic may land on the wrong side.
//!
//! The keeper writes each app's new messages to `app_usage` (one row per app and UTC day) every
//! `usage_flush_secs`, all apps in one transaction; it reads an app's stored counts for this
//! day and month when it first sees the app, so a restart does not reset the quota. While the
//! database is down the unwritten counts wait in memory (a few numbers per app and day, capped)
//! and are written when it returns. A crash loses at most one flush interval of counts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::actors::directory::{AppHandle, Directory};
use crate::db::{Db, DbError};

/// Days of unwritten counts one app keeps while the database is down; older ones are dropped
/// (and logged).
const MAX_UNWRITTEN_DAYS: usize = 62;

/// A UTC day: days since 1970-01-01.
pub type Day = i64;

/// The UTC day of a unix time in seconds.
pub const fn day_of(unix_secs: i64) -> Day {
    unix_secs.div_euclid(86_400)
}

/// The (year, month) of a UTC day, by the civil-from-days algorithm (Howard Hinnant's, exact
/// for the proleptic Gregorian calendar).
pub const fn month_of(day: Day) -> (i64, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month as u32)
}

/// The first day of the month that `day` is in.
pub const fn first_of_month(day: Day) -> Day {
    let (year, month) = month_of(day);
    // days_from_civil for (year, month, 1).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub use shared::admin::QuotaPeriod;

/// An app's usage against its quota at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStatus {
    pub messages_today: u64,
    pub messages_this_month: u64,
    /// The daily quota (0: none).
    pub daily_limit: u32,
    /// The monthly quota (0: none).
    pub monthly_limit: u32,
    /// Which quota is used up, if one is.
    pub over: Option<QuotaPeriod>,
    /// Seconds until the quota that is used up starts again.
    pub resets_in_secs: Option<u64>,
}

impl QuotaStatus {
    /// What the admin API shows.
    pub fn usage(&self) -> shared::admin::AppUsage {
        shared::admin::AppUsage {
            messages_today: self.messages_today,
            messages_this_month: self.messages_this_month,
            over_quota: self.over,
        }
    }
}

#[derive(Debug, Default)]
struct Periods {
    /// The day the counts are for (0 before the first fold).
    day: Day,
    today: u64,
    this_month: u64,
    /// The value of the counter already folded in.
    folded: u64,
    /// Counts not yet written, by day.
    unwritten: BTreeMap<Day, u64>,
}

impl Periods {
    /// Brings the counts to `day`, then adds `new` messages to it.
    fn fold(&mut self, day: Day, new: u64) {
        if day != self.day {
            if first_of_month(day) != first_of_month(self.day) {
                self.this_month = 0;
            }
            self.today = 0;
            self.day = day;
        }
        self.today += new;
        self.this_month += new;
        if new > 0 {
            *self.unwritten.entry(day).or_default() += new;
        }
    }
}

/// One app's message usage. See the module documentation.
#[derive(Debug, Default)]
pub struct Usage {
    counted: AtomicU64,
    periods: Mutex<Periods>,
    /// Whether the stored counts of the current day and month were read.
    loaded: AtomicBool,
}

impl Usage {
    /// Counts `n` messages.
    pub fn add(&self, n: u64) {
        self.counted.fetch_add(n, Ordering::Relaxed);
    }

    /// Every message counted by this handle so far (statistics read it as a running total).
    pub fn counted(&self) -> u64 {
        self.counted.load(Ordering::Relaxed)
    }

    fn periods(&self) -> std::sync::MutexGuard<'_, Periods> {
        // Periods stay consistent after a panic: each update is a few additions.
        self.periods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn folded(&self, now_unix: i64) -> std::sync::MutexGuard<'_, Periods> {
        let mut periods = self.periods();
        let counted = self.counted.load(Ordering::Relaxed);
        let new = counted.saturating_sub(periods.folded);
        periods.folded = counted;
        periods.fold(day_of(now_unix), new);
        periods
    }

    /// The usage at `now_unix` against the daily and monthly limits (0: none).
    pub fn status(&self, now_unix: i64, daily_limit: u32, monthly_limit: u32) -> QuotaStatus {
        let periods = self.folded(now_unix);
        let over_day = daily_limit > 0 && periods.today >= u64::from(daily_limit);
        let over_month = monthly_limit > 0 && periods.this_month >= u64::from(monthly_limit);
        let day = periods.day;
        let (over, resets_at_day) = if over_month {
            // The month outlasts the day: it is the one that decides when sending works again.
            let mut next = day + 1;
            while first_of_month(next) == first_of_month(day) {
                next += 1;
            }
            (Some(QuotaPeriod::Month), Some(next))
        } else if over_day {
            (Some(QuotaPeriod::Day), Some(day + 1))
        } else {
            (None, None)
        };
        QuotaStatus {
            messages_today: periods.today,
            messages_this_month: periods.this_month,
            daily_limit,
            monthly_limit,
            over,
            resets_in_secs: resets_at_day
                .map(|d| u64::try_from(d * 86_400 - now_unix).unwrap_or(0).max(1)),
        }
    }

    /// Whether the stored counts were added (see [`load`]).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Adds what the database holds for the current day and month, once: a second loader
    /// (the keeper and a REST request racing for a new app) changes nothing.
    fn load(&self, now_unix: i64, stored_today: u64, stored_month: u64) {
        let mut periods = self.folded(now_unix);
        if self.loaded.load(Ordering::Acquire) {
            return;
        }
        periods.today += stored_today;
        periods.this_month += stored_month;
        self.loaded.store(true, Ordering::Release);
    }

    /// Takes the counts not yet written.
    fn take_unwritten(&self, now_unix: i64) -> BTreeMap<Day, u64> {
        std::mem::take(&mut self.folded(now_unix).unwritten)
    }

    /// Puts back counts whose write failed.
    fn restore_unwritten(&self, counts: BTreeMap<Day, u64>, app_id: &str) {
        let mut periods = self.periods();
        for (day, n) in counts {
            *periods.unwritten.entry(day).or_default() += n;
        }
        while periods.unwritten.len() > MAX_UNWRITTEN_DAYS {
            if let Some((day, n)) = periods.unwritten.pop_first() {
                tracing::error!(
                    app_id,
                    day,
                    messages = n,
                    "usage counts dropped: the database was down for too long"
                );
            }
        }
    }
}

/// Runs the keeper: folds and writes every app's usage every `every`, and reads the stored
/// counts of apps it has not seen yet. The server's shutdown runs [`keep`] once more.
pub fn spawn_keeper(
    db: Db,
    directory: Directory,
    every: Duration,
) -> actix_web::rt::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let db = db.clone();
            let directory = directory.clone();
            let _ = actix_web::web::block(move || keep(&db, &directory)).await;
        }
    })
}

/// Reads the stored counts of this day and month for the apps whose counts were not read yet
/// (blocking: a database call).
pub fn load(db: &Db, apps: &[Arc<AppHandle>]) -> Result<(), DbError> {
    let now = crate::db::now_unix();
    let unseen: Vec<&AppHandle> = apps
        .iter()
        .map(|a| &**a)
        .filter(|a| !a.metrics.usage.is_loaded())
        .collect();
    if unseen.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = unseen.iter().map(|a| a.config.load().id.clone()).collect();
    let today = day_of(now);
    let rows = db.usage_since(&ids, first_of_month(today))?;
    for (app, id) in unseen.iter().zip(&ids) {
        let mine = rows.iter().filter(|(a, _, _)| a == id);
        let month: u64 = mine.clone().map(|(_, _, n)| *n).sum();
        let day: u64 = mine
            .filter(|(_, d, _)| *d == today)
            .map(|(_, _, n)| *n)
            .sum();
        app.metrics.usage.load(now, day, month);
    }
    Ok(())
}

/// One round of the keeper (blocking: database calls).
pub fn keep(db: &Db, directory: &Directory) {
    let now = crate::db::now_unix();
    let apps = directory.all();
    if let Err(e) = load(db, &apps) {
        tracing::warn!(error = %e, "cannot read stored message usage; retrying");
    }
    // Each app's unwritten counts, kept beside the app so that a failed write goes back to it.
    let batch: Vec<(&AppHandle, String, BTreeMap<Day, u64>)> = apps
        .iter()
        .map(|app| {
            let app = &**app;
            let id = app.config.load().id.clone();
            (app, id, app.metrics.usage.take_unwritten(now))
        })
        .filter(|(_, _, counts)| !counts.is_empty())
        .collect();
    if batch.is_empty() {
        return;
    }
    let rows: Vec<(String, Day, u64)> = batch
        .iter()
        .flat_map(|(_, id, counts)| counts.iter().map(|(d, n)| (id.clone(), *d, *n)))
        .collect();
    if let Err(e) = db.add_usage(&rows) {
        tracing::warn!(error = %e, "cannot write message usage; keeping it for the next round");
        for (app, id, counts) in batch {
            app.metrics.usage.restore_unwritten(counts, &id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30 23:59:59 UTC.
    const NOV_30_LAST_SECOND: i64 = 1_796_083_199;

    #[test]
    fn calendar_arithmetic_matches_known_dates() {
        assert_eq!(month_of(0), (1970, 1));
        assert_eq!(month_of(day_of(NOV_30_LAST_SECOND)), (2026, 11));
        assert_eq!(month_of(day_of(NOV_30_LAST_SECOND + 1)), (2026, 12));
        // 2024-02-29 (a leap day) is day 19782.
        assert_eq!(month_of(19_782), (2024, 2));
        assert_eq!(first_of_month(19_782), 19_754);
        assert_eq!(month_of(19_754 - 1), (2024, 1));
        assert_eq!(first_of_month(0), 0);
    }

    #[test]
    fn the_daily_quota_resets_at_midnight_utc_and_the_monthly_one_on_the_first() {
        let usage = Usage::default();
        let evening = NOV_30_LAST_SECOND - 3600;
        usage.add(100);
        let status = usage.status(evening, 100, 1000);
        assert_eq!(
            (status.messages_today, status.over),
            (100, Some(QuotaPeriod::Day))
        );
        assert_eq!(status.resets_in_secs, Some(3601));
        // One second later it is December: both periods start again.
        usage.add(1);
        let status = usage.status(NOV_30_LAST_SECOND + 1, 100, 1000);
        assert_eq!((status.messages_today, status.messages_this_month), (1, 1));
        assert_eq!(status.over, None);
        // Within a month, a new day keeps the month's count.
        usage.add(999);
        usage.status(NOV_30_LAST_SECOND + 60, 100, 1000);
        let next_day = NOV_30_LAST_SECOND + 1 + 86_400;
        usage.add(5);
        let status = usage.status(next_day, 100, 1000);
        assert_eq!(
            (status.messages_today, status.messages_this_month),
            (5, 1005)
        );
        assert_eq!(status.over, Some(QuotaPeriod::Month));
        // The month decides when it works again: 2027-01-01, 30 days later.
        assert_eq!(status.resets_in_secs, Some(30 * 86_400));
        assert_eq!(usage.status(next_day, 0, 0).over, None);
    }

    #[test]
    fn stored_counts_add_to_memory_and_unwritten_counts_survive_a_failed_write() {
        let usage = Usage::default();
        let now = NOV_30_LAST_SECOND - 60;
        usage.add(7);
        usage.load(now, 10, 50);
        let status = usage.status(now, 0, 0);
        assert_eq!(
            (status.messages_today, status.messages_this_month),
            (17, 57)
        );
        let taken = usage.take_unwritten(now);
        assert_eq!(taken.values().sum::<u64>(), 7);
        assert!(usage.take_unwritten(now).is_empty());
        usage.restore_unwritten(taken, "1");
        usage.add(3);
        assert_eq!(usage.take_unwritten(now).values().sum::<u64>(), 10);
        // The stored part was never unwritten: it is not written twice.
        assert_eq!(usage.status(now, 0, 0).messages_today, 20);
    }

    #[test]
    fn unwritten_days_are_capped() {
        let usage = Usage::default();
        let counts: BTreeMap<Day, u64> = (0..100).map(|d| (d, 1)).collect();
        usage.restore_unwritten(counts, "1");
        let periods = usage.periods();
        assert_eq!(periods.unwritten.len(), MAX_UNWRITTEN_DAYS);
        assert_eq!(periods.unwritten.keys().next(), Some(&38));
    }
}
