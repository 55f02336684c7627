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
    }
    Ok(ExitCode::SUCCESS)
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
