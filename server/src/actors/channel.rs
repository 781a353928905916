//! One channel of one app: its local subscribers, presence members and cached event.
//!
//! A channel actor exists while the channel has subscribers on this node or holds a live
//! cached event. It writes straight into subscribers' outboxes, so a broadcast costs one
//! queue push per recipient and never waits on a slow one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use shared::{frames, ChannelName};

use super::messages::{
    ChannelIdle, ClientEvent, Join, Leave, Publish, ReadCache, ReadUsers, StopChannel,
    SubscribeError,
};
use super::outbox::Outbox;
use crate::apps::SharedConfig;
use crate::events::{AppEvent, AppEvents, Kind};
use crate::metrics::AppMetrics;
use crate::protocol::presence::{Joined, Presence};
use crate::protocol::subscribe::Refusal;

/// Above this many subscribers, `subscription_count` broadcasts are throttled (Pusher's rule).
const COUNT_THROTTLE_ABOVE: usize = 100;
const COUNT_THROTTLE_EVERY: Duration = Duration::from_secs(5);

/// Counters the supervisor reads without a message round trip.
#[derive(Debug, Default)]
pub struct ChannelStats {
    pub subscriptions: AtomicUsize,
    pub users: AtomicUsize,
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
}

impl ChannelActor {
    pub fn new(
        name: String,
        config: SharedConfig,
        supervisor: Recipient<ChannelIdle>,
        generation: u64,
        stats: Arc<ChannelStats>,
        metrics: AppMetrics,
        events: AppEvents,
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
        }
    }

    /// Queues the frame for every subscriber but `except`; returns how many got it.
    fn broadcast(&self, frame: &ByteString, except: Option<&str>) -> usize {
        let mut recipients = 0;
        for (socket_id, sub) in &self.subscribers {
            if Some(socket_id.as_str()) != except {
                sub.outbox.send(frame.clone());
                recipients += 1;
            }
        }
        recipients
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

    fn update_stats(&self) {
        self.stats
            .subscriptions
            .store(self.subscribers.len(), Ordering::Relaxed);
        let users = self.presence.as_ref().map_or(0, Presence::count);
        self.stats.users.store(users, Ordering::Relaxed);
    }

    /// Tells the supervisor when nothing is left here, or checks again when the cache expires.
    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        if !self.subscribers.is_empty() {
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
        if self.subscribers.len() <= COUNT_THROTTLE_ABOVE {
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
        let count = self.subscribers.len();
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
    type Result = Result<(), SubscribeError>;

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        self.seen += 1;
        let Join {
            socket_id,
            outbox,
            member,
        } = msg;
        if self.subscribers.contains_key(&socket_id) {
            // The session already refuses duplicates; this keeps the counts right regardless.
            return Ok(());
        }
        let mut user_id = None;
        if let Some(presence) = self.presence.as_mut() {
            let Some(member) = member else {
                // The session never sends a presence join without a member.
                return Err(SubscribeError::AppStopped);
            };
            let max = self.config.load().limits.max_presence_members;
            let joined = presence
                .join(&member.user_id, member.user_info.clone(), max as usize)
                .map_err(|_| SubscribeError::Refused(Refusal::PresenceFull { max }))?;
            let ids: Vec<&str> = presence.ids().collect();
            outbox.send(
                frames::presence_subscription_succeeded(&self.name, &ids, &presence.hash()).into(),
            );
            if joined == Joined::NewMember {
                let frame =
                    frames::member_added(&self.name, &member.user_id, &member.user_info).into();
                let recipients = self.broadcast(&frame, None);
                self.metrics.messages(recipients);
                self.events
                    .emit(Kind::MemberAdded, || AppEvent::MemberAdded {
                        channel: self.name.clone(),
                        user_id: member.user_id.clone(),
                    });
            }
            user_id = Some(member.user_id);
        } else {
            outbox.send(frames::subscription_succeeded(&self.name).into());
        }
        if self.cache_enabled {
            if let Some(cached) = self.live_cache() {
                outbox.send(cached.frame.clone());
            } else {
                outbox.send(frames::cache_miss(&self.name).into());
                self.events.emit(Kind::CacheMiss, || AppEvent::CacheMiss {
                    channel: self.name.clone(),
                });
            }
        }
        if self.subscribers.is_empty() {
            self.events
                .emit(Kind::ChannelOccupied, || AppEvent::ChannelOccupied {
                    channel: self.name.clone(),
                });
        }
        self.subscribers
            .insert(socket_id, Subscriber { outbox, user_id });
        self.metrics.subscriptions.inc();
        self.update_stats();
        self.subscription_count_changed(ctx);
        Ok(())
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
        if let (Some(presence), Some(user_id)) = (self.presence.as_mut(), sub.user_id) {
            if presence.leave(&user_id) {
                let frame = frames::member_removed(&self.name, &user_id).into();
                let recipients = self.broadcast(&frame, None);
                self.metrics.messages(recipients);
                self.events
                    .emit(Kind::MemberRemoved, || AppEvent::MemberRemoved {
                        channel: self.name.clone(),
                        user_id,
                    });
            }
        }
        if self.subscribers.is_empty() {
            self.events
                .emit(Kind::ChannelVacated, || AppEvent::ChannelVacated {
                    channel: self.name.clone(),
                });
        }
        self.update_stats();
        self.subscription_count_changed(ctx);
        self.check_idle(ctx);
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

    use actix_web::body::BoxBody;
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
        let (outbox, _body) = Outbox::new(bounds, BoxBody::new(()));
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
