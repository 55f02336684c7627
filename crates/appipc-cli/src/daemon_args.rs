//! The command line of `appipcd`, shared by both binaries: `appipcd` parses it, `appipc daemon`
//! takes the same options, and `appipc man` writes its manual page.

/// The version both binaries print: the crate's version and the broker protocol's
/// (`appipc_wire::frame::PROTOCOL_VERSION`; a unit test keeps the two equal).
pub(crate) const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (protocol 2)");

/// The protocol version written in [`VERSION`].
#[cfg(test)]
pub(crate) const VERSION_PROTOCOL: u32 = 2;

/// How the broker runs.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct DaemonArgs {
    /// Run in the foreground, logging to stderr. This is the default and the only mode:
    /// appipcd never forks into the background, so systemd (Type=notify), a terminal or
    /// `appipc` (which starts one when none answers) supervises it.
    #[arg(long)]
    pub(crate) foreground: bool,
    /// What to log, as a tracing filter: error, warn, info (the default), debug, trace, or
    /// per module (`info,appipc_broker::mech=debug`). Overrides APPIPC_LOG.
    #[arg(long, value_name = "FILTER")]
    pub(crate) log: Option<String>,
}

/// `appipcd`.
#[derive(clap::Parser, Debug)]
#[command(
    name = "appipcd",
    version = VERSION,
    about = "The per-user appipc broker: package identity, confinement and IPC mediation.",
    long_about = "The per-user appipc broker: installs and launches packaged apps confined in \
        app containers, knows who every process is, and decides every IPC access by the Windows \
        rules.\n\n\
        It listens on $APPIPC_RUNTIME_DIR/broker.sock (default $XDG_RUNTIME_DIR/appipc/), or on \
        the socket systemd passes it (socket activation: LISTEN_PID, LISTEN_FDS=1, fd 3), keeps \
        its state in $APPIPC_HOME (default $XDG_DATA_HOME/appipc) and tells systemd when it is \
        ready (NOTIFY_SOCKET: READY=1, Type=notify). One broker runs per user: a second one \
        exits at once (status 75, which the unit does not restart on). The units: appipc \
        systemd-units DIR.\n\n\
        Environment: APPIPC_HOME, APPIPC_RUNTIME_DIR, APPIPC_LOG (log filter), APPIPC_CONFIG \
        (broker.toml), APPIPC_ALLOW_UNCONFINED."
)]
pub(crate) struct Appipcd {
    #[command(flatten)]
    pub(crate) args: DaemonArgs,
}

/// The exit status of a broker that could not run: 75 (`EX_TEMPFAIL`) when another broker
/// already serves this user (the systemd unit does not restart on it), 78 (`EX_CONFIG`) for a
/// bad configuration file, 71 (`EX_OSERR`) otherwise.
pub(crate) fn exit_code(e: &appipc_broker::BrokerError) -> u8 {
    match e {
        appipc_broker::BrokerError::AlreadyRunning(_) => 75,
        e if e.to_string().starts_with("reading the configuration") => 78,
        _ => 71,
    }
}

/// Parses the command line; `--help` and `--version` print and exit 0, a usage error prints
/// and exits 64 (`EX_USAGE`), never clap's 2.
pub(crate) fn parse_or_exit<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(t) => t,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 64 } else { 0 });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_names_the_protocol_the_wire_crate_speaks() {
        assert_eq!(super::VERSION_PROTOCOL, appipc_wire::frame::PROTOCOL_VERSION);
        assert!(super::VERSION.ends_with(&format!("(protocol {})", super::VERSION_PROTOCOL)));
    }
}
