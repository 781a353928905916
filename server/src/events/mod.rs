//! The app event stream: one typed [`AppEvent`] for everything that happens on an app
//! (connections, subscriptions, channel occupancy, presence, client and API events, cache
//! misses, subscription counts, refusals, errors), each emitted at exactly one place.
//!
//! Consumers read it without slowing the hot path down:
//! - Nobody interested costs one atomic load: every consumer registers the kinds it wants, and
//!   [`AppEvents::emit`] builds an event only when some consumer wants its kind.
//! - A consumer never blocks the emitter. The debug console is lossy by design (a broadcast
//!   ring: a slow browser is told how much it missed); [`AppEvents::queue`] gives a bounded
//!   queue that counts what it had to drop, for consumers that must account for every event
//!   (webhooks, statistics).
//!
//! The stream is per app and per node: a cluster will feed the other nodes' events in through
//! the same door.

pub mod debug;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::{broadcast, mpsc};

pub use debug::Watcher;

/// What happened. Strings are owned: an event outlives the actor that emitted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    ConnectionOpened {
        socket_id: String,
    },
    /// `code` is the close code sent or received (`None`: the socket just dropped).
    ConnectionClosed {
        socket_id: String,
        code: Option<u16>,
    },
    Subscribed {
        socket_id: String,
        channel: String,
    },
    Unsubscribed {
        socket_id: String,
        channel: String,
    },
    /// The channel's first subscriber on this node.
    ChannelOccupied {
        channel: String,
    },
    /// The channel's last subscriber on this node left.
    ChannelVacated {
        channel: String,
    },
    /// A user's first connection in a presence channel.
    MemberAdded {
        channel: String,
        user_id: String,
    },
    /// A user's last connection in a presence channel left.
    MemberRemoved {
        channel: String,
        user_id: String,
    },
    /// A client event that went out; `user_id` on presence channels.
    ClientEvent {
        socket_id: String,
        channel: String,
        event: String,
        data: String,
        user_id: Option<String>,
    },
    /// An event triggered through the REST API (or the panel's event creator).
    ApiEvent {
        channel: String,
        event: String,
        data: String,
        /// The sender's socket, which does not get it.
        except: Option<String>,
    },
    /// A subscriber of a cache channel found nothing cached.
    CacheMiss {
        channel: String,
    },
    /// `pusher_internal:subscription_count` went out.
    SubscriptionCount {
        channel: String,
        count: usize,
    },
    /// A limit refused something.
    RateLimited {
        socket_id: Option<String>,
        limit: Limit,
    },
    /// A `pusher:error` or `pusher:subscription_error` sent to a client.
    Error {
        socket_id: String,
        channel: Option<String>,
        code: Option<u16>,
        message: String,
    },
}

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// One connection's client events per second.
    ClientEventsPerSecond,
    /// The whole app's client events per second.
    AppClientEventsPerSecond,
    ChannelsPerConnection,
    OccupiedChannels,
    /// The app's new connections per second.
    NewConnections,
    /// New connections per second from one client address.
    NewConnectionsPerAddress,
    /// One connection's subscribe attempts per second.
    SubscriptionsPerConnection,
    /// The whole app's subscribe attempts per second.
    AppSubscriptions,
    /// REST events per second.
    BackendEvents,
    /// REST `GET` requests per second.
    ReadRequests,
    /// The daily message quota.
    DailyQuota,
    /// The monthly message quota.
    MonthlyQuota,
}

impl Limit {
    pub const ALL: [Self; 12] = [
        Self::ClientEventsPerSecond,
        Self::AppClientEventsPerSecond,
        Self::ChannelsPerConnection,
        Self::OccupiedChannels,
        Self::NewConnections,
        Self::NewConnectionsPerAddress,
        Self::SubscriptionsPerConnection,
        Self::AppSubscriptions,
        Self::BackendEvents,
        Self::ReadRequests,
        Self::DailyQuota,
        Self::MonthlyQuota,
    ];

    /// The name in metrics labels and the console.
    pub const fn label(self) -> &'static str {
        match self {
            Self::ClientEventsPerSecond => "client_events_per_connection",
            Self::AppClientEventsPerSecond => "client_events",
            Self::ChannelsPerConnection => "channels_per_connection",
            Self::OccupiedChannels => "occupied_channels",
            Self::NewConnections => "new_connections",
            Self::NewConnectionsPerAddress => "new_connections_per_address",
            Self::SubscriptionsPerConnection => "subscriptions_per_connection",
            Self::AppSubscriptions => "subscriptions",
            Self::BackendEvents => "backend_events",
            Self::ReadRequests => "read_requests",
            Self::DailyQuota => "daily_message_quota",
            Self::MonthlyQuota => "monthly_message_quota",
        }
    }
}

/// The kind of an [`AppEvent`], as a bit in a consumer's interest mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    ConnectionOpened = 1,
    ConnectionClosed = 1 << 1,
    Subscribed = 1 << 2,
    Unsubscribed = 1 << 3,
    ChannelOccupied = 1 << 4,
    ChannelVacated = 1 << 5,
    MemberAdded = 1 << 6,
    MemberRemoved = 1 << 7,
    ClientEvent = 1 << 8,
    ApiEvent = 1 << 9,
    CacheMiss = 1 << 10,
    SubscriptionCount = 1 << 11,
    RateLimited = 1 << 12,
    Error = 1 << 13,
}

/// A set of kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds(u32);

impl Kinds {
    pub const ALL: Self = Self((1 << 14) - 1);

    pub const fn of(kinds: &[Kind]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < kinds.len() {
            bits |= kinds[i] as u32;
            i += 1;
        }
        Self(bits)
    }

    pub const fn contains(self, kind: Kind) -> bool {
        self.0 & kind as u32 != 0
    }
}

impl AppEvent {
    pub fn kind(&self) -> Kind {
        match self {
            Self::ConnectionOpened { .. } => Kind::ConnectionOpened,
            Self::ConnectionClosed { .. } => Kind::ConnectionClosed,
            Self::Subscribed { .. } => Kind::Subscribed,
            Self::Unsubscribed { .. } => Kind::Unsubscribed,
            Self::ChannelOccupied { .. } => Kind::ChannelOccupied,
            Self::ChannelVacated { .. } => Kind::ChannelVacated,
            Self::MemberAdded { .. } => Kind::MemberAdded,
            Self::MemberRemoved { .. } => Kind::MemberRemoved,
            Self::ClientEvent { .. } => Kind::ClientEvent,
            Self::ApiEvent { .. } => Kind::ApiEvent,
            Self::CacheMiss { .. } => Kind::CacheMiss,
            Self::SubscriptionCount { .. } => Kind::SubscriptionCount,
            Self::RateLimited { .. } => Kind::RateLimited,
            Self::Error { .. } => Kind::Error,
        }
    }
}

/// An event with the moment it happened (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub at_ms: i64,
    pub event: AppEvent,
}

enum Sink {
    /// Lossy: a ring every watcher reads at its own pace.
    Broadcast(broadcast::Sender<Arc<Stamped>>),
    /// Bounded; full means dropped, and counted.
    Queue {
        tx: mpsc::Sender<Arc<Stamped>>,
        dropped: Arc<AtomicU64>,
    },
}

struct Consumer {
    id: u64,
    kinds: Kinds,
    sink: Sink,
}

#[derive(Default)]
struct Inner {
    /// The union of every consumer's kinds: the only thing an emit reads when nobody listens.
    interest: AtomicU32,
    consumers: RwLock<Vec<Consumer>>,
    next_id: AtomicU64,
}

impl Inner {
    fn consumers(&self) -> std::sync::RwLockReadGuard<'_, Vec<Consumer>> {
        // A consumer list is valid whatever a panicking writer left: entries are whole.
        self.consumers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, kinds: Kinds, sink: Sink) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut consumers = self
            .consumers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        consumers.push(Consumer { id, kinds, sink });
        self.interest.fetch_or(kinds.0, Ordering::Relaxed);
        id
    }

    fn remove(&self, id: u64) {
        let mut consumers = self
            .consumers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        consumers.retain(|c| c.id != id);
        let interest = consumers.iter().fold(0, |bits, c| bits | c.kinds.0);
        self.interest.store(interest, Ordering::Relaxed);
    }
}

/// One app's event stream; cheap to clone (sessions, the supervisor, channels and HTTP
/// handlers share it).
#[derive(Clone, Default)]
pub struct AppEvents(Arc<Inner>);

impl AppEvents {
    /// Whether both handles are the same stream (an app restarted gets a new one).
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether any consumer wants this kind right now.
    #[inline]
    pub fn wants(&self, kind: Kind) -> bool {
        self.0.interest.load(Ordering::Relaxed) & kind as u32 != 0
    }

    /// Hands an event to the consumers that want its kind; `build` runs only if there are any.
    #[inline]
    pub fn emit(&self, kind: Kind, build: impl FnOnce() -> AppEvent) {
        if !self.wants(kind) {
            return;
        }
        self.deliver(build());
    }

    fn deliver(&self, event: AppEvent) {
        let kind = event.kind();
        let stamped = Arc::new(Stamped {
            at_ms: now_ms(),
            event,
        });
        for consumer in self.0.consumers().iter() {
            if !consumer.kinds.contains(kind) {
                continue;
            }
            match &consumer.sink {
                // An error means the last watcher left meanwhile: nothing to do.
                Sink::Broadcast(tx) => drop(tx.send(stamped.clone())),
                Sink::Queue { tx, dropped } => {
                    if tx.try_send(stamped.clone()).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// A consumer that must account for every event: a queue of at most `capacity` events of
    /// the given kinds. When it is full, events are dropped and counted, never waited for.
    pub fn queue(&self, kinds: Kinds, capacity: usize) -> Queue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let id = self.0.add(
            kinds,
            Sink::Queue {
                tx,
                dropped: dropped.clone(),
            },
        );
        Queue {
            rx,
            dropped,
            registration: Registration {
                events: self.0.clone(),
                id,
            },
        }
    }

    /// A lossy consumer: a ring of `backlog` events shared by nobody else.
    fn broadcast(
        &self,
        kinds: Kinds,
        backlog: usize,
    ) -> (broadcast::Receiver<Arc<Stamped>>, Registration) {
        let (tx, rx) = broadcast::channel(backlog);
        let id = self.0.add(kinds, Sink::Broadcast(tx));
        (
            rx,
            Registration {
                events: self.0.clone(),
                id,
            },
        )
    }
}

/// Removes its consumer from the stream when dropped.
struct Registration {
    events: Arc<Inner>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.events.remove(self.id);
    }
}

/// A bounded, counting consumer of an app's events (see [`AppEvents::queue`]).
pub struct Queue {
    rx: mpsc::Receiver<Arc<Stamped>>,
    dropped: Arc<AtomicU64>,
    registration: Registration,
}

impl Queue {
    /// The next event; `None` never happens while the stream lives.
    pub async fn recv(&mut self) -> Option<Arc<Stamped>> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Stamped>> {
        self.rx.try_recv().ok()
    }

    /// Events dropped so far because this queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The registration's id (for logs).
    pub fn id(&self) -> u64 {
        self.registration.id
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(id: &str) -> AppEvent {
        AppEvent::ConnectionOpened {
            socket_id: id.into(),
        }
    }

    #[test]
    fn nothing_is_built_while_nobody_wants_the_kind() {
        let events = AppEvents::default();
        let mut built = false;
        events.emit(Kind::ConnectionOpened, || {
            built = true;
            opened("1")
        });
        assert!(!built);

        let _q = events.queue(Kinds::of(&[Kind::Error]), 4);
        events.emit(Kind::ConnectionOpened, || {
            built = true;
            opened("1")
        });
        assert!(!built, "a consumer of other kinds does not make it build");
        assert!(events.wants(Kind::Error));
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let events = AppEvents::default();
        let mut q = events.queue(Kinds::ALL, 2);
        for i in 0..5 {
            events.emit(Kind::ConnectionOpened, || opened(&i.to_string()));
        }
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.try_recv().unwrap().event, opened("0"));
        assert_eq!(q.try_recv().unwrap().event, opened("1"));
        assert!(q.try_recv().is_none());
    }

    #[test]
    fn dropping_a_consumer_withdraws_its_interest() {
        let events = AppEvents::default();
        let a = events.queue(Kinds::of(&[Kind::ApiEvent]), 1);
        let b = events.queue(Kinds::of(&[Kind::Error]), 1);
        assert!(events.wants(Kind::ApiEvent) && events.wants(Kind::Error));
        drop(a);
        assert!(!events.wants(Kind::ApiEvent));
        assert!(events.wants(Kind::Error));
        drop(b);
        assert!(!events.wants(Kind::Error));
    }
}
