//! HTTP routes: the WebSocket entry point, the Pusher REST API and the embedded admin UI.

pub mod rest;
pub mod ui;
pub mod ws;

use std::sync::Arc;

use actix::Addr;
use actix_web::{web, HttpResponse, ResponseError};

use crate::actors::registry::{AppRegistry, Directory, NodeState};
use crate::db::Db;
use crate::error::ApiError;
use crate::settings::Settings;

/// Shared state of every handler.
pub struct AppState {
    pub directory: Directory,
    pub registry: Addr<AppRegistry>,
    pub node: Arc<NodeState>,
    pub settings: Arc<Settings>,
    pub db: Db,
    pub admin: Arc<crate::admin::AdminState>,
}

/// The route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/app/{key}", web::get().to(ws::connect_app))
        .service(
            web::scope("/apps/{app_id}")
                .route("/events", web::post().to(rest::trigger_event))
                .route("/batch_events", web::post().to(rest::trigger_batch))
                .route("/channels", web::get().to(rest::list_channels))
                .route("/channels/{channel_name}", web::get().to(rest::get_channel))
                .route(
                    "/channels/{channel_name}/users",
                    web::get().to(rest::list_channel_users),
                )
                .route(
                    "/users/{user_id}/terminate_connections",
                    web::post().to(rest::terminate_user_connections),
                ),
        )
        .configure(crate::admin::configure)
        .route("/up", web::get().to(up))
        .route("/", web::get().to(ui::redirect_to_admin))
        .route("/admin", web::get().to(ui::redirect_to_admin))
        .route("/admin/{path:.*}", web::get().to(ui::serve))
        .default_service(web::to(not_found));
}

/// Liveness: the process answers HTTP.
async fn up() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> HttpResponse {
    ApiError::not_found("No such route").error_response()
}
