//! The `reverb-pusher` binary: everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    reverb_pusher::cli::run(std::env::args_os())
}
