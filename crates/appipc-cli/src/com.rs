//! `appipc com`: Packaged COM — the catalog of installed classes and the running servers.

use anyhow::Result;
use appipc::Session;
use clap::Subcommand;

use crate::style;

/// `appipc com …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ComCommand {
    /// List the COM classes of the installed packages (CLSID, ProgIDs, package, application,
    /// exe server, launch and activation permission) and the running servers (pid, package,
    /// application, classes registered, activations, live objects and locks, suspended).
    List,
}

pub(crate) async fn run(session: &Session, c: ComCommand) -> Result<()> {
    match c {
        ComCommand::List => list(session).await,
    }
}

async fn list(session: &Session) -> Result<()> {
    let list = appipc::com::list(session).await?;
    if style::json() {
        return style::print_json(&list);
    }
    if list.classes.is_empty() {
        println!("no COM classes (no installed package declares a com-server)");
    } else {
        let mut t = style::Table::new(&["CLSID", "PROGIDS", "PACKAGE", "APP", "EXE SERVER"]);
        for c in &list.classes {
            t.row(vec![
                c.clsid.clone(),
                if c.prog_ids.is_empty() { "-".into() } else { c.prog_ids.join(", ") },
                c.package_family_name.clone(),
                c.app_id.clone(),
                c.executable.clone(),
            ]);
        }
        t.print();
        println!();
        println!("launch and activation permissions:");
        for c in &list.classes {
            println!("  {}  {}", c.clsid, c.permission);
        }
    }
    println!();
    if list.servers.is_empty() {
        println!("no COM servers running");
        return Ok(());
    }
    let mut t = style::Table::new(&[
        "PID",
        "PACKAGE",
        "APP",
        "CLASSES",
        "ACTIVATIONS",
        "OBJECTS",
        "LOCKS",
        "STATE",
    ])
    .right(0)
    .right(4)
    .right(5)
    .right(6);
    for s in &list.servers {
        let classes: Vec<String> = s
            .classes
            .iter()
            .map(|r| {
                let mut c = r.clsid.clone();
                if !r.available {
                    c.push_str(" (not available)");
                }
                c
            })
            .collect();
        let state = match (s.suspended, s.started_by_broker) {
            (true, _) => "suspended",
            (false, true) => "started for an activation",
            (false, false) => "running",
        };
        t.row(vec![
            s.pid.to_string(),
            s.package_family_name.clone(),
            s.app_id.clone(),
            classes.join(", "),
            s.activations.to_string(),
            s.objects.to_string(),
            s.locks.to_string(),
            state.to_owned(),
        ]);
    }
    t.print();
    Ok(())
}
