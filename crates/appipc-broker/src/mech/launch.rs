//! `launch`: starting applications by AUMID, and the process list.

use appipc_model::identity::{AppId, AppUserModelId, PackageFamilyName};
use appipc_model::policy::Operation;
use appipc_wire::protocol::launch::{self as wire, Launched, ProcessExited};

use std::sync::Arc;

use crate::cx::{Cx, Replied};
pub use crate::error::LaunchError;
use crate::launcher::ProcessRecord;
use crate::sessions::SessionEntry;

/// Parses `PFN` or `PFN!AppId`.
pub(crate) fn parse_target(
    target: &str,
) -> Result<(PackageFamilyName, Option<AppId>), LaunchError> {
    let bad = |e: &dyn std::fmt::Display| {
        LaunchError::BadRequest(format!(
            "launch target {target:?}: {e} (expected a package family name, Name_publisherid, \
             or PFN!AppId)"
        ))
    };
    if target.contains('!') {
        let aumid: AppUserModelId = target.parse().map_err(|e| bad(&e))?;
        Ok((aumid.family_name, Some(aumid.app_id)))
    } else {
        let pfn: PackageFamilyName = target.parse().map_err(|e| bad(&e))?;
        Ok((pfn, None))
    }
}

pub(crate) async fn handle(mut cx: Cx<'_>, r: wire::Request) -> Result<Replied, LaunchError> {
    use wire::Request as R;
    match r {
        R::Launch(l) => launch(&mut cx, l).await,
        R::ListProcesses(_) => Ok(Replied::of::<wire::ListProcesses>(
            cx.shared
                .processes
                .list()
                .into_iter()
                .filter(|p| cx.permits(Operation::QueryPackage { family_name: &p.family_name }))
                .map(|p| p.info())
                .collect(),
        )),
    }
}

async fn launch(cx: &mut Cx<'_>, l: wire::Launch) -> Result<Replied, LaunchError> {
    let shared = cx.shared;
    let (family, app_id) = parse_target(&l.target)?;
    cx.enforce(Operation::Launch { family_name: family.as_str() })?;
    let Some(pkg) = shared.repository.get(family.as_str()) else {
        return Err(LaunchError::NotFound(format!("package {family} is not installed")));
    };
    if shared.repository.is_busy(family.as_str()) {
        return Err(LaunchError::Busy(format!("package {family} is being deployed; try again")));
    }
    let Some(app) = pkg.application(app_id.as_ref()) else {
        return Err(LaunchError::NotFound(format!(
            "package {family} has no application {}",
            app_id.map(|a| a.to_string()).unwrap_or_default()
        )));
    };
    let stdio = match <[_; 3]>::try_from(cx.take_fds()) {
        Ok(fds) => Some(fds),
        Err(none) if none.is_empty() => None,
        Err(_) => unreachable!("dispatch checked the declared fds"),
    };
    let mut start = crate::activation::Start::app(&pkg, app, crate::activation::Activation::Launch);
    start.args = l.args;
    let log = stdio.is_none().then(|| shared.paths.app_log(family.as_str()).display().to_string());
    start.stdio = stdio;
    start.notify_session = l.notify_exit.then_some(cx.caller.session_id);
    let record = crate::activation::start_app(shared, start).await?;
    let (pid, aumid) = (record.pid, record.aumid.clone());
    tracing::info!(app = %aumid, pid, by = %cx.caller.describe(), "launched on request");
    if l.notify_exit {
        notify_exit(cx.session, &record);
    }
    Ok(Replied::of::<wire::Launch>(Launched { pid, app_user_model_id: aumid, log }))
}

/// Sends `ProcessExited` on `session` when `record`'s process exits.
pub(crate) fn notify_exit(session: &Arc<SessionEntry>, record: &Arc<ProcessRecord>) {
    let session = session.clone();
    let pid = record.pid;
    // While it waits for the exit, the session is not idle.
    let interest = session.interest();
    let mut exited = record.exited.clone();
    let record = record.clone();
    record.notifying.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::spawn(async move {
        let status = tokio::select! {
            s = exited.wait_for(|s| s.is_some()) => s.ok().and_then(|s| *s),
            _ = session.outbox.closed() => None,
        };
        if let Some(s) = status {
            let _ = session
                .outbox
                .event(ProcessExited { pid, code: s.code, signal: s.signal }, Vec::new());
        }
        record.notifying.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        drop(interest);
    });
}
