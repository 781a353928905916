//! One channel of one app: its local subscribers, presence members and cached event.
//!
//! A channel actor exists while the channel has subscribers on this node or holds a live
//! cached event. It writes straight into subscribers' outboxes, so a broadcast costs one
//! queue push per recipient and never waits on a slow one.
//!
//! In cluster mode (and while the cluster is healthy) the cluster-wide facts are decided in
//! Redis (`crate::cluster`), and this actor acts on the answer:
//! - a presence join awaits one script that records the member and returns the cluster roster
//!   and whether this was the user's first connection anywhere (`member_added` then goes to
//!   the local subscribers here and, from the script, to every other node); a user's last
//!   local leave awaits the same script (`member_removed` only when it was the last anywhere).
//!   Both hold the actor's mailbox for that round trip ([`AtomicResponse`], `ctx.wait`), so
//!   no event overtakes a `subscription_succeeded`;
//! - members on other nodes that the local sockets were told about are kept in `remote`, so
//!   remote `member_added`/`member_removed` are passed on once, and a resync can correct them;
//! - subscriber counts are sent as this node's absolute count, coalesced over 2 ms; the reply
//!   says whether the channel became occupied or vacated cluster-wide (events and webhooks
//!   once per cluster) and carries the total for `subscription_count`;
//! - a cache channel without a live local copy reads the last event from Redis on subscribe.
//!
//! While degraded, everything is decided locally, as on a single node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use shared::{frames, ChannelName};

use super::messages::{
    ChannelCounts, ChannelIdle, ClientEvent, Join, Leave, Publish, ReadCache, ReadUsers,
    RemoteCount, RemoteMember, ResyncChannel, StopChannel, SubscribeError,
};
use super::outbox::Outbox;
use super::wakeup;
use crate::apps::SharedConfig;
use crate::cluster::{AppLink, PresenceChange, PresenceReply, Unavailable};
use crate::events::{AppEvent, AppEvents, Kind};
use crate::metrics::AppMetrics;
use crate::protocol::presence::MemberData;
use crate::protocol::presence::{Joined, Presence};
use crate::protocol::subscribe::Refusal;

/// How long subscriber-count changes are gathered before one is sent to the cluster.
const COUNT_FLUSH: Duration = Duration::from_millis(2);

/// A cache channel's event as read from the cluster: event name, data, time left.
type CachedRemote = Option<(String, String, Duration)>;

/// Above this many subscribers, `subscription_count` broadcasts are throttled (Pusher's rule).
const COUNT_THROTTLE_ABOVE: usize = 100;
const COUNT_THROTTLE_EVERY: Duration = Duration::from_secs(5);

/// The channel's counts, written by its actor only and read without a message: by the REST
/// handlers and the admin console on the HTTP workers, through the app's `ChannelIndex`.
#[derive(Debug, Default)]
pub struct ChannelStats {
    pub subscriptions: AtomicUsize,
    pub users: AtomicUsize,
}

impl ChannelStats {
    pub fn counts(&self) -> ChannelCounts {
        ChannelCounts {
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
            users: self.users.load(Ordering::Relaxed),
        }
    }
}

struct Subscriber {
    outbox: Outbox,
    /// The presence user this socket joined as.
    user_id: Option<String>,
}

struct Cached {
    data: String,
    frame: ByteString,
    expires: Instant,
}

pub struct ChannelActor {
    name: String,
    presence: Option<Presence>,
    cache_enabled: bool,
    config: SharedConfig,
    supervisor: Recipient<ChannelIdle>,
    subscribers: HashMap<String, Subscriber>,
    metrics: AppMetrics,
    events: AppEvents,
    cache: Option<Cached>,
    stats: Arc<ChannelStats>,
    /// Joins and publishes handled; see [`ChannelIdle`].
    seen: u64,
    /// Which actor this is for its channel name (the supervisor numbers them).
    generation: u64,
    idle_timer: Option<SpawnHandle>,
    count_broadcast_pending: bool,
    last_count_broadcast: Option<Instant>,
    /// The app's link to the other nodes, in cluster mode.
    cluster: Option<AppLink>,
    /// Presence members on other nodes that the local subscribers know of (user → info).
    remote: HashMap<String, serde_json::Value>,
    /// Joins waiting for the cluster's answer: their subscribers are not in `subscribers` yet,
    /// and the channel must not report itself idle meanwhile (a count flush finishing during
    /// such a join did, and the supervisor retired the actor under its new subscriber).
    joining: u32,
    /// A subscriber count waits to be sent to the cluster (the flush timer is set).
    count_pending: bool,
    /// A count is on its way to the cluster; `count_dirty` says it changed meanwhile.
    count_inflight: bool,
    count_dirty: bool,
    /// The cluster's subscriber count, as last reported.
    cluster_count: usize,
}

impl ChannelActor {
    // Each argument is a different handle the actor keeps; a struct of them would only move
    // the list to the supervisor, its one caller.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        config: SharedConfig,
        supervisor: Recipient<ChannelIdle>,
        generation: u64,
        stats: Arc<ChannelStats>,
        metrics: AppMetrics,
        events: AppEvents,
        cluster: Option<AppLink>,
    ) -> Self {
        let classified = ChannelName::classify(&name);
        let presence = classified.is_presence().then(Presence::default);
        let cache_enabled = classified.cache;
        Self {
            name,
            presence,
            cache_enabled,
            config,
            supervisor,
            subscribers: HashMap::new(),
            metrics,
            events,
            cache: None,
            stats,
            seen: 0,
            generation,
            idle_timer: None,
            count_broadcast_pending: false,
            last_count_broadcast: None,
            cluster,
            remote: HashMap::new(),
            joining: 0,
            count_pending: false,
            count_inflight: false,
            count_dirty: false,
            cluster_count: 0,
        }
    }

    /// The cluster link, while it can be used.
    fn link(&self) -> Option<AppLink> {
        self.cluster.clone().filter(AppLink::is_healthy)
    }

    /// The subscriber count subscribers are told: the cluster's while it answers.
    fn current_count(&self) -> usize {
        if self.link().is_some() {
            self.cluster_count
        } else {
            self.subscribers.len()
        }
    }

    /// Sends this node's subscriber count to the cluster within [`COUNT_FLUSH`].
    fn schedule_count(&mut self, ctx: &mut Context<Self>) {
        if self.cluster.is_none() {
            return;
        }
        if self.count_inflight {
            self.count_dirty = true;
            return;
        }
        if self.count_pending {
            return;
        }
        self.count_pending = true;
        ctx.run_later(COUNT_FLUSH, Self::flush_count);
    }

    /// Sends the count without holding the mailbox (fan-out goes on meanwhile); a change made
    /// while it is on its way is sent after it.
    fn flush_count(&mut self, ctx: &mut Context<Self>) {
        self.count_pending = false;
        let Some(link) = self.link() else {
            self.check_idle(ctx);
            return;
        };
        let local = self.subscribers.len();
        let publish = self.presence.is_none() && self.config.load().subscription_count_events;
        let name = self.name.clone();
        self.count_inflight = true;
        ctx.spawn(
            async move { link.count_set(&name, local, publish).await }
                .into_actor(self)
                .map(|reply, act, ctx| {
                    act.count_inflight = false;
                    if let Ok(change) = reply {
                        act.cluster_count = usize::try_from(change.after).unwrap_or(usize::MAX);
                        if change.before == 0 && change.after > 0 {
                            if act.reclaimed(change.reclaimed_from.as_deref(), None) {
                                act.events.emit(Kind::ChannelOccupied, || {
                                    AppEvent::ChannelOccupied {
                                        channel: act.name.clone(),
                                    }
                                });
                            }
                        } else if change.before > 0 && change.after == 0 {
                            act.events
                                .emit(Kind::ChannelVacated, || AppEvent::ChannelVacated {
                                    channel: act.name.clone(),
                                });
                        }
                        if change.before != change.after {
                            act.subscription_count_changed(ctx);
                        }
                    }
                    if std::mem::take(&mut act.count_dirty) {
                        act.schedule_count(ctx);
                    } else {
                        act.check_idle(ctx);
                    }
                }),
        );
    }

    /// A channel or member came back (0 → n cluster-wide). True when this node announces it
    /// (its own producer cancels a delayed vacate it holds); false when another node holds
    /// that delayed webhook: it is told to cancel it, and nothing is announced here.
    fn reclaimed(&self, holder: Option<&str>, user_id: Option<&str>) -> bool {
        match (holder, &self.cluster) {
            (Some(holder), Some(link)) if holder != link.node_id() => {
                link.publish_reclaimed(holder, &self.name, user_id);
                false
            }
            _ => true,
        }
    }

    /// Tells the local subscribers that a member came, unless they know of it already.
    fn announce_member(&mut self, user_id: &str, info: &serde_json::Value) {
        let frame = frames::member_added(&self.name, user_id, info).into();
        let recipients = self.broadcast(&frame, None);
        self.metrics.messages(recipients);
    }

    fn announce_departure(&mut self, user_id: &str) {
        let frame = frames::member_removed(&self.name, user_id).into();
        let recipients = self.broadcast(&frame, None);
        self.metrics.messages(recipients);
    }

    /// After a presence join decided by the cluster (or locally when `reply` is `None`):
    /// the joiner's roster, `member_added` for the others, the remote members remembered.
    fn presence_joined(
        &mut self,
        outbox: &Outbox,
        member: &MemberData,
        reply: Option<PresenceReply>,
    ) -> Result<(), SubscribeError> {
        let max = self.config.load().limits.max_presence_members;
        // Whether the local subscribers were told of this user already (a socket of it here,
        // or a member on another node they heard of).
        let known = self.remote.contains_key(&member.user_id)
            || self
                .presence
                .as_ref()
                .is_some_and(|p| p.contains(&member.user_id));
        let Some(presence) = self.presence.as_mut() else {
            return Err(SubscribeError::AppStopped);
        };
        let (new_member, roster, holder) = match reply {
            Some(PresenceReply {
                change: PresenceChange::Full,
                ..
            }) => return Err(SubscribeError::Refused(Refusal::PresenceFull { max })),
            Some(PresenceReply {
                change,
                roster,
                reclaimed_from,
            }) => {
                // The cluster decided the member limit: the local table only counts sockets.
                presence
                    .join(&member.user_id, member.user_info.clone(), usize::MAX)
                    .map_err(|_| SubscribeError::Refused(Refusal::PresenceFull { max }))?;
                (change == PresenceChange::Added, roster, reclaimed_from)
            }
            None => {
                let joined = presence
                    .join(&member.user_id, member.user_info.clone(), max as usize)
                    .map_err(|_| SubscribeError::Refused(Refusal::PresenceFull { max }))?;
                (joined == Joined::NewMember, None, None)
            }
        };
        self.remote.remove(&member.user_id);
        let frame = if let Some(roster) = roster {
            let ids: Vec<&str> = roster.iter().map(|(id, _)| id.as_str()).collect();
            let hash: serde_json::Map<String, serde_json::Value> = roster.iter().cloned().collect();
            let frame = frames::presence_subscription_succeeded(
                &self.name,
                &ids,
                &serde_json::Value::Object(hash),
            );
            let presence = self.presence.as_ref().expect("presence channel");
            let local: std::collections::HashSet<&str> = presence.ids().collect();
            self.remote = roster
                .into_iter()
                .filter(|(id, _)| !local.contains(id.as_str()))
                .collect();
            frame
        } else {
            let presence = self.presence.as_ref().expect("presence channel");
            let mut ids: Vec<&str> = presence.ids().collect();
            let mut hash = presence.hash();
            for (id, info) in &self.remote {
                ids.push(id);
                if let serde_json::Value::Object(map) = &mut hash {
                    map.insert(id.clone(), info.clone());
                }
            }
            frames::presence_subscription_succeeded(&self.name, &ids, &hash)
        };
        self.send_succeeded(outbox, frame.into());
        if !known {
            self.announce_member(&member.user_id, &member.user_info);
        }
        if new_member && self.reclaimed(holder.as_deref(), Some(&member.user_id)) {
            // New to the whole cluster (or to this node, deciding alone): once, here.
            self.events
                .emit(Kind::MemberAdded, || AppEvent::MemberAdded {
                    channel: self.name.clone(),
                    user_id: member.user_id.clone(),
                });
        }
        Ok(())
    }

    /// The rest of a join, once presence and the cache are settled.
    fn joined(
        &mut self,
        socket_id: String,
        outbox: Outbox,
        user_id: Option<String>,
        cached: Option<CachedRemote>,
        ctx: &mut Context<Self>,
    ) {
        if self.cache_enabled {
            if let Some(cached) = self.live_cache() {
                outbox.send(cached.frame.clone());
            } else if let Some(Some((event, data, ttl))) = cached {
                let frame: ByteString =
                    frames::channel_event(&event, &self.name, &data, None).into();
                outbox.send(frame.clone());
                self.cache = Some(Cached {
                    data,
                    frame,
                    expires: Instant::now() + ttl,
                });
            } else {
                outbox.send(frames::cache_miss(&self.name).into());
                self.events.emit(Kind::CacheMiss, || AppEvent::CacheMiss {
                    channel: self.name.clone(),
                });
            }
        }
        if self.subscribers.is_empty() && self.link().is_none() {
            self.events
                .emit(Kind::ChannelOccupied, || AppEvent::ChannelOccupied {
                    channel: self.name.clone(),
                });
        }
        self.subscribers
            .insert(socket_id, Subscriber { outbox, user_id });
        self.metrics.subscriptions.inc();
        if self.link().is_some() {
            self.schedule_count(ctx);
        } else {
            self.subscription_count_changed(ctx);
        }
    }

    /// Queues the frame for every subscriber but `except`; returns how many got it.
    /// The connections are woken once the frame is queued for all of them, one hand-off per
    /// worker thread (see `wakeup`): per-channel order is that of the queues, untouched.
    fn broadcast(&self, frame: &ByteString, except: Option<&str>) -> usize {
        wakeup::gather(|wakes| {
            let mut recipients = 0;
            for (socket_id, sub) in &self.subscribers {
                if Some(socket_id.as_str()) != except {
                    sub.outbox.send_gathered(frame.clone(), wakes);
                    recipients += 1;
                }
            }
            recipients
        })
    }

    fn live_cache(&mut self) -> Option<&Cached> {
        if self
            .cache
            .as_ref()
            .is_some_and(|c| c.expires <= Instant::now())
        {
            self.cache = None;
        }
        self.cache.as_ref()
    }

    /// Queues a joiner's `subscription_succeeded`, counting it first: REST handlers read the
    /// counts on their own threads (see `ChannelIndex`), and a client that has the frame must
    /// be among them. (`joined`, which follows, adds it to the table: the counts stay right.)
    fn send_succeeded(&self, outbox: &Outbox, frame: ByteString) {
        self.store_counts(1);
        outbox.send(frame);
    }

    /// Stores the counts the REST handlers read: the subscribers in the table plus `joining`
    /// not yet in it, and the presence members.
    fn store_counts(&self, joining: usize) {
        self.stats
            .subscriptions
            .store(self.subscribers.len() + joining, Ordering::Relaxed);
        let users = self.presence.as_ref().map_or(0, Presence::count);
        self.stats.users.store(users, Ordering::Relaxed);
    }

    /// Tells the supervisor when nothing is left here, or checks again when the cache expires.
    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        // A count still to be sent to the cluster keeps the actor (its vacated is decided then).
        if !self.subscribers.is_empty()
            || self.joining > 0
            || self.count_pending
            || self.count_inflight
        {
            return;
        }
        if let Some(timer) = self.idle_timer.take() {
            ctx.cancel_future(timer);
        }
        if let Some(expires) = self.live_cache().map(|c| c.expires) {
            let wait = expires.saturating_duration_since(Instant::now());
            self.idle_timer = Some(ctx.run_later(wait + Duration::from_millis(10), |act, ctx| {
                act.idle_timer = None;
                act.check_idle(ctx);
            }));
            return;
        }
        self.supervisor.do_send(ChannelIdle {
            channel: self.name.clone(),
            generation: self.generation,
            seen: self.seen,
        });
    }

    /// `pusher_internal:subscription_count`, when the app asks for it (non-presence channels).
    fn subscription_count_changed(&mut self, ctx: &mut Context<Self>) {
        if self.presence.is_some() || !self.config.load().subscription_count_events {
            return;
        }
        if self.current_count() <= COUNT_THROTTLE_ABOVE {
            self.send_subscription_count();
            return;
        }
        if self.count_broadcast_pending {
            return;
        }
        let wait = self.last_count_broadcast.map_or(Duration::ZERO, |last| {
            COUNT_THROTTLE_EVERY.saturating_sub(last.elapsed())
        });
        self.count_broadcast_pending = true;
        ctx.run_later(wait, |act, _| {
            act.count_broadcast_pending = false;
            act.send_subscription_count();
        });
    }

    fn send_subscription_count(&mut self) {
        if self.subscribers.is_empty() {
            return;
        }
        self.last_count_broadcast = Some(Instant::now());
        let count = self.current_count();
        let frame = frames::subscription_count(&self.name, count).into();
        self.broadcast(&frame, None);
        self.events
            .emit(Kind::SubscriptionCount, || AppEvent::SubscriptionCount {
                channel: self.name.clone(),
                count,
            });
    }
}

impl Actor for ChannelActor {
    type Context = Context<Self>;
}

impl Handler<Join> for ChannelActor {
    type Result = AtomicResponse<Self, Result<(), SubscribeError>>;

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        self.seen += 1;
        let Join {
            socket_id,
            outbox,
            member,
        } = msg;
        let done = |r| AtomicResponse::new(Box::pin(actix::fut::ready(r)));
        if self.subscribers.contains_key(&socket_id) {
            // The session already refuses duplicates; this keeps the counts right regardless.
            return done(Ok(()));
        }
        if self.presence.is_some() && member.is_none() {
            // The session never sends a presence join without a member.
            return done(Err(SubscribeError::AppStopped));
        }
        let link = self.link();
        let fetch_cache = self.cache_enabled && self.live_cache().is_none();
        let Some(link) = link.filter(|_| self.presence.is_some() || fetch_cache) else {
            // Decided here: a single node, a degraded cluster, or nothing the cluster must say.
            let user_id = member.as_ref().map(|m| m.user_id.clone());
            if let Some(member) = &member {
                if let Err(e) = self.presence_joined(&outbox, member, None) {
                    return done(Err(e));
                }
            } else {
                self.send_succeeded(&outbox, frames::subscription_succeeded(&self.name).into());
            }
            self.joined(socket_id, outbox, user_id, None, ctx);
            return done(Ok(()));
        };
        // One awaited round trip to the cluster: the presence script (member, roster, limit)
        // and, for a cache channel, its last event. The mailbox waits, so nothing overtakes
        // this subscriber's `subscription_succeeded`.
        let name = self.name.clone();
        let max = self.config.load().limits.max_presence_members;
        let sockets = member.as_ref().map_or(0, |m| {
            self.presence.as_ref().map_or(0, |p| p.sockets(&m.user_id)) + 1
        });
        let asked = member.clone();
        let work = async move {
            let presence = match &asked {
                Some(m) => Some(
                    link.presence_set(&name, &m.user_id, sockets, &m.user_info, max, true)
                        .await,
                ),
                None => None,
            };
            let cached = if fetch_cache {
                Some(link.cache_get(&name).await)
            } else {
                None
            };
            (presence, cached)
        };
        self.joining += 1;
        AtomicResponse::new(Box::pin(work.into_actor(self).map(
            move |(presence, cached), act, ctx| {
                act.joining -= 1;
                let user_id = member.as_ref().map(|m| m.user_id.clone());
                match (&member, presence) {
                    (Some(member), Some(reply)) => {
                        if let Err(refused) = act.presence_joined(&outbox, member, reply.ok()) {
                            // Nobody joined: the channel may be idle now.
                            act.check_idle(ctx);
                            return Err(refused);
                        }
                    }
                    _ => {
                        act.send_succeeded(
                            &outbox,
                            frames::subscription_succeeded(&act.name).into(),
                        );
                    }
                }
                let cached = cached.map(|c: Result<CachedRemote, Unavailable>| c.ok().flatten());
                act.joined(socket_id, outbox, user_id, cached, ctx);
                Ok(())
            },
        )))
    }
}

impl Handler<Leave> for ChannelActor {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        let Some(sub) = self.subscribers.remove(&msg.socket_id) else {
            // A leave after a refused join: nothing to remove, but the channel may be idle.
            self.check_idle(ctx);
            return;
        };
        self.metrics.subscriptions.dec();
        let link = self.link();
        if let (Some(presence), Some(user_id)) = (self.presence.as_mut(), sub.user_id) {
            let info = presence.info(&user_id);
            if presence.leave(&user_id) {
                match (link.clone(), info) {
                    (Some(link), Some(info)) => {
                        // The user's last socket here: gone from the channel only if it has
                        // none on another node either. The mailbox waits for the answer.
                        let name = self.name.clone();
                        let (user, asked) = (user_id.clone(), info.clone());
                        ctx.wait(
                            async move { link.presence_set(&name, &user, 0, &asked, 0, false).await }
                                .into_actor(self)
                                .map(move |reply, act, _| match reply.map(|r| r.change) {
                                    Ok(PresenceChange::Removed) | Err(_) => {
                                        act.member_left(user_id);
                                    }
                                    Ok(_) => {
                                        // Still present elsewhere: the local sockets keep it.
                                        act.remote.insert(user_id, info);
                                    }
                                }),
                        );
                    }
                    _ => self.member_left(user_id),
                }
            }
        }
        if self.subscribers.is_empty() && link.is_none() {
            self.events
                .emit(Kind::ChannelVacated, || AppEvent::ChannelVacated {
                    channel: self.name.clone(),
                });
        }
        self.store_counts(0);
        if link.is_some() {
            self.schedule_count(ctx);
        } else {
            self.subscription_count_changed(ctx);
        }
        self.check_idle(ctx);
    }
}

impl ChannelActor {
    /// A member's last connection (anywhere, or here while deciding locally) left.
    fn member_left(&mut self, user_id: String) {
        self.announce_departure(&user_id);
        self.events
            .emit(Kind::MemberRemoved, || AppEvent::MemberRemoved {
                channel: self.name.clone(),
                user_id,
            });
    }
}

impl Handler<RemoteMember> for ChannelActor {
    type Result = ();

    fn handle(&mut self, msg: RemoteMember, _: &mut Context<Self>) {
        let Some(presence) = self.presence.as_ref() else {
            return;
        };
        if presence.contains(&msg.user_id) {
            return; // present here too: the local sockets know it, and it stays
        }
        match msg.added {
            Some(info) => {
                if !self.remote.contains_key(&msg.user_id) {
                    self.announce_member(&msg.user_id, &info);
                    self.remote.insert(msg.user_id, info);
                }
            }
            None => {
                if self.remote.remove(&msg.user_id).is_some() {
                    self.announce_departure(&msg.user_id);
                }
            }
        }
    }
}

impl Handler<RemoteCount> for ChannelActor {
    type Result = ();

    fn handle(&mut self, msg: RemoteCount, ctx: &mut Context<Self>) {
        if self.cluster_count != msg.0 {
            self.cluster_count = msg.0;
            self.subscription_count_changed(ctx);
        }
    }
}

impl Handler<ResyncChannel> for ChannelActor {
    type Result = ();

    /// Sends this node's absolute state of the channel again (zeroing users Redis records here
    /// that left meanwhile), then corrects what the local subscribers were told about members
    /// on other nodes (joins and leaves missed meanwhile).
    fn handle(&mut self, msg: ResyncChannel, ctx: &mut Context<Self>) {
        let Some(link) = self.link() else {
            return;
        };
        let name = self.name.clone();
        let local = self.subscribers.len();
        let publish = self.presence.is_none() && self.config.load().subscription_count_events;
        let members: Vec<(String, usize, serde_json::Value)> = self
            .presence
            .as_ref()
            .map(|p| {
                p.ids()
                    .map(|id| {
                        (
                            id.to_owned(),
                            p.sockets(id),
                            p.info(id).unwrap_or(serde_json::Value::Null),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let is_presence = self.presence.is_some();
        let departed: Vec<String> = msg
            .recorded
            .into_iter()
            .filter(|u| !self.presence.as_ref().is_some_and(|p| p.contains(u)))
            .collect();
        let work = async move {
            let count = link.count_set(&name, local, publish).await;
            for user in &departed {
                let _ = link
                    .presence_set(&name, user, 0, &serde_json::Value::Null, 0, false)
                    .await;
            }
            for (user, sockets, info) in &members {
                // No member limit here: these users are connected already.
                let _ = link
                    .presence_set(&name, user, *sockets, info, 0, false)
                    .await;
            }
            let roster = if is_presence {
                link.roster(&name).await.ok()
            } else {
                None
            };
            (count, roster)
        };
        ctx.wait(work.into_actor(self).map(|(count, roster), act, ctx| {
            if let Ok(change) = count {
                act.cluster_count = usize::try_from(change.after).unwrap_or(usize::MAX);
            }
            let Some(roster) = roster else { return };
            let Some(presence) = act.presence.as_ref() else {
                return;
            };
            let now: HashMap<String, serde_json::Value> = roster
                .into_iter()
                .filter(|(id, _)| !presence.contains(id))
                .collect();
            let gone: Vec<String> = act
                .remote
                .keys()
                .filter(|id| !now.contains_key(*id))
                .cloned()
                .collect();
            for id in gone {
                act.remote.remove(&id);
                act.announce_departure(&id);
            }
            for (id, info) in now {
                if !act.remote.contains_key(&id) {
                    act.announce_member(&id, &info);
                    act.remote.insert(id, info);
                }
            }
            act.check_idle(ctx);
        }));
    }
}

impl Handler<Publish> for ChannelActor {
    type Result = ();

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) {
        self.seen += 1;
        let frame: ByteString =
            frames::channel_event(&msg.event, &self.name, &msg.data, None).into();
        let recipients = self.broadcast(&frame, msg.except.as_deref());
        self.metrics
            .sent(&self.metrics.sent_events, recipients, frame.len());
        self.metrics.messages(recipients);
        if let Some(request_id) = &msg.request_id {
            tracing::debug!(request_id = %request_id, channel = %self.name, recipients, "delivered");
        }
        if self.cache_enabled {
            let ttl = u64::from(self.config.load().limits.cache_ttl_secs);
            self.cache = Some(Cached {
                data: msg.data,
                frame,
                expires: Instant::now() + Duration::from_secs(ttl),
            });
        }
        // A cache channel with no subscriber lives until its event expires. Any other channel
        // may have been published to while its last subscriber was leaving: the supervisor
        // ignored the idle report that crossed this publish (it had sent more than the channel
        // had seen), so report again now that the counts agree, or the empty actor lives on.
        self.check_idle(ctx);
    }
}

impl Handler<ClientEvent> for ChannelActor {
    type Result = ();

    fn handle(&mut self, msg: ClientEvent, _: &mut Context<Self>) {
        // Client events are never cached (Pusher's rule) and never echoed to the sender.
        let recipients = self.broadcast(&msg.frame, Some(&msg.from));
        self.metrics.sent(
            &self.metrics.sent_client_events,
            recipients,
            msg.frame.len(),
        );
        self.metrics.messages(recipients);
    }
}

impl Handler<ReadCache> for ChannelActor {
    type Result = Option<(String, u64)>;

    fn handle(&mut self, _: ReadCache, _: &mut Context<Self>) -> Self::Result {
        self.live_cache().map(|c| {
            let left = c.expires.saturating_duration_since(Instant::now());
            (c.data.clone(), left.as_secs().max(1))
        })
    }
}

impl Handler<ReadUsers> for ChannelActor {
    type Result = Vec<String>;

    fn handle(&mut self, _: ReadUsers, _: &mut Context<Self>) -> Self::Result {
        self.presence
            .as_ref()
            .map(|p| p.ids().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

impl Handler<StopChannel> for ChannelActor {
    type Result = ();

    fn handle(&mut self, _: StopChannel, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use arc_swap::ArcSwap;

    use super::*;
    use crate::apps::AppConfig;
    use crate::metrics::Metrics;

    /// Stands in for the supervisor: records the `seen` of every idle report.
    struct IdleReports(Arc<Mutex<Vec<u64>>>);

    impl Actor for IdleReports {
        type Context = Context<Self>;
    }

    impl Handler<ChannelIdle> for IdleReports {
        type Result = ();

        fn handle(&mut self, msg: ChannelIdle, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.seen);
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<u64>")]
    struct Reports;

    impl Handler<Reports> for IdleReports {
        type Result = Vec<u64>;

        fn handle(&mut self, _: Reports, _: &mut Context<Self>) -> Vec<u64> {
            self.0.lock().unwrap().clone()
        }
    }

    fn channel(name: &str, reports: &Addr<IdleReports>) -> Addr<ChannelActor> {
        let config: SharedConfig = Arc::new(ArcSwap::from_pointee(AppConfig::generate("t")));
        ChannelActor::new(
            name.into(),
            config,
            reports.clone().recipient(),
            1,
            Arc::default(),
            Metrics::default().for_app("t"),
            AppEvents::default(),
            None,
        )
        .start()
    }

    fn publish() -> Publish {
        Publish {
            event: "e".into(),
            data: "{}".into(),
            except: None,
            request_id: None,
        }
    }

    /// Regression: the supervisor ignores an idle report while a publish it sent is on its
    /// way (`sent > seen`). The channel must report again once it has handled that publish,
    /// or an empty actor and its index entry live on until the next join.
    #[actix_web::test]
    async fn a_publish_crossing_the_last_leave_is_followed_by_a_new_idle_report() {
        let reports = IdleReports(Arc::default()).start();
        let channel = channel("news", &reports);
        let bounds = crate::actors::outbox::Bounds {
            frames: 8,
            bytes: 1024,
        };
        let (outbox, _body) = Outbox::new(bounds, tokio::sync::oneshot::channel().0);
        let join = Join {
            socket_id: "1.1".into(),
            outbox,
            member: None,
        };
        channel.send(join).await.unwrap().unwrap();
        channel
            .send(Leave {
                socket_id: "1.1".into(),
            })
            .await
            .unwrap();
        channel.send(publish()).await.unwrap();
        assert_eq!(reports.send(Reports).await.unwrap(), [1, 2]);
    }
}
