//! `Windows.Management.Deployment.PackageManager` and launching applications.

use std::os::fd::AsFd;
use std::path::Path;

pub use appipc_wire::protocol::launch::ProcessInfo;
use appipc_wire::protocol::launch::{Launch, ListProcesses};
pub use appipc_wire::protocol::packages::{CapabilityRefusal, InstallOutcome, PackageInfo};
use appipc_wire::protocol::packages::{Install, ListPackages, Remove};

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

    /// `AddPackageAsync`: installs the package folder at `path` (made absolute here), or
    /// upgrades an installed older version.
    pub async fn add_package(&self, path: &Path) -> Result<DeploymentResult> {
        let abs = std::path::absolute(path)
            .map_err(|source| Error::Io { what: "resolving the package path", source })?;
        // Copying a large package takes its time.
        let i = self
            .session
            .call_within(Install { path: abs.display().to_string() }, &[], LONG)
            .await?
            .0;
        Ok(DeploymentResult {
            full_name: i.full_name,
            family_name: i.family_name,
            outcome: i.outcome,
            replaced: i.replaced,
            not_granted: i.not_granted,
        })
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
        let stdio = options.stdio.is_some();
        let fds: Vec<_> = options.stdio.iter().flat_map(|s| s.iter().map(|f| f.as_fd())).collect();
        let request = Launch {
            target: target.to_owned(),
            args: args.to_vec(),
            stdio,
            notify_exit: options.notify_exit,
        };
        let l = self.session.call_within(request, &fds, START).await?.0;
        Ok((l.pid, l.app_user_model_id))
    }
}
