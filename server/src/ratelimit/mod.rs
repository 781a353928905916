//! Per-app rate limits: the shared gates that connections, client events, subscriptions and
//! REST calls of one app pass through, and the message quota ([`quota`], counted through the
//! app's metrics handle).
//!
//! Every gate is a GCRA limiter from `governor`: one atomic compare-and-swap per check, no lock,
//! so many worker threads share an app's gate without contention. A rate of `n` per second
//! admits a burst of `n` and then one every `1/n` s. The rate is read from the app's live
//! configuration on every check; when an admin changes it, the gate is rebuilt on the spot (a
//! fresh burst), so a change applies to the next request without a restart or a message.
//!
//! The per-address gate keeps one state per client address (an IPv6 address by its /64). Its
//! table is bounded: when it is full, states that have fully recovered are dropped first; if it
//! is still full, a new address is let through uncounted (and counted in a metric), because
//! refusing every new address would turn an attack from many addresses into an outage for all.
//!
//! What a refusal looks like is the caller's business (close code, `pusher:error`,
//! `subscription_error`, HTTP 429); this module only decides and says how long to wait.

pub mod quota;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

pub use quota::{QuotaPeriod, QuotaStatus, Usage};

/// The most client addresses one app's per-address gate tracks at once.
pub const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// A gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No limit is set.
    Unlimited,
    /// Let through; `remaining` more fit now, and the gate is full again after `reset`.
    Allowed {
        limit: u32,
        remaining: u32,
        reset: Duration,
    },
    /// Refused; the same request fits after `retry_after` (never, if `too_large`).
    Refused {
        limit: u32,
        retry_after: Duration,
        /// The request alone needs more than the limit allows at once.
        too_large: bool,
    },
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        !matches!(self, Self::Refused { .. })
    }
}

/// Whole seconds, rounded up: what `Retry-After` and `X-RateLimit-Reset` carry.
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>;

struct Limiter<C: Clock> {
    rate: u32,
    limiter: Direct<C>,
}

/// One shared rate gate (one app, one kind of action).
pub struct Gate<C: Clock = DefaultClock> {
    clock: C,
    /// The limiter of the last non-zero rate asked for.
    current: ArcSwap<Limiter<C>>,
}

impl Default for Gate<DefaultClock> {
    fn default() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> Gate<C> {
    pub fn with_clock(clock: C) -> Self {
        // A placeholder until a rate is set (a rate of 1 that is never asked for: any check
        // names its own rate, and a different one rebuilds).
        let placeholder =
            RateLimiter::direct_with_clock(Quota::per_second(NonZeroU32::MIN), clock.clone())
                .with_middleware::<StateInformationMiddleware>();
        Self {
            current: ArcSwap::from_pointee(Limiter {
                rate: 0,
                limiter: placeholder,
            }),
            clock,
        }
    }

    /// The limiter at `rate` (not 0), rebuilt if the rate changed.
    fn limiter_for(&self, rate: NonZeroU32) -> arc_swap::Guard<Arc<Limiter<C>>> {
        let current = self.current.load();
        if current.rate == rate.get() {
            return current;
        }
        // The limit changed: a fresh limiter at the new rate. Two threads racing here each
        // build one and the later store wins; either is a correct fresh gate.
        self.current.store(Arc::new(Limiter {
            rate: rate.get(),
            limiter: RateLimiter::direct_with_clock(Quota::per_second(rate), self.clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
        }));
        self.current.load()
    }

    /// Takes `n` (at least 1) from the gate at `rate` per second (0: unlimited, and no atomic
    /// operation at all, which is the default for every gate).
    pub fn check_n(&self, rate: u32, n: u32) -> Verdict {
        let Some(rate) = NonZeroU32::new(rate) else {
            return Verdict::Unlimited;
        };
        let current = self.limiter_for(rate);
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        match current.limiter.check_n(n) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity();
                let quota = snapshot.quota();
                let missing = quota.burst_size().get().saturating_sub(remaining);
                Verdict::Allowed {
                    limit: rate.get(),
                    remaining,
                    reset: quota.replenish_interval() * missing,
                }
            }
            Ok(Err(not_until)) => Verdict::Refused {
                limit: rate.get(),
                retry_after: not_until.wait_time_from(self.clock.now()),
                too_large: false,
            },
            Err(_) => Verdict::Refused {
                limit: rate.get(),
                retry_after: Duration::from_secs(1),
                too_large: true,
            },
        }
    }

    pub fn check(&self, rate: u32) -> Verdict {
        self.check_n(rate, 1)
    }
}

type Keyed<C> =
    RateLimiter<String, DefaultKeyedStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

struct KeyedLimiter<C: Clock> {
    rate: u32,
    limiter: Option<Keyed<C>>,
}

/// A rate gate per client address (one app).
pub struct AddressGate<C: Clock = DefaultClock> {
    clock: C,
    capacity: usize,
    current: ArcSwap<KeyedLimiter<C>>,
}

impl Default for AddressGate<DefaultClock> {
    fn default() -> Self {
        Self::with_clock(DefaultClock::default(), MAX_TRACKED_ADDRESSES)
    }
}

/// What the per-address gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressVerdict {
    Allowed,
    Refused {
        limit: u32,
        retry_after: Duration,
    },
    /// The table of addresses is full of live states: let through uncounted.
    Untracked,
}

impl<C: Clock + Clone> AddressGate<C> {
    pub fn with_clock(clock: C, capacity: usize) -> Self {
        Self {
            current: ArcSwap::from_pointee(KeyedLimiter {
                rate: 0,
                limiter: None,
            }),
            clock,
            capacity,
        }
    }

    /// One new connection from `address` (an address key) at `rate` per second (0: unlimited).
    pub fn check(&self, rate: u32, address: &str) -> AddressVerdict {
        if rate == 0 {
            return AddressVerdict::Allowed;
        }
        let mut current = self.current.load_full();
        if current.rate != rate {
            let fresh = Arc::new(KeyedLimiter {
                rate,
                limiter: NonZeroU32::new(rate).map(|n| {
                    RateLimiter::new(
                        Quota::per_second(n),
                        DefaultKeyedStateStore::default(),
                        self.clock.clone(),
                    )
                }),
            });
            self.current.store(fresh.clone());
            current = fresh;
        }
        let Some(limiter) = &current.limiter else {
            return AddressVerdict::Allowed;
        };
        let address = address.to_owned();
        if limiter.len() >= self.capacity {
            limiter.retain_recent();
            if limiter.len() >= self.capacity {
                return AddressVerdict::Untracked;
            }
        }
        match limiter.check_key(&address) {
            Ok(()) => AddressVerdict::Allowed,
            Err(not_until) => AddressVerdict::Refused {
                limit: rate,
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.current.load().limiter.as_ref().map_or(0, Keyed::len)
    }
}

/// One app's gates and message usage, shared by every thread that serves the app.
#[derive(Default)]
pub struct AppLimiters {
    pub new_connections: Gate,
    pub new_connections_by_address: AddressGate,
    pub backend_events: Gate,
    pub read_requests: Gate,
    pub client_events: Gate,
    pub subscriptions: Gate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn gate() -> (FakeRelativeClock, Gate<FakeRelativeClock>) {
        let clock = FakeRelativeClock::default();
        (clock.clone(), Gate::with_clock(clock))
    }

    #[test]
    fn a_rate_admits_its_burst_then_one_per_interval() {
        let (clock, gate) = gate();
        for left in (0..5).rev() {
            let Verdict::Allowed {
                limit, remaining, ..
            } = gate.check(5)
            else {
                panic!("refused within the burst");
            };
            assert_eq!((limit, remaining), (5, left));
        }
        let Verdict::Refused {
            retry_after,
            too_large,
            ..
        } = gate.check(5)
        else {
            panic!("admitted over the burst");
        };
        assert_eq!(
            (retry_after, too_large),
            (Duration::from_millis(200), false)
        );
        clock.advance(Duration::from_millis(200));
        assert!(gate.check(5).allowed());
        assert!(!gate.check(5).allowed());
    }

    #[test]
    fn zero_is_unlimited_and_a_new_rate_applies_at_once() {
        let (_, gate) = gate();
        for _ in 0..1000 {
            assert_eq!(gate.check(0), Verdict::Unlimited);
        }
        assert!(gate.check(1).allowed());
        assert!(!gate.check(1).allowed());
        // Raised by an admin: the next check already sees the new rate.
        assert!(gate.check(3).allowed());
        assert_eq!(gate.check(0), Verdict::Unlimited);
    }

    #[test]
    fn a_batch_counts_each_item_and_one_larger_than_the_limit_never_fits() {
        let (_, gate) = gate();
        let Verdict::Allowed {
            remaining, reset, ..
        } = gate.check_n(10, 4)
        else {
            panic!("refused");
        };
        assert_eq!(remaining, 6);
        assert_eq!(reset, Duration::from_millis(400));
        assert!(!gate.check_n(10, 7).allowed());
        assert!(gate.check_n(10, 6).allowed());
        assert!(matches!(
            gate.check_n(10, 11),
            Verdict::Refused {
                too_large: true,
                ..
            }
        ));
    }

    #[test]
    fn addresses_are_limited_separately_and_the_table_is_bounded() {
        let clock = FakeRelativeClock::default();
        let gate = AddressGate::with_clock(clock.clone(), 3);
        assert_eq!(gate.check(1, "a"), AddressVerdict::Allowed);
        assert!(matches!(gate.check(1, "a"), AddressVerdict::Refused { .. }));
        assert_eq!(gate.check(1, "b"), AddressVerdict::Allowed);
        assert_eq!(gate.check(1, "c"), AddressVerdict::Allowed);
        // Full of live states: a fourth address passes uncounted rather than being refused.
        assert_eq!(gate.check(1, "d"), AddressVerdict::Untracked);
        assert_eq!(gate.tracked(), 3);
        // Once the states have recovered they make room.
        clock.advance(Duration::from_secs(2));
        assert_eq!(gate.check(1, "d"), AddressVerdict::Allowed);
        assert!(gate.tracked() <= 3);
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
    }
}
