//! Pusher close and error codes, grouped by the ranges that decide how clients reconnect.
//!
//! 4000-4099: do not reconnect with the same parameters; 4100-4199: reconnect after a back-off;
//! 4200-4299: reconnect at once; 4300-4399: other errors, not connection-fatal.

/// A Pusher error code, sent in `pusher:error` and, for fatal errors, as the WebSocket close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    // 4000-4099: the client must not reconnect with the same parameters.
    /// The app only accepts TLS connections.
    TlsOnly,
    /// No app has this key.
    AppNotFound,
    /// The app exists but is switched off.
    AppDisabled,
    /// The app is over its own connection limit.
    AppOverConnectionQuota,
    /// The path is not `/app/{key}`.
    PathNotFound,
    /// The `version` query parameter is malformed.
    InvalidVersionFormat,
    /// The `protocol` query parameter names a version this server does not speak.
    UnsupportedProtocol,
    /// The connection is not authorised (sign-in failure, auth timeout, origin refused,
    /// terminated by the app).
    Unauthorized,

    // 4100-4199: reconnect after a back-off.
    /// The node is over capacity, or the client reads too slowly to keep up.
    OverCapacity,

    // 4200-4299: reconnect at once.
    /// The server is going away (shutdown, restart).
    Reconnect,
    /// A server ping got no pong in time.
    PongTimeout,
    /// Closed after a long inactivity.
    InactivityTimeout,

    // 4300-4399: other, non-fatal errors.
    /// A client event was refused by the rate limit or another client-event rule.
    ClientEventRejected,
    /// The watchlist was longer than allowed; the extra ids were dropped.
    WatchlistTooLong,
}

impl CloseCode {
    /// The numeric code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            Self::TlsOnly => 4000,
            Self::AppNotFound => 4001,
            Self::AppDisabled => 4003,
            Self::AppOverConnectionQuota => 4004,
            Self::PathNotFound => 4005,
            Self::InvalidVersionFormat => 4006,
            Self::UnsupportedProtocol => 4007,
            Self::Unauthorized => 4009,
            Self::OverCapacity => 4100,
            Self::Reconnect => 4200,
            Self::PongTimeout => 4201,
            Self::InactivityTimeout => 4202,
            Self::ClientEventRejected => 4301,
            Self::WatchlistTooLong => 4302,
        }
    }

    /// The code for a number, if it is one this server uses.
    pub const fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            4000 => Self::TlsOnly,
            4001 => Self::AppNotFound,
            4003 => Self::AppDisabled,
            4004 => Self::AppOverConnectionQuota,
            4005 => Self::PathNotFound,
            4006 => Self::InvalidVersionFormat,
            4007 => Self::UnsupportedProtocol,
            4009 => Self::Unauthorized,
            4100 => Self::OverCapacity,
            4200 => Self::Reconnect,
            4201 => Self::PongTimeout,
            4202 => Self::InactivityTimeout,
            4301 => Self::ClientEventRejected,
            4302 => Self::WatchlistTooLong,
            _ => return None,
        })
    }
}

/// Why the server closes a connection: each with its code and the words sent with it, named
/// once here so that every place that closes for the same reason says the same thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// The server is going away (drain): reconnect at once, elsewhere.
    Draining,
    /// The `protocol` query parameter names a version this server does not speak.
    UnsupportedProtocol,
    UnknownApp,
    AppDeleted,
    AppDisabled,
    AppOverQuota,
    OriginNotAllowed,
    /// The node holds as many connections as it may.
    NodeOverCapacity,
    /// The client read too slowly: its outbound queue reached its bound.
    SlowClient,
    /// "Authorized connections only", and the connection did not sign in or join a private
    /// channel in time.
    AuthTimeout,
    PongTimeout,
    /// The app terminated the user's connections through the REST API.
    Terminated,
    /// The app accepts no more new connections this second: reconnect after a back-off.
    AppConnectionRate,
    /// This client address opened more connections this second than the app accepts.
    AddressConnectionRate,
    /// The client kept sending client events over a rate limit, and the app closes such
    /// connections (`close_on_client_event_excess`).
    ClientEventFlood,
}

impl Closing {
    pub const ALL: [Self; 15] = [
        Self::Draining,
        Self::UnsupportedProtocol,
        Self::UnknownApp,
        Self::AppDeleted,
        Self::AppDisabled,
        Self::AppOverQuota,
        Self::OriginNotAllowed,
        Self::NodeOverCapacity,
        Self::SlowClient,
        Self::AuthTimeout,
        Self::PongTimeout,
        Self::Terminated,
        Self::AppConnectionRate,
        Self::AddressConnectionRate,
        Self::ClientEventFlood,
    ];

    pub const fn code(self) -> CloseCode {
        match self {
            Self::Draining => CloseCode::Reconnect,
            Self::UnsupportedProtocol => CloseCode::UnsupportedProtocol,
            Self::UnknownApp | Self::AppDeleted => CloseCode::AppNotFound,
            Self::AppDisabled => CloseCode::AppDisabled,
            Self::AppOverQuota => CloseCode::AppOverConnectionQuota,
            Self::OriginNotAllowed | Self::AuthTimeout | Self::Terminated => {
                CloseCode::Unauthorized
            }
            Self::NodeOverCapacity
            | Self::SlowClient
            | Self::AppConnectionRate
            | Self::AddressConnectionRate => CloseCode::OverCapacity,
            Self::ClientEventFlood => CloseCode::ClientEventRejected,
            Self::PongTimeout => CloseCode::PongTimeout,
        }
    }

    /// The words sent in `pusher:error` and the close frame (at most 123 bytes).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Draining => "Server is shutting down. Please reconnect shortly.",
            Self::UnsupportedProtocol => "Unsupported protocol version; this server speaks 4 to 7",
            Self::UnknownApp => "No app has this key.",
            Self::AppDeleted => "The app was deleted.",
            Self::AppDisabled => "The app is not enabled.",
            Self::AppOverQuota => "Application is over connection quota",
            Self::OriginNotAllowed => "Origin not allowed",
            Self::NodeOverCapacity => "The server is over capacity. Please reconnect later.",
            Self::SlowClient => "Client too slow: outbound buffer full",
            Self::AuthTimeout => "Connection not authorized within timeout.",
            Self::PongTimeout => "Pong reply not received in time",
            Self::Terminated => "You got disconnected by the app.",
            Self::AppConnectionRate => {
                "Too many new connections to this app right now. Please reconnect shortly."
            }
            Self::AddressConnectionRate => {
                "Too many new connections from your address. Please reconnect shortly."
            }
            Self::ClientEventFlood => "Client event rate limit exceeded; connection closed.",
        }
    }
}

/// What a WebSocket close code means, in words, for Pusher's codes and the common RFC 6455 ones.
pub fn close_code_meaning(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "the client went away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "closed without a code",
        1006 => "the connection dropped",
        1007 => "invalid UTF-8 in a text message",
        1008 => "policy violation",
        1009 => "message too large",
        1011 => "internal error",
        4000 => "the app only accepts TLS connections",
        4001 => "no app has this key",
        4003 => "the app is disabled",
        4004 => "the app is over its connection quota",
        4005 => "path not found",
        4006 => "invalid version format",
        4007 => "unsupported protocol version",
        4009 => "not authorized",
        4100 => "over capacity, or the client read too slowly",
        4200 => "the server asked the client to reconnect",
        4201 => "pong not received in time",
        4202 => "closed after inactivity",
        4301 => "client event rejected",
        4302 => "watchlist too long",
        _ => "unknown code",
    }
}

/// Whether a peer may send `code` in a close frame (RFC 6455 §7.4: 1000-1003, 1007-1014 and the
/// 3000-4999 ranges for libraries and applications). 1005, 1006 and 1015 only ever describe a
/// closure locally; anything else is a protocol error, answered with 1002 and never echoed.
pub const fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A bounded label for a close code, for metrics: the codes this server and common clients use
/// by number, `other` for the rest (a client picks its close code, so the label set must not
/// grow with what clients send), `none` when there was no code.
pub fn close_code_label(code: Option<u16>) -> &'static str {
    let Some(code) = code else { return "none" };
    match code {
        1000 => "1000",
        1001 => "1001",
        1002 => "1002",
        1003 => "1003",
        1005 => "1005",
        1006 => "1006",
        1007 => "1007",
        1008 => "1008",
        1009 => "1009",
        1011 => "1011",
        code => match CloseCode::from_code(code) {
            Some(known) => known.label(),
            None => "other",
        },
    }
}

impl CloseCode {
    /// The code as a static string (for metrics labels).
    pub const fn label(self) -> &'static str {
        match self {
            Self::TlsOnly => "4000",
            Self::AppNotFound => "4001",
            Self::AppDisabled => "4003",
            Self::AppOverConnectionQuota => "4004",
            Self::PathNotFound => "4005",
            Self::InvalidVersionFormat => "4006",
            Self::UnsupportedProtocol => "4007",
            Self::Unauthorized => "4009",
            Self::OverCapacity => "4100",
            Self::Reconnect => "4200",
            Self::PongTimeout => "4201",
            Self::InactivityTimeout => "4202",
            Self::ClientEventRejected => "4301",
            Self::WatchlistTooLong => "4302",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{close_code_label, is_valid_close_code, CloseCode};

    #[test]
    fn close_code_labels_are_bounded() {
        let mut labels = std::collections::HashSet::new();
        for code in 0..=u16::MAX {
            labels.insert(close_code_label(Some(code)));
        }
        labels.insert(close_code_label(None));
        assert!(labels.len() < 30, "{} labels", labels.len());
        assert_eq!(close_code_label(Some(4200)), "4200");
        assert_eq!(close_code_label(Some(3999)), "other");
        assert_eq!(close_code_label(Some(1000)), "1000");
        for code in 4000..4400 {
            if let Some(c) = CloseCode::from_code(code) {
                assert_eq!(c.label(), code.to_string());
            }
        }
    }

    #[test]
    fn closing_reasons_fit_a_close_frame() {
        use super::Closing;
        for closing in Closing::ALL {
            assert!(closing.reason().len() <= 123, "{closing:?}");
        }
        assert_eq!(Closing::SlowClient.code().code(), 4100);
        assert_eq!(Closing::Terminated.code().code(), 4009);
    }

    #[test]
    fn only_sendable_close_codes_are_valid() {
        for code in [1000, 1001, 1002, 1003, 1007, 1011, 3000, 4001, 4999] {
            assert!(is_valid_close_code(code), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert!(!is_valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn codes_round_trip() {
        for code in 4000..4400 {
            if let Some(c) = CloseCode::from_code(code) {
                assert_eq!(c.code(), code);
            }
        }
        assert_eq!(CloseCode::AppOverConnectionQuota.code(), 4004);
        assert_eq!(CloseCode::Unauthorized.code(), 4009);
    }
}
