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
    /// Its exe server: (block, exe server) indices in that application.
    exe: (usize, usize),
    /// Its ProgIDs (its own, its version-independent one, `prog-id` entries leading to it).
    pub(super) prog_ids: Vec<String>,
    /// The exe server's permission, parsed; `None`: the default (the user's, made per call);
    /// `Some(Err)`: text the broker cannot parse (every activation is refused, saying why).
    pub(super) permission: Option<Result<Arc<SecurityDescriptor>, String>>,
}

impl Class {
    pub(super) fn app(&self) -> &appipc_model::manifest::Application {
        &self.pkg.manifest.applications[self.app_index]
    }

    pub(super) fn exe(&self) -> &appipc_model::manifest::ExeServer {
        &self.app().com_servers[self.exe.0].exe_servers[self.exe.1]
    }

    pub(super) fn class(&self, clsid: Guid) -> Option<&appipc_model::manifest::ComClass> {
        self.exe().classes.iter().find(|c| c.id == clsid)
    }

    /// The permission as the broker applies it, as SDDL (shortened past 2 KiB).
    pub(super) fn listed_permission(&self, user_sid: &str) -> String {
        let text = match &self.permission {
            None => super::default_permission(user_sid),
            Some(Ok(sd)) => sd.to_sddl(),
            Some(Err(why)) => format!("(unusable: {why})"),
        };
        if text.len() <= LISTED_PERMISSION {
            return text;
        }
        let mut end = LISTED_PERMISSION;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &text[..end], text.len())
    }
}

/// The index.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    /// The installed full names it was built from.
    built_from: Vec<String>,
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

    fn build(mut packages: Vec<Arc<InstalledPackage>>) -> Catalog {
        let mut built_from: Vec<String> =
            packages.iter().map(|p| p.full_name.to_string()).collect();
        built_from.sort();
        // Should two packages declare one name (installs that raced the conflict check), the
        // one installed first owns it, whatever the names' order.
        packages.sort_by(|a, b| {
            (a.installed_at, a.family_name.as_str()).cmp(&(b.installed_at, b.family_name.as_str()))
        });
        let mut classes: HashMap<Guid, Class> = HashMap::new();
        let mut prog_ids: HashMap<String, Guid> = HashMap::new();
        for pkg in &packages {
            let names = declared_prog_ids(&pkg.manifest);
            for (app_index, app) in pkg.manifest.applications.iter().enumerate() {
                for (b, block) in app.com_servers.iter().enumerate() {
                    for (e, exe) in block.exe_servers.iter().enumerate() {
                        let permission = exe.launch_and_activation_permission.as_ref().map(|t| {
                            SecurityDescriptor::from_sddl(t)
                                .map(Arc::new)
                                .map_err(|e| format!("its permission cannot be read: {e}"))
                        });
                        for c in &exe.classes {
                            if classes.contains_key(&c.id) {
                                tracing::warn!(clsid = %c.id, package = %pkg.family_name,
                                    "a COM class another package declares; the first installed keeps it");
                                continue;
                            }
                            let mut own: Vec<String> = names
                                .iter()
                                .filter(|(_, g)| *g == c.id)
                                .map(|(p, _)| p.clone())
                                .collect();
                            own.sort_by_key(|p| p.to_ascii_lowercase());
                            own.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
                            classes.insert(
                                c.id,
                                Class {
                                    pkg: pkg.clone(),
                                    app_index,
                                    exe: (b, e),
                                    prog_ids: own,
                                    permission: permission.clone(),
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
    let mut names: Vec<String> = packages.iter().map(|p| p.full_name.to_string()).collect();
    names.sort();
    let mut c = cache.lock().expect("catalog poisoned");
    if c.built_from != names {
        *c = Arc::new(Catalog::build(packages));
    }
    c.clone()
}
