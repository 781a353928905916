//! The integration suite: one binary, each module one area of the protocol, every test
//! against a real server on a loopback port with its own temporary `SQLite` database.

mod integration {
    pub mod admin;
    pub mod admin_hardening;
    pub mod apps;
    pub mod channels;
    pub mod client_events;
    pub mod cluster;
    pub mod connection;
    pub mod console;
    pub mod docs;
    pub mod hardening;
    pub mod import_export;
    pub mod operations;
    pub mod presence;
    pub mod rate_limits;
    pub mod rest;
    pub mod stats;
    pub mod storage;
    pub mod tls;
    pub mod users;
    pub mod webhooks;
}
