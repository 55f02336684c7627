//! `registry`: the registry as MSIX virtualizes it for packaged desktop apps. The broker keeps
//! the hives in its state database (`state::registry`), one transaction per request, and
//! answers each request in the caller's view, which the session decides (never the request):
//!
//! | caller | HKCU | HKLM |
//! |---|---|---|
//! | unpackaged | the global hive | the global hive |
//! | packaged | its package's private hive over the global hive (writes go to the private hive, unless `registry-write-virtualization = false` or the key is under an `excluded-keys` entry, with `unvirtualizedResources` granted) | the package's `Registry.reg` (read-only) over the global hive; writes to other keys go to the global hive from a full-trust process, and are refused (5) to an app container |
//!
//! Deleting in the private hive leaves tombstones that hide the global keys and values. The
//! private hive survives upgrades and is deleted with the package (in the removal's own
//! transaction). An unpackaged caller may open a package's view (`appipc reg --package`).
//!
//! Handles belong to the session that opened them (another session's number is 6) and are
//! counted against `[limits] registry-handles-per-session` (1816 past it); watches
//! (`RegNotifyChangeKeyValue`) too. After each committed change the broker sends a
//! `KeyChanged` event to every matching watch whose view sees the hive written; a session
//! that does not read loses events, the broker's queue for it stays bounded (its outbox).

use std::collections::HashMap;
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
use crate::outbox::Outbox;
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
}

/// The registry's handles, watches and shipped trees.
#[derive(Debug)]
pub struct Registry {
    state: Mutex<State>,
    next: AtomicU64,
    /// Shipped trees by full name, with their family (lower case).
    shipped: Mutex<HashMap<String, (String, Arc<RegTree>)>>,
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
        s.watches.retain(|_, w| w.session != session);
        s.held.remove(&session);
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
    /// once per version. A file that cannot be read gives no keys (logged).
    fn shipped_tree(&self, pkg: &InstalledPackage) -> Arc<RegTree> {
        let full = pkg.full_name.to_string();
        if let Some((_, t)) = self.shipped.lock().expect("registry poisoned").get(&full) {
            return t.clone();
        }
        let tree = match crate::repository::read_shipped(&pkg.install_dir) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(package = %full, error = %e, "the package's Registry.reg is not used");
                RegTree::new()
            }
        };
        let tree = Arc::new(tree);
        let family = pkg.family_name.as_str().to_ascii_lowercase();
        self.shipped.lock().expect("registry poisoned").insert(full, (family, tree.clone()));
        tree
    }
}

fn win32(code: Win32Error, message: impl Into<String>) -> RegistryError {
    RegistryError::Win32(RegError::new(code, message))
}

/// The view of a package, as its process (`confined`) or the user looking at it sees it.
fn package_view(reg: &Registry, pkg: &InstalledPackage, confined: bool) -> ViewOf {
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
        shipped: Some(reg.shipped_tree(pkg)),
    }
}

/// The view a request on a predefined key opens: the caller's own, or (unpackaged callers)
/// the package it names.
fn view_for(cx: &Cx<'_>, package: Option<&str>) -> Result<Arc<ViewOf>> {
    let reg = &cx.shared.registry;
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
    Ok(Arc::new(package_view(reg, &pkg, confined)))
}

/// The key a handle names: a predefined key in the caller's view, or one of its session's.
fn resolve(cx: &Cx<'_>, handle: u64, package: Option<&str>) -> Result<OpenKey> {
    if let Some(root) = Root::from_handle(handle) {
        return Ok(OpenKey { view: view_for(cx, package)?, path: KeyPath::root(root) });
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
                let upper = match (root, &hive, &view.shipped) {
                    (Root::CurrentUser, Some(h), _) => Upper::Private(h),
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
        Err(RegError::new(Win32Error::KeyDeleted, format!("{path} has been deleted")).into())
    }
}

/// Enters a handle for the session, within its quota.
fn enter(cx: &Cx<'_>, key: OpenKey) -> Result<u64> {
    let reg = &cx.shared.registry;
    let mut s = reg.state.lock().expect("registry poisoned");
    cx.session.ensure_open()?;
    let session = cx.caller.session_id;
    let held = s.held.get(&session).copied().unwrap_or(0);
    let max = cx.shared.config.limits.registry_handles_per_session;
    if held >= max {
        return Err(win32(
            Win32Error::NotEnoughQuota,
            format!(
                "this session holds {held} registry handles and watches, the most it may \
                 ([limits] registry-handles-per-session); close some"
            ),
        ));
    }
    let id = reg.id();
    s.handles.insert((session, id), key);
    *s.held.entry(session).or_default() += 1;
    Ok(id)
}

async fn open(cx: &Cx<'_>, o: wire::OpenKey, create: bool) -> Result<CreatedKey> {
    let base = resolve(cx, o.parent, o.package.as_deref())?;
    let path = base.path.join(&o.subkey)?;
    let layer = target(&base.view, &path);
    let refused = layer.is_err();
    let key = OpenKey { view: base.view.clone(), path };
    let base_path = base.path.clone();
    let out = run(cx.shared, &key, move |v, path| {
        still_there(v, &base_path)?;
        if v.exists(path)? {
            return Ok((v.stored(path)?, false, Vec::new()));
        }
        if !create {
            return Err(RegError::not_found(format!("{path} does not exist")).into());
        }
        let (created, changes) = v.create(path, layer?)?;
        Ok((v.stored(path)?, created, changes))
    })
    .await;
    let (stored, created, changes) = match out {
        // The key had to be created where this caller may not write: decided and recorded.
        Err(RegistryError::Win32(e)) if refused && e.code == Win32Error::AccessDenied => {
            write_layer(cx, &key.view, &key.path)?;
            return Err(RegistryError::Win32(e));
        }
        other => other?,
    };
    notify(cx.shared, &changes);
    let handle = enter(cx, OpenKey { view: key.view, path: stored })?;
    Ok(CreatedKey { handle, disposition: if created { 1 } else { 2 } })
}

async fn set_value(cx: &Cx<'_>, s: wire::SetValue) -> Result<()> {
    let key = resolve(cx, s.handle, None)?;
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
    let key = resolve(cx, q.handle, None)?;
    model::check_value_name(&q.name)?;
    run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        let Some((name, value, layer)) = v.value(path, &q.name)? else {
            return Err(RegError::not_found(format!(
                "{path} has no value {:?}",
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
    let key = resolve(cx, d.handle, None)?;
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
    let base = resolve(cx, handle, None)?;
    let path = base.path.join(subkey)?;
    let layer = write_layer(cx, &base.view, &path)?;
    let keep_self = tree && subkey.is_empty();
    let key = OpenKey { view: base.view, path: path.clone() };
    let base_path = base.path;
    let changes = run(cx.shared, &key, move |v, path| {
        still_there(v, &base_path)?;
        if !v.exists(path)? {
            return Err(RegError::not_found(format!("{path} does not exist")).into());
        }
        if !tree && !v.subkeys(path)?.is_empty() {
            return Err(RegError::denied(format!(
                "{path} has subkeys: RegDeleteKey deletes only a key without subkeys (use \
                 RegDeleteTree)"
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
    let key = resolve(cx, e.handle, None)?;
    run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        let names = v.subkeys(path)?;
        let Some(name) = names.into_iter().nth(e.index as usize) else {
            return Err(RegError::new(
                Win32Error::NoMoreItems,
                format!("{path} has no subkey {}", e.index),
            )
            .into());
        };
        fits(name.encode_utf16().count(), e.max_name, "the subkey's name (characters)")?;
        Ok(name)
    })
    .await
}

async fn enum_value(cx: &Cx<'_>, e: wire::EnumValue) -> Result<RegValueInfo> {
    let key = resolve(cx, e.handle, None)?;
    run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        let Some((name, value, layer)) = v.values(path)?.into_iter().nth(e.index as usize) else {
            return Err(RegError::new(
                Win32Error::NoMoreItems,
                format!("{path} has no value {}", e.index),
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
    let key = resolve(cx, handle, None)?;
    let writes_to = match target(&key.view, &key.path) {
        Ok(l) => l.describe().to_owned(),
        Err(e) => format!("refused: {}", e.message),
    };
    let package = key.view.family.clone().unwrap_or_default();
    run(cx.shared, &key, move |v, path| {
        still_there(v, path)?;
        let subkeys = u32::try_from(v.subkeys(path)?.len()).unwrap_or(u32::MAX);
        let values = u32::try_from(v.values(path)?.len()).unwrap_or(u32::MAX);
        Ok(RegKeyInfo { path: v.stored(path)?.to_string(), package, writes_to, subkeys, values })
    })
    .await
}

fn watch(cx: &Cx<'_>, n: wire::NotifyChangeKeyValue) -> Result<u64> {
    if n.filter == 0 || n.filter & !NOTIFY_FILTERS != 0 {
        return Err(win32(
            Win32Error::InvalidParameter,
            format!(
                "notify filter {:#x}: only REG_NOTIFY_CHANGE_NAME 0x1, ATTRIBUTES 0x2, LAST_SET 0x4 and SECURITY 0x8",
                n.filter
            ),
        ));
    }
    let key = resolve(cx, n.handle, None)?;
    let reg = &cx.shared.registry;
    let mut s = reg.state.lock().expect("registry poisoned");
    cx.session.ensure_open()?;
    let session = cx.caller.session_id;
    let held = s.held.get(&session).copied().unwrap_or(0);
    if held >= cx.shared.config.limits.registry_handles_per_session {
        return Err(win32(
            Win32Error::NotEnoughQuota,
            format!(
                "this session holds {held} registry handles and watches, the most it may ([limits] registry-handles-per-session)"
            ),
        ));
    }
    let id = reg.id();
    let private = key.view.family.as_deref().map(private_hive);
    s.watches.insert(
        id,
        Watch {
            session,
            handle: n.handle,
            outbox: cx.session.outbox.clone(),
            private,
            path: key.path,
            subtree: n.watch_subtree,
            filter: n.filter,
        },
    );
    *s.held.entry(session).or_default() += 1;
    Ok(id)
}

fn close(cx: &Cx<'_>, handle: u64, watch: bool) -> Result<()> {
    let session = cx.caller.session_id;
    let mut s = cx.shared.registry.state.lock().expect("registry poisoned");
    let gone = if watch {
        match s.watches.get(&handle) {
            Some(w) if w.session == session => s.watches.remove(&handle).map(|_| 1),
            _ => None,
        }
    } else if Root::from_handle(handle).is_some() {
        return Ok(());
    } else {
        s.handles.remove(&(session, handle)).map(|_| {
            let before = s.watches.len();
            s.watches.retain(|_, w| !(w.session == session && w.handle == handle));
            1 + before - s.watches.len()
        })
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
    if c.hive != global_hive(root) && w.private.as_deref() != Some(c.hive.as_str()) {
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

/// Sends `KeyChanged` to every watch a committed change concerns (a full queue drops it).
fn notify(shared: &Shared, changes: &[Change]) {
    if changes.is_empty() {
        return;
    }
    let mut out = Vec::new();
    {
        let s = shared.registry.state.lock().expect("registry poisoned");
        for (id, w) in &s.watches {
            for c in changes {
                if let Some(subkey) = matches(w, c) {
                    out.push((
                        w.outbox.clone(),
                        KeyChanged { watch: *id, change: c.bit & w.filter.max(1), subkey },
                    ));
                    break;
                }
            }
        }
    }
    for (outbox, ev) in out {
        if outbox.event(ev, Vec::new()).is_err()
            && let Some(n) = shared.log_limiter.allow("registry-event-dropped")
        {
            tracing::debug!(
                suppressed = n,
                "a registry change event was dropped (its session does not read)"
            );
        }
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
        R::NotifyChangeKeyValue(n) => Replied::of::<wire::NotifyChangeKeyValue>(watch(&cx, n)?),
        R::CancelNotify(c) => Replied::of::<wire::CancelNotify>(close(&cx, c.watch, true)?),
        R::QueryKeyInfo(q) => Replied::of::<wire::QueryKeyInfo>(key_info(&cx, q.handle).await?),
    })
}
