//! Native TLS: `wss://` and `https://` on one port, certificates swapped while clients stay
//! connected, and the plain-HTTP redirect.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reverb_pusher_tests::{Client, TestServer};
use serde_json::json;

/// A fresh self-signed certificate for 127.0.0.1, written as PEM; returns its DER for clients.
fn write_cert(dir: &Path) -> Vec<u8> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    // Written to temporary names and renamed, as certificate renewal tools do.
    std::fs::write(dir.join("cert.pem.tmp"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem.tmp"), cert.signing_key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("key.pem.tmp"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.pem.tmp"), dir.join("cert.pem")).unwrap();
    cert.cert.der().to_vec()
}

/// An HTTP/WebSocket client that trusts exactly this certificate.
fn client_trusting(der: &[u8]) -> awc::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.to_vec().into()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(config)))
        .timeout(Duration::from_secs(5))
        .finish()
}

async fn tls_server(
    dir: &Path,
    settings: impl FnOnce(&mut reverb_pusher::settings::Settings),
) -> TestServer {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    TestServer::start_with(
        move |s| {
            s.tls_cert_file = Some(cert.display().to_string());
            s.tls_key_file = Some(key.display().to_string());
            s.tls_reload_secs = 1;
            settings(s);
        },
        |_| {},
    )
    .await
}

async fn wss(server: &TestServer, client: &awc::Client) -> Client {
    let url = format!(
        "wss://{}/app/{}?protocol=7",
        server.server.addr, server.app.key
    );
    let mut ws = Client::open_with(client.ws(url)).await;
    ws.established().await;
    ws
}

/// Triggers over https with a signed request.
async fn trigger(server: &TestServer, client: &awc::Client, channel: &str, data: &str) -> u16 {
    let rest = server.rest();
    let path = format!("/apps/{}/events", server.app.id);
    let body = json!({"name": "tls-event", "channel": channel, "data": data}).to_string();
    let query = rest.signed_query("POST", &path, &[], body.as_bytes());
    let url = format!("https://{}{path}?{query}", server.server.addr);
    let response = client
        .post(url)
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .unwrap();
    response.status().as_u16()
}

#[actix_rt::test]
async fn wss_client_connects_and_receives_events() {
    let dir = tempfile::tempdir().unwrap();
    let der = write_cert(dir.path());
    let server = tls_server(dir.path(), |_| {}).await;
    let https = client_trusting(&der);
    let mut ws = wss(&server, &https).await;
    ws.subscribe("secure").await;
    assert_eq!(trigger(&server, &https, "secure", "over tls").await, 200);
    assert_eq!(ws.expect_event("tls-event").await["data"], "over tls");
    // Plain HTTP on the TLS port is not served.
    assert!(awc::Client::new()
        .get(server.http_url("/up"))
        .send()
        .await
        .is_err());
}

#[actix_rt::test]
async fn certificate_swap_is_picked_up_while_clients_stay_connected() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let server = tls_server(dir.path(), |_| {}).await;
    let old_client = client_trusting(&first);
    let mut connected = wss(&server, &old_client).await;
    connected.subscribe("renewal").await;

    let second = write_cert(dir.path());
    let new_client = client_trusting(&second);
    let url = format!("wss://{}/app/{}", server.server.addr, server.app.key);
    let mut swapped = false;
    for _ in 0..40 {
        if new_client.ws(url.as_str()).connect().await.is_ok() {
            swapped = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swapped, "new handshakes present the new certificate");
    // A fresh client (no TLS session to resume) that trusts only the old certificate fails.
    let stale = client_trusting(&first);
    assert!(
        stale.ws(url.as_str()).connect().await.is_err(),
        "and no longer the old one"
    );

    // The connection made before the swap is untouched.
    assert_eq!(
        trigger(&server, &new_client, "renewal", "after swap").await,
        200
    );
    assert_eq!(
        connected.expect_event("tls-event").await["data"],
        "after swap"
    );
}

#[actix_rt::test]
async fn plain_http_listener_redirects_to_https() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = tls_server(dir.path(), move |s| s.http_redirect_port = port).await;
    let response = awc::Client::builder()
        .disable_redirects()
        .finish()
        .get(format!("http://127.0.0.1:{port}/admin/?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 308);
    let location = response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        location,
        format!("https://127.0.0.1:{}/admin/?x=1", server.server.addr.port())
    );
}
