//! The cluster's nodes for the panel: `GET /admin/api/cluster`.

use actix_web::{web, HttpResponse};
use shared::admin::{ClusterStatus, ErrorBody};

use super::auth::Principal;
use crate::cluster::Health;
use crate::error::ApiError;
use crate::state::AppState;

/// Cluster mode: this node's view of the cluster and every node in it (id, address,
/// connections, last heartbeat). On a single node, `enabled` is false and the list is empty.
#[utoipa::path(get, path = "/admin/api/cluster", tag = "cluster",
    responses((status = 200, body = ClusterStatus), (status = 401, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn status(_: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(HttpResponse::Ok().json(ClusterStatus {
            enabled: false,
            node_id: None,
            state: None,
            nodes: Vec::new(),
        }));
    };
    let nodes = match cluster.nodes().await {
        Ok(nodes) => nodes,
        Err(_) => vec![cluster.this_node()],
    };
    let health = match cluster.health() {
        Health::Healthy => "healthy",
        Health::Degraded => "degraded",
    };
    Ok(HttpResponse::Ok().json(ClusterStatus {
        enabled: true,
        node_id: Some(cluster.node_id().to_owned()),
        state: Some(health.to_owned()),
        nodes,
    }))
}
