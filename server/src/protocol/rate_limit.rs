//! A token bucket: `rate` tokens a second, at most `rate` in reserve.

use std::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_second: u32, now: Instant) -> Self {
        let rate = f64::from(rate_per_second);
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes one token if there is one. A rate of zero means unlimited.
    pub fn try_take(&mut self, rate_per_second: u32, now: Instant) -> bool {
        let rate = f64::from(rate_per_second);
        if rate == 0.0 {
            return true;
        }
        // The rate is read on each call so that a reconfigured limit applies at once.
        self.rate = rate;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        for _ in 0..10 {
            assert!(b.try_take(10, t0));
        }
        assert!(!b.try_take(10, t0));
        assert!(b.try_take(10, t0 + Duration::from_millis(100)));
        assert!(!b.try_take(10, t0 + Duration::from_millis(100)));
    }

    #[test]
    fn zero_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, t0);
        for _ in 0..1000 {
            assert!(b.try_take(0, t0));
        }
    }
}
