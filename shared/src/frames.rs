//! The exact JSON of every frame the server sends, and the shape of frames clients send.
//!
//! Pusher double-encodes: `data` of server frames is usually a JSON *string* holding JSON.
//! That quirk lives here, in [`encode_data`], and nowhere else.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::codes::CloseCode;

/// Turns a JSON value into the string form Pusher puts in `data`.
fn encode_data(value: &Value) -> String {
    value.to_string()
}

/// A frame received from a client, typed by its `event`. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `pusher:ping`: the client checks the connection; answered with `pusher:pong`.
    Ping,
    /// `pusher:pong`: the answer to the server's ping.
    Pong,
    Subscribe(SubscribeData),
    Unsubscribe(UnsubscribeData),
    Signin(SigninData),
    /// `client-*`: an event for the other subscribers of a private or presence channel.
    ClientEvent {
        event: String,
        channel: Option<String>,
        data: Value,
    },
    /// Another `pusher:`/`pusher_internal:` event: ignored, as newer clients may send some.
    OtherPusher(String),
}

/// Why a client frame could not be read. Each is answered with `pusher:error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not a JSON object with a string `event`.
    NotAFrame,
    /// `pusher:subscribe` without a usable `data.channel`.
    SubscribeData,
    /// `pusher:unsubscribe` without a usable `data.channel`.
    UnsubscribeData,
    /// `pusher:signin` without `data.auth` and `data.user_data`.
    SigninData,
    /// An event that is neither the protocol's nor a `client-` event.
    Unsupported(String),
}

impl FrameError {
    /// The code sent with the `pusher:error`; a bad sign-in is an authorisation failure.
    pub fn code(&self) -> Option<CloseCode> {
        match self {
            Self::SigninData => Some(CloseCode::Unauthorized),
            _ => None,
        }
    }

    /// The text sent to the client.
    pub fn message(&self) -> String {
        match self {
            Self::NotAFrame => {
                "Invalid message format: expected a JSON object with an event".to_owned()
            }
            Self::SubscribeData => "pusher:subscribe needs data with a channel".to_owned(),
            Self::UnsubscribeData => "pusher:unsubscribe needs data with a channel".to_owned(),
            Self::SigninData => "pusher:signin needs data with auth and user_data".to_owned(),
            Self::Unsupported(event) => {
                format!("Unsupported event {event:?}: client events must start with client-")
            }
        }
    }
}

/// The envelope every client frame shares.
#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    data: Value,
}

/// `data` of a client frame: an object, or a string holding one (some clients send that).
fn data_of<T: serde::de::DeserializeOwned>(data: Value) -> Option<T> {
    match data {
        Value::String(s) => serde_json::from_str(&s).ok(),
        other => serde_json::from_value(other).ok(),
    }
}

impl ClientFrame {
    /// Reads one text frame from a client.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let Envelope {
            event,
            channel,
            data,
        } = serde_json::from_str(text).map_err(|_| FrameError::NotAFrame)?;
        Ok(match event.as_str() {
            "pusher:ping" => Self::Ping,
            "pusher:pong" => Self::Pong,
            "pusher:subscribe" => Self::Subscribe(data_of(data).ok_or(FrameError::SubscribeData)?),
            "pusher:unsubscribe" => {
                Self::Unsubscribe(data_of(data).ok_or(FrameError::UnsubscribeData)?)
            }
            "pusher:signin" => Self::Signin(data_of(data).ok_or(FrameError::SigninData)?),
            e if e.starts_with("client-") => Self::ClientEvent {
                event,
                channel,
                data,
            },
            e if e.starts_with("pusher:") || e.starts_with("pusher_internal:") => {
                Self::OtherPusher(event)
            }
            _ => return Err(FrameError::Unsupported(event)),
        })
    }
}

/// `pusher:subscribe` data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubscribeData {
    pub channel: String,
    #[serde(default)]
    pub auth: Option<String>,
    /// The exact string the app's auth endpoint signed (presence only).
    #[serde(default)]
    pub channel_data: Option<String>,
}

/// `pusher:unsubscribe` data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnsubscribeData {
    pub channel: String,
}

/// `pusher:signin` data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SigninData {
    pub auth: String,
    /// The exact JSON string the app signed.
    pub user_data: String,
}

/// `{"event":"pusher:connection_established","data":"{\"socket_id\":..,\"activity_timeout\":..}"}`
pub fn connection_established(socket_id: &str, activity_timeout_secs: u64) -> String {
    let data = json!({ "socket_id": socket_id, "activity_timeout": activity_timeout_secs });
    json!({ "event": "pusher:connection_established", "data": encode_data(&data) }).to_string()
}

/// `pusher:error` with an object `data` (as Pusher documents it) and an optional code.
pub fn error(code: Option<CloseCode>, message: &str) -> String {
    json!({
        "event": "pusher:error",
        "data": { "code": code.map(CloseCode::code), "message": message },
    })
    .to_string()
}

/// The answer to a client's `pusher:ping`: `data` is the string `"{}"`, as real Pusher sends.
pub fn pong() -> &'static str {
    r#"{"event":"pusher:pong","data":"{}"}"#
}

/// The server's own liveness probe after a quiet period.
pub fn ping() -> &'static str {
    r#"{"event":"pusher:ping","data":"{}"}"#
}

/// `pusher_internal:subscription_succeeded` for a non-presence channel.
pub fn subscription_succeeded(channel: &str) -> String {
    json!({ "event": "pusher_internal:subscription_succeeded", "channel": channel, "data": "{}" })
        .to_string()
}

/// `pusher_internal:subscription_succeeded` for a presence channel, with the member roster.
/// `ids` and `hash` are given as already-built JSON so the presence table is walked once.
pub fn presence_subscription_succeeded(channel: &str, ids: &[&str], hash: &Value) -> String {
    let data = json!({ "presence": { "ids": ids, "hash": hash, "count": ids.len() } });
    json!({
        "event": "pusher_internal:subscription_succeeded",
        "channel": channel,
        "data": encode_data(&data),
    })
    .to_string()
}

/// `pusher:subscription_error` addressed to the channel, with `{type, error, status}`:
/// pusher-js surfaces it on the channel object without disturbing the connection.
pub fn subscription_error(channel: &str, kind: &str, error: &str, status: u16) -> String {
    json!({
        "event": "pusher:subscription_error",
        "channel": channel,
        "data": { "type": kind, "error": error, "status": status },
    })
    .to_string()
}

/// `pusher_internal:member_added`, sent to the other members.
pub fn member_added(channel: &str, user_id: &str, user_info: &Value) -> String {
    let data = json!({ "user_id": user_id, "user_info": user_info });
    json!({ "event": "pusher_internal:member_added", "channel": channel, "data": encode_data(&data) })
        .to_string()
}

/// `pusher_internal:member_removed`, sent to the remaining members.
pub fn member_removed(channel: &str, user_id: &str) -> String {
    let data = json!({ "user_id": user_id });
    json!({ "event": "pusher_internal:member_removed", "channel": channel, "data": encode_data(&data) })
        .to_string()
}

/// `pusher_internal:subscription_count`.
pub fn subscription_count(channel: &str, count: usize) -> String {
    let data = json!({ "subscription_count": count });
    json!({ "event": "pusher_internal:subscription_count", "channel": channel, "data": encode_data(&data) })
        .to_string()
}

/// `pusher:cache_miss` (no data, as soketi and Reverb send it).
pub fn cache_miss(channel: &str) -> String {
    json!({ "event": "pusher:cache_miss", "channel": channel }).to_string()
}

/// An event on a channel. `data` is passed as the string it arrived as; `user_id` is set on
/// client events in presence channels.
pub fn channel_event(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> String {
    let mut frame = json!({ "event": event, "channel": channel, "data": data });
    if let Some(user_id) = user_id {
        frame["user_id"] = Value::String(user_id.to_owned());
    }
    frame.to_string()
}

/// `pusher:signin_success` echoing the signed `user_data` string.
pub fn signin_success(user_data: &str) -> String {
    json!({ "event": "pusher:signin_success", "data": { "user_data": user_data } }).to_string()
}

/// `pusher_internal:watchlist_events` with `online`/`offline` lists (empty lists are left out).
pub fn watchlist_events(online: &[&str], offline: &[&str]) -> String {
    let mut events = Vec::new();
    if !online.is_empty() {
        events.push(json!({ "name": "online", "user_ids": online }));
    }
    if !offline.is_empty() {
        events.push(json!({ "name": "offline", "user_ids": offline }));
    }
    json!({ "event": "pusher_internal:watchlist_events", "data": { "events": events } }).to_string()
}

/// The payload that a client puts in `data` may be an object or a string; on the wire to other
/// clients it is always the string form, as Pusher sends it.
pub fn data_as_string(data: &Value) -> String {
    match data {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn connection_established_double_encodes_data() {
        let f = parse(&connection_established("123.456", 120));
        assert_eq!(f["event"], "pusher:connection_established");
        let data = parse(f["data"].as_str().unwrap());
        assert_eq!(
            data,
            json!({"socket_id": "123.456", "activity_timeout": 120})
        );
    }

    #[test]
    fn error_has_object_data_and_nullable_code() {
        let f = parse(&error(Some(CloseCode::AppNotFound), "nope"));
        assert_eq!(f["data"], json!({"code": 4001, "message": "nope"}));
        let f = parse(&error(None, "soft"));
        assert_eq!(f["data"]["code"], Value::Null);
    }

    #[test]
    fn pong_and_ping_shapes() {
        assert_eq!(parse(pong()), json!({"event": "pusher:pong", "data": "{}"}));
        assert_eq!(parse(ping()), json!({"event": "pusher:ping", "data": "{}"}));
    }

    #[test]
    fn presence_roster() {
        let f = parse(&presence_subscription_succeeded(
            "presence-x",
            &["1", "2"],
            &json!({"1": {"name": "A"}, "2": {}}),
        ));
        let data = parse(f["data"].as_str().unwrap());
        assert_eq!(
            data,
            json!({"presence": {"ids": ["1", "2"], "hash": {"1": {"name": "A"}, "2": {}}, "count": 2}})
        );
    }

    #[test]
    fn member_events() {
        let f = parse(&member_added("presence-x", "3", &json!({"name": "C"})));
        assert_eq!(f["event"], "pusher_internal:member_added");
        assert_eq!(
            parse(f["data"].as_str().unwrap()),
            json!({"user_id": "3", "user_info": {"name": "C"}})
        );
        let f = parse(&member_removed("presence-x", "3"));
        assert_eq!(parse(f["data"].as_str().unwrap()), json!({"user_id": "3"}));
    }

    #[test]
    fn subscription_error_shape() {
        let f = parse(&subscription_error("private-x", "AuthError", "bad", 401));
        assert_eq!(f["channel"], "private-x");
        assert_eq!(
            f["data"],
            json!({"type": "AuthError", "error": "bad", "status": 401})
        );
    }

    #[test]
    fn client_event_carries_user_id_on_presence() {
        let f = parse(&channel_event(
            "client-x",
            "presence-a",
            "{\"a\":1}",
            Some("7"),
        ));
        assert_eq!(f["user_id"], "7");
        assert_eq!(f["data"], "{\"a\":1}");
        let f = parse(&channel_event("e", "c", "d", None));
        assert!(f.get("user_id").is_none());
    }

    #[test]
    fn watchlist_shape() {
        let f = parse(&watchlist_events(&["1"], &["2", "3"]));
        assert_eq!(
            f["data"]["events"],
            json!([{"name": "online", "user_ids": ["1"]}, {"name": "offline", "user_ids": ["2", "3"]}])
        );
    }

    #[test]
    fn client_frames_are_typed_by_event() {
        assert_eq!(
            ClientFrame::parse(r#"{"event":"pusher:ping","data":{}}"#),
            Ok(ClientFrame::Ping)
        );
        let sub = SubscribeData {
            channel: "private-a".into(),
            auth: Some("k:s".into()),
            channel_data: None,
        };
        assert_eq!(
            ClientFrame::parse(
                r#"{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"k:s"}}"#
            ),
            Ok(ClientFrame::Subscribe(sub.clone()))
        );
        // Some clients send `data` as a string holding the object.
        assert_eq!(
            ClientFrame::parse(
                r#"{"event":"pusher:subscribe","data":"{\"channel\":\"private-a\",\"auth\":\"k:s\"}"}"#
            ),
            Ok(ClientFrame::Subscribe(sub))
        );
        assert_eq!(
            ClientFrame::parse(r#"{"event":"client-x","channel":"private-a","data":{"a":1}}"#),
            Ok(ClientFrame::ClientEvent {
                event: "client-x".into(),
                channel: Some("private-a".into()),
                data: json!({"a": 1}),
            })
        );
        assert_eq!(
            ClientFrame::parse(r#"{"event":"pusher_internal:x"}"#),
            Ok(ClientFrame::OtherPusher("pusher_internal:x".into()))
        );
    }

    #[test]
    fn bad_client_frames_name_what_is_wrong() {
        assert_eq!(ClientFrame::parse("[1]"), Err(FrameError::NotAFrame));
        assert_eq!(
            ClientFrame::parse(r#"{"event":7}"#),
            Err(FrameError::NotAFrame)
        );
        assert_eq!(
            ClientFrame::parse(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(FrameError::SubscribeData)
        );
        assert_eq!(
            ClientFrame::parse(r#"{"event":"pusher:unsubscribe"}"#),
            Err(FrameError::UnsubscribeData)
        );
        let signin = ClientFrame::parse(r#"{"event":"pusher:signin","data":{"auth":"x"}}"#);
        assert_eq!(signin, Err(FrameError::SigninData));
        assert_eq!(FrameError::SigninData.code(), Some(CloseCode::Unauthorized));
        let err = ClientFrame::parse(r#"{"event":"hello"}"#).unwrap_err();
        assert_eq!(
            err.message(),
            "Unsupported event \"hello\": client events must start with client-"
        );
    }

    #[test]
    fn subscription_count_and_cache_miss() {
        let f = parse(&subscription_count("c", 3));
        assert_eq!(
            parse(f["data"].as_str().unwrap()),
            json!({"subscription_count": 3})
        );
        assert_eq!(
            parse(&cache_miss("cache-x")),
            json!({"event": "pusher:cache_miss", "channel": "cache-x"})
        );
    }
}
