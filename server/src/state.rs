//! What every HTTP handler shares: the app directory, the registry, this node's state, the
//! settings, the database and the app service. Built once in [`crate::start`]. (The admin
//! API's own memory, `admin::AdminState`, is registered beside it, so that this layer does not
//! depend on the admin layer above it.)

use std::sync::Arc;

use actix::Addr;

use crate::actors::directory::Directory;
use crate::actors::registry::AppRegistry;
use crate::db::Db;
use crate::node::NodeState;
use crate::settings::Settings;

/// Shared state of every handler (each HTTP worker holds a copy: the fields are handles).
#[derive(Clone)]
pub struct AppState {
    pub directory: Directory,
    pub registry: Addr<AppRegistry>,
    pub node: Arc<NodeState>,
    pub settings: Arc<Settings>,
    pub db: Db,
    /// The one place that changes apps.
    pub apps: crate::apps::AppService,
    /// Webhook endpoints, producers and delivery.
    pub webhooks: crate::webhooks::Webhooks,
    /// This node's cluster handle, in cluster mode.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Statistics: live numbers, recent errors, pending rows.
    pub stats: crate::stats::Stats,
}
