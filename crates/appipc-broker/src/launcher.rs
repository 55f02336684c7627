//! Starting packaged processes and watching them end.
//!
//! All forks happen on one long-lived thread ("appipc-launcher"): `PR_SET_PDEATHSIG` fires when
//! the *thread* that forked a child exits, so children must not be forked from tokio's
//! short-lived blocking threads. The broker keeps a pidfd for every process it started,
//! reaps it when it exits and tells whoever asked.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use appipc_sys::process::{self, ExitStatus, SpawnError, SpawnRequest, Spawned};
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

/// A process the broker started.
#[derive(Debug)]
pub struct ProcessRecord {
    /// pid.
    pub pid: u32,
    /// pidfd (kept for signalling without pid-reuse races).
    pub pidfd: OwnedFd,
    /// `PFN!AppId`.
    pub aumid: String,
    /// Family name.
    pub family_name: String,
    /// Trust level.
    pub trust: TrustLevel,
    /// Seconds since the epoch.
    pub started_at: u64,
    /// What confinement was applied.
    pub confinement: String,
    /// Becomes `Some` when the process has exited.
    pub exited: watch::Receiver<Option<ExitStatus>>,
}

/// The table of running processes.
#[derive(Debug, Default)]
pub struct Processes {
    table: Mutex<HashMap<u32, Arc<ProcessRecord>>>,
}

impl Processes {
    /// Adds a started process and starts watching it. Must be called inside the runtime.
    pub fn track(
        self: &Arc<Self>,
        spawned: Spawned,
        aumid: String,
        family_name: String,
        trust: TrustLevel,
        confinement: String,
    ) -> Arc<ProcessRecord> {
        let (tx, rx) = watch::channel(None);
        let started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let record = Arc::new(ProcessRecord {
            pid: spawned.pid,
            pidfd: spawned.pidfd,
            aumid,
            family_name,
            trust,
            started_at,
            confinement,
            exited: rx,
        });
        self.table.lock().expect("process table poisoned").insert(record.pid, record.clone());
        let this = self.clone();
        let watched = record.clone();
        tokio::spawn(async move {
            let status = wait_for_exit(&watched.pidfd).await;
            this.table.lock().expect("process table poisoned").remove(&watched.pid);
            tracing::info!(pid = watched.pid, app = %watched.aumid, %status, "process exited");
            let _ = tx.send(Some(status));
        });
        record
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
        victims.len() as u32
    }
}

impl ProcessRecord {
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

async fn wait_for_exit(pidfd: &OwnedFd) -> ExitStatus {
    loop {
        if let Err(e) = appipc_sys::aio::pidfd_exited(pidfd).await {
            tracing::error!(error = %e, "cannot wait on pidfd; polling");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
