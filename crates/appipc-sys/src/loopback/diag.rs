//! [`Listeners`]: which loopback TCP ports a network namespace listens on, asked of the kernel
//! with `NETLINK_SOCK_DIAG` for sockets in state `LISTEN` only. (`/proc/<pid>/net/tcp` says the
//! same, but reading it walks every bucket of the kernel's established-connections table —
//! shared by all namespaces — which takes milliseconds; the listening table is small.)

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

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

/// What a namespace holds on one loopback TCP port ([`Listeners::port_use`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortUse {
    /// A socket listens on it (loopback or wildcard address, IPv4 or IPv6).
    pub listens: bool,
    /// The socket asked about (by inode) is bound to it (listening, or bound and neither
    /// listening nor connected).
    pub holds: bool,
}

/// `TCP_BOUND_INACTIVE`: bound sockets that neither listen nor connect, which `sock_diag`
/// reports from Linux 6.9 on when this state is asked for (older kernels ignore the bit).
const TCP_BOUND_INACTIVE: u32 = 13;
const TCP_CLOSE: u8 = 7;

impl Listeners {
    /// The listeners of this process's own network namespace.
    pub fn here() -> io::Result<Listeners> {
        Ok(Listeners::from_socket(diag_socket()?))
    }

    /// The listeners of the namespace `sock` (a `NETLINK_SOCK_DIAG` socket, e.g. from a
    /// [`super::SocketFactory`]) was made in.
    pub fn from_socket(sock: OwnedFd) -> Listeners {
        bound_wait(sock.as_fd());
        Listeners { sock: Mutex::new(sock) }
    }

    /// The loopback (or wildcard) TCP ports listened on, IPv4 and IPv6, sorted. A full dump of
    /// the namespace's listeners: for `serve-inbound`, not for every connect.
    pub fn ports(&self) -> io::Result<Vec<u16>> {
        let sock = self.sock.lock().map_err(|_| io::Error::other("diag socket poisoned"))?;
        let mut all = Vec::new();
        let mut buf = vec![0u8; DUMP_BUFFER];
        for family in [libc::AF_INET, libc::AF_INET6] {
            dump(sock.as_fd(), family as u8, 1 << TCP_LISTEN, 0, &mut buf, &mut |s| {
                all.push(s.port);
            })?;
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// Whether `port` is listened on (loopback or wildcard address, IPv4 or IPv6): a query
    /// the kernel filters by port (`idiag_sport`), so its work does not grow with the other
    /// ports' listeners.
    pub fn listens(&self, port: u16) -> io::Result<bool> {
        Ok(self.port_use(port, None)?.listens)
    }

    /// Whether a connect to `addr` (a `sockaddr_in`/`sockaddr_in6` as an app passed it) would
    /// reach a listener of the namespace: the kernel's own hashed lookup of the listener for
    /// that address and port (an exact `inet_diag` request, not a dump), so its work does not
    /// grow with the number of listeners anywhere. Blocking (netlink), brief.
    pub fn reaches(&self, addr: &[u8]) -> io::Result<bool> {
        let sock = self.sock.lock().map_err(|_| io::Error::other("diag socket poisoned"))?;
        let mut buf = [0u8; 1024];
        reaches_with(sock.as_fd(), addr, &mut buf)
    }

    /// What the namespace holds on `port`: whether something listens there, and whether the
    /// socket of inode `inode` (if given) is bound there. Blocking (netlink), brief.
    pub fn port_use(&self, port: u16, inode: Option<u64>) -> io::Result<PortUse> {
        let sock = self.sock.lock().map_err(|_| io::Error::other("diag socket poisoned"))?;
        let mut buf = vec![0u8; DUMP_BUFFER];
        let mut use_ = PortUse::default();
        let states = match inode {
            Some(_) => (1 << TCP_LISTEN) | (1 << TCP_BOUND_INACTIVE),
            None => 1 << TCP_LISTEN,
        };
        for family in [libc::AF_INET, libc::AF_INET6] {
            dump(sock.as_fd(), family as u8, states, port, &mut buf, &mut |s| {
                if s.port != port {
                    return;
                }
                let listening = u32::from(s.state) == TCP_LISTEN;
                use_.listens |= listening;
                let asked = inode.is_some_and(|i| i as u32 == s.inode);
                let bound = s.state == TCP_CLOSE || u32::from(s.state) == TCP_BOUND_INACTIVE;
                use_.holds |= asked && (listening || bound);
            })?;
        }
        Ok(use_)
    }

    /// Whether this kernel reports bound sockets that neither listen nor connect (Linux 6.9),
    /// found out once with a socket of this process's namespace.
    pub fn reports_bound_sockets() -> bool {
        static KNOWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *KNOWN.get_or_init(|| {
            let probe = || -> io::Result<bool> {
                let (fd, port) = bound_only_socket()?;
                let inode = rustix::fs::fstat(&fd)?.st_ino;
                Ok(Listeners::here()?.port_use(port, Some(inode))?.holds)
            };
            probe().unwrap_or(false)
        })
    }
}

/// A TCP socket of this process's namespace bound to 127.0.0.1 and a port the kernel picked
/// (neither listening nor connected), and that port.
fn bound_only_socket() -> io::Result<(OwnedFd, u16)> {
    // SAFETY: socket takes integers; the fd returned is new and owned by nothing else.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut a = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: bind reads `len` bytes of `a`, getsockname writes at most `len` bytes into it;
    // both on this stack frame.
    let rc = unsafe {
        if libc::bind(fd.as_raw_fd(), (&raw const a).cast(), len) < 0 {
            -1
        } else {
            libc::getsockname(fd.as_raw_fd(), (&raw mut a).cast(), &mut len)
        }
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fd, u16::from_be(a.sin_port)))
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
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    bound_wait(fd.as_fd());
    Ok(fd)
}

/// How long one read of a dump may wait: a kernel that does not answer fails the query, it
/// does not hold the thread.
const RECV_WAIT: libc::timeval = libc::timeval { tv_sec: 2, tv_usec: 0 };

/// Gives a `sock_diag` socket its [`RECV_WAIT`] (best effort); async-signal-safe.
pub(crate) fn bound_wait(fd: BorrowedFd<'_>) {
    let wait = RECV_WAIT;
    // SAFETY: setsockopt reads one timeval from `wait`, on this stack frame.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const wait).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
}

/// Whether a connect to `addr` would reach a listener of the namespace of `sock` (see
/// [`Listeners::reaches`]), with `buf` as the receive buffer; allocates nothing (the
/// supervisor calls it). `Ok(false)` for an address that is not IPv4 or IPv6.
pub(crate) fn reaches_with(sock: BorrowedFd<'_>, addr: &[u8], buf: &mut [u8]) -> io::Result<bool> {
    let Some((family, port, ip)) = lookup_key(addr) else { return Ok(false) };
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut req = [0u8; NLMSG_HDR + 56];
    let total = req.len() as u32;
    req[..4].copy_from_slice(&total.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    // inet_diag_req_v2 with inet_diag_sockid {sport, dport, src, dst, if, cookie}: the
    // listener's side is the "source" (the address and port connected to), the remote is
    // none, and no cookie is asked for (INET_DIAG_NOCOOKIE).
    req[16] = family;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req[24..26].copy_from_slice(&port.to_be_bytes());
    req[28..44].copy_from_slice(&ip);
    req[64..72].copy_from_slice(&[0xff; 8]);
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
        let (n, mut at) = (n as usize, 0usize);
        while at + NLMSG_HDR <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
            let theirs = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
            if len < NLMSG_HDR || at + len > n {
                return Err(io::Error::other("sock_diag: a malformed message"));
            }
            if theirs == seq {
                match ty {
                    NLMSG_ERROR => {
                        let e = buf
                            .get(at + 16..at + 20)
                            .map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
                        return match -e {
                            0 | libc::ENOENT => Ok(false),
                            e => Err(io::Error::from_raw_os_error(e)),
                        };
                    }
                    SOCK_DIAG_BY_FAMILY if len > NLMSG_HDR + 1 => {
                        return Ok(u32::from(buf[at + NLMSG_HDR + 1]) == TCP_LISTEN);
                    }
                    _ => {}
                }
            }
            // The rest of an earlier request: not this one's answer.
            at += (len + 3) & !3;
        }
    }
}

/// The family, port and address (16 bytes, IPv4 in the first 4) to look a listener up by for
/// a connect to `addr`; a v4-mapped IPv6 address is looked up as the IPv4 address it reaches.
fn lookup_key(addr: &[u8]) -> Option<(u8, u16, [u8; 16])> {
    let family = i32::from(u16::from_ne_bytes([*addr.first()?, *addr.get(1)?]));
    let port = u16::from_be_bytes([*addr.get(2)?, *addr.get(3)?]);
    let mut ip = [0u8; 16];
    match family {
        libc::AF_INET if addr.len() >= 16 => {
            ip[..4].copy_from_slice(&addr[4..8]);
            Some((libc::AF_INET as u8, port, ip))
        }
        libc::AF_INET6 if addr.len() >= 24 => {
            let a: [u8; 16] = addr[8..24].try_into().ok()?;
            if a[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
                ip[..4].copy_from_slice(&a[12..]);
                return Some((libc::AF_INET as u8, port, ip));
            }
            Some((libc::AF_INET6 as u8, port, a))
        }
        _ => None,
    }
}

/// One socket a dump reports (on a loopback or wildcard local address, with a port).
#[derive(Debug, Clone, Copy)]
struct Seen {
    port: u16,
    state: u8,
    /// `idiag_inode` (the kernel's 32 bits of the socket's inode).
    inode: u32,
}

/// The sequence number of the next request (each dump has its own: what is left of an
/// earlier, interrupted one is skipped, never read as this one's answer).
static SEQ: AtomicU32 = AtomicU32::new(1);

/// Sends one dump request (see [`dump`]); its sequence number.
fn request(sock: BorrowedFd<'_>, family: u8, states: u32, sport: u16) -> io::Result<u32> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut req = [0u8; NLMSG_HDR + 56];
    let total = req.len() as u32;
    req[..4].copy_from_slice(&total.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    // inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid (sport and
    // dport big endian, …).
    req[16] = family;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&states.to_ne_bytes());
    req[24..26].copy_from_slice(&sport.to_be_bytes());
    // SAFETY: send reads `req.len()` bytes of `req`; the socket is borrowed for the call.
    let n = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(seq)
}

/// One `SOCK_DIAG_BY_FAMILY` dump of the TCP sockets of `family` in `states` (a mask), only
/// those with local port `sport` if it is not 0; `found` gets each one. Allocates nothing.
fn dump(
    sock: BorrowedFd<'_>,
    family: u8,
    states: u32,
    sport: u16,
    buf: &mut [u8],
    found: &mut dyn FnMut(Seen),
) -> io::Result<()> {
    let mut seq = request(sock, family, states, sport)?;
    // The kernel runs one dump per socket at a time: while an earlier one is still being
    // read out, a new request is refused (`EBUSY`) and asked again once it ended.
    let (mut busy, mut asked_again) = (false, 0);
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
            let theirs = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
            if len < NLMSG_HDR || at + len > n {
                return Err(io::Error::other("sock_diag: a malformed message"));
            }
            if theirs != seq {
                // The rest of an earlier dump: not this one's answer.
                if busy && matches!(ty, NLMSG_DONE | NLMSG_ERROR) {
                    if asked_again == 8 {
                        return Err(io::Error::from_raw_os_error(libc::EBUSY));
                    }
                    seq = request(sock, family, states, sport)?;
                    (busy, asked_again) = (false, asked_again + 1);
                }
                at += (len + 3) & !3;
                continue;
            }
            match ty {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let e = buf
                        .get(at + 16..at + 20)
                        .map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
                    if -e == libc::EBUSY {
                        busy = true;
                        at += (len + 3) & !3;
                        continue;
                    }
                    return if e == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-e)) };
                }
                SOCK_DIAG_BY_FAMILY if len >= NLMSG_HDR + 28 => {
                    // inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid
                    // (sport, dport: big endian; src[16], dst[16], if, cookie[2]), expires,
                    // rqueue, wqueue, uid, inode.
                    let m = &buf[at + NLMSG_HDR..at + len];
                    let port = u16::from_be_bytes([m[4], m[5]]);
                    let inode = m
                        .get(68..72)
                        .map_or(0, |b| u32::from_ne_bytes(b.try_into().expect("4 bytes")));
                    if port != 0 && local_is_loopback_or_any(m[0], &m[8..24]) {
                        found(Seen { port, state: m[1], inode });
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

    /// The exact lookup finds the listener a connect would reach (a wildcard one too, IPv4 and
    /// v4-mapped), and nothing else.
    #[test]
    fn the_listener_a_connect_would_reach_is_looked_up_exactly() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let any_port = any.local_addr().unwrap().port();
        let here = Listeners::here().unwrap();
        let [(_, v4), (_, v6)] = super::super::loopback_addresses(port);
        assert!(here.reaches(&v4).unwrap());
        let mut mapped = v6.clone();
        mapped[8..24].copy_from_slice(&std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets());
        assert!(here.reaches(&mapped).unwrap(), "v4-mapped");
        let [(_, any_v4), _] = super::super::loopback_addresses(any_port);
        assert!(here.reaches(&any_v4).unwrap(), "a wildcard listener");
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let [(_, local), _] = super::super::loopback_addresses(c.local_addr().unwrap().port());
        assert!(!here.reaches(&local).unwrap(), "a connected socket is no listener");
        drop(l);
        assert!(!here.reaches(&v4).unwrap(), "closed");
    }

    /// Red team F7: what is left of an earlier dump (one that was asked for and never read, or
    /// one interrupted half way) is not the next one's answer.
    #[test]
    fn an_unread_earlier_dump_is_not_taken_for_the_next_answer() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let local = c.local_addr().unwrap().port();
        let sock = diag_socket().unwrap();
        // A dump of every state, never read: it names the connected socket's port.
        let mut req = [0u8; NLMSG_HDR + 56];
        let total = req.len() as u32;
        req[..4].copy_from_slice(&total.to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        req[6..8].copy_from_slice(&flags.to_ne_bytes());
        req[8..12].copy_from_slice(&0xdead_beef_u32.to_ne_bytes());
        req[16] = libc::AF_INET as u8;
        req[17] = libc::IPPROTO_TCP as u8;
        req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        // SAFETY: send reads `req.len()` bytes of `req`.
        let n = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        assert_eq!(n, req.len() as isize);
        let here = Listeners::from_socket(sock);
        assert!(!here.listens(local).unwrap(), "a connected socket read as a listener");
        assert!(here.listens(port).unwrap());
        assert!(!here.listens(local).unwrap());
    }

    #[test]
    fn a_bound_socket_is_told_from_a_listener_and_from_none() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inode = rustix::fs::fstat(&l).unwrap().st_ino;
        let here = Listeners::here().unwrap();
        assert_eq!(
            here.port_use(port, Some(inode)).unwrap(),
            PortUse { listens: true, holds: true }
        );
        assert!(!here.port_use(port, Some(inode + 1)).unwrap().holds);
        drop(l);
        // Closed, it counts no more — once no process holds it: a child another test forked
        // meanwhile holds a copy of every fd of this process (a fork copies them all) until it
        // ends, and the socket listens on in it for that long.
        let mut told = false;
        for _ in 0..250 {
            told = here.port_use(port, Some(inode)).unwrap() == PortUse::default();
            if told {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(told, "a closed listener still counts");
        if Listeners::reports_bound_sockets() {
            let (fd, bound) = bound_only_socket().unwrap();
            let inode = rustix::fs::fstat(&fd).unwrap().st_ino;
            let u = here.port_use(bound, Some(inode)).unwrap();
            assert_eq!(u, PortUse { listens: false, holds: true });
        }
    }
}
