//! Builds the admin SPA (`admin-ui`, Leptos, wasm32) and stages it in `$OUT_DIR/ui` for
//! `include_bytes!`, so that `cargo run` alone produces the whole product.
//!
//! The nested cargo uses its own target dir: sharing the outer one deadlocks on the build lock.
//! Set `REVERB_PUSHER_SKIP_UI=1` for quick `cargo check`/clippy runs; a placeholder is embedded.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const UI_FILES: [&str; 4] = ["index.html", "admin_ui.js", "admin_ui_bg.wasm", "style.css"];

fn main() {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let ui_out = out_dir.join("ui");
    fs::create_dir_all(&ui_out).expect("create ui out dir");
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("workspace root").to_owned();
    let ui_src = workspace.join("admin-ui");

    println!("cargo:rerun-if-env-changed=REVERB_PUSHER_SKIP_UI");
    for path in ["src", "Cargo.toml", "index.html", "style.css"] {
        println!("cargo:rerun-if-changed={}", ui_src.join(path).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("shared/src").display()
    );

    if env::var_os("REVERB_PUSHER_SKIP_UI").is_some_and(|v| v != "0") {
        write_placeholder(&ui_out);
        return;
    }

    // Release servers get the size-optimised SPA; debug builds keep the fast dev profile.
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let (profile, profile_dir) = if release {
        ("wasm-release", "wasm-release")
    } else {
        ("dev", "debug")
    };
    let target_dir = workspace.join("target").join("admin-ui");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "-p",
            "admin-ui",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("run cargo for the admin UI");
    assert!(
        status.success(),
        "building the admin UI failed; is the wasm32 target installed? \
         (`rustup target add wasm32-unknown-unknown`). Set REVERB_PUSHER_SKIP_UI=1 to skip it."
    );

    let wasm = target_dir
        .join("wasm32-unknown-unknown")
        .join(profile_dir)
        .join("admin-ui.wasm");
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)
        .expect("wasm-bindgen web target")
        .typescript(false)
        .out_name("admin_ui")
        .generate(&ui_out)
        .expect("wasm-bindgen glue generation");
    fs::write(ui_out.join("index.html"), index_html(&ui_src)).expect("write index.html");
    fs::copy(ui_src.join("style.css"), ui_out.join("style.css")).expect("copy style.css");
}

/// Trunk's `index.html` with its `data-trunk` links swapped for the files generated here.
fn index_html(ui_src: &Path) -> String {
    let trunk_index = fs::read_to_string(ui_src.join("index.html")).expect("read index.html");
    trunk_index
        .lines()
        .map(|line| {
            if line.contains("data-trunk") && line.contains("rel=\"rust\"") {
                // A file, not an inline script: the panel's Content-Security-Policy forbids
                // inline scripts (the server's `http/ui.rs` serves `boot.js`).
                "    <script type=\"module\" src=\"/admin/boot.js\"></script>".to_owned()
            } else if line.contains("data-trunk") && line.contains("rel=\"css\"") {
                "    <link rel=\"stylesheet\" href=\"/admin/style.css\" />".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn write_placeholder(ui_out: &Path) {
    for file in UI_FILES {
        let contents: &[u8] = if file == "index.html" {
            b"<!doctype html><title>Reverb Pusher</title><p>This build skipped the admin UI \
              (REVERB_PUSHER_SKIP_UI).</p>"
        } else {
            b""
        };
        fs::write(ui_out.join(file), contents).expect("write placeholder");
    }
}
