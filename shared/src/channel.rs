//! Channel names: validation and classification.
//!
//! A channel's security kind comes from its prefix, checked in a fixed order with anchored
//! prefix tests; "cache" is an orthogonal flag. Classifying cache first would let
//! `private-cache-*` and `presence-cache-*` skip authorisation (a bug seen in another server).

/// The prefix of the per-user channel that user authentication subscribes to.
pub const USER_CHANNEL_PREFIX: &str = "#server-to-user-";

/// How a channel is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// No authorisation needed.
    Public,
    /// `private-`: signed `socket_id:channel`.
    Private,
    /// `private-encrypted-`: signed like private; the server relays ciphertext only.
    PrivateEncrypted,
    /// `presence-`: signed `socket_id:channel:channel_data`, with members.
    Presence,
    /// `#server-to-user-{id}`: only the connection signed in as `{id}` may subscribe.
    User,
}

/// A classified channel name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelName<'a> {
    pub name: &'a str,
    pub kind: ChannelKind,
    /// Whether the channel keeps its last event for new subscribers.
    pub cache: bool,
}

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelNameError {
    Empty,
    TooLong { max: usize },
    InvalidCharacters,
}

impl std::fmt::Display for ChannelNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("The channel name must not be empty."),
            Self::TooLong { max } => {
                write!(
                    f,
                    "The channel name is longer than the allowed {max} characters."
                )
            }
            Self::InvalidCharacters => {
                f.write_str("The channel name may contain only letters, digits and _ - = @ , . ;")
            }
        }
    }
}

impl std::error::Error for ChannelNameError {}

fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '@' | ',' | '.' | ';')
}

impl<'a> ChannelName<'a> {
    /// Classifies a name without validating it.
    pub fn classify(name: &'a str) -> Self {
        let (kind, rest) = if let Some(rest) = name.strip_prefix("private-encrypted-") {
            (ChannelKind::PrivateEncrypted, rest)
        } else if let Some(rest) = name.strip_prefix("private-") {
            (ChannelKind::Private, rest)
        } else if let Some(rest) = name.strip_prefix("presence-") {
            (ChannelKind::Presence, rest)
        } else if name.starts_with(USER_CHANNEL_PREFIX) {
            (ChannelKind::User, "")
        } else {
            (ChannelKind::Public, name)
        };
        let cache = rest.starts_with("cache-");
        Self { name, kind, cache }
    }

    /// Validates and classifies a name. `#` is accepted only as the user-channel prefix,
    /// followed by a non-empty id of allowed characters.
    pub fn parse(name: &'a str, max_len: usize) -> Result<Self, ChannelNameError> {
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if name.chars().count() > max_len {
            return Err(ChannelNameError::TooLong { max: max_len });
        }
        let checked = name.strip_prefix(USER_CHANNEL_PREFIX).unwrap_or(name);
        if checked.is_empty() || !checked.chars().all(allowed_char) {
            return Err(ChannelNameError::InvalidCharacters);
        }
        Ok(Self::classify(name))
    }

    /// Whether subscribing needs an `auth` signature.
    pub fn requires_auth(&self) -> bool {
        matches!(
            self.kind,
            ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence
        )
    }

    /// Whether clients may send `client-` events on the channel.
    pub fn allows_client_events(&self) -> bool {
        self.requires_auth()
    }

    pub fn is_presence(&self) -> bool {
        self.kind == ChannelKind::Presence
    }

    pub fn is_encrypted(&self) -> bool {
        self.kind == ChannelKind::PrivateEncrypted
    }

    /// For `#server-to-user-{id}`, the user id.
    pub fn user_id(&self) -> Option<&'a str> {
        self.name.strip_prefix(USER_CHANNEL_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_prefix_is_checked_before_cache() {
        let c = ChannelName::classify("private-cache-x");
        assert_eq!((c.kind, c.cache), (ChannelKind::Private, true));
        let c = ChannelName::classify("presence-cache-x");
        assert_eq!((c.kind, c.cache), (ChannelKind::Presence, true));
        assert!(c.requires_auth());
        let c = ChannelName::classify("private-encrypted-cache-x");
        assert_eq!((c.kind, c.cache), (ChannelKind::PrivateEncrypted, true));
        let c = ChannelName::classify("cache-x");
        assert_eq!((c.kind, c.cache), (ChannelKind::Public, true));
        assert!(!c.requires_auth());
    }

    #[test]
    fn prefixes_are_anchored() {
        let c = ChannelName::classify("my-private-cache-x");
        assert_eq!((c.kind, c.cache), (ChannelKind::Public, false));
        let c = ChannelName::classify("public-presence-x");
        assert_eq!(c.kind, ChannelKind::Public);
    }

    #[test]
    fn names_are_validated() {
        assert!(ChannelName::parse("a-b_c=d@e,f.g;h", 200).is_ok());
        assert_eq!(ChannelName::parse("", 200), Err(ChannelNameError::Empty));
        assert_eq!(
            ChannelName::parse("a b", 200),
            Err(ChannelNameError::InvalidCharacters)
        );
        assert_eq!(
            ChannelName::parse("#other", 200),
            Err(ChannelNameError::InvalidCharacters)
        );
        assert_eq!(
            ChannelName::parse(&"a".repeat(201), 200),
            Err(ChannelNameError::TooLong { max: 200 })
        );
        let u = ChannelName::parse("#server-to-user-42", 200).unwrap();
        assert_eq!((u.kind, u.user_id()), (ChannelKind::User, Some("42")));
        assert!(ChannelName::parse("#server-to-user-", 200).is_err());
    }
}
