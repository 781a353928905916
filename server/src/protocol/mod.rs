//! The Pusher protocol's rules as plain functions: who may subscribe to what, what a sign-in
//! proves, which client events go out, how signatures are checked, how presence membership
//! counts.
//!
//! Nothing here knows about actors, sockets or time sources: each rule takes what it needs and
//! returns a typed decision, so every rule is unit-tested without an actix system, and the
//! session actor (`actors::session`) only routes frames and acts on the decisions.

pub mod client_event;
pub mod presence;
pub mod publish;
pub mod rate_limit;
pub mod signatures;
pub mod signin;
pub mod subscribe;
