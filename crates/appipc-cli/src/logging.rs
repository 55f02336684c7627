//! Logging setup shared by `appipc` and `appipcd`: a `tracing` subscriber on stderr, filtered
//! by `--log` when given, else `APPIPC_LOG`, else the caller's default; coloured only on a
//! terminal and without `NO_COLOR`.

pub(crate) fn init(filter: Option<&str>, default_level: &str) {
    use std::io::IsTerminal;
    let filter = match filter {
        Some(f) => tracing_subscriber::EnvFilter::new(f),
        None => tracing_subscriber::EnvFilter::try_from_env("APPIPC_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(std::io::stderr)
        .try_init();
}
