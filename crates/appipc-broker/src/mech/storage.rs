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
            clear_folder(&cx, &c.name, c.publisher_id.as_deref()).await?;
            Replied::of::<wire::ClearPublisherCacheFolder>(())
        }
        R::ListPublisherCaches(_) => {
            // Walking folders whose contents the packages control: off the async threads.
            let (s, caller) = (shared.clone(), cx.caller.clone());
            let list = shared
                .blocking
                .run(move || list_folders(&s, &caller))
                .await
                .map_err(InternalError::from)?;
            Replied::of::<wire::ListPublisherCaches>(list)
        }
        R::AddFileToken(_) => {
            let fd = cx.take_fds().pop().expect("dispatch checked the declared fd");
            Replied::of::<wire::AddFileToken>(shared.tokens.add(shared, cx.caller, fd).await?)
        }
        R::RedeemFileToken(t) => {
            let (file, fd) = shared.tokens.redeem(shared, cx.caller, &t.token).await?;
            Replied::with_fds::<wire::RedeemFileToken>(file, vec![fd])
        }
        R::RemoveFileToken(t) => {
            shared.tokens.remove(&cx, &t.token).await?;
            Replied::of::<wire::RemoveFileToken>(())
        }
        R::ListFileTokens(_) => {
            Replied::of::<wire::ListFileTokens>(shared.tokens.list(shared, cx.caller).await?)
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
    open: Mutex<HashMap<String, (OwnedFd, crate::limits::FdCharge)>>,
}

/// `CACHE/publisher/<id>`.
pub(crate) fn publisher_root(shared: &Shared, id: &str) -> PathBuf {
    shared.paths.cache_dir.join("publisher").join(id)
}

/// Creates a folder and its missing parents, private to the user (0700).
fn private_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The folder `name` of a publisher's cache on disk. Names are compared as Windows compares
/// them (`publisher_cache_folder_key`: `Shared` and `shared` are one folder), and a folder has
/// one spelling on disk — the one it was first created with: an existing folder of the same
/// key is that folder, else it is `root/name`. Blocking (reads `root`).
pub(crate) fn folder_on_disk(root: &Path, name: &str) -> PathBuf {
    let key = appipc_model::manifest::publisher_cache_folder_key(name);
    let existing = std::fs::read_dir(root).ok().and_then(|entries| {
        entries.flatten().map(|e| e.file_name()).find(|f| {
            f.to_str().is_some_and(|f| appipc_model::manifest::publisher_cache_folder_key(f) == key)
        })
    });
    root.join(existing.as_deref().unwrap_or(name.as_ref()))
}

/// The folder `name` of the publisher at `root`, created if missing (0700), under the
/// broker's publisher cache lock so two spellings of one name never become two folders.
/// Blocking.
pub(crate) fn ensure_folder(shared: &Shared, root: &Path, name: &str) -> std::io::Result<PathBuf> {
    let _one_at_a_time = shared.publisher_cache_lock.lock().expect("publisher cache lock");
    let dir = folder_on_disk(root, name);
    private_dirs(&dir)?;
    Ok(dir)
}

/// The folders a package declares, each created if missing ([`ensure_folder`]). Blocking.
pub(crate) fn ensure_declared_folders(
    shared: &Shared,
    pkg: &InstalledPackage,
) -> std::result::Result<Vec<PathBuf>, InternalError> {
    let root = publisher_root(shared, pkg.family_name.publisher_id().as_str());
    pkg.manifest
        .publisher_cache_folders
        .iter()
        .map(|f| {
            ensure_folder(shared, &root, f)
                .map_err(|e| InternalError::io(format!("creating {}", root.join(f).display()), e))
        })
        .collect()
}

/// Creates the folders a newly installed package declares.
pub(crate) fn provision(
    shared: &Shared,
    pkg: &InstalledPackage,
) -> std::result::Result<(), InternalError> {
    ensure_declared_folders(shared, pkg).map(|_| ())
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
    let declared = pkg
        .as_ref()
        .and_then(|p| p.manifest.declared_publisher_cache_folder(name).map(str::to_owned));
    cx.enforce(Operation::UsePublisherCacheFolder { folder: name, declared: declared.is_some() })?;
    let (Some(pkg), Some(folder)) = (pkg, declared) else {
        unreachable!("the policy refuses a folder that is not declared")
    };
    let root = publisher_root(cx.shared, pkg.family_name.publisher_id().as_str());
    Ok(folder_on_disk(&root, &folder))
}

/// [`folder_of`], created if missing.
fn ensure_folder_of(cx: &Cx<'_>, name: &str) -> Result<PathBuf> {
    let dir = folder_of(cx, name)?;
    let (root, name) = (dir.parent().expect("a folder of a publisher root"), dir.file_name());
    let name = name.and_then(|n| n.to_str()).expect("a folder name");
    ensure_folder(cx.shared, root, name).map_err(|e| io(format!("creating {}", dir.display()), e))
}

/// `GetPublisherCacheFolder`.
fn get_folder(cx: &Cx<'_>, name: &str) -> Result<String> {
    Ok(ensure_folder_of(cx, name)?.display().to_string())
}

/// Empties a folder whose contents a package controls; links inside are removed, never
/// followed (`remove_dir_all` does not follow them). Blocking.
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
async fn clear_folder(cx: &Cx<'_>, name: &str, publisher_id: Option<&str>) -> Result<()> {
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
            let dir = folder_on_disk(&publisher_root(cx.shared, id.as_str()), name);
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
    let d = dir.clone();
    cx.shared.blocking.run(move || empty(&d)).await.map_err(InternalError::from)??;
    tracing::info!(folder = %dir.display(), by = %cx.caller.describe(), "publisher cache folder cleared");
    Ok(())
}

/// Bytes in a folder whose contents a package controls: links are not followed, and the walk
/// stops after 100 000 entries (the size is then a lower bound). Blocking.
fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut budget = 100_000usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            if budget == 0 {
                return total;
            }
            budget -= 1;
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
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
                        && pkg.manifest.declares_publisher_cache_folder(&folder)
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

/// Runs a store operation on the blocking pool.
pub(crate) async fn store<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&mut crate::state::Store) -> std::result::Result<T, InternalError> + Send + 'static,
) -> Result<T> {
    let s = shared.clone();
    Ok(shared
        .blocking
        .run(move || s.repository.with_store(f))
        .await
        .map_err(InternalError::from)??)
}

/// The folders a token's path may be resolved beneath after a restart: a package's own data,
/// install and declared publisher cache folders; for the user, the whole file system (the
/// recorded path is the kernel's, so it holds no link).
fn sharer_roots(shared: &Shared, source: &str) -> Vec<PathBuf> {
    if source.is_empty() {
        return vec![PathBuf::from("/")];
    }
    let Some(pkg) = shared.repository.get(source) else { return Vec::new() };
    let mut roots = vec![pkg.data_dir.clone(), pkg.install_dir.clone()];
    let root = publisher_root(shared, pkg.family_name.publisher_id().as_str());
    roots.extend(pkg.manifest.publisher_cache_folders.iter().map(|f| folder_on_disk(&root, f)));
    roots
}

/// Opens the file of a token: the kept fd reopened, else the recorded path beneath one of
/// `roots` with no link followed; then checks it is the file that was shared.
fn open_shared(
    token: &str,
    kept: Option<OwnedFd>,
    roots: &[PathBuf],
    row: &TokenRow,
) -> Result<OwnedFd> {
    let path = Path::new(&row.path);
    let replaced = || {
        StorageError::TokenInvalid(format!(
            "the file of token {token} ({}) was deleted or replaced since it was shared",
            row.path
        ))
    };
    let cannot = |why: String| {
        StorageError::TokenInvalid(format!(
            "the file of token {token} ({}) cannot be opened: {why}",
            row.path
        ))
    };
    let fd = match kept {
        Some(k) => {
            let id = appipc_sys::fs::identity(&k).map_err(|e| io("fstat", e))?;
            if id.nlink == 0 {
                return Err(replaced());
            }
            appipc_sys::fs::reopen(&k, row.writable).map_err(|e| cannot(e.to_string()))?
        }
        None => {
            let (root, rel) = roots
                .iter()
                .find_map(|r| path.strip_prefix(r).ok().map(|rel| (r, rel)))
                .ok_or_else(|| {
                    cannot("it is not inside the folders of the package that shared it".into())
                })?;
            let dir = appipc_sys::dirfd::Dir::open(root).map_err(|e| cannot(e.to_string()))?;
            let opened =
                if row.writable { dir.open_file_read_write(rel) } else { dir.open_file(rel) };
            match opened {
                Ok((f, _)) => OwnedFd::from(f),
                Err(appipc_sys::dirfd::DirError::Symlink { .. }) => return Err(replaced()),
                Err(e) => return Err(cannot(e.to_string())),
            }
        }
    };
    let id = appipc_sys::fs::identity(&fd).map_err(|e| io("fstat", e))?;
    let same = (id.dev, id.ino) == (row.dev, row.ino)
        && (row.birth_ns.is_none() || id.birth_ns == row.birth_ns);
    if !same || !id.regular {
        return Err(replaced());
    }
    Ok(fd)
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
    pub(crate) async fn add(
        &self,
        shared: &Arc<Shared>,
        caller: &Caller,
        fd: OwnedFd,
    ) -> Result<String> {
        let charge = shared.fds.try_charge(1).ok_or_else(|| {
            StorageError::QuotaExceeded(
                "the broker holds as many files for its clients as it may; redeem or remove \
                 some tokens"
                    .into(),
            )
        })?;
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
        let (expired, stored) = {
            let s = shared.clone();
            let source = source.clone();
            shared
                .blocking
                .run(move || {
                    s.repository.with_store(|s| -> Result<(Vec<String>, bool)> {
                        let expired = s.expire_tokens(now().saturating_sub(TOKEN_LIFETIME_SECS))?;
                        if s.count_tokens(&source)? >= TOKEN_QUOTA {
                            return Ok((expired, false));
                        }
                        s.put_token(&row)?;
                        Ok((expired, true))
                    })
                })
                .await
                .map_err(InternalError::from)??
        };
        self.forget(expired);
        if !stored {
            return Err(StorageError::QuotaExceeded(format!(
                "{} already has {TOKEN_QUOTA} outstanding file tokens; redeem or remove some",
                if source.is_empty() { "the user" } else { &source }
            )));
        }
        self.open.lock().expect("tokens poisoned").insert(token.clone(), (fd, charge));
        tracing::info!(source = %caller.describe(), path = %path.display(), writable, "file token added");
        Ok(token)
    }

    /// `RedeemTokenForFileAsync`: the file anew, with at most the access it was shared with.
    ///
    /// While the broker runs it reopens the very file the sharer had open (the fd it kept);
    /// after a restart it resolves the recorded path only beneath the sharer's own folders,
    /// never following a link, non-blocking, regular files only — all off the async threads.
    /// A file deleted or replaced since it was shared is refused. The token is consumed only
    /// when the redeem succeeds.
    pub(crate) async fn redeem(
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
        let row = store(shared, {
            let t = token.to_owned();
            move |s| s.token(&t)
        })
        .await?
        .ok_or_else(invalid)?;
        if now() >= row.created_at + TOKEN_LIFETIME_SECS {
            let t = token.to_owned();
            store(shared, move |s| s.take_token(&t)).await?;
            self.open.lock().expect("tokens poisoned").remove(token);
            return Err(StorageError::TokenInvalid(format!(
                "file token {token} expired (tokens live 14 days)"
            )));
        }
        let kept = self
            .open
            .lock()
            .expect("tokens poisoned")
            .get(token)
            .and_then(|(f, _)| f.try_clone().ok());
        let roots = sharer_roots(shared, &row.source);
        let fd = {
            let row = row.clone();
            let token = token.to_owned();
            shared
                .blocking
                .run(move || open_shared(&token, kept, &roots, &row))
                .await
                .map_err(InternalError::from)??
        };
        let taken = store(shared, {
            let t = token.to_owned();
            move |s| s.take_token(&t)
        })
        .await?;
        if taken.is_none() {
            return Err(invalid()); // redeemed by someone else meanwhile
        }
        self.open.lock().expect("tokens poisoned").remove(token);
        tracing::info!(by = %caller.describe(), source = %row.source, path = %row.path, "file token redeemed");
        let name = Path::new(&row.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((RedeemedFile { writable: row.writable, path: row.path, name }, fd))
    }

    /// `RemoveFile`: by the source, or by the user (the policy decides).
    pub(crate) async fn remove(&self, cx: &Cx<'_>, token: &str) -> Result<()> {
        let t = token.to_owned();
        let row = store(cx.shared, move |s| s.token(&t))
            .await?
            .ok_or_else(|| StorageError::TokenInvalid(format!("file token {token} is unknown")))?;
        cx.enforce(Operation::RemoveFileToken { token, source: &row.source })?;
        let t = token.to_owned();
        store(cx.shared, move |s| s.take_token(&t)).await?;
        self.open.lock().expect("tokens poisoned").remove(token);
        Ok(())
    }

    /// `ListFileTokens`.
    pub(crate) async fn list(
        &self,
        shared: &Arc<Shared>,
        caller: &Caller,
    ) -> Result<Vec<FileTokenInfo>> {
        let source = caller.family_name().map(str::to_owned);
        let (expired, rows) = store(shared, move |s| {
            let expired = s.expire_tokens(now().saturating_sub(TOKEN_LIFETIME_SECS))?;
            Ok((expired, s.tokens(source.as_deref())?))
        })
        .await?;
        self.forget(expired);
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
