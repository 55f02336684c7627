//! The supervisor's half of the loopback data path: `connect`, `bind` and `listen` of an app
//! container.
//!
//! First, whose socket it is (`SO_NETNS_COOKIE` against the supervisor's own namespace, which
//! is the app's): a socket of *another* namespace — one the broker installed, or one a process
//! handed over — is never let through (a disconnect and a new connect there would reach
//! whatever that namespace reaches); see [`foreign_call`]. A kernel that cannot tell (before
//! Linux 5.14) gets no installs at all: every call is let through, in the app's own namespace.
//!
//! Then, for the app's own sockets, the address is read once from the caller's memory, and the
//! call is carried out by the supervisor on the socket it looked at (its duplicate), with that
//! copy — never let through, whatever the socket, the address and the broker's state. Let
//! through, the kernel would look the fd number up again and read the address again: another
//! thread of the app could have put an installed socket at that number (`dup2`) and made the
//! address `AF_UNSPEC` meanwhile, and the installed socket, disconnected, could be connected
//! anew in its namespace. The supervisor is in the app's network namespace, with no
//! capability but `CAP_SYS_PTRACE` (permitted, effective only to reach into the caller), so
//! the kernel's checks of what it carries out are the app's:
//! * a TCP `connect` to a loopback address and port that the app's own namespace does not
//!   answer is the broker's to decide, on the supervisor's copy of the address; its answer is
//!   carried out: an errno, success, or a socket it made (in the listener's namespace,
//!   connected) installed over the app's fd ([`ask_connect`]);
//! * every other connect ([`own_connect`]) is carried out as it is: it reaches what the app's
//!   namespace reaches (its own listeners; it has only `lo`), an abstract `AF_UNIX` name the
//!   package's own (they are per network namespace), and a pathname `AF_UNIX` one is resolved
//!   in the app's root and working directory ([`unix_path_connect`]); a blocking connect is
//!   waited for in slices, so that a caller gone is noticed ([`connect_on`]); an `AF_UNIX`
//!   connect with the app's credentials ([`as_app`]), which the listener's side reads;
//! * a TCP `bind` is carried out after the broker has checked the port ([`own_bind`]); an
//!   ephemeral one (port 0) takes a port the broker accepted as free in the shared port space
//!   ([`ephemeral_bind`]), and so does a `listen` on a socket not bound yet ([`listen_call`]);
//!   every other bind (UDP, an abstract or autobound `AF_UNIX` name, netlink) is carried out as
//!   it is, a pathname `AF_UNIX` one with the app's credentials, umask and Landlock rule
//!   ([`unix_path_bind`]);
//! * when the broker does not answer (gone, restarting, stopped for longer than the answer
//!   wait, see [`set_answer_wait`]), the connect is carried out in the app's own namespace and
//!   the bind without the check of the port: the app has exactly the isolation it would have
//!   without this path.
//!
//! Two things the supervisor cannot be for the app: inside its Landlock domain (the
//! `make_sock` right is checked here instead, as Landlock would: [`unix_path_bind`]; and the
//! abstract-socket scope does not hold for a connect carried out here, which reaches the
//! abstract names of the package's own namespace — its other processes' — as Windows lets one
//! package's processes reach each other), and the caller's process: an `AF_UNIX` peer reads
//! the supervisor's pid (`SO_PEERCRED`; 0 in the app's pid namespace), with the app's uid and
//! gid ([`as_app`]), and a netlink autobind takes the supervisor's pid as its port id.
//!
//! A packaged full-trust process's supervisor (in the host's namespace) asks about far less,
//! and lets the rest through ([`full_trust_connect`]): a full-trust process is the user's, and
//! these guards are no boundary against it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::fs::OFlags as OFlagsNb;
use rustix::io::Errno;

use super::{Caller, Context, Reply, Result};
use crate::loopback::{ANSWER_LEN, Answer, Ask, AskOp, MAX_ADDR_LEN, Target, classify};

/// How long a supervisor waits for the broker's answer to one question before it lets the call
/// through, in milliseconds (20 s unless [`set_answer_wait`] said otherwise).
static ANSWER_WAIT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(20_000);

/// Sets how long the supervisors forked after this call wait for an answer to a question
/// (the broker sets it at start from `APPIPC_LOOPBACK_ANSWER_MS`; at least 1 ms).
pub fn set_answer_wait(wait: std::time::Duration) {
    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
    ANSWER_WAIT_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// Milliseconds on the monotonic clock (async-signal-safe: the supervisor is a fork).
fn now_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).saturating_mul(1000).saturating_add(t.tv_nsec as u64 / 1_000_000)
}

/// How many namespaces a full-trust supervisor tells apart among the sockets it installed.
const INSTALLED_NS: usize = 64;

/// The supervisor's channel to the broker.
pub(crate) struct BrokerLink {
    fd: OwnedFd,
    seq: u32,
    /// The broker stopped answering (closed, or a malformed answer): let everything through.
    gone: bool,
    /// A question went unanswered in time (a stopped or stalled broker; the channel is still
    /// open, e.g. held by the session keeper): calls are let through at once, without asking,
    /// until an answer (a late one) shows the broker is back. Without this, each call would
    /// wait out the whole answer wait again, and the unanswered questions (each holding a copy
    /// of an app socket) would fill the channel.
    behind: bool,
    /// A `sock_diag` socket of the supervisor's (the app's) network namespace, made on first
    /// use: a connect to a port the app's own namespace listens on needs no broker.
    diag: Option<OwnedFd>,
    /// The cookie of the supervisor's (the app's) network namespace (`SO_NETNS_COOKIE`), to
    /// tell the app's own sockets from the ones installed from other namespaces; `None` where
    /// the kernel cannot say (before Linux 5.14): then nothing is installed.
    own_netns: Option<u64>,
    /// The kernel cannot tell namespaces apart (`own_netns` stays `None`).
    netns_unknowable: bool,
    /// The supervisor of a packaged full-trust process (in the host's namespace):
    /// [`full_trust_connect`].
    full_trust: bool,
    /// A socket was installed here (so one of another namespace may be any fd now).
    installed: bool,
    /// The namespaces (cookies) of the sockets installed here: of a full-trust process, only
    /// sockets of these are guarded ([`foreign_call`], [`full_trust_guard`]); the process's
    /// own sandboxes (a namespace it made, e.g. with `bwrap --unshare-net`) are its own
    /// business. Past `INSTALLED_NS` namespaces, every namespace but its own is guarded.
    installed_ns: [u64; INSTALLED_NS],
    installed_ns_len: usize,
}

impl BrokerLink {
    pub(crate) fn new(fd: OwnedFd) -> BrokerLink {
        let probe = own_netns_cookie();
        BrokerLink {
            fd,
            seq: 0,
            gone: false,
            behind: false,
            diag: None,
            own_netns: probe.ok().flatten(),
            netns_unknowable: matches!(probe, Ok(None)),
            full_trust: false,
            installed: false,
            installed_ns: [0; INSTALLED_NS],
            installed_ns_len: 0,
        }
    }

    /// The link of a packaged full-trust process's supervisor.
    pub(crate) fn full_trust(fd: OwnedFd) -> BrokerLink {
        BrokerLink { full_trust: true, ..BrokerLink::new(fd) }
    }

    /// Notes that a socket of namespace `cookie` was installed here.
    fn note_installed(&mut self, cookie: Option<u64>) {
        self.installed = true;
        let known = &self.installed_ns[..self.installed_ns_len.min(INSTALLED_NS)];
        match cookie {
            Some(c) if known.contains(&c) => {}
            Some(c) if self.installed_ns_len < INSTALLED_NS => {
                self.installed_ns[self.installed_ns_len] = c;
                self.installed_ns_len += 1;
            }
            // Unknown, or too many: every other namespace is guarded from now on.
            _ => self.installed_ns_len = INSTALLED_NS + 1,
        }
    }

    /// Whether sockets of namespace `cookie` (not the supervisor's own) are guarded: one was
    /// installed from there.
    fn installed_from(&self, cookie: u64) -> bool {
        self.installed_ns_len > INSTALLED_NS
            || self.installed_ns[..self.installed_ns_len].contains(&cookie)
    }

    /// Whether a connect to `addr` reaches a listener of the app's own namespace (false when
    /// that cannot be told: the broker then decides, and it looks there first too).
    fn own_namespace_reaches(&mut self, addr: &[u8]) -> bool {
        if self.diag.is_none() {
            self.diag = crate::loopback::diag::diag_socket().ok();
        }
        let Some(sock) = &self.diag else { return false };
        let mut buf = [0u8; 1024];
        crate::loopback::diag::reaches_with(sock.as_fd(), addr, &mut buf).unwrap_or(false)
    }

    /// Asks the broker, with the app's socket attached; `Continue` when it does not answer.
    fn ask(&mut self, mut ask: Ask, socket: &OwnedFd) -> (Answer, Option<OwnedFd>) {
        if self.gone {
            return (Answer::Continue, None);
        }
        if self.behind {
            // Back only when an answer (to an earlier question) has come in since.
            match self.wait_answer(0) {
                Ok(Some(_)) => self.behind = false,
                Ok(None) => return (Answer::Continue, None),
                Err(()) => {
                    self.gone = true;
                    return (Answer::Continue, None);
                }
            }
        }
        self.seq = self.seq.wrapping_add(1);
        ask.seq = self.seq;
        // Never blocks: a channel the broker does not read is full, and the call goes on.
        let sent = crate::socket::send(
            &self.fd,
            &ask.encode(),
            &[socket.as_fd()],
            crate::socket::Blocking::No,
        );
        match sent {
            Ok(()) => {}
            // The broker's end is closed: it will not answer again.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)
                ) =>
            {
                self.gone = true;
                return (Answer::Continue, None);
            }
            // Anything passing (`ETOOMANYREFS`, `ENOBUFS`, which the app's uid can bring
            // about): not asked this time, asked again next time. The call fails with
            // `ENOBUFS` (a bind or listen must not go on without the broker's reservation).
            Err(_) => return (Answer::Fail(libc::ENOBUFS), None),
        }
        // One deadline for the question, however many late answers come before its own.
        let deadline =
            now_ms().saturating_add(ANSWER_WAIT_MS.load(std::sync::atomic::Ordering::Relaxed));
        loop {
            let left = deadline.saturating_sub(now_ms());
            match self.wait_answer(left) {
                Ok(Some((seq, answer, fd))) if seq == self.seq => return (answer, fd),
                // A late answer to an earlier question (already let through): skip it.
                Ok(Some(_)) if left > 0 => continue,
                Ok(_) => {
                    self.behind = true;
                    return (Answer::Continue, None);
                }
                Err(()) => {
                    self.gone = true;
                    return (Answer::Continue, None);
                }
            }
        }
    }

    /// The next answer within `wait_ms` (0: only one already there); `Ok(None)` when none came
    /// in time, `Err` when the channel is broken.
    #[allow(clippy::type_complexity)]
    fn wait_answer(
        &self,
        wait_ms: u64,
    ) -> std::result::Result<Option<(u32, Answer, Option<OwnedFd>)>, ()> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let timeout = Timespec {
            tv_sec: (wait_ms / 1000) as i64,
            tv_nsec: ((wait_ms % 1000) * 1_000_000) as i64,
        };
        loop {
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(Errno::INTR) => continue,
                Err(_) => return Err(()),
            }
        }
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; ANSWER_LEN + 1];
        let r = rustix::net::recvmsg(
            &self.fd,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
        );
        let n = match r {
            Ok(r) => r.bytes,
            Err(Errno::AGAIN | Errno::INTR) => return Ok(None),
            Err(_) => return Err(()),
        };
        let mut fd = None;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                for f in fds {
                    fd = fd.or(Some(f));
                }
            }
        }
        if n == 0 {
            return Err(());
        }
        let (seq, answer) = Answer::decode(&buf[..n]).ok_or(())?;
        if (answer == Answer::Install) != fd.is_some() {
            return Err(());
        }
        Ok(Some((seq, answer, fd)))
    }
}

/// The network namespace a socket belongs to (`SO_NETNS_COOKIE`, Linux 5.14); `None` for an fd
/// that is not a socket, or a kernel that cannot say.
fn netns_cookie(fd: &OwnedFd) -> Option<u64> {
    cookie_of(fd).ok().flatten()
}

/// `SO_NETNS_COOKIE` of `fd`: `Ok(None)` only for a kernel that cannot say (`ENOPROTOOPT`,
/// before Linux 5.14, or a cookie that is not a u64), any other failure its errno.
fn cookie_of(fd: &OwnedFd) -> Result<Option<u64>> {
    let mut v: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` (8) bytes into `v`, on this stack frame.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut v).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        return Ok((len as usize == size_of::<u64>()).then_some(v));
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOPROTOOPT) => Ok(None),
        e => Err(Errno::from_raw_os_error(e.unwrap_or(libc::ENOBUFS))),
    }
}

/// The cookie of the calling process's network namespace (that of a socket it makes);
/// `Ok(None)` only for a kernel that cannot say ([`cookie_of`]). Any other failure (no memory,
/// no fd left) is an error, never taken for an old kernel: that would have every call let
/// through for the container's life.
fn own_netns_cookie() -> Result<Option<u64>> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let s = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    cookie_of(&s)
}

/// The cookie of the supervisor's (the app's) network namespace, if the supervisor has a
/// broker link and the kernel can tell namespaces apart; found out again at each call until
/// it is known, should it not have been at start (an error meanwhile is the call's).
fn own_netns(ctx: &mut Context) -> Result<Option<u64>> {
    let Some(link) = ctx.broker.as_mut() else { return Ok(None) };
    if link.own_netns.is_none() && !link.netns_unknowable {
        match own_netns_cookie()? {
            Some(cookie) => link.own_netns = Some(cookie),
            None => link.netns_unknowable = true,
        }
    }
    Ok(link.own_netns)
}

/// `connect` or `bind` on a socket of *another* network namespace (one the broker installed,
/// or one another process handed over): never let through, or the kernel would carry it out
/// there — a disconnect (`AF_UNSPEC`) and then a connect to anything that namespace reaches.
/// A connect restarted after its socket was installed (the same loopback port it is connected
/// to) succeeds; any other connect is `EISCONN` (an `AF_UNSPEC` disconnect included, so the
/// socket stays connected to what the broker connected it to, and `sendto(MSG_FASTOPEN)` on it
/// cannot connect it anew), any bind `EINVAL` (what the kernel says of a bound socket).
fn foreign_call(
    ctx: &Context,
    c: &Caller<'_>,
    bind: bool,
    socket: &OwnedFd,
    addr: u64,
    len: u64,
) -> Result<Reply> {
    if bind {
        return Err(Errno::INVAL);
    }
    let len = len as u32 as i32;
    if !(2..=MAX_ADDR_LEN as i32).contains(&len) {
        return Err(Errno::INVAL);
    }
    let mut bytes = [0u8; MAX_ADDR_LEN];
    let len = len as usize;
    ctx.their_bytes(c, addr, &mut bytes[..len]).map_err(|_| Errno::FAULT)?;
    let asked = match classify(&bytes[..len]) {
        Ok(Target::Loopback { port, .. }) => port,
        _ => return Err(Errno::ISCONN),
    };
    let mut peer = [0u8; MAX_ADDR_LEN];
    let mut peer_len = MAX_ADDR_LEN as libc::socklen_t;
    // SAFETY: getpeername writes at most `peer_len` bytes into `peer`, on this stack frame.
    let rc = unsafe {
        libc::getpeername(socket.as_raw_fd(), peer.as_mut_ptr().cast(), &raw mut peer_len)
    };
    let connected_to =
        (rc == 0).then(|| classify(&peer[..(peer_len as usize).min(MAX_ADDR_LEN)]).ok()).flatten();
    match connected_to {
        Some(Target::Loopback { port, .. }) if port == asked => Ok(Reply::Done),
        _ => Err(Errno::ISCONN),
    }
}

fn get_opt(fd: &OwnedFd, level: i32, name: i32) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, on this stack frame.
    let rc =
        unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&raw mut v).cast(), &mut len) };
    if rc < 0 { Err(Errno::NOTSOCK) } else { Ok(v) }
}

fn set_opt(fd: &OwnedFd, level: i32, name: i32, v: i32) {
    // SAFETY: setsockopt reads one int from `v`, on this stack frame.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn get_int(fd: &OwnedFd, name: i32) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, on this stack frame.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, name, (&raw mut v).cast(), &mut len)
    };
    if rc < 0 { Err(Errno::NOTSOCK) } else { Ok(v) }
}

/// `connect` or `bind` of the caller: see the module documentation.
pub(super) fn socket_call(
    ctx: &mut Context,
    c: &Caller<'_>,
    bind: bool,
    fd: i32,
    addr: u64,
    len: u64,
) -> Result<Reply> {
    if ctx.broker.as_ref().is_some_and(|b| b.full_trust) {
        return if bind {
            full_trust_guard(ctx, c, fd)
        } else {
            full_trust_connect(ctx, c, fd, addr, len)
        };
    }
    // First: whose socket is it? One of another namespace is never let through, whatever the
    // address and whether the broker answers or not.
    let Some(own) = own_netns(ctx)? else {
        // No broker link, or a kernel that cannot tell namespaces apart: nothing was ever
        // installed here, every socket is the app's own.
        return Ok(Reply::Continue);
    };
    // Not an fd of the caller's: `EBADF`, the kernel's answer (never let through: the kernel
    // would look the number up again, and find whatever another thread put there meanwhile).
    let socket = ctx.their_fd(c, fd)?;
    if let Some(cookie) = netns_cookie(&socket)
        && cookie != own
    {
        return foreign_call(ctx, c, bind, &socket, addr, len);
    }
    if bind {
        return own_bind(ctx, c, socket, fd, addr, len);
    }
    if let Some(r) = own_disconnect(ctx, c, &socket, addr, len) {
        return r;
    }
    // The kernel takes the length as an int, and copies at most a `sockaddr_storage`.
    let len = len as u32 as i32;
    if !(0..=MAX_ADDR_LEN as i32).contains(&len) {
        return Err(Errno::INVAL);
    }
    let mut bytes = [0u8; MAX_ADDR_LEN];
    let len = len as usize;
    if len > 0 {
        ctx.their_bytes(c, addr, &mut bytes[..len]).map_err(|_| Errno::FAULT)?;
    }
    let asks = ctx.broker.as_ref().is_some_and(|b| !b.gone);
    let relevant = asks
        && match classify(&bytes[..len]) {
            // The same package always reaches itself: its own listener needs no broker.
            Ok(Target::Loopback { port, .. }) if port != 0 => {
                !ctx.broker.as_mut().is_some_and(|b| b.own_namespace_reaches(&bytes[..len]))
            }
            _ => false,
        };
    if !relevant {
        return own_connect(ctx, c, &socket, &bytes[..len]);
    }
    ask_connect(ctx, c, socket, fd, bytes, len)
}

/// A connect of the app's own `socket` that is not the broker's business (or that the broker
/// does not answer): carried out here, on the very socket the checks looked at, with the
/// address read once — never let through, since the kernel would look the fd number up again
/// and read the address again, and another thread of the app could have put an installed
/// socket (of another namespace) there meanwhile and made the address a disconnect. The
/// supervisor is in the app's network namespace, with the app's uid and gids and no
/// capability: an `AF_INET`/`AF_INET6` connect reaches what the app's namespace reaches (its
/// own listeners; nothing else, it has only `lo`), an abstract `AF_UNIX` one the package's own
/// abstract sockets (they are per network namespace), and a pathname `AF_UNIX` one is resolved
/// in the app's root and working directory ([`unix_path_connect`]).
///
/// An `AF_UNIX` connect is carried out with the app's credentials ([`as_app`]), which the
/// kernel records for the listener's side to read (`SO_PEERCRED`): under a root broker it
/// would otherwise read uid 0.
fn own_connect(ctx: &mut Context, c: &Caller<'_>, socket: &OwnedFd, addr: &[u8]) -> Result<Reply> {
    if get_int(socket, libc::SO_DOMAIN).ok() == Some(libc::AF_UNIX) {
        // The kernel's check of an `AF_UNIX` address: at most a `sockaddr_un`.
        if addr.len() > size_of::<libc::sockaddr_un>() {
            return Err(Errno::INVAL);
        }
        if let Some(path) = unix_path(addr) {
            return as_app(ctx, c, |ctx| unix_path_connect(ctx, c, socket, path));
        }
        return as_app(ctx, c, |_| {
            c.still_waiting()?;
            connect_on(c, socket, addr)
        });
    }
    c.still_waiting()?;
    connect_on(c, socket, addr)
}

/// The path of a pathname `AF_UNIX` address (up to its first NUL, as the kernel reads it),
/// given for an `AF_UNIX` socket (the callers know its domain); `None` for anything else (an
/// abstract name, an autobind, another family), which the kernel takes as it is.
fn unix_path(addr: &[u8]) -> Option<&[u8]> {
    let family = addr.get(..2).map(|f| i32::from(u16::from_ne_bytes([f[0], f[1]])));
    if family != Some(libc::AF_UNIX) || addr.len() <= 2 || addr[2] == 0 {
        return None;
    }
    let path = &addr[2..];
    Some(&path[..path.iter().position(|&b| b == 0).unwrap_or(path.len())])
}

/// A `sockaddr_un` naming `path`, NUL-terminated when there is room: the kernel takes a path of
/// up to 108 bytes (all of `sun_path`, adding the NUL itself).
fn sockaddr_un(path: &[u8]) -> Result<([u8; 111], usize)> {
    let mut a = [0u8; 111];
    if path.len() > 108 {
        return Err(Errno::INVAL);
    }
    a[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    a[2..2 + path.len()].copy_from_slice(path);
    Ok((a, (2 + path.len() + 1).min(size_of::<libc::sockaddr_un>())))
}

/// A pathname `AF_UNIX` connect: the path is resolved as the kernel would have for the app (in
/// its root, from its working directory, links followed: the supervisor's own resolution, see
/// the parent module), the socket file reached is checked (`ECONNREFUSED` for anything else,
/// as the kernel says), and the supervisor connects the app's socket to it through its own
/// `/proc/<pid>/fd/<n>` of that file, with the app's uid and gids (the kernel checks write
/// permission on it, as for the app). Landlock does not govern connecting to a pathname
/// socket (Linux 6.18), so the app's domain would not have refused it either.
fn unix_path_connect(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: &OwnedFd,
    path: &[u8],
) -> Result<Reply> {
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    let file = ctx.resolve_bytes(c, libc::AT_FDCWD, path, true, false)?;
    if super::file_type(file.as_fd())? != libc::S_IFSOCK {
        return Err(Errno::CONNREFUSED);
    }
    let mut link = super::PathBuf::<64>::new();
    link.push(b"self/fd/")?.push_u32(file.as_raw_fd() as u32)?;
    rustix::process::fchdir(&ctx.proc)?;
    let (addr, len) = sockaddr_un(link.as_cstr().to_bytes())?;
    c.still_waiting()?;
    connect_on(c, socket, &addr[..len])
}

/// The app's `SO_SNDTIMEO` (`None`: none, or unreadable).
fn send_timeout(socket: &OwnedFd) -> Option<libc::timeval> {
    let mut v = libc::timeval { tv_sec: 0, tv_usec: 0 };
    let mut len = size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, on this stack frame.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw mut v).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(v)
}

fn set_send_timeout(socket: &OwnedFd, v: libc::timeval) {
    // SAFETY: setsockopt reads one timeval from `v`, on this stack frame.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const v).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
}

/// How long one wait of a blocking connect carried out here lasts before the supervisor looks
/// whether the app still waits for it, in milliseconds.
const CONNECT_SLICE_MS: i64 = 50;

/// `connect(socket, addr)` carried out for the app, its answer the kernel's. A blocking
/// connect that takes long (a listener of the app's own whose backlog is full) is waited for
/// in slices of `CONNECT_SLICE_MS` (the socket's `SO_SNDTIMEO`, the app's own put back after,
/// and honoured: past it, the kernel's `EINPROGRESS` or `EAGAIN`), so that a caller gone (a
/// signal, killed) is noticed; a restarted connect on a socket already connected to that
/// address is answered 0 (no `EISCONN`). A nonblocking socket gets the kernel's
/// `EINPROGRESS`.
fn connect_on(c: &Caller<'_>, socket: &OwnedFd, addr: &[u8]) -> Result<Reply> {
    let blocking = rustix::fs::fcntl_getfl(socket).is_ok_and(|f| !f.contains(OFlagsNb::NONBLOCK));
    let ty = get_int(socket, libc::SO_TYPE).unwrap_or(-1);
    let sliced = blocking && (ty == libc::SOCK_STREAM || ty == libc::SOCK_SEQPACKET);
    let unix = get_int(socket, libc::SO_DOMAIN).ok() == Some(libc::AF_UNIX);
    let saved = if sliced { send_timeout(socket) } else { None };
    let sliced = sliced && saved.is_some();
    let deadline = saved.filter(|t| t.tv_sec != 0 || t.tv_usec != 0).map(|t| {
        now_ms().saturating_add(
            (t.tv_sec as u64).saturating_mul(1000).saturating_add(t.tv_usec as u64 / 1000),
        )
    });
    if sliced {
        set_send_timeout(
            socket,
            libc::timeval { tv_sec: 0, tv_usec: (CONNECT_SLICE_MS * 1000) as libc::suseconds_t },
        );
    }
    let r = loop {
        // SAFETY: connect reads `addr.len()` (≤ MAX_ADDR_LEN) bytes of `addr`, borrowed for
        // the call; the socket is the app's, duplicated into this process.
        let rc = unsafe {
            libc::connect(socket.as_raw_fd(), addr.as_ptr().cast(), addr.len() as libc::socklen_t)
        };
        if rc == 0 {
            break Ok(Reply::Done);
        }
        let e = Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL),
        );
        match e {
            Errno::INTR => continue,
            // A slice went by (`EINPROGRESS` the first time, `EALREADY` after; `EAGAIN` for
            // `AF_UNIX`): on, while the app waits, up to its own timeout.
            Errno::INPROGRESS | Errno::ALREADY | Errno::AGAIN if sliced => {
                if deadline.is_some_and(|d| now_ms() >= d) {
                    break Err(if unix { Errno::AGAIN } else { Errno::INPROGRESS });
                }
                if let Err(e) = c.still_waiting() {
                    break Err(e);
                }
            }
            Errno::ISCONN if !unix && connected_to(socket, addr) => break Ok(Reply::Done),
            e => break Err(e),
        }
    };
    if let Some(t) = saved.filter(|_| sliced) {
        set_send_timeout(socket, t);
    }
    r
}

/// Whether an IP `socket` is connected to the address and port of `addr`.
fn connected_to(socket: &OwnedFd, addr: &[u8]) -> bool {
    let mut peer = [0u8; MAX_ADDR_LEN];
    let mut n = MAX_ADDR_LEN as libc::socklen_t;
    // SAFETY: getpeername writes at most `n` bytes into `peer`, on this stack frame.
    let rc = unsafe { libc::getpeername(socket.as_raw_fd(), peer.as_mut_ptr().cast(), &raw mut n) };
    if rc != 0 || addr.len() < 8 || peer[..2] != addr[..2] {
        return false;
    }
    match i32::from(u16::from_ne_bytes([addr[0], addr[1]])) {
        libc::AF_INET => peer[2..8] == addr[2..8],
        libc::AF_INET6 => {
            addr.len() >= 24 && peer[2..4] == addr[2..4] && peer[8..24] == addr[8..24]
        }
        _ => false,
    }
}

/// A disconnect (`connect` with `AF_UNSPEC`) of the app's own `socket`: carried out here, on the
/// very socket the check looked at (its duplicate), never let through. Let through, the kernel
/// would look the fd number up again, and another thread of the app could have put an
/// installed socket (of another namespace) there meanwhile (`dup2`): disconnected, it could be
/// connected anew in that namespace (`sendto` with `MSG_FASTOPEN` is not intercepted). `None`
/// for any other address.
fn own_disconnect(
    ctx: &Context,
    c: &Caller<'_>,
    socket: &OwnedFd,
    addr: u64,
    len: u64,
) -> Option<Result<Reply>> {
    let len = len as u32 as i32;
    if !(2..=size_of::<libc::sockaddr_storage>() as i32).contains(&len) {
        return None;
    }
    // Only the family counts for a disconnect, but the kernel copies the whole address first
    // (`EFAULT` if it cannot: then `None`, and the caller's read of it says so).
    // The family alone first (every connect passes here), the whole address only for a
    // disconnect; read again, it may no longer be one (the app's other threads).
    let mut bytes = [0u8; MAX_ADDR_LEN];
    let len = (len as usize).min(MAX_ADDR_LEN);
    let unspec = |b: &[u8]| i32::from(u16::from_ne_bytes([b[0], b[1]])) == libc::AF_UNSPEC;
    ctx.their_bytes(c, addr, &mut bytes[..2]).ok()?;
    if !unspec(&bytes) {
        return None;
    }
    ctx.their_bytes(c, addr, &mut bytes[..len]).ok()?;
    if !unspec(&bytes) {
        return None;
    }
    if let Err(e) = c.still_waiting() {
        return Some(Err(e));
    }
    // SAFETY: connect reads `len` (≤ MAX_ADDR_LEN) bytes of `bytes`, on this stack frame; the
    // socket is the app's, duplicated into this process.
    let rc = unsafe { libc::connect(socket.as_raw_fd(), bytes.as_ptr().cast(), len as u32) };
    if rc < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        return Some(Err(Errno::from_raw_os_error(e)));
    }
    Some(Ok(Reply::Done))
}

/// Asks the broker about a TCP connect of the app's `socket` (its `fd`) to the loopback address
/// `bytes[..len]`, and carries out its answer (other sockets are let through).
fn ask_connect(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: OwnedFd,
    fd: i32,
    bytes: [u8; MAX_ADDR_LEN],
    len: usize,
) -> Result<Reply> {
    let stream = get_int(&socket, libc::SO_TYPE).is_ok_and(|t| t == libc::SOCK_STREAM);
    let ip =
        get_int(&socket, libc::SO_DOMAIN).is_ok_and(|d| d == libc::AF_INET || d == libc::AF_INET6);
    // Not the broker's business (UDP, a socket of another family), or the broker does not
    // answer: carried out as it is, on this socket, in the app's namespace — never let
    // through, except for a full-trust process (whose guards are no boundary, see
    // `full_trust_connect`), where the kernel connects in the host's namespace as it would
    // have without the supervisor.
    let full_trust = ctx.broker.as_ref().is_some_and(|b| b.full_trust);
    let fallback = |ctx: &mut Context, socket: &OwnedFd| {
        if full_trust { Ok(Reply::Continue) } else { own_connect(ctx, c, socket, &bytes[..len]) }
    };
    if !stream || !ip {
        return fallback(ctx, &socket);
    }
    let cloexec = ctx.fd_cloexec(c, fd);
    c.still_waiting()?;
    let ask = Ask { op: AskOp::Connect, seq: 0, cloexec, addr: bytes, addr_len: len as u8 };
    let Some(link) = ctx.broker.as_mut() else { return fallback(ctx, &socket) };
    let (answer, installed) = link.ask(ask, &socket);
    match (answer, installed) {
        (Answer::Fail(e), _) => Err(Errno::from_raw_os_error(e)),
        (Answer::Done, _) => Ok(Reply::Done),
        (Answer::Install, Some(new)) => {
            link.note_installed(netns_cookie(&new));
            drop(socket);
            install(c, &new, fd, cloexec)?;
            Ok(Reply::Done)
        }
        (Answer::Continue | Answer::Install, _) => fallback(ctx, &socket),
    }
}

/// The longest address a full-trust connect is read for (`sizeof(struct sockaddr_in6)`): what
/// a loopback address takes; of a longer one (`AF_UNIX`) only its family matters.
const FULL_TRUST_READ: usize = 28;

/// `bind` or `listen` of a packaged full-trust process: carried out by the kernel (in the host's
/// namespace, outside the packages' port space), except on a socket of another namespace once
/// one was installed here: `EINVAL`, what the kernel says of a connected socket. An installed
/// socket whose connection has ended (`TCP_CLOSE` releases its port) could otherwise be bound
/// and made a listener inside the server's namespace, where the server's own processes, and
/// the clients the broker sends there, would reach it.
fn full_trust_guard(ctx: &mut Context, c: &Caller<'_>, fd: i32) -> Result<Reply> {
    let Some(link) = ctx.broker.as_ref().filter(|b| b.installed) else {
        return Ok(Reply::Continue);
    };
    let Some(own) = link.own_netns else { return Ok(Reply::Continue) };
    let Ok(s) = ctx.their_fd(c, fd) else { return Ok(Reply::Continue) };
    match (netns_cookie(&s), ctx.broker.as_ref()) {
        (Some(cookie), Some(link)) if cookie != own && link.installed_from(cookie) => {
            Err(Errno::INVAL)
        }
        _ => Ok(Reply::Continue),
    }
}

/// `connect` of a packaged full-trust process, which runs in the host's network namespace:
/// everything goes on as without the supervisor (`CONTINUE`), at the cost of one read of the
/// address, except a TCP connect to a loopback port that no listener of the host reaches —
/// where the kernel could only refuse, and where an app container's listener may be — which
/// the broker decides (`LoopbackConnect`: the server's `in` rule naming the client, or its
/// own package); an allowed one gets a socket of the listener's namespace installed. A host
/// listener is reached as before, without the broker. Sockets of another namespace (installed
/// ones; the fd is looked at for every connect once one was installed here, and for every
/// `AF_UNSPEC` disconnect) are never let through: [`foreign_call`].
fn full_trust_connect(
    ctx: &mut Context,
    c: &Caller<'_>,
    fd: i32,
    addr: u64,
    len: u64,
) -> Result<Reply> {
    let Ok(Some(own)) = own_netns(ctx) else {
        return Ok(Reply::Continue);
    };
    let installed = ctx.broker.as_ref().is_some_and(|b| b.installed);
    let len = len as u32 as i32;
    if !(0..=size_of::<libc::sockaddr_storage>() as i32).contains(&len) {
        // What the kernel refuses (EINVAL) whatever the address: its answer.
        return Ok(Reply::Continue);
    }
    let mut bytes = [0u8; MAX_ADDR_LEN];
    let read = usize::try_from(len).map_or(0, |l| l.min(FULL_TRUST_READ));
    let read = read >= 2 && ctx.their_bytes(c, addr, &mut bytes[..read]).is_ok();
    let unspec = read && i32::from(u16::from_ne_bytes([bytes[0], bytes[1]])) == libc::AF_UNSPEC;
    let mut socket = None;
    if installed || unspec {
        let Ok(s) = ctx.their_fd(c, fd) else { return Ok(Reply::Continue) };
        if let Some(cookie) = netns_cookie(&s).filter(|cookie| *cookie != own) {
            // Guarded: a socket installed here, or a disconnect of any socket of another
            // namespace (one handed over). Else a socket of a namespace of the process's own
            // (a sandbox it made): the kernel connects it there.
            let guarded = unspec || ctx.broker.as_ref().is_some_and(|b| b.installed_from(cookie));
            return if guarded {
                foreign_call(ctx, c, false, &s, addr, len as u64)
            } else {
                Ok(Reply::Continue)
            };
        }
        if unspec {
            // Carried out on the socket looked at, not let through (see `own_disconnect`).
            return own_disconnect(ctx, c, &s, addr, len as u64).unwrap_or(Ok(Reply::Continue));
        }
        socket = Some(s);
    }
    let len = (len as usize).min(FULL_TRUST_READ);
    let loopback =
        read && matches!(classify(&bytes[..len]), Ok(Target::Loopback { port, .. }) if port != 0);
    let Some(link) = ctx.broker.as_mut() else { return Ok(Reply::Continue) };
    if !loopback || link.gone || link.own_namespace_reaches(&bytes[..len]) {
        return Ok(Reply::Continue);
    }
    let socket = match socket {
        Some(s) => s,
        None => match ctx.their_fd(c, fd) {
            // A socket of another namespace, none installed here yet (a sandbox of the
            // process's own, or one handed over): the kernel connects it in its namespace.
            Ok(s) if netns_cookie(&s).is_some_and(|cookie| cookie != own) => {
                return Ok(Reply::Continue);
            }
            Ok(s) => s,
            Err(_) => return Ok(Reply::Continue),
        },
    };
    ask_connect(ctx, c, socket, fd, bytes, len)
}

/// `bind` of a socket of the app's own namespace: the address is read once and the bind is
/// carried out by the supervisor on the app's very socket (its duplicate), with that copy —
/// never let through, since the kernel would look the fd number up again and read the address
/// again after the checks (a thread of the app could have changed either meanwhile: put an
/// installed socket of another namespace at that number, or made the address another one).
/// The supervisor acts with the app's uid and no capability, so the kernel's checks
/// (privileged ports, directory permissions) are the app's. A TCP port is checked by the
/// broker first (the shared port space); `AF_UNSPEC` is what the kernel makes of it on an
/// `AF_INET` socket: the wildcard address if the address is `INADDR_ANY`, `EAFNOSUPPORT`
/// otherwise. UDP and raw IP sockets, abstract and autobound `AF_UNIX` names and other
/// families are bound as they are; a pathname `AF_UNIX` one in [`unix_path_bind`].
fn own_bind(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: OwnedFd,
    fd: i32,
    addr: u64,
    len: u64,
) -> Result<Reply> {
    let stream = get_int(&socket, libc::SO_TYPE).is_ok_and(|t| t == libc::SOCK_STREAM);
    let domain = get_int(&socket, libc::SO_DOMAIN).unwrap_or(-1);
    // The kernel takes the length as an int, and copies at most a `sockaddr_storage`.
    let len = len as u32 as i32;
    if !(0..=MAX_ADDR_LEN as i32).contains(&len) {
        return Err(Errno::INVAL);
    }
    let len = len as usize;
    let mut bytes = [0u8; MAX_ADDR_LEN];
    if len > 0 {
        ctx.their_bytes(c, addr, &mut bytes[..len]).map_err(|_| Errno::FAULT)?;
    }
    if domain == libc::AF_UNIX {
        // The kernel's check of an `AF_UNIX` address: at most a `sockaddr_un`.
        if len > size_of::<libc::sockaddr_un>() {
            return Err(Errno::INVAL);
        }
        if let Some(path) = unix_path(&bytes[..len]) {
            return as_app(ctx, c, |ctx| unix_path_bind(ctx, c, &socket, path));
        }
    }
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        c.still_waiting()?;
        raw_bind(&socket, &bytes[..len])?;
        return Ok(Reply::Done);
    }
    if len < 2 {
        return Err(Errno::INVAL);
    }
    if !stream {
        // UDP and raw: not in the shared port space, but bound here too, on the socket the
        // check looked at.
        c.still_waiting()?;
        raw_bind(&socket, &bytes[..len])?;
        return Ok(Reply::Done);
    }
    if i32::from(u16::from_ne_bytes([bytes[0], bytes[1]])) == libc::AF_UNSPEC && len >= 16 {
        if domain != libc::AF_INET || bytes[4..8] != [0; 4] {
            return Err(Errno::AFNOSUPPORT);
        }
        bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    }
    let asks = ctx.broker.as_ref().is_some_and(|b| !b.gone);
    match crate::loopback::shared_space_port(&bytes[..len]) {
        Some(0) if asks => {
            c.still_waiting()?;
            ephemeral_bind(ctx, c, &socket, fd, &mut bytes, len, domain)?;
            return Ok(Reply::Done);
        }
        Some(_) if asks => {
            ask_bind(ctx, c, &socket, fd, bytes, len)?;
        }
        _ => {}
    }
    c.still_waiting()?;
    raw_bind(&socket, &bytes[..len])?;
    Ok(Reply::Done)
}

/// A pathname `AF_UNIX` bind: the socket file is made as the kernel would have made it for
/// the app. The directory part is resolved in the app's root from its working directory (links
/// followed); the last part is made there by the kernel (`EADDRINUSE` if anything is there, a
/// dangling link included), with the app's umask, uid and gids (so the directory's permissions
/// and a read-only mount refuse what they would refuse the app). The supervisor is outside the
/// app's Landlock domain, so it checks the domain's `make_sock` right itself, as Landlock does:
/// the directory, or one above it up to the app's root (across mounts, as the app sees them),
/// must be one of the app's writable folders ([`super::Supervisor::allow_sockets_below`]);
/// `EACCES` otherwise, Landlock's answer.
fn unix_path_bind(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: &OwnedFd,
    path: &[u8],
) -> Result<Reply> {
    // The last part, trailing slashes aside (`a/b/`: the kernel looks `b` up, and refuses to
    // make it).
    let trimmed = &path[..path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1)];
    let trailing = trimmed.len() < path.len();
    if trimmed.is_empty() {
        // `/` (the root: a name that exists).
        return Err(Errno::ADDRINUSE);
    }
    let (dir, name) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => (&trimmed[..1], &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&trimmed[..0], trimmed),
    };
    let dir = ctx.resolve_bytes(c, libc::AT_FDCWD, dir, true, true)?;
    if super::file_type(dir.as_fd())? != libc::S_IFDIR {
        return Err(Errno::NOTDIR);
    }
    // The kernel's order: a name taken (`.` and `..` are), then a read-only mount, then the
    // security check (Landlock), then the directory's permissions (the bind itself).
    let (addr, len) = sockaddr_un(name)?;
    let cname = std::ffi::CStr::from_bytes_until_nul(&addr[2..]).map_err(|_| Errno::INVAL)?;
    // The lookup itself needs search permission on the directory, for `.` and `..` too:
    // `EACCES` before anything else, as the kernel's path walk says.
    match rustix::fs::statat(&dir, cname, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => return Err(Errno::ADDRINUSE),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e),
    }
    if trailing {
        return Err(Errno::NOENT);
    }
    if rustix::fs::fstatvfs(&dir)?.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Err(Errno::ROFS);
    }
    if !ctx.may_make_socket_below(c, &dir)? {
        return Err(Errno::ACCESS);
    }
    let umask = ctx.their_umask(c)?;
    c.still_waiting()?;
    rustix::process::fchdir(&dir)?;
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
    let r = raw_bind(socket, &addr[..len]);
    rustix::process::umask(old);
    if rustix::process::fchdir(&ctx.proc).is_err() {
        // Never serve anyone from the app's directory (a relative path would be resolved
        // there).
        super::exit_now(1);
    }
    r.map(|()| Reply::Done)
}

/// `bind(socket, addr)`, the kernel's errno if it fails.
fn raw_bind(socket: &OwnedFd, addr: &[u8]) -> Result<()> {
    // SAFETY: bind reads `addr.len()` (≤ MAX_ADDR_LEN) bytes of `addr`, borrowed for the call;
    // the socket is the app's, duplicated into this process.
    let rc = unsafe {
        libc::bind(socket.as_raw_fd(), addr.as_ptr().cast(), addr.len() as libc::socklen_t)
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        return Err(Errno::from_raw_os_error(e));
    }
    Ok(())
}

/// How many ports the kernel offers for one ephemeral bind before the supervisor gives up
/// (`EADDRINUSE`): each one the broker refuses is another package's.
const EPHEMERAL_TRIES: usize = 16;

/// Asks the broker whether the app's `socket` (its `fd`) may bind the shared-space address
/// `bytes[..len]`; `Err` with the broker's refusal (`EADDRINUSE`, ...).
fn ask_bind(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: &OwnedFd,
    fd: i32,
    bytes: [u8; MAX_ADDR_LEN],
    len: usize,
) -> Result<()> {
    let cloexec = ctx.fd_cloexec(c, fd);
    c.still_waiting()?;
    let ask = Ask { op: AskOp::Bind, seq: 0, cloexec, addr: bytes, addr_len: len as u8 };
    if let Some(link) = ctx.broker.as_mut()
        && let (Answer::Fail(e), _) = link.ask(ask, socket)
    {
        return Err(Errno::from_raw_os_error(e));
    }
    Ok(())
}

/// A bind of port 0 (an ephemeral port), or the implicit one of a `listen` on an unbound
/// socket: the port must be free in the shared space, not only in the app's namespace (else two
/// namespaces could listen on one port). A probe socket of the app's namespace, bound to the
/// same address and port 0, gets a port from the kernel; the broker is asked about it (and
/// reserves it); if another package holds it the probe is kept (so the kernel offers another)
/// and the next is asked about; an accepted port is bound on the app's socket.
fn ephemeral_bind(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: &OwnedFd,
    fd: i32,
    bytes: &mut [u8; MAX_ADDR_LEN],
    len: usize,
    domain: i32,
) -> Result<()> {
    let mut held: [Option<OwnedFd>; EPHEMERAL_TRIES] = Default::default();
    let v6only = (domain == libc::AF_INET6)
        .then(|| get_opt(socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY).unwrap_or(0));
    let cloexec = ctx.fd_cloexec(c, fd);
    for slot in &mut held {
        // SAFETY: socket takes integers; the fd returned is new and owned here.
        let probe = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if probe < 0 {
            return Err(Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOBUFS),
            ));
        }
        // SAFETY: see above.
        let probe = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(probe) };
        if let Some(v) = v6only {
            set_opt(&probe, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, v);
        }
        bytes[2..4].copy_from_slice(&0u16.to_be_bytes());
        raw_bind(&probe, &bytes[..len])?;
        let port = local_port(&probe).ok_or(Errno::ADDRINUSE)?;
        bytes[2..4].copy_from_slice(&port.to_be_bytes());
        c.still_waiting()?;
        let ask = Ask { op: AskOp::Bind, seq: 0, cloexec, addr: *bytes, addr_len: len as u8 };
        let answer = match ctx.broker.as_mut() {
            Some(link) => link.ask(ask, socket).0,
            None => Answer::Continue,
        };
        match answer {
            Answer::Fail(libc::EADDRINUSE) => {
                *slot = Some(probe);
                continue;
            }
            Answer::Fail(e) => return Err(Errno::from_raw_os_error(e)),
            _ => {}
        }
        drop(probe);
        c.still_waiting()?;
        match raw_bind(socket, &bytes[..len]) {
            // Taken meanwhile in the app's own namespace (another of its threads): again.
            Err(Errno::ADDRINUSE) => continue,
            r => return r,
        }
    }
    Err(Errno::ADDRINUSE)
}

/// The local port of a bound socket.
fn local_port(socket: &OwnedFd) -> Option<u16> {
    let mut a = [0u8; MAX_ADDR_LEN];
    let mut n = MAX_ADDR_LEN as libc::socklen_t;
    // SAFETY: getsockname writes at most `n` bytes into `a`, on this stack frame.
    let rc = unsafe { libc::getsockname(socket.as_raw_fd(), a.as_mut_ptr().cast(), &raw mut n) };
    (rc == 0 && n >= 4).then(|| u16::from_be_bytes([a[2], a[3]]))
}

/// `listen` of the caller: on a TCP socket of the app's own namespace it is carried out by the
/// supervisor (never let through: the app could put another socket at that fd meanwhile),
/// after the broker checked the port — the one the socket is bound to (another package may
/// have come to hold it since), or for a socket not bound yet (the kernel would pick a port
/// itself) an ephemeral one free in the shared space ([`ephemeral_bind`]). A socket of
/// another namespace is `EINVAL` (an installed socket is connected: what the kernel says).
/// Any other socket (`AF_UNIX`, …) is made to listen here too, as is every socket when the
/// broker does not answer (then without a check of the port); nothing is let through.
pub(super) fn listen_call(
    ctx: &mut Context,
    c: &Caller<'_>,
    fd: i32,
    backlog: i32,
) -> Result<Reply> {
    if ctx.broker.as_ref().is_some_and(|b| b.full_trust) {
        return full_trust_guard(ctx, c, fd);
    }
    let Some(own) = own_netns(ctx)? else {
        return Ok(Reply::Continue);
    };
    // Never let through from here on (the kernel would look the number up again): a bad fd is
    // `EBADF`, and whatever the socket, the listen is carried out on the one looked at.
    let socket = ctx.their_fd(c, fd)?;
    if netns_cookie(&socket).is_some_and(|cookie| cookie != own) {
        return Err(Errno::INVAL);
    }
    let stream = get_int(&socket, libc::SO_TYPE).is_ok_and(|t| t == libc::SOCK_STREAM);
    let protocol = get_int(&socket, libc::SO_PROTOCOL).unwrap_or(-1);
    let domain = get_int(&socket, libc::SO_DOMAIN).unwrap_or(-1);
    let tcp = protocol == 0 || protocol == libc::IPPROTO_TCP;
    let ip = domain == libc::AF_INET || domain == libc::AF_INET6;
    let asks = ctx.broker.as_ref().is_some_and(|b| !b.gone);
    let mut bytes = [0u8; MAX_ADDR_LEN];
    let mut n = MAX_ADDR_LEN as libc::socklen_t;
    // SAFETY: getsockname writes at most `n` bytes into `bytes`, on this stack frame.
    let named = stream
        && tcp
        && ip
        && asks
        && unsafe { libc::getsockname(socket.as_raw_fd(), bytes.as_mut_ptr().cast(), &raw mut n) }
            == 0
        && n as usize >= 4;
    let len = (n as usize).min(MAX_ADDR_LEN);
    match crate::loopback::shared_space_port(&bytes[..len]).filter(|_| named) {
        Some(0) => {
            c.still_waiting()?;
            ephemeral_bind(ctx, c, &socket, fd, &mut bytes, len, domain)?;
        }
        Some(_) => {
            ask_bind(ctx, c, &socket, fd, bytes, len)?;
        }
        None => {}
    }
    let listen = |_: &mut Context| {
        c.still_waiting()?;
        // SAFETY: listen takes an fd (the app's socket, duplicated into this process) and an
        // int.
        if unsafe { libc::listen(socket.as_raw_fd(), backlog) } < 0 {
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
            return Err(Errno::from_raw_os_error(e));
        }
        Ok(Reply::Done)
    };
    // An `AF_UNIX` listener's credentials are what its clients read (`SO_PEERCRED`): the
    // app's.
    if domain == libc::AF_UNIX { as_app(ctx, c, listen) } else { listen(ctx) }
}

/// Installs `new` over the caller's fd `fd` (`SECCOMP_ADDFD_FLAG_SETFD`).
fn install(c: &Caller<'_>, new: &OwnedFd, fd: i32, cloexec: bool) -> Result<()> {
    let addfd = libc::seccomp_notif_addfd {
        id: c.id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: new.as_raw_fd() as u32,
        newfd: fd as u32,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: SECCOMP_IOCTL_NOTIF_ADDFD reads one seccomp_notif_addfd from `addfd`, on this
    // stack frame; the kernel duplicates `srcfd` into the caller at `newfd`, atomically
    // replacing what was there, only while the notification is pending.
    let rc = unsafe {
        libc::ioctl(c.listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &raw const addfd)
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOENT);
        return Err(Errno::from_raw_os_error(e));
    }
    Ok(())
}

impl Context {
    /// Whether the app's Landlock domain would let it make a socket file in `dir`: `dir` or a
    /// directory above it, up to the app's root, is one of [`Context::socket_dirs`] (Landlock's
    /// own walk: rules are on inodes, and a right given on a directory holds below it, across
    /// the mounts the process sees). `..` of a directory seen through the app's root follows
    /// the app's mounts; the walk ends at the app's root or where `..` stays put.
    fn may_make_socket_below(&mut self, c: &Caller<'_>, dir: &OwnedFd) -> Result<bool> {
        let root = super::identity(self.root(c)?)?;
        let mut at = rustix::fs::openat(
            dir,
            c".",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        // Deeper than any path the kernel takes (PATH_MAX / 2 components).
        for _ in 0..2048 {
            let id = super::identity(at.as_fd())?;
            if self.socket_dirs.contains((id.1, id.2, id.3)) {
                return Ok(true);
            }
            if id == root {
                return Ok(false);
            }
            let up = rustix::fs::openat(
                &at,
                c"..",
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            if super::identity(up.as_fd())? == id {
                return Ok(false);
            }
            at = up;
        }
        Ok(false)
    }

    /// The caller's file-system uid and gid and its supplementary groups (`Uid:`, `Gid:` and
    /// `Groups:` of its status).
    fn their_creds(&self, c: &Caller<'_>) -> Result<Creds> {
        let mut buf = [0u8; 4096];
        let len = self.their_status(c, &mut buf)?;
        let text = &buf[..len];
        let line = |key: &[u8]| -> Result<&[u8]> {
            let at = text.windows(key.len()).position(|w| w == key).ok_or(Errno::NOENT)?;
            let rest = &text[at + key.len()..];
            Ok(&rest[..rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())])
        };
        let numbers = |l: &[u8], out: &mut [u32]| -> Result<usize> {
            let mut n = 0;
            for word in l.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
                let v = std::str::from_utf8(word).ok().and_then(|w| w.parse().ok());
                let slot = out.get_mut(n).ok_or(Errno::ACCESS)?;
                *slot = v.ok_or(Errno::NOENT)?;
                n += 1;
            }
            Ok(n)
        };
        let mut ids = [0u32; 4];
        let mut creds =
            Creds { euid: 0, egid: 0, fsuid: 0, fsgid: 0, groups: [0; MAX_GROUPS], n: 0 };
        if numbers(line(b"\nUid:")?, &mut ids)? != 4 {
            return Err(Errno::NOENT);
        }
        (creds.euid, creds.fsuid) = (ids[1], ids[3]);
        if numbers(line(b"\nGid:")?, &mut ids)? != 4 {
            return Err(Errno::NOENT);
        }
        (creds.egid, creds.fsgid) = (ids[1], ids[3]);
        creds.n = numbers(line(b"\nGroups:")?, &mut creds.groups)?;
        Ok(creds)
    }

    /// The caller's umask (`Umask:` of its `/proc/<tid>/status`).
    fn their_umask(&self, c: &Caller<'_>) -> Result<u32> {
        let mut buf = [0u8; 4096];
        let len = self.their_status(c, &mut buf)?;
        let text = &buf[..len];
        let key = b"\nUmask:";
        let at = text.windows(key.len()).position(|w| w == key).ok_or(Errno::NOENT)? + key.len();
        let mut umask = 0u32;
        let mut digits = 0;
        for &b in text[at..].iter().skip_while(|b| b.is_ascii_whitespace()) {
            if !(b'0'..=b'7').contains(&b) {
                break;
            }
            umask = umask * 8 + u32::from(b - b'0');
            digits += 1;
        }
        if digits == 0 || umask > 0o777 {
            return Err(Errno::NOENT);
        }
        Ok(umask)
    }

    /// Whether the caller's fd `fd` has `FD_CLOEXEC` (its `/proc/<tid>/fdinfo/<fd>` flags);
    /// false when that cannot be read.
    fn fd_cloexec(&self, c: &Caller<'_>, fd: i32) -> bool {
        let mut p = super::PathBuf::<64>::new();
        let built = p.push(b"fdinfo/").and_then(|p| p.push_u32(fd as u32)).is_ok();
        if !built || fd < 0 {
            return false;
        }
        let Ok(info) =
            self.caps.reaching(|| self.proc_of(c.tid, p.as_cstr(), rustix::fs::OFlags::RDONLY))
        else {
            return false;
        };
        let mut buf = [0u8; 512];
        let n = rustix::io::read(&info, &mut buf).unwrap_or(0);
        let text = &buf[..n];
        let Some(at) = text.windows(6).position(|w| w == b"flags:") else { return false };
        let mut flags = 0u32;
        for &b in text[at + 6..].iter().skip_while(|b| b.is_ascii_whitespace()) {
            if !(b'0'..=b'7').contains(&b) {
                break;
            }
            flags = flags.wrapping_mul(8).wrapping_add(u32::from(b - b'0'));
        }
        flags & libc::O_CLOEXEC as u32 != 0
    }
}

/// The most supplementary groups [`as_app`] takes on (a caller with more: `EACCES`).
const MAX_GROUPS: usize = 256;

/// A process's credentials as the kernel checks and records them: its effective uid and gid
/// (what `SO_PEERCRED` records on an `AF_UNIX` connect and listen), its file-system ones
/// (what permission checks and new files use) and its supplementary groups.
pub(super) struct Creds {
    euid: u32,
    egid: u32,
    fsuid: u32,
    fsgid: u32,
    groups: [u32; MAX_GROUPS],
    n: usize,
}

impl Creds {
    fn same(&self, other: &Creds) -> bool {
        self.euid == other.euid
            && self.egid == other.egid
            && self.fsuid == other.fsuid
            && self.fsgid == other.fsgid
            && self.groups[..self.n] == other.groups[..other.n]
    }
}

/// The supervisor's own [`Creds`] (taken once, when it starts: [`Context::new`]).
pub(super) fn own_creds() -> Result<Creds> {
    let mut creds = Creds { euid: 0, egid: 0, fsuid: 0, fsgid: 0, groups: [0; MAX_GROUPS], n: 0 };
    // SAFETY: geteuid and getegid take nothing; setfsuid and setfsgid with an invalid id (-1)
    // change nothing and return the current one; getgroups writes at most MAX_GROUPS gids into
    // `groups`, on this stack.
    unsafe {
        creds.euid = libc::geteuid();
        creds.egid = libc::getegid();
        creds.fsuid = libc::setfsuid(u32::MAX) as u32;
        creds.fsgid = libc::setfsgid(u32::MAX) as u32;
        let n = libc::getgroups(MAX_GROUPS as i32, creds.groups.as_mut_ptr());
        if n < 0 {
            return Err(Errno::ACCESS);
        }
        creds.n = n as usize;
    }
    Ok(creds)
}

/// Takes on `to` (this one thread's credentials: the supervisor has no other), from the
/// supervisor's own or a caller's. Works only in a supervisor whose real and saved uid are 0
/// (a root broker's), which keeps `CAP_SETUID` and `CAP_SETGID` permitted for this alone:
/// * back to euid 0 first if it is not (allowed: the real uid is 0), which makes the permitted
///   capabilities effective again;
/// * groups, egid and fsgid with `CAP_SETGID` effective;
/// * then the euid (leaving 0 clears the effective capabilities) and the fsuid (allowed
///   without a capability when it is the new euid, or 0 when going back to root);
/// * back at euid 0, no capability stays effective.
///
/// Returns whether every id is now `to`'s (read back from the kernel).
fn set_creds(to: &Creds) -> bool {
    use rustix::thread::CapabilitySet;
    // SAFETY: raw setresuid, setresgid and setgroups change this thread's credentials only and
    // read nothing but `to.groups` (`to.n` gids, on the caller's stack or in the context);
    // setfsuid and setfsgid take integers; the getters take nothing.
    unsafe {
        if libc::geteuid() != 0 && libc::syscall(libc::SYS_setresuid, u32::MAX, 0u32, u32::MAX) != 0
        {
            return false;
        }
        if super::Caps::set_effective(CapabilitySet::SETUID | CapabilitySet::SETGID).is_err() {
            return false;
        }
        let ok = libc::syscall(libc::SYS_setgroups, to.n, to.groups.as_ptr()) == 0
            && libc::syscall(libc::SYS_setresgid, u32::MAX, to.egid, u32::MAX) == 0
            && {
                libc::setfsgid(to.fsgid);
                true
            }
            && libc::syscall(libc::SYS_setresuid, u32::MAX, to.euid, u32::MAX) == 0
            && {
                libc::setfsuid(to.fsuid);
                true
            };
        // Emptied whatever the euid: leaving 0 clears the effective set only without
        // `SECBIT_NO_SETUID_FIXUP`, which a broker could have passed on.
        let dropped = super::Caps::set_effective(CapabilitySet::empty()).is_ok()
            && rustix::thread::capabilities(None).is_ok_and(|c| c.effective.is_empty());
        ok && dropped && own_creds().is_ok_and(|now| now.same(to))
    }
}

/// What a change of credentials undid (`commit_creds`): the parent-death signal, cleared, and
/// the process's dumpability, reset to `fs.suid_dumpable`. Armed again, and the parent checked
/// (it may have gone while the signal was off); exits if either fails.
fn after_creds_change(ctx: &Context) {
    use rustix::process::{DumpableBehavior, Signal, getppid, set_dumpable_behavior};
    if let Some(parent) = ctx.parent
        && (rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).is_err()
            || getppid() != Some(parent))
    {
        super::exit_now(1);
    }
    if set_dumpable_behavior(DumpableBehavior::NotDumpable).is_err() {
        super::exit_now(1);
    }
}

/// Runs `f` with the caller's credentials, so that the kernel's permission checks on the paths
/// `f` resolves, the files it makes (their owner) and the credentials it records for a peer
/// (`SO_PEERCRED` of an `AF_UNIX` connect or listen: the uid and gid, not the pid, which is
/// the supervisor's) are the app's. The supervisor of a container under an unprivileged
/// broker is the app's uid already; under a root broker it is root (with no capability but
/// `CAP_SYS_PTRACE`, and `CAP_SETUID` and `CAP_SETGID` for this change, all permitted only),
/// and takes on the app's euid, egid, fsuid, fsgid and groups for the call ([`set_creds`]),
/// then its own again, as they were when it started. It never takes on uid or gid 0 for an
/// app (an app is never root on the host), and never serves anyone with credentials it could
/// not put back: it exits instead.
fn as_app<T>(
    ctx: &mut Context,
    c: &Caller<'_>,
    f: impl FnOnce(&mut Context) -> Result<T>,
) -> Result<T> {
    let theirs = ctx.their_creds(c)?;
    let Some(mine) = ctx.own_creds.as_ref() else { return Err(Errno::ACCESS) };
    if theirs.same(mine) {
        return f(ctx);
    }
    if mine.euid != 0 || [theirs.euid, theirs.fsuid, theirs.egid, theirs.fsgid].contains(&0) {
        return Err(Errno::ACCESS);
    }
    let taken = set_creds(&theirs);
    let r = if taken { f(ctx) } else { Err(Errno::ACCESS) };
    if !ctx.own_creds.as_ref().is_some_and(set_creds) {
        // Never serve anyone with the wrong credentials.
        super::exit_now(1);
    }
    after_creds_change(ctx);
    r
}

#[cfg(test)]
#[path = "loopback_tests.rs"]
mod tests;
