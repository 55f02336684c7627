//! Who is on the other end of a unix socket, as the kernel says; and giving up root for a
//! helper that needs no privilege.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// The credentials the kernel recorded for a socket's peer when it connected (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Process id of the peer, in the reader's pid namespace: 0 for a peer outside it (the
    /// kernel's answer then).
    pub pid: u32,
    /// Effective user id of the peer.
    pub uid: u32,
    /// Effective group id of the peer.
    pub gid: u32,
}

/// `SO_PEERCRED` of a connected unix socket. Read with `getsockopt` itself, not rustix's
/// `socket_peercred`, whose `UCred` holds the pid as a non-zero number: the kernel gives 0 for
/// a peer outside the reader's pid namespace (an app container's supervisor, seen from the
/// app), which that type cannot hold.
pub fn peer_credentials(sock: impl AsFd) -> io::Result<PeerCredentials> {
    let mut c = libc::ucred { pid: 0, uid: u32::MAX, gid: u32::MAX };
    let mut n = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `n` bytes into `c`, on this stack frame.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut c).cast(),
            &raw mut n,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(PeerCredentials { pid: c.pid.max(0) as u32, uid: c.uid, gid: c.gid })
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

/// The overflow user and group id (`nobody`, `nogroup`): what a root process that needs no
/// identity at all becomes ([`give_up_root`]).
pub const NOBODY: u32 = 65534;

/// For a helper that needs no privilege (it only uses fds it was given): sets `no_new_privs`
/// and, if any of this process's user ids is 0, makes it [`NOBODY`]: no supplementary groups,
/// real, effective and saved gid and uid 65534 (which clears every capability), and not
/// dumpable, so that other processes of `nobody` can neither trace it nor read its `/proc`
/// entries. Checks that root cannot be taken back. Returns whether it was root.
///
/// The id changes apply to every thread of the process (glibc's wrappers), but call it before
/// starting threads anyway: `no_new_privs` is per thread and inherited only by threads and
/// processes started after it.
pub fn give_up_root() -> io::Result<bool> {
    crate::seccomp::set_no_new_privs()?;
    let (mut r, mut e, mut s): (libc::uid_t, libc::uid_t, libc::uid_t) = (0, 0, 0);
    // SAFETY: getresuid writes one id through each of the three pointers, which point at live
    // locals of the right type.
    if unsafe { libc::getresuid(&mut r, &mut e, &mut s) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if r != 0 && e != 0 && s != 0 {
        return Ok(false);
    }
    // SAFETY: setgroups with size 0 reads nothing through its (null) list pointer; the
    // set*id calls take integers only. glibc applies each to every thread of the process.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(NOBODY, NOBODY, NOBODY) != 0
            || libc::setresuid(NOBODY, NOBODY, NOBODY) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: setuid takes an integer; it must fail now (EPERM): no id left is 0.
    if unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other("root could be taken back after giving it up"));
    }
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes integers only. (The kernel resets dumpable on a
    // change of effective ids already, unless fs.suid_dumpable says otherwise.)
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer outside the reader's pid namespace reads as pid 0 (the kernel's answer), with its
    /// uid and gid — what an app reads for its container's supervisor. rustix's
    /// `socket_peercred` could not hold that pid (its `Pid` is never 0).
    #[test]
    fn a_peer_outside_the_pid_namespace_is_pid_0() {
        if !rustix::process::geteuid().is_root() {
            println!("SKIPPED: a new pid namespace needs root here");
            return;
        }
        let (a, _b) = crate::socket::seqpacket_pair().unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        // SAFETY: the child and grandchild make only raw calls on fds and stack buffers, and
        // end with _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            // SAFETY: as above.
            unsafe {
                if libc::unshare(libc::CLONE_NEWPID) != 0 {
                    libc::_exit(2);
                }
                let grandchild = libc::fork();
                if grandchild == 0 {
                    let got = match peer_credentials(&a) {
                        Ok(c) => [c.pid, c.uid, c.gid],
                        Err(_) => [u32::MAX; 3],
                    };
                    let bytes: Vec<u8> = got.iter().flat_map(|v| v.to_ne_bytes()).collect();
                    let _ = rustix::io::write(&w, &bytes);
                    libc::_exit(0);
                }
                let mut status = 0;
                libc::waitpid(grandchild, &mut status, 0);
                libc::_exit(0);
            }
        }
        drop(w);
        let mut bytes = [0u8; 12];
        let mut got = 0;
        while got < 12 {
            let n = rustix::io::read(&r, &mut bytes[got..]).unwrap();
            assert!(n > 0, "the grandchild reported nothing");
            got += n;
        }
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(child),
            rustix::process::WaitOptions::empty(),
        );
        let v: Vec<u32> =
            bytes.chunks(4).map(|c| u32::from_ne_bytes(c.try_into().unwrap())).collect();
        assert_eq!(v, [0, current_uid(), rustix::process::getegid().as_raw()]);
    }

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
