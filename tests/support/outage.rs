//! A database outage a test can switch on and off: on PostgreSQL and MySQL a [`Proxy`] in front
//! of the database server drops every connection and refuses new ones; on SQLite another
//! connection holds the write lock (`BEGIN EXCLUSIVE`), so every write times out while reads
//! still work (WAL).

use std::net::{SocketAddr, ToSocketAddrs};

use diesel::connection::SimpleConnection;
use reverb_pusher::apps::AppConfig;
use reverb_pusher::settings::Settings;

use crate::{database, Proxy, TestServer};

pub struct DbOutage {
    proxy: Option<Proxy>,
    sqlite_path: Option<String>,
    lock: Option<diesel::SqliteConnection>,
}

/// Host and port of the database server named by a URL.
fn database_server(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let host_port = rest
        .split('?')
        .next()
        .unwrap()
        .rsplit_once('@')
        .map_or(rest, |(_, h)| h)
        .split('/')
        .next()
        .unwrap();
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else if url.starts_with("postgres") {
        format!("{host_port}:5432")
    } else {
        format!("{host_port}:3306")
    };
    with_port.to_socket_addrs().unwrap().next().unwrap()
}

/// The URL with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, tail) = rest.rsplit_once('@').map_or(("", rest), |(a, t)| (a, t));
    let path = tail.split_once('/').unwrap().1;
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!("{auth}@")
    };
    format!("{scheme}://{auth}{addr}/{path}")
}

impl DbOutage {
    /// A server (with a 1-second database timeout) whose database can be cut.
    pub async fn server(
        settings: impl FnOnce(&mut Settings) + 'static,
        app: impl FnOnce(&mut AppConfig),
    ) -> (TestServer, Self) {
        if database::backend() == "sqlite" {
            let server = TestServer::start_with(
                |s| {
                    settings(s);
                    s.database_timeout_secs = 1;
                },
                app,
            )
            .await;
            let path = server
                .database_url
                .strip_prefix("sqlite://")
                .unwrap()
                .to_owned();
            let outage = Self {
                proxy: None,
                sqlite_path: Some(path),
                lock: None,
            };
            return (server, outage);
        }
        let target = database_server(&std::env::var("TEST_DATABASE_URL").unwrap());
        let proxy = Proxy::start(target);
        let addr = proxy.addr;
        let server = TestServer::start_with(
            move |s| {
                settings(s);
                s.database_timeout_secs = 1;
                s.database_url = via(&s.database_url, addr);
            },
            app,
        )
        .await;
        let outage = Self {
            proxy: Some(proxy),
            sqlite_path: None,
            lock: None,
        };
        (server, outage)
    }

    /// The database stops taking writes (and, on server backends, answering at all).
    pub fn cut(&mut self) {
        if let Some(proxy) = &self.proxy {
            proxy.cut();
        } else if let Some(path) = &self.sqlite_path {
            let mut conn = crate::database::sqlite_connection(path);
            conn.batch_execute("BEGIN EXCLUSIVE").unwrap();
            self.lock = Some(conn);
        }
    }

    /// The database is back.
    pub fn restore(&mut self) {
        if let Some(proxy) = &self.proxy {
            proxy.restore();
        } else if let Some(mut conn) = self.lock.take() {
            conn.batch_execute("ROLLBACK").unwrap();
        }
    }
}
