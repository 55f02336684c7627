//! [`Listeners`]: which loopback TCP ports a network namespace listens on, asked of the kernel
//! with `NETLINK_SOCK_DIAG` for sockets in state `LISTEN` only. (`/proc/<pid>/net/tcp` says the
//! same, but reading it walks every bucket of the kernel's established-connections table —
//! shared by all namespaces — which takes milliseconds; the listening table is small.)

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
const NLMSG_HDR: usize = 16;
/// Room for one `recv` of a dump (the kernel fills at most this much per message batch).
pub(crate) const DUMP_BUFFER: usize = 8192;

/// A `NETLINK_SOCK_DIAG` socket of one network namespace.
#[derive(Debug)]
pub struct Listeners {
    sock: Mutex<OwnedFd>,
}

impl Listeners {
    /// The listeners of this process's own network namespace.
    pub fn here() -> io::Result<Listeners> {
        Ok(Listeners::from_socket(diag_socket()?))
    }

    /// The listeners of the namespace `sock` (a `NETLINK_SOCK_DIAG` socket, e.g. from a
    /// [`super::SocketFactory`]) was made in.
    pub fn from_socket(sock: OwnedFd) -> Listeners {
        Listeners { sock: Mutex::new(sock) }
    }

    /// The loopback (or wildcard) TCP ports listened on, IPv4 and IPv6, sorted.
    pub fn ports(&self) -> io::Result<Vec<u16>> {
        let sock = self.sock.lock().map_err(|_| io::Error::other("diag socket poisoned"))?;
        let mut all = Vec::new();
        let mut buf = vec![0u8; DUMP_BUFFER];
        for family in [libc::AF_INET, libc::AF_INET6] {
            dump(sock.as_fd(), family as u8, &mut buf, &mut |port| all.push(port))?;
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// Whether `port` is listened on (loopback or wildcard address, IPv4 or IPv6).
    pub fn listens(&self, port: u16) -> io::Result<bool> {
        Ok(self.ports()?.binary_search(&port).is_ok())
    }
}

fn local_is_loopback_or_any(family: u8, src: &[u8]) -> bool {
    if i32::from(family) == libc::AF_INET {
        return src[0] == 127 || src[..4] == [0; 4];
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(&src[..16]);
    let a = std::net::Ipv6Addr::from(a);
    a.is_loopback()
        || a.is_unspecified()
        || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
}

/// A `NETLINK_SOCK_DIAG` socket of this process's namespace (close-on-exec); async-signal-safe.
pub(crate) fn diag_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes integers; the fd returned is new and owned by nothing else.
    let fd = unsafe {
        libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the namespace of `sock` listens on `port`, with `buf` as the receive buffer (no
/// allocation: the supervisor, a forked child, calls it).
pub(crate) fn listens_with(sock: BorrowedFd<'_>, port: u16, buf: &mut [u8]) -> io::Result<bool> {
    let mut hit = false;
    for family in [libc::AF_INET, libc::AF_INET6] {
        dump(sock, family as u8, buf, &mut |p| hit |= p == port)?;
    }
    Ok(hit)
}

/// One `SOCK_DIAG_BY_FAMILY` dump of TCP listeners of `family`; `found` gets each port.
/// Allocates nothing.
fn dump(
    sock: BorrowedFd<'_>,
    family: u8,
    buf: &mut [u8],
    found: &mut dyn FnMut(u16),
) -> io::Result<()> {
    let mut req = [0u8; NLMSG_HDR + 56];
    let total = req.len() as u32;
    req[..4].copy_from_slice(&total.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = family;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    // SAFETY: send reads `req.len()` bytes of `req`; the socket is borrowed for the call.
    let n = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    loop {
        // SAFETY: recv writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        let mut at = 0usize;
        let n = n as usize;
        while at + NLMSG_HDR <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
            if len < NLMSG_HDR || at + len > n {
                return Err(io::Error::other("sock_diag: a malformed message"));
            }
            match ty {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let e = buf
                        .get(at + 16..at + 20)
                        .map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
                    return if e == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-e)) };
                }
                SOCK_DIAG_BY_FAMILY if len >= NLMSG_HDR + 28 => {
                    // inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid
                    // (sport, dport: big endian; src[16], dst[16], …).
                    let m = &buf[at + NLMSG_HDR..at + len];
                    let port = u16::from_be_bytes([m[4], m[5]]);
                    if port != 0 && local_is_loopback_or_any(m[0], &m[8..24]) {
                        found(port);
                    }
                }
                _ => {}
            }
            at += (len + 3) & !3;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_of_this_namespace_is_found_and_others_are_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let here = Listeners::here().unwrap();
        assert!(here.listens(port).unwrap());
        assert!(here.ports().unwrap().contains(&port));
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p2 = other.local_addr().unwrap().port();
        drop(other);
        assert!(!here.listens(p2).unwrap(), "closed");
        // A connected (not listening) socket is not a listener.
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let local = c.local_addr().unwrap().port();
        assert!(!here.listens(local).unwrap());
    }
}
