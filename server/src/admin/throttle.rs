//! Limits on password work: the login throttle (failed logins per client address and per
//! account, two separate budgets) and the cap on concurrent argon2 hashing.
//!
//! Both exist so that a login flood costs the server little: the throttle answers 429 before
//! any hashing, and the cap keeps argon2 (deliberately slow and memory-hungry) from taking the
//! blocking pool, which the database work shares.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Failed logins allowed per account (email) within the window, from any address.
pub const ACCOUNT_ATTEMPTS: usize = 5;
/// Failed logins allowed per client address within the window, whatever the accounts.
pub const ADDRESS_ATTEMPTS: usize = 20;
/// How long a failed login counts.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys remembered per budget; beyond this the least recently failing key is forgotten.
const MAX_KEYS: usize = 10_000;
/// What a client is told to wait when every hashing slot is taken.
const BUSY_RETRY_SECS: u64 = 1;

/// Recent failures per key, in a map of at most `capacity` keys.
///
/// When full, the key whose last failure is oldest goes, but never one that is over its budget
/// while others are not: a spray of fresh keys cannot wipe the record of a key being attacked.
struct FailureLog {
    limit: usize,
    capacity: usize,
    keys: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailureLog {
    fn new(limit: usize, capacity: usize) -> Self {
        Self {
            limit,
            capacity,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `key` used up its budget.
    fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let keys = self.keys.lock().expect("throttle lock");
        let Some(times) = keys.get(key) else {
            return Ok(());
        };
        let recent: Vec<&Instant> = times
            .iter()
            .filter(|t| now.duration_since(**t) < LOGIN_WINDOW)
            .collect();
        if recent.len() < self.limit {
            return Ok(());
        }
        let oldest = **recent.first().expect("at least one recent failure");
        Err(LOGIN_WINDOW
            .saturating_sub(now.duration_since(oldest))
            .as_secs()
            .max(1))
    }

    /// Checks and records one attempt at once, under one lock: concurrent attempts cannot all
    /// pass a check made before any of them is recorded. `release` takes it back on success.
    fn reserve(&self, key: &str, now: Instant) -> Result<(), u64> {
        self.check(key, now)?;
        self.fail(key, now);
        Ok(())
    }

    /// Takes back the last attempt recorded for `key` (it succeeded).
    fn release(&self, key: &str) {
        let mut keys = self.keys.lock().expect("throttle lock");
        if let Some(times) = keys.get_mut(key) {
            times.pop_back();
            if times.is_empty() {
                keys.remove(key);
            }
        }
    }

    fn fail(&self, key: &str, now: Instant) {
        let mut keys = self.keys.lock().expect("throttle lock");
        if !keys.contains_key(key) && keys.len() >= self.capacity {
            let limit = self.limit;
            let over = |times: &VecDeque<Instant>| {
                times
                    .iter()
                    .filter(|t| now.duration_since(**t) < LOGIN_WINDOW)
                    .count()
                    >= limit
            };
            let quietest = |only_under_budget: bool| {
                keys.iter()
                    .filter(|(_, times)| !only_under_budget || !over(times))
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(k, _)| k.clone())
            };
            if let Some(quietest) = quietest(true).or_else(|| quietest(false)) {
                keys.remove(&quietest);
            }
        }
        let times = keys.entry(key.to_owned()).or_default();
        times.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
        // Only the last `limit` failures decide anything.
        if times.len() >= self.limit {
            times.pop_front();
        }
        times.push_back(now);
    }

    fn clear(&self, key: &str) {
        self.keys.lock().expect("throttle lock").remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().expect("throttle lock").len()
    }
}

/// Counts failed logins per client address and, separately, per account.
pub struct LoginThrottle {
    addresses: FailureLog,
    accounts: FailureLog,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            addresses: FailureLog::new(ADDRESS_ATTEMPTS, MAX_KEYS),
            accounts: FailureLog::new(ACCOUNT_ATTEMPTS, MAX_KEYS),
        }
    }
}

impl LoginThrottle {
    /// `Err(seconds to wait)` when the address or the account used up its budget. `ip` is an
    /// [`crate::http::client::address_key`]; `email` a validated (so bounded) address, `None` when it was invalid.
    pub fn check(&self, ip: &str, email: Option<&str>) -> Result<(), u64> {
        let now = Instant::now();
        let by_address = self.addresses.check(ip, now);
        let by_account = email.map_or(Ok(()), |e| self.accounts.check(e, now));
        match (by_address, by_account) {
            (Ok(()), Ok(())) => Ok(()),
            (a, b) => Err(a.err().unwrap_or(0).max(b.err().unwrap_or(0))),
        }
    }

    pub fn failed(&self, ip: &str, email: Option<&str>) {
        let now = Instant::now();
        self.addresses.fail(ip, now);
        if let Some(email) = email {
            self.accounts.fail(email, now);
        }
    }

    /// A login attempt: checked and counted as a failure at once, for the address and then
    /// the account (`Err(seconds to wait)` when either is out of budget), so that concurrent
    /// attempts cannot all pass a check made before any of them was counted. Every validated
    /// email counts, whether or not it is an account, so a 429 tells nothing about accounts.
    pub fn begin(&self, ip: &str, email: Option<&str>) -> Result<(), u64> {
        let now = Instant::now();
        self.addresses.reserve(ip, now)?;
        email.map_or(Ok(()), |e| self.accounts.reserve(e, now))
    }

    /// A successful login: its own attempt is taken back from the address, and the account's
    /// failures are cleared. The address keeps its other failures: one valid account must not
    /// reset a guesser's budget for the others.
    pub fn succeeded(&self, ip: &str, email: &str) {
        self.addresses.release(ip);
        self.accounts.clear(email);
    }
}

/// At most one argon2 hash or verification per CPU core at a time.
pub struct Hashing {
    permits: Arc<Semaphore>,
}

impl Default for Hashing {
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    }
}

impl Hashing {
    pub fn new(slots: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// A slot for one hash, to move into the blocking closure that hashes (it is released when
    /// that closure ends, even if the request was abandoned meanwhile). 429 when none is free:
    /// waiting would only queue a flood in memory.
    pub fn permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                "The server is busy checking passwords; retry in a moment",
            )
            .retry_after(BUSY_RETRY_SECS)
        })
    }
}

/// The 429 of a throttled login.
pub fn throttled(wait: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("Too many failed logins; try again in {wait} seconds"),
    )
    .retry_after(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_throttled_after_its_failures_from_any_address() {
        let t = LoginThrottle::default();
        for i in 0..ACCOUNT_ATTEMPTS {
            let ip = format!("10.0.0.{i}");
            assert!(t.check(&ip, Some("a@x.io")).is_ok());
            t.failed(&ip, Some("a@x.io"));
        }
        assert!(t.check("10.9.9.9", Some("a@x.io")).is_err());
        assert!(t.check("10.9.9.9", Some("b@x.io")).is_ok());
        t.succeeded("10.9.9.9", "a@x.io");
        assert!(t.check("10.9.9.9", Some("a@x.io")).is_ok());
    }

    #[test]
    fn an_address_is_throttled_after_its_failures_on_any_accounts() {
        let t = LoginThrottle::default();
        for i in 0..ADDRESS_ATTEMPTS {
            t.failed("1.1.1.1", Some(&format!("u{i}@x.io")));
        }
        assert!(t.check("1.1.1.1", Some("new@x.io")).is_err());
        assert!(t.check("1.1.1.1", None).is_err());
        assert!(t.check("2.2.2.2", Some("new@x.io")).is_ok());
    }

    #[test]
    fn failures_expire_with_the_window() {
        let log = FailureLog::new(2, 10);
        let start = Instant::now();
        log.fail("k", start);
        log.fail("k", start);
        assert!(log.check("k", start).is_err());
        assert!(log.check("k", start + LOGIN_WINDOW).is_ok());
    }

    #[test]
    fn the_map_stays_bounded_and_forgets_the_quietest_key() {
        let log = FailureLog::new(1, 3);
        let start = Instant::now();
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            log.fail(key, start + Duration::from_secs(i as u64));
        }
        assert_eq!(log.len(), 3);
        assert!(log.check("a", start).is_ok(), "the quietest key went");
        assert!(log.check("d", start).is_err());
        for _ in 0..100 {
            log.fail("d", start);
        }
        assert_eq!(
            log.keys.lock().unwrap()["d"].len(),
            1,
            "times per key are bounded"
        );
    }

    #[test]
    fn attempts_are_reserved_under_one_lock_and_given_back_on_success() {
        let t = LoginThrottle::default();
        for i in 0..ACCOUNT_ATTEMPTS {
            assert!(t.begin(&format!("10.0.0.{i}"), Some("a@x.io")).is_ok());
        }
        assert!(
            t.begin("10.0.0.9", Some("a@x.io")).is_err(),
            "the next attempt waits"
        );
        for _ in 0..ADDRESS_ATTEMPTS {
            assert!(t.begin("1.1.1.1", Some("b@x.io")).is_ok());
            t.succeeded("1.1.1.1", "b@x.io");
        }
        assert!(
            t.begin("1.1.1.1", None).is_ok(),
            "successful logins do not use up the address"
        );
    }

    #[test]
    fn a_key_over_its_budget_is_not_evicted_by_a_spray_of_new_keys() {
        let log = FailureLog::new(2, 3);
        let start = Instant::now();
        log.fail("target", start);
        log.fail("target", start);
        for (i, key) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            log.fail(key, start + Duration::from_secs(1 + i as u64));
        }
        assert!(log.check("target", start).is_err(), "still throttled");
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn hashing_slots_are_bounded() {
        let hashing = Hashing::new(2);
        let a = hashing.permit().unwrap();
        let _b = hashing.permit().unwrap();
        let busy = hashing.permit().unwrap_err();
        assert_eq!((busy.status.as_u16(), busy.kind), (429, "busy"));
        assert_eq!(busy.retry_after, Some(1));
        drop(a);
        assert!(hashing.permit().is_ok());
    }
}
