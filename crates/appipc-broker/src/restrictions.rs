//! Landlock and seccomp for an app container, prepared from the plan in the parent (the child
//! only applies them).

use std::path::Path;

use appipc_model::sandbox::SandboxPlan;
use appipc_sys::landlock::{self, LandlockRules, PathAccess, Strictness};
use appipc_sys::sandbox::ChildStep;

use crate::error::LaunchError;

type Result<T, E = LaunchError> = std::result::Result<T, E>;

/// What the child applies: the restrictions in order (Landlock, seccomp's escape-hatch
/// filter, then the filter that hands `connect`, `bind` and `listen` — and, under an unprivileged
/// broker, `chmod` and `setxattr` — to the supervisor), the supervisor itself, the broker's
/// end of the supervisor's loopback channel (`crate::mech::loopback::data_path`), and a
/// description of what the kernel enforces, for `appipc ps`.
pub(crate) struct Restrictions {
    pub(crate) steps: Vec<Box<dyn ChildStep>>,
    pub(crate) supervisor: Option<appipc_sys::seccomp_notify::Supervisor>,
    pub(crate) loopback: std::os::fd::OwnedFd,
    pub(crate) words: String,
}

/// Prepares the [`Restrictions`] of a plan. Under an unprivileged broker the app's uid owns
/// whatever the broker's uid owns (the named file mappings' memfds among them), so its mode
/// and attribute changes go through the supervisor (`appipc_sys::seccomp_notify`), which
/// allows them on the app's own mounts only; under a root broker the app owns none of that.
/// Under both, `connect`, `bind` and `listen` go to the supervisor for loopback between packages.
pub(crate) fn prepare(plan: &SandboxPlan, root: bool) -> Result<Restrictions> {
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
    let mut words = format!(
        ", {report}, seccomp ({} escape hatches denied), no_new_privs, no capabilities",
        appipc_sys::seccomp::denied_syscalls().len()
    );
    let mut steps: Vec<Box<dyn ChildStep>> = vec![Box::new(ll), Box::new(seccomp)];
    let (loopback, theirs) = appipc_sys::socket::seqpacket_pair()
        .map_err(|e| LaunchError::Failed(format!("app container: loopback channel: {e}")))?;
    let (filter, mut supervisor) = appipc_sys::seccomp_notify::supervised_with(!root, Some(theirs))
        .map_err(|e| LaunchError::Failed(format!("app container: seccomp supervisor: {e}")))?;
    // The supervisor makes the app's socket files (it carries out every bind): where the
    // Landlock rules above give `make_sock`, the writable folders.
    supervisor.allow_sockets_below(&plan.read_write);
    steps.push(Box::new(filter));
    if !root {
        words.push_str(", chmod and extended attributes through a supervisor (own mounts only)");
    }
    words.push_str(", loopback connect, bind and listen through the supervisor");
    Ok(Restrictions { steps, supervisor: Some(supervisor), loopback, words })
}
