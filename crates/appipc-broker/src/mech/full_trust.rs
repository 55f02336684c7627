//! `FullTrustProcessLauncher`: a packaged app with `runFullTrust` starts the full-trust
//! process its own package declares, unconfined but with the package's identity.

use appipc_model::manifest::RUN_FULL_TRUST;
use appipc_model::policy::{FullTrustTarget, Operation};
use appipc_wire::caller::TrustLevel;
use appipc_wire::protocol::full_trust::{self as wire, FullTrustProcessLaunched};

use std::sync::Arc;

use crate::activation::{self, Activation, Start};
use crate::cx::{Cx, Replied};
use crate::error::FullTrustError;
use crate::launcher::ProcessRecord;

/// Splits a parameter group's command line (in the model, where it is fuzzed).
pub use appipc_model::manifest::split_parameters;

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied, FullTrustError> {
    use wire::Request as R;
    match r {
        R::LaunchFullTrustProcess(l) => {
            let pid = launch(&cx, l).await?;
            Ok(Replied::of::<wire::LaunchFullTrustProcess>(FullTrustProcessLaunched { pid }))
        }
    }
}

/// `LaunchFullTrustProcess`.
async fn launch(cx: &Cx<'_>, l: wire::LaunchFullTrustProcess) -> Result<u32, FullTrustError> {
    let shared = cx.shared;
    let caller = cx.caller;
    let pkg = caller.family_name().and_then(|f| shared.repository.get(f));
    let own_app =
        caller.principal.package.as_ref().map(|p| p.app_id.to_string()).unwrap_or_default();
    let wanted = l.app_id.clone().unwrap_or(own_app);
    if l.parameter_group.is_some() && l.arguments.is_some() {
        return Err(FullTrustError::BadRequest(
            "give a parameter group or arguments, not both".into(),
        ));
    }
    // Gather the facts, then let the policy decide.
    let app = pkg.as_ref().and_then(|p| {
        p.manifest.applications.iter().find(|a| a.id.as_str().eq_ignore_ascii_case(&wanted))
    });
    let ftp = app.and_then(|a| a.full_trust_processes.first());
    let args = match (&l.parameter_group, &l.arguments, ftp) {
        (Some(g), None, Some(f)) => f.parameter_group(g).map(|pg| split_parameters(&pg.parameters)),
        (None, Some(a), _) => Some(a.clone()),
        _ => Some(Vec::new()),
    };
    let target = match (app, ftp, &args) {
        (None, _, _) => FullTrustTarget::NoSuchApplication,
        (Some(_), None, _) => FullTrustTarget::NoFullTrustProcess,
        (Some(_), Some(_), None) => {
            FullTrustTarget::NoSuchParameterGroup(l.parameter_group.clone().unwrap_or_default())
        }
        (Some(_), Some(f), Some(_)) => {
            let exe = pkg.as_ref().map(|p| p.install_dir.join(f.executable.as_str()));
            if exe.is_some_and(|e| e.is_file()) {
                FullTrustTarget::Ready
            } else {
                FullTrustTarget::MissingExecutable(f.executable.as_str().to_owned())
            }
        }
    };
    cx.enforce(Operation::LaunchFullTrust { app: &wanted, target })?;
    let (Some(pkg), Some(app), Some(ftp), Some(args)) = (&pkg, app, ftp, args) else {
        unreachable!("the policy allows only a launch whose target is ready")
    };
    debug_assert!(pkg.is_granted(RUN_FULL_TRUST));
    let mut start = Start::app(pkg, app, Activation::FullTrust);
    start.program = &ftp.executable;
    start.args = args;
    start.trust = TrustLevel::FullTrust;
    // The caller is packaged, so the broker started it and tracks its process.
    let parent = ftp
        .tie_lifetime_to_caller
        .then(|| shared.processes.list().into_iter().find(|p| p.pid == caller.pid))
        .flatten();
    start.tied_to = parent.as_ref().map(|p| p.id);
    let record = activation::start_app(shared, start)
        .await
        .map_err(|e| FullTrustError::Failed(e.to_string()))?;
    if let Some(parent) = &parent {
        tie(parent, &record);
    }
    tracing::info!(
        pid = record.pid,
        executable = ftp.executable.as_str(),
        by = %caller.describe(),
        "full-trust process launched"
    );
    Ok(record.pid)
}

/// Ends `child` when `parent` exits (`tie-lifetime-to-caller`).
pub(crate) fn tie(parent: &Arc<ProcessRecord>, child: &Arc<ProcessRecord>) {
    let child = child.clone();
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

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_split_like_a_command_line() {
        assert_eq!(
            super::split_parameters("/Sync  --name \"a b\" C:\\x\\y"),
            ["/Sync", "--name", "a b", "C:\\x\\y"]
        );
        assert_eq!(super::split_parameters("\"\""), [""]);
        assert!(super::split_parameters("   ").is_empty());
    }
}
