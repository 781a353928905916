//! The server binary, built with the integration tests so that a test can run a node as a
//! real process and kill it (`SIGKILL`), as the cluster's node-failure tests do.

fn main() -> std::process::ExitCode {
    reverb_pusher::cli::run(std::env::args_os())
}
