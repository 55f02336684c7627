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

#[cfg(test)]
mod tests {
    #[test]
    fn second_lock_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let a = super::try_lock_exclusive(&p).unwrap();
        assert!(a.is_some());
        // flock locks belong to the open file description, so a second open conflicts.
        assert!(super::try_lock_exclusive(&p).unwrap().is_none());
        drop(a);
        assert!(super::try_lock_exclusive(&p).unwrap().is_some());
    }
}
