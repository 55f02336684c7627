//! Landlock and seccomp for an app container, prepared from the plan in the parent (the child
//! only applies them).

use std::path::Path;

use appipc_model::sandbox::SandboxPlan;
use appipc_sys::landlock::{self, LandlockRules, PathAccess, Strictness};
use appipc_sys::sandbox::ChildStep;

use crate::error::LaunchError;

type Result<T, E = LaunchError> = std::result::Result<T, E>;

/// The restrictions to apply, in order (Landlock, then seccomp), and a description of what
/// the kernel enforces, for `appipc ps`.
pub(crate) fn prepare(plan: &SandboxPlan) -> Result<(Vec<Box<dyn ChildStep>>, String)> {
    let mut read_write = plan.read_write.clone();
    read_write.extend(plan.read_write_files.iter().cloned());
    let rules = LandlockRules {
        read_exec: plan.read_exec.clone(),
        read_write,
        scope_abstract_unix: plan.scoped,
        scope_signal: plan.scoped,
        restrict_tcp: plan.deny_tcp,
        tcp_bind: Vec::new(),
        tcp_connect: Vec::new(),
    };
    let strictness = if crate::config::unconfined_allowed() {
        Strictness::BestEffort
    } else {
        Strictness::Required
    };
    let mut ll = landlock::prepare_with(&rules, strictness)
        .map_err(|e| LaunchError::Failed(format!("app container: {e}")))?;
    // What the child mounts itself exists only there: rules by the paths it sees.
    for (path, access) in [("/proc", PathAccess::ReadExec), ("/dev", PathAccess::ReadExec)] {
        ll.allow_in_child(Path::new(path), access)
            .map_err(|e| LaunchError::Failed(format!("app container: {e}")))?;
    }
    let report = ll.report().to_string();
    if !ll.report().not_enforced.is_empty() {
        tracing::error!(%report, "LANDLOCK ONLY PARTLY ENFORCED (APPIPC_ALLOW_UNCONFINED=1)");
    }
    let seccomp = appipc_sys::seccomp::escape_hatch_filter()
        .map_err(|e| LaunchError::Failed(format!("app container: seccomp: {e}")))?;
    let words = format!(
        ", {report}, seccomp ({} escape hatches denied), no_new_privs, no capabilities",
        appipc_sys::seccomp::denied_syscalls().len()
    );
    Ok((vec![Box::new(ll), Box::new(seccomp)], words))
}
