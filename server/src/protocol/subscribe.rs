//! May this connection subscribe to this channel? Name, caps, signature and presence member.
//!
//! [`authorize`] decides everything the session can know alone; the supervisor adds the checks
//! that need the app's whole picture (occupied channels, a full presence channel), which come
//! back as the same [`Refusal`] so that every refusal reaches the client in one form.

use serde_json::Value;
use shared::frames::SubscribeData;
use shared::{ChannelKind, ChannelName};

use super::presence::{self, MemberData, MemberDataError};
use super::signatures::{self, TokenError};
use crate::apps::AppConfig;

/// What the session knows when a subscription arrives.
pub struct Request<'a> {
    pub socket_id: &'a str,
    pub config: &'a AppConfig,
    pub now_unix: i64,
    /// The user this connection signed in as: `(id, user_info)`.
    pub signed_in: Option<(&'a str, &'a Value)>,
    /// Channels this connection is subscribed to now.
    pub subscribed: usize,
    /// Whether it is already subscribed to this channel.
    pub duplicate: bool,
}

/// A subscription that may go ahead.
#[derive(Debug, PartialEq)]
pub enum Grant {
    /// The connection's own `#server-to-user-{id}` channel: served by the supervisor's user
    /// table, no channel actor.
    UserChannel,
    /// Join the channel's actor; `member` on presence channels.
    Join {
        member: Option<MemberData>,
        /// A private, encrypted or presence channel: the connection counts as authorised.
        authorizes: bool,
    },
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Already subscribed: answered with `pusher:error`; the existing subscription stands.
    Duplicate,
    InvalidChannel(String),
    /// The signature does not match (counted as a rejected subscription auth).
    BadSignature(String),
    /// Someone else's user channel.
    NotAuthorized(String),
    /// A presence subscription without `channel_data` from a connection not signed in.
    NotSignedIn,
    /// `channel_data` is not a valid member.
    BadMember(String),
    /// `user_info` is over the app's limit.
    MemberTooLarge(String),
    /// The connection has as many channels as the app allows.
    TooManyChannels {
        max: u32,
    },
    /// The app has as many occupied channels as it allows (decided by the supervisor).
    AppChannelsFull {
        max: u32,
    },
    /// The presence channel has its maximum of distinct users (decided by the channel).
    PresenceFull {
        max: u32,
    },
    /// The connection made more subscribe attempts this second than the app allows.
    TooFast {
        max_per_second: u32,
    },
    /// The whole app received more subscribe attempts this second than it allows.
    AppTooFast {
        max_per_second: u32,
    },
}

impl Refusal {
    /// `type` of the `pusher:subscription_error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Duplicate => "Duplicate",
            Self::InvalidChannel(_) => "InvalidChannel",
            Self::BadSignature(_)
            | Self::NotAuthorized(_)
            | Self::NotSignedIn
            | Self::BadMember(_) => "AuthError",
            Self::MemberTooLarge(_)
            | Self::TooManyChannels { .. }
            | Self::AppChannelsFull { .. }
            | Self::PresenceFull { .. }
            | Self::TooFast { .. }
            | Self::AppTooFast { .. } => "LimitReached",
        }
    }

    /// `status` of the `pusher:subscription_error` (HTTP-like, as pusher-js reports it).
    pub fn status(&self) -> u16 {
        match self {
            Self::Duplicate | Self::BadMember(_) => 400,
            Self::InvalidChannel(_) => 4009,
            Self::BadSignature(_) | Self::NotSignedIn => 401,
            Self::NotAuthorized(_) => 403,
            Self::MemberTooLarge(_) => 4301,
            Self::TooManyChannels { .. }
            | Self::AppChannelsFull { .. }
            | Self::TooFast { .. }
            | Self::AppTooFast { .. } => 429,
            Self::PresenceFull { .. } => 4100,
        }
    }

    /// The text the client reads.
    pub fn message(&self, channel: &str) -> String {
        match self {
            Self::Duplicate => format!("Existing subscription to channel {channel}"),
            Self::NotSignedIn => {
                "Presence subscription without channel_data requires a signed-in user".to_owned()
            }
            Self::InvalidChannel(m)
            | Self::BadSignature(m)
            | Self::NotAuthorized(m)
            | Self::BadMember(m)
            | Self::MemberTooLarge(m) => m.clone(),
            Self::TooManyChannels { max } => format!(
                "Subscription limit reached: a connection may be subscribed to at most {max} channels; unsubscribe from one first"
            ),
            Self::AppChannelsFull { max } => format!(
                "Channel limit reached: the app has its maximum of {max} occupied channels"
            ),
            Self::PresenceFull { .. } => {
                "The maximum members per presence channel limit was reached".to_owned()
            }
            Self::TooFast { max_per_second } => format!(
                "Rate limit reached: a connection may make at most {max_per_second} subscribe attempts per second; retry later"
            ),
            Self::AppTooFast { max_per_second } => format!(
                "Rate limit reached: the app accepts at most {max_per_second} subscribe attempts per second; retry later"
            ),
        }
    }
}

/// Decides a `pusher:subscribe`.
pub fn authorize(req: &Request<'_>, data: &SubscribeData) -> Result<Grant, Refusal> {
    let limits = &req.config.limits;
    let channel = data.channel.as_str();
    let name = ChannelName::parse(channel, limits.max_channel_name_length as usize)
        .map_err(|e| Refusal::InvalidChannel(e.to_string()))?;
    if req.duplicate {
        return Err(Refusal::Duplicate);
    }
    if req.subscribed >= limits.max_channels_per_connection as usize {
        return Err(Refusal::TooManyChannels {
            max: limits.max_channels_per_connection,
        });
    }
    let verify = |message: String| verify(req, data.auth.as_deref().unwrap_or_default(), &message);
    match name.kind {
        ChannelKind::Public => Ok(Grant::Join {
            member: None,
            authorizes: false,
        }),
        ChannelKind::User => {
            if req.signed_in.map(|(id, _)| id) == name.user_id() {
                Ok(Grant::UserChannel)
            } else {
                Err(Refusal::NotAuthorized(
                    "Only the connection signed in as this user may subscribe to its channel"
                        .into(),
                ))
            }
        }
        ChannelKind::Private | ChannelKind::PrivateEncrypted => {
            verify(signatures::channel_string(req.socket_id, channel))?;
            Ok(Grant::Join {
                member: None,
                authorizes: true,
            })
        }
        ChannelKind::Presence => {
            let member = if let Some(channel_data) = data.channel_data.as_deref() {
                verify(signatures::presence_string(
                    req.socket_id,
                    channel,
                    channel_data,
                ))?;
                presence::parse_member(
                    channel_data,
                    limits.max_user_id_length as usize,
                    limits.max_presence_member_size_bytes as usize,
                )
                .map_err(|e| match e {
                    MemberDataError::UserInfoTooLarge(_) => Refusal::MemberTooLarge(e.to_string()),
                    other => Refusal::BadMember(other.to_string()),
                })?
            } else if let Some((id, info)) = req.signed_in {
                // No channel_data: the app authorises the signed-in user (§2.6), and the
                // signature covers `socket_id:channel` only.
                verify(signatures::channel_string(req.socket_id, channel))?;
                MemberData {
                    user_id: id.to_owned(),
                    user_info: info.clone(),
                }
            } else {
                return Err(Refusal::NotSignedIn);
            };
            Ok(Grant::Join {
                member: Some(member),
                authorizes: true,
            })
        }
    }
}

/// Checks a `key:signature` token against the app's current secrets, in Pusher's wording.
fn verify(req: &Request<'_>, auth: &str, message: &str) -> Result<(), Refusal> {
    let secrets = req.config.signing_secrets(req.now_unix);
    signatures::verify_token(&req.config.key, &secrets, message, auth).map_err(|e| {
        Refusal::BadSignature(match e {
            TokenError::WrongKey => format!("Invalid key in subscription auth data: '{auth}'"),
            _ => format!(
                "Invalid signature: Expected HMAC SHA256 hex digest of {message}, but got {auth}"
            ),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> AppConfig {
        AppConfig::generate("t")
    }

    fn req(config: &AppConfig) -> Request<'_> {
        Request {
            socket_id: "1.2",
            config,
            now_unix: 0,
            signed_in: None,
            subscribed: 0,
            duplicate: false,
        }
    }

    fn data(channel: &str, auth: Option<String>, channel_data: Option<&str>) -> SubscribeData {
        SubscribeData {
            channel: channel.into(),
            auth,
            channel_data: channel_data.map(str::to_owned),
        }
    }

    fn token(config: &AppConfig, message: &str) -> String {
        format!(
            "{}:{}",
            config.key,
            signatures::sign(&config.secret, message)
        )
    }

    #[test]
    fn public_channels_need_no_signature() {
        let c = config();
        let grant = authorize(&req(&c), &data("news", None, None));
        assert_eq!(
            grant,
            Ok(Grant::Join {
                member: None,
                authorizes: false
            })
        );
    }

    #[test]
    fn private_channels_need_the_apps_signature() {
        let c = config();
        let good = token(&c, "1.2:private-a");
        assert!(authorize(&req(&c), &data("private-a", Some(good), None)).is_ok());
        let refused = authorize(&req(&c), &data("private-a", Some("x:y".into()), None));
        let err = refused.unwrap_err();
        assert_eq!((err.kind(), err.status()), ("AuthError", 401));
        assert!(err.message("private-a").starts_with("Invalid key"));
    }

    #[test]
    fn presence_member_comes_from_channel_data_or_the_signed_in_user() {
        let c = config();
        let cd = r#"{"user_id":"u1","user_info":{"n":1}}"#;
        let good = token(&c, &format!("1.2:presence-r:{cd}"));
        let grant = authorize(&req(&c), &data("presence-r", Some(good), Some(cd))).unwrap();
        let Grant::Join {
            member: Some(m), ..
        } = grant
        else {
            panic!("{grant:?}")
        };
        assert_eq!((m.user_id.as_str(), m.user_info), ("u1", json!({"n": 1})));

        let info = json!({"name": "A"});
        let mut r = req(&c);
        r.signed_in = Some(("me", &info));
        let good = token(&c, "1.2:presence-r");
        let grant = authorize(&r, &data("presence-r", Some(good.clone()), None)).unwrap();
        assert!(matches!(grant, Grant::Join { member: Some(m), .. } if m.user_id == "me"));
        let refused = authorize(&req(&c), &data("presence-r", Some(good), None));
        assert_eq!(refused.unwrap_err().status(), 401, "as before the refactor");
    }

    #[test]
    fn user_channel_only_for_its_own_user() {
        let c = config();
        let info = json!({});
        let mut r = req(&c);
        r.signed_in = Some(("7", &info));
        assert_eq!(
            authorize(&r, &data("#server-to-user-7", None, None)),
            Ok(Grant::UserChannel)
        );
        let other = authorize(&r, &data("#server-to-user-8", None, None)).unwrap_err();
        assert_eq!(other.status(), 403);
    }

    #[test]
    fn the_per_connection_cap_refuses_with_429_before_any_signature_work() {
        let mut c = config();
        c.limits.max_channels_per_connection = 2;
        let mut r = req(&c);
        r.subscribed = 2;
        let err = authorize(&r, &data("news", None, None)).unwrap_err();
        assert_eq!(err, Refusal::TooManyChannels { max: 2 });
        assert_eq!((err.kind(), err.status()), ("LimitReached", 429));
        assert!(err.message("news").contains("at most 2 channels"));
        r.subscribed = 1;
        assert!(authorize(&r, &data("news", None, None)).is_ok());
    }

    #[test]
    fn names_and_duplicates_are_checked_first() {
        let c = config();
        let err = authorize(&req(&c), &data("bad name", None, None)).unwrap_err();
        assert_eq!((err.kind(), err.status()), ("InvalidChannel", 4009));
        let mut r = req(&c);
        r.duplicate = true;
        assert_eq!(
            authorize(&r, &data("news", None, None)),
            Err(Refusal::Duplicate)
        );
    }

    #[test]
    fn oversized_member_info_is_a_limit_not_an_auth_error() {
        let mut c = config();
        c.limits.max_presence_member_size_bytes = 10;
        let cd = r#"{"user_id":"u","user_info":{"name":"a long name"}}"#;
        let good = token(&c, &format!("1.2:presence-r:{cd}"));
        let err = authorize(&req(&c), &data("presence-r", Some(good), Some(cd))).unwrap_err();
        assert_eq!((err.kind(), err.status()), ("LimitReached", 4301));
    }
}
