//! This node's own state, shared by every app: the open-connection count, the draining flag
//! and the metrics registry. It depends on nothing but metrics, so every layer may read it.

use std::sync::atomic::{AtomicBool, AtomicUsize};

use crate::metrics::Metrics;

/// Node-wide state.
#[derive(Default)]
pub struct NodeState {
    /// Open WebSocket connections on this node, across apps.
    pub connections: AtomicUsize,
    /// Set when a shutdown starts: readiness turns false and new connections are refused.
    pub draining: AtomicBool,
    pub metrics: Metrics,
}
