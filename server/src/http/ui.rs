//! The admin SPA, embedded at build time by `build.rs` and served under `/admin/`.
//! Unknown paths under `/admin/` get `index.html` so client-side routes survive a reload.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const INDEX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/index.html"));
const JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/admin_ui.js"));
const WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/admin_ui_bg.wasm"));
const CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/style.css"));

pub async fn redirect_to_admin() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/admin/"))
        .finish()
}

pub async fn serve(path: web::Path<String>) -> HttpResponse {
    let (body, content_type) = match path.as_str() {
        "admin_ui.js" => (JS, "text/javascript; charset=utf-8"),
        "admin_ui_bg.wasm" => (WASM, "application/wasm"),
        "style.css" => (CSS, "text/css; charset=utf-8"),
        _ => (INDEX, "text/html; charset=utf-8"),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}
