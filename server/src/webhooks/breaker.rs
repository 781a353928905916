//! The circuit breaker of one endpoint: pure rules, no I/O (the delivery worker keeps one per
//! endpoint and asks it before claiming that endpoint's rows).
//!
//! Why: an endpoint that is down or hangs would otherwise take its full share of requests and
//! of the worker's attention on every retry, each one waiting for the timeout. After
//! `failures` consecutive failed attempts (transport error, timeout, 5xx, 408, 429) the breaker
//! **opens**: that endpoint's rows stay in the outbox, untouched, for `cooldown`. Then it is
//! **half-open**: one request (the probe) goes; success **closes** it, failure opens it again
//! for another cooldown. An answer the endpoint chose to give (2xx, or a 4xx that is not
//! retried) proves it is up, so it counts as a success here. Rows of a paused endpoint keep
//! their retry horizon: they are judged on the first attempt after it.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Paused until `retry_at_ms`.
    Open,
    /// One probe request may go (or is in flight).
    HalfOpen,
}

/// The breaker of one endpoint.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    /// Consecutive failed attempts.
    failures: u32,
    /// When an open breaker turns half-open (unix ms).
    retry_at_ms: i64,
    /// A probe is in flight (half-open).
    probing: bool,
    /// Times it opened.
    opens: u64,
}

/// What the worker may do with an endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Claim up to the per-endpoint concurrency.
    Flow,
    /// Claim exactly one row: the probe.
    Probe,
    /// Claim nothing.
    Paused,
}

/// What an attempt did to the breaker, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    Opened,
    Closed,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: BreakerState::Closed,
            failures: 0,
            retry_at_ms: 0,
            probing: false,
            opens: 0,
        }
    }
}

impl Breaker {
    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn opens(&self) -> u64 {
        self.opens
    }

    /// When an open breaker lets a probe through.
    pub fn retry_at_ms(&self) -> Option<i64> {
        (self.state == BreakerState::Open).then_some(self.retry_at_ms)
    }

    /// What may be sent now; an open breaker whose cooldown is over turns half-open.
    pub fn permit(&mut self, now_ms: i64) -> Permit {
        match self.state {
            BreakerState::Closed => Permit::Flow,
            BreakerState::Open if now_ms < self.retry_at_ms => Permit::Paused,
            BreakerState::Open => {
                self.state = BreakerState::HalfOpen;
                self.probing = false;
                Permit::Probe
            }
            BreakerState::HalfOpen if self.probing => Permit::Paused,
            BreakerState::HalfOpen => Permit::Probe,
        }
    }

    /// Lets a probe through at once if it is open (an admin replayed or tested: they have
    /// probably fixed the endpoint and should not wait out the cooldown).
    pub fn probe_now(&mut self, now_ms: i64) {
        if self.state == BreakerState::Open {
            self.retry_at_ms = self.retry_at_ms.min(now_ms);
        }
    }

    /// The probe was claimed.
    pub fn probe_sent(&mut self) {
        if self.state == BreakerState::HalfOpen {
            self.probing = true;
        }
    }

    /// Records an attempt's outcome.
    pub fn record(&mut self, ok: bool, now_ms: i64, threshold: u32, cooldown: Duration) -> Change {
        if ok {
            self.failures = 0;
            self.probing = false;
            if self.state == BreakerState::Closed {
                return Change::None;
            }
            self.state = BreakerState::Closed;
            return Change::Closed;
        }
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => threshold > 0 && self.failures >= threshold,
            // A request claimed before it opened failed too: it stays open, as it was.
            BreakerState::Open => false,
        };
        if !open {
            return Change::None;
        }
        self.state = BreakerState::Open;
        self.probing = false;
        self.retry_at_ms = now_ms + i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX / 2);
        self.opens += 1;
        Change::Opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(10);

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let mut b = Breaker::default();
        assert_eq!(b.record(false, 0, 3, COOL), Change::None);
        assert_eq!(b.record(false, 0, 3, COOL), Change::None);
        assert_eq!(b.record(true, 0, 3, COOL), Change::None);
        assert_eq!(b.failures(), 0);
        assert_eq!(b.record(false, 0, 3, COOL), Change::None);
        assert_eq!(b.record(false, 0, 3, COOL), Change::None);
        assert_eq!(b.permit(0), Permit::Flow);
        assert_eq!(b.record(false, 1_000, 3, COOL), Change::Opened);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.retry_at_ms(), Some(11_000));
        assert_eq!(b.permit(10_999), Permit::Paused);
        assert_eq!(b.opens(), 1);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_outcome_decides() {
        let mut b = Breaker::default();
        b.record(false, 0, 1, COOL);
        assert_eq!(b.permit(10_000), Permit::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.probe_sent();
        assert_eq!(b.permit(10_001), Permit::Paused, "one probe at a time");
        // The probe fails: open again for another cooldown.
        assert_eq!(b.record(false, 10_500, 1, COOL), Change::Opened);
        assert_eq!(b.permit(20_000), Permit::Paused);
        assert_eq!(b.permit(20_500), Permit::Probe);
        b.probe_sent();
        assert_eq!(b.record(true, 20_600, 1, COOL), Change::Closed);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.permit(20_601), Permit::Flow);
        assert_eq!(b.opens(), 2);
    }

    #[test]
    fn probe_now_ends_the_cooldown_of_an_open_breaker_only() {
        let mut b = Breaker::default();
        b.probe_now(0);
        assert_eq!(b.permit(0), Permit::Flow);
        b.record(false, 0, 1, COOL);
        assert_eq!(b.permit(5), Permit::Paused);
        b.probe_now(5);
        assert_eq!(b.permit(5), Permit::Probe);
    }

    #[test]
    fn a_threshold_of_zero_never_opens() {
        let mut b = Breaker::default();
        for _ in 0..100 {
            assert_eq!(b.record(false, 0, 0, COOL), Change::None);
        }
        assert_eq!(b.permit(0), Permit::Flow);
    }
}
