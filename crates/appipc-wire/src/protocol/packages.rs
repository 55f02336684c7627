//! Installing, listing and removing packages (`Windows.Management.Deployment.PackageManager`).

use minicbor::{Decode, Encode};

use crate::caller::TrustLevel;

super::mechanism! {
    /// Installing, upgrading, listing and removing packages
    /// (`Windows.Management.Deployment.PackageManager`).
    mechanism Packages;
    requests {
        /// Install (or upgrade to) the package in the folder at `path` (absolute, as seen by
        /// the broker). Callers without a package, or with the restricted capability
        /// `packageManagement`.
        0 Install {
            /// Absolute path of the package folder.
            0 path: String,
        } fds(0) -> Installed, reply fds "0";
        /// The installed packages the caller may see (an app container sees its own unless it
        /// has `packageQuery`).
        1 ListPackages {} fds(0) -> Vec<PackageInfo>, reply fds "0";
        /// Remove a package by family name: stops its processes, deletes its files and app
        /// data. Same callers as `Install`.
        2 Remove {
            /// Package family name.
            0 family_name: String,
        } fds(0) -> Removed, reply fds "0";
    }
    events {}
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
pub enum InstallOutcome {
    /// Newly installed.
    #[n(0)]
    Installed,
    /// Replaced an older version of the same family.
    #[n(1)]
    Upgraded,
    /// This exact package was already installed; nothing changed.
    #[n(2)]
    AlreadyInstalled,
}

/// A declared capability the broker did not grant, and why.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CapabilityRefusal {
    /// The capability as declared.
    #[n(0)]
    pub name: String,
    /// Why it was not granted.
    #[n(1)]
    pub reason: String,
}

/// Answer to [`Install`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Installed {
    /// Package full name.
    #[n(0)]
    pub full_name: String,
    /// Package family name.
    #[n(1)]
    pub family_name: String,
    /// What the install did.
    #[n(2)]
    pub outcome: InstallOutcome,
    /// The full name this replaced, for an upgrade.
    #[n(3)]
    pub replaced: Option<String>,
    /// Declared capabilities that were not granted, with the reason.
    #[n(4)]
    pub not_granted: Vec<CapabilityRefusal>,
}

/// Answer to [`Remove`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Removed {
    /// The full name removed.
    #[n(0)]
    pub full_name: String,
    /// How many of its processes were stopped.
    #[n(1)]
    pub stopped_processes: u32,
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PackageInfo {
    /// `Identity@Name`.
    #[n(0)]
    pub name: String,
    /// Four-part version.
    #[n(1)]
    pub version: String,
    /// Publisher distinguished name.
    #[n(2)]
    pub publisher: String,
    /// 13-character publisher id.
    #[n(3)]
    pub publisher_id: String,
    /// Package family name.
    #[n(4)]
    pub family_name: String,
    /// Package full name.
    #[n(5)]
    pub full_name: String,
    /// Declared capabilities.
    #[n(6)]
    pub capabilities: Vec<String>,
    /// Applications.
    #[n(7)]
    pub applications: Vec<AppInfo>,
    /// Where the package's files are installed.
    #[n(8)]
    pub install_location: String,
    /// Where its app data folders are.
    #[n(9)]
    pub data_location: String,
    /// Display name, if the manifest gives one.
    #[n(10)]
    pub display_name: Option<String>,
    /// AppContainer SID.
    #[n(11)]
    pub package_sid: String,
    /// Install time, seconds since the Unix epoch.
    #[n(12)]
    pub installed_at: u64,
    /// Granted capabilities (a subset of `capabilities`).
    #[n(13)]
    pub granted_capabilities: Vec<String>,
}

/// An application inside a package.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AppInfo {
    /// Application id.
    #[n(0)]
    pub id: String,
    /// Package-relative executable.
    #[n(1)]
    pub executable: String,
    /// Trust level it runs at.
    #[n(2)]
    pub trust: TrustLevel,
}
