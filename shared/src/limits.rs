//! Per-app limits: the one declaration of every limit, its default, its accepted range and the
//! words people read about it.
//!
//! [`declare_limits!`] takes each limit once (`field: default, min, max, label, help`) and
//! generates everything that used to repeat the list by hand in five places: the [`AppLimits`]
//! struct (the server's in-memory config, the stored JSON, the API body and the settings table
//! `[default_app_limits]`, with a `utoipa` schema behind the `openapi` feature), its `Default`,
//! the [`AppLimitsPatch`] of the admin API, the [`LIMITS`] table the panel builds its form from,
//! access by field name, and range-checked patching that names the offending field.
//!
//! Adding a limit is one entry below, and no migration: the server stores the limits as one JSON
//! object, and a stored object without the new field reads its default (`#[serde(default)]`).
//! (A settings test then asks for the new line in `reverb-pusher.example.toml`.) Renaming or
//! removing a limit does need a migration that rewrites the stored objects.
//!
//! This module is plain Rust with serde only, so it compiles to wasm32 for the panel.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One per-app limit: its field in [`AppLimits`], a label and help for people, its range and
/// its built-in default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSpec {
    pub field: &'static str,
    /// `limits.<field>`: how API errors and the panel name the field.
    pub path: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

/// A limit value outside its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitError {
    pub spec: &'static LimitSpec,
    pub value: u32,
}

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} must be between {} and {}",
            self.spec.path, self.spec.min, self.spec.max
        )
    }
}

impl std::error::Error for LimitError {}

impl LimitSpec {
    /// Whether this limit is an on/off switch (range 0..=1); the panel shows a checkbox.
    pub const fn is_switch(&self) -> bool {
        self.min == 0 && self.max == 1
    }

    /// The value if it is in range.
    pub fn check(&'static self, value: u32) -> Result<u32, LimitError> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(LimitError { spec: self, value })
        }
    }
}

/// Generates the limit types from one list. See the module documentation.
macro_rules! declare_limits {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: default = $default:expr, min = $min:expr, max = $max:expr,
            label = $label:literal, help = $help:literal;
    )+) => {
        /// Per-app limits. Missing fields (in JSON, TOML or the database) take their defaults.
        #[cfg_attr(feature = "openapi", derive(ToSchema))]
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct AppLimits {
            $( $(#[doc = $doc])* pub $field: u32, )+
        }

        impl Default for AppLimits {
            fn default() -> Self {
                Self { $( $field: $default, )+ }
            }
        }

        /// Changes to limits; absent fields stay as they are.
        #[cfg_attr(feature = "openapi", derive(ToSchema))]
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct AppLimitsPatch {
            $(
                $(#[doc = $doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<u32>,
            )+
        }

        /// How many limits there are.
        pub const LIMIT_COUNT: usize = [$(stringify!($field)),+].len();

        /// Every limit with the range the server accepts, in declaration order.
        pub const LIMITS: [LimitSpec; LIMIT_COUNT] = [$(
            LimitSpec {
                field: stringify!($field),
                path: concat!("limits.", stringify!($field)),
                label: $label,
                help: $help,
                min: $min,
                max: $max,
                default: $default,
            },
        )+];

        impl AppLimits {
            /// A limit's value by field name.
            pub fn get(&self, field: &str) -> Option<u32> {
                match field {
                    $( stringify!($field) => Some(self.$field), )+
                    _ => None,
                }
            }

            /// Sets a limit by field name, unchecked; false for an unknown field.
            pub fn set(&mut self, field: &str, value: u32) -> bool {
                match field {
                    $( stringify!($field) => self.$field = value, )+
                    _ => return false,
                }
                true
            }

            /// Checks every limit against its range; the error names the first one outside.
            pub fn validate(&self) -> Result<(), LimitError> {
                for spec in &LIMITS {
                    spec.check(self.get(spec.field).unwrap_or(spec.default))?;
                }
                Ok(())
            }

            /// These limits with `patch` applied, every changed value checked first: on an
            /// error nothing is changed and the error names the field.
            pub fn patched(&self, patch: &AppLimitsPatch) -> Result<Self, LimitError> {
                let mut next = self.clone();
                for spec in &LIMITS {
                    if let Some(value) = patch.get(spec.field) {
                        next.set(spec.field, spec.check(value)?);
                    }
                }
                Ok(next)
            }
        }

        impl AppLimitsPatch {
            /// A change by field name.
            pub fn get(&self, field: &str) -> Option<u32> {
                match field {
                    $( stringify!($field) => self.$field, )+
                    _ => None,
                }
            }

            /// Sets a limit by field name; false for an unknown field.
            pub fn set(&mut self, field: &str, value: u32) -> bool {
                match field {
                    $( stringify!($field) => self.$field = Some(value), )+
                    _ => return false,
                }
                true
            }
        }
    };
}

declare_limits! {
    /// Concurrent connections for this app on this node; 0 means unlimited.
    max_connections: default = 0, min = 0, max = 10_000_000,
        label = "Max connections", help = "0 means unlimited";
    /// Client events a connection may send each second; 0 means unlimited.
    max_client_events_per_second: default = 10, min = 0, max = 100_000,
        label = "Client events per second, per connection", help = "0 means unlimited";
    /// Characters in a channel name.
    max_channel_name_length: default = 200, min = 1, max = 1024,
        label = "Max channel name length", help = "characters";
    /// Characters in an event name.
    max_event_name_length: default = 200, min = 1, max = 1024,
        label = "Max event name length", help = "characters";
    /// Bytes of `data` in one event (REST or client event).
    max_event_payload_bytes: default = 10 * 1024, min = 1, max = 10 * 1024 * 1024,
        label = "Max event payload", help = "bytes";
    /// Channels one triggered event may name.
    max_event_channels_at_once: default = 100, min = 1, max = 1000,
        label = "Channels per triggered event", help = "";
    /// Events in one batch trigger.
    max_event_batch_size: default = 10, min = 1, max = 1000,
        label = "Events per batch", help = "";
    /// Members of one presence channel.
    max_presence_members: default = 100, min = 1, max = 100_000,
        label = "Members per presence channel", help = "";
    /// Bytes of a presence member's serialised `user_info`.
    max_presence_member_size_bytes: default = 1024, min = 1, max = 64 * 1024,
        label = "Presence member info size", help = "bytes";
    /// Characters in a user id.
    max_user_id_length: default = 128, min = 1, max = 1024,
        label = "Max user id length", help = "characters";
    /// How long a cache channel keeps its last event, in seconds.
    cache_ttl_secs: default = 30 * 60, min = 1, max = 7 * 86_400,
        label = "Cache channel TTL", help = "seconds";
    /// Channels one connection may be subscribed to at once.
    max_channels_per_connection: default = 100, min = 1, max = 10_000,
        label = "Channels per connection", help = "";
    /// Occupied channels the app may have on this node at once; 0 means unlimited.
    max_channels: default = 0, min = 0, max = 10_000_000,
        label = "Max occupied channels", help = "0 means unlimited";
    /// New connections the app accepts each second (a burst of as many); over it a connection
    /// is closed with 4100 and pusher-js retries after a back-off. 0 means unlimited.
    max_new_connections_per_second: default = 0, min = 0, max = 1_000_000,
        label = "New connections per second", help = "0 means unlimited";
    /// New connections the app accepts each second from one client address (an IPv6 address
    /// counts by its /64); closed with 4100 over it. 0 means unlimited.
    max_new_connections_per_second_per_ip: default = 0, min = 0, max = 1_000_000,
        label = "New connections per second, per client address", help = "0 means unlimited";
    /// Events the REST API accepts each second: one per channel of each triggered event, one
    /// per batch item. Over it: 429. 0 means unlimited.
    max_backend_events_per_second: default = 0, min = 0, max = 10_000_000,
        label = "API events per second", help = "0 means unlimited";
    /// `GET` requests to the REST API each second. Over it: 429. 0 means unlimited.
    max_read_requests_per_second: default = 0, min = 0, max = 10_000_000,
        label = "API read requests per second", help = "0 means unlimited";
    /// Client events the whole app may send each second, all connections together; 0 means
    /// unlimited.
    max_app_client_events_per_second: default = 0, min = 0, max = 10_000_000,
        label = "Client events per second, whole app", help = "0 means unlimited";
    /// What a client event over a rate limit does: 0 drops it with `pusher:error` 4301, 1 also
    /// closes the connection with 4301 (pusher-js does not reconnect after it).
    close_on_client_event_excess: default = 0, min = 0, max = 1,
        label = "Close connections that exceed a client-event limit",
        help = "off: the event is dropped with pusher:error 4301; on: the connection is also closed with 4301";
    /// Subscribe attempts one connection may make each second; over it the attempt gets
    /// `pusher:subscription_error` with status 429. 0 means unlimited.
    max_subscriptions_per_second_per_connection: default = 0, min = 0, max = 100_000,
        label = "Subscribe attempts per second, per connection", help = "0 means unlimited";
    /// Subscribe attempts the whole app may receive each second; 0 means unlimited.
    max_subscriptions_per_second: default = 0, min = 0, max = 10_000_000,
        label = "Subscribe attempts per second, whole app", help = "0 means unlimited";
    /// Messages (counted as Pusher counts them) the app may use each UTC day; once used, API
    /// events answer 429 until the next day. 0 means no quota.
    max_messages_per_day: default = 0, min = 0, max = u32::MAX,
        label = "Messages per day (quota)", help = "UTC days; 0 means no quota";
    /// Messages the app may use each UTC calendar month; 0 means no quota.
    max_messages_per_month: default = 0, min = 0, max = u32::MAX,
        label = "Messages per month (quota)", help = "UTC months; 0 means no quota";
}

/// The range of a limit field (`None` for an unknown field).
pub fn limit_spec(field: &str) -> Option<&'static LimitSpec> {
    LIMITS.iter().find(|l| l.field == field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_is_reachable_by_name_and_its_default_is_in_range() {
        let mut patch = AppLimitsPatch::default();
        for spec in &LIMITS {
            assert!(spec.min <= spec.max, "{}", spec.field);
            assert_eq!(spec.path, format!("limits.{}", spec.field));
            assert_eq!(
                AppLimits::default().get(spec.field),
                Some(spec.default),
                "{}",
                spec.field
            );
            assert!(patch.set(spec.field, spec.max), "{}", spec.field);
        }
        AppLimits::default().validate().unwrap();
        let json = serde_json::to_value(&patch).unwrap();
        assert_eq!(json.as_object().unwrap().len(), LIMITS.len());
        let limits: AppLimits = serde_json::from_value(json).unwrap();
        for spec in &LIMITS {
            assert_eq!(limits.get(spec.field), Some(spec.max));
        }
    }

    #[test]
    fn patching_checks_ranges_and_names_the_field() {
        let limits = AppLimits::default();
        let patch = AppLimitsPatch {
            max_connections: Some(5),
            max_event_batch_size: Some(0),
            ..AppLimitsPatch::default()
        };
        let err = limits.patched(&patch).unwrap_err();
        assert_eq!(err.spec.path, "limits.max_event_batch_size");
        assert_eq!(
            err.to_string(),
            "limits.max_event_batch_size must be between 1 and 1000"
        );
        let patch = AppLimitsPatch {
            max_connections: Some(5),
            max_channels: Some(0),
            max_channels_per_connection: Some(10_000),
            ..AppLimitsPatch::default()
        };
        let next = limits.patched(&patch).unwrap();
        assert_eq!(
            (
                next.max_connections,
                next.max_channels,
                next.max_channels_per_connection
            ),
            (5, 0, 10_000)
        );
        assert_eq!(next.cache_ttl_secs, limits.cache_ttl_secs);
    }

    #[test]
    fn missing_fields_take_their_defaults() {
        // What a row stored before a limit existed looks like.
        let stored: AppLimits = serde_json::from_str(r#"{"max_connections": 7}"#).unwrap();
        assert_eq!(stored.max_connections, 7);
        assert_eq!(stored.max_channels_per_connection, 100);
        assert_eq!(stored.max_channels, 0);
    }
}
