//! Who is on the other end of a unix socket, as the kernel says.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// The credentials the kernel recorded for a socket's peer when it connected (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Process id of the peer (in the broker's pid namespace).
    pub pid: u32,
    /// Effective user id of the peer.
    pub uid: u32,
    /// Effective group id of the peer.
    pub gid: u32,
}

/// `SO_PEERCRED` of a connected unix socket.
pub fn peer_credentials(sock: impl AsFd) -> io::Result<PeerCredentials> {
    let c = rustix::net::sockopt::socket_peercred(sock)?;
    Ok(PeerCredentials {
        pid: c.pid.as_raw_nonzero().get() as u32,
        uid: c.uid.as_raw(),
        gid: c.gid.as_raw(),
    })
}

/// `SO_PEERPIDFD` (Linux 6.5+): a pidfd for the very process that connected, immune to pid
/// reuse. Falls back to `pidfd_open(SO_PEERCRED pid)` on older kernels.
pub fn peer_pidfd(sock: impl AsFd) -> io::Result<OwnedFd> {
    const SO_PEERPIDFD: libc::c_int = 77;
    let sock = sock.as_fd();
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `sock` is a valid open socket for the duration of the call (borrowed); `fd` and
    // `len` are live locals, `len` holds the exact size of `fd`, and the kernel writes at most
    // `len` bytes into it.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 && fd >= 0 {
        // SAFETY: on success the kernel created a new pidfd (close-on-exec) that nothing else
        // owns; we take sole ownership of it here.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let err = io::Error::last_os_error();
    if rc != 0 && err.raw_os_error() != Some(libc::ENOPROTOOPT) {
        return Err(err);
    }
    let creds = peer_credentials(sock)?;
    crate::process::pidfd_open(creds.pid)
}

/// The real user id of this process.
pub fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The process id of this process.
pub fn current_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_is_self() {
        let (a, _b) = crate::socket::seqpacket_pair().unwrap();
        let c = peer_credentials(&a).unwrap();
        assert_eq!(c.pid, current_pid());
        assert_eq!(c.uid, current_uid());
        let pidfd = peer_pidfd(&a).unwrap();
        assert_eq!(crate::process::pidfd_pid(&pidfd).unwrap(), current_pid());
    }
}
