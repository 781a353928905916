//! One WebSocket connection: reads client frames, asks the protocol rules (`crate::protocol`)
//! what each one means, and routes the outcome to its app's supervisor, its channels or its
//! outbox. Liveness (pings, pong timeout) and the "authorized connections" timer live here too,
//! because they are this connection's own timers.
//!
//! Frames for the client go through the connection's [`Outbox`]; channel actors write there
//! directly, so a broadcast never passes through this actor.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_ws::{AggregatedMessage, ProtocolError};
use bytestring::ByteString;
use serde_json::Value;
use shared::frames::{self, ClientFrame, SigninData, SubscribeData};
use shared::{CloseCode, Closing};

use super::directory::AppHandle;
use super::messages::{
    Admitted, ClientEvent, CloseSession, Connect, Disconnect, SignedIn, Subscribe, SubscribeError,
    Unsubscribe,
};
use super::outbox::{Outbound, Outbox, SlowConsumer};
use crate::events::{AppEvent, Kind, Limit};
use crate::metrics::{Received, Rejected};
use crate::node::NodeState;
use crate::protocol::rate_limit::TokenBucket;
use crate::protocol::subscribe::{self, Grant, Refusal};
use crate::protocol::{client_event, signin};

/// Liveness timings, from the server settings.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// Silence after which the server pings.
    pub activity: Duration,
    /// Time the client has to answer a ping.
    pub pong: Duration,
}

/// How long a connection admitted here may stay unknown to its supervisor when it sends it
/// nothing (see [`Session::announce`]).
const ANNOUNCE_WITHIN: Duration = Duration::from_secs(1);

impl Heartbeat {
    fn tick(self) -> Duration {
        (self.activity.min(self.pong) / 2).max(Duration::from_millis(250))
    }
}

struct Subscription {
    /// Where client events for the channel go; `None` for the user channel, which is served
    /// by the supervisor, not a channel actor.
    channel: Option<Recipient<ClientEvent>>,
    /// The presence user id this socket joined as.
    presence_user: Option<String>,
}

struct SignedInUser {
    id: String,
    info: Value,
}

pub struct Session {
    socket_id: String,
    app: Arc<AppHandle>,
    outbox: Outbox,
    node: Arc<NodeState>,
    heartbeat: Heartbeat,
    subscriptions: HashMap<String, Subscription>,
    user: Option<SignedInUser>,
    /// Signed in, or joined a private or presence channel ("authorized connections").
    authorized: bool,
    last_seen: Instant,
    ping_sent: Option<Instant>,
    client_events: TokenBucket,
    subscribe_attempts: TokenBucket,
    registered: bool,
    /// Admitted without asking the supervisor (an app without a connection cap).
    admitted_here: bool,
    /// While the supervisor has not been told of this connection admitted here: the timer that
    /// tells it if no other message does first (see [`Session::announce`]).
    unannounced: Option<SpawnHandle>,
    /// The app's config version when this connection was admitted here.
    opened_at: i64,
    closing: bool,
    /// The close code, for the log and the metrics.
    close_code: Option<u16>,
}

impl Session {
    pub fn new(
        socket_id: String,
        app: Arc<AppHandle>,
        outbox: Outbox,
        node: Arc<NodeState>,
        heartbeat: Heartbeat,
    ) -> Self {
        let limits = app.config.load().limits.clone();
        let now = Instant::now();
        Self {
            socket_id,
            app,
            outbox,
            node,
            heartbeat,
            subscriptions: HashMap::new(),
            user: None,
            authorized: false,
            last_seen: now,
            ping_sent: None,
            client_events: TokenBucket::new(limits.max_client_events_per_second, now),
            subscribe_attempts: TokenBucket::new(
                limits.max_subscriptions_per_second_per_connection,
                now,
            ),
            registered: false,
            admitted_here: false,
            unannounced: None,
            opened_at: 0,
            closing: false,
            close_code: None,
        }
    }

    /// Starts the actor reading `stream`. Called from the upgrade handler, so that for an app
    /// without a connection cap (it admits every connection that got this far, see
    /// [`Admitted`]) `connection_established` is queued before the 101 response is written,
    /// and leaves in the same `sendto`.
    pub fn start_with(mut self, stream: actix_ws::AggregatedMessageStream) -> Addr<Self> {
        let config = self.app.config.load();
        self.admitted_here = config.limits.max_connections == 0;
        self.opened_at = config.version;
        drop(config);
        Session::create(move |ctx| {
            self.outbox.bind(ctx.address().recipient());
            if self.admitted_here {
                self.establish();
                self.app.unannounced.add();
                self.unannounced = Some(ctx.run_later(ANNOUNCE_WITHIN, Self::announce));
            }
            ctx.add_stream(stream);
            self
        })
    }

    /// Tells the supervisor of this connection, admitted here, if it has not been told yet.
    ///
    /// Called before every other message this session sends the supervisor (its mailbox keeps
    /// the order, so the supervisor always knows the session first), or [`ANNOUNCE_WITHIN`]
    /// after the connection opened if none was sent. A client subscribes as soon as it has
    /// `connection_established`, so `Admitted` usually travels with the first `Subscribe`:
    /// one wake-up of the supervisor's thread instead of two.
    ///
    /// Meanwhile the supervisor does not know the session, and what it does to its sessions
    /// reaches this one when told: a disable since it opened closes it then (4003, even if the
    /// app was enabled again since), a drain under way closes it within what is left of the
    /// drain's window, and a deleted app's dropped `Admitted` closes it (4001). A connection
    /// cap set meanwhile does not close it: it was admitted before the cap. It counts against
    /// the app's cap all along, through `AppHandle::unannounced`, which the supervisor
    /// decrements when told. On a single node the panel's connection count is the sessions'
    /// own gauge, current at once; the cluster's count (in Redis) waits for this, by at most
    /// [`ANNOUNCE_WITHIN`], and never sees a connection that closes before it.
    fn announce(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.unannounced.take() {
            ctx.cancel_future(timer);
            // `do_send`, not `try_send`: a busy mailbox must not turn connections away, and
            // there is one per connection.
            self.app
                .supervisor
                .do_send(Admitted::new(self.connect(ctx), self.opened_at));
        }
    }

    fn send(&self, frame: impl Into<ByteString>) {
        let frame = frame.into();
        self.app
            .metrics
            .sent(&self.app.metrics.sent_protocol, 1, frame.len());
        self.outbox.send(frame);
    }

    /// Sends `pusher:error` (and tells the event stream).
    fn error(&self, code: Option<CloseCode>, message: &str) {
        self.app.metrics.stats.error_sent();
        self.app.events.emit(Kind::Error, || AppEvent::Error {
            socket_id: self.socket_id.clone(),
            channel: None,
            code: code.map(CloseCode::code),
            message: message.to_owned(),
        });
        self.send(frames::error(code, message));
    }

    /// Sends `pusher:subscription_error` for a refused subscription (or `pusher:error` for a
    /// duplicate, which leaves the existing subscription in place).
    fn refuse(&self, channel: &str, refusal: &Refusal) {
        let message = refusal.message(channel);
        if *refusal == Refusal::Duplicate {
            self.error(None, &message);
            return;
        }
        match refusal {
            Refusal::BadSignature(_) => self.node.metrics.rejected(Rejected::SubscriptionAuth),
            Refusal::TooManyChannels { .. } | Refusal::AppChannelsFull { .. } => {
                self.node.metrics.rejected(Rejected::SubscriptionLimit);
            }
            _ => {}
        }
        let limit = match refusal {
            Refusal::TooManyChannels { .. } => Some(Limit::ChannelsPerConnection),
            Refusal::TooFast { .. } => Some(Limit::SubscriptionsPerConnection),
            Refusal::AppTooFast { .. } => Some(Limit::AppSubscriptions),
            _ => None,
        };
        if let Some(limit) = limit {
            self.app.rate_limited(Some(&self.socket_id), limit);
        }
        let (kind, status) = (refusal.kind(), refusal.status());
        tracing::debug!(socket_id = %self.socket_id, channel = ?channel, kind, status, "subscription refused");
        self.app.metrics.stats.error_sent();
        self.app.events.emit(Kind::Error, || AppEvent::Error {
            socket_id: self.socket_id.clone(),
            channel: Some(channel.to_owned()),
            code: Some(status),
            message: format!("Subscription refused ({kind}): {message}"),
        });
        self.send(frames::subscription_error(channel, kind, &message, status));
    }

    /// Sends `pusher:error` with the reason's code and words, closes the WebSocket with them
    /// and stops.
    fn close(&mut self, why: Closing, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        let (code, reason) = (why.code(), why.reason());
        tracing::info!(
            app_id = %self.app.config.load().id, socket_id = %self.socket_id,
            code = code.code(), reason, "closing connection"
        );
        self.error(Some(code), reason);
        self.close_with(code.code(), reason, ctx);
    }

    /// Sends a close frame with `code` and stops; nothing is read or sent after it.
    fn close_with(&mut self, code: u16, reason: &str, ctx: &mut Context<Self>) {
        self.closing = true;
        self.close_code = Some(code);
        self.outbox.push(Outbound::Close(code, reason.to_owned()));
        ctx.stop();
    }

    fn handle_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let frame = ClientFrame::parse(text);
        let kind = match &frame {
            Ok(ClientFrame::Ping) => Received::Ping,
            Ok(ClientFrame::Subscribe(_)) => Received::Subscribe,
            Ok(ClientFrame::Unsubscribe(_)) => Received::Unsubscribe,
            Ok(ClientFrame::Signin(_)) => Received::Signin,
            Ok(ClientFrame::ClientEvent { .. }) => Received::ClientEvent,
            _ => Received::Other,
        };
        self.app.metrics.received(kind, text.len());
        match frame {
            Ok(ClientFrame::Ping) => self.send(frames::pong()),
            Ok(ClientFrame::Pong) => {}
            Ok(ClientFrame::Subscribe(data)) => self.subscribe(data, ctx),
            Ok(ClientFrame::Unsubscribe(data)) => self.unsubscribe(&data.channel),
            Ok(ClientFrame::Signin(data)) => self.signin(&data, ctx),
            Ok(ClientFrame::ClientEvent {
                event,
                channel,
                data,
            }) => self.client_event(&event, channel.as_deref(), &data, ctx),
            Ok(ClientFrame::OtherPusher(event)) => {
                tracing::debug!(socket_id = %self.socket_id, event = ?event, "ignored unknown pusher event");
            }
            Err(e) => self.error(e.code(), &e.message()),
        }
    }

    fn subscribe(&mut self, data: SubscribeData, ctx: &mut Context<Self>) {
        let config = self.app.config.load_full();
        // Every attempt counts, a refused or duplicate one too: the limits bound the work a
        // client can cause, whatever the answer.
        let per_connection = config.limits.max_subscriptions_per_second_per_connection;
        if !self
            .subscribe_attempts
            .try_take(per_connection, Instant::now())
        {
            let refusal = Refusal::TooFast {
                max_per_second: per_connection,
            };
            self.refuse(&data.channel, &refusal);
            return;
        }
        let per_app = config.limits.max_subscriptions_per_second;
        if !self.app.limiters.subscriptions.check(per_app).allowed() {
            let refusal = Refusal::AppTooFast {
                max_per_second: per_app,
            };
            self.refuse(&data.channel, &refusal);
            return;
        }
        let request = subscribe::Request {
            socket_id: &self.socket_id,
            config: &config,
            now_unix: crate::db::now_unix(),
            signed_in: self.user.as_ref().map(|u| (u.id.as_str(), &u.info)),
            subscribed: self.subscriptions.len(),
            duplicate: self.subscriptions.contains_key(&data.channel),
        };
        let (member, authorizes) = match subscribe::authorize(&request, &data) {
            Ok(Grant::UserChannel) => {
                self.send(frames::subscription_succeeded(&data.channel));
                self.subscribed(data.channel, None, None);
                return;
            }
            Ok(Grant::Join { member, authorizes }) => (member, authorizes),
            Err(refusal) => {
                self.refuse(&data.channel, &refusal);
                return;
            }
        };
        let presence_user = member.as_ref().map(|m| m.user_id.clone());
        let request = Subscribe {
            socket_id: self.socket_id.clone(),
            channel: data.channel.clone(),
            member,
        };
        let channel = data.channel;
        self.announce(ctx);
        // The channel actor writes `subscription_succeeded` as soon as it has the subscriber;
        // the client may answer it with a client event at once. Waiting here (nothing else from
        // this client is handled meanwhile) records the subscription before that frame is read.
        self.app
            .supervisor
            .send(request)
            .into_actor(self)
            .map(move |result, act, _| match result {
                Ok(Ok(recipient)) => {
                    // "Authorized connections": only a private or presence channel actually
                    // joined counts.
                    act.authorized |= authorizes;
                    act.subscribed(channel, Some(recipient), presence_user);
                }
                Ok(Err(SubscribeError::Refused(refusal))) => {
                    act.leave(&channel);
                    act.refuse(&channel, &refusal);
                }
                Ok(Err(SubscribeError::AppStopped)) | Err(_) => act.leave(&channel),
            })
            .wait(ctx);
    }

    fn subscribed(
        &mut self,
        channel: String,
        recipient: Option<Recipient<ClientEvent>>,
        presence_user: Option<String>,
    ) {
        tracing::debug!(socket_id = %self.socket_id, channel = ?channel, "subscribed");
        self.app.metrics.stats.subscribed();
        self.app
            .events
            .emit(Kind::Subscribed, || AppEvent::Subscribed {
                socket_id: self.socket_id.clone(),
                channel: channel.clone(),
            });
        let sub = Subscription {
            channel: recipient,
            presence_user,
        };
        self.subscriptions.insert(channel, sub);
    }

    /// Tells the supervisor this socket left the channel. (It has heard of the socket: the
    /// subscribe that joined the channel announced it.)
    fn leave(&mut self, channel: &str) {
        self.app.supervisor.do_send(Unsubscribe {
            socket_id: self.socket_id.clone(),
            channel: channel.to_owned(),
        });
    }

    fn unsubscribe(&mut self, channel: &str) {
        let Some(sub) = self.subscriptions.remove(channel) else {
            self.error(
                None,
                &format!(
                    "No current subscription to channel {channel}, or subscription in progress"
                ),
            );
            return;
        };
        self.app
            .events
            .emit(Kind::Unsubscribed, || AppEvent::Unsubscribed {
                socket_id: self.socket_id.clone(),
                channel: channel.to_owned(),
            });
        if sub.channel.is_some() {
            self.leave(channel);
        }
    }

    fn client_event(
        &mut self,
        event: &str,
        channel: Option<&str>,
        data: &Value,
        ctx: &mut Context<Self>,
    ) {
        let config = self.app.config.load();
        let subscriptions = &self.subscriptions;
        let checked = client_event::check(
            &config,
            event,
            channel,
            data,
            |name| subscriptions.get(name).is_some_and(|s| s.channel.is_some()),
            &mut self.client_events,
            Instant::now(),
        );
        let app_rate = config.limits.max_app_client_events_per_second;
        let checked = checked.and_then(|accepted| {
            // The app's total is taken only for an event that passed every other rule.
            if self.app.limiters.client_events.check(app_rate).allowed() {
                Ok(accepted)
            } else {
                Err(client_event::Refusal::AppRateLimited {
                    max_per_second: app_rate,
                })
            }
        });
        let accepted = match checked {
            Ok(accepted) => accepted,
            Err(refusal) => {
                let limit = match refusal {
                    client_event::Refusal::RateLimited => Some(Limit::ClientEventsPerSecond),
                    client_event::Refusal::AppRateLimited { .. } => {
                        Some(Limit::AppClientEventsPerSecond)
                    }
                    _ => None,
                };
                if let Some(limit) = limit {
                    self.node.metrics.rejected(Rejected::ClientEventRateLimit);
                    self.app.rate_limited(Some(&self.socket_id), limit);
                    if config.limits.close_on_client_event_excess == 1 {
                        // The close's own `pusher:error` (4301) says why.
                        self.close(Closing::ClientEventFlood, ctx);
                        return;
                    }
                }
                self.error(refusal.code(), &refusal.message());
                return;
            }
        };
        self.app.metrics.client_event_accepted();
        let Some(sub) = self.subscriptions.get(accepted.channel) else {
            return;
        };
        let Some(recipient) = sub.channel.clone() else {
            return;
        };
        let user_id = sub.presence_user.as_deref();
        let frame: ByteString =
            frames::channel_event(event, accepted.channel, &accepted.data, user_id).into();
        self.app
            .events
            .emit(Kind::ClientEvent, || AppEvent::ClientEvent {
                socket_id: self.socket_id.clone(),
                channel: accepted.channel.to_owned(),
                event: event.to_owned(),
                data: accepted.data.clone(),
                user_id: user_id.map(str::to_owned),
            });
        if let Some(link) = &self.app.cluster {
            // The other nodes' subscribers; never back to this socket (it is not there).
            link.publish_client_event(accepted.channel, &self.socket_id, frame.as_bytes());
        }
        recipient.do_send(ClientEvent {
            from: self.socket_id.clone(),
            frame,
        });
    }

    fn signin(&mut self, data: &SigninData, ctx: &mut Context<Self>) {
        let config = self.app.config.load();
        let current = self.user.as_ref().map(|u| u.id.as_str());
        let outcome = signin::verify(
            &self.socket_id,
            data,
            &config,
            crate::db::now_unix(),
            current,
        );
        let signin = match outcome {
            Ok(signin::Outcome::Again) => {
                self.send(frames::signin_success(&data.user_data));
                return;
            }
            Ok(signin::Outcome::SignedIn(signin)) => signin,
            Err(e) => {
                tracing::info!(socket_id = %self.socket_id, reason = e.message(), "sign-in refused");
                self.error(Some(CloseCode::Unauthorized), e.message());
                return;
            }
        };
        self.user = Some(SignedInUser {
            id: signin.user_id.clone(),
            info: signin.user_info,
        });
        self.authorized = true;
        tracing::info!(app_id = %config.id, socket_id = %self.socket_id, user_id = ?signin.user_id, "signed in");
        self.send(frames::signin_success(&data.user_data));
        if signin.watchlist_truncated {
            self.error(
                Some(CloseCode::WatchlistTooLong),
                "The watchlist holds more than 100 user ids; only the first 100 are watched",
            );
        }
        self.announce(ctx);
        self.app.supervisor.do_send(SignedIn {
            socket_id: self.socket_id.clone(),
            user_id: signin.user_id,
            watchlist: signin.watchlist,
        });
    }

    /// How this session joins its app's supervisor.
    fn connect(&self, ctx: &Context<Self>) -> Connect {
        Connect {
            socket_id: self.socket_id.clone(),
            session: ctx.address().recipient(),
            outbox: self.outbox.clone(),
        }
    }

    /// Sends `pusher:connection_established`, the connection's first frame.
    fn establish(&self) {
        self.send(frames::connection_established(
            &self.socket_id,
            self.heartbeat.activity.as_secs(),
        ));
    }

    fn on_registered(&mut self, ctx: &mut Context<Self>) {
        let config = self.app.config.load();
        self.registered = true;
        self.app.metrics.connection_opened();
        tracing::info!(app_id = %config.id, socket_id = %self.socket_id, "connection opened");
        self.app
            .events
            .emit(Kind::ConnectionOpened, || AppEvent::ConnectionOpened {
                socket_id: self.socket_id.clone(),
            });
        ctx.run_interval(self.heartbeat.tick(), Self::check_liveness);
        if config.require_user_auth {
            let timeout = Duration::from_secs(u64::from(config.user_auth_timeout_secs));
            ctx.run_later(timeout, |act, ctx| {
                if !act.authorized {
                    act.close(Closing::AuthTimeout, ctx);
                }
            });
        }
    }

    fn check_liveness(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Some(sent) = self.ping_sent {
            if now.duration_since(sent) >= self.heartbeat.pong {
                self.close(Closing::PongTimeout, ctx);
            }
        } else if now.duration_since(self.last_seen) >= self.heartbeat.activity {
            self.ping_sent = Some(now);
            self.send(frames::ping());
        }
    }

    fn seen(&mut self) {
        self.last_seen = Instant::now();
        self.ping_sent = None;
    }

    /// The client's close frame: echo a valid code (RFC 6455 §5.5.1), answer an invalid one
    /// with 1002, and stop.
    fn closed_by_client(&mut self, code: Option<u16>, ctx: &mut Context<Self>) {
        let (echo, reason) = close_reply(code);
        self.close_with(echo, reason, ctx);
        // What the client said, for the log and metrics (labels are bounded there).
        self.close_code = Some(code.unwrap_or(1005));
    }
}

/// The reply to a client's close frame: its own code when valid (1000 when it gave none), or
/// 1002 for a code no endpoint may send.
fn close_reply(code: Option<u16>) -> (u16, &'static str) {
    match code {
        None => (1000, ""),
        Some(code) if shared::codes::is_valid_close_code(code) => (code, ""),
        Some(_) => (1002, "Invalid close code"),
    }
}

/// How the server closes after a WebSocket-level error in what the client sent: the RFC 6455
/// code and reason, or `None` when the connection itself failed (nothing can be sent).
fn protocol_error_close(error: &ProtocolError) -> Option<(u16, &'static str)> {
    match error {
        ProtocolError::Overflow => Some((1009, "Message too large")),
        ProtocolError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Some((1007, "Invalid UTF-8 in a text message"))
        }
        // actix-ws reports a too long fragmented message as an `Other` I/O error with this text.
        ProtocolError::Io(e) if e.to_string().contains("maximum continuation size") => {
            Some((1009, "Message too large"))
        }
        // Any other I/O error is the socket failing (payload errors): nobody to tell.
        ProtocolError::Io(_) => None,
        _ => Some((1002, "Protocol error")),
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Admitted already (`start_with`).
        if self.admitted_here {
            self.on_registered(ctx);
            return;
        }
        // Otherwise nothing from the client is handled until the app has accepted the
        // connection.
        self.app
            .supervisor
            .send(self.connect(ctx))
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(Ok(())) => {
                    act.establish();
                    act.on_registered(ctx);
                }
                Ok(Err(why)) => act.close(why, ctx),
                // The supervisor is gone: the app was deleted meanwhile.
                Err(_) => act.close(Closing::AppDeleted, ctx),
            })
            .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // The socket closes now, from this thread, once a close frame already queued is out.
        self.outbox.end();
        self.node.connections.fetch_sub(1, Ordering::Relaxed);
        // A connection the supervisor was never told of has nothing there to remove.
        let announced = self.unannounced.take().is_none();
        if !announced {
            let counted = self.app.unannounced.remove();
            debug_assert!(counted, "an unannounced session was not counted");
        }
        if self.registered {
            if announced {
                self.app.supervisor.do_send(Disconnect {
                    socket_id: self.socket_id.clone(),
                });
            }
            self.app.metrics.connections.dec();
            self.app.metrics.closed(self.close_code);
            self.app
                .events
                .emit(Kind::ConnectionClosed, || AppEvent::ConnectionClosed {
                    socket_id: self.socket_id.clone(),
                    code: self.close_code,
                });
            tracing::info!(
                app_id = %self.app.config.load().id, socket_id = %self.socket_id,
                code = self.close_code, "connection closed"
            );
        }
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for Session {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        match item {
            Ok(AggregatedMessage::Text(text)) => {
                self.seen();
                self.handle_text(&text, ctx);
            }
            Ok(AggregatedMessage::Binary(bin)) => {
                self.seen();
                match std::str::from_utf8(&bin) {
                    Ok(text) => self.handle_text(text, ctx),
                    Err(_) => self.error(
                        None,
                        "Invalid message format: binary frames must be UTF-8 JSON",
                    ),
                }
            }
            Ok(AggregatedMessage::Ping(payload)) => {
                self.seen();
                self.outbox.push(Outbound::Pong(payload));
            }
            Ok(AggregatedMessage::Pong(_)) => self.seen(),
            Ok(AggregatedMessage::Close(reason)) => {
                self.closed_by_client(reason.map(|r| u16::from(r.code)), ctx);
            }
            Err(e) => {
                if let Some((code, reason)) = protocol_error_close(&e) {
                    tracing::debug!(socket_id = %self.socket_id, error = %e, code, "WebSocket protocol error");
                    self.error(None, reason);
                    self.close_with(code, reason, ctx);
                } else {
                    tracing::debug!(socket_id = %self.socket_id, error = %e, "connection failed");
                    ctx.stop();
                }
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<CloseSession> for Session {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Context<Self>) {
        self.close(msg.0, ctx);
    }
}

impl Handler<SlowConsumer> for Session {
    type Result = ();

    fn handle(&mut self, _: SlowConsumer, ctx: &mut Context<Self>) {
        if !self.closing {
            self.closing = true;
            self.close_code = Some(Closing::SlowClient.code().code());
            self.node.metrics.rejected(Rejected::SlowConsumer);
            tracing::warn!(socket_id = %self.socket_id, "client too slow: outbound buffer full, closing with 4100");
            ctx.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_close_is_echoed_only_with_a_valid_code() {
        assert_eq!(close_reply(None), (1000, ""));
        assert_eq!(close_reply(Some(1000)), (1000, ""));
        assert_eq!(close_reply(Some(4321)), (4321, ""));
        assert_eq!(close_reply(Some(1005)).0, 1002);
        assert_eq!(close_reply(Some(999)).0, 1002);
        assert_eq!(close_reply(Some(5000)).0, 1002);
    }

    #[test]
    fn protocol_errors_map_to_rfc_close_codes() {
        use std::io;
        assert_eq!(
            protocol_error_close(&ProtocolError::Overflow).unwrap().0,
            1009
        );
        let utf8 = ProtocolError::Io(io::Error::new(io::ErrorKind::InvalidData, "utf-8"));
        assert_eq!(protocol_error_close(&utf8).unwrap().0, 1007);
        let long = ProtocolError::Io(io::Error::other("Exceeded maximum continuation size"));
        assert_eq!(protocol_error_close(&long).unwrap().0, 1009);
        assert_eq!(
            protocol_error_close(&ProtocolError::UnmaskedFrame)
                .unwrap()
                .0,
            1002
        );
        assert_eq!(
            protocol_error_close(&ProtocolError::ContinuationNotStarted)
                .unwrap()
                .0,
            1002
        );
        let gone = ProtocolError::Io(io::Error::other("payload error"));
        assert_eq!(protocol_error_close(&gone), None);
    }
}
