//! `registry`: the registry as MSIX virtualizes it for packaged desktop apps. The broker keeps
//! the hives in its state database (`state::registry`), one transaction per request, and
//! answers each request in the caller's view, which the session decides (never the request):
//!
//! | caller | HKCU | HKLM |
//! |---|---|---|
//! | unpackaged | the global hive | the global hive |
//! | packaged | its package's private hive over the global hive (writes go to the private hive, unless `registry-write-virtualization = false` or the key is under an `excluded-keys` entry, with `unvirtualizedResources` granted); an app container sees of the global hive only the keys its package shares (`registry::global_at`, red team finding 4) | the package's `Registry.reg` (read-only) over the global hive; writes to other keys go to the global hive from a full-trust process, and are refused (5) to an app container |
//!
//! Deleting in the private hive leaves tombstones that hide the global keys and values. The
//! private hive survives upgrades and is deleted with the package (in the removal's own
//! transaction). An unpackaged caller may open a package's view (`appipc reg --package`).
//!
//! Handles belong to the session that opened them (another session's number is 6) and are
//! counted against `[limits] registry-handles-per-session` (1816 past it); watches
//! (`RegNotifyChangeKeyValue`) too. After each committed change the broker sends a
//! `KeyChanged` event to every matching watch whose view sees the key written; the broker's
//! queue for a session stays bounded (its outbox): a watch whose event does not fit is
//! behind, its changes coalesce into one sent once the session has read enough (red team
//! finding 10). A handle's place in the quota is taken before the request's work (finding 12).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use appipc_model::manifest::UNVIRTUALIZED_RESOURCES;
use appipc_model::policy::Operation;
use appipc_model::registry::{
    self as model, KeyPath, Layer, RegError, RegTree, RegValue, Root, ValueType, Virtualized,
};
use appipc_wire::caller::TrustLevel;
use appipc_wire::protocol::registry::{
    self as wire, CreatedKey, KeyChanged, RegKeyInfo, RegValueInfo,
};
use appipc_wire::status::{Win32Error, WindowsCode};

use crate::Shared;
use crate::cx::{Cx, Replied};
use crate::error::{InternalError, RegistryError};
use crate::outbox::{Outbox, Undeliverable};
use crate::repository::InstalledPackage;
use crate::state::registry::{Change, RegFail, Upper, View, global_hive, private_hive};

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// `REG_NOTIFY_CHANGE_NAME | ATTRIBUTES | LAST_SET | SECURITY`.
const NOTIFY_FILTERS: u32 = 0xF;

/// The view a handle is in.
#[derive(Debug)]
struct ViewOf {
    /// The package whose view it is (`None`: the global view).
    family: Option<String>,
    /// Its write rules (`None`: unpackaged, everything global).
    rules: Option<Virtualized>,
    /// Its shipped keys.
    shipped: Option<Arc<RegTree>>,
}

#[derive(Debug, Clone)]
struct OpenKey {
    view: Arc<ViewOf>,
    path: KeyPath,
}

#[derive(Debug)]
struct Watch {
    session: u64,
    handle: u64,
    outbox: Arc<Outbox>,
    /// The private hive its view sees, if any.
    private: Option<String>,
    /// Its view's rules: what of the global hive it sees (`registry::global_at`).
    rules: Option<Virtualized>,
    /// Behind: the bits of the changes that did not fit its session's queue, waiting to be
    /// sent as one coalesced change.
    behind: Option<u32>,
    /// The package whose process holds it (lower case; `None`: unpackaged), for
    /// `[limits] registry-watches-per-package`.
    owner: Option<String>,
    path: KeyPath,
    subtree: bool,
    filter: u32,
}

#[derive(Debug, Default)]
struct State {
    handles: HashMap<(u64, u64), OpenKey>,
    /// session → handles and watches it holds.
    held: HashMap<u64, usize>,
    watches: HashMap<u64, Watch>,
    /// Sessions whose coalesced changes a task is delivering (`deliver_coalesced`).
    delivering: HashSet<u64>,
    /// package (lower case) → watches its sessions hold.
    watches_of: HashMap<String, usize>,
}

impl State {
    /// Removes a watch, and counts it off its package's.
    fn remove_watch(&mut self, id: u64) {
        if let Some(owner) = self.watches.remove(&id).and_then(|w| w.owner)
            && let Some(n) = self.watches_of.get_mut(&owner)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.watches_of.remove(&owner);
            }
        }
    }

    /// Removes the watches `gone` selects; how many.
    fn remove_watches(&mut self, gone: impl Fn(&Watch) -> bool) -> usize {
        let ids: Vec<u64> =
            self.watches.iter().filter(|(_, w)| gone(w)).map(|(id, _)| *id).collect();
        for id in &ids {
            self.remove_watch(*id);
        }
        ids.len()
    }
}

/// Room a coalesced change needs in a session's queue (its frame is smaller).
const COALESCED_BYTES: usize = 256;

type ShippedCell = tokio::sync::OnceCell<Arc<RegTree>>;

/// The registry's handles, watches and shipped trees.
#[derive(Debug)]
pub struct Registry {
    state: Mutex<State>,
    next: AtomicU64,
    /// Shipped trees by full name, with their family (lower case): read and parsed once, on
    /// the blocking pool, by the first request that needs one (the others wait for it).
    shipped: Mutex<HashMap<String, (String, Arc<ShippedCell>)>>,
}

impl Registry {
    /// Handles and watch ids from `first` on (the broker's generation in the high half, so
    /// they never repeat across restarts).
    pub fn first_handle(first: u64) -> Registry {
        Registry { state: Mutex::default(), next: AtomicU64::new(first), shipped: Mutex::default() }
    }

    /// A session ended: its handles and watches go.
    pub(crate) fn session_closed(&self, session: u64) {
        let mut s = self.state.lock().expect("registry poisoned");
        s.handles.retain(|(sess, _), _| *sess != session);
        s.remove_watches(|w| w.session == session);
        s.held.remove(&session);
        s.delivering.remove(&session);
    }

    /// A package was upgraded or removed: its shipped keys are read again when next needed.
    pub(crate) fn package_changed(&self, family: &str) {
        let family = family.to_ascii_lowercase();
        self.shipped.lock().expect("registry poisoned").retain(|_, (f, _)| *f != family);
    }

    fn id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The package's shipped keys (`Registry.reg`, keys at or under `HKLM\Software`), read
    /// once per version, on the blocking pool (a large file never holds an async thread), by
    /// one request at a time. A file that cannot be read gives no keys (logged).
    async fn shipped_tree(&self, shared: &Shared, pkg: &InstalledPackage) -> Arc<RegTree> {
        let full = pkg.full_name.to_string();
        let cell = {
            let mut m = self.shipped.lock().expect("registry poisoned");
            let family = pkg.family_name.as_str().to_ascii_lowercase();
            m.entry(full.clone()).or_insert_with(|| (family, Arc::default())).1.clone()
        };
        let dir = pkg.install_dir.clone();
        let tree = cell
            .get_or_init(|| async move {
                let read = shared.blocking.run(move || crate::repository::read_shipped(&dir));
                match read.await.map_err(|e| e.to_string()).and_then(|r| r) {
                    Ok(t) => Arc::new(t),
                    Err(e) => {
                        tracing::error!(package = %full, error = %e, "the package's Registry.reg is not used");
                        Arc::new(RegTree::new())
                    }
                }
            })
            .await;
        tree.clone()
    }
}

fn win32(code: Win32Error, message: impl Into<String>) -> RegistryError {
    RegistryError::Win32(RegError::new(code, message))
}

/// The view of a package, as its process (`confined`) or the user looking at it sees it.
async fn package_view(shared: &Shared, pkg: &InstalledPackage, confined: bool) -> ViewOf {
    let granted = pkg.granted.iter().any(|c| c.eq_ignore_ascii_case(UNVIRTUALIZED_RESOURCES));
    let v = &pkg.manifest.virtualization;
    let excluded = if granted {
        v.excluded_keys.iter().filter_map(|k| KeyPath::parse(k).ok()).collect()
    } else {
        Vec::new()
    };
    let rules = Virtualized {
        hkcu_writes_private: v.registry_write_virtualization || !granted,
        excluded,
        confined,
    };
    ViewOf {
        family: Some(pkg.family_name.to_string()),
        rules: Some(rules),
        shipped: Some(shared.registry.shipped_tree(shared, pkg).await),
    }
}

/// The view a request on a predefined key opens: the caller's own, or (unpackaged callers)
/// the package it names.
async fn view_for(cx: &Cx<'_>, package: Option<&str>) -> Result<Arc<ViewOf>> {
    let own = cx.caller.family_name();
    if let Some(p) = package
        && let Err(d) = cx.enforce(Operation::OpenRegistryView { family_name: p })
    {
        return Err(win32(Win32Error::AccessDenied, d.to_string()));
    }
    let wanted = package.or(own);
    let Some(family) = wanted else {
        return Ok(Arc::new(ViewOf { family: None, rules: None, shipped: None }));
    };
    let pkg = cx.shared.repository.get(family).ok_or_else(|| {
        win32(Win32Error::FileNotFound, format!("no package {family} is installed"))
    })?;
    let confined = own.is_some() && cx.caller.trust() == TrustLevel::AppContainer;
    Ok(Arc::new(package_view(cx.shared, &pkg, confined).await))
}

/// The key a handle names: a predefined key in the caller's view, or one of its session's.
async fn resolve(cx: &Cx<'_>, handle: u64, package: Option<&str>) -> Result<OpenKey> {
    if let Some(root) = Root::from_handle(handle) {
        return Ok(OpenKey { view: view_for(cx, package).await?, path: KeyPath::root(root) });
    }
    if package.is_some() {
        return Err(win32(
            Win32Error::InvalidParameter,
            "a package view is opened from a predefined key (HKCU, HKLM)",
        ));
    }
    let s = cx.shared.registry.state.lock().expect("registry poisoned");
    s.handles.get(&(cx.caller.session_id, handle)).cloned().ok_or_else(|| {
        win32(
            Win32Error::InvalidHandle,
            format!("{handle:#x} is not a registry handle of this session"),
        )
    })
}

/// Where a write to `key` goes in `view` (undecided: for `QueryKeyInfo` and creates).
fn target(view: &ViewOf, key: &KeyPath) -> std::result::Result<Layer, RegError> {
    let shipped = view.shipped.as_ref().is_some_and(|t| t.get(key).is_some());
    model::write_target(view.rules.as_ref(), key, shipped)
}

/// Where a write to `key` goes in `view`, decided by the policy: a refusal is recorded in the
/// decision log (`appipc why`) and answered with its code (5). Allowed writes are not
/// recorded (they would crowd the log out).
fn write_layer(cx: &Cx<'_>, view: &ViewOf, key: &KeyPath) -> Result<Layer> {
    let layer = target(view, key);
    if layer.is_err() {
        let shipped = view.shipped.as_ref().is_some_and(|t| t.get(key).is_some());
        let op = Operation::WriteRegistry {
            key,
            rules: view.rules.as_ref(),
            shipped,
            view: view.family.as_deref().unwrap_or(""),
        };
        if let Err(d) = cx.enforce(op) {
            let code = match d.0.code {
                WindowsCode::Win32(c) => Win32Error::from_value(c),
                _ => None,
            };
            return Err(win32(code.unwrap_or(Win32Error::AccessDenied), d.to_string()));
        }
    }
    Ok(layer?)
}

/// Runs `f` on the view of `key`'s root, in one transaction on a blocking thread.
async fn run<T: Send + 'static>(
    shared: &Arc<Shared>,
    key: &OpenKey,
    f: impl FnOnce(&View<'_>, &KeyPath) -> std::result::Result<T, RegFail> + Send + 'static,
) -> Result<T> {
    let (view, path) = (key.view.clone(), key.path.clone());
    let max = shared.config.limits.registry_bytes_per_hive;
    let s = shared.clone();
    let out = shared
        .blocking
        .run(move || {
            s.repository.with_store(|store| {
                let root = path.root_key();
                // Checked under the store's lock: a removal (which drops the private hive in its
                // own transaction) is before this call or after it, never in between.
                if let Some(f) = &view.family
                    && store.package(f)?.is_none()
                {
                    return Ok(Err(RegError::not_found(format!("package {f} is not installed"))));
                }
                let hive = view.family.as_deref().map(private_hive);
                let confined = view.rules.as_ref().filter(|r| r.confined);
                let upper = match (root, &hive, &view.shipped) {
                    // An app container sees only part of the global HKCU (red team finding 4).
                    (Root::CurrentUser, Some(h), _) => match confined {
                        Some(r) => Upper::Confined(h, r),
                        None => Upper::Private(h),
                    },
                    (Root::LocalMachine, _, Some(t)) => Upper::Shipped(t),
                    _ => Upper::None,
                };
                store.registry(root, upper, max, |v| f(v, &path))
            })
        })
        .await
        .map_err(InternalError::from)??;
    Ok(out?)
}

/// 1018 unless the handle's key still exists.
fn still_there(v: &View<'_>, path: &KeyPath) -> std::result::Result<(), RegFail> {
    if v.exists(path)? {
        Ok(())
    } else {
        Err(RegError::new(Win32Error::KeyDeleted, format!("{} has been deleted", path.short()))
            .into())
    }
}

/// 87 when creating `path` would make more than 32 levels in this one call (Windows' bound).
fn levels_to_create(v: &View<'_>, path: &KeyPath) -> std::result::Result<(), RegFail> {
    let mut at = path.clone();
    let mut missing = 0;
    while !v.exists(&at)? {
        missing += 1;
        if missing > model::MAX_CREATE_LEVELS {
            return Err(RegError::parameter(format!(
                "{}: one create makes at most {} levels (create the ancestors first)",
                path.short(),
                model::MAX_CREATE_LEVELS
            ))
            .into());
        }
        let Some(p) = at.parent() else { break };
        at = p;
    }
    Ok(())
}

/// A place in a session's quota of handles and watches (`[limits]
/// registry-handles-per-session`), taken before the request's work: given back when dropped
/// unfilled.
struct Slot<'a> {
    registry: &'a Registry,
    session: u64,
    taken: bool,
}

impl<'a> Slot<'a> {
    /// 1816 when the session holds as many as it may (those being opened counted).
    fn take(cx: &Cx<'a>) -> Result<Slot<'a>> {
        let registry = &cx.shared.registry;
        let mut s = registry.state.lock().expect("registry poisoned");
        cx.session.ensure_open()?;
        let session = cx.caller.session_id;
        let held = s.held.get(&session).copied().unwrap_or(0);
        if held >= cx.shared.config.limits.registry_handles_per_session {
            return Err(win32(
                Win32Error::NotEnoughQuota,
                format!(
                    "this session holds {held} registry handles and watches, the most it may \
                     ([limits] registry-handles-per-session); close some"
                ),
            ));
        }
        *s.held.entry(session).or_default() += 1;
        Ok(Slot { registry, session, taken: true })
    }

    /// Enters the handle in its place (6 if the session ended meanwhile).
    fn fill(mut self, cx: &Cx<'_>, key: OpenKey) -> Result<u64> {
        let mut s = self.registry.state.lock().expect("registry poisoned");
        cx.session.ensure_open()?;
        let id = self.registry.id();
        s.handles.insert((self.session, id), key);
        self.taken = false;
        Ok(id)
    }

    /// Makes the place a watch's; 1816 past `[limits] registry-watches-per-package`.
    fn fill_watch(mut self, cx: &Cx<'_>, watch: Watch) -> Result<u64> {
        let mut s = self.registry.state.lock().expect("registry poisoned");
        cx.session.ensure_open()?;
        if let Some(owner) = &watch.owner {
            let max = cx.shared.config.limits.registry_watches_per_package;
            let n = s.watches_of.entry(owner.clone()).or_default();
            if *n >= max {
                return Err(win32(
                    Win32Error::NotEnoughQuota,
                    format!(
                        "the processes of {owner} hold {n} registry change watches, the most \
                         a package may ([limits] registry-watches-per-package); cancel some"
                    ),
                ));
            }
            *n += 1;
        }
        let id = self.registry.id();
        s.watches.insert(id, watch);
        self.taken = false;
        Ok(id)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.taken {
            let mut s = self.registry.state.lock().expect("registry poisoned");
            if let Some(h) = s.held.get_mut(&self.session) {
                *h = h.saturating_sub(1);
            }
        }
    }
}

/// What an open found.
enum Opened {
    /// The key (as stored), whether this call created it, and the changes it made.
    Key(KeyPath, bool, Vec<Change>),
    /// No such key in the view; `hidden`: the global hive has one the view does not show.
    Missing { hidden: bool },
}

async fn open(cx: &Cx<'_>, o: wire::OpenKey, create: bool) -> Result<CreatedKey> {
    let base = resolve(cx, o.parent, o.package.as_deref()).await?;
    let path = base.path.join(&o.subkey)?;
    let layer = target(&base.view, &path);
    let refused = layer.is_err();
    let key = OpenKey { view: base.view.clone(), path };
    let base_path = base.path.clone();
    // The handle's place in the session's quota, taken before anything is committed (red team
    // finding 12: a create refused its handle, but the key stayed).
    let slot = Slot::take(cx)?;
    let out = run(cx.shared, &key, move |v, path| {
        still_there(v, &base_path)?;
        if v.exists(path)? {
            return Ok(Opened::Key(v.stored(path)?, false, Vec::new()));
        }
        if !create {
            return Ok(Opened::Missing { hidden: v.hidden(path)? });
        }
        levels_to_create(v, path)?;
        let (created, changes) = v.create(path, layer?)?;
        Ok(Opened::Key(v.stored(path)?, created, changes))
    })
    .await;
    let (stored, created, changes) = match out {
        // The key had to be created where this caller may not write: decided and recorded.
        Err(RegistryError::Win32(e)) if refused && e.code == Win32Error::AccessDenied => {
            write_layer(cx, &key.view, &key.path)?;
            return Err(RegistryError::Win32(e));
        }
        Ok(Opened::Missing { hidden }) => {
            if hidden {
                read_refused(cx, &key);
            }
            return Err(win32(
                Win32Error::FileNotFound,
                format!("{} does not exist", key.path.short()),
            ));
        }
        Ok(Opened::Key(stored, created, changes)) => (stored, created, changes),
        Err(e) => return Err(e),
    };
    notify(cx.shared, &changes);
    let handle = slot.fill(cx, OpenKey { view: key.view, path: stored })?;
    Ok(CreatedKey { handle, disposition: if created { 1 } else { 2 } })
}

/// A key of the global hive the view does not show (an app container's HKCU): the refusal
/// is decided and recorded (`appipc why`); the caller hears only "not found", as for a key
/// nobody has.
fn read_refused(cx: &Cx<'_>, key: &OpenKey) {
    let op = Operation::ReadRegistry {
        key: &key.path,
        rules: key.view.rules.as_ref(),
        view: key.view.family.as_deref().unwrap_or(""),
    };
    let _ = cx.enforce(op);
}

async fn set_value(cx: &Cx<'_>, s: wire::SetValue) -> Result<()> {
    let key = resolve(cx, s.handle, None).await?;
    model::check_value_name(&s.name)?;
    let value = RegValue::new(ValueType::from_value(s.value_type)?, s.data.into())?;
    let layer = write_layer(cx, &key.view, &key.path)?;
    let changes = run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        v.set(path, &s.name, &value, layer)
    })
    .await?;
    notify(cx.shared, &changes);
    Ok(())
}

fn info(name: String, v: RegValue, layer: Layer) -> RegValueInfo {
    RegValueInfo {
        name,
        value_type: v.ty.value(),
        data: v.data.into(),
        layer: layer.describe().to_owned(),
    }
}

/// 234 when `len` is more than the caller's buffer.
fn fits(len: usize, max: Option<u32>, what: &str) -> std::result::Result<(), RegFail> {
    match max {
        Some(m) if len > m as usize => Err(RegError::new(
            Win32Error::MoreData,
            format!("{what} needs {len}; the buffer holds {m}"),
        )
        .into()),
        _ => Ok(()),
    }
}

async fn query_value(cx: &Cx<'_>, q: wire::QueryValue) -> Result<RegValueInfo> {
    let key = resolve(cx, q.handle, None).await?;
    model::check_value_name(&q.name)?;
    run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        let Some((name, value, layer)) = v.value(path, &q.name)? else {
            return Err(RegError::not_found(format!(
                "{} has no value {:?}",
                path.short(),
                model::shorten(&q.name)
            ))
            .into());
        };
        fits(value.data.len(), q.max_data, "the value's data (bytes)")?;
        Ok(info(name, value, layer))
    })
    .await
}

async fn delete_value(cx: &Cx<'_>, d: wire::DeleteValue) -> Result<()> {
    let key = resolve(cx, d.handle, None).await?;
    model::check_value_name(&d.name)?;
    let layer = write_layer(cx, &key.view, &key.path)?;
    let changes = run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        v.delete_value(path, &d.name, layer)
    })
    .await?;
    notify(cx.shared, &changes);
    Ok(())
}

async fn delete_key(cx: &Cx<'_>, handle: u64, subkey: &str, tree: bool) -> Result<()> {
    let base = resolve(cx, handle, None).await?;
    let path = base.path.join(subkey)?;
    let layer = write_layer(cx, &base.view, &path)?;
    let keep_self = tree && subkey.is_empty();
    let key = OpenKey { view: base.view, path: path.clone() };
    let base_path = base.path;
    let changes = run(cx.shared, &key, move |v, path| {
        still_there(v, &base_path)?;
        if !v.exists(path)? {
            return Err(RegError::not_found(format!("{} does not exist", path.short())).into());
        }
        if !tree && !v.subkeys(path)?.is_empty() {
            return Err(RegError::denied(format!(
                "{} has subkeys: RegDeleteKey deletes only a key without subkeys (use \
                 RegDeleteTree)",
                path.short()
            ))
            .into());
        }
        v.delete(path, layer, keep_self)
    })
    .await?;
    notify(cx.shared, &changes);
    Ok(())
}

async fn enum_key(cx: &Cx<'_>, e: wire::EnumKey) -> Result<String> {
    let key = resolve(cx, e.handle, None).await?;
    run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        let names = v.subkeys(path)?;
        let Some(name) = names.into_iter().nth(e.index as usize) else {
            return Err(RegError::new(
                Win32Error::NoMoreItems,
                format!("{} has no subkey {}", path.short(), e.index),
            )
            .into());
        };
        fits(name.encode_utf16().count(), e.max_name, "the subkey's name (characters)")?;
        Ok(name)
    })
    .await
}

async fn enum_value(cx: &Cx<'_>, e: wire::EnumValue) -> Result<RegValueInfo> {
    let key = resolve(cx, e.handle, None).await?;
    run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        let Some((name, value, layer)) = v.value_at(path, e.index as usize)? else {
            return Err(RegError::new(
                Win32Error::NoMoreItems,
                format!("{} has no value {}", path.short(), e.index),
            )
            .into());
        };
        fits(name.encode_utf16().count(), e.max_name, "the value's name (characters)")?;
        fits(value.data.len(), e.max_data, "the value's data (bytes)")?;
        Ok(info(name, value, layer))
    })
    .await
}

async fn key_info(cx: &Cx<'_>, handle: u64) -> Result<RegKeyInfo> {
    let key = resolve(cx, handle, None).await?;
    let writes_to = match target(&key.view, &key.path) {
        Ok(l) => l.describe().to_owned(),
        Err(e) => format!("refused: {}", e.message),
    };
    let package = key.view.family.clone().unwrap_or_default();
    run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        let subkeys = u32::try_from(v.subkeys(path)?.len()).unwrap_or(u32::MAX);
        let values = u32::try_from(v.value_names(path)?.len()).unwrap_or(u32::MAX);
        Ok(RegKeyInfo { path: v.stored(path)?.to_string(), package, writes_to, subkeys, values })
    })
    .await
}

async fn watch(cx: &Cx<'_>, n: wire::NotifyChangeKeyValue) -> Result<u64> {
    if n.filter == 0 || n.filter & !NOTIFY_FILTERS != 0 {
        return Err(win32(
            Win32Error::InvalidParameter,
            format!(
                "notify filter {:#x}: only REG_NOTIFY_CHANGE_NAME 0x1, ATTRIBUTES 0x2, LAST_SET 0x4 and SECURITY 0x8",
                n.filter
            ),
        ));
    }
    let key = resolve(cx, n.handle, None).await?;
    let slot = Slot::take(cx)?;
    let watch = Watch {
        session: cx.caller.session_id,
        handle: n.handle,
        outbox: cx.session.outbox.clone(),
        private: key.view.family.as_deref().map(private_hive),
        rules: key.view.rules.clone(),
        behind: None,
        owner: cx.caller.family_name().map(str::to_ascii_lowercase),
        path: key.path,
        subtree: n.watch_subtree,
        filter: n.filter,
    };
    slot.fill_watch(cx, watch)
}

fn close(cx: &Cx<'_>, handle: u64, watch: bool) -> Result<()> {
    let session = cx.caller.session_id;
    let mut s = cx.shared.registry.state.lock().expect("registry poisoned");
    let gone = if watch {
        let mine = s.watches.get(&handle).is_some_and(|w| w.session == session);
        mine.then(|| {
            s.remove_watch(handle);
            1
        })
    } else if Root::from_handle(handle).is_some() {
        return Ok(());
    } else {
        s.handles
            .remove(&(session, handle))
            .map(|_| 1 + s.remove_watches(|w| w.session == session && w.handle == handle))
    };
    let Some(n) = gone else {
        return Err(win32(
            Win32Error::InvalidHandle,
            format!(
                "{handle:#x} is not a registry {} of this session",
                if watch { "watch" } else { "handle" }
            ),
        ));
    };
    if let Some(h) = s.held.get_mut(&session) {
        *h = h.saturating_sub(n);
    }
    Ok(())
}

/// Whether change `c` concerns watch `w`, and the changed key relative to the watched one.
fn matches(w: &Watch, c: &Change) -> Option<String> {
    let root = w.path.root_key();
    if c.key.root_key() != root {
        return None;
    }
    if c.hive == global_hive(root) {
        // A change of the global hive where the watch's view does not show it all (an app
        // container's HKCU) is not the watch's business (red team finding 4).
        if model::global_at(w.rules.as_ref(), &c.key) != model::Sees::All {
            return None;
        }
    } else if w.private.as_deref() != Some(c.hive.as_str()) {
        return None;
    }
    if c.deleted && w.path.is_at_or_under(&c.key) {
        return Some(String::new());
    }
    if c.bit & w.filter == 0 {
        return None;
    }
    let at = c.key == w.path;
    if !(at || (w.subtree && c.key.is_at_or_under(&w.path))) {
        return None;
    }
    Some(c.key.parts()[w.path.depth()..].join("\\"))
}

/// Sends `KeyChanged` to every watch a committed change concerns. A watch whose event does
/// not fit its session's queue (red team finding 10: it was dropped unheard of) is marked
/// behind: its changes from then on coalesce, and [`deliver_coalesced`] sends them as one
/// once the session has read enough.
fn notify(shared: &Arc<Shared>, changes: &[Change]) {
    if changes.is_empty() {
        return;
    }
    let mut out = Vec::new();
    {
        let mut s = shared.registry.state.lock().expect("registry poisoned");
        for (id, w) in &mut s.watches {
            let Some((c, subkey)) = changes.iter().find_map(|c| Some((c, matches(w, c)?))) else {
                continue;
            };
            let change = c.bit & w.filter.max(1);
            if let Some(bits) = &mut w.behind {
                *bits |= change;
                continue;
            }
            let ev = KeyChanged { watch: *id, change, subkey, coalesced: false };
            out.push((w.session, w.outbox.clone(), ev));
        }
    }
    let mut full = Vec::new();
    for (session, outbox, ev) in out {
        let (watch, change) = (ev.watch, ev.change);
        if let Err(Undeliverable::Full) = outbox.event(ev, Vec::new()) {
            full.push((session, outbox, watch, change));
        }
    }
    if full.is_empty() {
        return;
    }
    let mut start = Vec::new();
    {
        let mut guard = shared.registry.state.lock().expect("registry poisoned");
        let s = &mut *guard;
        for (session, outbox, watch, change) in full {
            if let Some(w) = s.watches.get_mut(&watch) {
                *w.behind.get_or_insert(0) |= change;
                if s.delivering.insert(session) {
                    start.push((session, outbox));
                }
            }
        }
    }
    for (session, outbox) in start {
        tokio::spawn(deliver_coalesced(shared.clone(), session, outbox));
    }
}

/// The coalesced changes of `session`'s watches that are behind, taken (none: the session
/// is no longer delivering, under the same lock).
fn take_coalesced(shared: &Shared, session: u64) -> Vec<KeyChanged> {
    let mut s = shared.registry.state.lock().expect("registry poisoned");
    let out: Vec<KeyChanged> = s
        .watches
        .iter_mut()
        .filter(|(_, w)| w.session == session)
        .filter_map(|(id, w)| {
            let change = w.behind.take()?;
            Some(KeyChanged { watch: *id, change, subkey: String::new(), coalesced: true })
        })
        .collect();
    if out.is_empty() {
        s.delivering.remove(&session);
    }
    out
}

/// Sends a session's coalesced changes (one a watch that is behind), each once its queue has
/// room; one task a session at most, ending when none is left or the session ends.
async fn deliver_coalesced(shared: Arc<Shared>, session: u64, outbox: Arc<Outbox>) {
    loop {
        let mut blocked = false;
        for ev in take_coalesced(&shared, session) {
            let (watch, change) = (ev.watch, ev.change);
            match outbox.event(ev, Vec::new()) {
                Ok(()) => {}
                Err(Undeliverable::Full) => {
                    blocked = true;
                    let mut s = shared.registry.state.lock().expect("registry poisoned");
                    if let Some(w) = s.watches.get_mut(&watch) {
                        *w.behind.get_or_insert(0) |= change;
                    }
                }
                Err(Undeliverable::Gone) => {
                    shared
                        .registry
                        .state
                        .lock()
                        .expect("registry poisoned")
                        .delivering
                        .remove(&session);
                    return;
                }
            }
        }
        if !blocked {
            // Taken again: none left ends the task under the lock that marks watches behind.
            if shared
                .registry
                .state
                .lock()
                .expect("registry poisoned")
                .delivering
                .contains(&session)
            {
                continue;
            }
            return;
        }
        outbox.room_for_event(COALESCED_BYTES).await;
    }
}

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied> {
    use wire::Request as R;
    Ok(match r {
        R::OpenKey(o) => Replied::of::<wire::OpenKey>(open(&cx, o, false).await?.handle),
        R::CreateKey(c) => {
            let o = wire::OpenKey { parent: c.parent, subkey: c.subkey, package: c.package };
            Replied::of::<wire::CreateKey>(open(&cx, o, true).await?)
        }
        R::CloseKey(c) => Replied::of::<wire::CloseKey>(close(&cx, c.handle, false)?),
        R::SetValue(s) => Replied::of::<wire::SetValue>(set_value(&cx, s).await?),
        R::QueryValue(q) => Replied::of::<wire::QueryValue>(query_value(&cx, q).await?),
        R::DeleteValue(d) => Replied::of::<wire::DeleteValue>(delete_value(&cx, d).await?),
        R::DeleteKey(d) => {
            if d.subkey.is_empty() {
                return Err(win32(Win32Error::InvalidParameter, "RegDeleteKey needs a subkey"));
            }
            Replied::of::<wire::DeleteKey>(delete_key(&cx, d.handle, &d.subkey, false).await?)
        }
        R::DeleteTree(d) => {
            Replied::of::<wire::DeleteTree>(delete_key(&cx, d.handle, &d.subkey, true).await?)
        }
        R::EnumKey(e) => Replied::of::<wire::EnumKey>(enum_key(&cx, e).await?),
        R::EnumValue(e) => Replied::of::<wire::EnumValue>(enum_value(&cx, e).await?),
        R::NotifyChangeKeyValue(n) => {
            Replied::of::<wire::NotifyChangeKeyValue>(watch(&cx, n).await?)
        }
        R::CancelNotify(c) => Replied::of::<wire::CancelNotify>(close(&cx, c.watch, true)?),
        R::QueryKeyInfo(q) => Replied::of::<wire::QueryKeyInfo>(key_info(&cx, q.handle).await?),
    })
}
