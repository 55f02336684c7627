//! Filesystem helpers that need a syscall std does not offer.

use std::fs::File;
use std::io;
use std::path::Path;

/// An exclusive advisory lock (`flock`) held for as long as the value lives.
#[derive(Debug)]
pub struct LockFile {
    _file: File,
}

/// Takes an exclusive, non-blocking `flock` on `path` (created if missing, mode 0600).
/// `Ok(None)` when another process holds it.
pub fn try_lock_exclusive(path: &Path) -> io::Result<Option<LockFile>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(LockFile { _file: file })),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Takes an exclusive `flock` on `path` (created if missing, mode 0600), waiting for it.
pub fn lock_exclusive(path: &Path) -> io::Result<LockFile> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(LockFile { _file: file }),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The pid of the process holding a `flock` on `path`, from `/proc/locks` (`None` when no one
/// holds one). The pid is the one that took the lock, in this process's pid namespace.
pub fn lock_holder(path: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (major, minor) = (rustix::fs::major(meta.dev()), rustix::fs::minor(meta.dev()));
    let locks = std::fs::read_to_string("/proc/locks")?;
    // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:567 0 EOF"; a blocked waiter's line has "->".
    for line in locks.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[1] != "FLOCK" || f.contains(&"->") {
            continue;
        }
        let mut dev = f[5].split(':');
        let (Some(ma), Some(mi), Some(ino)) = (dev.next(), dev.next(), dev.next()) else {
            continue;
        };
        let same = u32::from_str_radix(ma, 16).ok() == Some(major)
            && u32::from_str_radix(mi, 16).ok() == Some(minor)
            && ino.parse::<u64>().ok() == Some(meta.ino());
        if same {
            return Ok(f[4].parse().ok());
        }
    }
    Ok(None)
}

/// `fsync` of a folder: makes the names created, renamed or removed in it durable (a file's
/// own `fsync` does not cover its directory entry).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok(rustix::fs::fsync(&dir)?)
}

/// Makes `path` and its entry durable: `fsync` of the file or folder itself and of the folder
/// that holds it (after a rename into place, or a new folder).
pub fn sync_path(path: &Path) -> io::Result<()> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    )?;
    rustix::fs::fsync(&fd)?;
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    /// A file's owner can take a write lease on it; reopening it then must not wait out the
    /// lease-break time (45 s, holding whatever the caller holds): it fails at once, and works
    /// once the lease is given up.
    #[test]
    fn reopen_of_a_leased_file_does_not_wait() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("leased");
        std::fs::write(&p, b"x").unwrap();
        let f = std::fs::File::open(&p).unwrap();
        // SAFETY: plain fcntl/signal calls on an fd this test owns; the lease break signals
        // this very process (SIGIO), whose default action would end the test binary.
        unsafe {
            libc::signal(libc::SIGIO, libc::SIG_IGN);
            assert_eq!(libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK), 0);
        }
        let e = super::reopen(&f, false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
        assert!(e.to_string().contains("lease"), "{e}");
        // SAFETY: as above.
        unsafe {
            assert_eq!(libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK), 0);
        }
        let again = super::reopen(&f, false).unwrap();
        let fl = rustix::fs::fcntl_getfl(&again).unwrap();
        assert!(!fl.contains(rustix::fs::OFlags::NONBLOCK), "made blocking again");
    }

    #[test]
    fn second_lock_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let a = super::try_lock_exclusive(&p).unwrap();
        assert!(a.is_some());
        // flock locks belong to the open file description, so a second open conflicts.
        assert!(super::try_lock_exclusive(&p).unwrap().is_none());
        drop(a);
        // A child forked by another test thread may share the lock until its exec (CLOEXEC).
        let mut again = super::try_lock_exclusive(&p).unwrap();
        for _ in 0..200 {
            if again.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            again = super::try_lock_exclusive(&p).unwrap();
        }
        assert!(again.is_some());
    }

    #[test]
    fn lock_holder_names_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        assert_eq!(super::lock_holder(&p).unwrap(), None);
        let held = super::try_lock_exclusive(&p).unwrap().unwrap();
        assert_eq!(super::lock_holder(&p).unwrap(), Some(std::process::id()));
        drop(held);
        // Another test thread may fork between our open and its child's exec: the child then
        // shares the open file description (and so the lock) until exec closes it (CLOEXEC).
        // The lock must go once those children exec; wait for that, boundedly.
        let mut holder = super::lock_holder(&p).unwrap();
        for _ in 0..200 {
            if holder.is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            holder = super::lock_holder(&p).unwrap();
        }
        assert_eq!(holder, None);
        super::sync_path(&p).unwrap();
    }
}

/// What a file fd is, for sharing it: device, inode, whether it is a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// A regular file.
    pub regular: bool,
    /// Size in bytes.
    pub size: u64,
    /// Birth time in nanoseconds since the epoch, where the file system records one (tells a
    /// file from a new one that reuses its inode number).
    pub birth_ns: Option<i64>,
    /// Hard links to it (0: it was deleted, or another file was renamed over its name).
    pub nlink: u64,
}

/// `fstat` of an fd.
pub fn identity(fd: impl std::os::fd::AsFd) -> io::Result<FileIdentity> {
    use rustix::fs::{AtFlags, StatxFlags};
    let fd = fd.as_fd();
    let st = rustix::fs::fstat(fd)?;
    let regular =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    let birth_ns = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BTIME)
        .ok()
        .filter(|x| StatxFlags::from_bits_retain(x.stx_mask).contains(StatxFlags::BTIME))
        .map(|x| x.stx_btime.tv_sec * 1_000_000_000 + i64::from(x.stx_btime.tv_nsec));
    Ok(FileIdentity {
        dev: st.st_dev,
        ino: st.st_ino,
        regular,
        size: st.st_size as u64,
        birth_ns,
        #[allow(clippy::useless_conversion)] // nlink_t is u32 on some targets
        nlink: u64::from(st.st_nlink),
    })
}

/// How an fd was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    /// `O_RDONLY`.
    Read,
    /// `O_WRONLY`.
    Write,
    /// `O_RDWR`.
    ReadWrite,
}

/// The access mode of an fd (`F_GETFL`).
pub fn access_mode(fd: impl std::os::fd::AsFd) -> io::Result<AccessMode> {
    use rustix::fs::OFlags;
    let fl = rustix::fs::fcntl_getfl(fd)?;
    Ok(match fl & OFlags::RWMODE {
        m if m == OFlags::RDONLY => AccessMode::Read,
        m if m == OFlags::WRONLY => AccessMode::Write,
        _ => AccessMode::ReadWrite,
    })
}

/// The path an fd refers to, as this process sees it (`/proc/self/fd/N`); `None` when the file
/// was deleted.
pub fn fd_path(fd: impl std::os::fd::AsFd) -> io::Result<Option<std::path::PathBuf>> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))?;
    if link.to_string_lossy().ends_with(" (deleted)") {
        return Ok(None);
    }
    Ok(Some(link))
}

/// Opens the file an fd refers to anew (its own offset), for reading or reading and writing,
/// close-on-exec.
///
/// Never waits: the open is non-blocking (and the new description is made blocking again), so a
/// file whose owner holds a lease on it (`F_SETLEASE`, which any owner of a file may take) fails
/// at once with [`io::ErrorKind::WouldBlock`] instead of waiting out the lease-break time
/// (`/proc/sys/fs/lease-break-time`, 45 s by default) in the caller — in the broker, a thread
/// and whatever lock it holds. The lease holder is told to give the lease up (`SIGIO`); a later
/// open succeeds.
pub fn reopen(fd: impl std::os::fd::AsFd, writable: bool) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsRawFd;
    let mode = if writable { OFlags::RDWR } else { OFlags::RDONLY };
    let new = rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()).as_str(),
        mode | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::WOULDBLOCK {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "another process holds a lease on the file (F_SETLEASE); try again",
            )
        } else {
            e.into()
        }
    })?;
    let flags = rustix::fs::fcntl_getfl(&new)?;
    rustix::fs::fcntl_setfl(&new, flags - OFlags::NONBLOCK)?;
    Ok(new)
}

/// Opens a path for reading or reading and writing, close-on-exec, without following a final
/// symbolic link.
pub fn open_file(path: &std::path::Path, writable: bool) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let mode = if writable { OFlags::RDWR } else { OFlags::RDONLY };
    Ok(rustix::fs::open(path, mode | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty())?)
}

/// An anonymous pipe (read end, write end), close-on-exec.
pub fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}
