//! Files beneath a directory fd, never following a link: for reading a package folder the
//! user controls, and for writing an extracted package into the broker's staging directory.
//!
//! Every path here is relative to a [`Dir`] and is refused lexically if it is empty,
//! absolute, or has a `..` component. Opening uses `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` (Linux 5.6+): the kernel refuses a symbolic
//! link anywhere on the path and any escape from the directory, atomically. Where `openat2`
//! does not exist (`ENOSYS`: an older kernel, or a seccomp filter that hides it) the same
//! guarantee comes from walking the path one component at a time, each step an `openat`
//! relative to the previous directory fd with `O_NOFOLLOW | O_DIRECTORY`: no step can follow
//! a link, and `..` never reaches the kernel.
//!
//! Files are opened `O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC`, and their type
//! is checked with `fstat` on the opened fd before a byte is read: a FIFO swapped in cannot
//! block the open (`O_NONBLOCK`) or a read (it is refused first), a socket cannot be opened
//! at all, and a device node is refused. Opening a device node can itself have effects for a
//! few drivers; creating one needs privileges the user does not have, so this matters only for
//! device nodes that already exist in a folder the caller names, which `walk` refuses from
//! `fstatat` without opening them.
//!
//! Nothing here decides what is allowed: callers get typed errors and choose.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// What a file system object is, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO (named pipe).
    Fifo,
    /// A unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Something else.
    Unknown,
}

impl FileKind {
    fn of_mode(st_mode: u32) -> FileKind {
        match FileType::from_raw_mode(st_mode) {
            FileType::RegularFile => FileKind::Regular,
            FileType::Directory => FileKind::Directory,
            FileType::Symlink => FileKind::Symlink,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            _ => FileKind::Unknown,
        }
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a folder",
            FileKind::Symlink => "a symbolic link",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Unknown => "of an unknown file type",
        })
    }
}

/// Why an operation beneath a directory was refused or failed. Paths are the relative paths
/// the caller gave.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// The path is empty, absolute, or has a `..` component.
    #[error("{path:?}: not a path beneath the folder (empty, absolute or with '..')")]
    BadPath {
        /// The path.
        path: PathBuf,
    },
    /// A symbolic link on the path (or at its end); links are never followed.
    #[error("{}: a symbolic link is on the way; links are not followed", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The kernel reports that the path leads outside the folder (`EXDEV` from
    /// `RESOLVE_BENEATH`).
    #[error("{}: leads outside the folder", path.display())]
    Escapes {
        /// The path.
        path: PathBuf,
    },
    /// The object is not a regular file (or, where a folder was expected, not a folder).
    #[error("{}: is {kind}, not {expected}", path.display())]
    WrongKind {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
        /// What was expected: `a regular file` or `a folder`.
        expected: FileKind,
    },
    /// More than [`WalkLimits::max_entries`] entries.
    #[error("more than {limit} files and folders")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// Deeper than [`WalkLimits::max_depth`] folders.
    #[error("{}: more than {limit} folders deep", path.display())]
    TooDeep {
        /// The path.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// A name that is not valid UTF-8 (walk only: package paths are UTF-8).
    #[error("{}: the name is not UTF-8", path.display())]
    NotUtf8 {
        /// The path, lossily shown.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The call: `openat2`, `openat`, `mkdirat`, `fstat`, `fstatat`, `fchmod`, `fsync`,
        /// `getdents`.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The walk's visitor failed on a file.
    #[error("{}: {source}", path.display())]
    Visit {
        /// The file.
        path: PathBuf,
        /// Its error.
        source: io::Error,
    },
}

fn io_err(path: &Path, op: &'static str, e: Errno) -> DirError {
    DirError::Io { path: path.to_path_buf(), op, source: e.into() }
}

/// What `fstat` says about an opened regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

/// Bounds on [`Dir::walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkLimits {
    /// Most files and folders in total (default 100 000).
    pub max_entries: u64,
    /// Most levels of folders below the root (default 128: a package path has at most 256
    /// characters).
    pub max_depth: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits { max_entries: 100_000, max_depth: 128 }
    }
}

/// Set once `openat2` returned `ENOSYS`; from then on paths are walked one component at a time.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Resolver {
    /// `openat2` if the kernel has it, else `Components`.
    Auto,
    /// One `openat` per component (the fallback, which tests also run on its own).
    #[cfg_attr(not(test), allow(dead_code))]
    Components,
}

/// The components of a relative path, refusing empty, absolute and `..` paths. `.`
/// components are dropped.
fn components(path: &Path) -> Result<Vec<&OsStr>, DirError> {
    let bad = || DirError::BadPath { path: path.to_path_buf() };
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(bad()),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// A directory, held open: the root every other path here is relative to.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<Dir> for OwnedFd {
    fn from(d: Dir) -> OwnedFd {
        d.fd
    }
}

impl Dir {
    /// Opens the directory at `path` (a path the caller trusts: its own staging directory, or
    /// the folder a user named). A symbolic link as its last component is refused; links
    /// earlier in `path` are followed, as the caller chose them.
    pub fn open(path: &Path) -> Result<Dir, DirError> {
        match rustix::fs::open(path, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Dir { fd }),
            Err(e) => Err(not_followed(rustix::fs::CWD, path.as_os_str(), path, true, e)),
        }
    }

    /// Wraps an fd that must be a directory (an fd a client passed, for instance).
    pub fn from_fd(fd: OwnedFd) -> Result<Dir, DirError> {
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err(Path::new("."), "fstat", e))?;
        match FileKind::of_mode(st.st_mode) {
            FileKind::Directory => Ok(Dir { fd }),
            kind => Err(DirError::WrongKind {
                path: PathBuf::from("."),
                kind,
                expected: FileKind::Directory,
            }),
        }
    }

    /// Another fd for the same directory.
    pub fn try_clone(&self) -> Result<Dir, DirError> {
        let fd = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
            .map_err(|e| io_err(Path::new("."), "fcntl(F_DUPFD_CLOEXEC)", e))?;
        Ok(Dir { fd })
    }

    /// Opens `path` beneath this directory, `flags | O_NOFOLLOW | O_CLOEXEC`, never following
    /// a link on the way.
    fn open_beneath(
        &self,
        path: &Path,
        flags: OFlags,
        resolver: Resolver,
    ) -> Result<OwnedFd, DirError> {
        let parts = components(path)?;
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if resolver == Resolver::Auto && !NO_OPENAT2.load(Ordering::Relaxed) {
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            // EAGAIN: a concurrent rename made the kernel unsure; it asks for a retry.
            for _ in 0..16 {
                match rustix::fs::openat2(&self.fd, path, flags, Mode::empty(), resolve) {
                    Ok(fd) => return Ok(fd),
                    Err(Errno::AGAIN) => continue,
                    Err(Errno::NOSYS) => {
                        NO_OPENAT2.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(Errno::LOOP) => {
                        return Err(DirError::Symlink { path: path.to_path_buf() });
                    }
                    Err(Errno::XDEV) => {
                        return Err(DirError::Escapes { path: path.to_path_buf() });
                    }
                    // Something on the way is not a folder: the component walk says what.
                    Err(Errno::NOTDIR) => return self.open_components(&parts, path, flags),
                    Err(e) => return Err(io_err(path, "openat2", e)),
                }
            }
            if !NO_OPENAT2.load(Ordering::Relaxed) {
                return Err(io_err(path, "openat2", Errno::AGAIN));
            }
        }
        self.open_components(&parts, path, flags)
    }

    /// The fallback: one `openat` per component, each relative to the fd of the one before.
    fn open_components(
        &self,
        parts: &[&OsStr],
        path: &Path,
        flags: OFlags,
    ) -> Result<OwnedFd, DirError> {
        let (last, dirs) = parts.split_last().expect("components() returns at least one");
        let mut cur: Option<OwnedFd> = None;
        for name in dirs {
            let at = cur.as_ref().map_or(self.fd.as_fd(), |f| f.as_fd());
            let next = rustix::fs::openat(at, *name, DIR_FLAGS, Mode::empty())
                .map_err(|e| not_followed(at, name, path, true, e))?;
            cur = Some(next);
        }
        let at = cur.as_ref().map_or(self.fd.as_fd(), |f| f.as_fd());
        rustix::fs::openat(at, *last, flags, Mode::empty())
            .map_err(|e| not_followed(at, last, path, flags.contains(OFlags::DIRECTORY), e))
    }

    /// Opens the folder at `path` beneath this one.
    pub fn open_dir(&self, path: &Path) -> Result<Dir, DirError> {
        self.open_dir_with(path, Resolver::Auto)
    }

    fn open_dir_with(&self, path: &Path, resolver: Resolver) -> Result<Dir, DirError> {
        Ok(Dir { fd: self.open_beneath(path, DIR_FLAGS, resolver)? })
    }

    /// Opens the regular file at `path` beneath this folder for reading: no link followed on
    /// the way, `O_NONBLOCK` so that nothing can block the open, and refused by `fstat` on
    /// the opened fd, before any read, unless it is a regular file.
    pub fn open_file(&self, path: &Path) -> Result<(File, FileInfo), DirError> {
        self.open_file_with(path, Resolver::Auto)
    }

    fn open_file_with(
        &self,
        path: &Path,
        resolver: Resolver,
    ) -> Result<(File, FileInfo), DirError> {
        let fd = self.open_beneath(path, READ_FLAGS, resolver)?;
        let info = regular_info(&fd, path)?;
        Ok((File::from(fd), info))
    }

    /// Like [`open_file`](Self::open_file), for reading and writing.
    pub fn open_file_read_write(&self, path: &Path) -> Result<(File, FileInfo), DirError> {
        let flags = (READ_FLAGS & !OFlags::RDONLY) | OFlags::RDWR;
        let fd = self.open_beneath(path, flags, Resolver::Auto)?;
        let info = regular_info(&fd, path)?;
        Ok((File::from(fd), info))
    }

    /// Creates the folders of `path` that do not exist (mode 0755), beneath this folder,
    /// never following a link, and opens the last one. Existing folders are used as they are;
    /// an existing link or file on the way is refused.
    pub fn create_dir_all(&self, path: &Path) -> Result<Dir, DirError> {
        let parts = components(path)?;
        let mut cur = self.try_clone()?;
        for name in parts {
            let created = match rustix::fs::mkdirat(&cur.fd, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(io_err(path, "mkdirat", e)),
            };
            let fd = rustix::fs::openat(&cur.fd, name, DIR_FLAGS, Mode::empty())
                .map_err(|e| not_followed(cur.fd.as_fd(), name, path, true, e))?;
            if created {
                // The umask may have taken bits away; the mode is the caller's, not the umask's.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))
                    .map_err(|e| io_err(path, "fchmod", e))?;
            }
            cur = Dir { fd };
        }
        Ok(cur)
    }

    /// Creates the regular file `path` beneath this folder, with exactly `mode` (not reduced
    /// by the umask), its missing parent folders first ([`create_dir_all`](Self::create_dir_all)).
    /// Refuses if anything, a link included, already has that name (`O_CREAT | O_EXCL` never
    /// follows a link).
    pub fn create_file(&self, path: &Path, mode: u32) -> Result<File, DirError> {
        let parts = components(path)?;
        let (last, dirs) = parts.split_last().expect("at least one component");
        let parent = if dirs.is_empty() {
            self.try_clone()?
        } else {
            self.create_dir_all(&dirs.iter().collect::<PathBuf>())?
        };
        let fd = rustix::fs::openat(
            &parent.fd,
            *last,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o7777),
        )
        .map_err(|e| io_err(path, "openat(O_CREAT|O_EXCL)", e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| io_err(path, "fchmod", e))?;
        Ok(File::from(fd))
    }

    /// `fsync` of the directory itself: makes the names created in it durable (a file's own
    /// `sync_all` does not cover its directory entry).
    pub fn sync(&self) -> Result<(), DirError> {
        rustix::fs::fsync(&self.fd).map_err(|e| io_err(Path::new("."), "fsync", e))
    }

    /// Walks every file beneath this folder, in sorted order of names, calling `visit` with
    /// each regular file's relative path, the file opened for reading (as
    /// [`open_file`](Self::open_file) does, relative to its own folder's fd) and its `fstat`.
    ///
    /// Refuses, at the first one met, a symbolic link, anything that is not a regular file or
    /// a folder (from `fstatat` without opening it, and again by `fstat` after opening, should
    /// it have been swapped), a name that is not UTF-8, more entries than `limits.max_entries`
    /// and folders deeper than `limits.max_depth`. At most `max_depth + 1` folder fds are open
    /// at a time. The visitor should use the fd it is given, never the path, which is for
    /// naming only.
    pub fn walk<F>(&self, limits: WalkLimits, mut visit: F) -> Result<(), DirError>
    where
        F: FnMut(&Path, File, &FileInfo) -> io::Result<()>,
    {
        let mut count = 0;
        let mut rel = PathBuf::new();
        self.walk_dir(&mut rel, 0, &mut count, &limits, &mut visit)
    }

    fn walk_dir<F>(
        &self,
        rel: &mut PathBuf,
        depth: usize,
        count: &mut u64,
        limits: &WalkLimits,
        visit: &mut F,
    ) -> Result<(), DirError>
    where
        F: FnMut(&Path, File, &FileInfo) -> io::Result<()>,
    {
        let shown = |rel: &Path| {
            if rel.as_os_str().is_empty() { PathBuf::from(".") } else { rel.to_path_buf() }
        };
        let mut names: Vec<Vec<u8>> = Vec::new();
        let entries =
            rustix::fs::Dir::read_from(&self.fd).map_err(|e| io_err(&shown(rel), "openat", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&shown(rel), "getdents", e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            *count += 1;
            if *count > limits.max_entries {
                return Err(DirError::TooManyEntries { limit: limits.max_entries });
            }
            names.push(name.to_vec());
        }
        names.sort();
        for name in names {
            let name = OsStr::from_bytes(&name);
            rel.push(name);
            if std::str::from_utf8(name.as_bytes()).is_err() {
                return Err(DirError::NotUtf8 { path: rel.clone() });
            }
            let st = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io_err(rel, "fstatat", e))?;
            match FileKind::of_mode(st.st_mode) {
                FileKind::Directory => {
                    if depth + 1 > limits.max_depth {
                        return Err(DirError::TooDeep {
                            path: rel.clone(),
                            limit: limits.max_depth,
                        });
                    }
                    let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())
                        .map_err(|e| not_followed(self.fd.as_fd(), name, rel, true, e))?;
                    Dir { fd }.walk_dir(rel, depth + 1, count, limits, visit)?;
                }
                FileKind::Regular => {
                    let fd = rustix::fs::openat(&self.fd, name, READ_FLAGS, Mode::empty())
                        .map_err(|e| not_followed(self.fd.as_fd(), name, rel, false, e))?;
                    let info = regular_info(&fd, rel)?;
                    visit(rel, File::from(fd), &info)
                        .map_err(|source| DirError::Visit { path: rel.clone(), source })?;
                }
                FileKind::Symlink => return Err(DirError::Symlink { path: rel.clone() }),
                kind => {
                    return Err(DirError::WrongKind {
                        path: rel.clone(),
                        kind,
                        expected: FileKind::Regular,
                    });
                }
            }
            rel.pop();
        }
        Ok(())
    }
}

/// `fstat` of an opened fd; an error unless it is a regular file.
fn regular_info(fd: &OwnedFd, path: &Path) -> Result<FileInfo, DirError> {
    let st = rustix::fs::fstat(fd).map_err(|e| io_err(path, "fstat", e))?;
    match FileKind::of_mode(st.st_mode) {
        FileKind::Regular => Ok(FileInfo {
            size: st.st_size as u64,
            mode: st.st_mode & 0o7777,
            dev: st.st_dev,
            ino: st.st_ino,
        }),
        kind => {
            Err(DirError::WrongKind { path: path.to_path_buf(), kind, expected: FileKind::Regular })
        }
    }
}

/// The error of an `openat(at, name, … | O_NOFOLLOW)` of one component: `ELOOP` is a link
/// there; `ENOTDIR` where a folder was wanted is a link or something else (`fstatat` says
/// which, for the message only).
fn not_followed(
    at: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    want_dir: bool,
    e: Errno,
) -> DirError {
    match e {
        Errno::LOOP => DirError::Symlink { path: path.to_path_buf() },
        Errno::NOTDIR if want_dir => classify(at, name, path, FileKind::Directory, e, "openat"),
        e => io_err(path, "openat", e),
    }
}

/// Turns `ENOTDIR` for `name` in `at` into the error that says what is there.
fn classify(
    at: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    expected: FileKind,
    e: Errno,
    op: &'static str,
) -> DirError {
    match rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match FileKind::of_mode(st.st_mode) {
            FileKind::Symlink => DirError::Symlink { path: path.to_path_buf() },
            kind if kind != expected => {
                DirError::WrongKind { path: path.to_path_buf(), kind, expected }
            }
            _ => io_err(path, op, e),
        },
        Err(_) => io_err(path, op, e),
    }
}

/// The error a [`BoundedReader`] gives when its source has more than the limit
/// (`io::ErrorKind::FileTooLarge`, with this as the inner error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {limit} bytes")]
pub struct LimitExceeded {
    /// The limit.
    pub limit: u64,
}

/// Reads at most `limit` bytes of `inner`, and fails (rather than stopping quietly) if there
/// are more: after the limit it reads one byte more to see.
#[derive(Debug)]
pub struct BoundedReader<R> {
    inner: R,
    limit: u64,
    remaining: u64,
}

impl<R: Read> BoundedReader<R> {
    /// A reader of at most `limit` bytes of `inner`.
    pub fn new(inner: R, limit: u64) -> Self {
        BoundedReader { inner, limit, remaining: limit }
    }

    /// The source.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for BoundedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    LimitExceeded { limit: self.limit },
                )),
            };
        }
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads all of `r`, at most `limit` bytes; `FileTooLarge` ([`LimitExceeded`]) if it has more.
pub fn read_to_end_bounded(r: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    BoundedReader::new(r, limit).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, mpsc};
    use std::time::Duration;

    const BOTH: [Resolver; 2] = [Resolver::Auto, Resolver::Components];

    struct Fixture {
        tmp: tempfile::TempDir,
    }

    impl Fixture {
        /// `root/` with `root/a.txt`, `root/sub/b.txt`; `outside/secret` beside it.
        fn new() -> Fixture {
            let tmp = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(tmp.path().join("root/sub")).unwrap();
            std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
            std::fs::write(tmp.path().join("root/a.txt"), b"a").unwrap();
            std::fs::write(tmp.path().join("root/sub/b.txt"), b"b").unwrap();
            std::fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
            Fixture { tmp }
        }
        fn root(&self) -> PathBuf {
            self.tmp.path().join("root")
        }
        fn outside(&self) -> PathBuf {
            self.tmp.path().join("outside")
        }
        fn dir(&self) -> Dir {
            Dir::open(&self.root()).unwrap()
        }
    }

    fn read(f: &mut File) -> Vec<u8> {
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    }

    /// Runs `f` on another thread and fails the test if it does not return within 10 s.
    fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("blocked: did not return within 10 s")
    }

    #[test]
    fn opens_regular_files_beneath() {
        let fx = Fixture::new();
        let d = fx.dir();
        for r in BOTH {
            let (mut f, info) = d.open_file_with(Path::new("sub/b.txt"), r).unwrap();
            assert_eq!(read(&mut f), b"b");
            assert_eq!(info.size, 1);
            let (mut f, _) = d.open_file_with(Path::new("./a.txt"), r).unwrap();
            assert_eq!(read(&mut f), b"a");
        }
    }

    #[test]
    fn a_symlink_is_never_followed() {
        let fx = Fixture::new();
        symlink(fx.outside().join("secret"), fx.root().join("abs")).unwrap();
        symlink("a.txt", fx.root().join("rel")).unwrap();
        symlink(fx.outside(), fx.root().join("out")).unwrap();
        symlink("sub", fx.root().join("sublink")).unwrap();
        let d = fx.dir();
        for r in BOTH {
            for p in ["abs", "rel", "out/secret", "sublink/b.txt"] {
                let err = d.open_file_with(Path::new(p), r).unwrap_err();
                assert!(matches!(err, DirError::Symlink { .. }), "{r:?} {p}: {err}");
            }
            let err = d.open_dir_with(Path::new("out"), r).unwrap_err();
            assert!(matches!(err, DirError::Symlink { .. }), "{r:?}: {err}");
        }
        // The root itself named through a link is refused as well.
        let err = Dir::open(&fx.root().join("out")).unwrap_err();
        assert!(matches!(err, DirError::Symlink { .. }), "{err}");
    }

    #[test]
    fn a_symlink_swapped_in_during_opens_is_never_followed() {
        // Issue 10's second race: the file is replaced by a link to a secret (and back) while
        // it is being opened, in a loop. Every open gives the real file or a refusal.
        let fx = Fixture::new();
        let root = fx.root();
        std::fs::write(root.join("target"), b"good").unwrap();
        let secret = fx.outside().join("secret");
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = stop.clone();
            let root = root.clone();
            std::thread::spawn(move || {
                let mut swaps = 0u32;
                while !stop.load(Ordering::Relaxed) && swaps < 1_000_000 {
                    // rename(2) replaces `target` atomically: with a link to the secret, then
                    // with a regular file again. `target` always exists.
                    symlink(&secret, root.join("tmp-link")).unwrap();
                    std::fs::rename(root.join("tmp-link"), root.join("target")).unwrap();
                    std::fs::write(root.join("tmp-file"), b"good").unwrap();
                    std::fs::rename(root.join("tmp-file"), root.join("target")).unwrap();
                    swaps += 1;
                }
            })
        };
        let d = fx.dir();
        let (mut opened, mut refused) = (0, 0);
        for i in 0..4000 {
            let r = BOTH[i % 2];
            match d.open_file_with(Path::new("target"), r) {
                Ok((mut f, _)) => {
                    assert_eq!(read(&mut f), b"good", "{r:?}: read through a link");
                    opened += 1;
                }
                Err(DirError::Symlink { .. }) => refused += 1,
                Err(e) => panic!("{r:?}: {e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        eprintln!("opened {opened}, refused as a link {refused}");
        assert_eq!(opened + refused, 4000);
    }

    #[test]
    fn a_fifo_does_not_block_and_is_refused() {
        let fx = Fixture::new();
        let fifo = fx.root().join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o644), 0)
            .unwrap();
        // No writer ever opens it: a blocking open or read would hang here.
        let root = fx.root();
        for r in BOTH {
            let root = root.clone();
            let err = within_10s(move || {
                Dir::open(&root).unwrap().open_file_with(Path::new("fifo"), r).map(|_| ())
            })
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    DirError::WrongKind { kind: FileKind::Fifo, expected: FileKind::Regular, .. }
                ),
                "{r:?}: {err}"
            );
        }
        let err = within_10s(move || {
            Dir::open(&root).unwrap().walk(WalkLimits::default(), |_, _, _| Ok(()))
        })
        .unwrap_err();
        assert!(matches!(err, DirError::WrongKind { kind: FileKind::Fifo, .. }), "{err}");
    }

    #[test]
    fn a_device_node_is_refused() {
        // A real device node: /dev/null, opened beneath /dev.
        let dev = Dir::open(Path::new("/dev")).unwrap();
        for r in BOTH {
            let err = dev.open_file_with(Path::new("null"), r).unwrap_err();
            assert!(matches!(err, DirError::WrongKind { kind: FileKind::CharDevice, .. }), "{err}");
        }
        // One made in a package folder (needs CAP_MKNOD, which CI has as root).
        let fx = Fixture::new();
        let node = fx.root().join("null");
        match rustix::fs::mknodat(
            rustix::fs::CWD,
            &node,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        ) {
            Ok(()) => {
                let d = fx.dir();
                let err = d.open_file(Path::new("null")).unwrap_err();
                assert!(
                    matches!(err, DirError::WrongKind { kind: FileKind::CharDevice, .. })
                        || matches!(&err, DirError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied),
                    "{err}"
                );
                let err = d.walk(WalkLimits::default(), |_, _, _| Ok(())).unwrap_err();
                assert!(
                    matches!(err, DirError::WrongKind { kind: FileKind::CharDevice, .. }),
                    "{err}"
                );
            }
            Err(e) => eprintln!("mknod: {e}: the /dev/null case above covers devices"),
        }
    }

    #[test]
    fn paths_leading_outside_are_refused() {
        let fx = Fixture::new();
        let d = fx.dir();
        for r in BOTH {
            for p in
                ["../outside/secret", "sub/../../outside/secret", "sub/..", "/etc/passwd", "", "."]
            {
                let err = d.open_file_with(Path::new(p), r).unwrap_err();
                assert!(matches!(err, DirError::BadPath { .. }), "{r:?} {p:?}: {err}");
            }
        }
        for p in ["../x", "/tmp/x", ""] {
            assert!(matches!(d.create_file(Path::new(p), 0o644), Err(DirError::BadPath { .. })));
            assert!(matches!(d.create_dir_all(Path::new(p)), Err(DirError::BadPath { .. })));
        }
        // Below the lexical check, the kernel's RESOLVE_BENEATH refuses an escape too.
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let e = rustix::fs::openat2(
                &d,
                "sub/../../outside/secret",
                READ_FLAGS,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            )
            .unwrap_err();
            assert_eq!(e, Errno::XDEV);
        }
    }

    #[test]
    fn not_a_folder_on_the_way() {
        let fx = Fixture::new();
        let d = fx.dir();
        for r in BOTH {
            let err = d.open_file_with(Path::new("a.txt/x"), r).unwrap_err();
            assert!(
                matches!(
                    err,
                    DirError::WrongKind {
                        kind: FileKind::Regular,
                        expected: FileKind::Directory,
                        ..
                    }
                ),
                "{r:?}: {err}"
            );
            let err = d.open_dir_with(Path::new("a.txt"), r).unwrap_err();
            assert!(
                matches!(err, DirError::WrongKind { kind: FileKind::Regular, .. }),
                "{r:?}: {err}"
            );
        }
        let not_dir = File::open(fx.root().join("a.txt")).unwrap();
        assert!(matches!(Dir::from_fd(not_dir.into()), Err(DirError::WrongKind { .. })));
    }

    #[test]
    fn creating_beneath_never_follows_a_link() {
        let fx = Fixture::new();
        let d = fx.dir();
        // New folders and file, exact mode whatever the umask.
        let mut f = d.create_file(Path::new("x/y/run"), 0o755).unwrap();
        f.write_all(b"#!").unwrap();
        let meta = std::fs::metadata(fx.root().join("x/y/run")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(std::fs::metadata(fx.root().join("x")).unwrap().mode() & 0o777, 0o755);
        d.create_dir_all(Path::new("x/y")).unwrap();

        // A link planted at the file's name: refused, its target untouched.
        symlink(fx.outside().join("secret"), fx.root().join("planted")).unwrap();
        let err = d.create_file(Path::new("planted"), 0o644).unwrap_err();
        assert!(
            matches!(&err, DirError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
            "{err}"
        );
        // A link planted as a parent folder: refused, nothing created outside.
        symlink(fx.outside(), fx.root().join("evil")).unwrap();
        let err = d.create_file(Path::new("evil/dropped"), 0o644).unwrap_err();
        assert!(matches!(err, DirError::Symlink { .. }), "{err}");
        let err = d.create_dir_all(Path::new("evil/deeper")).unwrap_err();
        assert!(matches!(err, DirError::Symlink { .. }), "{err}");
        assert!(!fx.outside().join("dropped").exists());
        assert!(!fx.outside().join("deeper").exists());
        // A file where a folder is needed.
        let err = d.create_file(Path::new("a.txt/z"), 0o644).unwrap_err();
        assert!(matches!(err, DirError::WrongKind { kind: FileKind::Regular, .. }), "{err}");
        assert_eq!(std::fs::read(fx.outside().join("secret")).unwrap(), b"secret");
        d.sync().unwrap();
        d.create_dir_all(Path::new("x")).unwrap().sync().unwrap();
    }

    #[test]
    fn walk_lists_regular_files_in_order() {
        let fx = Fixture::new();
        std::fs::write(fx.root().join("sub/a.sh"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            fx.root().join("sub/a.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(fx.root().join("empty")).unwrap();
        let mut seen = Vec::new();
        fx.dir()
            .walk(WalkLimits::default(), |p, mut f, info| {
                let content = read(&mut f);
                assert_eq!(content.len() as u64, info.size);
                seen.push((p.to_string_lossy().into_owned(), info.mode));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            seen,
            [("a.txt".into(), 0o644), ("sub/a.sh".into(), 0o755), ("sub/b.txt".into(), 0o644)]
        );
    }

    #[test]
    fn walk_refuses_links_and_bounds() {
        let fx = Fixture::new();
        symlink(fx.outside(), fx.root().join("sub/zz")).unwrap();
        let mut visited = 0;
        let err = fx
            .dir()
            .walk(WalkLimits::default(), |_, _, _| {
                visited += 1;
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(&err, DirError::Symlink { path } if path == Path::new("sub/zz")), "{err}");
        std::fs::remove_file(fx.root().join("sub/zz")).unwrap();

        let few = WalkLimits { max_entries: 2, ..WalkLimits::default() };
        assert!(matches!(
            fx.dir().walk(few, |_, _, _| Ok(())),
            Err(DirError::TooManyEntries { limit: 2 })
        ));
        let shallow = WalkLimits { max_depth: 0, ..WalkLimits::default() };
        assert!(matches!(fx.dir().walk(shallow, |_, _, _| Ok(())), Err(DirError::TooDeep { .. })));
        let err = fx
            .dir()
            .walk(WalkLimits::default(), |_, _, _| Err(io::Error::other("full")))
            .unwrap_err();
        assert_eq!(err.to_string(), "a.txt: full");

        std::fs::write(fx.root().join(OsStr::from_bytes(b"bad\xff")), b"").unwrap();
        assert!(matches!(
            fx.dir().walk(WalkLimits::default(), |_, _, _| Ok(())),
            Err(DirError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn bounded_reads() {
        assert_eq!(read_to_end_bounded(&b"0123456789"[..], 10).unwrap(), b"0123456789");
        let err = read_to_end_bounded(&b"0123456789!"[..], 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(err.to_string(), "more than 10 bytes");
        assert_eq!(
            err.get_ref().and_then(|e| e.downcast_ref::<LimitExceeded>()),
            Some(&LimitExceeded { limit: 10 })
        );
        // An endless source is cut at the limit, not read to its end.
        let err = read_to_end_bounded(io::repeat(b'x'), 1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        // Oversize file opened beneath a folder.
        let fx = Fixture::new();
        std::fs::write(fx.root().join("big"), vec![0u8; 4097]).unwrap();
        let (f, info) = fx.dir().open_file(Path::new("big")).unwrap();
        assert_eq!(info.size, 4097);
        assert!(read_to_end_bounded(f, 4096).is_err());
    }
}
