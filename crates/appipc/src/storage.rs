//! Files between apps: `Windows.Storage.ApplicationData`'s publisher cache folders and
//! `Windows.ApplicationModel.DataTransfer.SharedStorageAccessManager`'s file tokens.

use std::os::fd::AsFd;
use std::path::PathBuf;

use appipc_wire::protocol::{FileTokenInfo, Reply, Request};

use crate::error::{Error, Result};
use crate::session::Session;

fn unexpected(r: Reply) -> Error {
    Error::Protocol(format!("unexpected reply {r:?}"))
}

/// `ApplicationData.Current` (the parts appipc implements).
#[derive(Debug)]
pub struct ApplicationData;

impl ApplicationData {
    /// `GetPublisherCacheFolder(name)`: the folder shared by every package of this package's
    /// publisher that declares `name`. Inside an app container it is mounted at this path.
    /// Fails with `NotDeclared` for a name this package does not declare.
    pub async fn publisher_cache_folder(session: &Session, name: &str) -> Result<PathBuf> {
        match session.request(Request::GetPublisherCacheFolder { name: name.to_owned() }).await? {
            Reply::Path(p) => Ok(PathBuf::from(p)),
            r => Err(unexpected(r)),
        }
    }

    /// `ClearPublisherCacheFolderAsync(name)`: empties the folder.
    pub async fn clear_publisher_cache_folder(session: &Session, name: &str) -> Result<()> {
        session
            .request(Request::ClearPublisherCacheFolder {
                name: name.to_owned(),
                publisher_id: None,
            })
            .await?;
        Ok(())
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
        match session.request_with_fds(Request::AddFileToken, &[file.as_fd()]).await?.0 {
            Reply::Token(t) => Ok(t),
            r => Err(unexpected(r)),
        }
    }

    /// `RedeemTokenForFileAsync`: the shared file, opened anew (its own offset). Fails with
    /// `TokenInvalid` for an unknown, expired, redeemed or removed token, or a file replaced
    /// since it was shared.
    pub async fn redeem_token_for_file(session: &Session, token: &str) -> Result<std::fs::File> {
        match session
            .request_with_fds(Request::RedeemFileToken { token: token.to_owned() }, &[])
            .await?
        {
            (Reply::File { .. }, mut fds) if fds.len() == 1 => {
                Ok(std::fs::File::from(fds.remove(0)))
            }
            (r, _) => Err(unexpected(r)),
        }
    }

    /// `RemoveFile`: revokes a token this package added.
    pub async fn remove_file(session: &Session, token: &str) -> Result<()> {
        session.request(Request::RemoveFileToken { token: token.to_owned() }).await?;
        Ok(())
    }

    /// The outstanding tokens of this package (of the user, for an unpackaged process).
    pub async fn tokens(session: &Session) -> Result<Vec<FileTokenInfo>> {
        match session.request(Request::ListFileTokens).await? {
            Reply::Tokens(t) => Ok(t),
            r => Err(unexpected(r)),
        }
    }
}
