//! `packages`: install (from a package file, or from a folder in developer mode), list,
//! remove; the trust store and developer mode.
//!
//! An install runs in three steps: the package is read into the broker's own copy off the
//! async threads (for a package file, first only its block map, signature and manifest);
//! then, with its family marked busy, every rule is decided through [`Cx::enforce`] on that
//! copy (the signer, the installed version, the restricted capabilities' consent); then the
//! copy is extracted (package file) and committed, off the async threads again.

use std::sync::Arc;

use appipc_model::identity::PackageFamilyName;
use appipc_model::manifest::{Manifest, restricted_capability_allows};
use appipc_model::package_file::PublicKey;
use appipc_model::policy::{self, Operation, SignedBy};
use appipc_wire::protocol::packages::{
    self as wire, CapabilityConsent, DeveloperMode, InstallOutcome, Installed, PackagePreview,
    Removed, Signer, TrustedKey,
};

use crate::Shared;
use crate::cx::{Cx, Replied};
use crate::error::{InternalError, PackagesError};
use crate::repository::{self, InstalledPackage};

fn task_failed(e: crate::blocking::JobFailed) -> PackagesError {
    PackagesError::Internal(InternalError::io("deployment task", std::io::Error::other(e)))
}

/// Runs blocking deployment work on the broker's bounded pool.
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> Result<T, PackagesError> + Send + 'static,
) -> Result<T, PackagesError> {
    let s = shared.clone();
    shared.blocking.run(move || f(&s)).await.map_err(task_failed)?
}

pub(crate) async fn handle(mut cx: Cx<'_>, r: wire::Request) -> Result<Replied, PackagesError> {
    use wire::Request as R;
    let shared = cx.shared;
    Ok(match r {
        R::Install(wire::Install { path, consent }) => {
            Replied::of::<wire::Install>(install_folder(&cx, path, consent).await?)
        }
        R::InstallFile(wire::InstallFile { consent }) => {
            let file = attached_file(&mut cx);
            Replied::of::<wire::InstallFile>(install_file(&cx, file, consent).await?)
        }
        R::InspectFile(_) => {
            let file = attached_file(&mut cx);
            Replied::of::<wire::InspectFile>(inspect_file(&cx, file).await?)
        }
        R::InspectFolder(wire::InspectFolder { path }) => {
            cx.enforce(Operation::InstallPackage)?;
            cx.enforce(Operation::InstallFromFolder {
                developer_mode: shared.repository.developer_mode(),
            })?;
            let (manifest, _) = blocking(shared, move |_| {
                repository::staging::read_folder_manifest(std::path::Path::new(&path))
            })
            .await?;
            let checked = check(&cx, &manifest, None, None)?;
            Replied::of::<wire::InspectFolder>(preview(&manifest, None, &checked))
        }
        R::ListPackages(_) => Replied::of::<wire::ListPackages>(
            shared
                .repository
                .all()
                .into_iter()
                .filter(|p| {
                    cx.permits(Operation::QueryPackage { family_name: p.family_name.as_str() })
                })
                .map(|p| {
                    let log = shared.paths.app_log(p.family_name.as_str());
                    appipc_wire::protocol::packages::PackageInfo {
                        log_location: Some(log.display().to_string()),
                        ..p.info()
                    }
                })
                .collect(),
        ),
        R::Remove(wire::Remove { family_name }) => {
            Replied::of::<wire::Remove>(remove(&cx, &family_name).await?)
        }
        R::TrustKey(wire::TrustKey { public_key }) => {
            let key = PublicKey::from_file_text(&public_key)
                .map_err(|e| PackagesError::BadRequest(format!("not a public key file: {e}")))?;
            cx.enforce(Operation::ChangeTrustStore { key_id: &key.id().to_string() })?;
            let (entry, _) = blocking(shared, move |s| s.repository.trust_key(key)).await?;
            Replied::of::<wire::TrustKey>(trusted_key(&entry.row))
        }
        R::ListTrustedKeys(_) => {
            cx.enforce(Operation::ReadDeploymentPolicy)?;
            Replied::of::<wire::ListTrustedKeys>(
                shared.repository.trusted_keys().iter().map(|t| trusted_key(&t.row)).collect(),
            )
        }
        R::UntrustKey(wire::UntrustKey { key_id }) => {
            let id = resolve_key_id(shared, &key_id)?;
            cx.enforce(Operation::ChangeTrustStore { key_id: &id })?;
            let removed = blocking(shared, move |s| s.repository.untrust_key(&id)).await?;
            Replied::of::<wire::UntrustKey>(removed.iter().map(trusted_key).collect())
        }
        R::SetDeveloperMode(wire::SetDeveloperMode { enabled }) => {
            cx.enforce(Operation::SetDeveloperMode { enabled })?;
            blocking(shared, move |s| s.repository.set_developer_mode(enabled)).await?;
            Replied::of::<wire::SetDeveloperMode>(DeveloperMode { enabled })
        }
        R::GetDeveloperMode(_) => {
            cx.enforce(Operation::ReadDeploymentPolicy)?;
            Replied::of::<wire::GetDeveloperMode>(DeveloperMode {
                enabled: shared.repository.developer_mode(),
            })
        }
    })
}

/// `RemovePackageAsync`: the package's processes are stopped, its files and data removed.
async fn remove(cx: &Cx<'_>, family_name: &str) -> Result<Removed, PackagesError> {
    let shared = cx.shared;
    let family: PackageFamilyName = family_name
        .parse()
        .map_err(|e| PackagesError::BadRequest(format!("remove {family_name:?}: {e}")))?;
    cx.enforce(Operation::RemovePackage { family_name: family.as_str() })?;
    let Some(pkg) = shared.repository.get(family.as_str()) else {
        return Err(PackagesError::NotInstalled(format!("package {family} is not installed")));
    };
    let guard = shared.repository.begin_deployment(family.as_str())?;
    let stopped = crate::hooks::package_removing(shared, &pkg).await;
    let fam = family.to_string();
    let pkg = blocking(shared, move |s| s.repository.remove(&fam, guard)).await?;
    crate::hooks::package_removed(shared, &pkg);
    Ok(Removed { full_name: pkg.full_name.to_string(), stopped_processes: stopped })
}

/// What installing the package file would do, decided as the install would be.
async fn inspect_file(cx: &Cx<'_>, file: std::fs::File) -> Result<PackagePreview, PackagesError> {
    cx.enforce(Operation::InstallPackage)?;
    let opened = blocking(cx.shared, move |s| s.repository.open_package_file(file)).await?;
    let signer = Some(opened.signed.signer());
    let checked = check(cx, &opened.manifest, signer, Some(&opened.content_hash()))?;
    Ok(preview(&opened.manifest, Some(opened.signed.signer()), &checked))
}

fn attached_file(cx: &mut Cx<'_>) -> std::fs::File {
    std::fs::File::from(cx.take_fds().pop().expect("dispatch checked the declared fd"))
}

fn trusted_key(row: &crate::state::TrustedKeyRow) -> TrustedKey {
    TrustedKey {
        key_id: row.key_id.clone(),
        publisher: row.publisher.clone(),
        added_at: row.added_at,
        public_key: row.public_key.clone(),
    }
}

/// A full key id, or a unique prefix of at least 8 hex digits, to the trusted key's full id.
fn resolve_key_id(shared: &Shared, given: &str) -> Result<String, PackagesError> {
    let want = given.trim().to_ascii_lowercase();
    if want.len() < 8 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PackagesError::BadRequest(format!(
            "key id {given:?}: give the key id (64 hex digits, as `appipc trust list` shows) or \
             at least its first 8"
        )));
    }
    let mut ids: Vec<String> = shared
        .repository
        .trusted_keys()
        .into_iter()
        .map(|t| t.row.key_id)
        .filter(|id| id.starts_with(&want))
        .collect();
    ids.dedup();
    match ids.len() {
        0 => Err(PackagesError::UnknownKey(format!("no trusted key has the id {given}"))),
        1 => Ok(ids.remove(0)),
        n => Err(PackagesError::BadRequest(format!(
            "{n} trusted keys start with {given}; give more of the id"
        ))),
    }
}

/// What the checks found about the installed version.
#[derive(Debug)]
struct Checked {
    /// The installed version of the family.
    existing: Option<Arc<InstalledPackage>>,
    /// The same package (version, content) is installed.
    already: bool,
    /// The restricted capabilities the install needs consent for.
    needs_consent: Vec<String>,
}

/// Decides everything about installing `manifest` (signed by `signer`, `None` for a folder)
/// except consent: the signer, the version against the installed one, the replacement.
/// `content_hash` is known for a package file (its block map) and for a staged folder.
fn check(
    cx: &Cx<'_>,
    manifest: &Manifest,
    signer: Option<&PublicKey>,
    content_hash: Option<&str>,
) -> Result<Checked, PackagesError> {
    let repo = &cx.shared.repository;
    let id = &manifest.identity;
    let family = id.family_name();
    let full = id.full_name();
    if let Some(signer) = signer {
        let trusted: Vec<PublicKey> = repo.trusted_keys().into_iter().map(|t| t.key).collect();
        cx.enforce(Operation::AcceptSigner {
            signer,
            publisher: &id.publisher,
            trusted: &trusted,
        })?;
    }
    let existing = repo.get(family.as_str());
    let mut already = false;
    if let Some(old) = &existing {
        let (old_v, new_v) = (old.manifest.identity.version, id.version);
        if old_v > new_v {
            return Err(PackagesError::Downgrade(format!(
                "cannot install {full}: version {old_v} of {family} is already installed and \
                 {new_v} is older (remove it first to go back)"
            )));
        }
        if old_v == new_v {
            match content_hash {
                Some(h) if old.full_name == full && old.content_hash == h => already = true,
                Some(_) => {
                    return Err(PackagesError::Conflict(format!(
                        "cannot install {full}: {} is installed with the same version but \
                         different content; raise the version to upgrade",
                        old.full_name
                    )));
                }
                None => {}
            }
        }
        let key_id = signer.map(|k| k.id().to_string());
        let incoming = signer
            .zip(key_id.as_deref())
            .map(|(k, key_id)| SignedBy { key_id, publisher: k.publisher().as_str() });
        let installed =
            old.signer.as_ref().map(|s| SignedBy { key_id: &s.key_id, publisher: &s.publisher });
        // The same content again, unsigned, over a signed install changes nothing: no
        // replacement to decide.
        if !(already && incoming.is_none()) {
            cx.enforce(Operation::ReplacePackage {
                family_name: family.as_str(),
                installed,
                incoming,
            })?;
        }
    }
    if let Some(why) = crate::mech::com::catalog_conflict(cx.shared, manifest) {
        return Err(PackagesError::Conflict(format!("cannot install {full}: {why}")));
    }
    let granted_before = existing.as_ref().map(|o| o.granted.clone()).unwrap_or_default();
    let needs_consent = policy::restricted_needing_consent(&manifest.capabilities, &granted_before);
    Ok(Checked { existing, already, needs_consent })
}

fn preview(manifest: &Manifest, signer: Option<&PublicKey>, checked: &Checked) -> PackagePreview {
    let id = &manifest.identity;
    PackagePreview {
        full_name: id.full_name().to_string(),
        family_name: id.family_name().to_string(),
        publisher: id.publisher.to_string(),
        display_name: manifest.properties.display_name.clone(),
        signer: signer.map(|k| Signer {
            key_id: k.id().to_string(),
            publisher: k.publisher().as_str().to_owned(),
        }),
        installed: checked.existing.as_ref().map(|o| o.full_name.to_string()),
        restricted: manifest.capabilities.restricted.clone(),
        consent_needed: checked
            .needs_consent
            .iter()
            .map(|c| CapabilityConsent {
                name: c.clone(),
                allows: restricted_capability_allows(c).to_owned(),
            })
            .collect(),
    }
}

/// Decides consent; returns every restricted capability consented to for the family (the
/// installed version's grants carry over).
fn consent(
    cx: &Cx<'_>,
    manifest: &Manifest,
    checked: &Checked,
    consent: &[String],
) -> Result<Vec<String>, PackagesError> {
    let family = manifest.identity.family_name();
    cx.enforce(Operation::GrantRestrictedCapabilities {
        family_name: family.as_str(),
        needed: &checked.needs_consent,
        consented: consent,
    })?;
    let mut all: Vec<String> = consent.to_vec();
    if let Some(old) = &checked.existing {
        all.extend(old.granted.iter().cloned());
    }
    Ok(all)
}

/// The answer for an install that found the same package installed.
fn already_installed(pkg: &InstalledPackage) -> Installed {
    Installed {
        full_name: pkg.full_name.to_string(),
        family_name: pkg.family_name.to_string(),
        outcome: InstallOutcome::AlreadyInstalled,
        replaced: None,
        not_granted: not_granted(pkg),
    }
}

fn not_granted(pkg: &InstalledPackage) -> Vec<wire::CapabilityRefusal> {
    pkg.not_granted
        .iter()
        .map(|n| wire::CapabilityRefusal { name: n.name.clone(), reason: n.reason.clone() })
        .collect()
}

async fn install_file(
    cx: &Cx<'_>,
    file: std::fs::File,
    given: Option<Vec<String>>,
) -> Result<Installed, PackagesError> {
    let shared = cx.shared;
    cx.enforce(Operation::InstallPackage)?;
    let opened = blocking(shared, move |s| s.repository.open_package_file(file)).await?;
    let family = opened.manifest.identity.family_name();
    let guard = shared.repository.begin_deployment(family.as_str())?;
    let signer = opened.signed.signer().clone();
    let checked = check(cx, &opened.manifest, Some(&signer), Some(&opened.content_hash()))?;
    if checked.already {
        // The same content is installed; the file is still read to its end, so that a
        // tampered copy of an installed package is refused like any other.
        let old = checked.existing.clone().expect("already installed");
        let same_signer = old.signer.as_ref().is_some_and(|s| s.key_id == signer.id().to_string());
        let fam = family.to_string();
        let pkg = blocking(shared, move |s| {
            repository::staging::verify(opened)?;
            if same_signer { Ok(old) } else { s.repository.resign(&fam, &signer, &guard) }
        })
        .await?;
        return Ok(already_installed(&pkg));
    }
    let consented = consent(cx, &opened.manifest, &checked, given.as_deref().unwrap_or(&[]))?;
    if let Some(old) = &checked.existing {
        crate::hooks::package_upgrading(shared, old).await;
    }
    let map = opened.signed.block_map();
    let totals = (map.len() as u64, map.entries().iter().map(|e| e.size).sum::<u64>());
    let mut progress = progress_reporter(cx, Some(totals));
    let (pkg, outcome, replaced) = blocking(shared, move |s| {
        let staged = s.repository.extract(opened, &mut progress)?;
        s.repository.commit(staged, &guard, &consented)
    })
    .await?;
    installed(shared, pkg, outcome, replaced).await
}

async fn install_folder(
    cx: &Cx<'_>,
    path: String,
    given: Option<Vec<String>>,
) -> Result<Installed, PackagesError> {
    let shared = cx.shared;
    cx.enforce(Operation::InstallPackage)?;
    cx.enforce(Operation::InstallFromFolder {
        developer_mode: shared.repository.developer_mode(),
    })?;
    let mut progress = progress_reporter(cx, None);
    let staged = blocking(shared, move |s| {
        s.repository.stage_folder(std::path::Path::new(&path), &mut progress)
    })
    .await?;
    let decided = (|| {
        let family = staged.manifest.identity.family_name();
        let guard = shared.repository.begin_deployment(family.as_str())?;
        let checked = check(cx, &staged.manifest, None, Some(&staged.content_hash()))?;
        if checked.already {
            return Ok(Err(checked.existing.expect("already installed")));
        }
        let consented = consent(cx, &staged.manifest, &checked, given.as_deref().unwrap_or(&[]))?;
        Ok(Ok((guard, consented, checked.existing)))
    })();
    match decided {
        Ok(Ok((guard, consented, existing))) => {
            if let Some(old) = &existing {
                crate::hooks::package_upgrading(shared, old).await;
            }
            let (pkg, outcome, replaced) =
                blocking(shared, move |s| s.repository.commit(staged, &guard, &consented)).await?;
            installed(shared, pkg, outcome, replaced).await
        }
        Ok(Err(old)) => {
            discard(shared, staged).await;
            Ok(already_installed(&old))
        }
        Err(e) => {
            discard(shared, staged).await;
            Err(e)
        }
    }
}

/// Sends `packages.InstallProgress` to the installing session: at most every 250 ms, and at
/// the end of the copy (an event that does not fit the session's outbox is skipped).
fn progress_reporter(
    cx: &Cx<'_>,
    totals: Option<(u64, u64)>,
) -> impl FnMut(u64, u64, bool) + Send + 'static {
    let outbox = cx.session.outbox.clone();
    let mut last: Option<std::time::Instant> = None;
    move |files, bytes, done| {
        let due = last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(250));
        if !(due || done) {
            return;
        }
        last = Some(std::time::Instant::now());
        let _ = outbox.event(
            wire::InstallProgress {
                files,
                bytes,
                total_files: totals.map(|t| t.0),
                total_bytes: totals.map(|t| t.1),
            },
            Vec::new(),
        );
    }
}

/// Removes a staged copy that will not be installed, off the async threads.
async fn discard(shared: &Arc<Shared>, staged: repository::Staged) {
    if let Err(e) = blocking(shared, move |_| {
        drop(staged);
        Ok(())
    })
    .await
    {
        tracing::warn!(error = %e, "discarding a staged package");
    }
}

async fn installed(
    shared: &Arc<Shared>,
    pkg: Arc<InstalledPackage>,
    outcome: InstallOutcome,
    replaced: Option<String>,
) -> Result<Installed, PackagesError> {
    crate::hooks::package_installed(shared, &pkg, outcome).await?;
    for refused in &pkg.not_granted {
        tracing::warn!(package = %pkg.full_name, capability = %refused.name, reason = %refused.reason, "capability not granted");
    }
    Ok(Installed {
        full_name: pkg.full_name.to_string(),
        family_name: pkg.family_name.to_string(),
        outcome,
        replaced,
        not_granted: not_granted(&pkg),
    })
}
