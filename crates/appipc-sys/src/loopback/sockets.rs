//! Finishing a socket the broker installs in place of an app's: what the app's socket is
//! ([`socket_info`]), its options copied ([`copy_options`]), connected within a bound time
//! ([`connect_within`], or [`connect_start`] and [`connect_result`] around an asynchronous
//! wait).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// What an app's socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketInfo {
    /// `SO_DOMAIN` (`AF_INET`, `AF_INET6`, …).
    pub domain: i32,
    /// `SO_TYPE` (`SOCK_STREAM`, …).
    pub ty: i32,
    /// `SO_PROTOCOL`.
    pub protocol: i32,
    /// `O_NONBLOCK` on its open file.
    pub nonblocking: bool,
    /// The inode of the socket (`sockfs`), which names it while it is open.
    pub inode: u64,
}

fn get_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, on this stack frame, and the new
    // length into `len`; the fd is borrowed for the call.
    let rc =
        unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&raw mut v).cast(), &mut len) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(v) }
}

/// What `fd` is; `ENOTSOCK` if it is not a socket.
pub fn socket_info(fd: BorrowedFd<'_>) -> io::Result<SocketInfo> {
    let st = rustix::fs::fstat(fd)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::from_raw_os_error(libc::ENOTSOCK));
    }
    let flags = rustix::fs::fcntl_getfl(fd)?;
    Ok(SocketInfo {
        domain: get_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?,
        ty: get_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?,
        protocol: get_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?,
        nonblocking: flags.contains(rustix::fs::OFlags::NONBLOCK),
        inode: st.st_ino,
    })
}

/// A new TCP socket of `domain` in this process's own network namespace (close-on-exec).
pub fn host_socket(domain: i32, protocol: i32) -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: socket takes integers; the fd returned is new and owned by nothing else.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// [`host_socket`] made as `uid` (its owner, `sk_uid`: what `sock_diag`, `/proc/net/tcp` and
/// the firewall's owner match see) when this process is root: the socket is made with that
/// filesystem uid on the calling thread only (`setfsuid`, which is per thread), then the
/// thread's is set back. Otherwise the same as [`host_socket`].
pub fn host_socket_as(domain: i32, protocol: i32, uid: u32) -> io::Result<std::os::fd::OwnedFd> {
    if !rustix::process::geteuid().is_root() || uid == 0 {
        return host_socket(domain, protocol);
    }
    // SAFETY: setfsuid takes an integer and changes only the calling thread's filesystem uid
    // (the raw syscall: no broadcast to the process's other threads).
    let before = unsafe { libc::syscall(libc::SYS_setfsuid, uid as libc::c_long) };
    let made = host_socket(domain, protocol);
    // SAFETY: as above, back to what it was (root's).
    unsafe { libc::syscall(libc::SYS_setfsuid, before) };
    made
}

/// The options an app may have set before `connect` that the socket installed in its place
/// keeps: `(level, name)`.
const COPIED: &[(i32, i32)] = &[
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_RCVBUF),
    (libc::SOL_SOCKET, libc::SO_SNDBUF),
    (libc::SOL_SOCKET, libc::SO_LINGER),
    (libc::SOL_SOCKET, libc::SO_RCVTIMEO),
    (libc::SOL_SOCKET, libc::SO_SNDTIMEO),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT),
    (libc::SOL_SOCKET, libc::SO_PRIORITY),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    (libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    (libc::IPPROTO_TCP, libc::TCP_CORK),
];

fn get_raw(fd: BorrowedFd<'_>, level: i32, name: i32, buf: &mut [u8; 32]) -> Option<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` (32) bytes into `buf`, on the caller's frame.
    let rc =
        unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, buf.as_mut_ptr().cast(), &mut len) };
    (rc == 0).then_some(len as usize)
}

/// Copies the options of `from` (the app's socket) that differ from those of `to` (a fresh
/// socket of the same kind) onto `to`; best effort, one option at a time. The kernel doubles a
/// buffer size it is given, so those are set to half the value read (and only when the app
/// changed them: setting one turns the kernel's automatic sizing off).
pub fn copy_options(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    for &(level, name) in COPIED {
        let (mut theirs, mut ours) = ([0u8; 32], [0u8; 32]);
        let Some(n) = get_raw(from, level, name, &mut theirs) else { continue };
        if get_raw(to, level, name, &mut ours) == Some(n) && theirs[..n] == ours[..n] {
            continue;
        }
        if level == libc::SOL_SOCKET && (name == libc::SO_RCVBUF || name == libc::SO_SNDBUF) {
            let v = i32::from_ne_bytes(theirs[..4].try_into().expect("4 bytes")) / 2;
            theirs[..4].copy_from_slice(&v.to_ne_bytes());
        }
        // SAFETY: setsockopt reads `n` bytes (what getsockopt wrote) from `theirs`.
        unsafe {
            libc::setsockopt(to.as_raw_fd(), level, name, theirs.as_ptr().cast(), n as u32);
        }
    }
}

/// Connects `fd` to `addr` (a `sockaddr` as an app passed it, checked by
/// [`super::classify`]), waiting at most `timeout`; leaves `fd` blocking.
pub fn connect_within(fd: BorrowedFd<'_>, addr: &[u8], timeout: Duration) -> io::Result<()> {
    let result = match connect_start(fd, addr) {
        Ok(true) => Ok(()),
        Ok(false) if !wait_writable(fd, timeout)? => {
            Err(io::Error::from_raw_os_error(libc::ETIMEDOUT))
        }
        Ok(false) => connect_result(fd),
        Err(e) => Err(e),
    };
    crate::socket::set_nonblocking(fd, false)?;
    result
}

/// Starts connecting `fd` (made non-blocking) to `addr` (see [`connect_within`]): `true` when
/// it is connected already, `false` when the connect goes on (`EINPROGRESS`: wait until `fd`
/// is writable, then [`connect_result`]).
pub fn connect_start(fd: BorrowedFd<'_>, addr: &[u8]) -> io::Result<bool> {
    if addr.len() > super::MAX_ADDR_LEN {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    crate::socket::set_nonblocking(fd, true)?;
    // The kernel reads the address from an aligned buffer of its own size.
    let mut storage: libc::sockaddr_storage =
        // SAFETY: an all-zero sockaddr_storage is a valid value (integers).
        unsafe { std::mem::zeroed() };
    // SAFETY: `storage` is 128 bytes, `addr` at most 128; distinct objects.
    unsafe {
        std::ptr::copy_nonoverlapping(addr.as_ptr(), (&raw mut storage).cast::<u8>(), addr.len());
    }
    // SAFETY: connect reads `addr.len()` bytes of `storage`; the fd is borrowed for the call.
    let rc = unsafe {
        libc::connect(fd.as_raw_fd(), (&raw const storage).cast(), addr.len() as libc::socklen_t)
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) { Ok(false) } else { Err(e) }
}

/// How a connect [`connect_start`] left going on ended, once `fd` is writable (`SO_ERROR`).
pub fn connect_result(fd: BorrowedFd<'_>) -> io::Result<()> {
    match get_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)? {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

fn wait_writable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts =
            Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
