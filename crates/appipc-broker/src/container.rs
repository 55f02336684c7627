//! App containers: turns a package's sandbox plan (`appipc-model::sandbox`) into a
//! [`Confinement`] for the launcher, and keeps one namespace holder per package (its user and
//! network namespaces) while any of its confined processes runs.
//!
//! Fail closed: if the kernel cannot provide what the plan needs, the launch is refused with
//! the missing feature named. `APPIPC_ALLOW_UNCONFINED=1` lets the broker start such apps
//! without confinement instead; it logs that loudly at every launch and `appipc ps` shows it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use appipc_model::sandbox::{self, HostEntry, Mount, PlanInput};
use appipc_sys::sandbox::{Confinement, MountEntry, NamespaceHolder, PreparedMounts};

use crate::Shared;
use crate::error::InternalError;
use crate::error::LaunchError;
use crate::repository::InstalledPackage;

type Result<T, E = LaunchError> = std::result::Result<T, E>;

/// The restricted capability that grants the user's home.
pub const BROAD_FILE_SYSTEM_ACCESS: &str = "broadFileSystemAccess";

/// One holder per package family (lower case).
#[derive(Debug, Default)]
pub struct Holders {
    map: Mutex<HashMap<String, Arc<NamespaceHolder>>>,
}

/// What the launcher gets for a confined start.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) confinement: Arc<Confinement>,
    pub(crate) home: PathBuf,
    pub(crate) tmpdir: PathBuf,
    pub(crate) description: String,
}

fn top_level() -> Vec<(PathBuf, HostEntry)> {
    sandbox::TOP_LEVEL
        .iter()
        .map(|p| {
            let p = PathBuf::from(p);
            let entry = match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    std::fs::read_link(&p).map(HostEntry::Link).unwrap_or(HostEntry::Missing)
                }
                Ok(m) if m.is_dir() => HostEntry::Dir,
                _ => HostEntry::Missing,
            };
            (p, entry)
        })
        .collect()
}

impl Holders {
    async fn get(&self, shared: &Arc<Shared>, family: &str) -> Result<Arc<NamespaceHolder>> {
        let key = family.to_ascii_lowercase();
        if let Some(h) = self.map.lock().expect("holders poisoned").get(&key) {
            return Ok(h.clone());
        }
        // Started on the launcher thread: its parent-death signal is tied to that thread.
        let holder =
            shared.launcher.run(NamespaceHolder::start).await.and_then(|r| r).map_err(|e| {
                LaunchError::Failed(format!(
                    "app container: cannot create the package's user and network namespaces \
                     (unprivileged user namespaces needed): {e}"
                ))
            })?;
        let holder = Arc::new(holder);
        tracing::info!(
            package = family,
            holder_pid = holder.pid,
            "network namespace created (lo only)"
        );
        let mut map = self.map.lock().expect("holders poisoned");
        Ok(map.entry(key).or_insert(holder).clone())
    }

    /// Drops the holder of a package that has no confined process left.
    pub(crate) fn release_if_unused(&self, shared: &Shared, family: &str) {
        let still = shared
            .processes
            .of_family(family)
            .iter()
            .any(|p| p.trust == appipc_wire::caller::TrustLevel::AppContainer);
        if !still
            && self
                .map
                .lock()
                .expect("holders poisoned")
                .remove(&family.to_ascii_lowercase())
                .is_some()
        {
            tracing::info!(package = family, "network namespace released");
        }
    }
}

/// Computes and prepares the confinement of a process of `pkg`.
pub(crate) async fn prepare(shared: &Arc<Shared>, pkg: &InstalledPackage) -> Result<Prepared> {
    let holder = shared.holders.get(shared, pkg.family_name.as_str()).await?;
    let shm = shared.paths.runtime_dir.join("shm").join(pkg.family_name.as_str());
    std::fs::create_dir_all(&shm)
        .map_err(|e| InternalError::io(format!("creating {}", shm.display()), e))?;
    let temp = pkg.data_dir.join("TempState");
    std::fs::create_dir_all(&temp)
        .map_err(|e| InternalError::io(format!("creating {}", temp.display()), e))?;
    let top = top_level();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let hidden = vec![
        shared.paths.home.clone(),
        shared.paths.runtime_dir.clone(),
        shared.paths.cache_dir.clone(),
    ];
    let broad = pkg.is_granted(BROAD_FILE_SYSTEM_ACCESS);
    let publisher_cache = crate::mech::storage::declared_folders(shared, pkg);
    for dir in &publisher_cache {
        std::fs::create_dir_all(dir)
            .map_err(|e| InternalError::io(format!("creating {}", dir.display()), e))?;
    }
    let plan = sandbox::plan(&PlanInput {
        install_dir: &pkg.install_dir,
        data_dir: &pkg.data_dir,
        shm_dir: &shm,
        top_level: &top,
        user_home: home.as_deref(),
        hidden: &hidden,
        broad_file_system_access: broad,
        publisher_cache: &publisher_cache,
    });
    let entries: Vec<MountEntry> = plan
        .mounts
        .iter()
        .map(|m| match m {
            Mount::Bind { source, target, writable } => MountEntry::Bind {
                source: source.clone(),
                target: target.clone(),
                writable: *writable,
            },
            Mount::Symlink { target, link } => {
                MountEntry::Symlink { target: target.clone(), link: link.clone() }
            }
            Mount::Tmpfs { target } => MountEntry::Tmpfs { target: target.clone() },
            Mount::Proc { target } => MountEntry::Proc { target: target.clone() },
        })
        .collect();
    let mounts = PreparedMounts::prepare(&entries).map_err(|e| {
        LaunchError::Failed(format!("app container: preparing the file system: {e}"))
    })?;
    let (cwd, hostname) = Confinement::names(&plan.cwd, &plan.hostname)
        .map_err(|e| LaunchError::Failed(format!("app container: {e}")))?;
    let (restrictions, restriction_words) = crate::restrictions::prepare(&plan)?;
    let description = format!(
        "user+mount+pid+ipc+uts namespaces, package network namespace (lo only), read-only minimal root{}{}",
        if broad { ", home (broadFileSystemAccess)" } else { "" },
        restriction_words
    );
    let confinement = Confinement {
        userns: holder
            .userns
            .try_clone()
            .map_err(|e| InternalError::io("duplicating the user namespace fd", e))?,
        netns: holder
            .netns
            .try_clone()
            .map_err(|e| InternalError::io("duplicating the network namespace fd", e))?,
        mounts,
        cwd,
        hostname,
        restrictions,
    };
    Ok(Prepared {
        confinement: Arc::new(confinement),
        home: plan.home,
        tmpdir: plan.tmpdir,
        description,
    })
}
