//! The documentation site under `/docs/`: the embedded book (or, in a build without mdBook, the
//! page saying how to build it), with the right content types; nothing outside the book is
//! reachable, whatever the path; unknown pages are 404.

use reverb_pusher::http::docs::{DOCS_BUILT, DOCS_FILES};
use reverb_pusher_tests::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request with the path sent exactly as given (no client normalises it):
/// (status, content type, body).
async fn raw_get(server: &TestServer, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(server.server.addr)
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

#[actix_rt::test]
async fn docs_serve_the_book_index_with_content_types() {
    let server = TestServer::start().await;
    let (status, _, _) = raw_get(&server, "/docs").await;
    assert_eq!(status, 301);
    let (status, content_type, body) = raw_get(&server, "/docs/").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/html; charset=utf-8");
    if DOCS_BUILT {
        assert!(
            body.contains("<title>Introduction - Reverb Pusher</title>"),
            "{body}"
        );
        assert!(body.contains("getting-started.html"));
        for (path, expected) in [
            ("getting-started.html", "text/html; charset=utf-8"),
            ("reference/settings.html", "text/html; charset=utf-8"),
            ("css/general.css", "text/css; charset=utf-8"),
            ("searchindex.js", "text/javascript; charset=utf-8"),
            (
                "fonts/open-sans-v17-all-charsets-regular.woff2",
                "font/woff2",
            ),
            ("favicon.svg", "image/svg+xml"),
            ("reference/openapi.json", "application/json"),
            ("book.js", "text/javascript; charset=utf-8"),
        ] {
            let (status, content_type, _) = raw_get(&server, &format!("/docs/{path}")).await;
            assert_eq!((status, content_type.as_str()), (200, expected), "{path}");
        }
        // The generated settings reference made it into the served page.
        let (_, _, settings) = raw_get(&server, "/docs/reference/settings.html").await;
        assert!(settings.contains("REVERB_PUSHER_APP_SYNC_INTERVAL_MS"));
        // Every file of the book is served, byte for byte.
        for (path, bytes) in DOCS_FILES.iter().filter(|(p, _)| {
            std::path::Path::new(p)
                .extension()
                .is_some_and(|e| e == "html")
        }) {
            let (status, _, body) = raw_get(&server, &format!("/docs/{path}")).await;
            assert_eq!(status, 200, "{path}");
            assert_eq!(body.len(), bytes.len(), "{path}");
        }
    } else {
        assert!(body.contains("scripts/docs.sh"), "{body}");
    }
}

#[actix_rt::test]
async fn docs_refuse_paths_outside_the_book_and_unknown_pages() {
    let server = TestServer::start().await;
    for path in [
        "/docs/../Cargo.toml",
        "/docs/../../Cargo.toml",
        "/docs/%2e%2e/Cargo.toml",
        "/docs/%2E%2E%2FCargo.toml",
        "/docs/..%2fCargo.toml",
        "/docs/..%5cCargo.toml",
        "/docs/css/../../Cargo.toml",
        "/docs//etc/passwd",
        "/docs/%2fetc%2fpasswd",
        "/docs/../server/src/main.rs",
    ] {
        let (status, _, body) = raw_get(&server, path).await;
        assert!(matches!(status, 400 | 404), "{path}: {status}");
        assert!(
            !body.contains("[workspace]") && !body.contains("root:") && !body.contains("fn main"),
            "{path} leaked a file"
        );
    }
    let (status, content_type, body) = raw_get(&server, "/docs/no-such-page.html").await;
    assert_eq!(status, 404);
    if DOCS_BUILT {
        // The book's own "not found" page, with links back into the book.
        assert_eq!(content_type, "text/html; charset=utf-8");
        assert!(body.contains("Document not found"), "{body}");
    }
}
