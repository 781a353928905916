//! Builds the admin SPA (`admin-ui`, Leptos, wasm32) and stages it in `$OUT_DIR/ui` for
//! `include_bytes!`, so that `cargo run` alone produces the whole product; and builds the
//! documentation site (`docs/`, mdBook) into `$OUT_DIR/docs` with a generated table of its files
//! (`$OUT_DIR/docs_files.rs`), served under `/docs/`.
//!
//! The book needs the `mdbook` program (`REVERB_PUSHER_MDBOOK`, else `mdbook` on `PATH`;
//! `scripts/docs.sh` installs the pinned version). Without it the build still succeeds and
//! `/docs/` serves a page that says how to build the docs, unless `REVERB_PUSHER_REQUIRE_DOCS=1`
//! (the test suite and the Docker image set it), which makes a missing mdBook an error.
//!
//! The nested cargo uses its own target dir: sharing the outer one deadlocks on the build lock.
//! Set `REVERB_PUSHER_SKIP_UI=1` for quick `cargo check`/clippy runs; a placeholder is embedded.

use std::env;
use std::fmt::Write as _;
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

    stage_docs(&workspace, &out_dir);

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

/// Shown at `/docs/` by a binary built without mdBook.
const DOCS_PLACEHOLDER: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Reverb Pusher documentation</title></head><body>\
<h1>Reverb Pusher documentation</h1>\
<p>This binary was built without its documentation: the <code>mdbook</code> program was not \
found when it was compiled.</p>\
<p>To include the documentation, run <code>./scripts/docs.sh</code> in the repository (it \
installs the pinned mdBook with <code>cargo install</code> and builds the book), then build the \
server again (<code>cargo run --release</code>). The same pages are in the repository's \
<code>docs/src/</code> folder as Markdown.</p></body></html>\n";

/// Builds the book into `$OUT_DIR/docs` (or a placeholder page) and writes `docs_files.rs`: the
/// sorted table `DOCS_FILES` of every file's path and bytes, and `DOCS_BUILT`.
fn stage_docs(workspace: &Path, out_dir: &Path) {
    let docs_src = workspace.join("docs");
    println!("cargo:rerun-if-changed={}", docs_src.display());
    println!("cargo:rerun-if-env-changed=REVERB_PUSHER_MDBOOK");
    println!("cargo:rerun-if-env-changed=REVERB_PUSHER_REQUIRE_DOCS");
    let book = out_dir.join("docs");
    if book.exists() {
        fs::remove_dir_all(&book).expect("clear the old book");
    }
    let required = env::var_os("REVERB_PUSHER_REQUIRE_DOCS").is_some_and(|v| v != "0");
    let mdbook =
        env::var_os("REVERB_PUSHER_MDBOOK").map_or_else(|| PathBuf::from("mdbook"), PathBuf::from);
    let built = match Command::new(&mdbook).arg("--version").output() {
        Ok(out) if out.status.success() => {
            if let Ok(path) = which(&mdbook) {
                // A newer mdBook rebuilds the book.
                println!("cargo:rerun-if-changed={}", path.display());
            }
            let status = Command::new(&mdbook)
                .arg("build")
                .arg(&docs_src)
                .arg("--dest-dir")
                .arg(&book)
                .status()
                .expect("run mdbook");
            assert!(status.success(), "mdbook could not build docs/ (see above)");
            true
        }
        _ => {
            assert!(
                !required,
                "REVERB_PUSHER_REQUIRE_DOCS is set but `{}` was not found: run scripts/docs.sh",
                mdbook.display()
            );
            println!(
                "cargo:warning=mdbook not found: /docs/ will say how to build the documentation \
                 (run scripts/docs.sh, then build again)"
            );
            // Installing mdBook later (into cargo's bin folder) rebuilds with the book.
            let cargo_home = env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
            if let Some(bin) = cargo_home.map(|h| h.join("bin")).filter(|b| b.is_dir()) {
                println!("cargo:rerun-if-changed={}", bin.display());
            }
            fs::create_dir_all(&book).expect("create docs out dir");
            fs::write(book.join("index.html"), DOCS_PLACEHOLDER).expect("write placeholder");
            false
        }
    };
    let mut files = Vec::new();
    collect_files(&book, &book, &mut files);
    files.sort();
    let mut table = format!(
        "/// Whether the book was built (false: the placeholder page only).\n\
         pub const DOCS_BUILT: bool = {built};\n\
         /// Every file of the book: its path under `/docs/` and its bytes, sorted by path.\n\
         pub static DOCS_FILES: &[(&str, &[u8])] = &[\n"
    );
    for (rel, abs) in files {
        let _ = writeln!(table, "    ({rel:?}, include_bytes!({abs:?})),");
    }
    table.push_str("];\n");
    fs::write(out_dir.join("docs_files.rs"), table).expect("write docs_files.rs");
}

/// Every file under `dir`, as (path relative to `root` with `/`, absolute path).
fn collect_files(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).expect("read the book") {
        let path = entry.expect("book entry").path();
        if path.is_dir() {
            collect_files(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("under the book");
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((rel, path.display().to_string()));
        }
    }
}

/// The full path of a program named without a folder, by `PATH`.
fn which(program: &Path) -> Result<PathBuf, ()> {
    if program.components().count() > 1 {
        return Ok(program.to_owned());
    }
    env::split_paths(&env::var_os("PATH").ok_or(())?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}
