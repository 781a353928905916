//! The rules for an event triggered from outside (the REST API's `events` and `batch_events`,
//! and the admin panel's event creator): name, data, channels and `socket_id` checked against
//! the app's limits, and the `info` attributes asked for. One module, so both doors apply the
//! same rules with the same words.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use shared::ChannelName;

use crate::apps::AppConfig;

/// One event to deliver on one channel.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    pub channel: String,
    pub event: String,
    pub data: String,
    /// `socket_id` to leave out (the sender's own connection).
    pub except: Option<String>,
    /// The REST request it came from, for the logs.
    pub request_id: Option<Arc<str>>,
}

/// Why an event was refused: a 400, or a 413 for data over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    BadRequest(String),
    TooLarge(String),
}

/// The requested `info` attributes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Info {
    pub user_count: bool,
    pub subscription_count: bool,
    pub cache: bool,
}

impl Info {
    pub fn parse(info: Option<&str>) -> Result<Self, PublishError> {
        let mut parsed = Self::default();
        for attr in info
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match attr {
                "user_count" => parsed.user_count = true,
                "subscription_count" => parsed.subscription_count = true,
                "cache" => parsed.cache = true,
                other => {
                    return Err(PublishError::BadRequest(format!(
                        "Unknown info attribute {other:?}"
                    )))
                }
            }
        }
        Ok(parsed)
    }

    pub fn any(self) -> bool {
        self.user_count || self.subscription_count
    }

    /// The attributes for one channel, `user_count` on presence channels only.
    pub fn render(self, channel: &str, subscriptions: usize, users: usize) -> Value {
        let mut out = Map::new();
        if self.user_count && ChannelName::classify(channel).is_presence() {
            out.insert("user_count".into(), users.into());
        }
        if self.subscription_count {
            out.insert("subscription_count".into(), subscriptions.into());
        }
        Value::Object(out)
    }
}

/// One event as the REST API receives it (`/events`, or one item of `/batch_events`).
#[derive(Debug, Deserialize)]
pub struct EventBody {
    pub name: Option<String>,
    pub data: Option<Value>,
    pub channels: Option<Vec<String>>,
    pub channel: Option<String>,
    pub socket_id: Option<String>,
    pub info: Option<String>,
}

fn valid_socket_id(id: &str) -> bool {
    id.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// Checks one event against the app's limits and turns it into deliveries.
pub fn validate_event(
    config: &AppConfig,
    body: EventBody,
) -> Result<(Vec<OutgoingEvent>, Info), PublishError> {
    let limits = &config.limits;
    let name = body
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| PublishError::BadRequest("Missing event name".into()))?;
    if name.len() > limits.max_event_name_length as usize {
        return Err(PublishError::BadRequest(format!(
            "Event name is too long. Maximum allowed size is {}.",
            limits.max_event_name_length
        )));
    }
    let data = match body.data {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => {
            return Err(PublishError::BadRequest("Missing event data".into()))
        }
        Some(other) => other.to_string(),
    };
    if data.len() > limits.max_event_payload_bytes as usize {
        return Err(PublishError::TooLarge(format!(
            "The event data should be at most {} bytes.",
            limits.max_event_payload_bytes
        )));
    }
    let channels = match (body.channels, body.channel) {
        (Some(channels), _) => channels,
        (None, Some(channel)) => vec![channel],
        (None, None) => return Err(PublishError::BadRequest("Missing channels".into())),
    };
    if channels.is_empty() || channels.len() > limits.max_event_channels_at_once as usize {
        return Err(PublishError::BadRequest(format!(
            "An event must go to between 1 and {} channels",
            limits.max_event_channels_at_once
        )));
    }
    for channel in &channels {
        let parsed = ChannelName::parse(channel, limits.max_channel_name_length as usize)
            .map_err(|e| PublishError::BadRequest(format!("Invalid channel {channel:?}: {e}")))?;
        if parsed.is_encrypted() && channels.len() > 1 {
            return Err(PublishError::BadRequest(
                "An event to an encrypted channel cannot go to other channels too".into(),
            ));
        }
    }
    if let Some(socket_id) = &body.socket_id {
        if !valid_socket_id(socket_id) {
            return Err(PublishError::BadRequest(format!(
                "Invalid socket_id {socket_id:?}"
            )));
        }
    }
    let info = Info::parse(body.info.as_deref())?;
    let events = channels
        .into_iter()
        .map(|channel| OutgoingEvent {
            request_id: None,
            channel,
            event: name.clone(),
            data: data.clone(),
            except: body.socket_id.clone(),
        })
        .collect();
    Ok((events, info))
}

/// One event from the admin panel's event creator, checked by the same rules as a REST trigger.
pub fn panel_event(
    config: &AppConfig,
    channel: String,
    event: String,
    data: String,
) -> Result<Vec<OutgoingEvent>, PublishError> {
    let body = EventBody {
        name: Some(event),
        data: Some(Value::String(data)),
        channels: None,
        channel: Some(channel),
        socket_id: None,
        info: None,
    };
    let (mut events, _) = validate_event(config, body)?;
    tag_request(&mut events);
    Ok(events)
}

/// Gives the events of one REST call a request id that the delivery logs repeat.
pub fn tag_request(events: &mut [OutgoingEvent]) -> Arc<str> {
    // A v4 UUID from the thread's generator: `Uuid::new_v4` would make a getrandom syscall
    // on every request.
    let mut text = uuid::Uuid::encode_buffer();
    let request_id: Arc<str> = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .simple()
        .encode_lower(&mut text)
        .into();
    for event in events {
        event.request_id = Some(request_id.clone());
    }
    request_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> EventBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn event_validation() {
        let app = AppConfig::generate("t");
        let (events, _) =
            validate_event(&app, body(json!({"name":"e","data":"d","channel":"c"}))).unwrap();
        assert_eq!(events.len(), 1);
        let err = validate_event(&app, body(json!({"data":"d","channel":"c"}))).unwrap_err();
        assert!(matches!(err, PublishError::BadRequest(_)), "{err:?}");
        let big = "x".repeat(10 * 1024 + 1);
        let err =
            validate_event(&app, body(json!({"name":"e","data":big,"channel":"c"}))).unwrap_err();
        assert!(matches!(err, PublishError::TooLarge(_)), "{err:?}");
        let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
        let err =
            validate_event(&app, body(json!({"name":"e","data":"d","channels":many}))).unwrap_err();
        assert!(matches!(err, PublishError::BadRequest(_)), "{err:?}");
        let err = validate_event(
            &app,
            body(json!({"name":"e","data":"d","channels":["private-encrypted-a","b"]})),
        )
        .unwrap_err();
        assert!(matches!(err, PublishError::BadRequest(_)), "{err:?}");
        let err = validate_event(
            &app,
            body(json!({"name":"e","data":"d","channel":"c","socket_id":"abc"})),
        )
        .unwrap_err();
        assert!(matches!(err, PublishError::BadRequest(_)), "{err:?}");
        assert!(validate_event(
            &app,
            body(json!({"name":"e","data":"d","channel":"#server-to-user-1"}))
        )
        .is_ok());
    }
}
