//! The admin SPA, embedded at build time by `build.rs` and served under `/admin/`.
//! Unknown paths under `/admin/` get `index.html` so client-side routes survive a reload.
//! The page has no inline script or style, so that its Content-Security-Policy can forbid
//! them: the loader is `boot.js` (see `http::PANEL_CSP`).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const INDEX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/index.html"));
const JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/admin_ui.js"));
const WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/admin_ui_bg.wasm"));
const CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/style.css"));
/// Starts the WebAssembly app. The library form of wasm-bindgen leaves out the glue's default
/// wasm URL, so the loader names the file.
const BOOT: &[u8] = b"import init from '/admin/admin_ui.js';\n\
    init({ module_or_path: '/admin/admin_ui_bg.wasm' });\n";

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
        "boot.js" => (BOOT, "text/javascript; charset=utf-8"),
        _ => (INDEX, "text/html; charset=utf-8"),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}
