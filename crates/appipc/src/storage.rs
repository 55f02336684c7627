//! Files between apps: `Windows.Storage.ApplicationData`'s publisher cache folders and
//! `Windows.ApplicationModel.DataTransfer.SharedStorageAccessManager`'s file tokens.

use std::os::fd::AsFd;
use std::path::PathBuf;

use appipc_wire::protocol::storage::{
    AddFileToken, ClearPublisherCacheFolder, GetPublisherCacheFolder, ListFileTokens,
    ListPublisherCaches, RedeemFileToken, RemoveFileToken,
};
pub use appipc_wire::protocol::storage::{FileTokenInfo, PublisherCacheInfo};

use crate::error::{Error, Result};
use crate::session::Session;

/// `ApplicationData.Current` (the parts appipc implements).
#[derive(Debug)]
pub struct ApplicationData;

impl ApplicationData {
    /// `GetPublisherCacheFolder(name)`: the folder shared by every package of this package's
    /// publisher that declares `name`. Inside an app container it is mounted at this path.
    /// Fails with `NotDeclared` for a name this package does not declare.
    pub async fn publisher_cache_folder(session: &Session, name: &str) -> Result<PathBuf> {
        let p = session.call(GetPublisherCacheFolder { name: name.to_owned() }).await?;
        Ok(PathBuf::from(p))
    }

    /// `ClearPublisherCacheFolderAsync(name)`: empties the folder.
    pub async fn clear_publisher_cache_folder(session: &Session, name: &str) -> Result<()> {
        session.call(ClearPublisherCacheFolder { name: name.to_owned(), publisher_id: None }).await
    }

    /// The user's form (unpackaged callers; appipc extension): empties `folder` of the
    /// publisher `publisher_id`.
    pub async fn clear_publisher_cache_folder_of(
        session: &Session,
        publisher_id: &str,
        folder: &str,
    ) -> Result<()> {
        session
            .call(ClearPublisherCacheFolder {
                name: folder.to_owned(),
                publisher_id: Some(publisher_id.to_owned()),
            })
            .await
    }

    /// The publisher cache folders that exist (a package sees its own publisher's).
    pub async fn publisher_cache_folders(session: &Session) -> Result<Vec<PublisherCacheInfo>> {
        session.call(ListPublisherCaches {}).await
    }
}

/// `SharedStorageAccessManager`.
#[derive(Debug)]
pub struct SharedStorageAccessManager;

impl SharedStorageAccessManager {
    /// `AddFile`: a token for a file this process has open (for reading, or reading and
    /// writing). The redeemer gets at most that access. The token is single-use, expires after
    /// 14 days, and a package may have 1 000 outstanding.
    pub async fn add_file(session: &Session, file: &std::fs::File) -> Result<String> {
        Ok(session.call_with_fds(AddFileToken {}, &[file.as_fd()]).await?.0)
    }

    /// `RedeemTokenForFileAsync`: the shared file, opened anew (its own offset), as a
    /// [`StorageFile`]. Fails with `TokenInvalid` for an unknown, expired, redeemed or removed
    /// token, or a file replaced since it was shared.
    pub async fn redeem_token_for_file(session: &Session, token: &str) -> Result<StorageFile> {
        let (f, mut fds) =
            session.call_with_fds(RedeemFileToken { token: token.to_owned() }, &[]).await?;
        let fd = fds.pop().ok_or_else(|| Error::Protocol("redeemed file without its fd".into()))?;
        Ok(StorageFile { name: f.name, path: f.path, writable: f.writable, file: fd.into() })
    }

    /// `RemoveFile`: revokes a token this package added.
    pub async fn remove_file(session: &Session, token: &str) -> Result<()> {
        session.call(RemoveFileToken { token: token.to_owned() }).await
    }

    /// The outstanding tokens of this package (of the user, for an unpackaged process).
    pub async fn tokens(session: &Session) -> Result<Vec<FileTokenInfo>> {
        session.call(ListFileTokens {}).await
    }
}

/// `StorageFile`: a file redeemed from a token, with the name it had when it was shared.
#[derive(Debug)]
pub struct StorageFile {
    /// `StorageFile.Name`.
    pub name: String,
    /// `StorageFile.Path` where it was shared (meaningless inside another app container).
    pub path: String,
    /// Whether it may be written.
    pub writable: bool,
    /// The open file (its own offset).
    pub file: std::fs::File,
}

impl StorageFile {
    /// The open file.
    pub fn into_file(self) -> std::fs::File {
        self.file
    }
}
