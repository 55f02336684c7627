//! `Windows.ApplicationModel.Package`: who this process is.

use appipc_wire::caller::{CallerIdentity, TrustLevel};
use appipc_wire::protocol::broker::WhoAmI;

use crate::error::{Error, Result};
use crate::session::Session;

/// The identity of the calling process as the broker attests it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity(pub CallerIdentity);

impl ProcessIdentity {
    /// Asks the broker who this session belongs to.
    pub async fn query(session: &Session) -> Result<ProcessIdentity> {
        Ok(ProcessIdentity(session.call(WhoAmI {}).await?))
    }

    /// The package family name, or `None` for an unpackaged process.
    pub fn package_family_name(&self) -> Option<&str> {
        self.0.package_family_name.as_deref()
    }

    /// Trust level.
    pub fn trust(&self) -> TrustLevel {
        self.0.trust
    }
}

/// `Package.Current`: the package of the calling process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    id: PackageId,
    identity: CallerIdentity,
}

/// `PackageId`: the parts of a package's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageId {
    /// `PackageId.FamilyName`.
    pub family_name: String,
    /// `PackageId.FullName`.
    pub full_name: String,
    /// `PackageId.Name`.
    pub name: String,
    /// `PackageId.PublisherId`.
    pub publisher_id: String,
}

impl Package {
    /// `Package.Current`: fails with [`Error::NoPackageIdentity`] in an unpackaged process,
    /// as Windows throws.
    pub async fn current(session: &Session) -> Result<Package> {
        let identity = ProcessIdentity::query(session).await?.0;
        let (Some(family), Some(full)) =
            (identity.package_family_name.clone(), identity.package_full_name.clone())
        else {
            return Err(Error::NoPackageIdentity);
        };
        let (name, publisher_id) =
            family.rsplit_once('_').map(|(n, p)| (n.to_owned(), p.to_owned())).unwrap_or_default();
        Ok(Package {
            id: PackageId { family_name: family, full_name: full, name, publisher_id },
            identity,
        })
    }

    /// `Package.Id`.
    pub fn id(&self) -> &PackageId {
        &self.id
    }

    /// The application id this process was started as.
    pub fn app_id(&self) -> Option<&str> {
        self.identity.app_id.as_deref()
    }

    /// Trust level (app container or full trust).
    pub fn trust(&self) -> TrustLevel {
        self.identity.trust
    }

    /// Granted capabilities (a declared capability the broker did not grant is not here).
    pub fn capabilities(&self) -> &[String] {
        &self.identity.capabilities
    }

    /// The AppContainer SID of the package.
    pub fn package_sid(&self) -> Option<&str> {
        self.identity.package_sid.as_deref()
    }
}
