//! One module per page of the panel.

pub mod app;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod console;
pub mod import;
pub mod tokens;
pub mod users;
