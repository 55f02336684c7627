//! App containers: turns a package's sandbox plan (`appipc-model::sandbox`) into a
//! [`Confinement`] for the launcher, and keeps one namespace holder per package (its user and
//! network namespaces) while any of its confined processes runs.
//!
//! The uid model (docs/architecture.md, "App containers"): a confined process is uid and gid
//! 1000 inside. Under an unprivileged broker that is the broker's own uid and gid. Under a root
//! broker it is the package's own host uid (and a gid of the same number) from
//! [`sandbox::PACKAGE_IDS`], recorded as the owner of the package's data folder, and its
//! processes are also members of their publisher's group from [`sandbox::PUBLISHER_GIDS`]
//! (recorded as the group of `CACHE/publisher/<id>`), which owns the publisher cache folders
//! (`root:<group>`, mode 2770). Before every launch the broker (root, so it can still manage
//! everything) gives the app its data folders, their first-level folders and its `/dev/shm`
//! folder (`<uid>:<uid>`, mode 0700).
//!
//! Fail closed: if the kernel cannot provide what the plan needs, the launch is refused with
//! the missing feature named. `APPIPC_ALLOW_UNCONFINED=1` lets the broker start such apps
//! without confinement instead; it logs that loudly at every launch and `appipc ps` shows it.

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use appipc_model::sandbox::{self, Access, HostEntry, Mount, PlanInput};
use appipc_sys::sandbox::{
    BindAccess, Confinement, HostIds, INSIDE_SECOND_GID, MountEntry, NamespaceHolder,
    PreparedMounts, Privilege,
};

use appipc_sys::loopback::{Listeners, SocketFactory};

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
    /// The loopback tools of the packages' network namespaces, made on demand; each is of
    /// the holder it was made for, and used only while that holder is still the package's.
    /// Lock order: `map`, then `tools`.
    tools: Mutex<HashMap<String, Arc<NamespaceTools>>>,
    /// The host's (the broker's own namespace's) listeners, once made (a failure is not kept:
    /// the next lookup tries again).
    host: Mutex<Option<Arc<Listeners>>>,
}

/// A socket factory in one package's network namespace and that namespace's listeners.
#[derive(Debug)]
pub(crate) struct NamespaceTools {
    /// The holder they were made for.
    holder: std::sync::Weak<NamespaceHolder>,
    pub(crate) factory: SocketFactory,
    pub(crate) listeners: Listeners,
}

impl NamespaceTools {
    fn is_of(&self, holder: &Arc<NamespaceHolder>) -> bool {
        std::ptr::eq(self.holder.as_ptr(), Arc::as_ptr(holder))
    }
}

/// The value in `cell`, or a new one from `make` kept there; a failure is not kept.
fn cached_or_try<T>(
    cell: &Mutex<Option<Arc<T>>>,
    make: impl FnOnce() -> std::io::Result<T>,
) -> Option<Arc<T>> {
    let mut c = cell.lock().expect("holders poisoned");
    if let Some(v) = &*c {
        return Some(v.clone());
    }
    match make() {
        Ok(v) => Some(c.insert(Arc::new(v)).clone()),
        Err(e) => {
            tracing::warn!(error = %e, "loopback: cannot query the host's listeners");
            None
        }
    }
}

/// What the launcher gets for a confined start.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) confinement: Arc<Confinement>,
    pub(crate) home: PathBuf,
    pub(crate) tmpdir: PathBuf,
    pub(crate) description: String,
    /// The broker's end of the supervisor's loopback channel.
    pub(crate) loopback: std::os::fd::OwnedFd,
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
    /// The package's holder; a new one maps uid 1000 to `ids`. (A running holder keeps the ids
    /// it was made with; its processes' groups follow from them.)
    async fn get(
        &self,
        shared: &Arc<Shared>,
        family: &str,
        ids: HostIds,
    ) -> Result<Arc<NamespaceHolder>> {
        let key = family.to_ascii_lowercase();
        if let Some(h) = self.map.lock().expect("holders poisoned").get(&key) {
            return Ok(h.clone());
        }
        // Started on the launcher thread: its parent-death signal is tied to that thread.
        let holder = shared
            .launcher
            .run(move || NamespaceHolder::start(&ids))
            .await
            .and_then(|r| r)
            .map_err(|e| {
                LaunchError::Failed(format!(
                    "app container: cannot create the package's user and network namespaces \
                     (unprivileged user namespaces needed): {e}"
                ))
            })?;
        // It outlives this broker (the package's processes do); the next one adopts it.
        let holder = Arc::new(holder.keep_on_drop());
        tracing::info!(
            package = family,
            holder_pid = holder.pid,
            host_uid = holder.ids.uid,
            "user namespace (uid 1000 = host uid) and network namespace (lo only) created"
        );
        record_holder(shared, family, &holder).await;
        let mut map = self.map.lock().expect("holders poisoned");
        Ok(map.entry(key).or_insert(holder).clone())
    }

    /// A holder a broker before this one started, found again.
    pub(crate) fn insert_adopted(&self, family: &str, holder: NamespaceHolder) {
        self.map
            .lock()
            .expect("holders poisoned")
            .insert(family.to_ascii_lowercase(), Arc::new(holder));
    }

    /// The host uid `family`'s namespace maps uid 1000 to (its processes' uid on the host).
    pub(crate) fn host_uid(&self, family: &str) -> Option<u32> {
        let map = self.map.lock().expect("holders poisoned");
        map.get(&family.to_ascii_lowercase()).map(|h| h.ids.uid)
    }

    /// The running holders: (family name, lower case; holder pid).
    pub(crate) fn pids(&self) -> Vec<(String, u32)> {
        let map = self.map.lock().expect("holders poisoned");
        map.iter().map(|(f, h)| (f.clone(), h.pid)).collect()
    }

    /// The loopback tools of `family`'s network namespace (started on the launcher thread the
    /// first time, and again if the factory died); `None` when the package has no holder, or
    /// its holder was released (or replaced) while they were made.
    pub(crate) async fn tools(
        &self,
        shared: &Arc<Shared>,
        family: &str,
    ) -> std::io::Result<Option<Arc<NamespaceTools>>> {
        let key = family.to_ascii_lowercase();
        let Some(holder) = self.map.lock().expect("holders poisoned").get(&key).cloned() else {
            return Ok(None);
        };
        if let Some(t) = self.tools.lock().expect("holders poisoned").get(&key)
            && t.is_of(&holder)
            && t.factory.is_alive()
        {
            return Ok(Some(t.clone()));
        }
        let join_userns = !rustix::process::geteuid().is_root();
        let weak = Arc::downgrade(&holder);
        let h = holder.clone();
        let tools = shared
            .launcher
            .run(move || {
                let factory = SocketFactory::start(h.userns.as_fd(), h.netns.as_fd(), join_userns)?;
                let listeners = factory.listeners()?;
                Ok::<_, std::io::Error>(NamespaceTools { holder: weak, factory, listeners })
            })
            .await??;
        Ok(self.keep_if_current(&key, &holder, tools))
    }

    /// Keeps `tools` for `key` if `holder` is still its holder; `None` (and the tools end)
    /// otherwise: a factory of a released namespace is never used.
    fn keep_if_current(
        &self,
        key: &str,
        holder: &Arc<NamespaceHolder>,
        tools: NamespaceTools,
    ) -> Option<Arc<NamespaceTools>> {
        let map = self.map.lock().expect("holders poisoned");
        if !map.get(key).is_some_and(|h| Arc::ptr_eq(h, holder)) || !tools.is_of(holder) {
            return None;
        }
        let tools = Arc::new(tools);
        self.tools.lock().expect("holders poisoned").insert(key.to_owned(), tools.clone());
        Some(tools)
    }

    /// The listeners of the host's network namespace (the broker's own).
    pub(crate) fn host_listeners(&self) -> Option<Arc<Listeners>> {
        cached_or_try(&self.host, Listeners::here)
    }

    /// Drops the holder of a package that has no confined process left, after a grace
    /// period ([`namespace_grace`]): a relaunch within it joins the package's namespaces
    /// instead of making new ones (a new holder costs a fork, an exec, the id maps and a
    /// state write: about 1.5 ms of a launch here).
    pub(crate) fn release_if_unused(&self, shared: &Arc<Shared>, family: &str) {
        let key = family.to_ascii_lowercase();
        let Some(holder) = self.map.lock().expect("holders poisoned").get(&key).cloned() else {
            return;
        };
        if in_use(shared, family) {
            return;
        }
        let grace = namespace_grace();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if !grace.is_zero() => {
                let (shared, family) = (shared.clone(), family.to_owned());
                rt.spawn(async move {
                    tokio::time::sleep(grace).await;
                    shared.holders.release(&shared, &family, &holder);
                });
            }
            _ => self.release(shared, family, &holder),
        }
    }

    /// Ends `holder` if it is still `family`'s and no confined process of the package runs.
    fn release(&self, shared: &Shared, family: &str, holder: &Arc<NamespaceHolder>) {
        if in_use(shared, family) {
            return;
        }
        let key = family.to_ascii_lowercase();
        let gone = {
            let mut map = self.map.lock().expect("holders poisoned");
            if !map.get(&key).is_some_and(|h| Arc::ptr_eq(h, holder)) {
                return;
            }
            self.tools.lock().expect("holders poisoned").remove(&key);
            map.remove(&key)
        };
        if let Some(holder) = gone {
            holder.end();
            let (family, pid) = (family.to_owned(), holder.pid);
            let _ = shared.repository.with_store(|s| s.delete_holder(&family, pid));
            tracing::info!(package = %family, "network namespace released");
        }
    }

    /// The families with a holder (adopted ones included), lower case.
    pub(crate) fn families(&self) -> Vec<String> {
        self.map.lock().expect("holders poisoned").keys().cloned().collect()
    }

    /// Ends every holder (`appipc stop --apps`, once the processes are gone).
    pub(crate) fn end_all(&self, shared: &Shared) {
        let all: Vec<(String, Arc<NamespaceHolder>)> = {
            let mut map = self.map.lock().expect("holders poisoned");
            self.tools.lock().expect("holders poisoned").clear();
            map.drain().collect()
        };
        for (family, holder) in all {
            holder.end();
            let _ = shared.repository.with_store(|s| s.delete_holder(&family, holder.pid));
        }
    }
}

/// Whether a confined process of `family` runs.
fn in_use(shared: &Shared, family: &str) -> bool {
    shared
        .processes
        .of_family(family)
        .iter()
        .any(|p| p.trust == appipc_wire::caller::TrustLevel::AppContainer)
}

/// How long a package's namespaces outlive its last confined process: 10 s, or
/// `APPIPC_NAMESPACE_GRACE_MS` (0: at once).
fn namespace_grace() -> std::time::Duration {
    static GRACE: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *GRACE.get_or_init(|| {
        let ms = std::env::var("APPIPC_NAMESPACE_GRACE_MS").ok().and_then(|v| v.parse().ok());
        std::time::Duration::from_millis(ms.unwrap_or(10_000))
    })
}

/// Records a new holder in the state database, so that a restarted broker finds it.
async fn record_holder(shared: &Arc<Shared>, family: &str, holder: &NamespaceHolder) {
    let Ok(id) = appipc_sys::process::identify(&holder.pidfd, holder.pid) else { return };
    let row = crate::state::HolderRow {
        family_name: family.to_owned(),
        pid: holder.pid,
        start_time: id.start_time,
        boot_id: id.boot_id,
        pidfs_inode: id.pidfs_inode,
        uid: holder.ids.uid,
        gid: holder.ids.gid,
        second_gid: holder.ids.second_gid,
    };
    let s = shared.clone();
    let written =
        shared.blocking.run(move || s.repository.with_store(|st| st.put_holder(&row))).await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::error!(package = family, "cannot record a namespace holder");
    }
}

/// One allocation at a time: two packages must not pick the same free id.
static ALLOCATION: Mutex<()> = Mutex::new(());

/// The ids already recorded by the entries of `dir` (their owners, or groups), within `range`.
fn recorded_in(
    dir: &Path,
    range: &RangeInclusive<u32>,
    group: bool,
    except: &Path,
) -> HashSet<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else { return HashSet::new() };
    entries
        .flatten()
        .filter(|e| e.path() != except)
        .filter_map(|e| e.path().symlink_metadata().ok())
        .map(|m| if group { m.gid() } else { m.uid() })
        .filter(|id| range.contains(id))
        .collect()
}

/// The id recorded for `name` by `record`'s owner (or group), or the first free candidate.
fn id_for(
    name: &str,
    record: &Path,
    range: RangeInclusive<u32>,
    group: bool,
) -> Result<(u32, bool)> {
    let meta = std::fs::symlink_metadata(record)
        .map_err(|e| InternalError::io(format!("reading {}", record.display()), e))?;
    let now = if group { meta.gid() } else { meta.uid() };
    if range.contains(&now) {
        return Ok((now, false));
    }
    let parent = record.parent().unwrap_or(Path::new("/"));
    let taken = recorded_in(parent, &range, group, record);
    for id in sandbox::id_candidates(name, range.clone()) {
        if taken.contains(&id) {
            continue;
        }
        let known = appipc_sys::ids::user_exists(id)
            .and_then(|u| Ok(u || appipc_sys::ids::group_exists(id)?))
            .map_err(|e| {
                InternalError::io(format!("looking up id {id} in the user database"), e)
            })?;
        if !known {
            return Ok((id, true));
        }
    }
    Err(LaunchError::Failed(format!(
        "app container: no free host id left in {}..={} for {name}",
        range.start(),
        range.end()
    )))
}

fn own(dir: &Path, uid: Option<u32>, gid: Option<u32>, mode: u32) -> Result<()> {
    appipc_sys::ids::set_owner_and_mode(dir, uid, gid, mode)
        .map_err(|e| InternalError::io(format!("giving {} to the app's ids", dir.display()), e))
        .map_err(LaunchError::from)
}

fn give(dir: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    let r = appipc_sys::ids::give_tree(dir, uid, gid)
        .map_err(|e| InternalError::io(format!("giving {} to the app's ids", dir.display()), e))?;
    tracing::info!(folder = %dir.display(), ?uid, ?gid, changed = r.changed, skipped = r.skipped,
        "folder given to the package's host ids");
    Ok(())
}

/// Under a root broker: the package's host uid (allocated on first use) and its publisher's
/// group (when it has publisher cache folders), with its folders given to them. Blocking (NSS
/// lookups, a walk of the data folder the first time).
fn root_host_ids(
    family: &str,
    data_dir: &Path,
    shm: &Path,
    publisher: Option<(&str, &Path, &[PathBuf])>,
) -> Result<HostIds> {
    let _one = ALLOCATION.lock().expect("allocation poisoned");
    let (uid, new) = id_for(family, data_dir, sandbox::PACKAGE_IDS, false)?;
    if new {
        // First launch under this model: what is there (empty folders for a new package)
        // becomes the app's.
        give(data_dir, Some(uid), Some(uid))?;
        tracing::info!(package = family, host_uid = uid, "package host uid allocated");
    }
    own(data_dir, Some(uid), Some(uid), 0o700)?;
    for f in crate::repository::APP_DATA_FOLDERS {
        let d = data_dir.join(f);
        std::fs::create_dir_all(&d)
            .map_err(|e| InternalError::io(format!("creating {}", d.display()), e))?;
        own(&d, Some(uid), Some(uid), 0o700)?;
    }
    own(shm, Some(uid), Some(uid), 0o700)?;
    let mut second_gid = None;
    if let Some((id, root, folders)) = publisher {
        std::fs::create_dir_all(root)
            .map_err(|e| InternalError::io(format!("creating {}", root.display()), e))?;
        let (gid, new) = id_for(id, root, sandbox::PUBLISHER_GIDS, true)?;
        if new {
            tracing::info!(publisher = id, host_gid = gid, "publisher host group allocated");
        }
        own(root, Some(0), Some(gid), 0o700)?;
        for folder in folders {
            let group = std::fs::symlink_metadata(folder).map(|m| m.gid()).ok();
            if group != Some(gid) {
                give(folder, None, Some(gid))?;
            }
            // Files made inside get the group (set-gid folder); the apps' umask 007 keeps them
            // writable by the publisher's other packages.
            own(folder, Some(0), Some(gid), 0o2770)?;
        }
        second_gid = Some(gid);
    }
    Ok(HostIds { uid, gid: uid, second_gid })
}

fn bind_access(a: Access) -> BindAccess {
    match a {
        Access::ReadOnly => BindAccess::ReadOnly,
        Access::ReadWrite => BindAccess::ReadWrite,
        Access::Device => BindAccess::Device,
    }
}

/// The package's host ids under a root broker: allocated (or found again) and its folders
/// given to them, on the blocking pool.
async fn root_ids(
    shared: &Arc<Shared>,
    pkg: &InstalledPackage,
    shm: &std::path::Path,
    publisher_cache: &[PathBuf],
) -> Result<HostIds> {
    let family = pkg.family_name.to_string();
    let data_dir = pkg.data_dir.clone();
    let shm = shm.to_path_buf();
    let publisher_id = pkg.family_name.publisher_id().to_string();
    let publisher_root = crate::mech::storage::publisher_root(shared, &publisher_id);
    let folders = publisher_cache.to_vec();
    shared
        .blocking
        .run(move || {
            let publisher = (!folders.is_empty()).then_some((
                publisher_id.as_str(),
                publisher_root.as_path(),
                folders.as_slice(),
            ));
            root_host_ids(&family, &data_dir, &shm, publisher)
        })
        .await
        .map_err(|e| LaunchError::Failed(format!("app container: allocating host ids: {e}")))?
}

/// The sandbox plan's mounts as the launcher's entries.
fn mount_entries(mounts: &[Mount]) -> Vec<MountEntry> {
    mounts
        .iter()
        .map(|m| match m {
            Mount::Bind { source, target, access } => MountEntry::Bind {
                source: source.clone(),
                target: target.clone(),
                access: bind_access(*access),
            },
            Mount::Symlink { target, link } => {
                MountEntry::Symlink { target: target.clone(), link: link.clone() }
            }
            Mount::Tmpfs { target } => MountEntry::Tmpfs { target: target.clone() },
            Mount::Proc { target } => MountEntry::Proc { target: target.clone() },
        })
        .collect()
}

/// The confinement in words, for `appipc ps` and the log.
fn describe(root: bool, ids: &HostIds, broad: bool, restriction_words: &str) -> String {
    let who = match ids.second_gid {
        _ if !root => format!("host uid {} (the broker's)", ids.uid),
        Some(g) => {
            format!("host uid {} (the package's own, root broker), publisher group {g}", ids.uid)
        }
        None => format!("host uid {} (the package's own, root broker)", ids.uid),
    };
    format!(
        "uid 1000 inside = {who}; user+mount+pid+ipc+uts namespaces, package network namespace \
         (lo only); read-only minimal root, own folders rw,nosuid,nodev,noexec, devices \
         ro,nosuid,noexec{}; sockets unix, inet, inet6 (no MPTCP), netlink route only{}",
        if broad { ", home (broadFileSystemAccess)" } else { "" },
        restriction_words
    )
}

/// Computes and prepares the confinement of a process of `pkg`.
pub(crate) async fn prepare(shared: &Arc<Shared>, pkg: &InstalledPackage) -> Result<Prepared> {
    let shm = shared.paths.runtime_dir.join("shm").join(pkg.family_name.as_str());
    std::fs::create_dir_all(&shm)
        .map_err(|e| InternalError::io(format!("creating {}", shm.display()), e))?;
    let temp = pkg.data_dir.join("TempState");
    std::fs::create_dir_all(&temp)
        .map_err(|e| InternalError::io(format!("creating {}", temp.display()), e))?;
    let publisher_cache = crate::mech::storage::ensure_declared_folders(shared, pkg)?;
    let root = rustix::process::geteuid().is_root();
    let ids =
        if root { root_ids(shared, pkg, &shm, &publisher_cache).await? } else { HostIds::own() };
    let holder = shared.holders.get(shared, pkg.family_name.as_str(), ids).await?;
    let privilege = if root {
        let groups = holder.ids.second_gid.map(|_| INSIDE_SECOND_GID).into_iter();
        Privilege::Root { groups: groups.map(rustix::process::Gid::from_raw).collect() }
    } else {
        Privilege::Unprivileged
    };
    let top = top_level();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let hidden = vec![
        shared.paths.home.clone(),
        shared.paths.runtime_dir.clone(),
        shared.paths.cache_dir.clone(),
    ];
    let broad = pkg.is_granted(BROAD_FILE_SYSTEM_ACCESS);
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
    let entries = mount_entries(&plan.mounts);
    let mounts = PreparedMounts::prepare(&entries).map_err(|e| {
        LaunchError::Failed(format!("app container: preparing the file system: {e}"))
    })?;
    let (cwd, hostname) = Confinement::names(&plan.cwd, &plan.hostname)
        .map_err(|e| LaunchError::Failed(format!("app container: {e}")))?;
    let restrictions = crate::restrictions::prepare(&plan, root)?;
    let loopback = restrictions.loopback;
    let description = describe(root, &holder.ids, broad, &restrictions.words);
    let confinement = Confinement {
        userns: holder
            .userns
            .try_clone()
            .map_err(|e| InternalError::io("duplicating the user namespace fd", e))?,
        netns: holder
            .netns
            .try_clone()
            .map_err(|e| InternalError::io("duplicating the network namespace fd", e))?,
        privilege,
        mounts,
        cwd,
        hostname,
        // Private to the app; under a root broker also to its publisher's group (the publisher
        // cache folders are shared that way).
        umask: if root { 0o007 } else { 0o077 },
        restrictions: restrictions.steps,
        supervisor: restrictions.supervisor,
    };
    Ok(Prepared {
        confinement: Arc::new(confinement),
        home: plan.home,
        tmpdir: plan.tmpdir,
        description,
        loopback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use appipc_sys::sandbox::HostIds;

    fn holder() -> Option<NamespaceHolder> {
        match NamespaceHolder::start(&HostIds::own()) {
            Ok(h) => Some(h),
            Err(e) => {
                eprintln!("skipped: no user and network namespaces here: {e}");
                None
            }
        }
    }

    fn tools_for(h: &Arc<NamespaceHolder>) -> NamespaceTools {
        let join = !rustix::process::geteuid().is_root();
        let factory = SocketFactory::start(h.userns.as_fd(), h.netns.as_fd(), join).unwrap();
        let listeners = factory.listeners().unwrap();
        NamespaceTools { holder: Arc::downgrade(h), factory, listeners }
    }

    /// Red team F6: tools made for a holder that was released (or replaced by a new one of the
    /// same package) while they were being made are never kept, so never used for the
    /// package's new namespace.
    #[test]
    fn tools_of_a_released_or_replaced_holder_are_not_kept() {
        let Some(first) = holder() else { return };
        let Some(second) = holder() else { return };
        let holders = Holders::default();
        holders.insert_adopted("Contoso.App_x", first);
        let first = holders.map.lock().unwrap().get("contoso.app_x").cloned().unwrap();
        let made = tools_for(&first);
        // Released meanwhile.
        holders.map.lock().unwrap().remove("contoso.app_x");
        assert!(holders.keep_if_current("contoso.app_x", &first, made).is_none());
        assert!(holders.tools.lock().unwrap().is_empty());
        // Replaced meanwhile: a new holder for the same package.
        holders.insert_adopted("Contoso.App_x", second);
        let made = tools_for(&first);
        assert!(holders.keep_if_current("contoso.app_x", &first, made).is_none());
        let second = holders.map.lock().unwrap().get("contoso.app_x").cloned().unwrap();
        let kept = holders.keep_if_current("contoso.app_x", &second, tools_for(&second)).unwrap();
        assert!(kept.is_of(&second) && !kept.is_of(&first));
        first.end();
        second.end();
    }

    /// Red team F7: a failure to make the host's listeners is not kept for good.
    #[test]
    fn a_failure_is_not_cached() {
        let cell = Mutex::new(None);
        let failed = cached_or_try(&cell, || Err::<u32, _>(std::io::Error::other("EMFILE")));
        assert!(failed.is_none());
        assert_eq!(cached_or_try(&cell, || Ok(7)).as_deref(), Some(&7));
        assert_eq!(cached_or_try(&cell, || Ok(8)).as_deref(), Some(&7), "kept once made");
    }
}
