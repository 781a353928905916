//! One app's supervisor: owns the app's channel actors and knows its sessions and signed-in
//! users on this node.
//!
//! Joins are routed through here so that channel actors can be created on demand and retired
//! when idle without losing a join in flight (see [`ChannelIdle`]). The supervisor is also the
//! boundary of cluster mode: messages from other nodes ([`Remote`]) enter here and go to the
//! channel actors or signed-in sockets they concern; the app's connection count and cap are
//! kept cluster-wide from here (see `crate::cluster`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use actix::prelude::*;
use bytestring::ByteString;
use shared::channel::USER_CHANNEL_PREFIX;
use shared::{frames, ChannelName, Closing};

use super::channel::{ChannelActor, ChannelStats};
use super::messages::{
    Admitted, ChannelCounts, ChannelIdle, ClientEvent, CloseSession, ConfigChanged, Connect,
    Disconnect, DrainAll, GetCache, GetUsers, Join, Leave, Publish, PublishEvents, ReadCache,
    ReadUsers, Recorded, Remote, RemoteCount, RemoteMember, Resync, ResyncChannel, SignedIn,
    StopChannel, StopSupervisor, Subscribe, SubscribeError, TerminateUser, Unsubscribe,
};
use super::outbox::Outbox;
use crate::apps::SharedConfig;
use crate::cluster::{AppLink, Message};
use crate::events::{AppEvent, AppEvents, Kind, Limit};
use crate::metrics::AppMetrics;
use crate::protocol::subscribe::Refusal;

struct SessionEntry {
    close: Recipient<CloseSession>,
    outbox: Outbox,
    channels: HashSet<String>,
    user_id: Option<String>,
    watchlist: Vec<String>,
}

struct ChannelEntry {
    addr: Addr<ChannelActor>,
    /// Tells this actor's idle reports from those of an earlier actor of the same name.
    generation: u64,
    /// Joins and publishes sent to the actor; compared with what it reports as seen.
    sent: u64,
}

/// The channels that have an actor on this node, with their counts, readable without a message.
///
/// Only the supervisor writes the table: a name goes in before the channel's first join is
/// forwarded (so before any subscriber hears `subscription_succeeded`) and leaves when the actor
/// is retired. The counts beside each name are the channel actor's own [`ChannelStats`], which
/// it updates before it queues a subscriber's `subscription_succeeded`. So REST handlers, on
/// their own worker thread, skip the supervisor for events nobody here can receive and answer
/// this node's channel reads (`GET /channels`, `GET /channels/{name}`, a trigger's `info`)
/// without a cross-thread round trip, and a client that has seen `subscription_succeeded` is
/// counted. (A healthy cluster answers those reads from Redis instead, where the counts arrive a
/// few milliseconds later.) A stopped supervisor empties the table.
#[derive(Clone, Default)]
pub struct ChannelIndex(Arc<RwLock<HashMap<String, Arc<ChannelStats>>>>);

impl ChannelIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<ChannelStats>>> {
        // The table is valid whatever a panicking writer left half done: entries are whole.
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// The channel's counts here (zero when it has no actor).
    pub fn counts(&self, name: &str) -> ChannelCounts {
        self.read()
            .get(name)
            .map_or_else(ChannelCounts::default, |stats| stats.counts())
    }

    /// The occupied channels (one subscription or more) whose name starts with `prefix`, by
    /// name.
    pub fn occupied(&self, prefix: Option<&str>) -> Vec<(String, ChannelCounts)> {
        let mut list: Vec<_> = self
            .read()
            .iter()
            .filter(|(name, _)| prefix.is_none_or(|p| name.starts_with(p)))
            .map(|(name, stats)| (name.clone(), stats.counts()))
            .filter(|(_, counts)| counts.subscriptions > 0)
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    pub(super) fn insert(&self, name: &str, stats: Arc<ChannelStats>) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), stats);
    }

    fn clear(&self) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub(super) fn remove(&self, name: &str) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// How many channels have an actor.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many of an app's connections on this node were admitted on their worker and whose
/// `Admitted` the supervisor has not handled yet (not sent, or on its way). The session adds
/// itself as it opens; whichever comes first takes it off again: the supervisor handling its
/// `Admitted`, or the session stopping without having sent one.
#[derive(Clone, Debug, Default)]
pub struct Unannounced(Arc<AtomicUsize>);

impl Unannounced {
    pub fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one off; false (and no change) if none was counted.
    pub fn remove(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct AppSupervisor {
    config: SharedConfig,
    index: ChannelIndex,
    sessions: HashMap<String, SessionEntry>,
    channels: HashMap<String, ChannelEntry>,
    /// Signed-in user id → its sockets.
    users: HashMap<String, HashSet<String>>,
    /// Watched user id → sockets whose watchlist names it.
    watchers: HashMap<String, HashSet<String>>,
    metrics: AppMetrics,
    events: AppEvents,
    /// Numbers the channel actors started (see [`ChannelIdle::generation`]).
    generations: u64,
    /// This app's link to the other nodes, in cluster mode.
    cluster: Option<AppLink>,
    /// Connections admitted on their worker that this supervisor has not handled the
    /// `Admitted` of yet (the sessions count them, see `Session::announce`).
    unannounced: Unannounced,
    /// The latest config version that disabled the app (0: none): a session that opened at or
    /// before it and announces itself later is closed as a disabled app's.
    disabled_at: i64,
    /// The node is draining, until this moment: a session told to this supervisor from now on
    /// (it announces itself late, see `Session::announce`) is closed before it too.
    draining_until: Option<std::time::Instant>,
}

impl AppSupervisor {
    pub fn new(
        config: SharedConfig,
        metrics: AppMetrics,
        events: AppEvents,
        index: ChannelIndex,
        cluster: Option<AppLink>,
    ) -> Self {
        Self {
            cluster,
            events,
            config,
            index,
            sessions: HashMap::new(),
            channels: HashMap::new(),
            users: HashMap::new(),
            watchers: HashMap::new(),
            generations: 0,
            metrics,
            unannounced: Unannounced::default(),
            disabled_at: 0,
            draining_until: None,
        }
    }

    /// Shares the app's count of connections not announced yet with its sessions.
    #[must_use]
    pub fn counting(mut self, unannounced: Unannounced) -> Self {
        self.unannounced = unannounced;
        self
    }

    /// The app's connections on this node: those in the table, and those admitted on their
    /// worker that have not announced themselves yet.
    fn connections(&self) -> usize {
        self.sessions.len() + self.unannounced.get()
    }

    fn app_id(&self) -> String {
        self.config.load().id.clone()
    }

    /// The channel's actor, started if the channel had none.
    fn channel(&mut self, name: &str, ctx: &mut Context<Self>) -> &mut ChannelEntry {
        if !self.channels.contains_key(name) {
            let stats = Arc::new(ChannelStats::default());
            self.generations += 1;
            let generation = self.generations;
            let addr = ChannelActor::new(
                name.to_owned(),
                self.config.clone(),
                ctx.address().recipient(),
                generation,
                stats.clone(),
                self.metrics.clone(),
                self.events.clone(),
                self.cluster.clone(),
            )
            .start();
            tracing::debug!(app_id = %self.app_id(), channel = name, "channel started");
            self.index.insert(name, stats);
            self.channels.insert(
                name.to_owned(),
                ChannelEntry {
                    addr,
                    generation,
                    sent: 0,
                },
            );
            self.metrics
                .channels
                .set(i64::try_from(self.channels.len()).unwrap_or(i64::MAX));
        }
        self.channels.get_mut(name).expect("inserted above")
    }

    /// The app's cap on channel actors, when `name` has none and one more would pass it. The
    /// cap counts every channel with an actor here: occupied ones, and cache channels holding
    /// an event for their next subscriber (the resource the cap protects).
    fn over_channel_cap(&self, name: &str) -> Option<u32> {
        let max = self.config.load().limits.max_channels;
        (max > 0 && !self.channels.contains_key(name) && self.channels.len() >= max as usize)
            .then_some(max)
    }

    /// Sends a frame to every socket signed in as the user, except one.
    fn send_to_user(&self, user_id: &str, frame: &ByteString, except: Option<&str>) {
        let Some(sockets) = self.users.get(user_id) else {
            return;
        };
        for socket_id in sockets {
            if Some(socket_id.as_str()) == except {
                continue;
            }
            if let Some(session) = self.sessions.get(socket_id) {
                session.outbox.send(frame.clone());
                self.metrics.sent(&self.metrics.sent_events, 1, frame.len());
                self.metrics.messages(1);
            }
        }
    }

    /// Tells the watchers of `user_id` that it came online or went offline.
    fn notify_watchers(&self, user_id: &str, online: bool) {
        if !self.config.load().watchlist_events {
            return;
        }
        let Some(watchers) = self.watchers.get(user_id) else {
            return;
        };
        let frame: ByteString = if online {
            frames::watchlist_events(&[user_id], &[])
        } else {
            frames::watchlist_events(&[], &[user_id])
        }
        .into();
        for socket_id in watchers {
            if let Some(session) = self.sessions.get(socket_id) {
                session.outbox.send(frame.clone());
            }
        }
    }

    fn close_all(&mut self, why: Closing) {
        for session in self.sessions.values() {
            session.close.do_send(CloseSession(why));
        }
    }

    /// Closes every socket signed in as the user (`terminate_connections`).
    fn terminate(&self, user_id: &str) {
        let Some(sockets) = self.users.get(user_id) else {
            return;
        };
        tracing::info!(app_id = %self.app_id(), connections = sockets.len(), "terminating a user's connections");
        for socket_id in sockets {
            if let Some(session) = self.sessions.get(socket_id) {
                session.close.do_send(CloseSession(Closing::Terminated));
            }
        }
    }

    /// Adds `delta` connections to the app's count across the cluster, not awaited (the count
    /// decides only for apps with a cap, which ask before admitting).
    fn count_connection(&self, delta: i64) {
        if let Some(link) = self.cluster.clone().filter(AppLink::is_healthy) {
            actix::spawn(async move {
                let _ = link.connections(delta, 0).await;
            });
        }
    }
}

impl Actor for AppSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        if let Some(link) = &self.cluster {
            link.cluster().watch(&self.app_id());
        }
        tracing::info!(app_id = %self.app_id(), "app started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(link) = &self.cluster {
            link.cluster().unwatch(&self.app_id());
        }
        for channel in self.channels.values() {
            channel.addr.do_send(StopChannel);
        }
        // A REST read still holding the app's handle answers "no channels", not the last counts.
        self.index.clear();
        tracing::info!(app_id = %self.app_id(), "app stopped");
    }
}

impl AppSupervisor {
    fn admit(&mut self, msg: Connect, ctx: &mut Context<Self>) {
        if let Some(until) = self.draining_until {
            // It joins a node that is draining: it goes too, within what is left of the
            // drain's window.
            let left = until.saturating_duration_since(std::time::Instant::now());
            Self::drain(msg.socket_id.clone(), msg.session.clone(), left, ctx);
        }
        self.sessions.insert(
            msg.socket_id,
            SessionEntry {
                close: msg.session,
                outbox: msg.outbox,
                channels: HashSet::new(),
                user_id: None,
                watchlist: Vec::new(),
            },
        );
    }
}

impl AppSupervisor {
    /// Why a new connection is refused now, if it is: the app is disabled, or at its cap on
    /// this node.
    fn refusal(&self) -> Option<Closing> {
        let config = self.config.load();
        let max = config.limits.max_connections;
        if !config.enabled {
            Some(Closing::AppDisabled)
        } else if max > 0 && self.connections() >= max as usize {
            Some(Closing::AppOverQuota)
        } else {
            None
        }
    }
}

impl Handler<Connect> for AppSupervisor {
    type Result = AtomicResponse<Self, Result<(), Closing>>;

    fn handle(&mut self, msg: Connect, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(why) = self.refusal() {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(why))));
        }
        let max = self.config.load().limits.max_connections;
        match self.cluster.clone().filter(AppLink::is_healthy) {
            // A cap across the cluster: one script admits or refuses (the only awaited round
            // trip of a connect, and only for apps with a cap). Atomic, so the session is in
            // the table before anything else of this app is handled.
            Some(link) if max > 0 => AtomicResponse::new(Box::pin(
                async move { link.connections(1, max).await }
                    .into_actor(self)
                    .map(move |admitted, act, ctx| {
                        if let Ok(false) = admitted {
                            return Err(Closing::AppOverQuota);
                        }
                        // Admitted, or degraded: this node's own count decided above.
                        act.admit(msg, ctx);
                        Ok(())
                    }),
            )),
            _ => {
                self.count_connection(1);
                self.admit(msg, ctx);
                AtomicResponse::new(Box::pin(actix::fut::ready(Ok(()))))
            }
        }
    }
}

impl Handler<Admitted> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Admitted, ctx: &mut Context<Self>) {
        let (connect, opened_at) = msg.take();
        // Told now: no longer counted as unannounced.
        self.unannounced.remove();
        // Disabled since the session checked (even if enabled again since): it has had its
        // `connection_established`, and is closed now, as it would have been had this
        // supervisor known it. A cap set meanwhile does not apply: it was admitted before.
        if !self.config.load().enabled || self.disabled_at >= opened_at {
            connect.session.do_send(CloseSession(Closing::AppDisabled));
            return;
        }
        self.count_connection(1);
        self.admit(connect, ctx);
    }
}

impl Handler<Disconnect> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        let Some(entry) = self.sessions.remove(&msg.socket_id) else {
            return;
        };
        self.count_connection(-1);
        for channel in &entry.channels {
            if let Some(c) = self.channels.get(channel) {
                c.addr.do_send(Leave {
                    socket_id: msg.socket_id.clone(),
                });
            }
        }
        for watched in &entry.watchlist {
            if let Some(set) = self.watchers.get_mut(watched) {
                set.remove(&msg.socket_id);
                if set.is_empty() {
                    self.watchers.remove(watched);
                }
            }
        }
        if let Some(user_id) = entry.user_id {
            let went_offline = self.users.get_mut(&user_id).is_some_and(|sockets| {
                sockets.remove(&msg.socket_id);
                sockets.is_empty()
            });
            if went_offline {
                self.users.remove(&user_id);
                self.notify_watchers(&user_id, false);
            }
        }
    }
}

impl Handler<Subscribe> for AppSupervisor {
    type Result = ResponseFuture<Result<Recipient<ClientEvent>, SubscribeError>>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        if !self.sessions.contains_key(&msg.socket_id) {
            return Box::pin(async { Err(SubscribeError::AppStopped) });
        }
        if let Some(max) = self.over_channel_cap(&msg.channel) {
            // Refused before anything is created: no actor, no index entry, no join recorded.
            let socket_id = msg.socket_id;
            self.metrics.rate_limited(Limit::OccupiedChannels);
            self.events
                .emit(Kind::RateLimited, || AppEvent::RateLimited {
                    socket_id: Some(socket_id),
                    limit: Limit::OccupiedChannels,
                });
            return Box::pin(async move {
                Err(SubscribeError::Refused(Refusal::AppChannelsFull { max }))
            });
        }
        let Some(session) = self.sessions.get_mut(&msg.socket_id) else {
            return Box::pin(async { Err(SubscribeError::AppStopped) });
        };
        // Recorded before the join completes, so that a disconnect arriving meanwhile still
        // sends the matching leave (the channel's mailbox keeps the order).
        session.channels.insert(msg.channel.clone());
        let outbox = session.outbox.clone();
        let entry = self.channel(&msg.channel, ctx);
        entry.sent += 1;
        let addr = entry.addr.clone();
        let join = addr.send(Join {
            socket_id: msg.socket_id,
            outbox,
            member: msg.member,
        });
        Box::pin(async move {
            match join.await {
                Ok(Ok(())) => Ok(addr.recipient()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(SubscribeError::AppStopped),
            }
        })
    }
}

impl Handler<Unsubscribe> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        // Only a join this supervisor forwarded has a leave to match: a subscription refused
        // here (over the channel cap) never reached the channel.
        let joined = self
            .sessions
            .get_mut(&msg.socket_id)
            .is_some_and(|session| session.channels.remove(&msg.channel));
        if let Some(c) = self.channels.get(&msg.channel).filter(|_| joined) {
            c.addr.do_send(Leave {
                socket_id: msg.socket_id,
            });
        }
    }
}

impl Handler<ChannelIdle> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ChannelIdle, _: &mut Context<Self>) {
        let idle = self
            .channels
            .get(&msg.channel)
            .is_some_and(|c| c.generation == msg.generation && c.sent == msg.seen);
        if idle {
            if let Some(c) = self.channels.remove(&msg.channel) {
                self.index.remove(&msg.channel);
                c.addr.do_send(StopChannel);
                self.metrics
                    .channels
                    .set(i64::try_from(self.channels.len()).unwrap_or(i64::MAX));
                tracing::debug!(app_id = %self.app_id(), channel = %msg.channel, "channel retired");
            }
        }
    }
}

impl Handler<SignedIn> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SignedIn, _: &mut Context<Self>) {
        let Some(session) = self.sessions.get_mut(&msg.socket_id) else {
            return;
        };
        session.user_id = Some(msg.user_id.clone());
        session.watchlist.clone_from(&msg.watchlist);
        let outbox = session.outbox.clone();
        let sockets = self.users.entry(msg.user_id.clone()).or_default();
        let came_online = sockets.is_empty();
        sockets.insert(msg.socket_id.clone());
        if came_online {
            self.notify_watchers(&msg.user_id, true);
        }
        if self.config.load().watchlist_events && !msg.watchlist.is_empty() {
            let (online, offline): (Vec<&str>, Vec<&str>) = msg
                .watchlist
                .iter()
                .map(String::as_str)
                .partition(|id| self.users.contains_key(*id));
            outbox.send(frames::watchlist_events(&online, &offline).into());
            for watched in msg.watchlist {
                self.watchers
                    .entry(watched)
                    .or_default()
                    .insert(msg.socket_id.clone());
            }
        }
    }
}

impl Handler<PublishEvents> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: PublishEvents, ctx: &mut Context<Self>) {
        for event in msg.0 {
            self.events.emit(Kind::ApiEvent, || AppEvent::ApiEvent {
                channel: event.channel.clone(),
                event: event.event.clone(),
                data: event.data.clone(),
                except: event.except.clone(),
            });
            if let Some(user_id) = event.channel.strip_prefix(USER_CHANNEL_PREFIX) {
                // Delivered by signed-in identity, whether or not the socket subscribed.
                let frame =
                    frames::channel_event(&event.event, &event.channel, &event.data, None).into();
                self.send_to_user(user_id, &frame, event.except.as_deref());
                continue;
            }
            let publish = Publish {
                event: event.event,
                data: event.data,
                except: event.except,
                request_id: event.request_id,
            };
            if let Some(entry) = self.channels.get_mut(&event.channel) {
                entry.sent += 1;
                entry.addr.do_send(publish);
            } else if ChannelName::classify(&event.channel).cache {
                if self.over_channel_cap(&event.channel).is_some() {
                    // Nobody listens, and the app may start no more channels: not cached.
                    self.metrics.rate_limited(Limit::OccupiedChannels);
                    self.events
                        .emit(Kind::RateLimited, || AppEvent::RateLimited {
                            socket_id: None,
                            limit: Limit::OccupiedChannels,
                        });
                    continue;
                }
                // Nobody listens yet, but the event must wait for the next subscriber.
                let entry = self.channel(&event.channel, ctx);
                entry.sent += 1;
                entry.addr.do_send(publish);
            }
        }
    }
}

impl Handler<GetCache> for AppSupervisor {
    type Result = ResponseFuture<Option<(String, u64)>>;

    fn handle(&mut self, msg: GetCache, _: &mut Context<Self>) -> Self::Result {
        let addr = self.channels.get(&msg.0).map(|c| c.addr.clone());
        Box::pin(async move {
            match addr {
                Some(addr) => addr.send(ReadCache).await.ok().flatten(),
                None => None,
            }
        })
    }
}

impl Handler<GetUsers> for AppSupervisor {
    type Result = ResponseFuture<Vec<String>>;

    fn handle(&mut self, msg: GetUsers, _: &mut Context<Self>) -> Self::Result {
        let addr = self.channels.get(&msg.0).map(|c| c.addr.clone());
        Box::pin(async move {
            match addr {
                Some(addr) => addr.send(ReadUsers).await.unwrap_or_default(),
                None => Vec::new(),
            }
        })
    }
}

impl Handler<TerminateUser> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: TerminateUser, _: &mut Context<Self>) {
        self.terminate(&msg.0);
    }
}

impl Handler<Remote> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Remote, _: &mut Context<Self>) {
        let Remote(envelope) = msg;
        let channel = envelope.channel().map(str::to_owned);
        match envelope.message {
            Message::Event {
                channel,
                except,
                event,
                data,
            } => {
                if let Some(user_id) = channel.strip_prefix(USER_CHANNEL_PREFIX) {
                    let frame = frames::channel_event(&event, &channel, &data, None).into();
                    self.send_to_user(user_id, &frame, except.as_deref());
                } else if let Some(entry) = self.channels.get_mut(&channel) {
                    // A channel nobody here subscribes to is skipped: its cache (if any) is
                    // in Redis, where the next subscriber on any node reads it.
                    entry.sent += 1;
                    entry.addr.do_send(Publish {
                        event,
                        data,
                        except,
                        request_id: None,
                    });
                }
            }
            Message::ClientEvent { from, frame, .. } => {
                let Some(entry) = channel.and_then(|c| self.channels.get(&c)) else {
                    return;
                };
                if let Ok(frame) = ByteString::try_from(frame) {
                    entry.addr.do_send(ClientEvent { from, frame });
                }
            }
            Message::Terminate { user_id } => self.terminate(&user_id),
            Message::MemberAdded { user_id, info, .. } => {
                if let Some(entry) = channel.and_then(|c| self.channels.get(&c)) {
                    let info = serde_json::from_str(&info).unwrap_or(serde_json::Value::Null);
                    entry.addr.do_send(RemoteMember {
                        user_id,
                        added: Some(info),
                    });
                }
            }
            Message::MemberRemoved { user_id, .. } => {
                if let Some(entry) = channel.and_then(|c| self.channels.get(&c)) {
                    entry.addr.do_send(RemoteMember {
                        user_id,
                        added: None,
                    });
                }
            }
            Message::Count { count, .. } => {
                if let Some(entry) = channel.and_then(|c| self.channels.get(&c)) {
                    entry
                        .addr
                        .do_send(RemoteCount(usize::try_from(count).unwrap_or(usize::MAX)));
                }
            }
            Message::Reclaimed {
                target,
                channel,
                user_id,
            } => {
                // This node holds the delayed vacate (removal) webhook: the matching occupied
                // (added) event makes its producer drop both.
                if self.cluster.as_ref().is_some_and(|l| l.node_id() == target) {
                    if let Some(user_id) = user_id {
                        self.events
                            .emit(Kind::MemberAdded, || AppEvent::MemberAdded {
                                channel,
                                user_id,
                            });
                    } else {
                        self.events
                            .emit(Kind::ChannelOccupied, || AppEvent::ChannelOccupied {
                                channel,
                            });
                    }
                }
            }
            Message::AppChanged { .. } | Message::Probe { .. } => {}
        }
    }
}

impl Handler<Resync> for AppSupervisor {
    type Result = ();

    /// First reads what Redis records as this node's share ([`Recorded`]), then corrects it.
    fn handle(&mut self, _: Resync, ctx: &mut Context<Self>) {
        let Some(link) = self.cluster.clone() else {
            return;
        };
        let sockets = self.sessions.len();
        let me = ctx.address();
        actix::spawn(async move {
            let _ = link.connections_set(sockets).await;
            if let Ok((channels, members)) = link.own_state().await {
                me.do_send(Recorded { channels, members });
            }
        });
    }
}

impl Handler<Recorded> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Recorded, _: &mut Context<Self>) {
        let Some(link) = self.cluster.clone() else {
            return;
        };
        let mut recorded: HashMap<String, Vec<String>> = HashMap::new();
        for (channel, user) in msg.members {
            recorded.entry(channel).or_default().push(user);
        }
        // Channels with an actor here send their state and zero their departed users.
        for (name, channel) in &self.channels {
            let users = recorded.remove(name).unwrap_or_default();
            channel.addr.do_send(ResyncChannel { recorded: users });
        }
        // Channels everyone here left while the cluster could not be told: zero them.
        let gone: Vec<String> = msg
            .channels
            .into_iter()
            .filter(|c| !self.channels.contains_key(c))
            .collect();
        let counts = self.config.load().subscription_count_events;
        actix::spawn(async move {
            for (channel, users) in recorded {
                for user in users {
                    let _ = link
                        .presence_set(&channel, &user, 0, &serde_json::Value::Null, 0, false)
                        .await;
                }
            }
            for channel in gone {
                let publish = counts && !channel.starts_with("presence-");
                let _ = link.count_set(&channel, 0, publish).await;
            }
        });
    }
}

impl Handler<ConfigChanged> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ConfigChanged, _: &mut Context<Self>) {
        if !msg.enabled {
            self.disabled_at = self.disabled_at.max(msg.version);
            self.close_all(Closing::AppDisabled);
        }
    }
}

impl Handler<StopSupervisor> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StopSupervisor, ctx: &mut Context<Self>) {
        self.close_all(msg.0);
        ctx.stop();
    }
}

impl AppSupervisor {
    /// Closes one session as draining, at a random moment within `window`, so that clients do
    /// not all reconnect in the same instant.
    fn drain(
        socket_id: String,
        session: Recipient<CloseSession>,
        window: std::time::Duration,
        ctx: &mut Context<Self>,
    ) {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let delay = if window_ms == 0 {
            0
        } else {
            rand::Rng::random_range(&mut rand::rng(), 0..window_ms)
        };
        ctx.run_later(std::time::Duration::from_millis(delay), move |_, _| {
            tracing::debug!(socket_id = %socket_id, "drain: closing");
            session.do_send(CloseSession(Closing::Draining));
        });
    }
}

impl Handler<DrainAll> for AppSupervisor {
    type Result = ();

    fn handle(&mut self, msg: DrainAll, ctx: &mut Context<Self>) {
        self.draining_until = Some(std::time::Instant::now() + msg.window);
        for (socket_id, session) in &self.sessions {
            Self::drain(socket_id.clone(), session.close.clone(), msg.window, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arc_swap::ArcSwap;

    use super::*;
    use crate::actors::outbox::Bounds;
    use crate::apps::AppConfig;
    use crate::metrics::Metrics;

    /// Stands in for a session: ignores being closed.
    struct Session;

    impl Actor for Session {
        type Context = Context<Self>;
    }

    impl Handler<CloseSession> for Session {
        type Result = ();

        fn handle(&mut self, _: CloseSession, _: &mut Context<Self>) {}
    }

    /// Stands in for a session and keeps what it was closed with.
    struct Closed(Arc<std::sync::Mutex<Vec<Closing>>>);

    impl Actor for Closed {
        type Context = Context<Self>;
    }

    impl Handler<CloseSession> for Closed {
        type Result = ();

        fn handle(&mut self, msg: CloseSession, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.0);
        }
    }

    /// An `Admitted` for `socket_id` whose session records how it is closed.
    fn admitted(socket_id: &str) -> (Admitted, Arc<std::sync::Mutex<Vec<Closing>>>) {
        let closes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connect = connect_of(socket_id, Closed(closes.clone()).start().recipient());
        (Admitted::new(connect, 1), closes)
    }

    async fn closes_of(closes: &Arc<std::sync::Mutex<Vec<Closing>>>) -> Vec<Closing> {
        // The close travels through the recording actor's mailbox.
        for _ in 0..200 {
            if !closes.lock().unwrap().is_empty() {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        closes.lock().unwrap().clone()
    }

    #[actix_web::test]
    async fn an_admitted_connection_is_known_to_the_subscribe_that_follows_it() {
        let (supervisor, _) = supervisor(AppConfig::generate("t"));
        let (join, closes) = admitted("1.1");
        // One way, then the subscribe: the mailbox keeps their order.
        supervisor.do_send(join);
        supervisor
            .send(subscribe("1.1", "x"))
            .await
            .unwrap()
            .expect("the session is known");
        assert!(closes.lock().unwrap().is_empty());
    }

    #[actix_web::test]
    async fn an_admitted_connection_is_closed_when_the_app_was_disabled_meanwhile() {
        let mut config = AppConfig::generate("t");
        config.enabled = false;
        let (supervisor, _) = supervisor(config);
        let (join, closes) = admitted("1.1");
        supervisor.do_send(join);
        assert_eq!(closes_of(&closes).await, [Closing::AppDisabled]);
        let refused = supervisor.send(subscribe("1.1", "x")).await.unwrap();
        assert!(
            matches!(refused, Err(SubscribeError::AppStopped)),
            "the refused session was not admitted"
        );
    }

    #[actix_web::test]
    async fn a_connection_admitted_while_the_node_drains_is_drained_too() {
        let (supervisor, _) = supervisor(AppConfig::generate("t"));
        supervisor.do_send(DrainAll {
            window: Duration::from_millis(50),
        });
        // Told of the session after the drain began (it announces itself late).
        let (join, closes) = admitted("1.1");
        supervisor.do_send(join);
        assert_eq!(closes_of(&closes).await, [Closing::Draining]);
    }

    #[actix_web::test]
    async fn a_connection_not_announced_yet_counts_against_the_cap() {
        let mut config = AppConfig::generate("t");
        config.limits.max_connections = 1;
        let config: SharedConfig = Arc::new(ArcSwap::from_pointee(config));
        let metrics = Metrics::default().for_app("t");
        let unannounced = Unannounced::default();
        let supervisor = AppSupervisor::new(
            config,
            metrics,
            AppEvents::default(),
            ChannelIndex::default(),
            None,
        )
        .counting(unannounced.clone())
        .start();
        // Its worker admitted it (the app had no cap then) and it has not announced itself.
        unannounced.add();
        let second = connect_of("2.2", Session.start().recipient());
        assert_eq!(
            supervisor.send(second).await.unwrap(),
            Err(Closing::AppOverQuota)
        );
        // It announces itself: admitted (the cap came after it), and no longer unannounced.
        let (join, closes) = admitted("1.1");
        supervisor.do_send(join);
        supervisor
            .send(subscribe("1.1", "x"))
            .await
            .unwrap()
            .expect("the announced session is admitted");
        assert!(closes.lock().unwrap().is_empty());
        assert_eq!(unannounced.get(), 0);
    }

    #[actix_web::test]
    async fn a_disable_undone_before_a_connection_is_told_still_closes_it() {
        let (supervisor, _) = supervisor(AppConfig::generate("t"));
        // Disabled at version 2 and enabled again at 3, before the sessions were told.
        for (version, enabled) in [(2, false), (3, true)] {
            supervisor.do_send(ConfigChanged { version, enabled });
        }
        let (before, closed) = admitted("1.1");
        supervisor.do_send(before);
        assert_eq!(closes_of(&closed).await, [Closing::AppDisabled]);
        // One that opened after the app was enabled again stays.
        let connect = connect_of("2.2", Session.start().recipient());
        supervisor.do_send(Admitted::new(connect, 3));
        supervisor
            .send(subscribe("2.2", "x"))
            .await
            .unwrap()
            .expect("opened after the disable: admitted");
    }

    #[actix_web::test]
    async fn an_admitted_connection_nobody_handles_is_closed_as_the_app_deleted() {
        // What a supervisor that stopped with it in its mailbox does to it: drops it.
        let (join, closes) = admitted("1.1");
        drop(join);
        assert_eq!(closes_of(&closes).await, [Closing::AppDeleted]);
        // Handled, it no longer closes anything when dropped.
        let (join, closes) = admitted("2.2");
        drop(join.take());
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        assert!(closes.lock().unwrap().is_empty());
    }

    fn supervisor(config: AppConfig) -> (Addr<AppSupervisor>, ChannelIndex) {
        let config: SharedConfig = Arc::new(ArcSwap::from_pointee(config));
        let index = ChannelIndex::default();
        let metrics = Metrics::default().for_app("t");
        let addr =
            AppSupervisor::new(config, metrics, AppEvents::default(), index.clone(), None).start();
        (addr, index)
    }

    /// A `Connect` for `socket_id` with a small outbox whose body nobody polls.
    fn connect_of(socket_id: &str, session: Recipient<CloseSession>) -> Connect {
        let bounds = Bounds {
            frames: 8,
            bytes: 1024,
        };
        let (outbox, _body) = Outbox::new(bounds, tokio::sync::oneshot::channel().0);
        Connect {
            socket_id: socket_id.into(),
            session,
            outbox,
        }
    }

    async fn connect(supervisor: &Addr<AppSupervisor>, socket_id: &str) {
        let connect = connect_of(socket_id, Session.start().recipient());
        supervisor.send(connect).await.unwrap().unwrap();
    }

    fn subscribe(socket_id: &str, channel: &str) -> Subscribe {
        Subscribe {
            socket_id: socket_id.into(),
            channel: channel.into(),
            member: None,
        }
    }

    async fn retired(index: &ChannelIndex, channel: &str) {
        for _ in 0..200 {
            if !index.contains(channel) {
                return;
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{channel} was never retired");
    }

    /// Regression: an idle report from a channel actor that was already retired (a late,
    /// duplicate report) must not retire the actor started after it for the same channel.
    #[actix_web::test]
    async fn a_stale_idle_report_never_retires_the_next_actor_of_a_channel() {
        let (supervisor, index) = supervisor(AppConfig::generate("t"));
        connect(&supervisor, "1.1").await;
        connect(&supervisor, "2.2").await;
        supervisor
            .send(subscribe("1.1", "x"))
            .await
            .unwrap()
            .unwrap();
        supervisor.do_send(Unsubscribe {
            socket_id: "1.1".into(),
            channel: "x".into(),
        });
        retired(&index, "x").await;
        // The first actor handled one join: its reports say `seen: 1`, as will the new one's.
        supervisor
            .send(subscribe("2.2", "x"))
            .await
            .unwrap()
            .unwrap();
        let stale = ChannelIdle {
            channel: "x".into(),
            generation: 1,
            seen: 1,
        };
        supervisor.send(stale).await.unwrap();
        assert!(index.contains("x"), "the live channel was retired");
        assert_eq!(index.counts("x").subscriptions, 1);
    }
}
