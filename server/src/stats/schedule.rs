//! When rollups and pruning run, and which stored resolution a query reads for which part of
//! its range: pure functions of the time, tested with a fake clock.
//!
//! An hour is rolled up from its minute rows once it has ended (plus [`GRACE`] for the last
//! minute's write), and a day from its hour rows once its last hour is rolled up. Only hours
//! this node wrote minutes for are rolled ("dirty"), and rolling up an hour dirties its day; at
//! start the last two days are dirty, for the hours that ended while the server was down.
//! Queries therefore read a coarse resolution only where its rows are certainly complete, and
//! the finer rows for the rest (the last hour or two, the last day or two), so a range total
//! always matches the live numbers.

use std::collections::BTreeSet;

use shared::stats::{DAY, HOUR, MINUTE};

/// Time after a bucket ends before it is rolled up.
pub const GRACE: i64 = 60;

/// The start of the `resolution` bucket holding `t`.
pub const fn floor(t: i64, resolution: i64) -> i64 {
    t - t.rem_euclid(resolution)
}

/// How long each resolution is kept, in seconds (0: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub minutes: i64,
    pub hours: i64,
    pub days: i64,
}

impl Retention {
    /// What to delete at `now`: `(resolution, delete buckets before)`, whole hours.
    pub fn cutoffs(&self, now: i64) -> Vec<(i64, i64)> {
        [(MINUTE, self.minutes), (HOUR, self.hours), (DAY, self.days)]
            .into_iter()
            .filter(|(_, keep)| *keep > 0)
            .map(|(res, keep)| (res, floor(now - keep, HOUR)))
            .collect()
    }
}

/// A rollup: the `resolution` row of the bucket starting at `bucket`, from `finer` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rollup {
    pub finer: i64,
    pub resolution: i64,
    pub bucket: i64,
}

/// The hours and days that have rows not yet rolled up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    hours: BTreeSet<i64>,
    days: BTreeSet<i64>,
}

impl Dirty {
    /// What a node starting at `now` should roll up once due: the last two days' hours
    /// and days (hours that ended while it was down).
    pub fn at_start(now: i64) -> Self {
        let mut dirty = Self::default();
        let mut hour = floor(now - 2 * DAY, HOUR);
        while hour <= now {
            dirty.minute_written(hour);
            hour += HOUR;
        }
        dirty
    }

    /// A minute row starting at `minute` was written.
    pub fn minute_written(&mut self, minute: i64) {
        self.hours.insert(floor(minute, HOUR));
    }

    /// The rollups due at `now`, taken out of the dirty set (hours first: a day is due only
    /// once none of its hours is waiting).
    pub fn take_due(&mut self, now: i64) -> Vec<Rollup> {
        let hours: Vec<i64> = self
            .hours
            .iter()
            .copied()
            .filter(|h| now >= h + HOUR + GRACE)
            .collect();
        let mut due = Vec::new();
        for hour in hours {
            self.hours.remove(&hour);
            self.days.insert(floor(hour, DAY));
            due.push(Rollup {
                finer: MINUTE,
                resolution: HOUR,
                bucket: hour,
            });
        }
        let days: Vec<i64> = self
            .days
            .iter()
            .copied()
            .filter(|d| now >= d + DAY + HOUR + 2 * GRACE)
            .filter(|d| !self.hours.iter().any(|h| floor(*h, DAY) == *d))
            .collect();
        for day in days {
            self.days.remove(&day);
            due.push(Rollup {
                finer: HOUR,
                resolution: DAY,
                bucket: day,
            });
        }
        due
    }

    /// A rollup failed (the database is down): it is due again next time.
    pub fn failed(&mut self, rollup: Rollup) {
        if rollup.resolution == HOUR {
            self.hours.insert(rollup.bucket);
        } else {
            self.days.insert(rollup.bucket);
        }
    }
}

/// Where coarse rows stop being certainly complete: buckets before it are rolled up.
pub const fn rolled_until(resolution: i64, now: i64) -> i64 {
    match resolution {
        HOUR => floor(now, HOUR) - HOUR,
        DAY => floor(now, DAY) - DAY,
        _ => i64::MAX,
    }
}

/// Which stored resolution to read for which part of `[from, to)` when grouping at
/// `resolution`: `(resolution, from, to)` parts, coarsest first, empty parts left out.
pub fn layers(resolution: i64, from: i64, to: i64, now: i64) -> Vec<(i64, i64, i64)> {
    let mut parts = Vec::new();
    let mut start = from;
    let mut res = resolution;
    loop {
        if res == MINUTE {
            if start < to {
                parts.push((MINUTE, start, to));
            }
            return parts;
        }
        let until = rolled_until(res, now).min(to);
        if start < until {
            parts.push((res, start, until));
            start = until;
        }
        res = if res == DAY { HOUR } else { MINUTE };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30 00:00:00 UTC.
    const NOV_30: i64 = 1_796_083_200 - DAY;

    #[test]
    fn an_hour_is_rolled_up_a_minute_after_it_ends_and_its_day_after_its_last_hour() {
        let mut dirty = Dirty::default();
        dirty.minute_written(NOV_30 + 23 * HOUR + 59 * MINUTE);
        let last_hour = NOV_30 + 23 * HOUR;
        assert!(
            dirty.take_due(NOV_30 + DAY).is_empty(),
            "the hour just ended"
        );
        let due = dirty.take_due(NOV_30 + DAY + GRACE);
        assert_eq!(
            due,
            [Rollup {
                finer: MINUTE,
                resolution: HOUR,
                bucket: last_hour
            }]
        );
        assert!(
            dirty.take_due(NOV_30 + DAY + 2 * GRACE).is_empty(),
            "the day waits"
        );
        let due = dirty.take_due(NOV_30 + DAY + HOUR + 2 * GRACE);
        assert_eq!(
            due,
            [Rollup {
                finer: HOUR,
                resolution: DAY,
                bucket: NOV_30
            }]
        );
        assert!(dirty.take_due(NOV_30 + 10 * DAY).is_empty());
    }

    #[test]
    fn a_failed_rollup_is_due_again_and_holds_its_day_back() {
        let mut dirty = Dirty::default();
        dirty.minute_written(NOV_30);
        let late = NOV_30 + 3 * DAY;
        let due = dirty.take_due(late);
        assert_eq!(due.len(), 2);
        // Say the hour failed: it comes back, and its day (already taken) is not doubled.
        dirty.failed(due[0]);
        let again = dirty.take_due(late);
        assert_eq!(again.len(), 2, "{again:?}");
        assert_eq!(again[0].resolution, HOUR);
        assert_eq!(again[1].resolution, DAY);
    }

    #[test]
    fn start_up_dirties_the_last_two_days() {
        let mut dirty = Dirty::at_start(NOV_30 + 12 * HOUR + 5);
        let due = dirty.take_due(NOV_30 + 12 * HOUR + 5);
        // Hours from 12:00 two days ago to 10:00 today (11:00 ended only 5 s ago).
        assert_eq!(due.iter().filter(|r| r.resolution == HOUR).count(), 36 + 11);
        // Days that ended over an hour ago: the day before yesterday and yesterday.
        assert_eq!(due.iter().filter(|r| r.resolution == DAY).count(), 2);
    }

    #[test]
    fn pruning_keeps_each_resolution_for_its_own_period() {
        let r = Retention {
            minutes: 7 * DAY,
            hours: 396 * DAY,
            days: 0,
        };
        let now = NOV_30 + 90;
        assert_eq!(
            r.cutoffs(now),
            [(MINUTE, NOV_30 - 7 * DAY), (HOUR, NOV_30 - 396 * DAY)]
        );
    }

    #[test]
    fn queries_read_coarse_rows_only_where_they_are_complete() {
        let now = NOV_30 + 10 * HOUR + 30 * MINUTE;
        // 7 days at hour steps: hours until 09:00, minutes from 09:00 (09:00-10:00 may not be
        // rolled up yet).
        assert_eq!(
            layers(HOUR, now - 7 * DAY, now + 1, now),
            [
                (HOUR, now - 7 * DAY, NOV_30 + 9 * HOUR),
                (MINUTE, NOV_30 + 9 * HOUR, now + 1)
            ]
        );
        // A year at day steps: days until yesterday, then hours, then minutes.
        assert_eq!(
            layers(DAY, NOV_30 - 300 * DAY, NOV_30 + DAY, now),
            [
                (DAY, NOV_30 - 300 * DAY, NOV_30 - DAY),
                (HOUR, NOV_30 - DAY, NOV_30 + 9 * HOUR),
                (MINUTE, NOV_30 + 9 * HOUR, NOV_30 + DAY)
            ]
        );
        // An old range is read from coarse rows only.
        assert_eq!(
            layers(HOUR, NOV_30 - 5 * DAY, NOV_30 - 4 * DAY, now),
            [(HOUR, NOV_30 - 5 * DAY, NOV_30 - 4 * DAY)]
        );
        assert_eq!(layers(MINUTE, 0, 60, now), [(MINUTE, 0, 60)]);
    }
}
