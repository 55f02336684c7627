//! `appipcd`: the per-user appipc broker. Everything is in the `appipc-broker` library.

#[path = "../logging.rs"]
mod logging;

fn main() -> std::process::ExitCode {
    logging::init("info");
    match appipc_broker::run_daemon() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appipcd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
