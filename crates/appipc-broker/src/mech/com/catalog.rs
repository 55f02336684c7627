//! The COM catalog: every class and ProgID of the installed packages, indexed once per change
//! of the installed set (requests look up in constant time, and each permission is parsed
//! once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use appipc_model::manifest::{Guid, Manifest};
use appipc_model::named_objects::SecurityDescriptor;

use crate::Shared;
use crate::repository::InstalledPackage;

/// The longest permission text `appipc com list` shows whole.
const LISTED_PERMISSION: usize = 2048;

/// One class of the catalog.
#[derive(Debug)]
pub(super) struct Class {
    pub(super) pkg: Arc<InstalledPackage>,
    /// The application whose `com-server` block declares it.
    pub(super) app_index: usize,
    /// Its exe server: (block, exe server) indices in that application, and its own index in
    /// the exe server's classes.
    exe: (usize, usize),
    index: usize,
    /// Its ProgIDs (its own, its version-independent one, `prog-id` entries leading to it).
    pub(super) prog_ids: Vec<String>,
    /// The exe server's permission, parsed; `None`: the default (the user's, made per call);
    /// `Some(Err)`: text the broker cannot parse (every activation is refused, saying why).
    pub(super) permission: Option<Result<Arc<SecurityDescriptor>, String>>,
    /// The permission as `List` shows it (`None`: the default), made once per exe server.
    listed: Option<Arc<str>>,
}

impl Class {
    pub(super) fn app(&self) -> &appipc_model::manifest::Application {
        &self.pkg.manifest.applications[self.app_index]
    }

    pub(super) fn exe(&self) -> &appipc_model::manifest::ExeServer {
        &self.app().com_servers[self.exe.0].exe_servers[self.exe.1]
    }

    pub(super) fn class(&self) -> &appipc_model::manifest::ComClass {
        &self.exe().classes[self.index]
    }

    /// The permission as the broker applies it, as SDDL (shortened past 2 KiB).
    pub(super) fn listed_permission(&self, user_sid: &str) -> String {
        match &self.listed {
            Some(text) => text.to_string(),
            None => super::default_permission(user_sid),
        }
    }
}

/// A permission as `List` shows it: its SDDL as enforced, or why it is unusable, shortened
/// past 2 KiB.
fn listed(permission: &Result<Arc<SecurityDescriptor>, String>) -> Arc<str> {
    let text = match permission {
        Ok(sd) => sd.to_sddl(),
        Err(why) => format!("(unusable: {why})"),
    };
    if text.len() <= LISTED_PERMISSION {
        return text.into();
    }
    let mut end = LISTED_PERMISSION;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len()).into()
}

/// The index.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    /// The installed packages it was built from (their records' addresses: a reinstall, an
    /// upgrade or a re-signing replaces a record; the catalog holds the old ones, so an
    /// address is not reused while it is compared).
    built_from: Vec<usize>,
    /// CLSID → its class (of the package that owns it).
    pub(super) classes: HashMap<Guid, Class>,
    /// Lower-case ProgID → CLSID.
    prog_ids: HashMap<String, Guid>,
}

impl Catalog {
    /// The class a ProgID names (case-insensitive).
    pub(super) fn prog_id(&self, name: &str) -> Option<Guid> {
        self.prog_ids.get(&name.to_ascii_lowercase()).copied()
    }

    /// The classes in CLSID order.
    pub(super) fn sorted(&self) -> Vec<(&Guid, &Class)> {
        let mut v: Vec<(&Guid, &Class)> = self.classes.iter().collect();
        v.sort_by_key(|(g, _)| **g);
        v
    }

    fn build(mut packages: Vec<Arc<InstalledPackage>>, built_from: Vec<usize>) -> Catalog {
        // Should two packages declare one name (installs that raced the conflict check), the
        // one installed first owns it, whatever the names' order.
        packages.sort_by(|a, b| {
            (a.installed_at, a.family_name.as_str()).cmp(&(b.installed_at, b.family_name.as_str()))
        });
        let mut classes: HashMap<Guid, Class> = HashMap::new();
        let mut prog_ids: HashMap<String, Guid> = HashMap::new();
        for pkg in &packages {
            let names = declared_prog_ids(&pkg.manifest);
            let mut by_class: HashMap<Guid, Vec<String>> = HashMap::new();
            for (p, g) in &names {
                by_class.entry(*g).or_default().push(p.clone());
            }
            for (app_index, app) in pkg.manifest.applications.iter().enumerate() {
                for (b, block) in app.com_servers.iter().enumerate() {
                    for (e, exe) in block.exe_servers.iter().enumerate() {
                        let permission = exe.launch_and_activation_permission.as_ref().map(|t| {
                            SecurityDescriptor::from_sddl(t)
                                .map(Arc::new)
                                .map_err(|e| format!("its permission cannot be read: {e}"))
                        });
                        let shown = permission.as_ref().map(listed);
                        for (index, c) in exe.classes.iter().enumerate() {
                            if classes.contains_key(&c.id) {
                                tracing::warn!(clsid = %c.id, package = %pkg.family_name,
                                    "a COM class another package declares; the first installed keeps it");
                                continue;
                            }
                            let mut own = by_class.remove(&c.id).unwrap_or_default();
                            own.sort_by_key(|p| p.to_ascii_lowercase());
                            own.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
                            classes.insert(
                                c.id,
                                Class {
                                    pkg: pkg.clone(),
                                    app_index,
                                    exe: (b, e),
                                    index,
                                    prog_ids: own,
                                    permission: permission.clone(),
                                    listed: shown.clone(),
                                },
                            );
                        }
                    }
                }
            }
            for (name, g) in names {
                // A ProgID names a class of its own package only.
                if classes.get(&g).is_some_and(|c| Arc::ptr_eq(&c.pkg, pkg)) {
                    prog_ids.entry(name.to_ascii_lowercase()).or_insert(g);
                }
            }
        }
        Catalog { built_from, classes, prog_ids }
    }
}

/// The ProgIDs that name classes in a manifest, `(ProgID, CLSID)`: `prog-id` entries
/// (their `current-version` links followed) first, then the classes' own.
pub(super) fn declared_prog_ids(manifest: &Manifest) -> Vec<(String, Guid)> {
    let mut v = Vec::new();
    for app in &manifest.applications {
        for block in &app.com_servers {
            let resolved = block.resolved_prog_ids();
            for p in &block.prog_ids {
                if let Some(Some(g)) = resolved.get(&p.id.to_ascii_lowercase()) {
                    v.push((p.id.clone(), *g));
                }
            }
        }
    }
    for app in &manifest.applications {
        for block in &app.com_servers {
            for (_, c) in block.classes() {
                for p in [&c.prog_id, &c.version_independent_prog_id].into_iter().flatten() {
                    v.push((p.clone(), c.id));
                }
            }
        }
    }
    v
}

/// The catalog of the packages installed now (rebuilt when that set changed).
pub(super) fn current(cache: &Mutex<Arc<Catalog>>, shared: &Shared) -> Arc<Catalog> {
    let packages = shared.repository.all();
    let mut key: Vec<usize> = packages.iter().map(|p| Arc::as_ptr(p) as usize).collect();
    key.sort_unstable();
    {
        let c = cache.lock().expect("catalog poisoned");
        if c.built_from == key {
            return c.clone();
        }
    }
    // Built outside the lock: other requests go on with the catalog they have meanwhile.
    let built = Arc::new(Catalog::build(packages, key));
    *cache.lock().expect("catalog poisoned") = built.clone();
    built
}
