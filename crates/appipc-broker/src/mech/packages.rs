//! `packages`: install, list, remove.

use appipc_model::identity::PackageFamilyName;
use appipc_model::policy::Operation;
use appipc_wire::protocol::packages::{self as wire, CapabilityRefusal, Installed, Removed};
use appipc_wire::status::{ErrorKind, HResult, WindowsCode};

use crate::cx::{Cx, Replied};
use crate::error::{Coded, Denied, InternalError};

/// What installing, listing or removing a package can fail with; codes are the deployment
/// `HRESULT`s `PackageManager` reports on Windows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackagesError {
    /// The policy refused.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A malformed argument.
    #[error("{0}")]
    BadRequest(String),
    /// No such package is installed.
    #[error("{0}")]
    NotInstalled(String),
    /// The package folder or its manifest is invalid.
    #[error("invalid package: {0}")]
    InvalidPackage(String),
    /// A newer version is installed.
    #[error("{0}")]
    Downgrade(String),
    /// The same version is installed with different content.
    #[error("{0}")]
    Conflict(String),
    /// The family is being deployed by another request.
    #[error("{0}")]
    Busy(String),
    /// Inside the broker.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Coded for PackagesError {
    fn kind(&self) -> ErrorKind {
        match self {
            PackagesError::Denied(d) => d.kind(),
            PackagesError::BadRequest(_) => ErrorKind::BadRequest,
            PackagesError::NotInstalled(_) => ErrorKind::NotFound,
            PackagesError::InvalidPackage(_) => ErrorKind::InvalidPackage,
            PackagesError::Downgrade(_) => ErrorKind::Downgrade,
            PackagesError::Conflict(_) => ErrorKind::Conflict,
            PackagesError::Busy(_) => ErrorKind::Busy,
            PackagesError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            PackagesError::Denied(d) => d.code(),
            PackagesError::BadRequest(_) => HResult::InvalidArg.into(),
            PackagesError::NotInstalled(_) => HResult::InstallPackageNotFound.into(),
            PackagesError::InvalidPackage(_) => HResult::InstallOpenPackageFailed.into(),
            PackagesError::Downgrade(_) => HResult::InstallPackageDowngrade.into(),
            PackagesError::Conflict(_) => HResult::PackageAlreadyExists.into(),
            PackagesError::Busy(_) => HResult::InstallResourcesInUse.into(),
            PackagesError::Internal(_) => HResult::Fail.into(),
        }
    }
}

fn task_failed(e: crate::blocking::JobFailed) -> PackagesError {
    PackagesError::Internal(InternalError::io("deployment task", std::io::Error::other(e)))
}

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied, PackagesError> {
    use wire::Request as R;
    let shared = cx.shared;
    Ok(match r {
        R::Install(wire::Install { path }) => {
            cx.enforce(Operation::InstallPackage)?;
            let s = shared.clone();
            let (pkg, outcome, replaced) = shared
                .blocking
                .run(move || s.repository.install(std::path::Path::new(&path)))
                .await
                .map_err(task_failed)??;
            crate::hooks::package_installed(shared, &pkg, outcome).await?;
            for refused in &pkg.not_granted {
                tracing::warn!(package = %pkg.full_name, capability = %refused.name, reason = %refused.reason, "capability not granted");
            }
            Replied::of::<wire::Install>(Installed {
                full_name: pkg.full_name.to_string(),
                family_name: pkg.family_name.to_string(),
                outcome,
                replaced,
                not_granted: pkg
                    .not_granted
                    .iter()
                    .map(|n| CapabilityRefusal { name: n.name.clone(), reason: n.reason.clone() })
                    .collect(),
            })
        }
        R::ListPackages(_) => Replied::of::<wire::ListPackages>(
            shared
                .repository
                .all()
                .into_iter()
                .filter(|p| {
                    cx.permits(Operation::QueryPackage { family_name: p.family_name.as_str() })
                })
                .map(|p| p.info())
                .collect(),
        ),
        R::Remove(wire::Remove { family_name }) => {
            let family: PackageFamilyName = family_name
                .parse()
                .map_err(|e| PackagesError::BadRequest(format!("remove {family_name:?}: {e}")))?;
            cx.enforce(Operation::RemovePackage { family_name: family.as_str() })?;
            let Some(pkg) = shared.repository.get(family.as_str()) else {
                return Err(PackagesError::NotInstalled(format!(
                    "package {family} is not installed"
                )));
            };
            let guard = shared.repository.begin_deployment(family.as_str())?;
            let stopped = crate::hooks::package_removing(shared, &pkg).await;
            let s = shared.clone();
            let fam = family.to_string();
            let pkg = shared
                .blocking
                .run(move || s.repository.remove(&fam, guard))
                .await
                .map_err(task_failed)??;
            crate::hooks::package_removed(shared, &pkg);
            Replied::of::<wire::Remove>(Removed {
                full_name: pkg.full_name.to_string(),
                stopped_processes: stopped,
            })
        }
    })
}
