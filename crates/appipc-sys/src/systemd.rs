//! The two systemd protocols the broker speaks, without libsystemd:
//!
//! * **socket activation** (`sd_listen_fds(3)`): when `LISTEN_PID` is this process and
//!   `LISTEN_FDS` is 1, fd 3 is a listening socket systemd (or anyone following the same
//!   protocol, as the tests do) bound for us ([`take_listen_fd`]);
//! * **readiness and status** (`sd_notify(3)`): a datagram such as `READY=1` to the unix socket
//!   named by `NOTIFY_SOCKET`, a path or, with a leading `@`, an abstract name ([`notify`]).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;

static TAKEN: AtomicBool = AtomicBool::new(false);

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// The listening socket passed by socket activation, if `LISTEN_PID` names this process:
/// checked to be a listening unix `SOCK_SEQPACKET` socket and made close-on-exec. `None`
/// when nothing was passed (or passed to another process: a parent's variables that leaked).
/// More than one socket, or one of another kind, is an error. Taken at most once.
pub fn take_listen_fd() -> io::Result<Option<OwnedFd>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(pid), Some(count)) = (var("LISTEN_PID"), var("LISTEN_FDS")) else {
        return Ok(None);
    };
    if pid.parse::<u32>().ok() != Some(crate::cred::current_pid()) {
        return Ok(None);
    }
    let count: u32 =
        count.parse().map_err(|_| invalid(format!("LISTEN_FDS={count:?} is not a number")))?;
    match count {
        0 => return Ok(None),
        1 => {}
        n => {
            return Err(invalid(format!(
                "LISTEN_FDS={n}: the broker listens on one socket (ListenSequentialPacket once)"
            )));
        }
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    // SAFETY: F_GETFD takes an integer and touches no memory; it tells whether fd 3 is open
    // (EBADF otherwise) before anything takes ownership of it.
    if unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_GETFD) } < 0 {
        return Err(invalid(format!(
            "LISTEN_FDS=1 but fd {LISTEN_FDS_START} is not open: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: by the socket-activation protocol fd 3 was opened for this process (LISTEN_PID
    // is ours) and belongs to no one else in it; F_GETFD just showed it is open, and TAKEN
    // makes this the only OwnedFd ever made from it.
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    let kind = rustix::net::sockopt::socket_type(&fd)
        .map_err(|e| invalid(format!("fd 3 (LISTEN_FDS) is not a socket: {e}")))?;
    let domain = rustix::net::sockopt::socket_domain(&fd)?;
    if kind != rustix::net::SocketType::SEQPACKET || domain != rustix::net::AddressFamily::UNIX {
        return Err(invalid(
            "fd 3 (LISTEN_FDS) is not a unix SOCK_SEQPACKET socket (ListenSequentialPacket=)"
                .to_owned(),
        ));
    }
    if !rustix::net::sockopt::socket_acceptconn(&fd)? {
        return Err(invalid("fd 3 (LISTEN_FDS) is not listening".to_owned()));
    }
    Ok(Some(fd))
}

/// The path a unix socket is bound to, if it has one.
pub fn bound_path(fd: &OwnedFd) -> Option<std::path::PathBuf> {
    let addr = rustix::net::getsockname(fd).ok()?;
    let unix = rustix::net::SocketAddrUnix::try_from(addr).ok()?;
    use std::os::unix::ffi::OsStrExt;
    unix.path().map(|p| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p.to_bytes())))
}

/// Sends `state` (`READY=1`, `STATUS=…`, `STOPPING=1`, newline-separated) to the service
/// manager. `Ok(false)` when there is none (`NOTIFY_SOCKET` unset).
pub fn notify(state: &str) -> io::Result<bool> {
    use std::os::unix::net::UnixDatagram;
    let Some(target) = std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty()) else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&target))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_passed_is_none() {
        // The test runner is not socket-activated (and LISTEN_PID, if set, is not ours).
        if std::env::var_os("LISTEN_FDS").is_none() {
            assert!(take_listen_fd().unwrap().is_none());
        }
    }
}
