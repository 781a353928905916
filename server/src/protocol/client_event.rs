//! Which client events (`client-*`) go out: the app's switch, the channel type, the sender's
//! subscription, the name and payload limits, and the per-connection rate.

use std::time::Instant;

use serde_json::Value;
use shared::{frames, ChannelName, CloseCode};

use super::rate_limit::TokenBucket;
use crate::apps::AppConfig;

/// Why a client event was not sent (each is a `pusher:error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoChannel,
    Disabled,
    /// Only private and presence channels carry client events.
    WrongChannelType,
    NotSubscribed(String),
    NameTooLong {
        max: u32,
    },
    TooLarge {
        max: u32,
    },
    /// Over the sender's own rate.
    RateLimited,
    /// Over the whole app's rate (decided by the app's shared gate, after every rule here).
    AppRateLimited {
        max_per_second: u32,
    },
}

impl Refusal {
    /// The code sent with the error: limits use 4301, the rest none (Pusher's behaviour).
    pub fn code(&self) -> Option<CloseCode> {
        match self {
            Self::NameTooLong { .. }
            | Self::TooLarge { .. }
            | Self::RateLimited
            | Self::AppRateLimited { .. } => Some(CloseCode::ClientEventRejected),
            _ => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::NoChannel => "Client events must name a channel".into(),
            Self::Disabled => "To send client events, you must enable this feature in the Settings page of your dashboard.".into(),
            Self::WrongChannelType => {
                "Client events can only be sent on private and presence channels".into()
            }
            Self::NotSubscribed(channel) => format!(
                "Cannot broadcast client event (connection not subscribed to channel {channel})"
            ),
            Self::NameTooLong { max } => {
                format!("Event name is too long. Maximum allowed size is {max}.")
            }
            Self::TooLarge { max } => {
                format!("Client event data is larger than the allowed {max} bytes")
            }
            Self::RateLimited => "Client event rejected due to rate limit".into(),
            Self::AppRateLimited { max_per_second } => format!(
                "Client event rejected due to rate limit: the app accepts at most {max_per_second} client events per second"
            ),
        }
    }
}

/// A client event that may go out: its channel and its `data` in the string form sent on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted<'a> {
    pub channel: &'a str,
    pub data: String,
}

/// Checks a client event in Pusher's order; a token is taken from `bucket` only when every
/// other rule passed, so refused events do not use up the sender's rate.
pub fn check<'a>(
    config: &AppConfig,
    event: &str,
    channel: Option<&'a str>,
    data: &Value,
    subscribed: impl FnOnce(&str) -> bool,
    bucket: &mut TokenBucket,
    now: Instant,
) -> Result<Accepted<'a>, Refusal> {
    let channel = channel.ok_or(Refusal::NoChannel)?;
    if !config.client_events {
        return Err(Refusal::Disabled);
    }
    if !ChannelName::classify(channel).allows_client_events() {
        return Err(Refusal::WrongChannelType);
    }
    if !subscribed(channel) {
        return Err(Refusal::NotSubscribed(channel.to_owned()));
    }
    let limits = &config.limits;
    if event.len() > limits.max_event_name_length as usize {
        return Err(Refusal::NameTooLong {
            max: limits.max_event_name_length,
        });
    }
    let data = frames::data_as_string(data);
    if data.len() > limits.max_event_payload_bytes as usize {
        return Err(Refusal::TooLarge {
            max: limits.max_event_payload_bytes,
        });
    }
    if !bucket.try_take(limits.max_client_events_per_second, now) {
        return Err(Refusal::RateLimited);
    }
    Ok(Accepted { channel, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(config: &AppConfig, channel: Option<&str>, subscribed: bool) -> Result<String, Refusal> {
        let mut bucket = TokenBucket::new(10, Instant::now());
        check(
            config,
            "client-x",
            channel,
            &json!({"a": 1}),
            |_| subscribed,
            &mut bucket,
            Instant::now(),
        )
        .map(|a| a.data)
    }

    #[test]
    fn goes_out_on_a_subscribed_private_channel_as_a_string() {
        let c = AppConfig::generate("t");
        assert_eq!(run(&c, Some("private-a"), true), Ok(r#"{"a":1}"#.into()));
    }

    #[test]
    fn refusals_in_pusher_order() {
        let mut c = AppConfig::generate("t");
        assert_eq!(run(&c, None, true), Err(Refusal::NoChannel));
        assert_eq!(run(&c, Some("news"), true), Err(Refusal::WrongChannelType));
        assert_eq!(
            run(&c, Some("private-a"), false),
            Err(Refusal::NotSubscribed("private-a".into()))
        );
        c.limits.max_event_payload_bytes = 3;
        let err = run(&c, Some("private-a"), true).unwrap_err();
        assert_eq!(err, Refusal::TooLarge { max: 3 });
        assert_eq!(err.code(), Some(CloseCode::ClientEventRejected));
        c.client_events = false;
        assert_eq!(run(&c, Some("private-a"), true), Err(Refusal::Disabled));
    }

    #[test]
    fn the_rate_applies_per_bucket() {
        let mut c = AppConfig::generate("t");
        c.limits.max_client_events_per_second = 2;
        let now = Instant::now();
        let mut bucket = TokenBucket::new(2, now);
        let mut send = || {
            check(
                &c,
                "client-x",
                Some("private-a"),
                &json!(1),
                |_| true,
                &mut bucket,
                now,
            )
        };
        assert!(send().is_ok());
        assert!(send().is_ok());
        assert_eq!(send(), Err(Refusal::RateLimited));
    }
}
