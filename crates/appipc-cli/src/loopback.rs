//! `appipc loopback`: loopback isolation between packages and its exemptions (Windows'
//! `CheckNetIsolation.exe LoopbackExempt`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Result;
use appipc::Session;
use clap::Subcommand;

use crate::{style, target};

/// `appipc loopback …`.
#[derive(Debug, Subcommand)]
pub(crate) enum LoopbackCommand {
    /// Say whether an app container of CLIENT (with --full-trust, a packaged full-trust process
    /// of it) may connect over loopback (127.0.0.1, ::1) to a listener of SERVER's app
    /// containers, and if not exactly what is missing on which side, with the manifest line.
    /// `-` names an unpackaged process. Exits 1 when the connect would be refused.
    Why {
        /// The client is a packaged full-trust (mediumIL) process of CLIENT: it reaches an app
        /// container of SERVER when SERVER was granted privateNetworkClientServer and its "in"
        /// rule names CLIENT (or serve-inbound runs for SERVER).
        #[arg(long)]
        full_trust: bool,
        /// The client package (family or full name), or `-`.
        client: String,
        /// The server package (family or full name), or `-`.
        server: String,
        /// The listener's port.
        port: Option<u16>,
    },
    /// Persistent outbound exemptions (`LoopbackExempt -a/-d/-s/-c`): an exempt package may
    /// connect out to loopback listeners that are not in an app container.
    #[command(subcommand)]
    Exempt(ExemptCommand),
    /// Let unpackaged clients connect in to PACKAGE's loopback listeners (127.0.0.1, ::1) while
    /// this command runs (`LoopbackExempt -is`); the connections it relayed outlive it.
    ///
    /// It listens on the host on each port the package's app containers listen on, and hands
    /// every connection it accepts, with a socket the broker connected to the listener in the
    /// package's network namespace, to a relay process of its own (`appipc loopback
    /// relay-inbound PFN PORT` in `ps`), which copies both ways until both sides have closed.
    /// Once this command ends (Ctrl+C, or killed, even with SIGKILL), new connections are
    /// refused at once; established ones go on until their ends close them. Each relay runs
    /// in its own session (a terminal's Ctrl+C does not reach it), holds nothing but its two
    /// sockets, and runs as nobody when started by root.
    ServeInbound {
        /// The package (family or full name).
        package: String,
    },
    /// One connection of `serve-inbound`, relayed (started by it, with the host client's
    /// connection at fd 3 and the socket in the package's namespace at fd 4; the arguments
    /// only say what it serves).
    #[command(hide = true)]
    RelayInbound {
        /// The package.
        package: String,
        /// The listener's port.
        port: u16,
    },
}

/// `appipc loopback exempt …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ExemptCommand {
    /// Exempt a package (`-a -n=PFN`); kept across broker restarts.
    Add {
        /// The package (family or full name).
        package: String,
    },
    /// Remove a package's exemption (`-d -n=PFN`).
    Remove {
        /// The package (family or full name).
        package: String,
    },
    /// List the exempt packages (`-s`).
    List,
    /// Remove every exemption (`-c`).
    Clear,
}

fn family(text: &str, command: &str) -> Result<Option<String>> {
    if text == "-" {
        return Ok(None);
    }
    Ok(Some(target::parse(text, command, target::Takes::Package)?.family_name().to_string()))
}

/// Runs `appipc loopback …`.
pub(crate) async fn run(session: &Session, command: LoopbackCommand) -> Result<ExitCode> {
    match command {
        LoopbackCommand::Why { full_trust, client, server, port } => {
            let client = family(&client, "loopback why")?;
            let server = family(&server, "loopback why")?;
            let v = match (full_trust, &client) {
                (true, Some(c)) => {
                    let s = server.as_deref().unwrap_or_default();
                    appipc::loopback::why_full_trust(session, c, s, port).await?
                }
                (true, None) => {
                    anyhow::bail!("loopback why --full-trust: the client must be a package, not -")
                }
                (false, _) => {
                    appipc::loopback::why(session, client.as_deref(), server.as_deref(), port)
                        .await?
                }
            };
            if style::json() {
                style::print_json(&v)?;
            } else {
                println!("{}", if v.allowed { "allowed" } else { "refused (ECONNREFUSED)" });
                println!("    rule     {}", v.rule);
                if let Some(r) = &v.remedy {
                    println!("    to allow {r}");
                }
                if let Some(m) = &v.manifest {
                    println!("    manifest {m}");
                }
            }
            return Ok(if v.allowed { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        LoopbackCommand::Exempt(c) => exempt(session, c).await?,
        LoopbackCommand::ServeInbound { package } => {
            let f = family(&package, "loopback serve-inbound")?.unwrap_or_default();
            serve_inbound(session, f).await?;
        }
        // Dispatched before a session or a runtime exists (main.rs), never here: fds 3 and 4
        // may be this process's own by now.
        LoopbackCommand::RelayInbound { .. } => {
            anyhow::bail!("loopback relay-inbound: only serve-inbound starts it")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `serve-inbound`: host listeners on the package's ports (looked up every half second), each
/// connection handed, with a socket the broker connected in the package's namespace, to a
/// relay process ([`relay_inbound`]).
async fn serve_inbound(session: &Session, family: String) -> Result<()> {
    let mut served = std::collections::HashSet::new();
    let mut said = false;
    loop {
        let ports = appipc::loopback::inbound_ports(session, &family).await?;
        if !said {
            eprintln!(
                "serving inbound loopback connections to {family} while this runs (Ctrl+C ends)"
            );
            said = true;
        }
        for port in ports {
            if !served.insert(port) {
                continue;
            }
            // Both loopback addresses, as a client may use either.
            for host in [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)] {
                let addr = SocketAddr::new(host, port);
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => {
                        eprintln!("listening on {addr}");
                        tokio::spawn(accept(session.clone(), family.clone(), port, l));
                    }
                    // A host without IPv6 loopback: 127.0.0.1 only.
                    Err(e)
                        if host.is_ipv6() && e.kind() == std::io::ErrorKind::AddrNotAvailable => {}
                    Err(e) => eprintln!("port {port}: cannot listen on {addr} on the host: {e}"),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Where a relay process finds the host client's connection and the socket in the package's
/// namespace.
const RELAY_CLIENT_FD: u32 = 3;
const RELAY_INSIDE_FD: u32 = 4;

/// Accepts on one host listener; each connection is relayed by a process of its own, so that
/// it outlives this one (the listener does not: it is only ever in this process).
async fn accept(session: Session, family: String, port: u16, listener: tokio::net::TcpListener) {
    let mut failing = false;
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                // Out of fds (EMFILE: every live relay costs this process its pidfd), or a
                // connection reset before it was taken: the listener stays, the connection
                // waits in the backlog meanwhile.
                if !failing {
                    eprintln!("port {port}: accepting failed ({e}); trying again");
                }
                failing = true;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        failing = false;
        let (session, family) = (session.clone(), family.clone());
        tokio::spawn(async move {
            let inside = match appipc::loopback::inbound_connect(&session, &family, port).await {
                Ok(fd) => fd,
                Err(e) => {
                    eprintln!("a connection to port {port} refused: {e}");
                    return;
                }
            };
            let Ok(client) = client.into_std() else { return };
            // Both fds move into the request: this process keeps no copy of either.
            match start_relay(&family, port, client.into(), inside) {
                Ok(relay) => reap(relay, port).await,
                Err(e) => eprintln!("a connection to port {port}: cannot start its relay: {e}"),
            }
        });
    }
}

/// Starts `appipc loopback relay-inbound FAMILY PORT` (this very program) with exactly the two
/// sockets (fds 3 and 4; 0–2 are `/dev/null`), no environment, in a session of its own: a
/// terminal's `^C` or hang-up for this command does not reach it.
fn start_relay(
    family: &str,
    port: u16,
    client: std::os::fd::OwnedFd,
    inside: std::os::fd::OwnedFd,
) -> Result<appipc_sys::process::Spawned> {
    use appipc_sys::process::SpawnRequest;
    let port = port.to_string();
    let args = ["loopback", "relay-inbound", family, &port].map(std::ffi::OsString::from).to_vec();
    Ok(appipc_sys::process::spawn(SpawnRequest {
        program: "/proc/self/exe".into(),
        args,
        cwd: "/".into(),
        fds: vec![(RELAY_CLIENT_FD, client), (RELAY_INSIDE_FD, inside)],
        new_session: true,
        ..Default::default()
    })?)
}

/// Waits for a relay to exit and reaps it (a relay left when this process ends is reaped by
/// whoever adopts it). One that failed says so here (its own stderr is `/dev/null`).
async fn reap(relay: appipc_sys::process::Spawned, port: u16) {
    if appipc_sys::aio::pidfd_exited(&relay.pidfd).await.is_err() {
        return;
    }
    if let Ok(Some(status)) = appipc_sys::process::try_reap(&relay.pidfd)
        && status.code != Some(0)
    {
        eprintln!(
            "the relay (pid {}) of a connection to port {port} ended with {status}",
            relay.pid
        );
    }
}

/// `relay-inbound`, the process that carries one connection of `serve-inbound`: takes its two
/// sockets, gives up root if it has it, and copies each way until both have ended.
pub(crate) fn relay_inbound() -> Result<()> {
    use anyhow::Context;
    let take = |n: u32| {
        appipc_sys::env::take_inherited_stream(n)
            .map(std::net::TcpStream::from)
            .with_context(|| format!("relay-inbound: taking the socket at fd {n}"))
    };
    let (client, inside) = (take(RELAY_CLIENT_FD)?, take(RELAY_INSIDE_FD)?);
    appipc_sys::cred::give_up_root().context("relay-inbound: giving up root")?;
    for s in [&client, &inside] {
        s.set_nonblocking(false).context("relay-inbound: making a socket blocking")?;
        // Each write goes on at once: the ends' own sockets decide about coalescing.
        let _ = s.set_nodelay(true);
    }
    std::thread::scope(|t| {
        t.spawn(|| pump(&client, &inside));
        pump(&inside, &client);
    });
    Ok(())
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s sending side (a half-close goes
/// through, the other way goes on). A reset or any other error on either side ends the whole
/// relay: exiting closes both sockets, which tells both peers (with a reset where data was left
/// unread). One fixed buffer: a peer that does not read stops the copy towards it, and the
/// other peer's writes block in turn.
fn pump(from: &std::net::TcpStream, to: &std::net::TcpStream) {
    use std::io::{ErrorKind, Read, Write};
    let mut buf = vec![0u8; 64 * 1024];
    let (mut from, mut to) = (from, to);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => std::process::exit(0),
        };
        if to.write_all(&buf[..n]).is_err() {
            std::process::exit(0);
        }
    }
    if to.shutdown(std::net::Shutdown::Write).is_err() {
        std::process::exit(0);
    }
}

async fn exempt(session: &Session, command: ExemptCommand) -> Result<()> {
    use appipc::loopback as l;
    match command {
        ExemptCommand::Add { package } => {
            let f = family(&package, "loopback exempt add")?.unwrap_or_default();
            l::add_exemption(session, &f).await?;
            style::say(&serde_json::json!({ "exempt": &f }), || format!("{f} is exempt"))?;
        }
        ExemptCommand::Remove { package } => {
            let f = family(&package, "loopback exempt remove")?.unwrap_or_default();
            let was = l::remove_exemption(session, &f).await?;
            style::say(&serde_json::json!({ "removed": was }), || {
                if was { format!("{f} is no longer exempt") } else { format!("{f} was not exempt") }
            })?;
        }
        ExemptCommand::List => {
            let all = l::exemptions(session).await?;
            if style::json() {
                style::print_json(&all)?;
            } else if all.is_empty() {
                println!("no exempt packages");
            } else {
                for f in all {
                    println!("{f}");
                }
            }
        }
        ExemptCommand::Clear => {
            let n = l::clear_exemptions(session).await?;
            style::say(&serde_json::json!({ "cleared": n }), || {
                format!("{n} exemption(s) removed")
            })?;
        }
    }
    Ok(())
}
