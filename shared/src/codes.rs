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

/// What a WebSocket close code means, in words, for Pusher's codes and the common RFC 6455 ones.
pub fn close_code_meaning(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "the client went away",
        1005 => "closed without a code",
        1006 => "the connection dropped",
        1009 => "message too large",
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

#[cfg(test)]
mod tests {
    use super::CloseCode;

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
