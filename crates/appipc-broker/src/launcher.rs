//! Starting packaged processes and watching them end.
//!
//! All forks happen on one long-lived thread ("appipc-launcher"): `PR_SET_PDEATHSIG` fires when
//! the *thread* that forked a child exits, so children must not be forked from tokio's
//! short-lived blocking threads (the container's init and app use it, tied to their waiter).
//! The broker keeps a pidfd for every process it started, reaps it when it exits and tells
//! whoever asked.
//!
//! Processes outlive the broker: none of them dies with it, and each is recorded in the state
//! database (`state::processes`) by its [`ProcessIdentity`]. A restarted broker adopts those
//! that still run ([`Processes::adopt`]): it opens a pidfd for the pid and keeps it only if
//! that process started at the recorded time in the recorded boot (and has the recorded pidfs
//! inode), so a pid the kernel gave to another process is never taken for the app. An adopted
//! process is no longer the broker's child: its exit is seen on its pidfd, and its status read
//! from it (`PIDFD_INFO_EXIT`) once its new parent has reaped it.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use appipc_sys::process::{self, ExitStatus, ProcessIdentity, SpawnError, SpawnRequest, Spawned};
use appipc_wire::caller::TrustLevel;
use appipc_wire::protocol::launch::ProcessInfo;
use tokio::sync::{oneshot, watch};

type Job = Box<dyn FnOnce() + Send>;

/// The launcher thread.
#[derive(Debug)]
pub struct Launcher {
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
}

impl Launcher {
    /// Starts the launcher thread.
    pub fn start() -> std::io::Result<Launcher> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new().name("appipc-launcher".into()).spawn(move || {
            for job in rx {
                job();
            }
        })?;
        Ok(Launcher { jobs: Mutex::new(tx) })
    }

    /// Runs `f` on the launcher thread (everything that forks must: the children's
    /// parent-death signal is tied to that thread).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        if self.jobs.lock().expect("launcher poisoned").send(job).is_err() {
            return Err(std::io::Error::other("the launcher thread has stopped"));
        }
        rx.await.map_err(|_| std::io::Error::other("the launcher thread dropped the job"))
    }

    /// Spawns on the launcher thread.
    pub async fn spawn(&self, req: SpawnRequest) -> Result<Spawned, SpawnError> {
        self.run(move || process::spawn(req))
            .await
            .unwrap_or_else(|source| Err(SpawnError::Exec { program: "(launcher)".into(), source }))
    }
}

/// How a full-trust process's confinement is described.
pub(crate) const UNCONFINED_FULL_TRUST: &str = "none: full trust";
/// How the description of an app container started unconfined begins.
pub(crate) const UNCONFINED_FALLBACK: &str = "NONE";

/// Whether a process with this confinement description runs confined (`ProcessInfo.confined`).
fn is_confined(description: &str) -> bool {
    !(description == UNCONFINED_FULL_TRUST || description.starts_with(UNCONFINED_FALLBACK))
}

/// What a process is, besides its pid: how it is listed and recorded.
#[derive(Debug, Clone)]
pub struct ProcessMeta {
    /// `PFN!AppId`.
    pub aumid: String,
    /// Family name.
    pub family_name: String,
    /// The full name of the package version it runs.
    pub full_name: String,
    /// Trust level.
    pub trust: TrustLevel,
    /// What confinement was applied.
    pub confinement: String,
    /// Why it was started (`APPIPC_ACTIVATION`).
    pub activation: String,
    /// The app service it was started to host.
    pub app_service: Option<String>,
    /// Seconds since the epoch.
    pub started_at: u64,
}

/// A process the broker started.
#[derive(Debug)]
pub struct ProcessRecord {
    /// The key of its record in the state database (unique over restarts).
    pub id: u64,
    /// pid.
    pub pid: u32,
    /// pidfd (kept for signalling without pid-reuse races).
    pub pidfd: OwnedFd,
    /// Who it is beyond its pid.
    pub identity: ProcessIdentity,
    /// `PFN!AppId`.
    pub aumid: String,
    /// Family name.
    pub family_name: String,
    /// The full name of the package version it runs.
    pub full_name: String,
    /// Trust level.
    pub trust: TrustLevel,
    /// Seconds since the epoch.
    pub started_at: u64,
    /// What confinement was applied.
    pub confinement: String,
    /// Why it was started.
    pub activation: String,
    /// The app service it was started to host.
    pub app_service: Option<String>,
    /// Started by a broker before this one (not this broker's child).
    pub adopted: bool,
    /// Becomes `Some` when the process has exited.
    pub exited: watch::Receiver<Option<ExitStatus>>,
    /// Sessions still to be told that it exited (`launch.ProcessExited`): counted from when a
    /// session asks until its event is queued or the session has gone, so that whoever waits
    /// for the exit can also wait for its telling ([`Processes::stop_family`]).
    pub notifying: std::sync::atomic::AtomicUsize,
}

/// The table of running processes.
#[derive(Debug, Default)]
pub struct Processes {
    table: Mutex<HashMap<u32, Arc<ProcessRecord>>>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ProcessMeta {
    /// The metadata of a process starting now.
    pub fn now(
        aumid: String,
        family_name: String,
        full_name: String,
        trust: TrustLevel,
        confinement: String,
        activation: &str,
        app_service: Option<String>,
    ) -> ProcessMeta {
        ProcessMeta {
            aumid,
            family_name,
            full_name,
            trust,
            confinement,
            activation: activation.to_owned(),
            app_service,
            started_at: now(),
        }
    }
}

impl Processes {
    /// Adds a process this broker started and starts watching it. Must be called inside the
    /// runtime.
    pub fn track(
        self: &Arc<Self>,
        id: u64,
        spawned: Spawned,
        identity: ProcessIdentity,
        meta: ProcessMeta,
    ) -> Arc<ProcessRecord> {
        self.insert(id, spawned.pidfd, identity, meta, false)
    }

    /// Adds a process a broker before this one started, found again by its identity (its
    /// pidfd checked with `process::adopt`). Must be called inside the runtime.
    pub fn adopt(
        self: &Arc<Self>,
        id: u64,
        pidfd: OwnedFd,
        identity: ProcessIdentity,
        meta: ProcessMeta,
    ) -> Arc<ProcessRecord> {
        self.insert(id, pidfd, identity, meta, true)
    }

    fn insert(
        self: &Arc<Self>,
        id: u64,
        pidfd: OwnedFd,
        identity: ProcessIdentity,
        meta: ProcessMeta,
        adopted: bool,
    ) -> Arc<ProcessRecord> {
        let (tx, rx) = watch::channel(None);
        let record = Arc::new(ProcessRecord {
            id,
            pid: identity.pid,
            pidfd,
            identity,
            aumid: meta.aumid,
            family_name: meta.family_name,
            full_name: meta.full_name,
            trust: meta.trust,
            started_at: meta.started_at,
            confinement: meta.confinement,
            activation: meta.activation,
            app_service: meta.app_service,
            adopted,
            exited: rx,
            notifying: std::sync::atomic::AtomicUsize::new(0),
        });
        self.table.lock().expect("process table poisoned").insert(record.pid, record.clone());
        let this = self.clone();
        let watched = record.clone();
        tokio::spawn(async move {
            let status = wait_for_exit(&watched.pidfd, watched.adopted).await;
            this.table.lock().expect("process table poisoned").remove(&watched.pid);
            tracing::info!(pid = watched.pid, app = %watched.aumid, %status, "process exited");
            let _ = tx.send(Some(status));
        });
        record
    }

    /// Kills every process and waits until each has ended (`appipc stop --apps`).
    pub async fn stop_all(&self) -> u32 {
        let families: std::collections::HashSet<String> =
            self.list().iter().map(|p| p.family_name.to_ascii_lowercase()).collect();
        let mut n = 0;
        for f in families {
            n += self.stop_family(&f).await;
        }
        n
    }

    /// Running processes, by pid.
    pub fn list(&self) -> Vec<Arc<ProcessRecord>> {
        let mut v: Vec<_> =
            self.table.lock().expect("process table poisoned").values().cloned().collect();
        v.sort_by_key(|p| p.pid);
        v
    }

    /// Running processes of a package family.
    pub fn of_family(&self, family: &str) -> Vec<Arc<ProcessRecord>> {
        self.list().into_iter().filter(|p| p.family_name.eq_ignore_ascii_case(family)).collect()
    }

    /// Kills every process of a family and waits until each has been reaped. Returns how many.
    pub async fn stop_family(&self, family: &str) -> u32 {
        let victims = self.of_family(family);
        for p in &victims {
            if let Err(e) = process::send_signal(&p.pidfd, process::ProcessSignal::KILL) {
                tracing::warn!(pid = p.pid, error = %e, "cannot signal process");
            }
        }
        for p in &victims {
            let mut rx = p.exited.clone();
            let _ = rx.wait_for(|s| s.is_some()).await;
        }
        // The sessions waiting for these exits are told before this returns (and, at `stop
        // --apps`, before the broker closes them): a little while at most.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while victims.iter().any(|p| p.notifying.load(std::sync::atomic::Ordering::SeqCst) > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        victims.len() as u32
    }
}

impl ProcessRecord {
    /// Its record for the state database.
    pub fn row(
        &self,
        notify_session: Option<u64>,
        tied_to: Option<u64>,
    ) -> crate::state::ProcessRow {
        crate::state::ProcessRow {
            id: self.id,
            pid: self.pid,
            start_time: self.identity.start_time,
            boot_id: self.identity.boot_id.clone(),
            pidfs_inode: self.identity.pidfs_inode,
            aumid: self.aumid.clone(),
            family_name: self.family_name.clone(),
            full_name: self.full_name.clone(),
            trust: self.trust.as_str().to_owned(),
            activation: self.activation.clone(),
            app_service: self.app_service.clone(),
            confinement: self.confinement.clone(),
            started_at: self.started_at,
            notify_session,
            tied_to,
        }
    }

    /// The listing form.
    pub fn info(&self) -> ProcessInfo {
        ProcessInfo {
            pid: self.pid,
            app_user_model_id: self.aumid.clone(),
            package_family_name: self.family_name.clone(),
            trust: self.trust,
            started_at: self.started_at,
            confinement: self.confinement.clone(),
            confined: Some(is_confined(&self.confinement)),
        }
    }
}

async fn wait_for_exit(pidfd: &OwnedFd, adopted: bool) -> ExitStatus {
    loop {
        if let Err(e) = appipc_sys::aio::pidfd_exited(pidfd).await {
            tracing::error!(error = %e, "cannot wait on pidfd; polling");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if adopted {
            if !process::has_exited(pidfd) {
                continue;
            }
            return adopted_status(pidfd).await;
        }
        match process::try_reap(pidfd) {
            Ok(Some(status)) => return status,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot reap child");
                return ExitStatus { code: None, signal: None };
            }
        }
    }
}

/// How an adopted process ended. Its parent (the nearest subreaper, or init) reaps it, and the
/// kernel records the status then; it is looked for up to 5 s, less and less often (a parent
/// on a loaded machine may take seconds; one that never reaps, or a kernel without
/// `PIDFD_INFO_EXIT`, leaves it unknown).
async fn adopted_status(pidfd: &OwnedFd) -> ExitStatus {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut pause = std::time::Duration::from_millis(10);
    while tokio::time::Instant::now() < deadline {
        match process::exit_info(pidfd) {
            Ok(Some(s)) => return s,
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot read an adopted process's exit status");
                break;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(250));
    }
    ExitStatus { code: None, signal: None }
}

impl ProcessMeta {
    /// What a record says of a process.
    pub fn of_row(row: &crate::state::ProcessRow) -> ProcessMeta {
        ProcessMeta {
            aumid: row.aumid.clone(),
            family_name: row.family_name.clone(),
            full_name: row.full_name.clone(),
            trust: if row.trust == TrustLevel::FullTrust.as_str() {
                TrustLevel::FullTrust
            } else {
                TrustLevel::AppContainer
            },
            confinement: row.confinement.clone(),
            activation: row.activation.clone(),
            app_service: row.app_service.clone(),
            started_at: row.started_at,
        }
    }
}

/// The identity a record holds.
pub fn identity_of_row(row: &crate::state::ProcessRow) -> ProcessIdentity {
    ProcessIdentity {
        pid: row.pid,
        start_time: row.start_time,
        boot_id: row.boot_id.clone(),
        pidfs_inode: row.pidfs_inode,
    }
}
