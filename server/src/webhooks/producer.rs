//! One app's producer: its event stream in, batches in the outbox out (see the module
//! documentation of [`crate::webhooks`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::time::{sleep_until, Instant};

use super::{body, WebhookEvent, Webhooks, MAX_BATCH, QUEUE_CAPACITY};
use crate::db::webhooks::{DeliveryRow, PENDING};
use crate::events::{now_ms, AppEvent, AppEvents, Kind, Kinds, Stamped};

/// The kinds a producer reads.
const KINDS: Kinds = Kinds::of(&[
    Kind::ChannelOccupied,
    Kind::ChannelVacated,
    Kind::MemberAdded,
    Kind::MemberRemoved,
    Kind::ClientEvent,
    Kind::CacheMiss,
    Kind::SubscriptionCount,
]);

/// Held-back `channel_vacated`/`member_removed` events; beyond this many, they go at once.
const MAX_DELAYED: usize = 10_000;

/// How often a producer retries writing to an unavailable database.
const RETRY_WRITE: Duration = Duration::from_secs(1);

/// A running producer.
pub struct Running {
    pub events: AppEvents,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: actix_web::rt::task::JoinHandle<()>,
}

impl Running {
    /// Asks the producer to write what it holds and stop, and waits (at most 5 s) for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if actix_web::rt::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

pub fn spawn(webhooks: Webhooks, app_id: String, events: AppEvents) -> Running {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let queue = events.queue(KINDS, QUEUE_CAPACITY);
    let producer = Producer {
        webhooks,
        app_id,
        delayed: HashMap::new(),
        ready: Vec::new(),
        window_ends: None,
        unwritten: VecDeque::new(),
        unwritten_events: 0,
        dropped_seen: 0,
    };
    let task = actix_web::rt::spawn(producer.run(queue, stop_rx));
    Running {
        events,
        stop: Some(stop_tx),
        task,
    }
}

/// What a held-back event waits for: its channel, and the user on presence channels.
type DelayKey = (String, Option<String>);

struct Producer {
    webhooks: Webhooks,
    app_id: String,
    /// Held-back events with the moment they go.
    delayed: HashMap<DelayKey, (Instant, WebhookEvent)>,
    /// Events waiting for the end of the batch window.
    ready: Vec<WebhookEvent>,
    window_ends: Option<Instant>,
    /// Batches the database did not take yet, oldest first, with their events (so that the
    /// bound can drop single events from the oldest batch).
    unwritten: VecDeque<(DeliveryRow, Vec<WebhookEvent>)>,
    unwritten_events: usize,
    /// The queue's drop count already reported.
    dropped_seen: u64,
}

impl Producer {
    async fn run(
        mut self,
        mut queue: crate::events::Queue,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut retry_at: Option<Instant> = None;
        loop {
            let next = [
                self.window_ends,
                self.delayed.values().map(|(at, _)| *at).min(),
                retry_at,
            ]
            .into_iter()
            .flatten()
            .min();
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                event = queue.recv() => match event {
                    Some(event) => {
                        self.take(&event);
                        while let Some(event) = queue.try_recv() {
                            self.take(&event);
                        }
                    }
                    None => break,
                },
                () = sleep_until(next.unwrap_or(far)) => {}
                _ = &mut stop => {
                    while let Some(event) = queue.try_recv() {
                        self.take(&event);
                    }
                    break;
                }
            }
            self.report_drops(&queue);
            let now = Instant::now();
            self.release_due(now);
            if self.window_ends.is_some_and(|end| end <= now) || self.ready.len() >= MAX_BATCH {
                self.batch();
            }
            if !self.unwritten.is_empty() && retry_at.is_none_or(|at| at <= now) {
                retry_at = if self.write().await {
                    None
                } else {
                    Some(Instant::now() + RETRY_WRITE)
                };
            }
        }
        // Shutting down: what is held back and gathered goes to the outbox now.
        let held: Vec<WebhookEvent> = self.delayed.drain().map(|(_, (_, e))| e).collect();
        self.ready.extend(held);
        self.batch();
        if !self.write().await && self.unwritten_events > 0 {
            tracing::warn!(app_id = %self.app_id, events = self.unwritten_events,
                "webhook events lost at shutdown: the database is unavailable");
            self.webhooks.0.node.metrics.webhooks(
                &self.app_id,
                "dropped",
                self.unwritten_events as u64,
            );
        }
    }

    fn report_drops(&mut self, queue: &crate::events::Queue) {
        let dropped = queue.dropped();
        if dropped > self.dropped_seen {
            let n = dropped - self.dropped_seen;
            self.dropped_seen = dropped;
            tracing::warn!(app_id = %self.app_id, dropped = n,
                "webhook events dropped: the app's webhook queue is full");
            self.webhooks
                .0
                .node
                .metrics
                .webhooks(&self.app_id, "dropped", n);
        }
    }

    /// One event from the stream.
    fn take(&mut self, stamped: &Stamped) {
        let delay = self.webhooks.0.config.vacate_delay;
        let event = match &stamped.event {
            AppEvent::ChannelOccupied { channel } => {
                if self.delayed.remove(&(channel.clone(), None)).is_some() {
                    // Vacated and occupied again within the delay: neither is sent.
                    return;
                }
                WebhookEvent::new("channel_occupied", channel)
            }
            AppEvent::ChannelVacated { channel } => {
                let event = WebhookEvent::new("channel_vacated", channel);
                return self.hold((channel.clone(), None), event, delay);
            }
            AppEvent::MemberAdded { channel, user_id } => {
                if self
                    .delayed
                    .remove(&(channel.clone(), Some(user_id.clone())))
                    .is_some()
                {
                    return;
                }
                WebhookEvent {
                    user_id: Some(user_id.clone()),
                    ..WebhookEvent::new("member_added", channel)
                }
            }
            AppEvent::MemberRemoved { channel, user_id } => {
                let event = WebhookEvent {
                    user_id: Some(user_id.clone()),
                    ..WebhookEvent::new("member_removed", channel)
                };
                return self.hold((channel.clone(), Some(user_id.clone())), event, delay);
            }
            AppEvent::ClientEvent {
                socket_id,
                channel,
                event,
                data,
                user_id,
            } => WebhookEvent {
                event: Some(event.clone()),
                data: Some(data.clone()),
                socket_id: Some(socket_id.clone()),
                user_id: user_id.clone(),
                ..WebhookEvent::new("client_event", channel)
            },
            AppEvent::CacheMiss { channel } => WebhookEvent::new("cache_miss", channel),
            AppEvent::SubscriptionCount { channel, count } => WebhookEvent {
                subscription_count: Some(*count),
                ..WebhookEvent::new("subscription_count", channel)
            },
            _ => return,
        };
        self.push(event);
    }

    fn hold(&mut self, key: DelayKey, event: WebhookEvent, delay: Duration) {
        if delay.is_zero() || self.delayed.len() >= MAX_DELAYED {
            self.push(event);
        } else {
            self.delayed.insert(key, (Instant::now() + delay, event));
        }
    }

    fn push(&mut self, event: WebhookEvent) {
        if self.ready.is_empty() {
            self.window_ends = Some(Instant::now() + self.webhooks.0.config.batch_window);
        }
        self.ready.push(event);
    }

    fn release_due(&mut self, now: Instant) {
        if self.delayed.values().all(|(at, _)| *at > now) {
            return;
        }
        let mut due: Vec<(Instant, WebhookEvent)> = Vec::new();
        self.delayed.retain(|_, (at, event)| {
            if *at <= now {
                due.push((*at, event.clone()));
                false
            } else {
                true
            }
        });
        due.sort_by_key(|(at, _)| *at);
        for (_, event) in due {
            self.push(event);
        }
    }

    /// Splits the gathered events into per-endpoint batches (filtered, at most [`MAX_BATCH`]
    /// each) and queues them for writing.
    fn batch(&mut self) {
        self.window_ends = None;
        if self.ready.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.ready);
        let endpoints = self.webhooks.endpoints_of(&self.app_id);
        let now = now_ms();
        for endpoint in endpoints.iter().filter(|e| e.enabled) {
            let chosen: Vec<WebhookEvent> = events
                .iter()
                .filter(|e| endpoint.wants(e))
                .cloned()
                .collect();
            for chunk in chosen.chunks(MAX_BATCH) {
                let row = DeliveryRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    app_id: self.app_id.clone(),
                    endpoint_id: endpoint.id.clone(),
                    created_at_ms: now,
                    body: body(now, chunk),
                    events: i32::try_from(chunk.len()).unwrap_or(i32::MAX),
                    state: PENDING.into(),
                    attempts: 0,
                    next_attempt_at_ms: now,
                    last_attempt_at_ms: None,
                    status_code: None,
                    latency_ms: None,
                    error: None,
                    response: None,
                };
                self.unwritten.push_back((row, chunk.to_vec()));
                self.unwritten_events += chunk.len();
            }
        }
        self.bound();
    }

    /// Bounded while the database is away: the oldest events go first (whole batches, then
    /// the oldest events of the oldest batch left), counted and logged.
    fn bound(&mut self) {
        let max = self.webhooks.0.config.max_buffered_events;
        let mut dropped = 0;
        while self.unwritten_events > max {
            let excess = self.unwritten_events - max;
            let Some((row, events)) = self.unwritten.front_mut() else {
                break;
            };
            if events.len() <= excess {
                dropped += events.len();
                self.unwritten_events -= events.len();
                self.unwritten.pop_front();
            } else {
                events.drain(..excess);
                row.body = body(row.created_at_ms, events);
                row.events = i32::try_from(events.len()).unwrap_or(i32::MAX);
                dropped += excess;
                self.unwritten_events -= excess;
            }
        }
        if dropped > 0 {
            tracing::warn!(app_id = %self.app_id, events = dropped,
                "webhook events dropped: the database has been unavailable too long");
            self.webhooks
                .0
                .node
                .metrics
                .webhooks(&self.app_id, "dropped", dropped as u64);
        }
    }

    /// Writes the waiting batches in one transaction; whether it worked.
    async fn write(&mut self) -> bool {
        if self.unwritten.is_empty() {
            return true;
        }
        let rows: Arc<Vec<DeliveryRow>> =
            Arc::new(self.unwritten.iter().map(|(row, _)| row.clone()).collect());
        let written = rows.clone();
        match crate::db::blocking(&self.webhooks.0.db, move |db| db.enqueue_webhooks(&written))
            .await
        {
            Ok(()) => {
                self.webhooks.0.node.metrics.webhooks(
                    &self.app_id,
                    "queued",
                    self.unwritten_events as u64,
                );
                self.unwritten.clear();
                self.unwritten_events = 0;
                self.webhooks.wake();
                true
            }
            Err(e) => {
                tracing::warn!(app_id = %self.app_id, error = %e, batches = rows.len(),
                    "cannot write webhooks to the outbox; keeping them in memory");
                false
            }
        }
    }
}
