//! `appipc rpc`: RPC endpoints (`ncalrpc`) registered with the broker.

use anyhow::Result;
use appipc::Session;
use clap::Subcommand;

use crate::style;

/// `appipc rpc …`.
#[derive(Debug, Subcommand)]
pub(crate) enum RpcCommand {
    /// List the registered RPC endpoints: name, server (package and pid), security descriptor,
    /// and the clients connected (package or "unpackaged", pid, connection id). An app
    /// container sees its own package's only.
    List,
}

pub(crate) async fn run(session: &Session, c: RpcCommand) -> Result<()> {
    match c {
        RpcCommand::List => list(session).await,
    }
}

async fn list(session: &Session) -> Result<()> {
    let list = appipc::rpc::list(session).await?;
    if style::json() {
        style::print_json(&list)?;
    } else if list.is_empty() {
        println!("no RPC endpoints");
    } else {
        let mut t = style::Table::new(&[
            "ENDPOINT",
            "SERVER",
            "SERVER PID",
            "CONNECTIONS",
            "SECURITY DESCRIPTOR",
        ])
        .right(2)
        .right(3);
        for e in &list {
            let server = if e.server_package_family_name.is_empty() {
                "unpackaged".to_owned()
            } else {
                e.server_package_family_name.clone()
            };
            t.row(vec![
                appipc::wire::text::printable(&e.name).into_owned(),
                server,
                e.server_pid.to_string(),
                e.connections.to_string(),
                e.sddl.clone(),
            ]);
        }
        t.print();
        for e in list.iter().filter(|e| !e.clients.is_empty()) {
            println!();
            println!("clients of {}:", appipc::wire::text::printable(&e.name));
            let mut c =
                style::Table::new(&["CONNECTION", "CLIENT", "CONTAINER", "PID"]).right(0).right(3);
            for client in &e.clients {
                let who = if client.package_family_name.is_empty() {
                    "unpackaged".to_owned()
                } else {
                    client.package_family_name.clone()
                };
                c.row(vec![
                    client.connection_id.to_string(),
                    who,
                    if client.app_container { "yes" } else { "no" }.to_owned(),
                    client.pid.to_string(),
                ]);
            }
            c.print();
        }
    }
    Ok(())
}
