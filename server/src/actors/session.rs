//! One WebSocket connection: parses client frames, enforces the protocol's rules (signatures,
//! channel names, client-event limits, liveness) and talks to its app's supervisor.
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
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::admin::DebugKind;
use shared::frames::{self, ClientFrame, SigninData, SubscribeData, UnsubscribeData};
use shared::{ChannelKind, ChannelName, CloseCode};

use super::channel::ChannelActor;
use super::messages::{
    ClientEvent, CloseSession, Connect, Disconnect, SignedIn, SlowConsumer, Subscribe,
    SubscribeError, Unsubscribe,
};
use super::outbox::{Outbound, Outbox};
use super::registry::{AppHandle, NodeState};
use crate::auth;
use crate::metrics::{Received, Rejected};
use crate::presence::{self, MemberData};
use crate::rate_limit::TokenBucket;

/// Most user ids a watchlist may hold; more are dropped with a 4302 error.
const MAX_WATCHLIST: usize = 100;

/// Liveness timings, from the server settings.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// Silence after which the server pings.
    pub activity: Duration,
    /// Time the client has to answer a ping.
    pub pong: Duration,
}

impl Heartbeat {
    fn tick(self) -> Duration {
        (self.activity.min(self.pong) / 2).max(Duration::from_millis(250))
    }
}

struct Subscription {
    /// `None` for the user channel, which is served by the supervisor, not a channel actor.
    channel: Option<Addr<ChannelActor>>,
    /// The presence user id this socket joined as.
    presence_user: Option<String>,
}

struct SignedInUser {
    id: String,
    info: Value,
}

pub struct Session {
    socket_id: String,
    app: AppHandle,
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
    registered: bool,
    closing: bool,
    /// The close code, for the log and the metrics.
    close_code: Option<u16>,
}

impl Session {
    pub fn new(
        socket_id: String,
        app: AppHandle,
        outbox: Outbox,
        node: Arc<NodeState>,
        heartbeat: Heartbeat,
    ) -> Self {
        let rate = app.config.load().limits.max_client_events_per_second;
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
            client_events: TokenBucket::new(rate, now),
            registered: false,
            closing: false,
            close_code: None,
        }
    }

    /// Starts the actor reading `stream`.
    pub fn start_with(mut self, stream: actix_ws::AggregatedMessageStream) -> Addr<Self> {
        Session::create(move |ctx| {
            self.outbox.bind(ctx.address());
            ctx.add_stream(stream);
            self
        })
    }

    fn send(&self, frame: impl Into<ByteString>) {
        let frame = frame.into();
        self.app
            .metrics
            .sent(&self.app.metrics.sent_protocol, 1, frame.len());
        self.outbox.send(frame);
    }

    fn error(&self, code: Option<CloseCode>, message: &str) {
        self.app.debug.emit(DebugKind::Error, |e| {
            e.socket_id = Some(self.socket_id.clone());
            e.code = code.map(CloseCode::code);
            e.message = Some(message.to_owned());
        });
        self.send(frames::error(code, message));
    }

    fn auth_refused(&self, channel: &str, error: &str) {
        self.node.metrics.rejected(Rejected::SubscriptionAuth);
        self.subscription_error(channel, "AuthError", error, 401);
    }

    fn subscription_error(&self, channel: &str, kind: &str, error: &str, status: u16) {
        tracing::debug!(socket_id = %self.socket_id, channel, kind, error, "subscription refused");
        self.app.debug.emit(DebugKind::Error, |e| {
            e.socket_id = Some(self.socket_id.clone());
            e.channel = Some(channel.to_owned());
            e.code = Some(status);
            e.message = Some(format!("Subscription refused ({kind}): {error}"));
        });
        self.send(frames::subscription_error(channel, kind, error, status));
    }

    /// Sends `pusher:error` with the code, closes the WebSocket with it and stops.
    fn close(&mut self, code: CloseCode, reason: &str, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.close_code = Some(code.code());
        tracing::info!(
            app_id = %self.app.config.load().id, socket_id = %self.socket_id,
            code = code.code(), reason, "closing connection"
        );
        self.error(Some(code), reason);
        self.outbox
            .push(Outbound::Close(code.code(), reason.to_owned()));
        ctx.stop();
    }

    fn handle_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
            self.app.metrics.received(Received::Other, text.len());
            self.error(
                None,
                "Invalid message format: expected a JSON object with an event",
            );
            return;
        };
        let kind = match frame.event.as_str() {
            "pusher:ping" => Received::Ping,
            "pusher:subscribe" => Received::Subscribe,
            "pusher:unsubscribe" => Received::Unsubscribe,
            "pusher:signin" => Received::Signin,
            event if event.starts_with("client-") => Received::ClientEvent,
            _ => Received::Other,
        };
        self.app.metrics.received(kind, text.len());
        match frame.event.as_str() {
            "pusher:ping" => self.send(frames::pong()),
            "pusher:pong" => {}
            "pusher:subscribe" => match data_of::<SubscribeData>(frame.data) {
                Some(data) => self.subscribe(data, ctx),
                None => self.error(None, "pusher:subscribe needs data with a channel"),
            },
            "pusher:unsubscribe" => match data_of::<UnsubscribeData>(frame.data) {
                Some(data) => self.unsubscribe(&data.channel),
                None => self.error(None, "pusher:unsubscribe needs data with a channel"),
            },
            "pusher:signin" => match data_of::<SigninData>(frame.data) {
                Some(data) => self.signin(data),
                None => self.error(
                    Some(CloseCode::Unauthorized),
                    "pusher:signin needs data with auth and user_data",
                ),
            },
            event if event.starts_with("client-") => {
                self.client_event(frame.event.clone(), frame.channel, &frame.data);
            }
            event if event.starts_with("pusher:") || event.starts_with("pusher_internal:") => {
                tracing::debug!(socket_id = %self.socket_id, event, "ignored unknown pusher event");
            }
            event => {
                let message =
                    format!("Unsupported event {event:?}: client events must start with client-");
                self.error(None, &message);
            }
        }
    }

    fn subscribe(&mut self, data: SubscribeData, ctx: &mut Context<Self>) {
        let config = self.app.config.load_full();
        let limits = &config.limits;
        let channel = data.channel.as_str();
        let name = match ChannelName::parse(channel, limits.max_channel_name_length as usize) {
            Ok(name) => name,
            Err(e) => {
                self.subscription_error(channel, "InvalidChannel", &e.to_string(), 4009);
                return;
            }
        };
        if self.subscriptions.contains_key(channel) {
            self.error(None, &format!("Existing subscription to channel {channel}"));
            return;
        }
        let auth = data.auth.as_deref().unwrap_or_default();
        let secrets = config.signing_secrets(crate::db::now_unix());
        let verify = |message: String| -> Result<(), String> {
            auth::verify_token(&config.key, &secrets, &message, auth).map_err(|e| match e {
                auth::TokenError::WrongKey => {
                    format!("Invalid key in subscription auth data: '{auth}'")
                }
                _ => format!(
                    "Invalid signature: Expected HMAC SHA256 hex digest of {message}, but got {auth}"
                ),
            })
        };
        let member = match name.kind {
            ChannelKind::Public => None,
            ChannelKind::User => {
                if self.user.as_ref().map(|u| u.id.as_str()) == name.user_id() {
                    self.send(frames::subscription_succeeded(channel));
                    self.subscribed_debug(channel);
                    let sub = Subscription {
                        channel: None,
                        presence_user: None,
                    };
                    self.subscriptions.insert(data.channel, sub);
                } else {
                    self.subscription_error(
                        channel,
                        "AuthError",
                        "Only the connection signed in as this user may subscribe to its channel",
                        403,
                    );
                }
                return;
            }
            ChannelKind::Private | ChannelKind::PrivateEncrypted => {
                if let Err(e) = verify(auth::channel_string(&self.socket_id, channel)) {
                    self.auth_refused(channel, &e);
                    return;
                }
                None
            }
            ChannelKind::Presence => {
                let member = if let Some(channel_data) = data.channel_data.as_deref() {
                    let signed = auth::presence_string(&self.socket_id, channel, channel_data);
                    if let Err(e) = verify(signed) {
                        self.auth_refused(channel, &e);
                        return;
                    }
                    match presence::parse_member(
                        channel_data,
                        limits.max_user_id_length as usize,
                        limits.max_presence_member_size_bytes as usize,
                    ) {
                        Ok(member) => member,
                        Err(e @ presence::MemberDataError::UserInfoTooLarge(_)) => {
                            self.subscription_error(channel, "LimitReached", &e.to_string(), 4301);
                            return;
                        }
                        Err(e) => {
                            self.subscription_error(channel, "AuthError", &e.to_string(), 400);
                            return;
                        }
                    }
                } else if let Some(user) = &self.user {
                    // No channel_data: the app authorises the signed-in user (§2.6), and the
                    // signature covers `socket_id:channel` only.
                    if let Err(e) = verify(auth::channel_string(&self.socket_id, channel)) {
                        self.auth_refused(channel, &e);
                        return;
                    }
                    MemberData {
                        user_id: user.id.clone(),
                        user_info: user.info.clone(),
                    }
                } else {
                    self.subscription_error(
                        channel,
                        "AuthError",
                        "Presence subscription without channel_data requires a signed-in user",
                        401,
                    );
                    return;
                };
                Some(member)
            }
        };
        let presence_user = member.as_ref().map(|m| m.user_id.clone());
        let requires_auth = name.requires_auth();
        let request = Subscribe {
            socket_id: self.socket_id.clone(),
            channel: data.channel.clone(),
            member,
        };
        let channel = data.channel;
        // The channel actor writes `subscription_succeeded` as soon as it has the subscriber;
        // the client may answer it with a client event at once. Waiting here (nothing else from
        // this client is handled meanwhile) records the subscription before that frame is read.
        self.app
            .supervisor
            .send(request)
            .into_actor(self)
            .map(move |result, act, _| match result {
                Ok(Ok(addr)) => {
                    if requires_auth {
                        act.authorized = true;
                    }
                    tracing::debug!(socket_id = %act.socket_id, channel = %channel, "subscribed");
                    act.subscribed_debug(&channel);
                    let sub = Subscription {
                        channel: Some(addr),
                        presence_user,
                    };
                    act.subscriptions.insert(channel, sub);
                }
                Ok(Err(SubscribeError::PresenceFull { .. })) => {
                    act.leave(&channel);
                    act.subscription_error(
                        &channel,
                        "LimitReached",
                        "The maximum members per presence channel limit was reached",
                        4100,
                    );
                }
                Ok(Err(SubscribeError::AppStopped)) | Err(_) => act.leave(&channel),
            })
            .wait(ctx);
    }

    fn subscribed_debug(&self, channel: &str) {
        self.app.debug.emit(DebugKind::Subscribed, |e| {
            e.socket_id = Some(self.socket_id.clone());
            e.channel = Some(channel.to_owned());
        });
    }

    /// Tells the supervisor this socket left the channel.
    fn leave(&self, channel: &str) {
        self.app.supervisor.do_send(Unsubscribe {
            socket_id: self.socket_id.clone(),
            channel: channel.to_owned(),
        });
    }

    fn unsubscribe(&mut self, channel: &str) {
        let sub = self.subscriptions.remove(channel);
        if sub.is_some() {
            self.app.debug.emit(DebugKind::Unsubscribed, |e| {
                e.socket_id = Some(self.socket_id.clone());
                e.channel = Some(channel.to_owned());
            });
        }
        match sub {
            Some(sub) if sub.channel.is_some() => self.leave(channel),
            Some(_) => {}
            None => self.error(
                None,
                &format!(
                    "No current subscription to channel {channel}, or subscription in progress"
                ),
            ),
        }
    }

    fn client_event(&mut self, event: String, channel: Option<String>, data: &Value) {
        let config = self.app.config.load();
        let Some(channel) = channel else {
            self.error(None, "Client events must name a channel");
            return;
        };
        if !config.client_events {
            self.error(
                None,
                "To send client events, you must enable this feature in the Settings page of your dashboard.",
            );
            return;
        }
        if !ChannelName::classify(&channel).allows_client_events() {
            self.error(
                None,
                "Client events can only be sent on private and presence channels",
            );
            return;
        }
        let Some((addr, user_id)) = self.subscriptions.get(&channel).and_then(|s| {
            s.channel
                .clone()
                .map(|addr| (addr, s.presence_user.clone()))
        }) else {
            let message = format!(
                "Cannot broadcast client event (connection not subscribed to channel {channel})"
            );
            self.error(None, &message);
            return;
        };
        let limits = &config.limits;
        if event.len() > limits.max_event_name_length as usize {
            let message = format!(
                "Event name is too long. Maximum allowed size is {}.",
                limits.max_event_name_length
            );
            self.error(Some(CloseCode::ClientEventRejected), &message);
            return;
        }
        let data = frames::data_as_string(data);
        if data.len() > limits.max_event_payload_bytes as usize {
            let message = format!(
                "Client event data is larger than the allowed {} bytes",
                limits.max_event_payload_bytes
            );
            self.error(Some(CloseCode::ClientEventRejected), &message);
            return;
        }
        if !self
            .client_events
            .try_take(limits.max_client_events_per_second, Instant::now())
        {
            self.node.metrics.rejected(Rejected::ClientEventRateLimit);
            self.error(
                Some(CloseCode::ClientEventRejected),
                "Client event rejected due to rate limit",
            );
            return;
        }
        self.app.debug.emit(DebugKind::ClientEvent, |e| {
            e.socket_id = Some(self.socket_id.clone());
            e.channel = Some(channel.clone());
            e.event = Some(event.clone());
            e.data = Some(data.clone());
        });
        let frame = frames::channel_event(&event, &channel, &data, user_id.as_deref()).into();
        addr.do_send(ClientEvent {
            from: self.socket_id.clone(),
            frame,
        });
    }

    fn signin(&mut self, data: SigninData) {
        let config = self.app.config.load();
        let signed = auth::signin_string(&self.socket_id, &data.user_data);
        let secrets = config.signing_secrets(crate::db::now_unix());
        if auth::verify_token(&config.key, &secrets, &signed, &data.auth).is_err() {
            tracing::info!(socket_id = %self.socket_id, "sign-in refused: bad signature");
            self.error(
                Some(CloseCode::Unauthorized),
                "Invalid signature for pusher:signin",
            );
            return;
        }
        let user_data: Value = serde_json::from_str(&data.user_data).unwrap_or(Value::Null);
        let id = match user_data.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => {
                self.error(
                    Some(CloseCode::Unauthorized),
                    "The returned user data must contain the \"id\" field.",
                );
                return;
            }
        };
        if let Some(current) = &self.user {
            if current.id != id {
                self.error(
                    Some(CloseCode::Unauthorized),
                    "The connection is already signed in as another user",
                );
                return;
            }
            self.send(frames::signin_success(&data.user_data));
            return;
        }
        let mut watchlist: Vec<String> = user_data
            .get("watchlist")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let info = user_data
            .get("user_info")
            .cloned()
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        self.user = Some(SignedInUser {
            id: id.clone(),
            info,
        });
        self.authorized = true;
        tracing::info!(app_id = %config.id, socket_id = %self.socket_id, user_id = %id, "signed in");
        self.send(frames::signin_success(&data.user_data));
        if watchlist.len() > MAX_WATCHLIST {
            watchlist.truncate(MAX_WATCHLIST);
            self.error(
                Some(CloseCode::WatchlistTooLong),
                "The watchlist holds more than 100 user ids; only the first 100 are watched",
            );
        }
        self.app.supervisor.do_send(SignedIn {
            socket_id: self.socket_id.clone(),
            user_id: id,
            watchlist,
        });
    }

    fn on_registered(&mut self, ctx: &mut Context<Self>) {
        let config = self.app.config.load();
        self.registered = true;
        self.app.metrics.connections.inc();
        self.app.metrics.opened.inc();
        self.send(frames::connection_established(
            &self.socket_id,
            self.heartbeat.activity.as_secs(),
        ));
        tracing::info!(app_id = %config.id, socket_id = %self.socket_id, "connection opened");
        self.app.debug.emit(DebugKind::Connection, |e| {
            e.socket_id = Some(self.socket_id.clone());
        });
        ctx.run_interval(self.heartbeat.tick(), Self::check_liveness);
        if config.require_user_auth {
            let timeout = Duration::from_secs(u64::from(config.user_auth_timeout_secs));
            ctx.run_later(timeout, |act, ctx| {
                if !act.authorized {
                    act.close(
                        CloseCode::Unauthorized,
                        "Connection not authorized within timeout.",
                        ctx,
                    );
                }
            });
        }
    }

    fn check_liveness(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Some(sent) = self.ping_sent {
            if now.duration_since(sent) >= self.heartbeat.pong {
                self.close(
                    CloseCode::PongTimeout,
                    "Pong reply not received in time",
                    ctx,
                );
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
}

/// `data` of a client frame: an object, or a string holding one (some clients send that).
fn data_of<T: DeserializeOwned>(data: Value) -> Option<T> {
    match data {
        Value::String(s) => serde_json::from_str(&s).ok(),
        other => serde_json::from_value(other).ok(),
    }
}

fn refusal_reason(code: CloseCode) -> &'static str {
    match code {
        CloseCode::AppDisabled => "The app is not enabled.",
        CloseCode::AppOverConnectionQuota => "Application is over connection quota",
        _ => "Connection refused",
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let connect = Connect {
            socket_id: self.socket_id.clone(),
            session: ctx.address(),
            outbox: self.outbox.clone(),
        };
        // Nothing from the client is handled until the app has accepted the connection.
        self.app
            .supervisor
            .send(connect)
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(Ok(())) => act.on_registered(ctx),
                Ok(Err(code)) => act.close(code, refusal_reason(code), ctx),
                Err(_) => act.close(CloseCode::AppNotFound, "Application does not exist", ctx),
            })
            .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.node.connections.fetch_sub(1, Ordering::Relaxed);
        if self.registered {
            self.app.supervisor.do_send(Disconnect {
                socket_id: self.socket_id.clone(),
            });
            self.app.metrics.connections.dec();
            self.app.metrics.closed(self.close_code);
            self.app.debug.emit(DebugKind::Disconnection, |e| {
                e.socket_id = Some(self.socket_id.clone());
                e.code = self.close_code;
                e.message = self
                    .close_code
                    .map(|code| shared::codes::close_code_meaning(code).to_owned());
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
                let code = reason.map_or(1005, |r| u16::from(r.code));
                self.close_code = Some(code);
                self.closing = true;
                // RFC 6455: answer a close frame with one (1005 means "none given": reply 1000).
                let echo = if code == 1005 { 1000 } else { code };
                self.outbox.push(Outbound::Close(echo, String::new()));
                ctx.stop();
            }
            Err(ProtocolError::Overflow) => {
                self.closing = true;
                self.close_code = Some(1009);
                self.error(None, "Message too large");
                self.outbox
                    .push(Outbound::Close(1009, "Message too large".into()));
                ctx.stop();
            }
            Err(e) => {
                tracing::debug!(socket_id = %self.socket_id, error = %e, "WebSocket protocol error");
                ctx.stop();
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
        self.close(msg.code, &msg.reason, ctx);
    }
}

impl Handler<SlowConsumer> for Session {
    type Result = ();

    fn handle(&mut self, _: SlowConsumer, ctx: &mut Context<Self>) {
        if !self.closing {
            self.closing = true;
            self.close_code = Some(CloseCode::OverCapacity.code());
            self.node.metrics.rejected(Rejected::SlowConsumer);
            tracing::warn!(socket_id = %self.socket_id, "client too slow: outbound buffer full, closing with 4100");
            ctx.stop();
        }
    }
}
