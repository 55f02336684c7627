//! `appipcd`: the per-user appipc broker. Everything is in the `appipc-broker` library.

#[path = "../logging.rs"]
mod logging;

fn main() -> std::process::ExitCode {
    // The broker starts its session keeper from this same program.
    if let Some(code) = appipc_broker::keeper::main_if_keeper() {
        return code;
    }
    logging::init("info");
    match appipc_broker::run_daemon() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appipcd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
