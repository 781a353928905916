//! One module per page of the panel.

pub mod app;
pub mod app_stats;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod console;
pub mod dashboard;
pub mod import;
pub mod tokens;
pub mod users;
pub mod webhooks;
