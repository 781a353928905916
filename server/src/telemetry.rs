//! Log output: `tracing` with an `EnvFilter`, human-readable or JSON lines.

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, Settings};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log_level`.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // A second init (tests starting several servers) keeps the first subscriber.
    let _ = result;
}
