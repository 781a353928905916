//! The debug console's consumer of the app event stream: what happens on an app's
//! connections (connects, disconnects, subscriptions, API and client events, errors), offered
//! live as JSON [`DebugEvent`]s to whoever watches it in the admin panel.
//!
//! Lossy by design: each watcher reads a ring of [`BACKLOG`] events at its own pace and is
//! told how many it skipped when it falls behind; the emitter never waits for a browser.
//! Events are turned into JSON here, on the watcher's task, never on the emitting actor.

use std::sync::Arc;

use shared::admin::{DebugEvent, DebugKind};
use tokio::sync::broadcast::{self, error::RecvError};

use super::{AppEvent, AppEvents, Kind, Kinds, Registration, Stamped};

/// Entries a slow watcher may fall behind by before it is told that some were skipped.
const BACKLOG: usize = 512;

/// The kinds the console shows.
const SHOWN: Kinds = Kinds::of(&[
    Kind::ConnectionOpened,
    Kind::ConnectionClosed,
    Kind::Subscribed,
    Kind::Unsubscribed,
    Kind::ApiEvent,
    Kind::ClientEvent,
    Kind::Error,
    Kind::RateLimited,
]);

impl AppEvents {
    /// A new console watcher: receives every shown event from now on, until dropped.
    pub fn watch(&self) -> Watcher {
        let (rx, registration) = self.broadcast(SHOWN, BACKLOG);
        Watcher {
            rx,
            _registration: registration,
        }
    }
}

/// One open watch of an app's console.
pub struct Watcher {
    rx: broadcast::Receiver<Arc<Stamped>>,
    _registration: Registration,
}

impl Watcher {
    /// The next entry as JSON; `Lagged` says how many were skipped for a slow watcher.
    pub async fn recv(&mut self) -> Result<Arc<str>, RecvError> {
        loop {
            let stamped = self.rx.recv().await?;
            if let Some(entry) = to_debug(&stamped) {
                if let Ok(json) = serde_json::to_string(&entry) {
                    return Ok(json.into());
                }
            }
        }
    }
}

/// The console's view of an event (`None` for kinds it does not show).
pub fn to_debug(stamped: &Stamped) -> Option<DebugEvent> {
    let entry = |kind, socket_id: &str, channel: Option<&str>| {
        let mut entry = DebugEvent::new(kind, stamped.at_ms);
        entry.socket_id = (!socket_id.is_empty()).then(|| socket_id.to_owned());
        entry.channel = channel.map(str::to_owned);
        entry
    };
    Some(match &stamped.event {
        AppEvent::ConnectionOpened { socket_id } => entry(DebugKind::Connection, socket_id, None),
        AppEvent::ConnectionClosed { socket_id, code } => {
            let mut e = entry(DebugKind::Disconnection, socket_id, None);
            e.code = *code;
            e.message = code.map(|c| shared::codes::close_code_meaning(c).to_owned());
            e
        }
        AppEvent::Subscribed { socket_id, channel } => {
            entry(DebugKind::Subscribed, socket_id, Some(channel))
        }
        AppEvent::Unsubscribed { socket_id, channel } => {
            entry(DebugKind::Unsubscribed, socket_id, Some(channel))
        }
        AppEvent::ApiEvent {
            channel,
            event,
            data,
            except,
        } => {
            let mut e = entry(DebugKind::ApiMessage, "", Some(channel));
            e.event = Some(event.clone());
            e.data = Some(data.clone());
            e.message = except
                .as_ref()
                .map(|socket| format!("Not sent to socket {socket}"));
            e
        }
        AppEvent::ClientEvent {
            socket_id,
            channel,
            event,
            data,
            ..
        } => {
            let mut e = entry(DebugKind::ClientEvent, socket_id, Some(channel));
            e.event = Some(event.clone());
            e.data = Some(data.clone());
            e
        }
        AppEvent::Error {
            socket_id,
            channel,
            code,
            message,
        } => {
            let mut e = entry(DebugKind::Error, socket_id, channel.as_deref());
            e.code = *code;
            e.message = Some(message.clone());
            e
        }
        AppEvent::RateLimited { socket_id, limit } => {
            let mut e = entry(
                DebugKind::RateLimited,
                socket_id.as_deref().unwrap_or_default(),
                None,
            );
            e.message = Some(format!("Refused by the limit {}", limit.label()));
            e
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_watcher_sees_shown_events_as_json_and_only_while_it_watches() {
        let events = AppEvents::default();
        assert!(!events.wants(Kind::ApiEvent));
        let mut watcher = events.watch();
        assert!(events.wants(Kind::ApiEvent));
        assert!(!events.wants(Kind::ChannelOccupied), "not shown, not built");
        events.emit(Kind::Subscribed, || AppEvent::Subscribed {
            socket_id: "1.2".into(),
            channel: "news".into(),
        });
        let json = watcher.recv().await.unwrap();
        let entry: DebugEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(entry.kind, DebugKind::Subscribed);
        assert_eq!(entry.channel.as_deref(), Some("news"));
        assert_eq!(entry.socket_id.as_deref(), Some("1.2"));
        drop(watcher);
        assert!(!events.wants(Kind::Subscribed));
    }

    #[test]
    fn disconnections_carry_the_codes_meaning() {
        let stamped = Stamped {
            at_ms: 5,
            event: AppEvent::ConnectionClosed {
                socket_id: "1.2".into(),
                code: Some(4100),
            },
        };
        let entry = to_debug(&stamped).unwrap();
        assert_eq!(entry.kind, DebugKind::Disconnection);
        assert_eq!(entry.code, Some(4100));
        assert_eq!(entry.at_ms, 5);
        assert!(entry.message.unwrap().contains("too slowly"));
    }
}
