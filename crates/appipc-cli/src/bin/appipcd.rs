//! `appipcd`: the per-user appipc broker. Everything is in the `appipc-broker` library.

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("APPIPC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match appipc_broker::run_daemon() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appipcd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
