//! What a process inherits: the session fd a broker gave it, the runtime directory.

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

/// This process's soft limit on open files (`RLIMIT_NOFILE`); `u64::MAX` when unlimited.
pub fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// How many fds this process has open now (the entries of `/proc/self/fd`).
pub fn open_fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}
