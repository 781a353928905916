//! Types shared by the server, the admin UI (compiled to wasm32) and the tests.
//!
//! This crate owns the Pusher wire vocabulary: close/error codes, channel-name classification
//! and the exact JSON of every server frame; the admin API's bodies; the one declaration of
//! the per-app limits ([`limits`]); the rules for credentials people choose ([`credentials`]).
//! It must stay free of server dependencies (actix, diesel) so that the admin UI can use it in
//! the browser.

pub mod admin;
pub mod channel;
pub mod chart;
pub mod codes;
pub mod credentials;
pub mod frames;
pub mod limits;
pub mod snippets;
pub mod stats;
pub mod transfer;
pub mod webhooks;

pub use channel::{ChannelKind, ChannelName};
pub use codes::{CloseCode, Closing};
