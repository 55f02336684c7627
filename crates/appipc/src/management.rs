//! `Windows.Management.Deployment.PackageManager` and launching applications.

use std::os::fd::AsFd;
use std::path::Path;

use appipc_wire::protocol::launch::{Launch, ListProcesses};
pub use appipc_wire::protocol::launch::{Launched, ProcessInfo};
pub use appipc_wire::protocol::packages::{
    CapabilityConsent, CapabilityRefusal, InstallOutcome, PackageInfo, PackagePreview, Signer,
};
use appipc_wire::protocol::packages::{
    InspectFile, InspectFolder, Install, InstallFile, ListPackages, Remove,
};

use crate::error::{Error, Result};
use crate::session::Session;

/// How long installs and removals may take: 10 minutes.
pub const LONG: std::time::Duration = std::time::Duration::from_secs(600);
/// How long starting a process may take (confinement, a service host registering): 60 s.
pub const START: std::time::Duration = std::time::Duration::from_secs(60);

/// What [`PackageManager::add_package`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentResult {
    /// Full name installed.
    pub full_name: String,
    /// Its family.
    pub family_name: String,
    /// Installed, upgraded or already there.
    pub outcome: InstallOutcome,
    /// For an upgrade, the full name replaced.
    pub replaced: Option<String>,
    /// Declared capabilities that were not granted, and why.
    pub not_granted: Vec<CapabilityRefusal>,
}

/// Options for [`PackageManager::add_package_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddPackageOptions {
    /// The restricted capabilities (`runFullTrust`, `broadFileSystemAccess`, …) the user
    /// consented to grant. An install that needs consent for a restricted capability not
    /// listed here is refused; [`PackageManager::inspect_package`] says which ones it needs.
    /// A library never consents on its own: ask the user.
    pub consent: Vec<String>,
}

impl AddPackageOptions {
    /// Consent to exactly these restricted capabilities.
    pub fn consenting_to<S: Into<String>>(capabilities: impl IntoIterator<Item = S>) -> Self {
        AddPackageOptions { consent: capabilities.into_iter().map(Into::into).collect() }
    }
}

/// Whether `path` names a package file (a regular file, following the caller's own links).
/// Anything else goes to the broker as a folder path, and the broker says what is wrong with
/// it (a path this process cannot see may still be refused there for a better reason).
fn is_package_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

fn open_package_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path)
        .map_err(|source| Error::Io { what: "opening the package file", source })
}

/// The folder's path as the broker must see it: absolute, and with this process's own links
/// resolved (the broker follows none beneath it, and refuses a link as the folder itself).
fn absolute(path: &Path) -> Result<String> {
    let abs = std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .map_err(|source| Error::Io { what: "resolving the package path", source })?;
    Ok(abs.display().to_string())
}

fn result(i: appipc_wire::protocol::packages::Installed) -> DeploymentResult {
    DeploymentResult {
        full_name: i.full_name,
        family_name: i.family_name,
        outcome: i.outcome,
        replaced: i.replaced,
        not_granted: i.not_granted,
    }
}

/// Installs, removes and lists packages.
#[derive(Debug, Clone)]
pub struct PackageManager {
    session: Session,
}

impl PackageManager {
    /// A package manager over a session.
    pub fn new(session: &Session) -> PackageManager {
        PackageManager { session: session.clone() }
    }

    /// `AddPackageAsync`: installs the package at `path`, a package file (`.appipc`, signed
    /// by a key the user trusts) or a package folder (developer mode only), or upgrades an
    /// installed older version. Consents to no restricted capability: a package that declares
    /// one needs [`add_package_with`](Self::add_package_with).
    pub async fn add_package(&self, path: &Path) -> Result<DeploymentResult> {
        self.add_package_with(path, &AddPackageOptions::default()).await
    }

    /// [`add_package`](Self::add_package) with options (the user's consent).
    pub async fn add_package_with(
        &self,
        path: &Path,
        options: &AddPackageOptions,
    ) -> Result<DeploymentResult> {
        if is_package_file(path) {
            self.add_package_file(&open_package_file(path)?, options).await
        } else {
            self.register_package_folder(path, options).await
        }
    }

    /// Installs the package file open as `file` (the broker reads it through the fd, from its
    /// start, once).
    pub async fn add_package_file(
        &self,
        file: &std::fs::File,
        options: &AddPackageOptions,
    ) -> Result<DeploymentResult> {
        let request = InstallFile { consent: Some(options.consent.clone()) };
        // Checking and copying a large package takes its time.
        Ok(result(self.session.call_within(request, &[file.as_fd()], LONG).await?.0))
    }

    /// `RegisterPackageAsync` of a folder (Windows' `Add-AppxPackage -Register`): installs the
    /// package folder at `path` unsigned; only in developer mode.
    pub async fn register_package_folder(
        &self,
        path: &Path,
        options: &AddPackageOptions,
    ) -> Result<DeploymentResult> {
        let request = Install { path: absolute(path)?, consent: Some(options.consent.clone()) };
        Ok(result(self.session.call_within(request, &[], LONG).await?.0))
    }

    /// What installing the package file or folder at `path` would do, without installing it:
    /// identity, signer, installed version, and the restricted capabilities that need the
    /// user's consent. Refused as the install would be for its signer or version.
    pub async fn inspect_package(&self, path: &Path) -> Result<PackagePreview> {
        if is_package_file(path) {
            let file = open_package_file(path)?;
            Ok(self.session.call_within(InspectFile {}, &[file.as_fd()], LONG).await?.0)
        } else {
            Ok(self
                .session
                .call_within(InspectFolder { path: absolute(path)? }, &[], LONG)
                .await?
                .0)
        }
    }

    /// `RemovePackageAsync` by family name; running processes of the package are stopped.
    /// Returns the full name removed and how many processes were stopped.
    pub async fn remove_package(&self, family_name: &str) -> Result<(String, u32)> {
        let r = self
            .session
            .call_within(Remove { family_name: family_name.to_owned() }, &[], LONG)
            .await?
            .0;
        Ok((r.full_name, r.stopped_processes))
    }

    /// `FindPackagesForUser`: the packages this caller may see.
    pub async fn find_packages(&self) -> Result<Vec<PackageInfo>> {
        self.session.call(ListPackages {}).await
    }

    /// The processes the broker started that this caller may see.
    pub async fn running_processes(&self) -> Result<Vec<ProcessInfo>> {
        self.session.call(ListProcesses {}).await
    }
}

/// Options for [`ApplicationActivationManager::activate_application`].
#[derive(Debug, Default)]
pub struct ActivateOptions {
    /// Give the app these stdin, stdout and stderr instead of `/dev/null` and its log.
    pub stdio: Option<[std::os::fd::OwnedFd; 3]>,
    /// Get an exit notice on this session (then use [`Session::wait_for_exit`]).
    pub notify_exit: bool,
}

/// `IApplicationActivationManager`: starts packaged applications by AUMID.
#[derive(Debug, Clone)]
pub struct ApplicationActivationManager {
    session: Session,
}

impl ApplicationActivationManager {
    /// An activation manager over a session.
    pub fn new(session: &Session) -> ApplicationActivationManager {
        ApplicationActivationManager { session: session.clone() }
    }

    /// `ActivateApplication`: starts `target` (`PFN!AppId`, or a `PFN` for its first
    /// application) with extra arguments. Returns the pid and the AUMID started.
    pub async fn activate_application(
        &self,
        target: &str,
        args: &[String],
        options: ActivateOptions,
    ) -> Result<(u32, String)> {
        let l = self.launch(target, args, options).await?;
        Ok((l.pid, l.app_user_model_id))
    }

    /// [`activate_application`](Self::activate_application), with everything the broker
    /// answers: the pid, the AUMID, and the log its output goes to when `options` gives it no
    /// stdio.
    pub async fn launch(
        &self,
        target: &str,
        args: &[String],
        options: ActivateOptions,
    ) -> Result<Launched> {
        let stdio = options.stdio.is_some();
        let fds: Vec<_> = options.stdio.iter().flat_map(|s| s.iter().map(|f| f.as_fd())).collect();
        let request = Launch {
            target: target.to_owned(),
            args: args.to_vec(),
            stdio,
            notify_exit: options.notify_exit,
        };
        Ok(self.session.call_within(request, &fds, START).await?.0)
    }
}
