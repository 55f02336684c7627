//! Files between apps: publisher cache folders (`ApplicationData`) and file tokens
//! (`SharedStorageAccessManager`).

use minicbor::{Decode, Encode};

super::mechanism! {
    /// Files between apps: publisher cache folders (`ApplicationData.GetPublisherCacheFolder`)
    /// and file tokens (`SharedStorageAccessManager`).
    mechanism Storage;
    requests {
        /// `ApplicationData.GetPublisherCacheFolder(name)`: the path of a publisher cache
        /// folder the caller's package declares (NotDeclared otherwise).
        0 GetPublisherCacheFolder {
            /// The declared folder name.
            0 name: String,
        } fds(0) -> String, reply fds "0";
        /// `ClearPublisherCacheFolderAsync(name)` from a package that declares it, or (without
        /// a package) the user clearing `publisher_id`'s folder.
        1 ClearPublisherCacheFolder {
            /// The folder.
            0 name: String,
            /// For an unpackaged caller: whose folder.
            1 publisher_id: Option<String>,
        } fds(0) -> (), reply fds "0";
        /// The publisher cache folders that exist (a package sees its own publisher's).
        2 ListPublisherCaches {} fds(0) -> Vec<PublisherCacheInfo>, reply fds "0";
        /// `SharedStorageAccessManager.AddFile`: the file is the attached fd (open for reading,
        /// or reading and writing). Returns the token.
        3 AddFileToken {} fds(1) -> String, reply fds "0";
        /// `RedeemTokenForFileAsync`: the file, opened anew with at most the access it was
        /// shared with.
        4 RedeemFileToken {
            /// The token.
            0 token: String,
        } fds(0) -> RedeemedFile, reply fds "1: the file";
        /// `RemoveFile`: by the package that added the token, or by the user.
        5 RemoveFileToken {
            /// The token.
            0 token: String,
        } fds(0) -> (), reply fds "0";
        /// Outstanding tokens (the caller's own; all of the user's for an unpackaged caller).
        6 ListFileTokens {} fds(0) -> Vec<FileTokenInfo>, reply fds "0";
    }
    events {}
}

/// Answer to [`RedeemFileToken`] (`StorageFile`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct RedeemedFile {
    /// Where the file was when it was shared (meaningless inside another container).
    #[n(0)]
    pub path: String,
    /// Its name (`StorageFile.Name`).
    #[n(1)]
    pub name: String,
    /// The fd may be written.
    #[n(2)]
    pub writable: bool,
}

/// A publisher cache folder.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct PublisherCacheInfo {
    /// Publisher id.
    #[n(0)]
    pub publisher_id: String,
    /// Folder name.
    #[n(1)]
    pub folder: String,
    /// Where it is.
    #[n(2)]
    pub path: String,
    /// Bytes in it.
    #[n(3)]
    pub size: u64,
    /// Installed packages that declare it.
    #[n(4)]
    pub packages: Vec<String>,
}

/// An outstanding file token.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct FileTokenInfo {
    /// The token.
    #[n(0)]
    pub token: String,
    /// The package that shared the file ("" for the user).
    #[n(1)]
    pub source_package_family_name: String,
    /// The file.
    #[n(2)]
    pub path: String,
    /// Shared for writing too.
    #[n(3)]
    pub writable: bool,
    /// Seconds since the epoch.
    #[n(4)]
    pub created_at: u64,
    /// Seconds since the epoch.
    #[n(5)]
    pub expires_at: u64,
}
