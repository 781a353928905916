//! Test support: start the real server on port 0 with a temporary `SQLite` database, a Pusher
//! WebSocket test client, and a signed REST client.

use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use awc::ws::{self, Frame};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use reverb_pusher::apps::AppConfig;
use reverb_pusher::settings::Settings;
use serde_json::{json, Value};
use sha2::Sha256;

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure a frame does *not* arrive.
pub const QUIET: Duration = Duration::from_millis(300);

pub mod cluster;
pub mod database;
mod outage;
mod proxy;
pub mod raw;

pub use database::TestDb;
pub use outage::DbOutage;
pub use proxy::Proxy;
pub use raw::RawSocket;

/// A running server with its temporary database.
pub struct TestServer {
    pub server: reverb_pusher::Server,
    pub app: AppConfig,
    /// The database URL the server was given.
    pub database_url: String,
    /// The settings the server was started with (to start another on the same database, or to
    /// open a CLI-style `AppService` on the same database and master key).
    pub settings: Settings,
    // Dropped after the server handle: the database goes last (shared by a cluster's nodes).
    _db: std::sync::Arc<TestDb>,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl TestServer {
    /// A server with default settings and one app.
    pub async fn start() -> Self {
        Self::start_with(|_| {}, |_| {}).await
    }

    /// A server whose settings and first app the test adjusts.
    pub async fn start_with(
        settings: impl FnOnce(&mut Settings),
        app: impl FnOnce(&mut AppConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDb::create(dir.path());
        let mut s = Settings {
            host: "127.0.0.1".into(),
            port: 0,
            database_url: db.url.clone(),
            master_key_file: dir.path().join("master.key").display().to_string(),
            // Two, as on a two-core machine: the app's supervisor runs on one of them, so a
            // test's connections alternate between its thread and the other one.
            workers: 2,
            ..Settings::default()
        };
        settings(&mut s);
        if std::env::var_os("TEST_LOG").is_some() {
            // `TEST_LOG=1` shows the server's own logs (filter with RUST_LOG).
            reverb_pusher::telemetry::init(&s);
        }
        let database_url = s.database_url.clone();
        let settings = s.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let server = reverb_pusher::start(s, listener)
            .await
            .expect("server starts");
        let mut config = AppConfig::generate("test");
        app(&mut config);
        let app = server.add_app(config).await.expect("app created");
        Self {
            server,
            app,
            database_url,
            settings,
            _db: std::sync::Arc::new(db),
            _dir: std::sync::Arc::new(dir),
        }
    }

    /// Another node on the same database and master key (cluster tests), with its own
    /// settings; the app is the one the first node created.
    // The guards are shared, never read: the last node dropped removes the database.
    #[allow(clippy::used_underscore_binding)]
    pub async fn join(&self, settings: impl FnOnce(&mut Settings)) -> Self {
        let mut s = self.settings.clone();
        settings(&mut s);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let server = reverb_pusher::start(s.clone(), listener)
            .await
            .expect("node starts");
        Self {
            server,
            app: self.app.clone(),
            database_url: self.database_url.clone(),
            settings: s,
            _db: self._db.clone(),
            _dir: self._dir.clone(),
        }
    }

    /// Shuts the server down (clients get 4200); the database folder lives until it is done.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Stops the server (a graceful shutdown) and starts a new one with the same settings on
    /// the same database, on a new port; the app is the same.
    pub async fn restart(self) -> Self {
        self.restart_on(TcpListener::bind("127.0.0.1:0").expect("bind"))
            .await
    }

    /// [`Self::restart`] on a listener the test opened (and may have connected to) first.
    pub async fn restart_on(self, listener: TcpListener) -> Self {
        let Self {
            server,
            app,
            database_url,
            settings,
            _db: db,
            _dir: dir,
        } = self;
        server.shutdown().await;
        let server = reverb_pusher::start(settings.clone(), listener)
            .await
            .expect("server restarts");
        Self {
            server,
            app,
            database_url,
            settings,
            _db: db,
            _dir: dir,
        }
    }

    pub fn ws_url(&self, key: &str) -> String {
        format!(
            "ws://{}/app/{key}?protocol=7&client=js&version=8.4.0&flash=false",
            self.server.addr
        )
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    /// Connects with `key` until `connection_established` arrives or `within` passes: for
    /// what reaches the server asynchronously (an app started, a place freed).
    pub async fn connect_within(&self, key: &str, within: Duration) -> Client {
        let deadline = std::time::Instant::now() + within;
        loop {
            let mut client = Client::open(&self.ws_url(key)).await;
            let frame = client.next_within(WAIT).await;
            if let Some(Received::Json(frame)) = &frame {
                if frame["event"] == "pusher:connection_established" {
                    return client;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no connection_established within {within:?}: {frame:?}"
            );
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Connects to the test app and waits for `connection_established`.
    pub async fn connect(&self) -> Client {
        let mut client = Client::open(&self.ws_url(&self.app.key)).await;
        client.established().await;
        client
    }

    /// A signed REST client for the test app.
    pub fn rest(&self) -> Rest {
        Rest {
            base: self.http_url(""),
            app_id: self.app.id.clone(),
            key: self.app.key.clone(),
            secret: self.app.secret.clone(),
        }
    }

    /// `key:signature` for a private channel.
    pub fn auth_private(&self, socket_id: &str, channel: &str) -> String {
        token(&self.app, &format!("{socket_id}:{channel}"))
    }

    /// `(auth, channel_data)` for a presence channel.
    pub fn auth_presence(
        &self,
        socket_id: &str,
        channel: &str,
        member: &Value,
    ) -> (String, String) {
        let data = member.to_string();
        (
            token(&self.app, &format!("{socket_id}:{channel}:{data}")),
            data,
        )
    }

    /// `(auth, user_data)` for `pusher:signin`.
    pub fn auth_user(&self, socket_id: &str, user: &Value) -> (String, String) {
        let data = user.to_string();
        (
            token(&self.app, &format!("{socket_id}::user::{data}")),
            data,
        )
    }
}

/// `key:hex(HMAC-SHA256(secret, message))`.
pub fn token(app: &AppConfig, message: &str) -> String {
    format!("{}:{}", app.key, hmac_hex(&app.secret, message))
}

pub fn hmac_hex(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// What the client saw next.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Closed(Option<u16>),
}

/// A WebSocket client speaking the Pusher protocol, as a test sees it.
pub struct Client {
    framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    pub socket_id: String,
    /// Payload bytes of the text frames sent and received so far (statistics tests compare).
    pub text_bytes_sent: u64,
    pub text_bytes_received: u64,
}

impl Client {
    /// Opens the socket without waiting for any frame.
    pub async fn open(url: &str) -> Self {
        Self::open_with(awc::Client::new().ws(url)).await
    }

    pub async fn open_with(request: awc::ws::WebsocketsRequest) -> Self {
        let (_, framed) = request
            .max_frame_size(1 << 20)
            .connect()
            .await
            .expect("WebSocket connects");
        Self {
            framed,
            socket_id: String::new(),
            text_bytes_sent: 0,
            text_bytes_received: 0,
        }
    }

    /// Waits for `connection_established` and records the socket id.
    pub async fn established(&mut self) -> Value {
        let frame = self.expect_event("pusher:connection_established").await;
        let data: Value =
            serde_json::from_str(frame["data"].as_str().expect("string data")).unwrap();
        data["socket_id"]
            .as_str()
            .unwrap()
            .clone_into(&mut self.socket_id);
        data
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.text_bytes_sent += text.len() as u64;
        self.framed
            .send(ws::Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    /// The next JSON frame or the close, answering protocol pings on the way.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        loop {
            let item = tokio::time::timeout(wait, self.framed.next()).await.ok()?;
            match item {
                None | Some(Err(_)) => return Some(Received::Closed(None)),
                Some(Ok(Frame::Text(bytes))) => {
                    self.text_bytes_received += bytes.len() as u64;
                    return Some(Received::Json(
                        serde_json::from_slice(&bytes).expect("JSON frame"),
                    ));
                }
                Some(Ok(Frame::Close(reason))) => {
                    return Some(Received::Closed(reason.map(|r| u16::from(r.code))))
                }
                Some(Ok(Frame::Ping(payload))) => {
                    let _ = self.framed.send(ws::Message::Pong(payload)).await;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next JSON frame; panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        match self.next_within(WAIT).await {
            Some(Received::Json(v)) => v,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Skips frames until one with this event arrives.
    pub async fn expect_event(&mut self, event: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["event"] == event {
                return frame;
            }
        }
    }

    /// Skips other frames until `event` arrives; panics if it does not within `wait`.
    pub async fn expect_event_within(&mut self, event: &str, wait: Duration) -> Value {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.next_within(left).await {
                Some(Received::Json(frame)) if frame["event"] == event => return frame,
                Some(Received::Json(_)) => {}
                other => panic!("expected {event} within {wait:?}, got {other:?}"),
            }
        }
    }

    /// Asserts that nothing arrives for a short while.
    pub async fn expect_silence(&mut self) {
        if let Some(r) = self.next_within(QUIET).await {
            panic!("expected silence, got {r:?}");
        }
    }

    /// Waits for the close frame, skipping other frames, and returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.next_within(WAIT).await {
                Some(Received::Closed(code)) => return code,
                Some(Received::Json(_)) => {}
                None => panic!("the connection was not closed"),
            }
        }
    }

    /// Expects `pusher:error` with this code, then a close with it.
    pub async fn expect_refusal(&mut self, code: u16) {
        let error = self.expect_event("pusher:error").await;
        assert_eq!(error["data"]["code"], code, "{error}");
        assert_eq!(self.expect_close().await, Some(code));
    }

    /// Sends a WebSocket ping and waits for the matching pong.
    pub async fn ping_protocol(&mut self, payload: &'static [u8]) {
        self.framed
            .send(ws::Message::Ping(payload.into()))
            .await
            .expect("send ping");
        loop {
            let item = tokio::time::timeout(WAIT, self.framed.next())
                .await
                .expect("pong in time");
            match item {
                Some(Ok(Frame::Pong(p))) => {
                    assert_eq!(&p[..], payload);
                    return;
                }
                Some(Ok(_)) => {}
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    }

    /// Sends a normal close frame.
    pub async fn close(&mut self) {
        let _ = self
            .framed
            .send(ws::Message::Close(Some(ws::CloseCode::Normal.into())))
            .await;
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": channel}}))
            .await;
        self.recv().await
    }

    pub async fn subscribe_with(&mut self, data: Value) -> Value {
        self.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
        self.recv().await
    }
}

/// Decodes the double-encoded `data` of a server frame.
pub fn data(frame: &Value) -> Value {
    match &frame["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        other => other.clone(),
    }
}

/// A REST client that signs requests the way the official SDKs do.
pub struct Rest {
    pub base: String,
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

/// A REST response: status, headers and JSON body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Value,
    pub headers: awc::http::header::HeaderMap,
}

impl Response {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Rest {
    /// Builds the signed query string for a request.
    pub fn signed_query(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        self.signed_query_at(method, path, params, body, &timestamp)
    }

    pub fn signed_query_at(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &[u8],
        timestamp: &str,
    ) -> String {
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        pairs.push(("auth_key".into(), self.key.clone()));
        pairs.push(("auth_timestamp".into(), timestamp.to_owned()));
        pairs.push(("auth_version".into(), "1.0".into()));
        if !body.is_empty() {
            pairs.push(("body_md5".into(), hex::encode(Md5::digest(body))));
        }
        pairs.sort();
        let to_sign = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let signature = hmac_hex(&self.secret, &format!("{method}\n{path}\n{to_sign}"));
        let encoded = serde_urlencoded::to_string(&pairs).unwrap();
        format!("{encoded}&auth_signature={signature}")
    }

    pub async fn raw(&self, method: &str, path: &str, query: &str, body: Vec<u8>) -> Response {
        let url = format!("{}{path}?{query}", self.base);
        let client = awc::Client::new();
        let request = match method {
            "GET" => client.get(url),
            _ => client
                .post(url)
                .insert_header(("content-type", "application/json")),
        };
        let mut response = request.send_body(body).await.expect("HTTP request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.body().limit(1 << 20).await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        Response {
            status,
            body,
            headers,
        }
    }

    pub async fn post(&self, endpoint: &str, body: &Value) -> Response {
        let path = format!("/apps/{}{endpoint}", self.app_id);
        let body = body.to_string().into_bytes();
        let query = self.signed_query("POST", &path, &[], &body);
        self.raw("POST", &path, &query, body).await
    }

    pub async fn get(&self, endpoint: &str, params: &[(&str, &str)]) -> Response {
        let path = format!("/apps/{}{endpoint}", self.app_id);
        let query = self.signed_query("GET", &path, params, b"");
        self.raw("GET", &path, &query, Vec::new()).await
    }

    pub async fn trigger(&self, channel: &str, event: &str, data: &str) -> Response {
        self.post(
            "/events",
            &json!({"name": event, "channel": channel, "data": data}),
        )
        .await
    }
}

/// An admin API client: logs in with a session cookie (and sends the CSRF token on writes) or
/// uses an API token.
#[derive(Clone, Default)]
pub struct Admin {
    pub base: String,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
    /// Sent as `X-Forwarded-For`, to act as another client behind a trusted proxy.
    pub forwarded_for: Option<String>,
}

/// An admin API response.
#[derive(Debug)]
pub struct AdminResponse {
    pub status: u16,
    pub body: Value,
    /// The body as text (CSV exports, say).
    pub text: String,
    pub headers: awc::http::header::HeaderMap,
}

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery";

impl TestServer {
    /// An admin client with no credentials.
    pub fn admin(&self) -> Admin {
        Admin {
            base: self.http_url("/admin/api"),
            ..Admin::default()
        }
    }

    /// Creates the first account through the setup token and returns its logged-in client.
    pub async fn admin_logged_in(&self) -> Admin {
        let token = self
            .server
            .admin
            .setup
            .current()
            .expect("setup token issued at start");
        let mut admin = self.admin();
        let response = admin
            .send("POST", "/setup", Some(json!({
                "token": token, "email": ADMIN_EMAIL, "name": "Admin", "password": ADMIN_PASSWORD
            })))
            .await;
        assert_eq!(response.status, 201, "{:?}", response.body);
        admin.adopt_session(&response);
        admin
    }
}

impl Admin {
    /// Keeps the session cookie and CSRF token of a login or setup response.
    pub fn adopt_session(&mut self, response: &AdminResponse) {
        let set_cookie = response
            .headers
            .get("set-cookie")
            .expect("session cookie")
            .to_str()
            .unwrap();
        self.cookie = Some(set_cookie.split(';').next().unwrap().to_owned());
        self.csrf = response.body["csrf_token"].as_str().map(str::to_owned);
    }

    pub async fn login(&mut self, email: &str, password: &str) -> AdminResponse {
        let response = self
            .send(
                "POST",
                "/login",
                Some(json!({"email": email, "password": password})),
            )
            .await;
        if response.status == 200 {
            self.adopt_session(&response);
        }
        response
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> AdminResponse {
        let url = format!("{}{path}", self.base);
        let client = awc::Client::new();
        let mut request = client.request(
            awc::http::Method::from_bytes(method.as_bytes()).unwrap(),
            url,
        );
        if let Some(cookie) = &self.cookie {
            request = request.insert_header(("cookie", cookie.clone()));
        }
        if let Some(csrf) = &self.csrf {
            request = request.insert_header(("x-csrf-token", csrf.clone()));
        }
        if let Some(token) = &self.bearer {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        if let Some(ip) = &self.forwarded_for {
            request = request.insert_header(("x-forwarded-for", ip.clone()));
        }
        let mut response = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        }
        .expect("admin request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.body().limit(4 << 20).await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        AdminResponse {
            status,
            body,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> AdminResponse {
        self.send("GET", path, None).await
    }

    /// The first `data:` of a server-sent event stream (its JSON), then the stream is dropped.
    pub async fn first_event(&self, path: &str) -> Value {
        let mut request = awc::Client::new().get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.insert_header(("cookie", cookie.clone()));
        }
        if let Some(token) = &self.bearer {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        let mut response = request.send().await.expect("event stream");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let mut text = String::new();
        while let Some(chunk) = response.next().await {
            text.push_str(&String::from_utf8_lossy(
                &chunk.expect("event stream chunk"),
            ));
            // An event ends with a blank line; the first one has the data.
            if let Some(end) = text.find("\n\n") {
                if let Some(data) = text[..end].lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(data).expect("event JSON");
                }
            }
        }
        panic!("{path}: the stream ended before an event: {text}");
    }

    pub async fn post(&self, path: &str, body: Value) -> AdminResponse {
        self.send("POST", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> AdminResponse {
        self.send("PATCH", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> AdminResponse {
        self.send("DELETE", path, None).await
    }
}
