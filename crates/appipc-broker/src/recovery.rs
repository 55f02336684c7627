//! What a broker finds of the one before it, and takes over: the processes it started (by
//! their recorded identity, never by a bare pid), the namespace holders of their packages, the
//! deployments it left half done, and, through the [`keeper`](crate::keeper), every session it
//! served.
//!
//! At bind time (before anything is served), [`prepare`]: the recorded processes that still run
//! are adopted and those that have exited forgotten; processes of a package that is no longer
//! installed at their version, or whose deployment was interrupted, are ended and waited for;
//! then the deployment journal is rolled back or forward and what no package owns is swept. At
//! run time, [`resume`]: the adopted processes are watched again (exit notifications and
//! `tie-lifetime-to-caller` included), and every kept session is served again with the
//! identity it had.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use appipc_model::principal::Principal;
use appipc_sys::sandbox::{HostIds, NamespaceHolder};
use appipc_wire::caller::TrustLevel;

use crate::Shared;
use crate::caller::Caller;
use crate::config::Paths;
use crate::error::{BrokerError, Result};
use crate::keeper::{Kept, Record};
use crate::launcher::{ProcessMeta, identity_of_row};
use crate::repository::Repository;
use crate::state::{HolderRow, ProcessRow};

/// What a broker found of the one before it.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Recorded processes that still run, with a pidfd checked to be each.
    pub(crate) processes: Vec<(ProcessRow, OwnedFd)>,
    /// Recorded processes that ended while no broker ran (their waiters are told).
    pub(crate) exited: Vec<ProcessRow>,
    /// Namespace holders of packages with confined processes still running.
    pub(crate) holders: Vec<(String, NamespaceHolder)>,
    /// Sessions the keeper held.
    pub(crate) sessions: Vec<Kept>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::io(what.to_owned(), std::io::Error::other(e.to_string()))
}

/// Kills a process that is not (or no longer) our child and waits a little for its end.
fn end_process(pidfd: &OwnedFd) {
    let _ = appipc_sys::process::send_signal(pidfd, appipc_sys::process::ProcessSignal::KILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !appipc_sys::process::has_exited(pidfd) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the process `row` describes may live on: its package is installed at the version it
/// runs, and no deployment of its family was interrupted.
fn still_valid(repository: &Repository, row: &ProcessRow, pending: &[String]) -> bool {
    repository.get(&row.family_name).is_some_and(|p| p.full_name.to_string() == row.full_name)
        && !pending.iter().any(|f| f.eq_ignore_ascii_case(&row.family_name))
}

/// Recorded processes that still run, each with a pidfd of it.
type Adopted = Vec<(ProcessRow, OwnedFd)>;

/// Adopts the recorded processes that still run; forgets the others (returned: they ended
/// while no broker ran).
fn adopt_processes(repository: &Repository) -> Result<(Adopted, Vec<ProcessRow>)> {
    let rows =
        repository.with_store(|s| s.processes()).map_err(|e| internal("reading processes", e))?;
    let pending: Vec<String> =
        repository.pending_operations().into_iter().map(|o| o.family_name).collect();
    let (mut adopted, mut exited) = (Vec::new(), Vec::new());
    for row in rows {
        let found = appipc_sys::process::adopt(&identity_of_row(&row)).unwrap_or_else(|e| {
            tracing::warn!(pid = row.pid, error = %e, "cannot look for a recorded process");
            None
        });
        match found {
            Some(pidfd) if still_valid(repository, &row, &pending) => {
                tracing::info!(pid = row.pid, app = %row.aumid, "process adopted");
                adopted.push((row, pidfd));
            }
            Some(pidfd) => {
                tracing::warn!(pid = row.pid, app = %row.aumid, version = %row.full_name,
                    "ending a process whose package was removed, upgraded or being deployed");
                end_process(&pidfd);
                let _ = repository.with_store(|s| s.delete_process(row.id));
            }
            None => {
                tracing::info!(pid = row.pid, app = %row.aumid, "process exited while no broker ran (or its pid is another process's now)");
                let _ = repository.with_store(|s| s.delete_process(row.id));
                exited.push(row);
            }
        }
    }
    Ok((adopted, exited))
}

/// Adopts the holders of packages whose confined processes still run; ends the others.
fn adopt_holders(
    repository: &Repository,
    processes: &[(ProcessRow, OwnedFd)],
) -> Result<Vec<(String, NamespaceHolder)>> {
    let rows =
        repository.with_store(|s| s.holders()).map_err(|e| internal("reading holders", e))?;
    let mut adopted = Vec::new();
    for row in rows {
        let HolderRow { family_name, pid, start_time, boot_id, pidfs_inode, uid, gid, second_gid } =
            row.clone();
        let identity =
            appipc_sys::process::ProcessIdentity { pid, start_time, boot_id, pidfs_inode };
        let found = appipc_sys::process::adopt(&identity).ok().flatten();
        let needed = processes.iter().any(|(p, _)| {
            p.family_name.eq_ignore_ascii_case(&family_name)
                && p.trust == TrustLevel::AppContainer.as_str()
        });
        match found {
            Some(pidfd) if needed => {
                match NamespaceHolder::adopt(pidfd, pid, HostIds { uid, gid, second_gid }) {
                    Ok(h) => {
                        tracing::info!(package = %family_name, holder_pid = pid, "namespace holder adopted");
                        adopted.push((family_name, h));
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(package = %family_name, error = %e, "cannot adopt a namespace holder")
                    }
                }
            }
            Some(pidfd) => {
                tracing::info!(package = %family_name, holder_pid = pid, "ending a namespace holder no process uses");
                end_process(&pidfd);
            }
            None => {}
        }
        let _ = repository.with_store(|s| s.delete_holder(&family_name, pid));
    }
    Ok(adopted)
}

/// Deletes the publisher cache of publishers no installed package is of (a removal that
/// ended with the broker).
fn sweep_publisher_caches(paths: &Paths, repository: &Repository) {
    let root = paths.cache_dir.join("publisher");
    let Ok(entries) = std::fs::read_dir(&root) else { return };
    let publishers: Vec<String> =
        repository.all().iter().map(|p| p.family_name.publisher_id().to_string()).collect();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !publishers.contains(&name) {
            tracing::warn!(publisher = %name, "deleting the cache of a publisher with no package left");
            if let Err(e) = crate::repository::remove_tree(&e.path()) {
                tracing::warn!(publisher = %name, error = %e, "cannot delete a publisher cache");
            }
        }
    }
}

/// Bind time: adopts what still runs, ends what must not, finishes interrupted deployments.
pub(crate) fn prepare(paths: &Paths, repository: &Repository) -> Result<Found> {
    let (processes, exited) = adopt_processes(repository)?;
    let holders = adopt_holders(repository, &processes)?;
    repository.recover()?;
    sweep_publisher_caches(paths, repository);
    Ok(Found { processes, exited, holders, sessions: Vec::new() })
}

/// The identity a kept session had, if it still stands: a public connection's from the
/// kernel, a packaged process's from its record and the package installed at that version.
fn caller_of(shared: &Shared, kept: &Kept) -> Option<(Caller, bool)> {
    let key = kept.key;
    match &kept.record {
        Record::Public => {
            let c = appipc_sys::cred::peer_credentials(&kept.fd).ok()?;
            (c.uid == shared.uid && c.pid != 0)
                .then(|| (Caller::unpackaged(key, c.pid, c.uid), false))
        }
        Record::Unpackaged { pid, uid } => {
            (*uid == shared.uid).then(|| (Caller::unpackaged(key, *pid, *uid), false))
        }
        Record::Packaged { pid, uid, full_name, app_id, trust, bootstrap } => {
            let trust = if trust == TrustLevel::FullTrust.as_str() {
                TrustLevel::FullTrust
            } else {
                TrustLevel::AppContainer
            };
            Some((packaged(shared, key, *pid, *uid, full_name, app_id, trust)?, *bootstrap))
        }
        Record::Loopback { pid, uid, full_name, app_id, trust } => {
            let trust = if trust.as_deref() == Some(TrustLevel::FullTrust.as_str()) {
                TrustLevel::FullTrust
            } else {
                TrustLevel::AppContainer
            };
            let c = packaged(shared, key, *pid, *uid, full_name, app_id, trust)?;
            Some((c, false))
        }
    }
}

/// A packaged process's identity from its record, if its package is installed at that version.
fn packaged(
    shared: &Shared,
    key: u64,
    pid: u32,
    uid: u32,
    full_name: &str,
    app_id: &str,
    trust: TrustLevel,
) -> Option<Caller> {
    let pkg = shared.repository.all().into_iter().find(|p| p.full_name.to_string() == full_name)?;
    let app = pkg.application(Some(&app_id.parse().ok()?))?;
    let principal = Principal::packaged(
        uid,
        pkg.family_name.clone(),
        app.id.clone(),
        trust,
        pkg.granted.clone(),
    );
    Some(Caller { session_id: key, pid, uid, principal, full_name: Some(full_name.to_owned()) })
}

/// Run time: watches the adopted processes again and serves the kept sessions.
pub(crate) fn resume(shared: &Arc<Shared>, found: Found) {
    let Found { processes, exited, holders, sessions } = found;
    for (family, holder) in holders {
        shared.holders.insert_adopted(&family, holder);
    }
    let adopted_families = shared.holders.families();
    let mut records = Vec::new();
    for (row, pidfd) in processes {
        let record =
            shared.processes.adopt(row.id, pidfd, identity_of_row(&row), ProcessMeta::of_row(&row));
        crate::activation::watch(shared, &record);
        if matches!(row.activation.as_str(), "appservice" | "background") {
            shared.app_services.adopted_host(&record, &row.family_name, row.app_service.as_deref());
        }
        records.push((row, record));
    }
    for (row, record) in &records {
        if let Some(parent) = row.tied_to {
            match records.iter().find(|(r, _)| r.id == parent) {
                Some((_, p)) => crate::mech::full_trust::tie(p, record),
                None => {
                    tracing::info!(
                        pid = record.pid,
                        "the app that launched this full-trust process is gone; ending it"
                    );
                    let _ = appipc_sys::process::send_signal(
                        &record.pidfd,
                        appipc_sys::process::ProcessSignal::KILL,
                    );
                }
            }
        }
    }
    let mut served = 0;
    for kept in sessions {
        let Some((caller, bootstrap)) = caller_of(shared, &kept) else {
            tracing::info!(session = kept.key, record = ?kept.record, "a kept session's identity no longer stands; closing it");
            let _ = appipc_sys::socket::shutdown(&kept.fd);
            shared.keeper.forget(kept.key);
            continue;
        };
        if matches!(kept.record, Record::Loopback { .. }) {
            // A container's loopback channel: its supervisor is asked again.
            crate::mech::loopback::data_path::serve_kept(shared, &caller, kept.key, kept.fd);
            continue;
        }
        let describe = caller.describe();
        let (entry, rx) = match shared.sessions.admit(shared, caller) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(caller = %describe, error = %e, "a kept session is not admitted");
                let _ = appipc_sys::socket::shutdown(&kept.fd);
                shared.keeper.forget(kept.key);
                continue;
            }
        };
        for (row, record) in &records {
            if row.notify_session == Some(kept.key) {
                crate::mech::launch::notify_exit(&entry, record);
            }
        }
        for row in exited.iter().filter(|r| r.notify_session == Some(kept.key)) {
            // It ended while no broker ran; how, nobody can say any more.
            let ended = appipc_wire::protocol::launch::ProcessExited {
                pid: row.pid,
                code: None,
                signal: None,
            };
            let _ = entry.outbox.event(ended, Vec::new());
        }
        served += 1;
        tokio::spawn(crate::session::resume(shared.clone(), kept.fd, entry, rx, bootstrap));
    }
    if served > 0 || !records.is_empty() {
        tracing::info!(
            sessions = served,
            processes = records.len(),
            "taken over from the previous broker"
        );
    }
    // A holder whose package has no confined process left (its last one ended while no broker
    // ran, or within the grace period before the restart) goes after the grace period.
    for family in adopted_families {
        shared.holders.release_if_unused(shared, &family);
    }
}
