//! The package repository: install, upgrade, remove, look up.
//!
//! Installed files live in `HOME/packages/<full name>/`, read-only; app data in
//! `HOME/data/<family name>/{LocalState,LocalCache,TempState,RoamingState}`, kept across
//! upgrades and removed with the package. The database row is the commit point: files are
//! staged and renamed into place before it is written, and anything on disk that no row
//! names is swept at start-up, so a crash at any step loses nothing that was acknowledged.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use appipc_model::identity::{AppId, PackageFamilyName, PackageFullName};
use appipc_model::manifest::{self, Application, Manifest};
use appipc_model::policy::{NotGranted, grant_capabilities};
use appipc_model::sid::{self, Sid};
use appipc_wire::caller::TrustLevel;
use appipc_wire::protocol::packages::{AppInfo, InstallOutcome, PackageInfo};
use sha2::{Digest, Sha256};

use crate::config::Paths;
use crate::error::InternalError;
use crate::mech::packages::PackagesError;
use crate::state::{PackageRow, Store};

type Result<T, E = PackagesError> = std::result::Result<T, E>;

fn io(what: impl Into<String>, e: std::io::Error) -> PackagesError {
    PackagesError::Internal(InternalError::io(what, e))
}

/// The app data folders every package gets (Windows' `ApplicationData` locations).
pub const APP_DATA_FOLDERS: [&str; 4] = ["LocalState", "LocalCache", "TempState", "RoamingState"];

/// An installed package, parsed once.
#[derive(Debug)]
pub struct InstalledPackage {
    /// Its manifest.
    pub manifest: Manifest,
    /// The manifest's text as installed (decisions name its lines).
    pub manifest_text: String,
    /// The capabilities granted at install.
    pub granted: Vec<String>,
    /// Declared capabilities not granted, and why.
    pub not_granted: Vec<NotGranted>,
    /// Full name.
    pub full_name: PackageFullName,
    /// Family name.
    pub family_name: PackageFamilyName,
    /// Where its files are (read-only).
    pub install_dir: PathBuf,
    /// Root of its app data folders.
    pub data_dir: PathBuf,
    /// SHA-256 over its files.
    pub content_hash: String,
    /// Seconds since the epoch.
    pub installed_at: u64,
    /// AppContainer SID.
    pub package_sid: Sid,
}

impl InstalledPackage {
    /// The application with this id (case-insensitive, as Windows), or the first one.
    pub fn application(&self, id: Option<&AppId>) -> Option<&Application> {
        match id {
            None => self.manifest.applications.first(),
            Some(id) => self
                .manifest
                .applications
                .iter()
                .find(|a| a.id.as_str().eq_ignore_ascii_case(id.as_str())),
        }
    }

    /// The trust level an application of this package runs at.
    pub fn trust_of(app: &Application) -> TrustLevel {
        match app.trust_level {
            manifest::TrustLevel::MediumIL => TrustLevel::FullTrust,
            _ => TrustLevel::AppContainer,
        }
    }

    /// Declared capability names.
    pub fn declared_capabilities(&self) -> Vec<String> {
        self.manifest.capabilities.names().into_iter().map(str::to_owned).collect()
    }

    /// Whether a capability was granted (case-insensitive).
    pub fn is_granted(&self, name: &str) -> bool {
        self.granted.iter().any(|c| c.eq_ignore_ascii_case(name))
    }

    /// The listing form.
    pub fn info(&self) -> PackageInfo {
        let id = &self.manifest.identity;
        PackageInfo {
            name: id.name.to_string(),
            version: id.version.to_string(),
            publisher: id.publisher.to_string(),
            publisher_id: self.family_name.publisher_id().to_string(),
            family_name: self.family_name.to_string(),
            full_name: self.full_name.to_string(),
            capabilities: self.declared_capabilities(),
            granted_capabilities: self.granted.clone(),
            applications: self
                .manifest
                .applications
                .iter()
                .map(|a| AppInfo {
                    id: a.id.to_string(),
                    executable: a.executable.as_str().to_owned(),
                    trust: Self::trust_of(a),
                })
                .collect(),
            install_location: self.install_dir.display().to_string(),
            data_location: self.data_dir.display().to_string(),
            display_name: Some(self.manifest.properties.display_name.clone()),
            package_sid: self.package_sid.to_string(),
            installed_at: self.installed_at,
        }
    }
}

/// Installed packages: the database plus an in-memory index.
#[derive(Debug)]
pub struct Repository {
    paths: Paths,
    store: Mutex<Store>,
    by_family: RwLock<HashMap<String, Arc<InstalledPackage>>>,
    /// Families being installed, upgraded or removed right now (lower case).
    busy: Arc<Mutex<HashSet<String>>>,
}

fn key(family: &str) -> String {
    family.to_ascii_lowercase()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A deployment in progress: its family is busy (launches and other deployments of it are
/// refused) until this is dropped.
#[derive(Debug)]
pub struct Deployment {
    busy: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.busy.lock().expect("busy set poisoned").remove(&self.key);
    }
}

impl Repository {
    /// Opens the repository: database, index, and a sweep of files no row names.
    pub fn open(paths: &Paths) -> Result<Repository> {
        for dir in [paths.home.clone(), paths.packages(), paths.app_data(), paths.logs()] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| io(format!("creating {}", dir.display()), e))?;
        }
        let store = Store::open(&paths.database()).map_err(PackagesError::Internal)?;
        let mut index = HashMap::new();
        for row in store.packages().map_err(PackagesError::Internal)? {
            match Self::load_row(paths, &row) {
                Ok(p) => {
                    index.insert(key(&row.family_name), Arc::new(p));
                }
                Err(e) => tracing::error!(
                    package = %row.full_name,
                    error = %e,
                    "installed package cannot be loaded; it stays recorded but unusable"
                ),
            }
        }
        let registry = Repository {
            paths: paths.clone(),
            store: Mutex::new(store),
            by_family: RwLock::new(index),
            busy: Arc::new(Mutex::new(HashSet::new())),
        };
        registry.sweep()?;
        Ok(registry)
    }

    fn load_row(paths: &Paths, row: &PackageRow) -> Result<InstalledPackage> {
        let manifest = manifest::parse(&row.manifest)
            .map_err(|e| PackagesError::InvalidPackage(format!("stored manifest: {e}")))?;
        Ok(Self::describe(paths, manifest, PathBuf::from(&row.install_dir), row))
    }

    fn describe(
        paths: &Paths,
        manifest: Manifest,
        install_dir: PathBuf,
        row: &PackageRow,
    ) -> InstalledPackage {
        let family_name = manifest.identity.family_name();
        let (derived, not_granted) = grant_capabilities(&manifest.capabilities);
        InstalledPackage {
            manifest_text: row.manifest.clone(),
            granted: row.granted_capabilities.clone().unwrap_or(derived),
            not_granted,
            full_name: manifest.identity.full_name(),
            data_dir: paths.app_data().join(family_name.as_str()),
            package_sid: sid::appcontainer_sid(family_name.as_str()),
            family_name,
            manifest,
            install_dir,
            content_hash: row.content_hash.clone(),
            installed_at: row.installed_at,
        }
    }

    /// Removes package folders that no installed package owns (left by a crash mid-install).
    fn sweep(&self) -> Result<()> {
        let owned: HashSet<PathBuf> = self
            .by_family
            .read()
            .expect("index poisoned")
            .values()
            .map(|p| p.install_dir.clone())
            .collect();
        let dir = self.paths.packages();
        let entries =
            std::fs::read_dir(&dir).map_err(|e| io(format!("reading {}", dir.display()), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !owned.contains(&path) {
                tracing::warn!(path = %path.display(), "removing package files no installed package owns");
                if let Err(e) = remove_tree(&path) {
                    tracing::error!(path = %path.display(), error = %e, "cannot remove stale package files");
                }
            }
        }
        Ok(())
    }

    /// The installed package of a family (case-insensitive).
    pub fn get(&self, family: &str) -> Option<Arc<InstalledPackage>> {
        self.by_family.read().expect("index poisoned").get(&key(family)).cloned()
    }

    /// Every installed package, by family name.
    pub fn all(&self) -> Vec<Arc<InstalledPackage>> {
        let mut v: Vec<_> =
            self.by_family.read().expect("index poisoned").values().cloned().collect();
        v.sort_by(|a, b| a.family_name.as_str().cmp(b.family_name.as_str()));
        v
    }

    /// Runs `f` with the state database (file tokens live there too).
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        f(&mut self.store.lock().expect("store poisoned"))
    }

    /// True while the family is being installed, upgraded or removed.
    pub fn is_busy(&self, family: &str) -> bool {
        self.busy.lock().expect("busy set poisoned").contains(&key(family))
    }

    /// Starts a deployment of a family; refused while another one of it runs.
    pub fn begin_deployment(&self, family: &str) -> Result<Deployment> {
        let k = key(family);
        if !self.busy.lock().expect("busy set poisoned").insert(k.clone()) {
            return Err(PackagesError::Busy(format!(
                "package family {family} is being deployed by another request; try again"
            )));
        }
        Ok(Deployment { busy: self.busy.clone(), key: k })
    }

    /// Installs or upgrades the package in `source`. Blocking (file copies): call from a
    /// blocking thread. The package is copied into a private staging folder first and the
    /// manifest validated and recorded from that copy, so what is installed is what was
    /// checked.
    pub fn install(
        &self,
        source: &Path,
    ) -> Result<(Arc<InstalledPackage>, InstallOutcome, Option<String>)> {
        if !source.is_absolute() {
            return Err(PackagesError::BadRequest(format!(
                "package path {} is not absolute",
                source.display()
            )));
        }
        let staging = self.paths.packages().join(format!(".staging-{}", random_suffix()));
        let staged = copy_tree(source, &staging).and_then(|hash| {
            let text =
                std::fs::read_to_string(staging.join(manifest::MANIFEST_FILE)).map_err(|e| {
                    io(format!("reading {}", source.join(manifest::MANIFEST_FILE).display()), e)
                })?;
            let manifest = manifest::load(&staging).map_err(|e| {
                PackagesError::InvalidPackage(
                    e.to_string()
                        .replace(&staging.display().to_string(), &source.display().to_string()),
                )
            })?;
            Ok((hash, text, manifest))
        });
        let (hash, text, manifest) = match staged {
            Ok(x) => x,
            Err(e) => {
                let _ = remove_tree(&staging);
                return Err(e);
            }
        };
        let result = self.install_staged(&staging, hash, text, manifest);
        if result.is_err() || staging.exists() {
            let _ = remove_tree(&staging);
        }
        result
    }

    fn install_staged(
        &self,
        staging: &Path,
        hash: String,
        text: String,
        manifest: Manifest,
    ) -> Result<(Arc<InstalledPackage>, InstallOutcome, Option<String>)> {
        let family = manifest.identity.family_name();
        let full = manifest.identity.full_name();
        let _busy = self.begin_deployment(family.as_str())?;

        let existing = self.get(family.as_str());
        if let Some(old) = &existing {
            let old_v = old.manifest.identity.version;
            let new_v = manifest.identity.version;
            if old_v > new_v {
                return Err(PackagesError::Downgrade(format!(
                    "cannot install {full}: version {old_v} of {family} is already installed and \
                     {new_v} is older (remove it first to go back)"
                )));
            }
            if old_v == new_v {
                if old.full_name == full && old.content_hash == hash {
                    return Ok((old.clone(), InstallOutcome::AlreadyInstalled, None));
                }
                return Err(PackagesError::Conflict(format!(
                    "cannot install {full}: {} is installed with the same version but different \
                     content; raise the version to upgrade",
                    old.full_name
                )));
            }
        }

        let target = self.paths.packages().join(full.to_string());
        if target.exists() {
            // Not owned by any row (else it would be the same version): a leftover.
            remove_tree(&target)?;
        }
        std::fs::rename(staging, &target)
            .map_err(|e| io(format!("moving package into {}", target.display()), e))?;
        make_read_only(&target)?;

        let data_dir = self.paths.app_data().join(family.as_str());
        for f in APP_DATA_FOLDERS {
            let d = data_dir.join(f);
            std::fs::create_dir_all(&d).map_err(|e| io(format!("creating {}", d.display()), e))?;
        }

        let (granted, _) = grant_capabilities(&manifest.capabilities);
        let row = PackageRow {
            family_name: family.to_string(),
            full_name: full.to_string(),
            manifest: text,
            content_hash: hash,
            install_dir: target.display().to_string(),
            installed_at: now(),
            granted_capabilities: Some(granted),
        };
        // The commit point.
        let replaced = match self.store.lock().expect("store poisoned").put_package(&row) {
            Ok(r) => r,
            Err(e) => {
                let _ = remove_tree(&target);
                return Err(PackagesError::Internal(e));
            }
        };
        let installed = Arc::new(Self::describe(&self.paths, manifest, target, &row));
        self.by_family
            .write()
            .expect("index poisoned")
            .insert(key(family.as_str()), installed.clone());
        let outcome = match &replaced {
            Some(old) => {
                if old.install_dir != row.install_dir
                    && let Err(e) = remove_tree(Path::new(&old.install_dir))
                {
                    tracing::warn!(path = %old.install_dir, error = %e, "cannot remove old version's files");
                }
                InstallOutcome::Upgraded
            }
            None => InstallOutcome::Installed,
        };
        tracing::info!(package = %full, ?outcome, "installed");
        Ok((installed, outcome, replaced.map(|r| r.full_name)))
    }

    /// Removes a package: record, files and app data. The caller has begun the deployment
    /// and stopped the package's processes.
    pub fn remove(&self, family: &str, _deployment: Deployment) -> Result<Arc<InstalledPackage>> {
        let Some(pkg) = self.get(family) else {
            return Err(PackagesError::NotInstalled(format!("package {family} is not installed")));
        };
        self.store
            .lock()
            .expect("store poisoned")
            .delete_package(pkg.family_name.as_str())
            .map_err(PackagesError::Internal)?;
        self.by_family.write().expect("index poisoned").remove(&key(family));
        for dir in [&pkg.install_dir, &pkg.data_dir] {
            if let Err(e) = remove_tree(dir) {
                tracing::warn!(path = %dir.display(), error = %e, "cannot remove package folder");
            }
        }
        tracing::info!(package = %pkg.full_name, "removed");
        Ok(pkg)
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Copies a package folder, refusing anything but regular files and folders, and returns the
/// SHA-256 over its content (paths, executable bits and bytes, in sorted order).
pub fn copy_tree(source: &Path, target: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    copy_dir(source, target, Path::new(""), &mut hasher)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn copy_dir(src: &Path, dst: &Path, rel: &Path, hasher: &mut Sha256) -> Result<()> {
    std::fs::create_dir(dst).map_err(|e| io(format!("creating {}", dst.display()), e))?;
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(|e| io(format!("reading {}", src.display()), e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| io(format!("reading {}", src.display()), e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let from = entry.path();
        let to = dst.join(&name);
        let rel = rel.join(&name);
        let meta = std::fs::symlink_metadata(&from)
            .map_err(|e| io(format!("reading {}", from.display()), e))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            hasher.update(format!("D {}\n", rel.display()));
            copy_dir(&from, &to, &rel, hasher)?;
        } else if ft.is_file() {
            let exec = meta.permissions().mode() & 0o111 != 0;
            hasher.update(format!("F {} {} {}\n", rel.display(), u8::from(exec), meta.len()));
            copy_file(&from, &to, hasher)?;
            let mode = if exec { 0o755 } else { 0o644 };
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io(format!("setting mode of {}", to.display()), e))?;
        } else {
            let kind =
                if ft.is_symlink() { "a symbolic link" } else { "not a regular file or folder" };
            return Err(PackagesError::InvalidPackage(format!(
                "{} is {kind}; a package may contain only regular files and folders",
                from.display()
            )));
        }
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path, hasher: &mut Sha256) -> Result<()> {
    let mut input =
        std::fs::File::open(from).map_err(|e| io(format!("opening {}", from.display()), e))?;
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| io(format!("creating {}", to.display()), e))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf).map_err(|e| io(format!("reading {}", from.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(|e| io(format!("writing {}", to.display()), e))?;
    }
    output.sync_all().map_err(|e| io(format!("syncing {}", to.display()), e))?;
    Ok(())
}

/// Strips write permission from a whole installed tree.
fn make_read_only(root: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(root)
        .map_err(|e| io(format!("reading {}", root.display()), e))?;
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(root).map_err(|e| io(format!("reading {}", root.display()), e))?
        {
            let entry = entry.map_err(|e| io(format!("reading {}", root.display()), e))?;
            make_read_only(&entry.path())?;
        }
    }
    if meta.is_dir() || meta.is_file() {
        let mode = meta.permissions().mode() & !0o222;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io(format!("setting mode of {}", root.display()), e))?;
    }
    Ok(())
}

/// Removes a tree, first giving its folders back the write permission `make_read_only` took.
pub fn remove_tree(root: &Path) -> Result<()> {
    fn writable(p: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(p)?;
        if meta.is_dir() {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
            for e in std::fs::read_dir(p)? {
                writable(&e?.path())?;
            }
        }
        Ok(())
    }
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("reading {}", root.display()), e)),
        Ok(_) => {}
    }
    writable(root).map_err(|e| io(format!("unlocking {}", root.display()), e))?;
    std::fs::remove_dir_all(root).map_err(|e| io(format!("removing {}", root.display()), e))
}
