//! Every message between actors, each with its sender and receiver.
//!
//! Topology: `AppRegistry` → one `AppSupervisor` per app → one `ChannelActor` per occupied
//! channel; one `Session` per WebSocket. Broadcast frames travel as `ByteString` (a shared,
//! reference-counted buffer), so one serialisation serves every recipient.

use actix::prelude::*;
use bytestring::ByteString;
use shared::Closing;

use super::outbox::Outbox;
use crate::apps::AppConfig;
use crate::protocol::presence::MemberData;
use crate::protocol::publish::OutgoingEvent;
use crate::protocol::subscribe::Refusal;

// ---- HTTP handlers / CLI → AppRegistry ------------------------------------------------------

/// Start a supervisor for an app (at start-up, or when an app is created).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartApp(pub AppConfig);

/// Replace an app's configuration; it applies at once to that app only. A configuration whose
/// `version` is older than the live one is ignored (false), so applies that cross never go back.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct UpdateApp(pub AppConfig);

/// Stop an app: its connections are closed for `why` and its channels dropped.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopApp {
    pub id: String,
    pub why: Closing,
}

/// The server is going away: close every connection with 4200, each at a random moment
/// within `window` so that clients do not all reconnect at once. Registry → supervisors.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct DrainAll {
    pub window: std::time::Duration,
}

// ---- Session → AppSupervisor -----------------------------------------------------------------

/// A new WebSocket wants to join the app. Refused with 4003 or 4004.
#[derive(Message)]
#[rtype(result = "Result<(), Closing>")]
pub struct Connect {
    pub socket_id: String,
    /// How the supervisor closes this session (app disabled or deleted, drain, terminate).
    pub session: Recipient<CloseSession>,
    pub outbox: Outbox,
}

/// A new WebSocket of an app without a connection cap, told nothing back. Such an app admits
/// every connection its worker let through (enabled, under the node's limits), so the session
/// sends `connection_established` at once, in the 101 response's write, instead of waiting a
/// round trip to the supervisor's thread. The session sends this with its first message to the
/// supervisor (usually its first subscribe), or after a second without one
/// (`Session::announce`), so the supervisor still knows the session first. If the app was
/// disabled at or after the config version the session opened at (`opened_at`), the supervisor
/// closes the session (4003), as it would have had it known it; a cap set meanwhile does not
/// apply (the connection was admitted before it). If the node is draining, the supervisor
/// closes it within what is left of the drain's window. If the supervisor stops before
/// handling it (the app was deleted), dropping it closes the session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Admitted {
    connect: Option<Connect>,
    opened_at: i64,
}

impl Admitted {
    /// The connection, admitted on its worker when the app's config was at version
    /// `opened_at`.
    pub fn new(connect: Connect, opened_at: i64) -> Self {
        Self {
            connect: Some(connect),
            opened_at,
        }
    }

    /// The connection and the config version it opened at, handled: dropping the `Admitted`
    /// no longer closes it.
    pub fn take(mut self) -> (Connect, i64) {
        let connect = self
            .connect
            .take()
            .expect("an Admitted holds its Connect until taken");
        (connect, self.opened_at)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(connect) = self.connect.take() {
            connect.session.do_send(CloseSession(Closing::AppDeleted));
        }
    }
}

/// The WebSocket is gone; the supervisor removes it from its channels and user tables.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub socket_id: String,
}

/// Join a channel. The session has already checked the name and the signature; the
/// channel actor writes `subscription_succeeded` (and cache/roster frames) to the outbox.
/// The answer is where the session sends its client events for that channel.
#[derive(Message)]
#[rtype(result = "Result<Recipient<ClientEvent>, SubscribeError>")]
pub struct Subscribe {
    pub socket_id: String,
    pub channel: String,
    pub member: Option<MemberData>,
}

/// Leave a channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub socket_id: String,
    pub channel: String,
}

/// The connection signed in as a user (`pusher:signin` succeeded).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SignedIn {
    pub socket_id: String,
    pub user_id: String,
    pub watchlist: Vec<String>,
}

// ---- HTTP REST handlers → AppSupervisor ------------------------------------------------------

/// Deliver events triggered through the REST API.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishEvents(pub Vec<OutgoingEvent>);

/// Counts of one channel, read without asking its actor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    pub subscriptions: usize,
    pub users: usize,
}

/// The cached event of a cache channel: `(data, seconds left)`.
#[derive(Message)]
#[rtype(result = "Option<(String, u64)>")]
pub struct GetCache(pub String);

/// Distinct user ids in a presence channel.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct GetUsers(pub String);

/// Close every connection signed in as this user (4009).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TerminateUser(pub String);

// ---- AppRegistry → AppSupervisor ------------------------------------------------------------

/// The app's configuration changed (already stored in the shared cell); act on what needs
/// action, such as closing every connection when the app was disabled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigChanged {
    /// The version now live, and whether it enables the app: carried, not read back from the
    /// shared config, so that a disable undone before the supervisor handles it still counts.
    pub version: i64,
    pub enabled: bool,
}

/// Close every connection for this reason and stop the app's actors.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopSupervisor(pub Closing);

// ---- the cluster → AppSupervisor (and on to its ChannelActors) -------------------------------

/// A message for this app from another node (see `crate::cluster::envelope`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remote(pub crate::cluster::Envelope);

/// Send this app's absolute local state to the cluster again: after a Redis outage, or after
/// this node was declared dead and reaped.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Resync;

/// What Redis records as this node's share of an app, read for a resync.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Recorded {
    pub channels: Vec<String>,
    pub members: Vec<(String, String)>,
}

/// Send the channel's absolute local state to the cluster again; `recorded` are the users
/// Redis holds for this node in the channel (those no longer here are zeroed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResyncChannel {
    pub recorded: Vec<String>,
}

/// A presence member came (first connection anywhere) or went (last one), on another node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteMember {
    pub user_id: String,
    /// `Some(user_info)` when added, `None` when removed.
    pub added: Option<serde_json::Value>,
}

/// The channel's subscription count changed cluster-wide.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteCount(pub usize);

// ---- AppSupervisor → ChannelActor ------------------------------------------------------------

/// Add a subscriber.
#[derive(Message)]
#[rtype(result = "Result<(), SubscribeError>")]
pub struct Join {
    pub socket_id: String,
    pub outbox: Outbox,
    pub member: Option<MemberData>,
}

/// Remove a subscriber.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub socket_id: String,
}

/// Deliver a REST-triggered event (and store it if this is a cache channel).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub event: String,
    pub data: String,
    pub except: Option<String>,
    /// The REST request it came from, for the logs.
    pub request_id: Option<std::sync::Arc<str>>,
}

/// Read the cached event.
#[derive(Message)]
#[rtype(result = "Option<(String, u64)>")]
pub struct ReadCache;

/// Read the presence user ids.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct ReadUsers;

/// The channel must stop (it is idle, or its app is stopping).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopChannel;

// ---- Session → ChannelActor ------------------------------------------------------------------

/// A client event, already checked and serialised by the sending session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientEvent {
    pub from: String,
    pub frame: ByteString,
}

// ---- ChannelActor → AppSupervisor ------------------------------------------------------------

/// The channel has no subscribers and nothing cached. `seen` counts the joins and publishes
/// it has handled: when the supervisor has sent more, one is still on its way and the channel
/// must live on. `generation` names the actor: a report from an actor already retired must
/// never retire the one started after it for the same channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChannelIdle {
    pub channel: String,
    pub generation: u64,
    pub seen: u64,
}

// ---- anyone → Session ------------------------------------------------------------------------

/// Send `pusher:error` with this reason's code and words, and close the connection with them.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct CloseSession(pub Closing);

/// Why a subscription failed after the session's own checks passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// A limit only the supervisor or the channel can see (occupied channels, presence full).
    Refused(Refusal),
    /// The app stopped while the subscription was on its way.
    AppStopped,
}
