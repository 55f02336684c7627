//! `FullTrustProcessLauncher`: a packaged app with `runFullTrust` starts the full-trust
//! process its own package declares, unconfined but with the package's identity.

use std::sync::Arc;

use appipc_model::manifest::RUN_FULL_TRUST;
use appipc_wire::app_service::FullTrustLaunchResult;
use appipc_wire::protocol::{Reply, TrustLevel};

use crate::Shared;
use crate::activation::{self, Activation, Start};
use crate::session::Identity;

fn result(result: FullTrustLaunchResult, message: String) -> Reply {
    tracing::info!(%result, %message, "full-trust launch refused");
    Reply::FullTrustProcessLaunched { result, pid: None, message }
}

/// Splits a parameter group's command line into arguments: whitespace separates, double
/// quotes group (`"a b"`), a backslash escapes the next character.
pub fn split_parameters(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// `LaunchFullTrustProcess`.
pub(crate) async fn launch(
    shared: &Arc<Shared>,
    caller: &Identity,
    app_id: Option<String>,
    group: Option<String>,
    arguments: Option<Vec<String>>,
) -> Reply {
    use FullTrustLaunchResult as R;
    let Some(me) = &caller.package else {
        return result(
            R::AccessDenied,
            "only a packaged app can launch its full-trust process".into(),
        );
    };
    let Some(pkg) = shared.registry.get(&me.family_name) else {
        return result(R::Unknown, format!("package {} is not installed any more", me.family_name));
    };
    if !pkg.manifest.capabilities.has(RUN_FULL_TRUST) {
        return result(
            R::AccessDenied,
            format!(
                "{} does not declare the restricted capability {RUN_FULL_TRUST}",
                me.family_name
            ),
        );
    }
    let wanted = app_id.as_deref().unwrap_or(&me.app_id);
    let Some(app) =
        pkg.manifest.applications.iter().find(|a| a.id.as_str().eq_ignore_ascii_case(wanted))
    else {
        return result(
            R::FileNotFound,
            format!("package {} has no application {wanted}", me.family_name),
        );
    };
    let Some(ftp) = app.full_trust_processes.first() else {
        return result(
            R::FileNotFound,
            format!("application {} declares no full-trust process", app.id),
        );
    };
    let args = match (group, arguments) {
        (Some(_), Some(_)) => {
            return result(R::Unknown, "give a parameter group or arguments, not both".into());
        }
        (Some(g), None) => match ftp.parameter_group(&g) {
            Some(pg) => split_parameters(&pg.parameters),
            None => {
                return result(
                    R::FileNotFound,
                    format!("no parameter group {g:?} in application {}", app.id),
                );
            }
        },
        (None, Some(a)) => a,
        (None, None) => Vec::new(),
    };
    if !pkg.install_dir.join(ftp.executable.as_str()).is_file() {
        return result(
            R::FileNotFound,
            format!("{} is missing from the package", ftp.executable.as_str()),
        );
    }
    let mut start = Start::app(&pkg, app, Activation::FullTrust);
    start.program = &ftp.executable;
    start.args = args;
    start.trust = TrustLevel::FullTrust;
    let record = match activation::start_app(shared, start).await {
        Ok(r) => r,
        Err(e) => return result(R::Unknown, e.to_string()),
    };
    tracing::info!(
        pid = record.pid,
        executable = ftp.executable.as_str(),
        by = %caller.describe(),
        "full-trust process launched"
    );
    if ftp.tie_lifetime_to_caller {
        // The caller is packaged, so the broker started it and tracks its process.
        if let Some(parent) = shared.processes.list().into_iter().find(|p| p.pid == caller.pid) {
            let child = record.clone();
            let mut parent_exit = parent.exited.clone();
            let mut child_exit = child.exited.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = parent_exit.wait_for(|s| s.is_some()) => {
                        tracing::info!(pid = child.pid, "the app that launched this full-trust process exited; ending it");
                        let _ = appipc_sys::process::send_signal(&child.pidfd, appipc_sys::process::ProcessSignal::KILL);
                    }
                    _ = child_exit.wait_for(|s| s.is_some()) => {}
                }
            });
        }
    }
    Reply::FullTrustProcessLaunched {
        result: R::Success,
        pid: Some(record.pid),
        message: String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_split_like_a_command_line() {
        assert_eq!(
            super::split_parameters("/Sync  --name \"a b\" x\\ y"),
            ["/Sync", "--name", "a b", "x y"]
        );
        assert_eq!(super::split_parameters("\"\""), [""]);
        assert!(super::split_parameters("   ").is_empty());
    }
}
