//! `appipc loopback`: loopback isolation between packages and its exemptions (Windows'
//! `CheckNetIsolation.exe LoopbackExempt`).

use std::process::ExitCode;

use anyhow::Result;
use appipc::Session;
use clap::Subcommand;

use crate::{style, target};

/// `appipc loopback …`.
#[derive(Debug, Subcommand)]
pub(crate) enum LoopbackCommand {
    /// Say whether an app container of CLIENT may connect over loopback (127.0.0.1, ::1) to a
    /// listener of SERVER, and if not exactly what is missing on which side, with the manifest
    /// line. `-` names an unpackaged process. Exits 1 when the connect would be refused.
    Why {
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
    /// Let unpackaged clients connect in to PACKAGE's loopback listeners (127.0.0.1) while
    /// this command runs (`LoopbackExempt -is`): it listens on the host on each port the
    /// package's app containers listen on and relays every connection into the package's
    /// network namespace. Once it ends (Ctrl+C, or killed), new connections are refused;
    /// established ones go on while this process lives.
    ServeInbound {
        /// The package (family or full name).
        package: String,
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
        LoopbackCommand::Why { client, server, port } => {
            let client = family(&client, "loopback why")?;
            let server = family(&server, "loopback why")?;
            let v =
                appipc::loopback::why(session, client.as_deref(), server.as_deref(), port).await?;
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
    }
    Ok(ExitCode::SUCCESS)
}

/// `serve-inbound`: host listeners on the package's ports (looked up every half second), each
/// connection relayed to a socket the broker connected in the package's namespace.
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
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => {
                    eprintln!("listening on 127.0.0.1:{port}");
                    tokio::spawn(relay(session.clone(), family.clone(), port, l));
                }
                Err(e) => eprintln!("port {port}: cannot listen on the host: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn relay(session: Session, family: String, port: u16, listener: tokio::net::TcpListener) {
    while let Ok((mut client, _)) = listener.accept().await {
        let (session, family) = (session.clone(), family.clone());
        tokio::spawn(async move {
            let inside = match appipc::loopback::inbound_connect(&session, &family, port).await {
                Ok(fd) => std::net::TcpStream::from(fd),
                Err(e) => {
                    eprintln!("a connection to port {port} refused: {e}");
                    return;
                }
            };
            let inside = inside.set_nonblocking(true).map(|()| inside);
            if let Ok(mut inside) = inside.and_then(tokio::net::TcpStream::from_std) {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut inside).await;
            }
        });
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
