//! What a process inherits: the session fd a broker gave it, fds its parent placed for it,
//! the runtime directory.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

/// The runtime directory holding the broker's public socket: `APPIPC_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/appipc`, else `/tmp/appipc-<uid>`.
pub fn runtime_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("APPIPC_RUNTIME_DIR").unwrap_or_else(|| match var("XDG_RUNTIME_DIR") {
        Some(d) => d.join("appipc"),
        None => PathBuf::from(format!("/tmp/appipc-{}", crate::cred::current_uid())),
    })
}

/// Returns a close-on-exec duplicate of an fd this process inherited by number (such as the
/// session socket named by `APPIPC_SESSION_FD`), after checking that it is an open unix
/// `SOCK_SEQPACKET` socket. The inherited fd itself stays open and inheritable, so that
/// children inherit it in turn.
pub fn dup_inherited_session(number: u32) -> io::Result<OwnedFd> {
    let raw =
        libc::c_int::try_from(number).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: F_DUPFD_CLOEXEC takes an integer and touches no memory; if `raw` is not open,
    // the kernel answers EBADF. The inherited fd is only read, never closed here.
    let dup = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a new fd the kernel just created for us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(dup) };
    let kind = rustix::net::sockopt::socket_type(&fd).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("fd {number} is not a socket: {e}"))
    })?;
    if kind != rustix::net::SocketType::SEQPACKET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {number} is not a SOCK_SEQPACKET socket"),
        ));
    }
    Ok(fd)
}

/// The inherited fds taken so far (bit N: fd N), so that each becomes one `OwnedFd` at most.
static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Takes ownership of fd `number` (3 to 63), which this process's parent placed there for it
/// ([`crate::process::SpawnRequest::fds`]), after checking that it is an open
/// `SOCK_STREAM` socket; makes it close-on-exec. Each number is taken at most once: a second
/// call for it is `EBADF`. Call it early, before this process opens anything (then an open fd
/// of that number can only be the inherited one).
pub fn take_inherited_stream(number: u32) -> io::Result<OwnedFd> {
    if !(3..64).contains(&number) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    let bit = 1u64 << number;
    if TAKEN.fetch_or(bit, std::sync::atomic::Ordering::SeqCst) & bit != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    let raw = number as libc::c_int;
    // SAFETY: F_GETFD takes an integer and touches no memory; it tells whether the fd is open
    // (EBADF otherwise) before anything takes ownership of it.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open (just checked). By this function's contract the parent placed it
    // for this process, and nothing in this process made it: an fd this process opens gets the
    // lowest free number, never one already open; TAKEN makes this the only OwnedFd ever made
    // from it here.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    let kind = rustix::net::sockopt::socket_type(&fd)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("not a socket: {e}")))?;
    if kind != rustix::net::SocketType::STREAM {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a SOCK_STREAM socket"));
    }
    Ok(fd)
}

/// This process's soft limit on open files (`RLIMIT_NOFILE`); `u64::MAX` when unlimited.
pub fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// How many fds this process has open now (the entries of `/proc/self/fd`).
pub fn open_fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

#[cfg(test)]
mod tests {
    /// The standard fds and numbers past the spawner's range are never taken (taking 0–2
    /// would close them when the check fails).
    #[test]
    fn only_fds_3_to_63_are_taken() {
        for n in [0, 1, 2, 64, 1000, u32::MAX] {
            let e = super::take_inherited_stream(n).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EBADF), "fd {n}: {e}");
        }
    }
}
