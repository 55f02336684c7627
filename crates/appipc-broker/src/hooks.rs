//! Lifecycle: what each mechanism does when a session closes, a process exits, or a package
//! is installed, upgraded or removed. Every such event reaches the mechanisms here, and only
//! here; a new mechanism adds its line to the hooks it cares about.

use std::sync::Arc;

use appipc_wire::protocol::packages::InstallOutcome;
use appipc_wire::status::BackgroundTaskCancellationReason;

use crate::Shared;
use crate::caller::Caller;
use crate::error::PackagesError;
use crate::launcher::ProcessRecord;
use crate::repository::InstalledPackage;

/// A session ended: whatever it held goes (app-service hosts, handles, pipe instances).
pub(crate) fn session_closed(shared: &Shared, caller: &Caller) {
    shared.app_services.session_closed(caller.session_id);
    shared.named_objects.session_closed(caller.session_id);
    shared.pipes.session_closed(caller.session_id);
    shared.protocols.session_closed(caller.session_id);
    shared.registry.session_closed(caller.session_id);
    shared.rpc.session_closed(caller.session_id);
    shared.com.session_closed(caller.session_id);
}

/// A process the broker started has exited.
pub(crate) fn process_exited(shared: &Arc<Shared>, record: &ProcessRecord) {
    shared.app_services.process_exited(record.pid);
    shared.protocols.process_exited(record.pid);
    if record.trust == appipc_wire::caller::TrustLevel::AppContainer {
        shared.holders.release_if_unused(shared, &record.family_name);
    }
}

/// A package is about to be upgraded (its family is marked busy, so nothing of it starts
/// meanwhile): as Windows shuts an app down for servicing, its app-service hosts are canceled
/// with `ServicingUpdate` and get the grace period to end on their own, then every process of
/// the old version still running is ended, before any file changes. Returns how many were.
pub(crate) async fn package_upgrading(shared: &Arc<Shared>, old: &Arc<InstalledPackage>) -> u32 {
    let family = old.family_name.as_str();
    let hosts = shared.app_services.host_pids(family);
    shared
        .app_services
        .cancel_family(shared, family, BackgroundTaskCancellationReason::ServicingUpdate)
        .await;
    let told: Vec<_> =
        shared.processes.of_family(family).into_iter().filter(|p| hosts.contains(&p.pid)).collect();
    let grace = shared.app_services.grace();
    for p in told {
        let mut exited = p.exited.clone();
        let _ = tokio::time::timeout(grace, exited.wait_for(|s| s.is_some())).await;
    }
    let stopped = shared.processes.stop_family(family).await;
    if stopped > 0 {
        tracing::info!(package = %old.full_name, stopped, "processes of the old version ended for the upgrade");
    }
    stopped
}

/// A package was installed or upgraded (the database row is written).
pub(crate) async fn package_installed(
    shared: &Arc<Shared>,
    pkg: &Arc<InstalledPackage>,
    _outcome: InstallOutcome,
) -> Result<(), PackagesError> {
    crate::mech::storage::provision(shared, pkg)?;
    crate::mech::launcher::desktop::install(shared, pkg);
    shared.registry.package_changed(pkg.family_name.as_str());
    Ok(())
}

/// A package is about to be removed (its family is marked busy): its hosts are canceled and
/// its processes stopped. Returns how many processes were stopped.
pub(crate) async fn package_removing(shared: &Arc<Shared>, pkg: &Arc<InstalledPackage>) -> u32 {
    let family = pkg.family_name.as_str();
    shared
        .app_services
        .cancel_family(shared, family, BackgroundTaskCancellationReason::Uninstall)
        .await;
    shared.processes.stop_family(family).await
}

/// A package was removed (row, files and app data are gone).
pub(crate) fn package_removed(shared: &Shared, pkg: &InstalledPackage) {
    crate::mech::storage::release_if_last(shared, &pkg.family_name.publisher_id());
    crate::mech::launcher::desktop::remove(shared, pkg.family_name.as_str());
    shared.registry.package_changed(pkg.family_name.as_str());
}

/// `appipc stop --apps`: every host is canceled (`Terminating`), every process the broker
/// started ended, every namespace holder too, and the keeper lets every session go.
pub(crate) async fn stopping_everything(shared: &Arc<Shared>) {
    for pkg in shared.repository.all() {
        shared
            .app_services
            .cancel_family(
                shared,
                pkg.family_name.as_str(),
                BackgroundTaskCancellationReason::Terminating,
            )
            .await;
    }
    let n = shared.processes.stop_all().await;
    shared.holders.end_all(shared);
    shared.keeper.end().await;
    tracing::info!(processes = n, "every process the broker started ended");
}
