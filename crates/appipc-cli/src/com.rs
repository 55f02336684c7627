//! `appipc com`: Packaged COM — the catalog of installed classes and the running servers.

use anyhow::Result;
use appipc::Session;
use appipc::com::ComList;
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
    for line in render(&list, style::stdout_color()) {
        println!("{line}");
    }
    Ok(())
}

/// `appipc com list`'s text (the demo prints it too).
pub(crate) fn render(list: &ComList, color: bool) -> Vec<String> {
    let mut out = Vec::new();
    if list.classes.is_empty() {
        out.push("no COM classes (no installed package declares a com-server)".to_owned());
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
        out.extend(t.render(color));
        out.push(String::new());
        out.push("launch and activation permissions:".to_owned());
        for c in &list.classes {
            out.push(format!("  {}  {}", c.clsid, c.permission));
        }
    }
    out.push(String::new());
    if list.servers.is_empty() {
        out.push("no COM servers running".to_owned());
        if list.more > 0 {
            out.push(format!(
                "({} more classes not shown: the list is longer than one reply holds)",
                list.more
            ));
        }
        return out;
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
    out.extend(t.render(color));
    if list.more > 0 {
        out.push(format!(
            "({} more classes and servers not shown: the list is longer than one reply holds)",
            list.more
        ));
    }
    out
}
