//! `Windows.Management.Deployment.PackageManager` and launching applications.

use std::os::fd::AsFd;
use std::path::Path;

use appipc_wire::protocol::{InstallOutcome, PackageInfo, ProcessInfo, Reply, Request};

use crate::error::{Error, Result};
use crate::session::Session;

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
}

/// Installs, removes and lists packages.
#[derive(Debug, Clone)]
pub struct PackageManager {
    session: Session,
}

fn unexpected(what: &str, r: Reply) -> Error {
    Error::Protocol(format!("unexpected reply to {what}: {r:?}"))
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
        match self.session.request(Request::Install { path: abs.display().to_string() }).await? {
            Reply::Installed { full_name, family_name, outcome, replaced } => {
                Ok(DeploymentResult { full_name, family_name, outcome, replaced })
            }
            r => Err(unexpected("install", r)),
        }
    }

    /// `RemovePackageAsync` by family name; running processes of the package are stopped.
    /// Returns the full name removed and how many processes were stopped.
    pub async fn remove_package(&self, family_name: &str) -> Result<(String, u32)> {
        match self.session.request(Request::Remove { family_name: family_name.to_owned() }).await? {
            Reply::Removed { full_name, stopped_processes } => Ok((full_name, stopped_processes)),
            r => Err(unexpected("remove", r)),
        }
    }

    /// `FindPackagesForUser`: the packages this caller may see.
    pub async fn find_packages(&self) -> Result<Vec<PackageInfo>> {
        match self.session.request(Request::ListPackages).await? {
            Reply::Packages(p) => Ok(p),
            r => Err(unexpected("list", r)),
        }
    }

    /// The processes the broker started that this caller may see.
    pub async fn running_processes(&self) -> Result<Vec<ProcessInfo>> {
        match self.session.request(Request::ListProcesses).await? {
            Reply::Processes(p) => Ok(p),
            r => Err(unexpected("list-processes", r)),
        }
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
        let request = Request::Launch {
            target: target.to_owned(),
            args: args.to_vec(),
            stdio,
            notify_exit: options.notify_exit,
        };
        match self.session.request_with_fds(request, &fds).await?.0 {
            Reply::Launched { pid, app_user_model_id } => Ok((pid, app_user_model_id)),
            r => Err(unexpected("launch", r)),
        }
    }
}
