//! Files between apps: publisher cache folders and `SharedStorageAccessManager` tokens.
//!
//! * Publisher cache folders live in `CACHE/publisher/<publisher id>/<folder>`: created when a
//!   package declaring them is installed, bound read-write into that publisher's containers,
//!   kept when the package that wrote them is removed, deleted with the publisher's last package.
//! * A file token names a file a process shared by *fd* (so it works from inside a container,
//!   whose paths mean nothing outside). The broker keeps the fd while it runs and records path,
//!   device, inode and access in the database, so a token survives a broker restart and a file
//!   replaced in between is detected. Tokens are single-use, expire after 14 days, and a source
//!   may hold 1 000 at a time.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use appipc_model::identity::PublisherId;
use appipc_model::policy::Operation;
use appipc_sys::fs::AccessMode;
use appipc_wire::protocol::storage::{
    self as wire, FileTokenInfo, PublisherCacheInfo, RedeemedFile,
};

use crate::Shared;
use crate::caller::Caller;
use crate::cx::{Cx, Replied};
use crate::error::{InternalError, StorageError};
use crate::repository::InstalledPackage;
use crate::state::TokenRow;

type Result<T, E = StorageError> = std::result::Result<T, E>;

fn io(what: impl Into<String>, e: std::io::Error) -> StorageError {
    StorageError::Internal(InternalError::io(what, e))
}

pub(crate) async fn handle(mut cx: Cx<'_>, r: wire::Request) -> Result<Replied> {
    use wire::Request as R;
    let shared = cx.shared;
    Ok(match r {
        R::GetPublisherCacheFolder(g) => {
            Replied::of::<wire::GetPublisherCacheFolder>(get_folder(&cx, &g.name)?)
        }
        R::ClearPublisherCacheFolder(c) => {
            clear_folder(&cx, &c.name, c.publisher_id.as_deref())?;
            Replied::of::<wire::ClearPublisherCacheFolder>(())
        }
        R::ListPublisherCaches(_) => {
            Replied::of::<wire::ListPublisherCaches>(list_folders(shared, cx.caller))
        }
        R::AddFileToken(_) => {
            let fd = cx.take_fds().pop().expect("dispatch checked the declared fd");
            Replied::of::<wire::AddFileToken>(shared.tokens.add(shared, cx.caller, fd)?)
        }
        R::RedeemFileToken(t) => {
            let (file, fd) = shared.tokens.redeem(shared, cx.caller, &t.token)?;
            Replied::with_fds::<wire::RedeemFileToken>(file, vec![fd])
        }
        R::RemoveFileToken(t) => {
            shared.tokens.remove(&cx, &t.token)?;
            Replied::of::<wire::RemoveFileToken>(())
        }
        R::ListFileTokens(_) => {
            Replied::of::<wire::ListFileTokens>(shared.tokens.list(shared, cx.caller)?)
        }
    })
}

/// How long a token lives (Windows: 14 days).
pub const TOKEN_LIFETIME_SECS: u64 = 14 * 24 * 3600;
/// Outstanding tokens per source (Windows: 1 000).
pub const TOKEN_QUOTA: u64 = 1000;

/// The broker's clock, in seconds since the epoch. `APPIPC_CLOCK_OFFSET_SECS` moves it (tests
/// of expiry).
pub fn now() -> u64 {
    let offset: i64 =
        std::env::var("APPIPC_CLOCK_OFFSET_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    real.saturating_add_signed(offset)
}

/// Open fds of outstanding tokens (the fast, rename-proof way to reopen them).
#[derive(Debug, Default)]
pub struct Tokens {
    open: Mutex<HashMap<String, OwnedFd>>,
}

/// `CACHE/publisher/<id>`.
pub(crate) fn publisher_root(shared: &Shared, id: &str) -> PathBuf {
    shared.paths.cache_dir.join("publisher").join(id)
}

/// The host paths of the publisher cache folders a package declares.
pub(crate) fn declared_folders(shared: &Shared, pkg: &InstalledPackage) -> Vec<PathBuf> {
    let root = publisher_root(shared, pkg.family_name.publisher_id().as_str());
    pkg.manifest.publisher_cache_folders.iter().map(|f| root.join(f)).collect()
}

/// Creates the folders a newly installed package declares.
pub(crate) fn provision(
    shared: &Shared,
    pkg: &InstalledPackage,
) -> std::result::Result<(), InternalError> {
    for dir in declared_folders(shared, pkg) {
        std::fs::create_dir_all(&dir)
            .map_err(|e| InternalError::io(format!("creating {}", dir.display()), e))?;
    }
    Ok(())
}

/// After a removal: deletes the publisher's cache if no installed package of it is left.
pub(crate) fn release_if_last(shared: &Shared, publisher_id: &PublisherId) {
    let left =
        shared.repository.all().iter().any(|p| p.family_name.publisher_id() == *publisher_id);
    if left {
        return;
    }
    let root = publisher_root(shared, publisher_id.as_str());
    if root.exists() {
        match std::fs::remove_dir_all(&root) {
            Ok(()) => {
                tracing::info!(publisher = %publisher_id, "last package of the publisher removed: cache deleted")
            }
            Err(e) => {
                tracing::warn!(path = %root.display(), error = %e, "cannot delete publisher cache")
            }
        }
    }
}

fn check_name(name: &str) -> Result<()> {
    appipc_model::manifest::check_publisher_cache_folder_name(name).map_err(|rule| {
        StorageError::BadRequest(format!("publisher cache folder name {name:?}: {rule}"))
    })
}

/// The caller's own declared folder `name` (the policy decides).
fn folder_of(cx: &Cx<'_>, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let pkg = cx.caller.family_name().and_then(|f| cx.shared.repository.get(f));
    let declared = pkg.as_ref().and_then(|p| {
        p.manifest.publisher_cache_folders.iter().find(|f| f.eq_ignore_ascii_case(name)).cloned()
    });
    cx.enforce(Operation::UsePublisherCacheFolder { folder: name, declared: declared.is_some() })?;
    let (Some(pkg), Some(folder)) = (pkg, declared) else {
        unreachable!("the policy refuses a folder that is not declared")
    };
    Ok(publisher_root(cx.shared, pkg.family_name.publisher_id().as_str()).join(folder))
}

/// `GetPublisherCacheFolder`.
fn get_folder(cx: &Cx<'_>, name: &str) -> Result<String> {
    let dir = folder_of(cx, name)?;
    std::fs::create_dir_all(&dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
    Ok(dir.display().to_string())
}

fn empty(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("reading {}", dir.display()), e)),
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let r = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| io(format!("removing {}", p.display()), e))?;
    }
    Ok(())
}

/// `ClearPublisherCacheFolder`.
fn clear_folder(cx: &Cx<'_>, name: &str, publisher_id: Option<&str>) -> Result<()> {
    let dir = match (cx.caller.family_name().is_some(), publisher_id) {
        (true, _) => folder_of(cx, name)?,
        (false, Some(id)) => {
            let id: PublisherId =
                id.parse().map_err(|e| StorageError::BadRequest(format!("{e}")))?;
            check_name(name)?;
            cx.enforce(Operation::ClearPublisherCacheFolderOf {
                publisher_id: id.as_str(),
                folder: name,
            })?;
            let dir = publisher_root(cx.shared, id.as_str()).join(name);
            if !dir.is_dir() {
                return Err(StorageError::NotFound(format!(
                    "publisher {id} has no cache folder {name:?}"
                )));
            }
            dir
        }
        (false, None) => {
            return Err(StorageError::BadRequest(
                "name the publisher id whose folder to clear".into(),
            ));
        }
    };
    empty(&dir)?;
    tracing::info!(folder = %dir.display(), by = %cx.caller.describe(), "publisher cache folder cleared");
    Ok(())
}

fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_of(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `ListPublisherCaches`.
fn list_folders(shared: &Shared, caller: &Caller) -> Vec<PublisherCacheInfo> {
    let mut out = Vec::new();
    let base = shared.paths.cache_dir.join("publisher");
    let Ok(pubs) = std::fs::read_dir(&base) else { return out };
    let mine = caller.family_name().map(|f| f.rsplit('_').next().unwrap_or("").to_owned());
    for p in pubs.flatten() {
        let id = p.file_name().to_string_lossy().into_owned();
        if mine.as_ref().is_some_and(|m| *m != id) {
            continue; // a package sees its own publisher's folders only
        }
        let Ok(folders) = std::fs::read_dir(p.path()) else { continue };
        for f in folders.flatten() {
            let folder = f.file_name().to_string_lossy().into_owned();
            let packages = shared
                .repository
                .all()
                .iter()
                .filter(|pkg| {
                    pkg.family_name.publisher_id().as_str() == id
                        && pkg
                            .manifest
                            .publisher_cache_folders
                            .iter()
                            .any(|d| d.eq_ignore_ascii_case(&folder))
                })
                .map(|pkg| pkg.family_name.to_string())
                .collect();
            out.push(PublisherCacheInfo {
                publisher_id: id.clone(),
                size: size_of(&f.path()),
                path: f.path().display().to_string(),
                folder,
                packages,
            });
        }
    }
    out.sort_by(|a, b| (&a.publisher_id, &a.folder).cmp(&(&b.publisher_id, &b.folder)));
    out
}

fn new_token() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn source_of(caller: &Caller) -> String {
    caller.family_name_or_empty()
}

impl Tokens {
    /// Closes the kept fds of tokens that are gone.
    fn forget(&self, gone: Vec<String>) {
        let mut open = self.open.lock().expect("tokens poisoned");
        for t in gone {
            open.remove(&t);
        }
    }

    /// `AddFile`: `fd` is the file the caller shares.
    pub(crate) fn add(&self, shared: &Arc<Shared>, caller: &Caller, fd: OwnedFd) -> Result<String> {
        let id = appipc_sys::fs::identity(&fd).map_err(|e| io("fstat of the shared file", e))?;
        if !id.regular {
            return Err(StorageError::BadRequest(
                "only regular files can be shared with a token".into(),
            ));
        }
        let writable = match appipc_sys::fs::access_mode(&fd).map_err(|e| io("F_GETFL", e))? {
            AccessMode::Read => false,
            AccessMode::ReadWrite => true,
            AccessMode::Write => {
                return Err(StorageError::BadRequest(
                    "the shared file is open for writing only; open it for reading".into(),
                ));
            }
        };
        let path = appipc_sys::fs::fd_path(&fd)
            .map_err(|e| io("reading the shared file's path", e))?
            .ok_or_else(|| StorageError::BadRequest("the shared file has been deleted".into()))?;
        let source = source_of(caller);
        let token = new_token();
        let row = TokenRow {
            token: token.clone(),
            source: source.clone(),
            path: path.display().to_string(),
            dev: id.dev,
            ino: id.ino,
            writable,
            created_at: now(),
            birth_ns: id.birth_ns,
        };
        shared.repository.with_store(|s| -> Result<()> {
            self.forget(s.expire_tokens(now().saturating_sub(TOKEN_LIFETIME_SECS))?);
            if s.count_tokens(&source)? >= TOKEN_QUOTA {
                return Err(StorageError::QuotaExceeded(format!(
                    "{} already has {TOKEN_QUOTA} outstanding file tokens; redeem or remove some",
                    if source.is_empty() { "the user" } else { &source }
                )));
            }
            Ok(s.put_token(&row)?)
        })?;
        self.open.lock().expect("tokens poisoned").insert(token.clone(), fd);
        tracing::info!(source = %caller.describe(), path = %path.display(), writable, "file token added");
        Ok(token)
    }

    /// `RedeemTokenForFileAsync`: the file anew, with at most the access it was shared with.
    pub(crate) fn redeem(
        &self,
        shared: &Arc<Shared>,
        caller: &Caller,
        token: &str,
    ) -> Result<(RedeemedFile, OwnedFd)> {
        let invalid = || {
            StorageError::TokenInvalid(format!(
                "file token {token} is unknown, already redeemed or removed"
            ))
        };
        let row = shared.repository.with_store(|s| s.take_token(token))?.ok_or_else(invalid)?;
        let kept = self.open.lock().expect("tokens poisoned").remove(token);
        if now() >= row.created_at + TOKEN_LIFETIME_SECS {
            return Err(StorageError::TokenInvalid(format!(
                "file token {token} expired (tokens live 14 days)"
            )));
        }
        let fd = match &kept {
            Some(fd) => appipc_sys::fs::reopen(fd, row.writable),
            None => appipc_sys::fs::open_file(Path::new(&row.path), row.writable),
        }
        .map_err(|e| {
            StorageError::TokenInvalid(format!(
                "the file of token {token} ({}) cannot be opened: {e}",
                row.path
            ))
        })?;
        let id = appipc_sys::fs::identity(&fd).map_err(|e| io("fstat", e))?;
        // The path must still name the shared file: a file replaced at that path (even while
        // the broker keeps the original open, even one that reuses the inode number) is not the
        // file that was shared.
        let same = |i: &appipc_sys::fs::FileIdentity| {
            (i.dev, i.ino) == (row.dev, row.ino)
                && (row.birth_ns.is_none() || i.birth_ns == row.birth_ns)
        };
        let at_path = appipc_sys::fs::open_file(Path::new(&row.path), false)
            .and_then(appipc_sys::fs::identity)
            .ok();
        if !same(&id) || at_path.is_some_and(|p| !same(&p)) {
            return Err(StorageError::TokenInvalid(format!(
                "the file of token {token} ({}) was replaced since it was shared",
                row.path
            )));
        }
        tracing::info!(by = %caller.describe(), source = %row.source, path = %row.path, "file token redeemed");
        let name = Path::new(&row.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((RedeemedFile { writable: row.writable, path: row.path, name }, fd))
    }

    /// `RemoveFile`: by the source, or by the user (the policy decides).
    pub(crate) fn remove(&self, cx: &Cx<'_>, token: &str) -> Result<()> {
        let row =
            cx.shared.repository.with_store(|s| s.token(token))?.ok_or_else(|| {
                StorageError::TokenInvalid(format!("file token {token} is unknown"))
            })?;
        cx.enforce(Operation::RemoveFileToken { token, source: &row.source })?;
        cx.shared.repository.with_store(|s| s.take_token(token))?;
        self.open.lock().expect("tokens poisoned").remove(token);
        Ok(())
    }

    /// `ListFileTokens`.
    pub(crate) fn list(&self, shared: &Arc<Shared>, caller: &Caller) -> Result<Vec<FileTokenInfo>> {
        let source = caller.family_name();
        let rows = shared.repository.with_store(|s| -> Result<Vec<TokenRow>> {
            self.forget(s.expire_tokens(now().saturating_sub(TOKEN_LIFETIME_SECS))?);
            Ok(s.tokens(source)?)
        })?;
        Ok(rows
            .into_iter()
            .map(|r| FileTokenInfo {
                expires_at: r.created_at + TOKEN_LIFETIME_SECS,
                token: r.token,
                source_package_family_name: r.source,
                path: r.path,
                writable: r.writable,
                created_at: r.created_at,
            })
            .collect())
    }
}
