//! The package repository: install, upgrade, remove, look up; and the deployment policy's
//! state (the trust store, developer mode).
//!
//! Installed files live in `HOME/packages/<full name>/`, read-only; app data in
//! `HOME/data/<family name>/{LocalState,LocalCache,TempState,RoamingState}`, kept across
//! upgrades and removed with the package. A package is first copied into a private staging
//! folder ([`staging`]), from a package file the client passed as an fd or from a folder, and
//! everything is checked on that copy; the database row is the commit point: files are
//! staged and renamed into place (and fsynced, with their parent folders) before it is
//! written.
//!
//! Every install, upgrade and removal is journaled (`state::operations`): written before it
//! touches the file system, marked committed in the transaction that changes its row, deleted
//! when its files are final. At start-up [`Repository::recover`] rolls back what was not
//! committed (the new version's folder goes; an install's app data too) and completes what was
//! (the old version's folder goes; a removal's app data too), then sweeps what no row names
//! (package folders, app data, staging folders), so a crash at any step loses nothing that was
//! acknowledged and leaves nothing a later install could inherit.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use appipc_model::identity::{AppId, PackageFamilyName, PackageFullName};
use appipc_model::manifest::{self, Application, Manifest};
use appipc_model::package_file::PublicKey;
use appipc_model::policy::{CUSTOM_NOT_GRANTED, NotGranted, grant_capabilities};
use appipc_model::registry::{KeyPath, RegTree, regfile};
use appipc_model::sccd;
use appipc_model::sid::{self, Sid};
use appipc_wire::caller::TrustLevel;
use appipc_wire::protocol::packages::{AppInfo, InstallOutcome, PackageInfo, Signer};

use crate::config::{PackageLimits, Paths};
use crate::error::InternalError;
use crate::error::PackagesError;
use crate::state::{
    DEVELOPER_MODE, OperationKind, OperationRow, PackageRow, SignerRow, Store, TrustedKeyRow,
};

pub(crate) mod staging;

pub(crate) use staging::{OpenedFile, Staged};

type Result<T, E = PackagesError> = std::result::Result<T, E>;

pub(crate) fn io(what: impl Into<String>, e: std::io::Error) -> PackagesError {
    PackagesError::Internal(InternalError::io(what, e))
}

/// Reads one custom capability descriptor of a staged package (a regular file the manifest
/// names; the staged copy is the broker's own), at most [`sccd::MAX_DESCRIPTOR_SIZE`] bytes.
fn read_descriptor(path: &Path) -> Result<sccd::SignedDescriptor, sccd::MalformedDescriptor> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| sccd::MalformedDescriptor(format!("cannot read it: {e}"));
    let f = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    f.take(sccd::MAX_DESCRIPTOR_SIZE as u64 + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| sccd::MalformedDescriptor("not UTF-8 text".to_owned()))?;
    sccd::SignedDescriptor::parse(&text)
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
    /// Who signed it (`None`: installed from a folder in developer mode).
    pub signer: Option<SignerRow>,
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
            signer: self
                .signer
                .as_ref()
                .map(|s| Signer { key_id: s.key_id.clone(), publisher: s.publisher.clone() }),
            log_location: None,
        }
    }
}

/// A key of the trust store, parsed.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// As stored.
    pub row: TrustedKeyRow,
    /// Parsed (its binding verified).
    pub key: PublicKey,
}

/// Installed packages and the deployment policy: the database plus an in-memory index of
/// both, so that deciding needs no I/O.
#[derive(Debug)]
pub struct Repository {
    paths: Paths,
    limits: PackageLimits,
    store: Mutex<Store>,
    by_family: RwLock<HashMap<String, Arc<InstalledPackage>>>,
    /// Families being installed, upgraded or removed right now (lower case).
    busy: Arc<Mutex<HashSet<String>>>,
    trusted: RwLock<Vec<TrustedKey>>,
    developer_mode: AtomicBool,
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
    /// Opens the repository: database, index, trust store, developer mode. Call
    /// [`Repository::recover`] once the processes of interrupted deployments are ended.
    pub fn open(paths: &Paths, limits: &PackageLimits) -> Result<Repository> {
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
        let mut trusted = Vec::new();
        for row in store.trusted_keys().map_err(PackagesError::Internal)? {
            match PublicKey::from_file_text(&row.public_key) {
                Ok(key)
                    if key.id().to_string() == row.key_id
                        && key.publisher().as_str() == row.publisher =>
                {
                    trusted.push(TrustedKey { row, key })
                }
                Ok(_) => {
                    tracing::error!(key = %row.key_id, "a trusted key's record does not match its key; ignored")
                }
                Err(e) => {
                    tracing::error!(key = %row.key_id, error = %e, "a trusted key cannot be read; ignored")
                }
            }
        }
        let developer_mode = store
            .setting(DEVELOPER_MODE)
            .map_err(PackagesError::Internal)?
            .is_some_and(|v| v == "1");
        let registry = Repository {
            paths: paths.clone(),
            limits: *limits,
            store: Mutex::new(store),
            by_family: RwLock::new(index),
            busy: Arc::new(Mutex::new(HashSet::new())),
            trusted: RwLock::new(trusted),
            developer_mode: AtomicBool::new(developer_mode),
        };
        Ok(registry)
    }

    /// The journaled deployments a broker before this one did not finish.
    pub fn pending_operations(&self) -> Vec<OperationRow> {
        self.with_store(|s| s.operations()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the deployment journal");
            Vec::new()
        })
    }

    /// Finishes what a broker before this one left half done: every journaled deployment is
    /// rolled back (not committed) or completed (committed), then files no row names are
    /// swept. The processes of those packages must have been ended first.
    pub fn recover(&self) -> Result<()> {
        // What the rows say, whether or not this broker can load them.
        let rows = self.with_store(|s| s.packages()).map_err(PackagesError::Internal)?;
        for op in self.pending_operations() {
            let installed =
                rows.iter().find(|r| r.family_name.eq_ignore_ascii_case(&op.family_name));
            let owned =
                |dir: &str| installed.is_some_and(|r| Path::new(&r.install_dir) == Path::new(dir));
            let mut gone: Vec<PathBuf> = Vec::new();
            if op.committed {
                // Completed: the replaced or removed version's folder, a removal's data.
                gone.extend(op.old_dir.iter().filter(|d| !owned(d)).map(PathBuf::from));
                if op.kind == OperationKind::Remove && installed.is_none() {
                    gone.extend(op.data_dir.iter().map(PathBuf::from));
                }
            } else {
                // Rolled back: the new version's folder, and a new install's data.
                gone.extend(op.new_dir.iter().filter(|d| !owned(d)).map(PathBuf::from));
                if op.kind == OperationKind::Install && installed.is_none() {
                    gone.extend(op.data_dir.iter().map(PathBuf::from));
                }
            }
            let what = if op.committed { "completing" } else { "rolling back" };
            tracing::warn!(kind = ?op.kind, package = %op.family_name, folders = ?gone,
                "{what} a deployment a previous broker did not finish");
            let mut ok = true;
            for dir in &gone {
                if let Err(e) = remove_durably(dir) {
                    tracing::error!(path = %dir.display(), error = %e, "cannot remove; the next start tries again");
                    ok = false;
                }
            }
            if ok {
                self.with_store(|s| s.finish_operation(op.id)).map_err(PackagesError::Internal)?;
            }
        }
        self.sweep(&rows)
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
        // A row written before grants were recorded was installed before consent existed: its
        // restricted capabilities keep the grant they had then.
        let granted = row.granted_capabilities.clone().unwrap_or_else(|| {
            let restricted = &manifest.capabilities.restricted;
            grant_capabilities(&manifest.capabilities, restricted, |_| {
                Err(CUSTOM_NOT_GRANTED.to_owned())
            })
            .0
        });
        // A custom capability counts as granted when it was at install; a refused one keeps
        // the reason recorded then.
        let (_, not_granted) = grant_capabilities(&manifest.capabilities, &granted, |c| {
            if granted.iter().any(|g| g.eq_ignore_ascii_case(c.as_str())) {
                return Ok(());
            }
            let recorded = row.capability_refusals.iter().find(|(n, _)| n == c.as_str());
            Err(recorded.map_or_else(|| CUSTOM_NOT_GRANTED.to_owned(), |(_, r)| r.clone()))
        });
        InstalledPackage {
            manifest_text: row.manifest.clone(),
            granted,
            not_granted,
            full_name: manifest.identity.full_name(),
            data_dir: paths.app_data().join(family_name.as_str()),
            package_sid: sid::appcontainer_sid(family_name.as_str()),
            family_name,
            manifest,
            install_dir,
            content_hash: row.content_hash.clone(),
            installed_at: row.installed_at,
            signer: row.signer.clone(),
        }
    }

    /// The capabilities `manifest` is granted (`consented`: the restricted ones the user
    /// consented to), and why each declared custom capability that is not was refused: its
    /// descriptors are read from `root` (the broker's staged copy) and checked against the
    /// trust store, the package's signer and developer mode ([`sccd::grant`]).
    fn grants(
        &self,
        manifest: &Manifest,
        root: &Path,
        signer: Option<&PublicKey>,
        consented: &[String],
    ) -> (Vec<String>, Vec<(String, String)>) {
        let caps = &manifest.capabilities;
        let descriptors: Vec<sccd::PackageDescriptor> = caps
            .custom_capability_descriptors
            .iter()
            .map(|p| sccd::PackageDescriptor {
                path: p.as_str().to_owned(),
                read: read_descriptor(&root.join(p.as_str())),
            })
            .collect();
        let trusted: Vec<PublicKey> = self.trusted_keys().into_iter().map(|t| t.key).collect();
        let family = manifest.identity.family_name();
        let signer_id = signer.map(PublicKey::id);
        let candidate = sccd::Candidate {
            family_name: &family,
            signer: signer_id.as_ref(),
            developer_mode: self.developer_mode(),
        };
        let (granted, refused) = grant_capabilities(caps, consented, |c| {
            sccd::grant(c, &descriptors, &trusted, candidate)
        });
        let custom = refused
            .into_iter()
            .filter(|n| caps.custom.iter().any(|c| c.as_str() == n.name))
            .map(|n| (n.name, n.reason))
            .collect();
        (granted, custom)
    }

    /// Removes package folders (staging folders included) and app data folders that no row
    /// names (a row this broker cannot load still owns its folders): left by a crash, or by a
    /// journal entry lost with a disk.
    fn sweep(&self, rows: &[PackageRow]) -> Result<()> {
        let owned: HashSet<PathBuf> = rows
            .iter()
            .flat_map(|r| {
                [PathBuf::from(&r.install_dir), self.paths.app_data().join(&r.family_name)]
            })
            .collect();
        for dir in [self.paths.packages(), self.paths.app_data()] {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| io(format!("reading {}", dir.display()), e))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if !owned.contains(&path) {
                    tracing::warn!(path = %path.display(), "removing files no installed package owns");
                    if let Err(e) = remove_durably(&path) {
                        tracing::error!(path = %path.display(), error = %e, "cannot remove stale files");
                    }
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

    /// The bounds on one package.
    pub fn limits(&self) -> &PackageLimits {
        &self.limits
    }

    /// Opens a package file the client passed (blocking: call from a blocking thread): the
    /// block map, the signature and the manifest, checked; nothing else read yet.
    pub(crate) fn open_package_file(&self, file: std::fs::File) -> Result<OpenedFile> {
        staging::open_file(file, &self.limits.file_limits())
    }

    /// Extracts an opened package file into a staging folder (blocking).
    pub(crate) fn extract(
        &self,
        opened: OpenedFile,
        progress: staging::Progress<'_>,
    ) -> Result<Staged> {
        staging::extract(opened, &self.paths.packages(), progress)
    }

    /// Copies a package folder into a staging folder (blocking), for a developer-mode install.
    pub(crate) fn stage_folder(
        &self,
        source: &Path,
        progress: staging::Progress<'_>,
    ) -> Result<Staged> {
        staging::stage_folder(source, &self.paths.packages(), &self.limits.file_limits(), progress)
    }

    /// Installs what was staged, as the deployment `_deployment` of its family (blocking).
    /// `consented` is every restricted capability the user consented to for this family
    /// (now and before). The caller decided everything else: the signer, the version, the
    /// replacement.
    pub(crate) fn commit(
        &self,
        staged: Staged,
        _deployment: &Deployment,
        consented: &[String],
    ) -> Result<(Arc<InstalledPackage>, InstallOutcome, Option<String>)> {
        let content_hash = staged.content_hash();
        let Staged { dir, manifest, manifest_text, signer, .. } = staged;
        // The package's shipped registry keys, checked on the broker's own copy.
        read_shipped(dir.path()).map_err(PackagesError::InvalidPackage)?;
        let family = manifest.identity.family_name();
        let full = manifest.identity.full_name();

        let target = self.paths.packages().join(full.to_string());
        let existing = self.get(family.as_str());
        if existing.as_ref().is_some_and(|old| old.install_dir == target) {
            // The same version is installed: the caller answers that without a commit.
            return Err(PackagesError::Conflict(format!(
                "{full} is installed already; its files are not replaced"
            )));
        }
        let data_dir = self.paths.app_data().join(family.as_str());
        // Decided on the staged copy, before it moves.
        let (granted, capability_refusals) =
            self.grants(&manifest, dir.path(), signer.as_ref(), consented);
        let op = OperationRow {
            id: 0,
            kind: if existing.is_some() { OperationKind::Upgrade } else { OperationKind::Install },
            family_name: family.to_string(),
            new_dir: Some(target.display().to_string()),
            old_dir: existing.as_ref().map(|o| o.install_dir.display().to_string()),
            data_dir: Some(data_dir.display().to_string()),
            committed: false,
            started_at: now(),
        };
        // Journaled before anything on disk changes.
        let op_id = self.with_store(|s| s.begin_operation(&op)).map_err(PackagesError::Internal)?;
        crash_point("install:journaled");
        let placed = self.place(dir, &target, &data_dir, existing.is_none());
        if let Err(e) = placed {
            self.roll_back(&op, op_id);
            return Err(e);
        }
        crash_point("install:placed");

        let row = PackageRow {
            family_name: family.to_string(),
            full_name: full.to_string(),
            manifest: manifest_text,
            content_hash,
            install_dir: target.display().to_string(),
            installed_at: now(),
            granted_capabilities: Some(granted),
            signer: signer.map(|k| SignerRow {
                key_id: k.id().to_string(),
                publisher: k.publisher().as_str().to_owned(),
            }),
            capability_refusals,
        };
        // The commit point: the row and the journal entry change together.
        let replaced = match self.with_store(|s| s.commit_install(&row, op_id)) {
            Ok(r) => r,
            Err(e) => {
                self.roll_back(&op, op_id);
                return Err(PackagesError::Internal(e));
            }
        };
        crash_point("install:committed");
        let installed = Arc::new(Self::describe(&self.paths, manifest, target, &row));
        self.by_family
            .write()
            .expect("index poisoned")
            .insert(key(family.as_str()), installed.clone());
        let mut finished = true;
        let outcome = match &replaced {
            Some(old) => {
                if old.install_dir != row.install_dir
                    && let Err(e) = remove_durably(Path::new(&old.install_dir))
                {
                    tracing::warn!(path = %old.install_dir, error = %e, "cannot remove old version's files; the next start tries again");
                    finished = false;
                }
                InstallOutcome::Upgraded
            }
            None => InstallOutcome::Installed,
        };
        if finished && let Err(e) = self.with_store(|s| s.finish_operation(op_id)) {
            tracing::warn!(error = %e, "cannot close the deployment's journal entry");
        }
        tracing::info!(package = %full, ?outcome, signer = ?row.signer, "installed");
        Ok((installed, outcome, replaced.map(|r| r.full_name)))
    }

    /// Moves the staged folder into place and makes the app data folders, all fsynced with
    /// their parents. A new install's family starts with fresh app data: whatever a previous
    /// install left there is removed first.
    fn place(
        &self,
        staged: staging::StagingDir,
        target: &Path,
        data_dir: &Path,
        new_family: bool,
    ) -> Result<()> {
        if target.exists() {
            // Not owned by any row: a leftover.
            remove_durably(target)?;
        }
        let staged_path = staged.keep();
        if let Err(e) = std::fs::rename(&staged_path, target) {
            let _ = remove_tree(&staged_path);
            return Err(io(format!("moving package into {}", target.display()), e));
        }
        make_read_only(target)?;
        sync_parent(target)?;
        if new_family && data_dir.exists() {
            tracing::warn!(path = %data_dir.display(), "removing app data no installed package owns before installing");
            remove_durably(data_dir)?;
        }
        create_dirs_durably(&self.paths.app_data(), data_dir, &APP_DATA_FOLDERS)
    }

    /// Undoes what an uncommitted deployment put on disk, and closes its journal entry (if the
    /// removal fails, the entry stays and the next start tries again).
    fn roll_back(&self, op: &OperationRow, id: u64) {
        let installed = self.get(&op.family_name);
        let mut gone: Vec<&str> = Vec::new();
        if let Some(d) = &op.new_dir
            && installed.as_ref().is_none_or(|p| p.install_dir != Path::new(d))
        {
            gone.push(d);
        }
        if op.kind == OperationKind::Install
            && installed.is_none()
            && let Some(d) = &op.data_dir
        {
            gone.push(d);
        }
        let ok = gone.iter().all(|d| match remove_durably(Path::new(d)) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(path = %d, error = %e, "cannot roll a deployment back; the next start tries again");
                false
            }
        });
        if ok && let Err(e) = self.with_store(|s| s.finish_operation(id)) {
            tracing::warn!(error = %e, "cannot close the deployment's journal entry");
        }
    }

    /// Records a new signer for the installed package of a family whose content is unchanged
    /// (the same package again, signed by another trusted key, or signed where it was
    /// unsigned). Blocking (a database write).
    pub(crate) fn resign(
        &self,
        family: &str,
        signer: &PublicKey,
        _deployment: &Deployment,
    ) -> Result<Arc<InstalledPackage>> {
        let Some(old) = self.get(family) else {
            return Err(PackagesError::NotInstalled(format!("package {family} is not installed")));
        };
        let signer_row = SignerRow {
            key_id: signer.id().to_string(),
            publisher: signer.publisher().as_str().to_owned(),
        };
        // A descriptor authorizes a package with its signer: the custom capabilities are
        // decided again for the new one (restricted ones keep the consent given).
        let (granted, capability_refusals) =
            self.grants(&old.manifest, &old.install_dir, Some(signer), &old.granted);
        let row = PackageRow {
            family_name: old.family_name.to_string(),
            full_name: old.full_name.to_string(),
            manifest: old.manifest_text.clone(),
            content_hash: old.content_hash.clone(),
            install_dir: old.install_dir.display().to_string(),
            installed_at: old.installed_at,
            granted_capabilities: Some(granted),
            signer: Some(signer_row),
            capability_refusals,
        };
        self.store
            .lock()
            .expect("store poisoned")
            .set_package_signer(&row)
            .map_err(PackagesError::Internal)?;
        let updated = Arc::new(Self::describe(
            &self.paths,
            old.manifest.clone(),
            old.install_dir.clone(),
            &row,
        ));
        self.by_family.write().expect("index poisoned").insert(key(family), updated.clone());
        tracing::info!(package = %old.full_name, key = %signer.id(), "same content, now recorded as signed by this key");
        Ok(updated)
    }

    /// Whether developer mode is on.
    pub fn developer_mode(&self) -> bool {
        self.developer_mode.load(Ordering::SeqCst)
    }

    /// Turns developer mode on or off (blocking: a database write).
    pub fn set_developer_mode(&self, enabled: bool) -> Result<()> {
        self.store
            .lock()
            .expect("store poisoned")
            .set_setting(DEVELOPER_MODE, if enabled { "1" } else { "0" })
            .map_err(PackagesError::Internal)?;
        self.developer_mode.store(enabled, Ordering::SeqCst);
        tracing::info!(enabled, "developer mode set");
        Ok(())
    }

    /// The trust store.
    pub fn trusted_keys(&self) -> Vec<TrustedKey> {
        self.trusted.read().expect("trust store poisoned").clone()
    }

    /// Trusts `key` for its publisher (blocking: a database write). Returns the entry and
    /// whether it is new.
    pub fn trust_key(&self, key: PublicKey) -> Result<(TrustedKey, bool)> {
        let row = TrustedKeyRow {
            key_id: key.id().to_string(),
            publisher: key.publisher().as_str().to_owned(),
            public_key: key.to_file_text(),
            added_at: now(),
        };
        let mut trusted = self.trusted.write().expect("trust store poisoned");
        if let Some(t) = trusted.iter().find(|t| t.key == key) {
            return Ok((t.clone(), false));
        }
        self.store
            .lock()
            .expect("store poisoned")
            .add_trusted_key(&row)
            .map_err(PackagesError::Internal)?;
        let entry = TrustedKey { row, key };
        trusted.push(entry.clone());
        trusted.sort_by(|a, b| {
            (&a.row.key_id, &a.row.publisher).cmp(&(&b.row.key_id, &b.row.publisher))
        });
        tracing::info!(key = %entry.row.key_id, publisher = %entry.row.publisher, "key trusted");
        Ok((entry, true))
    }

    /// Stops trusting a key id, for every publisher (blocking: a database write). Returns the
    /// entries removed.
    pub fn untrust_key(&self, key_id: &str) -> Result<Vec<TrustedKeyRow>> {
        let mut trusted = self.trusted.write().expect("trust store poisoned");
        let removed = self
            .store
            .lock()
            .expect("store poisoned")
            .remove_trusted_key(key_id)
            .map_err(PackagesError::Internal)?;
        trusted.retain(|t| t.row.key_id != key_id);
        tracing::info!(key = %key_id, entries = removed.len(), "key no longer trusted");
        Ok(removed)
    }

    /// Removes a package: record, files and app data. The caller has begun the deployment
    /// and stopped the package's processes.
    pub fn remove(&self, family: &str, _deployment: Deployment) -> Result<Arc<InstalledPackage>> {
        let Some(pkg) = self.get(family) else {
            return Err(PackagesError::NotInstalled(format!("package {family} is not installed")));
        };
        let op = OperationRow {
            id: 0,
            kind: OperationKind::Remove,
            family_name: pkg.family_name.to_string(),
            new_dir: None,
            old_dir: Some(pkg.install_dir.display().to_string()),
            data_dir: Some(pkg.data_dir.display().to_string()),
            committed: true,
            started_at: now(),
        };
        // The commit point: the row goes and the removal is journaled, together; a broker that
        // dies after it deletes the files and the app data at its next start.
        let (op_id, _) =
            self.with_store(|s| s.commit_remove(&op)).map_err(PackagesError::Internal)?;
        self.by_family.write().expect("index poisoned").remove(&key(family));
        crash_point("remove:committed");
        let mut finished = true;
        for dir in [&pkg.install_dir, &pkg.data_dir] {
            if let Err(e) = remove_durably(dir) {
                tracing::warn!(path = %dir.display(), error = %e, "cannot remove package folder; the next start tries again");
                finished = false;
            }
        }
        if finished && let Err(e) = self.with_store(|s| s.finish_operation(op_id)) {
            tracing::warn!(error = %e, "cannot close the removal's journal entry");
        }
        tracing::info!(package = %pkg.full_name, "removed");
        Ok(pkg)
    }
}

/// A point of a deployment where `APPIPC_CRASH_AT` (tests only) makes the broker die as a
/// crash would (SIGKILL to itself): `install:journaled` (before anything on disk changed),
/// `install:placed` (files in place, row not written), `install:committed` (row written, the
/// old version's folder still there), `remove:committed` (row gone, files still there).
pub(crate) fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT.get_or_init(|| std::env::var("APPIPC_CRASH_AT").ok()).as_deref() == Some(point) {
        tracing::warn!(point, "APPIPC_CRASH_AT: dying here");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

pub(crate) fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Makes a whole installed tree read-only for everyone (0555 folders and programs, 0444 files).
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
        // Readable (and, where executable, runnable) by the app's own uid, which under a root
        // broker is not the broker's; writable by no one, no set-id bit. The packages folder
        // above is the broker's alone (0700), so no other user reaches them.
        let exec = meta.is_dir() || meta.permissions().mode() & 0o111 != 0;
        let mode = if exec { 0o555 } else { 0o444 };
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io(format!("setting mode of {}", root.display()), e))?;
    }
    if meta.is_dir() {
        // Every folder of the tree, so that its entries are durable before the row that
        // names the tree is written (the files themselves were fsynced when staged).
        appipc_sys::fs::sync_dir(root).map_err(|e| io(format!("syncing {}", root.display()), e))?;
    }
    Ok(())
}

/// `fsync` of the folder holding `path` (after a rename into it, or a removal from it).
fn sync_parent(path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    appipc_sys::fs::sync_dir(parent).map_err(|e| io(format!("syncing {}", parent.display()), e))
}

/// Creates `dir` (beneath `base`, which exists) and `dir/<each of subfolders>`, fsyncing every
/// folder made and the folder it was made in.
fn create_dirs_durably(base: &Path, dir: &Path, subfolders: &[&str]) -> Result<()> {
    let mut made = Vec::new();
    for d in std::iter::once(dir.to_path_buf()).chain(subfolders.iter().map(|f| dir.join(f))) {
        match std::fs::create_dir(&d) {
            Ok(()) => made.push(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(format!("creating {}", d.display()), e)),
        }
    }
    for d in &made {
        appipc_sys::fs::sync_path(d).map_err(|e| io(format!("syncing {}", d.display()), e))?;
    }
    if !made.is_empty() {
        appipc_sys::fs::sync_dir(base).map_err(|e| io(format!("syncing {}", base.display()), e))?;
    }
    Ok(())
}

/// [`remove_tree`], then `fsync` of the folder that held it.
fn remove_durably(root: &Path) -> Result<()> {
    remove_tree(root)?;
    sync_parent(root)
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

/// The file a package ships its `HKLM\Software` keys in (Windows: `Registry.dat`).
pub const SHIPPED_FILE: &str = "Registry.reg";
/// The largest `Registry.reg` read.
const MAX_SHIPPED_BYTES: u64 = 1024 * 1024;

/// Reads and checks a package's `Registry.reg`: an absent file is no keys; keys outside
/// `HKEY_LOCAL_MACHINE\Software` are refused.
pub fn read_shipped(install_dir: &Path) -> std::result::Result<RegTree, String> {
    let path = install_dir.join(SHIPPED_FILE);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegTree::new()),
        Err(e) => return Err(format!("{SHIPPED_FILE}: {e}")),
    };
    if !meta.is_file() || meta.len() > MAX_SHIPPED_BYTES {
        return Err(format!(
            "{SHIPPED_FILE}: not a regular file of at most {MAX_SHIPPED_BYTES} bytes"
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("{SHIPPED_FILE}: {e}"))?;
    let file = regfile::parse(&bytes).map_err(|e| format!("{SHIPPED_FILE}: {e}"))?;
    let software = KeyPath::parse("HKEY_LOCAL_MACHINE\\Software").expect("a valid path");
    let tree = RegTree::from_entries(&file.entries);
    if let Some(k) = tree.keys().find(|k| !k.path.is_at_or_under(&software)) {
        return Err(format!(
            "{SHIPPED_FILE}: {} is outside HKEY_LOCAL_MACHINE\\Software (a package ships only \
             those keys)",
            k.path
        ));
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use appipc_model::package_file::Limits;

    #[test]
    fn package_limits_come_from_the_configuration() {
        let c: crate::Config = toml::from_str("[packages]\nmax-files = 3\n").unwrap();
        assert_eq!(c.packages.max_files, 3);
        assert_eq!(c.packages.max_total_size, 8 * 1024 * 1024 * 1024);
        let limits = c.packages.file_limits();
        assert_eq!(
            (limits.max_files, limits.max_block_map_size),
            (3, Limits::default().max_block_map_size)
        );
        assert_eq!(crate::Config::default().packages, PackageLimits::default());
        let e = toml::from_str::<crate::Config>("[packages]\nmax-file = 3\n").unwrap_err();
        assert!(e.to_string().contains("max-file"), "{e}");
    }
}
