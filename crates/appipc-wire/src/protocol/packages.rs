//! Installing, listing and removing packages (`Windows.Management.Deployment.PackageManager`).

use minicbor::{Decode, Encode};

use crate::caller::TrustLevel;

super::mechanism! {
    /// Installing, upgrading, listing and removing packages
    /// (`Windows.Management.Deployment.PackageManager`).
    mechanism Packages;
    requests {
        /// Install (or upgrade to) the package in the folder at `path` (absolute, as seen by
        /// the broker): loose files, Windows' `Add-AppxPackage -Register`. Only in developer
        /// mode (`HRESULT` `ERROR_INSTALL_POLICY_FAILURE` otherwise). Callers without a package,
        /// or with the restricted capability `packageManagement`.
        0 Install {
            /// Absolute path of the package folder.
            0 path: String,
            /// The restricted capabilities the user consented to (see `InstallFile`).
            1 consent: Option<Vec<String>>,
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
        /// Install (or upgrade to) the package file (`.appipc`) open as the attached fd, a
        /// regular file, read once by the broker from offset 0 into its own staging folder.
        /// Its signature must verify with a key the user trusts for exactly the manifest's
        /// publisher; an upgrade must be signed for the installed version's publisher; the
        /// restricted capabilities not granted before must be in `consent`. Same callers as
        /// `Install`. Refusals carry the deployment `HRESULT`s of `Add-AppxPackage`
        /// (`TRUST_E_NOSIGNATURE`, `CERT_E_UNTRUSTEDROOT`, `ERROR_BAD_FORMAT`,
        /// `APPX_E_BLOCK_HASH_INVALID`, …; `docs/packaging.md`).
        3 InstallFile {
            /// The restricted capabilities the user consented to.
            0 consent: Option<Vec<String>>,
        } fds(1) -> Installed, reply fds "0";
        /// What installing the attached package file would do, without installing it: its
        /// identity, signer, and the restricted capabilities that need consent. Reads only the
        /// block map, the signature and the manifest; refused as `InstallFile` would be for
        /// the signature, the publisher, the trust store and the installed version.
        4 InspectFile {} fds(1) -> PackagePreview, reply fds "0";
        /// What installing the folder at `path` would do (developer mode only).
        5 InspectFolder {
            /// Absolute path of the package folder.
            0 path: String,
        } fds(0) -> PackagePreview, reply fds "0";
        /// Trust a public key (the text of its public key file) for the publisher it names.
        /// Only the user's own unpackaged processes.
        6 TrustKey {
            /// The public key file's text.
            0 public_key: String,
        } fds(0) -> TrustedKey, reply fds "0";
        /// The trusted keys. The user's unpackaged processes, or `packageManagement`.
        7 ListTrustedKeys {} fds(0) -> Vec<TrustedKey>, reply fds "0";
        /// Stop trusting a key (by its id, 64 hex digits, or a unique prefix of at least 8);
        /// installed packages it signed stay installed. Returns the entries removed.
        8 UntrustKey {
            /// The key id or a prefix of it.
            0 key_id: String,
        } fds(0) -> Vec<TrustedKey>, reply fds "0";
        /// Turn developer mode on or off (off by default). Only the user's own unpackaged
        /// processes.
        9 SetDeveloperMode {
            /// On or off.
            0 enabled: bool,
        } fds(0) -> DeveloperMode, reply fds "0";
        /// Whether developer mode is on. Same callers as `ListTrustedKeys`.
        10 GetDeveloperMode {} fds(0) -> DeveloperMode, reply fds "0";
    }
    events {
        /// How far an `Install` or `InstallFile` of this session got copying (a folder) or
        /// extracting (a package file) into the broker's staging folder: sent at most every
        /// 250 ms, and once when the copy is done, before the reply.
        0 InstallProgress {
            /// Files copied so far.
            0 files: u64,
            /// Bytes copied so far.
            1 bytes: u64,
            /// How many files there are (a package file's block map); `None` for a folder,
            /// which is walked as it is copied.
            2 total_files: Option<u64>,
            /// How many bytes there are; `None` for a folder.
            3 total_bytes: Option<u64>,
        } fds "0";
    }
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, serde::Serialize)]
#[cbor(index_only)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct CapabilityRefusal {
    /// The capability as declared.
    #[n(0)]
    pub name: String,
    /// Why it was not granted.
    #[n(1)]
    pub reason: String,
}

/// Answer to [`Install`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Removed {
    /// The full name removed.
    #[n(0)]
    pub full_name: String,
    /// How many of its processes were stopped.
    #[n(1)]
    pub stopped_processes: u32,
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
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
    /// Who signed it; `None` for a package installed from a folder in developer mode
    /// (shown as `unsigned (developer mode)`).
    #[n(14)]
    pub signer: Option<Signer>,
    /// The log its processes launched without stdio of their own write to
    /// (`appipc logs`); it may not exist yet.
    #[n(15)]
    pub log_location: Option<String>,
}

/// A key the user trusts: packages it signs install as its publisher.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct TrustedKey {
    /// The key id: SHA-256 of the public key, 64 lower-case hex digits.
    #[n(0)]
    pub key_id: String,
    /// The publisher it speaks for, exactly as packages it signs must name it.
    #[n(1)]
    pub publisher: String,
    /// When it was added, seconds since the Unix epoch.
    #[n(2)]
    pub added_at: u64,
    /// Its public key file's text.
    #[n(3)]
    pub public_key: String,
}

/// Whether developer mode is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct DeveloperMode {
    /// On or off.
    #[n(0)]
    pub enabled: bool,
}

/// Who signed a package.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Signer {
    /// The key id (64 hex digits).
    #[n(0)]
    pub key_id: String,
    /// The publisher the key speaks for.
    #[n(1)]
    pub publisher: String,
}

/// A restricted capability that needs the user's consent, and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct CapabilityConsent {
    /// The capability.
    #[n(0)]
    pub name: String,
    /// One line on what it allows.
    #[n(1)]
    pub allows: String,
}

/// Answer to [`InspectFile`] and [`InspectFolder`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct PackagePreview {
    /// Package full name.
    #[n(0)]
    pub full_name: String,
    /// Package family name.
    #[n(1)]
    pub family_name: String,
    /// Publisher distinguished name.
    #[n(2)]
    pub publisher: String,
    /// Display name.
    #[n(3)]
    pub display_name: String,
    /// Who signed it (`None`: a folder, unsigned).
    #[n(4)]
    pub signer: Option<Signer>,
    /// The full name of the installed version of the family, if any.
    #[n(5)]
    pub installed: Option<String>,
    /// The restricted capabilities it declares.
    #[n(6)]
    pub restricted: Vec<String>,
    /// Those not granted to the installed version (all of them for a new package): what
    /// the install must be given consent for.
    #[n(7)]
    pub consent_needed: Vec<CapabilityConsent>,
}

/// An application inside a package.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_without_consent_decodes_as_none() {
        // An older client's install request: [path] only.
        let old = minicbor::to_vec(["/p"]).unwrap();
        let r: Install = minicbor::decode(&old).unwrap();
        assert_eq!(r, Install { path: "/p".into(), consent: None });
        let new = Install { path: "/p".into(), consent: Some(vec!["runFullTrust".into()]) };
        let back: Install = minicbor::decode(&minicbor::to_vec(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }
}
