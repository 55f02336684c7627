//! Logging setup shared by `appipc` and `appipcd`: a `tracing` subscriber on stderr, filtered
//! by `APPIPC_LOG` (default given by the caller), coloured only on a terminal.

pub(crate) fn init(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("APPIPC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
